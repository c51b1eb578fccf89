"""Training checkpoints are one atomic unit (dlmpaper.train docstring).

A kill between or during the writes of a save leaves the previous checkpoint in force, so
resuming gives exactly the weights of an uninterrupted run; damage is one line naming the fix;
run directories of the earlier layout (model, optimizer, state.json side by side) still resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dlmpaper import paths
from dlmpaper.provenance import ManifestError, verify_manifest
from dlmpaper.train import loop as train
from dlmpaper.train.loop import CHECKPOINT_POINTER, CHECKPOINTS_DIR, CheckpointError, Run, TrainConfig

TINY = dict(
    steps=8,
    batch_size=4,
    lr=3e-3,
    warmup=2,
    hidden=32,
    layers=1,
    heads=2,
    max_train_pairs=200,
    eval_pairs=8,
    response_length=32,
    full_length_share=0.0,
)
CLI = [
    "--steps",
    "8",
    "--batch-size",
    "4",
    "--lr",
    "3e-3",
    "--max-train-pairs",
    "200",
    "--eval-pairs",
    "8",
    "--eval-every",
    "1000",
    "--save-every",
    "4",
    "--threads",
    "1",
]


class Killed(BaseException):
    """Stands in for a SIGKILL in the middle of a save."""


def new_run(directory: Path) -> Run:
    """A tiny masked run that uses the shipped tokenizer (no tokenizer training)."""
    torch.set_num_threads(1)
    (directory / "model").mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(paths.EMBEDDED_MODEL / name, directory / "model" / name)
    return Run(directory, TrainConfig(**TINY))


def weights(run: Run) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"weights differ at {name}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Weights after 4 and after 8 uninterrupted steps."""
    run = new_run(tmp_path_factory.mktemp("straight"))
    run.train(until_step=4, eval_every=1000, save_every=1000)
    at4 = weights(run)
    run.train(until_step=8, eval_every=1000, save_every=1000)
    return at4, weights(run)


def _interrupted_run(directory: Path, monkeypatch, break_save) -> None:
    run = new_run(directory)
    run.train(until_step=4, eval_every=1000, save_every=4)
    monkeypatch.setattr(train, "save_optimizer", break_save)
    with pytest.raises(Killed):
        run.train(until_step=8, eval_every=1000, save_every=4)
    monkeypatch.undo()


def _kill_after_the_model_file(optimizer, path):
    raise Killed


def _kill_while_writing_the_optimizer(optimizer, path):
    Path(path).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")  # a truncated safetensors header
    raise Killed


@pytest.mark.parametrize(
    "break_save",
    [_kill_after_the_model_file, _kill_while_writing_the_optimizer],
    ids=["between-files", "during-a-file"],
)
def test_killed_save_resumes_from_the_previous_checkpoint_with_identical_weights(
    tmp_path, monkeypatch, straight, break_save
):
    at4, at8 = straight
    _interrupted_run(tmp_path / "run", monkeypatch, break_save)
    resumed = Run(tmp_path / "run", TrainConfig(**TINY))
    assert resumed.state["step"] == 4
    assert_same(weights(resumed), at4)
    resumed.train(until_step=8, eval_every=1000, save_every=4)
    assert_same(weights(resumed), at8)
    assert [p.name[:14] for p in (tmp_path / "run" / CHECKPOINTS_DIR).iterdir()] == ["step-00000008-"]


def test_damaged_checkpoint_is_one_line_naming_the_fix(tmp_path, capsys):
    run = new_run(tmp_path / "run")
    run.train(until_step=4, eval_every=1000, save_every=4)
    for weights_file in (tmp_path / "run").rglob("model.safetensors"):
        weights_file.write_bytes(weights_file.read_bytes()[:-100])
    capsys.readouterr()
    code = train.main(["--out", str(tmp_path / "run"), *CLI])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "model.safetensors" in err[0] and "train again" in err[0]


def _as_earlier_layout(run_dir: Path) -> None:
    """Rewrite a run directory into the layout of earlier versions (model/, optimizer, state.json in the run)."""
    folder = run_dir / json.loads((run_dir / CHECKPOINT_POINTER).read_text())["path"]
    shutil.rmtree(run_dir / "model")
    shutil.move(folder / "model", run_dir / "model")
    for name in ("optimizer.safetensors", "state.json"):
        shutil.move(folder / name, run_dir / name)
    shutil.rmtree(run_dir / CHECKPOINTS_DIR)
    (run_dir / CHECKPOINT_POINTER).unlink()


def test_earlier_run_layout_resumes_exactly_and_saves_in_the_new_layout(tmp_path, straight):
    _, at8 = straight
    run = new_run(tmp_path / "run")
    run.train(until_step=4, eval_every=1000, save_every=4)
    _as_earlier_layout(tmp_path / "run")
    legacy = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != "config.json"}
    resumed = Run(tmp_path / "run", TrainConfig(**TINY))
    assert resumed.state["step"] == 4
    resumed.train(until_step=8, eval_every=1000, save_every=4)
    assert_same(weights(resumed), at8)
    assert json.loads((tmp_path / "run" / CHECKPOINT_POINTER).read_text())["step"] == 8
    assert all(path.read_bytes() == data for path, data in legacy.items()), "the earlier files were changed"
    assert_same(weights(Run(tmp_path / "run", TrainConfig(**TINY))), at8)


def test_earlier_layout_with_a_half_finished_save_is_refused(tmp_path):
    run = new_run(tmp_path / "run")
    run.train(until_step=4, eval_every=1000, save_every=4)
    _as_earlier_layout(tmp_path / "run")
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    state["step"] = 2  # optimizer (step 4) written, state.json not yet: what a kill left with earlier versions
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="optimizer state at step 4, state.json at step 2"):
        Run(tmp_path / "run", TrainConfig(**TINY))


def test_snapshot_carries_weights_and_step_and_seeds_a_run_with_fresh_adamw(tmp_path):
    """--snapshot writes weights + state without AdamW moments; --init-from starts a new run there
    (same weights, same step, a new warm-up) that trains, saves and resumes in the normal layout."""
    from dlmpaper.train.loop import Run, read_state, seed_run_from_snapshot, write_snapshot

    torch.set_num_threads(1)
    cfg = TrainConfig(
        steps=6,
        batch_size=4,
        lr=3e-3,
        warmup=4,
        hidden=32,
        layers=1,
        heads=2,
        max_train_pairs=200,
        eval_pairs=8,
        response_length=24,
        full_length_share=0.0,
    )
    run = Run(tmp_path / "a", cfg)
    run.train(until_step=6, eval_every=1000, save_every=6)
    write_snapshot(tmp_path / "a", tmp_path / "snap")
    assert not list((tmp_path / "snap").glob("optimizer*")) and verify_manifest(tmp_path / "snap")
    seeded_cfg = seed_run_from_snapshot(tmp_path / "snap", tmp_path / "b")
    seeded = Run(tmp_path / "b", seeded_cfg)
    assert seeded.state["step"] == 6 and seeded.state["optimizer_restart"] == 6
    assert seeded.lr_at(6) == pytest.approx(cfg.lr / cfg.warmup), "fresh moments warm up again"
    for p, q in zip(run.model.parameters(), seeded.model.parameters()):
        assert torch.equal(p, q)
    seeded.train(until_step=9, eval_every=1000, save_every=9)
    again = Run(tmp_path / "b", seeded_cfg)  # the optimizer saved at step 9 has 3 steps: consistent
    assert read_state(tmp_path / "b")["step"] == 9 and again.state["step"] == 9
    with pytest.raises(CheckpointError, match="already holds a run"):
        seed_run_from_snapshot(tmp_path / "snap", tmp_path / "b")
    (tmp_path / "snap" / "state.json").write_text("{}")
    with pytest.raises(ManifestError, match="state.json"):
        seed_run_from_snapshot(tmp_path / "snap", tmp_path / "c")
