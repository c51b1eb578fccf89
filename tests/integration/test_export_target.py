"""`python -m dlmpaper.train --export DIR` never deletes what is not an earlier export.

DIR must be absent, empty, or an earlier export of the same family (every file listed in its
MANIFEST.sha256); the export is written beside DIR and swapped in.
"""

from __future__ import annotations

import json

import pytest
import torch

from dlmpaper import paths
from dlmpaper.provenance import write_manifest
from dlmpaper.train import loop as train
from dlmpaper.train.loop import Run, TrainConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 4-step autoregressive run (it shares the shipped tokenizer, so nothing else is trained)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("export") / "run"
    cfg = TrainConfig(
        steps=4,
        batch_size=4,
        warmup=2,
        hidden=32,
        layers=1,
        heads=2,
        max_train_pairs=100,
        eval_pairs=8,
        response_length=32,
        full_length_share=0.0,
        family="autoregressive",
    )
    Run(folder, cfg).train(until_step=4, eval_every=1000, save_every=4)
    return folder


def _export(capsys, run_dir, target) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = train.main(["--out", str(run_dir), "--export", str(target), "--threads", "1"])
    return code, capsys.readouterr().err.strip().splitlines()


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_refuses_a_folder_that_holds_other_files(capsys, tmp_path, run_dir):
    target = tmp_path / "family_models"
    (target / "wordnet-continuous").mkdir(parents=True)
    (target / "wordnet-continuous" / "model.safetensors").write_bytes(b"weights someone needs")
    (target / "notes.md").write_text("mine")
    before = _files(target)
    code, err = _export(capsys, run_dir, target)
    assert code == 2 and len(err) == 1 and "holds no earlier export" in err[0] and "new or empty folder" in err[0]
    assert _files(target) == before


def test_export_refuses_a_file_and_another_familys_export(capsys, tmp_path, run_dir):
    (tmp_path / "a_file").write_text("x")
    code, err = _export(capsys, run_dir, tmp_path / "a_file")
    assert code == 2 and "is not a folder" in err[0] and (tmp_path / "a_file").read_text() == "x"
    other = tmp_path / "continuous"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "family.json").write_text(json.dumps({"family": "continuous"}))
    write_manifest(other)
    code, err = _export(capsys, run_dir, other)
    assert code == 2 and "holds a continuous model, this run is autoregressive" in err[0]
    assert (other / "family.json").exists()


def test_export_replaces_its_own_earlier_export_but_not_added_files(capsys, tmp_path, run_dir):
    target = tmp_path / "shipped"
    assert _export(capsys, run_dir, target)[0] == 0
    first = _files(target)
    assert {"MANIFEST.sha256", "README.md", "family.json", "model.safetensors"} <= set(first)
    assert _export(capsys, run_dir, target)[0] == 0  # an earlier export of the same family: replaced
    assert set(_files(target)) == set(first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"], "staging or backup folders left behind"
    (target / "my_eval.csv").write_text("added by hand")
    code, err = _export(capsys, run_dir, target)
    assert code == 2 and "my_eval.csv" in err[0]
    assert (target / "my_eval.csv").read_text() == "added by hand"


def test_shipped_models_are_recognised_as_earlier_exports():
    train.check_export_target(paths.EMBEDDED_MODEL, "masked")
    train.check_export_target(paths.FAMILY_MODELS / "wordnet-autoregressive", "autoregressive")
    with pytest.raises(train.ExportError):
        train.check_export_target(paths.FAMILY_MODELS, "autoregressive")
