"""Kill test: SIGINT, SIGTERM and SIGKILL at random points of ``train`` and ``reproduce``.

Checks that a kill leaves checkpoints, ``figures/`` and ``notebooks/`` as they were or fully new,
never mixed, and that resuming a killed training run gives exactly the weights of an
uninterrupted one. Not run by CI (minutes of wall time); writes ``benchmarks/results/kill_test.json``.

    python benchmarks/kill_test.py                              # both, 12 runs each (4 per signal)
    python benchmarks/kill_test.py --target train --runs 30 --steps 80 --save-every 8
    python benchmarks/kill_test.py --target reproduce --runs 10 --real-notebooks 01

``train`` runs ``python -m dlmpaper.train`` on a tiny configuration (hidden 32, 1 layer, the shipped
tokenizer) and kills it during start-up or at a random time after a random save; the reference
weights at every save step come from one uninterrupted run of the same command.
``reproduce`` runs ``python -m dlmpaper.reproduce`` on a temporary repository: state A is published
with seed 0, each trial reruns with seed 1 (state B) and is killed at a random time; after a
SIGKILL the start-up recovery of the next run (:func:`dlmpaper.guards.recover`, stale scratch
removal) is applied before comparing. By default the notebooks are small generated ones
(kernel start, figures, a short sleep); ``--real-notebooks`` copies notebooks of this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat
import torch
from nbformat.v4 import new_code_cell, new_notebook

from dlmpaper import guards, paths, reproduce
from dlmpaper.train.loop import CHECKPOINTS_DIR, checkpoint_dir

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "PYTHONHASHSEED": "0",
}


def _kill_when(cmd: list[str], ready, delay: float, signum: int) -> int:
    """Start ``cmd``; once ``ready()`` is true, wait ``delay`` seconds and send ``signum`` (unless it
    ended by then); return its exit code."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not ready():
        time.sleep(0.005)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signum)
    return proc.wait(timeout=120)


# ----------------------------------------------------------------------------- train
def _train_cmd(run: Path, steps: int, save_every: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dlmpaper.train",
        "--out",
        str(run),
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--max-train-pairs",
        "200",
        "--eval-pairs",
        "8",
        "--eval-every",
        "1000000",
        "--save-every",
        str(save_every),
        "--threads",
        "1",
    ]


def _fresh_run(folder: Path) -> Path:
    (folder / "model").mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(paths.EMBEDDED_MODEL / name, folder / "model" / name)
    return folder


def _weights_digest(folder: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model" / "model.safetensors"))
    sha = hashlib.sha256()
    for name in sorted(tensors):
        sha.update(name.encode())
        sha.update(tensors[name].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _reference(folder: Path, steps: int, save_every: int) -> tuple[dict[int, str], float]:
    """Weights digest at every save step of one uninterrupted run (in this process, same command line)
    and the mean seconds between saves."""
    from dlmpaper.train import loop as train

    digests, times = {}, []
    write = train.write_checkpoint

    def recording(out, step, write_files):
        committed = write(out, step, write_files)
        digests[step] = _weights_digest(committed)
        times.append(time.monotonic())
        return committed

    train.write_checkpoint = recording
    try:
        assert train.main(_train_cmd(folder, steps, save_every)[3:]) == 0
    finally:
        train.write_checkpoint = write
    return digests, (times[-1] - times[0]) / max(len(times) - 1, 1)


def _committed_step(folder: Path) -> int:
    try:
        return json.loads((folder / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def train_trials(work: Path, runs: int, steps: int, save_every: int, rng: random.Random) -> dict:
    reference, interval = _reference(_fresh_run(work / "reference"), steps, save_every)
    print(f"train: reference has {len(reference)} save points, {interval:.2f} s apart")
    trials = []
    for i in range(runs):
        signum = SIGNALS[i % len(SIGNALS)]
        folder = _fresh_run(work / f"trial-{i}")
        after = rng.choice([-1, *reference])  # -1: during start-up, else after the save at that step
        delay = rng.uniform(0.0, interval if after >= 0 else 3.0)
        code = _kill_when(
            _train_cmd(folder, steps, save_every), lambda: _committed_step(folder) >= after, delay, signum
        )
        trial = {"signal": signal.Signals(signum).name, "after_save": after, "delay_s": round(delay, 3), "exit": code}
        try:
            ckpt = checkpoint_dir(folder)
            step = json.loads((ckpt / "state.json").read_text())["step"] if ckpt else 0
            trial["checkpoint_step"] = step
            trial["checkpoint"] = (
                "none" if ckpt is None else ("intact" if _weights_digest(ckpt) == reference[step] else "MIXED")
            )
        except Exception as exc:  # noqa: BLE001 - any failure to read the checkpoint is a finding
            trial["checkpoint"] = f"BROKEN: {type(exc).__name__}: {exc}"
        trial["leftover_tmp"] = (
            len(list((folder / CHECKPOINTS_DIR).glob(".*.tmp"))) if (folder / CHECKPOINTS_DIR).exists() else 0
        )
        resumed = subprocess.run(_train_cmd(folder, steps, save_every), env=ENV, capture_output=True, text=True)
        trial["resume_exit"] = resumed.returncode
        final = checkpoint_dir(folder) if resumed.returncode == 0 else None
        trial["resume_equal"] = final is not None and _weights_digest(final) == reference[steps]
        trial["leftover_after_resume"] = len(list((folder / CHECKPOINTS_DIR).iterdir())) - 1
        trials.append(trial)
        print(f"train {i:2d}: {trial}")
        shutil.rmtree(folder)
    return {"steps": steps, "save_every": save_every, "seconds_between_saves": round(interval, 2), "trials": trials}


# ----------------------------------------------------------------------------- reproduce
def _synthetic_notebooks(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True)
    for n in range(count):
        params = new_code_cell('profile = "embedded"\ndevice = "cpu"\nseed = 0')
        params.metadata["tags"] = ["parameters"]
        body = new_code_cell(
            "import os, pathlib, time\n"
            f"for name in ('nb{n}_a.png', 'nb{n}_b.pdf'):\n"
            "    pathlib.Path(os.environ['DLMPAPER_FIGURES'], name).write_bytes(b'%s seed %d' % (name.encode(), seed))\n"
            "time.sleep(0.5)\nprint('seed', seed)"
        )
        cells = [params, body]
        for i, cell in enumerate(cells):
            cell["id"] = f"c{i}"
        nbformat.write(new_notebook(cells=cells), str(folder / f"{n:02d}_synthetic.ipynb"))


def _snapshot(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and p.name not in (reproduce.TIMINGS_NAME, reproduce.LOCK_NAME)
    }


def _reproduce_cmd(repo: Path, scratch: Path, seed: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dlmpaper.reproduce",
        "--seed",
        str(seed),
        "--quiet",
        "--scratch-dir",
        str(scratch),
        "--notebooks-dir",
        str(repo / "notebooks"),
        "--figures-dir",
        str(repo / "figures"),
    ]


def reproduce_trials(work: Path, runs: int, real: list[str] | None, rng: random.Random) -> dict:
    pristine = work / "pristine"
    if real:
        (pristine / "notebooks").mkdir(parents=True)
        for path in reproduce.discover_notebooks(paths.NOTEBOOKS, real):
            shutil.copy(path, pristine / "notebooks" / path.name)
    else:
        _synthetic_notebooks(pristine / "notebooks")
    scratch = work / "scratch"
    scratch.mkdir()
    subprocess.run(_reproduce_cmd(pristine, scratch, 0), env=ENV, check=True, capture_output=True)
    state_a = _snapshot(pristine)
    new = work / "new"
    shutil.copytree(pristine, new)
    start = time.monotonic()
    subprocess.run(_reproduce_cmd(new, scratch, 1), env=ENV, check=True, capture_output=True)
    wall = time.monotonic() - start
    state_b = _snapshot(new)
    same = sorted(k for k in state_a if state_a.get(k) == state_b.get(k))
    print(f"reproduce: {len(state_a)} files, {len(same)} identical in A and B; a full run takes {wall:.1f} s")
    trials = []
    for i in range(runs):
        signum = SIGNALS[i % len(SIGNALS)]
        repo = work / f"trial-{i}"
        shutil.copytree(pristine, repo)
        late = i % 2 == 1  # every other trial aims at publishing: after the last notebook was staged
        last = f"notebooks/{sorted(p.name for p in (pristine / 'notebooks').glob('*.ipynb'))[-1]}"
        delay = rng.uniform(0.0, 0.05 if late else wall)
        code = _kill_when(
            _reproduce_cmd(repo, scratch, 1),
            lambda: not late or any(scratch.glob(f"{reproduce.SCRATCH_PREFIX}*/{last}")),
            delay,
            signum,
        )
        trial = {
            "signal": signal.Signals(signum).name,
            "late": late,
            "delay_s": round(delay, 3),
            "exit": code,
            "scratch_left": len(list(scratch.iterdir())),
        }
        # what the next run does first (dlmpaper.reproduce.run): finish or undo a publish, drop stale scratch
        trial["recovery"] = guards.recover(repo / "figures" / reproduce.JOURNAL_NAME)
        reproduce._remove_stale_scratch(scratch)
        trial["scratch_after_next_start"] = len(list(scratch.iterdir()))
        now = _snapshot(repo)
        trial["state"] = "as before" if now == state_a else ("fully new" if now == state_b else "MIXED")
        if trial["state"] == "MIXED":
            trial["differs"] = sorted(k for k in set(now) | set(state_a) if now.get(k) != state_a.get(k))[:8]
        with guards.RunLock(repo / "figures" / reproduce.LOCK_NAME, "kill test"):
            pass  # a killed holder never blocks the next run
        trials.append(trial)
        print(f"reproduce {i:2d}: {trial}")
        shutil.rmtree(repo)
    return {
        "notebooks": real or "synthetic (3)",
        "files": len(state_a),
        "identical_in_a_and_b": same,
        "full_run_s": round(wall, 1),
        "trials": trials,
    }


def _summary(trials: list[dict], key: str) -> dict:
    return {
        name: dict(Counter(str(t[key]) for t in trials if t["signal"] == name))
        for name in ("SIGINT", "SIGTERM", "SIGKILL")
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=("train", "reproduce", "both"), default="both")
    p.add_argument("--runs", type=int, default=12, help="trials per target (signals cycle SIGINT, SIGTERM, SIGKILL)")
    p.add_argument("--steps", type=int, default=40, help="training steps of a train trial")
    p.add_argument("--save-every", type=int, default=4)
    p.add_argument(
        "--real-notebooks", nargs="+", default=None, metavar="NN", help="use these notebooks of the repository"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    p.add_argument("--out", type=Path, default=paths.BENCHMARKS / "results" / "kill_test.json")
    args = p.parse_args()
    rng = random.Random(args.seed)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}", "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="dlmpaper-kill-test-") as tmp:
        if args.target in ("train", "both"):
            result["train"] = train_trials(Path(tmp) / "train", args.runs, args.steps, args.save_every, rng)
            trials = result["train"]["trials"]
            result["train"]["summary"] = {
                "checkpoint": _summary(trials, "checkpoint"),
                "resume_equal": _summary(trials, "resume_equal"),
            }
        if args.target in ("reproduce", "both"):
            result["reproduce"] = reproduce_trials(Path(tmp) / "reproduce", args.runs, args.real_notebooks, rng)
            trials = result["reproduce"]["trials"]
            result["reproduce"]["summary"] = {
                "state": _summary(trials, "state"),
                "exit": _summary(trials, "exit"),
                "scratch_left": _summary(trials, "scratch_left"),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for target in ("train", "reproduce"):
        if target in result:
            print(f"{target}: {json.dumps(result[target]['summary'])}")
    bad = [
        t
        for k in ("train", "reproduce")
        for t in result.get(k, {}).get("trials", [])
        if t.get("state") == "MIXED"
        or str(t.get("checkpoint", "")).startswith(("MIXED", "BROKEN"))
        or t.get("resume_equal") is False
        or t.get("scratch_after_next_start", 0)
    ]
    print(f"wrote {args.out}; {len(bad)} trial(s) with a problem")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
