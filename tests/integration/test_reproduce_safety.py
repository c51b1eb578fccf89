"""`python -m dlmpaper.reproduce` loses nothing (README "Reproducibility").

Signals abort a run without publishing; publishing is all-or-nothing; unwritable folders, a bad
seed and a second concurrent run fail before any kernel starts; a killed run's scratch folder
is removed by the next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dlmpaper import reproduce
from dlmpaper.reproduce import PreflightError

PARAMS = 'profile = "embedded"\ndevice = "cpu"\nseed = 0'


def _notebook(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    cells = [params, new_code_cell(body)]
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"
    nbformat.write(new_notebook(cells=cells), str(folder / name))


def _figure(name: str) -> str:
    """Notebook code writing figure ``name`` (bytes depend on the seed) and a marker in the notebooks folder."""
    return (
        f"import os, pathlib\nopen('started-{name}', 'w').close()\n"
        f"pathlib.Path(os.environ['DLMPAPER_FIGURES'], {name!r}).write_bytes(b'new %d' % seed)"
    )


def _repo(tmp_path: Path) -> Path:
    """A repository with one published figure, manifest and notebook (the state that must survive)."""
    repo = tmp_path / "repo"
    _notebook(repo / "notebooks", "00_a.ipynb", _figure("a.png"))
    (repo / "figures").mkdir()
    (repo / "figures" / "a.png").write_bytes(b"old")
    (repo / "figures" / reproduce.FIGURES_MANIFEST_NAME).write_text('{"figures": {"a.png": {"notebook": "00_a"}}}\n')
    (tmp_path / "scratch").mkdir()
    return repo


def _state(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not p.name.startswith("started-")
    }


def _args(repo: Path, tmp_path: Path) -> list[str]:
    return [
        "--notebooks-dir",
        str(repo / "notebooks"),
        "--figures-dir",
        str(repo / "figures"),
        "--scratch-dir",
        str(tmp_path / "scratch"),
        "--quiet",
    ]


@pytest.fixture
def no_kernel(monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a kernel started"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_aborts_the_run_publishes_nothing_and_a_second_run_is_locked_out(tmp_path, capsys, signum):
    repo = _repo(tmp_path)
    _notebook(repo / "notebooks", "01_slow.ipynb", "open('started-slow', 'w').close()\nimport time\ntime.sleep(25)")
    before = _state(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlmpaper.reproduce", "--seed", "1", *_args(repo, tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (repo / "notebooks" / "started-slow").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the slow notebook never started"
            time.sleep(0.1)
        start = time.monotonic()
        assert reproduce.main(_args(repo, tmp_path)) == 2  # a second run in the same clone
        second = capsys.readouterr().err
        assert time.monotonic() - start < 5
        assert f"PID {proc.pid}" in second and str(repo / "figures" / reproduce.LOCK_NAME) in second
        proc.send_signal(signum)
        code = proc.wait(timeout=15)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}: nothing was published" in err
    assert _state(repo) == before
    assert list((tmp_path / "scratch").iterdir()) == [], "the scratch folder was left behind"


def test_failed_publish_rolls_back_every_file(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    before = _state(repo)
    real_replace = os.replace
    failed = []

    def replace(src, dst):  # the notebooks folder refuses the first write
        if Path(dst).parent == repo / "notebooks" and not failed:
            failed.append(dst)
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises((OSError, reproduce.ReproduceError)) as info:
        reproduce.run(
            seed=1,
            notebooks_dir=repo / "notebooks",
            figures_dir=repo / "figures",
            scratch_dir=tmp_path / "scratch",
            progress=False,
        )
    assert failed and _state(repo) == before, "figures/ or notebooks/ kept part of the new results"
    assert "rolled back" in str(info.value)


def test_unwritable_figures_or_notebooks_fail_before_any_notebook_runs(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    (tmp_path / "plain_file").write_text("x")
    start = time.monotonic()
    with pytest.raises(PreflightError, match="cannot be created|is a file"):
        reproduce.run(
            notebooks_dir=repo / "notebooks",
            figures_dir=tmp_path / "plain_file" / "figures",
            scratch_dir=tmp_path / "scratch",
            progress=False,
        )
    assert time.monotonic() - start < 5
    real = os.access
    for folder, what in ((repo / "figures", "figures folder"), (repo / "notebooks", "notebooks folder")):
        monkeypatch.setattr(
            os, "access", lambda p, mode, f=folder, **kw: False if Path(p) == f else real(p, mode, **kw)
        )
        with pytest.raises(PreflightError, match=f"{what} .* is not writable"):
            reproduce.run(
                notebooks_dir=repo / "notebooks",
                figures_dir=repo / "figures",
                scratch_dir=tmp_path / "scratch",
                progress=False,
            )
    assert not list((repo / "notebooks").glob("started-*")), "a notebook ran before the check"


def test_seed_outside_the_valid_range_fails_up_front(tmp_path, capsys, no_kernel):
    repo = _repo(tmp_path)
    assert reproduce.main(["--seed", str(10**23), *_args(repo, tmp_path)]) == 2
    assert "seed must be an integer from 0 to 4294967295" in capsys.readouterr().err


def test_scratch_folder_of_a_killed_run_is_removed_by_the_next_run(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / "scratch" / f"{reproduce.SCRATCH_PREFIX}killed"
    (killed / "figures").mkdir(parents=True)
    (killed / reproduce.RUNNING_MARKER).write_text(f"{dead.pid}\n")
    alive = tmp_path / "scratch" / f"{reproduce.SCRATCH_PREFIX}alive"
    alive.mkdir()
    (alive / reproduce.RUNNING_MARKER).write_text(f"{os.getppid()}\n")
    failed = tmp_path / "scratch" / f"{reproduce.SCRATCH_PREFIX}failed"  # kept for inspection: no marker
    failed.mkdir()
    monkeypatch.setattr(reproduce, "_execute_all", lambda *a, **k: ({}, {}, {}))  # no kernels: nothing to run
    reproduce.run(
        notebooks_dir=repo / "notebooks", figures_dir=repo / "figures", scratch_dir=tmp_path / "scratch", progress=False
    )
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == [alive.name, failed.name]
