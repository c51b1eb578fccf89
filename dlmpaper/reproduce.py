"""Regenerate every figure: run the numbered notebooks with papermill.

``python -m dlmpaper.reproduce`` (also ``make figures``) executes
``notebooks/NN_*.ipynb`` (00_models ... 05_remedies) with the parameters
``profile``, ``device`` and ``seed`` injected after each notebook's cell tagged
``parameters``. The notebooks are independent: on ``cpu`` they run side by side, one
one-thread kernel per core (``--jobs``, :func:`default_jobs`; longest first by the last
run's timings), on a GPU one at a time. Every kernel computes on one thread, so the
results are the same bytes whatever ``--jobs`` is.

Failure safety: notebooks run in a scratch directory and write their figures to a
scratch figures dir (``DLMPAPER_FIGURES`` is set for the kernel, which
:data:`dlmpaper.paths.FIGURES` reads). Only when *all* selected notebooks succeeded
are the new figures, the manifest and the executed, cleaned notebooks published, all
or nothing (:func:`dlmpaper.guards.publish`: staged beside their destinations, swapped,
rolled back on any error; a journal in ``figures/`` lets the next start undo a publish
that was killed). A failed run leaves both untouched, names the notebook and cell,
exits 1 and keeps the scratch dir for inspection.

Before any kernel starts: ``figures/`` and ``notebooks/`` must be writable, and a lock
(``figures/.reproduce.lock``, holding the PID) admits one run at a time. SIGINT (Ctrl-C)
and SIGTERM abort the run: exit 130 / 143, nothing published, scratch removed. The scratch
folder of a run killed outright (SIGKILL) is removed by the next run.

Outputs besides the figures:

* ``figures/MANIFEST.json`` - deterministic (identical bytes on a rerun of unchanged
  code): per figure its notebook, parameters, sha256 and size; per notebook its
  parameters, figures and models; run-level profile, device, seed, package versions
  and models. No wall-clock times, so it can be committed.
* ``figures/TIMINGS.json`` - seconds per notebook and in total. Changes every run,
  hence a separate file that should be git-ignored.

Notebooks report which model they used with :func:`record_model`, which writes
``$DLMPAPER_FIGURES/.models/<notebook>.json``; the manifest collects these.

Executed notebooks are cleaned by :func:`clean_notebook` (no timestamps, durations,
environment or paths; execution counts 1..n; fixed kernelspec) so a rerun with the
same parameters on unchanged code leaves ``git status`` clean. Papermill's injected
``# Parameters`` cell is folded back into the tagged ``parameters`` cell, so the
committed notebook has one parameters cell: the one a JupyterLab user edits (an
injected cell below it would silently reset those edits) and the one nbval runs.

Kernels run over IPC sockets in the scratch folder where the OS has them (not TCP on
localhost, which ipykernel warns about for every notebook), with :func:`numerics_env`:
one thread and, on x86-64, the AVX2 code paths of PyTorch, MKL and oneDNN, so a CPU with
more cores or AVX-512 computes the same float32 numbers (README "Reproducibility").

Profile ``paper`` (LLaDA-8B-Instruct on LIMA) first checks hub access and a GPU and
exits 2 within seconds, before any kernel starts, if either is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from dlmpaper import guards
from dlmpaper.lm.hub import hub_available, offline
from dlmpaper.provenance import FIGURES_ENV, MODELS_SUBDIR, NOTEBOOK_ENV, sha256_file

__all__ = [
    "PROFILES",
    "DEVICES",
    "PACKAGES",
    "PAPER_MODEL_ID",
    "PAPER_DATASET_ID",
    "FIGURES_MANIFEST_NAME",
    "TIMINGS_NAME",
    "INJECTED_CELL_ID",
    "PARAMETERS_TAG",
    "numerics_env",
    "ReproduceError",
    "PreflightError",
    "NotebookFailed",
    "PublishFailed",
    "RunAborted",
    "RunResult",
    "discover_notebooks",
    "clean_notebook",
    "preflight",
    "default_jobs",
    "run",
    "main",
]

PROFILES = ("embedded", "paper")
DEVICES = ("cpu", "cuda", "auto")
#: Packages whose versions go into the manifest.
PACKAGES = ("torch", "transformers", "datasets", "numpy", "pandas", "matplotlib", "seaborn", "dlmpaper")
PAPER_MODEL_ID = "GSAI-ML/LLaDA-8B-Instruct"
PAPER_DATASET_ID = "GAIR/lima"
FIGURES_MANIFEST_NAME = "MANIFEST.json"
TIMINGS_NAME = "TIMINGS.json"
#: Tag of papermill's injected-parameters cell (also its fixed id while a run is staged).
INJECTED_CELL_ID = "injected-parameters"
#: In the figures dir: the lock admitting one run at a time, and the journal of a publish in progress.
LOCK_NAME = ".reproduce.lock"
JOURNAL_NAME = ".publish-journal.json"
#: Scratch folders are ``<tmp>/dlmpaper-reproduce-*``; ``RUNNING`` (the PID) marks one in use.
SCRATCH_PREFIX = "dlmpaper-reproduce-"
RUNNING_MARKER = "RUNNING"
#: Tag of the one cell of every notebook that holds its parameters (papermill injects after it).
PARAMETERS_TAG = "parameters"
#: Environment variable naming the notebook being executed (set for each kernel).
FIGURE_SUFFIXES = (".pdf", ".png")

#: Kernel environment that pins CPU numerics, on every machine: one thread, so no reduction is
#: split by the core count ...
_THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: ... and on x86-64 the AVX2 kernels (AVX-512 ones sum in another order: measured, README), numpy's
#: OpenBLAS included (it otherwise picks its kernels by CPU model: Zen, Haswell, SkylakeX).
_X86_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}

_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_ERROR_MARKER_TAG = "papermill-error-cell-tag"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_NOTEBOOK_RE = re.compile(r"^(\d+)_.+\.ipynb$")


class ReproduceError(RuntimeError):
    """A reproduction run could not complete; the message says what to do."""

    exit_code = 1


class PreflightError(ReproduceError):
    """Requirements of the chosen profile/device are missing (checked before any kernel starts)."""

    exit_code = 2


class NotebookFailed(ReproduceError):
    """A notebook raised; nothing was written to ``figures/`` or ``notebooks/``."""

    exit_code = 1

    def __init__(
        self, notebook: str, cell_index: int | None, source: str, ename: str, evalue: str, scratch: Path | None
    ):
        self.notebook = notebook
        self.cell_index = cell_index
        self.source = source
        self.ename = ename
        self.evalue = evalue
        self.scratch = scratch
        head = "\n".join("    " + line for line in source.splitlines()[:6]) or "    <no source>"
        where = f"cell {cell_index}" if cell_index is not None else "an unknown cell"
        msg = (
            f"notebook {notebook} failed at {where} (0-based index in the notebook file):\n{head}\n"
            f"{ename}: {evalue}\n"
            "figures/ and notebooks/ were left untouched."
        )
        if scratch is not None:
            msg += f"\nThe executed notebooks of this run are kept in {scratch}"
        super().__init__(msg)


class PublishFailed(ReproduceError):
    """Writing the results failed; every published file was rolled back."""

    exit_code = 1


class RunAborted(ReproduceError):
    """SIGINT or SIGTERM stopped the run; nothing was published and the scratch folder is gone."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name}: nothing was published; "
            "figures/ and notebooks/ are as they were"
        )


@dataclass
class RunResult:
    """What :func:`run` did: notebooks run (in order), figures written, seconds per notebook, and
    the wall-clock seconds of executing them all (less than their sum when ``jobs > 1``)."""

    notebooks: list[str]
    figures: dict[str, Path]
    seconds: dict[str, float]
    manifest: Path
    timings: Path
    executed: dict[str, Path] = field(default_factory=dict)
    wall_seconds: float = 0.0


# ----------------------------------------------------------------------------- notebooks


def discover_notebooks(notebooks_dir: str | os.PathLike, select: Sequence[str] | None = None) -> list[Path]:
    """Return ``NN_*.ipynb`` in ``notebooks_dir`` sorted by their number.

    ``select`` keeps only notebooks whose number (``"03"`` or ``"3"``) or stem
    (``"03_positional_probe"``) is listed; an unknown entry raises PreflightError.
    """
    found = []
    for path in Path(notebooks_dir).glob("*.ipynb"):
        m = _NOTEBOOK_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path.name, path))
    found.sort()
    paths = [p for _, _, p in found]
    if not paths:
        raise PreflightError(f"no notebooks named NN_*.ipynb in {notebooks_dir}; pass the notebooks folder")
    if not select:
        return paths
    wanted: list[Path] = []
    for item in select:
        item = item.strip()
        hits = [
            p
            for p in paths
            if item in (p.stem, p.name) or (item.isdigit() and int(item) == int(p.name.split("_", 1)[0]))
        ]
        if not hits:
            names = ", ".join(p.stem for p in paths)
            raise PreflightError(f"no notebook matches {item!r}; choose from {names}")
        wanted.extend(h for h in hits if h not in wanted)
    return [p for p in paths if p in wanted]


def clean_notebook(nb: Any, *, keep_stderr: bool = False) -> Any:
    """Strip volatile metadata so executing unchanged code twice gives identical files.

    Returns a cleaned deep copy of the ``nbformat`` notebook ``nb``:

    * notebook metadata: ``papermill`` reduced to its ``parameters``; ``widgets`` dropped;
      ``kernelspec`` fixed to the standard ``python3`` spec; ``language_info.version`` dropped;
    * cells: papermill's and nbclient's per-cell metadata (``papermill``, ``execution``,
      ``ExecuteTime``) and empty ``tags`` dropped; papermill error-marker cells removed;
      the injected-parameters cell folded into the ``parameters`` cell
      (:func:`fold_injected_parameters`); missing or duplicate ids become ``"cell-<index>"``;
    * code cells: execution counts renumbered 1..n in cell order (outputs follow);
      consecutive stream outputs of one name merged; ``stderr`` streams (progress bars,
      warnings with local paths) dropped unless ``keep_stderr``; widget outputs dropped.
    """
    import nbformat

    nb = copy.deepcopy(nb)
    meta = nb.metadata
    params = meta.get("papermill", {}).get("parameters")
    meta.pop("papermill", None)
    if params is not None:
        meta["papermill"] = nbformat.from_dict({"parameters": params})
    meta.pop("widgets", None)
    meta["kernelspec"] = nbformat.from_dict(dict(_KERNELSPEC))
    if "language_info" in meta:
        meta["language_info"].pop("version", None)

    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if _ERROR_MARKER_TAG in tags:
            continue
        cells.append(cell)
    nb.cells = cells
    fold_injected_parameters(nb)

    seen: set[str] = set()
    count = 0
    for index, cell in enumerate(nb.cells):
        cmeta = cell.setdefault("metadata", nbformat.from_dict({}))
        for key in ("papermill", "execution", "ExecuteTime"):
            cmeta.pop(key, None)
        if "tags" in cmeta and not cmeta["tags"]:
            del cmeta["tags"]
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = f"cell-{index}"
            cell["id"] = cid
        seen.add(cid)
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None:
            count += 1
            cell["execution_count"] = count
        cell["outputs"] = _clean_outputs(cell.get("outputs", []), cell.get("execution_count"), keep_stderr)
    nb.nbformat = 4
    nb.nbformat_minor = max(int(nb.get("nbformat_minor", 5)), 5)  # cell ids need 4.5
    return nb


def fold_injected_parameters(nb: Any) -> None:
    """Move papermill's injected parameter values into the tagged ``parameters`` cell, in place.

    The values are those papermill recorded in ``metadata.papermill.parameters`` (else the
    injected cell's literals). In the ``parameters`` cell, a name's value is left byte for
    byte when it already equals the injected one (a default run changes no source),
    replaced in place when it is a plain ``name = literal`` line that no later line of the
    cell reads, and otherwise set by a line appended to the cell (papermill's own
    semantics: the injected cell runs after the parameters cell). The injected cell is
    then removed; without a ``parameters`` cell it becomes that cell.
    """
    injected = [c for c in nb.cells if INJECTED_CELL_ID in c.get("metadata", {}).get("tags", [])]
    if not injected:
        return
    target = next((c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if target is None:
        first = injected[0]
        first.metadata["tags"] = [PARAMETERS_TAG]
        first["id"] = PARAMETERS_TAG
        injected = injected[1:]
        target = first
    values: dict[str, Any] = {}
    recorded = nb.metadata.get("papermill", {}).get("parameters")
    for cell in injected:
        values.update(_literal_assignments(cell.source))
    if recorded is not None:
        values.update(recorded)
    target.source = _set_parameters(target.source, values)
    nb.cells = [c for c in nb.cells if not any(c is i for i in injected)]


def _literal_assignments(source: str) -> dict[str, Any]:
    """``name = literal`` statements of ``source`` (others are skipped)."""
    import ast

    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def _same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _set_parameters(source: str, values: dict[str, Any]) -> str:
    """``source`` (a parameters cell) with each name in ``values`` set to its value (see above)."""
    import ast

    from papermill.translators import PythonTranslator

    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    last: dict[str, ast.Assign] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            last[node.targets[0].id] = node
    edits: list[tuple[ast.Assign, str]] = []
    appended: list[str] = []
    for name, value in values.items():
        text = PythonTranslator.translate(value)
        node = last.get(name)
        if node is not None:
            try:
                if _same_value(ast.literal_eval(node.value), value):
                    continue
            except ValueError:
                pass
            later = [n for n in tree.body if n.lineno > node.end_lineno]
            read_later = any(isinstance(n, ast.Name) and n.id == name for s in later for n in ast.walk(s))
            if not read_later:
                edits.append((node.value, text))
                continue
        appended.append(f"{name} = {text}")
    # Replace value spans bottom-up (ast offsets are UTF-8 byte columns).
    for value_node, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        first, last_line = value_node.lineno - 1, value_node.end_lineno - 1
        head = lines[first].encode("utf-8")[: value_node.col_offset].decode("utf-8")
        tail = lines[last_line].encode("utf-8")[value_node.end_col_offset :].decode("utf-8")
        lines[first : last_line + 1] = [head + text + tail]
    out = "".join(lines)
    if appended:
        out = out.rstrip("\n") + "\n" + "\n".join(appended)
    return out


def _clean_outputs(outputs: list, execution_count: int | None, keep_stderr: bool) -> list:
    cleaned: list = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") == "stderr" and not keep_stderr:
                continue
            if cleaned and cleaned[-1].get("output_type") == "stream" and cleaned[-1].get("name") == out.get("name"):
                cleaned[-1]["text"] = _text(cleaned[-1]["text"]) + _text(out["text"])
                continue
            out["text"] = _text(out["text"])
        elif kind in ("display_data", "execute_result"):
            if _WIDGET_MIME in out.get("data", {}):
                continue
            out.pop("transient", None)
            if kind == "execute_result":
                out["execution_count"] = execution_count
        cleaned.append(out)
    return cleaned


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _restore_cell_ids(executed: Any, source: Any) -> None:
    """Give executed cells their source cells' ids (papermill may upgrade a 4.4 notebook with random ids)."""
    src = [c for c in source.cells if INJECTED_CELL_ID not in c.get("metadata", {}).get("tags", [])]
    exe = [c for c in executed.cells if INJECTED_CELL_ID not in c.get("metadata", {}).get("tags", [])]
    if len(src) != len(exe):
        return
    for i, (s, e) in enumerate(zip(src, exe)):
        e["id"] = s.get("id") or f"cell-{i}"


def _write_notebook(nb: Any, path: Path) -> None:
    import nbformat

    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        nbformat.write(nb, fh)  # sorted keys, indent 1, trailing newline


# ----------------------------------------------------------------------------- models side files


# ----------------------------------------------------------------------------- preflight


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def preflight(profile: str, device: str | None) -> str:
    """Check what ``profile``/``device`` need before any kernel starts; return the concrete device.

    ``device=None`` means ``cpu`` for ``embedded`` and ``cuda`` for ``paper``; ``auto``
    picks ``cuda`` when present. Raises :class:`PreflightError` (exit 2) naming what is
    missing: hub access for the paper profile, a GPU for ``cuda``.
    """
    if profile not in PROFILES:
        raise PreflightError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if device is None:
        device = "cuda" if profile == "paper" else "cpu"
    if device not in DEVICES:
        raise PreflightError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    missing = []
    if profile == "paper" and not hub_available():
        if offline():
            why = "HF_HUB_OFFLINE is set, unset it"
        else:
            why = "huggingface.co did not answer within 3 s, check the network"
        missing.append(
            f"Hugging Face hub access (model {PAPER_MODEL_ID} and the gated dataset {PAPER_DATASET_ID}): "
            f"{why}; accept the LIMA terms on its hub page and run `hf auth login` "
            "(formerly `huggingface-cli login`)"
        )
    if device in ("cuda", "auto") or profile == "paper":
        has_cuda = _cuda_available()
        if device == "auto":
            device = "cuda" if has_cuda else "cpu"
        if device == "cuda" and not has_cuda:
            missing.append(
                "a CUDA GPU (torch.cuda.is_available() is False); use --profile embedded --device cpu instead"
            )
        if profile == "paper" and device != "cuda" and not has_cuda:
            missing.append("a CUDA GPU for the paper profile (LLaDA-8B in bf16 needs ~17 GB of GPU memory)")
    if missing:
        raise PreflightError(f"profile {profile!r} cannot run here; missing:\n  - " + "\n  - ".join(missing))
    return device


# ----------------------------------------------------------------------------- run


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_dir(scratch: Path) -> Path:
    """A private ``python3`` kernelspec running this interpreter (put first on JUPYTER_PATH)."""
    spec_dir = scratch / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(_KERNELSPEC, argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return scratch / "jupyter"


#: Longest path the OS accepts for a Unix socket (sun_path is 108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


def _kernel_config(scratch: Path, name: str = "kernel") -> Any:
    """Kernel-manager settings for the notebooks' kernels: IPC sockets (files private to this run,
    removed with each kernel) instead of TCP on localhost, for which ipykernel prints "Kernel is
    running over TCP without encryption" at every start. The sockets go in ``scratch``, or where
    that path is too long for a socket, in a short folder of the system temp dir (removed at
    exit); TCP stays where there are no Unix sockets (Windows). Each kernel running at the same
    time needs its own ``name``: jupyter_client numbers a kernel's sockets ``<name>-1`` ... by
    looking which files exist, which two kernels starting together would both find free."""
    import atexit

    from traitlets.config import Config

    config = Config()
    if os.name != "posix":
        return config
    folder = scratch / "ipc"
    if len(str(folder / name)) + 8 > _MAX_SOCKET_PATH:  # + "-<port>"
        folder = Path(tempfile.mkdtemp(prefix="dlmpaper-ipc-"))
        atexit.register(shutil.rmtree, folder, True)
    if len(str(folder / name)) + 8 > _MAX_SOCKET_PATH:
        return config
    folder.mkdir(parents=True, exist_ok=True)
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(folder / name)
    return config


def numerics_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the notebooks' kernels that fixes their CPU numerics (values already in
    ``environ``, default ``os.environ``, win: a user's setting is kept). Used by :func:`run` and,
    for nbval's kernels, by the repository's ``conftest.py``."""
    import platform

    environ = os.environ if environ is None else environ
    wanted = dict(_THREADS_ENV)
    if platform.machine().lower() in ("x86_64", "amd64"):
        wanted.update(_X86_ENV)
    return {key: environ.get(key, value) for key, value in wanted.items()}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    guards.atomic_write_text(path, json.dumps(data, sort_keys=True, indent=2) + "\n")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _source_cell_index(source_nb: Any, err: Any) -> int | None:
    """Map papermill's cell index (counted with the injected cell) to the index in the notebook file."""
    index = getattr(err, "cell_index", None)
    if index is None:
        return None
    tags = [c.get("metadata", {}).get("tags", []) for c in source_nb.cells]
    had_injected = any(INJECTED_CELL_ID in t for t in tags)
    if not had_injected:
        params = next((i for i, t in enumerate(tags) if "parameters" in t), -1)
        if index > params:  # the injected cell sits at params + 1 (or 0 without a parameters cell)
            index -= 1
    source = getattr(err, "source", None)
    if 0 <= index < len(source_nb.cells) and (source is None or source_nb.cells[index].source == source):
        return index
    hits = [i for i, c in enumerate(source_nb.cells) if source is not None and c.source == source]
    return hits[0] if len(hits) == 1 else getattr(err, "cell_index", None)


def run(
    *,
    profile: str = "embedded",
    device: str | None = None,
    seed: int = 0,
    notebooks: Sequence[str] | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    figures_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    inplace: bool = True,
    kernel: str = "python3",
    scratch_dir: str | os.PathLike | None = None,
    progress: bool = True,
    start_timeout: int = 120,
    device_map: str | None = None,
    max_memory: str | None = None,
    jobs: int | None = None,
) -> RunResult:
    """Execute the notebooks and, only if all succeed, publish figures and notebooks.

    ``notebooks_dir``/``figures_dir`` default to :data:`dlmpaper.paths.NOTEBOOKS` /
    :data:`dlmpaper.paths.FIGURES`. Executed notebooks replace the originals when
    ``inplace`` (default), go to ``output_dir`` when given, and are discarded with
    ``inplace=False`` and no ``output_dir``. ``scratch_dir`` is where the temporary run
    folder is made (default: the system temp dir); it is removed after success or an
    interruption and kept after a failure. ``device_map`` / ``max_memory`` (e.g. ``"auto"``, ``"0=40GiB,cpu=100GiB"``) shard
    or offload the profile's model in every notebook (:func:`dlmpaper.profiles.load_profile_model`).
    ``jobs``: notebooks executed at once, each in its own one-thread kernel (default
    :func:`default_jobs`: one per core on ``cpu``, one on a GPU); ``jobs=1`` runs them in notebook
    order and stops at the first failure before the next starts. The results do not depend on it.
    Raises :class:`PreflightError`, :class:`NotebookFailed`, :class:`PublishFailed` or :class:`RunAborted`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PreflightError(f"seed must be an int, got {seed!r}")
    try:
        guards.check_seed(seed)
    except ValueError as exc:
        raise PreflightError(str(exc)) from None
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise PreflightError(f"jobs must be a positive int (notebooks executed at once), got {jobs!r}")
    device = preflight(profile, device)  # before the heavy imports: fails within seconds
    sharding = _sharding_env(device_map, max_memory)

    from dlmpaper import paths

    # absolute: papermill changes the working directory while a notebook runs
    nb_dir = Path(notebooks_dir if notebooks_dir is not None else paths.NOTEBOOKS).absolute()
    fig_dir = Path(figures_dir if figures_dir is not None else paths.FIGURES).absolute()
    selected = discover_notebooks(nb_dir, notebooks)
    target_dir = Path(output_dir).absolute() if output_dir is not None else (nb_dir if inplace else None)
    try:  # before any kernel starts: a folder we cannot write would waste the whole run
        guards.check_writable_dir(fig_dir, "figures folder", create=True)
        if target_dir is not None:
            guards.check_writable_dir(target_dir, "notebooks folder", create=output_dir is not None)
    except ValueError as exc:
        raise PreflightError(str(exc)) from None
    scratch_parent = Path(scratch_dir if scratch_dir is not None else tempfile.gettempdir()).absolute()
    full_run = not notebooks
    parameters = {"profile": profile, "device": device, "seed": seed}
    jobs = min(jobs, len(selected)) if jobs is not None else default_jobs(device, len(selected))

    with _AbortOnSignals() as signals, _run_lock(fig_dir):
        try:  # a publish that a kill interrupted: finish or undo it first
            done = guards.recover(fig_dir / JOURNAL_NAME)
        except ValueError as exc:
            raise PreflightError(str(exc)) from None
        if done and progress:
            print(f"{fig_dir}: {done}", file=sys.stderr)
        _remove_stale_scratch(scratch_parent)
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_parent))
        (scratch / RUNNING_MARKER).write_text(f"{os.getpid()}\n")
        try:
            started = time.perf_counter()
            produced, seconds, executed = _execute_all(
                selected,
                nb_dir,
                scratch,
                parameters,
                kernel,
                progress,
                start_timeout,
                sharding,
                jobs,
                _start_order(selected, fig_dir, jobs),
            )
            timing = {
                "notebooks": seconds,
                "total": round(sum(seconds.values()), 3),
                "wall": round(time.perf_counter() - started, 3),
                "jobs": jobs,
            }
            manifest = _build_manifest(fig_dir, scratch / "figures", produced, selected, parameters, full_run)
            final_nbs = {stem: target_dir / staged.name for stem, staged in executed.items()} if target_dir else {}
            staged_nbs = {final_nbs[stem]: staged for stem, staged in executed.items() if stem in final_nbs}
            with signals.deferred():  # a signal now cancels the publish (rolled back) before its commit point
                try:
                    published = _publish(
                        fig_dir, scratch / "figures", produced, manifest, timing, full_run, staged_nbs, signals.check
                    )
                except OSError as exc:
                    raise PublishFailed(
                        f"publishing failed ({exc}); figures/ and notebooks/ were rolled back to "
                        f"their previous state. The executed notebooks are kept in {scratch}"
                    ) from exc
                shutil.rmtree(scratch, ignore_errors=True)
        except (NotebookFailed, PublishFailed):
            (scratch / RUNNING_MARKER).unlink(missing_ok=True)  # kept for inspection, not stale
            raise
        except BaseException:
            signals.deferring = True  # a second Ctrl-C must not interrupt the clean-up
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return RunResult(
        notebooks=[p.stem for p in selected],
        figures=published,
        seconds=seconds,
        manifest=fig_dir / FIGURES_MANIFEST_NAME,
        timings=fig_dir / TIMINGS_NAME,
        executed=final_nbs,
        wall_seconds=timing["wall"],
    )


@contextlib.contextmanager
def _run_lock(fig_dir: Path) -> Iterator[None]:
    """One run at a time per figures folder (:class:`dlmpaper.guards.RunLock`); a held lock is a PreflightError."""
    lock = guards.RunLock(fig_dir / LOCK_NAME, "python -m dlmpaper.reproduce")
    try:
        lock.__enter__()
    except guards.LockedError as exc:
        raise PreflightError(str(exc)) from None
    try:
        yield
    finally:
        lock.__exit__()


def default_jobs(device: str, n_notebooks: int) -> int:
    """How many notebooks :func:`run` executes at once by default: on ``cpu`` one per core this
    process may use (each kernel computes on one thread, :func:`numerics_env`, so the numbers do not
    depend on this), on a GPU one (every notebook loads the profile's model onto the same device)."""
    if device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_notebooks))


def _start_order(selected: list[Path], fig_dir: Path, jobs: int) -> list[Path]:
    """The order notebooks start in. One at a time: notebook order. Side by side: longest first by the
    last run's ``TIMINGS.json`` (a notebook without a timing counts as longest), ties and a first run
    in reverse notebook order (the later notebooks are the heavier ones), so the longest does not start last."""
    if jobs == 1:
        return list(selected)
    last = _read_json(fig_dir / TIMINGS_NAME).get("notebooks", {})

    def seconds(path: Path) -> float:
        value = last.get(path.stem) if isinstance(last, dict) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("inf")

    ranked = sorted(enumerate(selected), key=lambda item: (-seconds(item[1]), -item[0]))
    return [path for _, path in ranked]


def _execute_all(
    selected: list[Path],
    nb_dir: Path,
    scratch: Path,
    parameters: dict,
    kernel: str,
    progress: bool,
    start_timeout: int,
    sharding: dict[str, str],
    jobs: int = 1,
    start_order: list[Path] | None = None,
) -> tuple[dict[str, str], dict[str, float], dict[str, Path]]:
    """Execute ``selected`` inside ``scratch``, up to ``jobs`` at once (each its own kernel, started in
    ``start_order``); return (figure -> notebook, seconds, staged notebooks), in notebook order.

    Each kernel writes its figures to its own folder (``scratch/by-notebook/<stem>``), moved into
    ``scratch/figures`` when the notebook succeeds, so a figure two notebooks write is caught
    (``DuplicateFigure``) whatever ran first. The first failure stops the run: no further notebook
    starts and the running kernels are killed."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    stage_figs = scratch / "figures"
    stage_nbs = scratch / "notebooks"
    stage_figs.mkdir()
    stage_nbs.mkdir()
    kernel_env = {"PYTHONHASHSEED": "0", **numerics_env(), **sharding}
    parent_env = {}
    if kernel == "python3":  # read here, by the kernelspec lookup, not by the kernels
        parent_env["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [str(_kernel_dir(scratch)), os.environ.get("JUPYTER_PATH")])
        )
    index = {path: i for i, path in enumerate(selected)}

    def execute(path: Path) -> tuple[Any, float]:  # in a worker thread
        figs = scratch / "by-notebook" / path.stem
        figs.mkdir(parents=True)
        env = {**kernel_env, FIGURES_ENV: str(figs), NOTEBOOK_ENV: path.stem}
        start = time.perf_counter()
        result = pm.execute_notebook(
            input_path=str(path),
            output_path=str(stage_nbs / path.name),
            parameters=dict(parameters),
            kernel_name=kernel,
            language="python",
            cwd=None,  # the kernel's working directory is set by its manager: os.chdir is per process
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
            start_timeout=start_timeout,
            record_timing=False,
            coalesce_streams=True,
            kernel_manager_class=_kernel_manager(env, nb_dir),
            config=_kernel_config(scratch, f"k{index[path]}"),
        )
        return result, round(time.perf_counter() - start, 3)

    produced: dict[str, str] = {}  # figure file name -> notebook stem
    seconds: dict[str, float] = {}
    executed: dict[str, Path] = {}
    bar = tqdm(total=len(selected), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)

    def done(path: Path, outcome: tuple[Any, float] | None, err: BaseException | None) -> None:
        stem = path.stem
        if isinstance(err, PapermillExecutionError):
            source_nb = nbformat.read(path, as_version=4)
            raise NotebookFailed(
                path.name, _source_cell_index(source_nb, err), err.source, err.ename, err.evalue, scratch
            ) from err
        if err is not None:  # kernel died, missing kernel, timeout ...
            if isinstance(err, RunAborted):
                raise err
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise NotebookFailed(path.name, None, "", type(err).__name__, first_line, scratch) from err
        result, seconds[stem] = outcome
        for figure in sorted((scratch / "by-notebook" / stem).rglob("*")):
            if not figure.is_file():
                continue
            name = figure.relative_to(scratch / "by-notebook" / stem)
            if figure.suffix in FIGURE_SUFFIXES and len(name.parts) == 1:
                if name.name in produced:
                    clash = (
                        f"figure {name.name} was already written by {produced[name.name]}; "
                        "give each figure a unique name"
                    )
                    raise NotebookFailed(path.name, None, "", "DuplicateFigure", clash, scratch)
                produced[name.name] = stem
            (stage_figs / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(figure), stage_figs / name)
        _restore_cell_ids(result, nbformat.read(path, as_version=4))
        out_path = stage_nbs / path.name
        _write_notebook(clean_notebook(result), out_path)
        executed[stem] = out_path
        bar.update(1)
        if progress:
            tqdm.write(f"{path.name}: ok in {seconds[stem]:.1f} s", file=sys.stderr)

    try:
        with _environ(**parent_env):
            _run_side_by_side(start_order or selected, execute, jobs, done)
    finally:
        bar.close()
    order = {path.stem: i for path, i in index.items()}
    seconds = dict(sorted(seconds.items(), key=lambda kv: order[kv[0]]))
    executed = dict(sorted(executed.items(), key=lambda kv: order[kv[0]]))
    return produced, seconds, executed


# ----------------------------------------------------------------------------- interruption


class _AbortOnSignals:
    """SIGINT and SIGTERM abort the run by raising :class:`RunAborted` in the main thread.

    nbclient would install its own handlers and swallow the signal; notebooks therefore run in a
    worker thread (:func:`_run_side_by_side`), where it cannot. Inside :meth:`deferred` a signal
    is only recorded and :meth:`check` raises it at a safe point.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self.deferring = False
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> "_AbortOnSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending is None:
            self.pending = signum
        if not self.deferring:
            raise RunAborted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def check(self) -> None:
        if self.pending is not None:
            raise RunAborted(self.pending)


_KERNELS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _kernel_manager(env: dict[str, str], cwd: Path) -> type:
    """jupyter_client's kernel manager for one notebook: its kernel starts in ``cwd`` with ``env`` on
    top of this process's environment (set per kernel, not through ``os.environ`` or ``os.chdir``,
    which notebooks running side by side would share), and each instance is remembered so an
    abort can kill its kernel."""
    from jupyter_client.manager import AsyncKernelManager

    class NotebookKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw["env"] = {**kw.get("env", os.environ), **env}
            kw.setdefault("cwd", str(cwd))
            _KERNELS.add(self)
            return await super().start_kernel(**kw)

    return NotebookKernelManager


def _kill_kernels() -> None:
    for manager in list(_KERNELS):
        process = getattr(getattr(manager, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()


def _run_side_by_side(items: Sequence[Any], work: Any, jobs: int, done: Any) -> None:
    """``work(item)`` for each item in up to ``jobs`` worker threads, started in order; ``done(item,
    result, error)`` in this thread as each finishes. If ``done`` raises (a failed notebook) or a
    signal does (:class:`RunAborted`), nothing more starts, the running kernels are killed, and the
    exception propagates once the workers have finished (at most 30 s). Workers run papermill in
    threads because nbclient would otherwise install its own signal handlers and swallow the signal;
    this thread waits on a queue, where signals reach it."""
    finished: queue.Queue = queue.Queue()
    pending, running = list(items), 0

    def worker(item: Any) -> None:
        try:
            finished.put((item, work(item), None))
        except BaseException as exc:  # handed to the calling thread
            finished.put((item, None, exc))

    try:
        while pending or running:
            while pending and running < jobs:
                threading.Thread(target=worker, args=(pending.pop(0),), name="dlmpaper-notebook", daemon=True).start()
                running += 1
            while True:  # not Queue.get() without a timeout: a signal must reach this thread
                try:
                    item, result, error = finished.get(timeout=0.1)
                    break
                except queue.Empty:
                    continue
            running -= 1
            done(item, result, error)
    except BaseException:
        _kill_kernels()
        deadline = time.monotonic() + 30  # papermill restores its state and closes its channels
        while running and time.monotonic() < deadline:
            try:
                finished.get(timeout=0.1)
                running -= 1
            except queue.Empty:
                pass
        raise


def _remove_stale_scratch(parent: Path) -> list[Path]:
    """Delete scratch folders of killed runs (their ``RUNNING`` marker names a process that is gone)."""
    removed = []
    for folder in sorted(parent.glob(f"{SCRATCH_PREFIX}*")):
        try:
            pid = int((folder / RUNNING_MARKER).read_text().split()[0])
            mine = not hasattr(os, "getuid") or folder.stat().st_uid == os.getuid()
        except (OSError, ValueError, IndexError):
            continue
        if mine and pid != os.getpid() and not guards.pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _build_manifest(
    fig_dir: Path, stage_figs: Path, produced: dict[str, str], selected: list[Path], parameters: dict, full_run: bool
) -> dict:
    stems = [p.stem for p in selected]
    old = {} if full_run else _read_json(fig_dir / FIGURES_MANIFEST_NAME)
    nb_entries = {k: v for k, v in old.get("notebooks", {}).items() if k not in stems}
    fig_entries = {k: v for k, v in old.get("figures", {}).items() if v.get("notebook") not in stems}
    for stem in stems:
        models = _read_json(stage_figs / MODELS_SUBDIR / f"{stem}.json")
        nb_entries[stem] = {
            "parameters": dict(parameters),
            "figures": sorted(n for n, s in produced.items() if s == stem),
            "models": models,
        }
    for name, stem in produced.items():
        path = stage_figs / name
        fig_entries[name] = {
            "notebook": stem,
            "parameters": dict(parameters),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
    models: dict[str, Any] = {}
    for entry in nb_entries.values():
        models.update(entry.get("models", {}))
    return {
        "format": 1,
        "run": {**parameters, "versions": _versions(), "models": models},
        "notebooks": nb_entries,
        "figures": fig_entries,
    }


def _publish(
    fig_dir: Path,
    stage_figs: Path,
    produced: dict[str, str],
    manifest: dict,
    timing: dict,
    full_run: bool,
    notebooks: dict[Path, Path] | None = None,
    before_commit: Any = None,
) -> dict[str, Path]:
    """Publish the staged figures, MANIFEST.json, TIMINGS.json and executed notebooks
    (``notebooks``: destination -> staged file) and drop stale figures, all-or-nothing
    (:func:`dlmpaper.guards.publish`; its journal sits in ``fig_dir``)."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    old = _read_json(fig_dir / FIGURES_MANIFEST_NAME)
    changes: list[tuple[Path, Path | None]] = [(fig_dir / name, stage_figs / name) for name in sorted(produced)]
    # A figure that an earlier run recorded for a notebook run now (or for any notebook, on a
    # full run) and that this run no longer makes is stale: remove it so figures/ matches the manifest.
    for name, entry in old.get("figures", {}).items():
        if name in manifest["figures"] or "/" in name or "\\" in name or not name.endswith(FIGURE_SUFFIXES):
            continue
        if (full_run or entry.get("notebook") in timing["notebooks"]) and (fig_dir / name).exists():
            changes.append((fig_dir / name, None))
    with tempfile.TemporaryDirectory(prefix="dlmpaper-publish-") as tmp:
        _write_json(Path(tmp) / FIGURES_MANIFEST_NAME, manifest)
        _write_json(Path(tmp) / TIMINGS_NAME, timing)
        changes += [
            (fig_dir / FIGURES_MANIFEST_NAME, Path(tmp) / FIGURES_MANIFEST_NAME),
            (fig_dir / TIMINGS_NAME, Path(tmp) / TIMINGS_NAME),
        ]
        changes += sorted((notebooks or {}).items())
        guards.publish(changes, fig_dir / JOURNAL_NAME, before_commit)
    return {name: fig_dir / name for name in sorted(produced)}


# ----------------------------------------------------------------------------- CLI


def _sharding_env(device_map: str | None, max_memory: str | None) -> dict[str, str]:
    """Kernel environment for :func:`dlmpaper.profiles.load_profile_model`'s sharding options (checked here)."""
    if device_map is None and max_memory is None:
        return {}  # without importing torch: a locked or misconfigured run must fail within a second
    from dlmpaper.lm.models import parse_max_memory
    from dlmpaper.profiles import DEVICE_MAP_ENV, MAX_MEMORY_ENV

    if max_memory is not None and device_map is None:
        raise PreflightError("--max-memory needs --device-map (e.g. --device-map auto)")
    try:
        parse_max_memory(max_memory)
    except ValueError as exc:
        raise PreflightError(str(exc)) from exc
    out = {DEVICE_MAP_ENV: device_map} if device_map else {}
    if max_memory:
        out[MAX_MEMORY_ENV] = max_memory
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dlmpaper.reproduce",
        description="Run notebooks/NN_*.ipynb in order with papermill and regenerate figures/ (failure-safe).",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="embedded",
        help="embedded: shipped small model, CPU, offline (default); paper: LLaDA-8B-Instruct on LIMA, GPU + hub",
    )
    p.add_argument("--device", choices=DEVICES, default=None, help="default: cpu for embedded, cuda for paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device-map",
        default=None,
        help="accelerate device map for the profile's model, e.g. auto (shard over GPUs / offload to CPU)",
    )
    p.add_argument("--max-memory", default=None, help="with --device-map: memory per device, e.g. 0=40GiB,cpu=100GiB")
    p.add_argument(
        "--notebooks",
        nargs="+",
        default=None,
        metavar="NN",
        help="subset to run, by number or stem, e.g. --notebooks 03 04 (comma lists work too)",
    )
    p.add_argument("--no-inplace", action="store_true", help="do not write executed notebooks over notebooks/")
    p.add_argument("--output-dir", type=Path, default=None, help="write executed notebooks here instead of notebooks/")
    p.add_argument("--notebooks-dir", type=Path, default=None, help="default: dlmpaper.paths.NOTEBOOKS")
    p.add_argument("--figures-dir", type=Path, default=None, help="default: dlmpaper.paths.FIGURES")
    p.add_argument(
        "--scratch-dir",
        type=Path,
        default=None,
        help="where the temporary run folder is made (default: system temp); kept after a failure",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="notebooks executed at once (default: one per core on cpu, 1 on a GPU; results do not depend on it)",
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (python3 = this interpreter)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 notebook failed, 2 preflight)."""
    args = _parser().parse_args(argv)
    select = None
    if args.notebooks:
        select = [s for item in args.notebooks for s in item.split(",") if s.strip()]
    try:
        result = run(
            profile=args.profile,
            device=args.device,
            seed=args.seed,
            notebooks=select,
            notebooks_dir=args.notebooks_dir,
            figures_dir=args.figures_dir,
            output_dir=args.output_dir,
            inplace=not args.no_inplace,
            kernel=args.kernel,
            scratch_dir=args.scratch_dir,
            progress=not args.quiet,
            device_map=args.device_map,
            max_memory=args.max_memory,
            jobs=args.jobs,
        )
    except ReproduceError as err:
        print(f"dlmpaper.reproduce: error: {err}", file=sys.stderr)
        return err.exit_code
    total = sum(result.seconds.values())
    print(
        f"{len(result.notebooks)} notebooks, {len(result.figures)} figures in {result.wall_seconds:.1f} s "
        f"({total:.1f} s of notebook time); "
        f"manifest: {result.manifest}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
