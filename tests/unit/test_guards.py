"""dlmpaper.guards: all-or-nothing publishing, the run lock, directory swaps, seed range."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dlmpaper import guards


def _folder(root: Path, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def _texts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


KILLED_PUBLISH = """
import os, signal, sys
from pathlib import Path
from dlmpaper import guards
dst, src = Path(sys.argv[1]), Path(sys.argv[2])
die = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[3] == "after-commit":
    guards._finish = die
guards.publish([(dst / "a", src / "a"), (dst / "b", src / "b"), (dst / "gone", None), (dst / "c", src / "c")],
               dst / "journal.json", before_commit=die if sys.argv[3] == "before-commit" else None)
"""


@pytest.mark.parametrize(
    "when, expected",
    [
        ("before-commit", {"a": "old a", "b": "old b", "gone": "old gone"}),
        ("after-commit", {"a": "new a", "b": "new b", "c": "new c"}),
    ],
)
def test_publish_killed_midway_is_undone_or_finished_by_recover(tmp_path, when, expected):
    dst = _folder(tmp_path / "dst", a="old a", b="old b", gone="old gone")
    src = _folder(tmp_path / "src", a="new a", b="new b", c="new c")
    proc = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(dst), str(src), when], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert (dst / "journal.json").exists()
    done = guards.recover(dst / "journal.json")
    assert done.startswith("rolled back" if when == "before-commit" else "completed")
    assert _texts(dst) == expected  # journal, backups and staged copies gone too


def test_publish_error_rolls_back_and_leaves_no_temporary_files(tmp_path):
    dst = _folder(tmp_path / "dst", a="old a", b="old b")
    src = _folder(tmp_path / "src", a="new a")
    with pytest.raises(FileNotFoundError):  # the second source is missing
        guards.publish([(dst / "a", src / "a"), (dst / "new", src / "missing")], dst / "journal.json")
    assert _texts(dst) == {"a": "old a", "b": "old b"}

    def cancel():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guards.publish([(dst / "a", src / "a"), (dst / "b", None)], dst / "journal.json", before_commit=cancel)
    assert _texts(dst) == {"a": "old a", "b": "old b"}


def test_lock_fails_fast_naming_the_holder_and_is_freed_when_the_holder_is_killed(tmp_path):
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from dlmpaper.guards import RunLock
        with RunLock({str(lock)!r}, "test run"):
            print("held", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(guards.LockedError, match=f"PID {holder.pid}, lock {lock}"):
            guards.RunLock(lock, "test run").__enter__()
    finally:
        holder.kill()
        holder.wait()
    with guards.RunLock(lock, "test run"):
        assert lock.read_text().strip().isdigit()
    assert not lock.exists()


def test_replace_dir_and_restore_after_a_half_done_swap(tmp_path):
    target = _folder(tmp_path / "model", weights="old")
    staging = _folder(tmp_path / ".model.export-1", weights="new")
    guards.replace_dir(staging, target)
    assert _texts(target) == {"weights": "new"} and not staging.exists()
    target.rename(tmp_path / ".model.old-1234")  # a kill between the two renames of the fallback path
    guards.restore_dir(target)
    assert _texts(target) == {"weights": "new"} and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    "seed, ok",
    [(0, True), (2**32 - 1, True), (2**32, False), (-1, False), (10**23, False), (True, False), (1.0, False)],
)
def test_seed_range(seed, ok):
    if ok:
        assert guards.check_seed(seed) == seed
    else:
        with pytest.raises(ValueError, match="from 0 to 4294967295"):
            guards.check_seed(seed)
