"""`dlmpaper probe --out` (README "Probe your own diffusion LM"): checked before the model loads, written atomically."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from dlmpaper import cli


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "Can brain cells move ?"}) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(
        "dlmpaper.lm.models.load_model", lambda *a, **k: pytest.fail("the model loaded before --out was checked")
    )


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_out_under_a_regular_file_fails_before_the_model_loads(capsys, tmp_path, prompts, bert_mlm_dir, no_model):
    (tmp_path / "notes.txt").write_text("keep me")
    line = _error(
        capsys,
        [
            "probe",
            "--model",
            str(bert_mlm_dir),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "notes.txt" / "probe.csv"),
        ],
    )
    assert "notes.txt is a file, not a directory" in line
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_unwritable_out_folder_fails_before_the_model_loads(
    capsys, monkeypatch, tmp_path, prompts, bert_mlm_dir, no_model
):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: False if str(path) == str(locked) else real(path, mode, **kw)
    )
    line = _error(
        capsys, ["probe", "--model", str(bert_mlm_dir), "--prompts", str(prompts), "--out", str(locked / "p.csv")]
    )
    assert "is not writable" in line and "chmod" in line


def test_n_masks_over_the_config_context_fails_before_the_model_loads(capsys, prompts, bert_mlm_dir, no_model):
    line = _error(capsys, ["probe", "--model", str(bert_mlm_dir), "--prompts", str(prompts), "--n-masks", "512"])
    assert "context of 512 tokens" in line and "at most 511" in line


def test_a_failed_write_leaves_the_previous_csv_intact(tmp_path, monkeypatch, prompts, bert_mlm_dir):
    out = tmp_path / "probe.csv"
    out.write_text("previous results\n")
    real = pd.DataFrame.to_csv

    def crash_midway(self, path, *args, **kwargs):
        real(self.head(1), path, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        cli.main(
            [
                "probe",
                "--model",
                str(bert_mlm_dir),
                "--prompts",
                str(prompts),
                "--n-masks",
                "4",
                "--top-k",
                "2",
                "--n-boot",
                "10",
                "--quiet",
                "--out",
                str(out),
            ]
        )
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.csv", "prompts.jsonl"]
