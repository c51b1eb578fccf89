"""Tests for dlmpaper.cli: `dlmpaper probe` (paper §4 probe) fails early with one line, and runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from dlmpaper import cli
from dlmpaper.lm.models import REGISTRY


@pytest.fixture
def no_loading(monkeypatch):
    """Any attempt to load a model or LIMA fails the test: errors must come before loading."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the CLI loaded something before validating its arguments")

    monkeypatch.setattr("dlmpaper.lm.models.load_model", forbidden)
    monkeypatch.setattr("dlmpaper.prompts._load_lima", forbidden)


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt_id": "brain", "prompt": "Can brain cells move ?"},
        {"prompt_id": "yes", "prompt": "Yes"},
        {"prompt_id": "likes", "prompt": "He likes the cells and neurons do migrate"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_unknown_model_lists_known_models(capsys, no_loading, prompts_file):
    code, _, err = _run(capsys, "probe", "--model", "no-such-model", "--prompts", str(prompts_file))
    assert code == 2
    line = _one_error_line(err)
    assert "no-such-model" in line
    for name in REGISTRY:
        assert name in line


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--n-masks", "-3"], "n_masks"),
        (["--n-masks", "0"], "n_masks"),
        (["--top-k", "0"], "top_k"),
        (["--n-prompts", "0"], "n_prompts"),
        (["--batch-size", "0"], "--batch-size"),
        (["--n-masks", "abc"], "--n-masks"),
        (["--js-support", "-2"], "--js-support"),
        (["--device", "tpu9"], "device"),
        (["--dtype", "int3"], "dtype"),
        (["--prompts", "nowhere.txt"], "prompt source"),
        (["--prompts", "missing.jsonl"], "not found"),
    ],
)
def test_bad_arguments_exit_2_before_loading(capsys, no_loading, bert_mlm_dir, argv, needle):
    code, _, err = _run(capsys, "probe", "--model", str(bert_mlm_dir), *argv)
    assert code == 2
    assert needle in _one_error_line(err)


def test_remote_code_model_needs_flag_before_loading(capsys, no_loading, prompts_file):
    code, _, err = _run(capsys, "probe", "--model", "llada-8b-instruct", "--prompts", str(prompts_file))
    assert code == 2
    assert "--trust-remote-code" in _one_error_line(err)


def test_malformed_prompt_file_names_the_line(capsys, monkeypatch, tmp_path, bert_mlm_dir):
    monkeypatch.setattr("dlmpaper.lm.models.load_model", lambda *a, **k: pytest.fail("model loaded before prompts"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "broken"\n', encoding="utf-8")
    code, _, err = _run(capsys, "probe", "--model", str(bert_mlm_dir), "--prompts", str(bad))
    assert code == 2
    line = _one_error_line(err)
    assert "line 2" in line and "bad.jsonl" in line


def test_hub_id_offline_fails_with_one_line(capsys, monkeypatch, prompts_file):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _run(capsys, "probe", "--model", "some-org/some-model", "--prompts", str(prompts_file))
    assert code == 2
    line = _one_error_line(err)
    assert "some-org/some-model" in line and "HF_HUB_OFFLINE" in line


def test_no_command_prints_help(capsys):
    code, _, err = _run(capsys)
    assert code == 2 and "probe" in err


def test_end_to_end_on_a_local_model_directory(capsys, tmp_path, bert_mlm_dir, prompts_file):
    out = tmp_path / "results" / "probe.csv"
    summary = tmp_path / "summary.csv"
    code, stdout, err = _run(
        capsys,
        "probe", "--model", str(bert_mlm_dir), "--prompts", str(prompts_file),
        "--n-prompts", "2", "--n-masks", "10", "--top-k", "2", "--batch-size", "2",
        "--out", str(out), "--summary-out", str(summary), "--every", "4", "--n-boot", "50", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["prompt_id", "position", "rank", "token_id", "token", "prob"]
    assert len(table) == 2 * 10 * 2
    assert table["prompt_id"].unique().tolist() == ["brain", "yes"]  # --n-prompts 2: the first two
    assert table["prob"].between(0, 1).all()
    stats = pd.read_csv(summary)
    assert {"entropy", "end_share", "js_divergence"} <= set(stats["statistic"])
    assert stats["position"].max() == 10
    # compact view: positions 1, 5, 9 and the last, 10
    assert "top1_token" in stdout and "wrote 40 rows" in stdout
    shown = [int(line.split()[0]) for line in stdout.splitlines() if line.strip()[:1].isdigit()]
    assert shown == [1, 5, 9, 10]


def test_python_dash_m_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "dlmpaper.cli", "no-such-command"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
