"""Fail early, lose nothing: checks run before expensive work, and crash-safe file operations.

README "Reproducibility" promises that a failed or interrupted run leaves what it would
replace intact. The trainer (checkpoints, ``--export``), ``dlmpaper probe`` (its CSVs) and
``python -m dlmpaper.reproduce`` (lock, publishing) build on the pieces here:

* :func:`check_seed`, :func:`check_output_file`, :func:`check_writable_dir`: one-line
  ``ValueError`` naming the fix, before any model or kernel starts;
* :func:`atomic_write_text` / :func:`replacing`: a file is either its old or its new content;
* :func:`replace_dir`: swap a fully written directory into place;
* :class:`RunLock`: one run at a time per target (``flock``; released by the kernel when the
  holder dies, even by SIGKILL);
* :func:`publish` / :func:`recover`: replace many files all-or-nothing; a journal lets the next
  start undo a publish that a SIGKILL cut short.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

__all__ = [
    "SEED_MAX",
    "LockedError",
    "RunLock",
    "atomic_write_text",
    "check_output_file",
    "check_seed",
    "check_writable_dir",
    "pid_alive",
    "publish",
    "recover",
    "replace_dir",
    "replacing",
    "restore_dir",
]

#: Largest accepted seed: numpy's legacy seeding and many samplers take 32-bit seeds.
SEED_MAX = 2**32 - 1


# ----------------------------------------------------------------------------- checks
def check_seed(seed: object, flag: str = "--seed") -> int:
    """``seed`` as an int in ``[0, SEED_MAX]``; otherwise a ``ValueError`` stating the range."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{flag} must be an integer from 0 to {SEED_MAX} (2**32 - 1), got {seed!r}")
    return seed


def _probe_write(directory: Path) -> None:
    """Create and remove a file in ``directory`` (``os.access`` ignores read-only mounts and ACLs)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".write-test-")
    os.close(fd)
    os.unlink(name)


def check_writable_dir(path: str | os.PathLike, what: str, *, create: bool = False) -> Path:
    """``path`` is (or, with ``create``, can become) a writable directory; else ``ValueError``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a directory; move the file or choose another directory")
    if not path.exists():
        if not create:
            raise ValueError(f"{what} {path} does not exist; create it (mkdir -p {path}) or choose another directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{what} {path} cannot be created ({exc.strerror}); choose a writable location") from None
    try:
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        _probe_write(path)
    except OSError as exc:
        raise ValueError(
            f"{what} {path} is not writable ({exc.strerror}); fix its permissions (chmod u+w {path}) or choose another directory"
        ) from None
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` can be written as a file: it is not a directory, and its folder exists as a writable
    directory or can be created in one (nothing is created here)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file path such as {path / 'probe.csv'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: {folder} is a file, not a directory; choose a path in a directory")
    check_writable_dir(folder, f"{flag} {path}: folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path} exists and is read-only; remove it or choose another path")
    return path


# ----------------------------------------------------------------------------- single files
def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system syncs directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode() -> int:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` in one
    ``os.replace`` (after fsync), when it fails it is removed and ``path`` is untouched."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp makes 0600; results get the usual 0644
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` all at once or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


# ----------------------------------------------------------------------------- directories
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _aside(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.old-*"))


def restore_dir(target: str | os.PathLike) -> None:
    """Undo a :func:`replace_dir` that was killed between its two renames (no atomic exchange)."""
    target = Path(target)
    left = _aside(target)
    if left and not target.exists():
        os.rename(left[-1], target)
        left = left[:-1]
    for path in left:
        shutil.rmtree(path, ignore_errors=True)


def replace_dir(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the fully written directory ``staging`` at ``target`` (a sibling) and delete what was there.

    Where the OS can exchange two paths atomically it does; elsewhere the old directory is renamed
    aside first and :func:`restore_dir` puts it back if a crash comes between the two renames.
    """
    staging, target = Path(staging), Path(target)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # now holds the old contents
    else:
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.rename(target, aside)
        os.rename(staging, target)
        shutil.rmtree(aside)
    _fsync_dir(target.parent)


# ----------------------------------------------------------------------------- lock
def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (signal 0 probes without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LockedError(RuntimeError):
    """Another process holds the :class:`RunLock`."""


class RunLock:
    """Exclusive lock on ``path`` (a file holding the holder's PID), failing at once when held.

    ``flock`` is released by the kernel when the holder exits for any reason, so a killed run
    never blocks the next one; the file is removed on a normal release.
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path, self.what, self.fd = Path(path), what, None

    def __enter__(self) -> "RunLock":
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise LockedError(
                    f"another {self.what} is running (PID {holder}, lock {self.path}); wait for it to finish "
                    f"or stop it (kill {holder}), then run again"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file that the previous holder unlinked while we waited
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------- many files at once
def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _rollback(entries: list[dict]) -> None:
    for entry in reversed(entries):
        dst, old = Path(entry["dst"]), Path(entry["old"])
        if entry["new"]:
            Path(entry["new"]).unlink(missing_ok=True)
        if old.exists():
            if dst.exists() and os.path.samefile(
                old, dst
            ):  # not replaced yet; rename() of a hard link to itself is a no-op
                old.unlink()
            else:
                os.replace(old, dst)
        elif not entry["existed"]:
            dst.unlink(missing_ok=True)


def _finish(entries: list[dict]) -> None:
    for entry in entries:
        Path(entry["old"]).unlink(missing_ok=True)
        if entry["new"]:
            Path(entry["new"]).unlink(missing_ok=True)


def publish(
    changes: Sequence[tuple[Path, Path | None]],
    journal: str | os.PathLike,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Apply ``(destination, source)`` pairs all-or-nothing: ``source`` is copied over
    ``destination``, ``None`` deletes it.

    Sources are first copied beside their destinations (the slow part; a failure there changes
    nothing); then each destination is backed up (hard link) and replaced; ``before_commit`` may
    raise to cancel; a journal marked ``committed`` is the commit point. Any exception before it
    rolls every file back; a kill before it is rolled back by :func:`recover` at the next start.
    """
    journal = Path(journal)
    token = secrets.token_hex(4)
    entries = [
        {
            "dst": str(dst),
            "new": str(dst.with_name(f".{dst.name}.new-{token}")) if src is not None else None,
            "old": str(dst.with_name(f".{dst.name}.old-{token}")),
            "existed": dst.exists(),
        }
        for dst, src in changes
    ]
    atomic_write_text(journal, json.dumps({"state": "started", "entries": entries}, indent=1))
    try:
        for entry, (_, src) in zip(entries, changes):
            if src is not None:
                shutil.copyfile(src, entry["new"])
                os.chmod(entry["new"], _file_mode())
                with open(entry["new"], "rb+") as fh:
                    os.fsync(fh.fileno())
        for entry in entries:
            dst = Path(entry["dst"])
            if entry["existed"]:
                _link_or_copy(dst, Path(entry["old"]))
            if entry["new"]:
                os.replace(entry["new"], dst)
            elif entry["existed"]:
                dst.unlink()
        for folder in {Path(e["dst"]).parent for e in entries}:
            _fsync_dir(folder)
        if before_commit is not None:
            before_commit()
        atomic_write_text(journal, json.dumps({"state": "committed", "entries": entries}, indent=1))
    except BaseException:
        _rollback(entries)
        journal.unlink(missing_ok=True)
        raise
    _finish(entries)
    journal.unlink(missing_ok=True)


def recover(journal: str | os.PathLike) -> str | None:
    """Finish (committed) or undo (not committed) a :func:`publish` that was killed; return what was done."""
    journal = Path(journal)
    if not journal.exists():
        return None
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        entries, state = record["entries"], record["state"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{journal} (the journal of an interrupted publish) is unreadable ({exc}); check the files it "
            "covers (git status), then delete it"
        ) from None
    if state == "committed":
        _finish(entries)
        done = f"completed an interrupted publish of {len(entries)} files"
    else:
        _rollback(entries)
        done = f"rolled back an interrupted publish of {len(entries)} files"
    journal.unlink(missing_ok=True)
    return done
