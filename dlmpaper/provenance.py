"""Where a model's weights came from: checksums of shipped checkpoints and the model entries of the
figures manifest.

The one home of: the sha256 of a file (:func:`sha256_file`); a checkpoint folder's
``MANIFEST.sha256`` (:func:`write_manifest`, :func:`verify_manifest`, :func:`checkpoint_digest`);
and the entry each notebook records for ``figures/MANIFEST.json`` (:func:`model_record`,
:func:`toy_model_record`, :func:`family_model_record`, written by :func:`record_model`), so that the
manifest names the exact weights behind each figure (docs/ARCHITECTURE.md "Data flow"). Light on
purpose (standard library only): ``dlmpaper.reproduce`` imports it before any kernel starts.
Notebooks reach it through :mod:`dlmpaper.lm`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from dlmpaper import paths

__all__ = [
    "MANIFEST_NAME",
    "ManifestError",
    "checkpoint_digest",
    "family_model_record",
    "local_weights",
    "model_record",
    "record_model",
    "schedule_model_record",
    "sha256_file",
    "toy_model_record",
    "verify_manifest",
    "write_manifest",
]

#: The checksum file of every shipped checkpoint folder (``sha256sum`` format).
MANIFEST_NAME = "MANIFEST.sha256"
#: What a failed check tells the user when the caller names no retrain command.
RESTORE_FIX = "restore it from the repository (git) or retrain it with the command in its README.md"


#: ``dlmpaper.reproduce`` runs each notebook with these set: the notebook's name and the scratch
#: figures folder, under which :func:`record_model` writes ``.models/<notebook>.json``.
NOTEBOOK_ENV = "DLMPAPER_NOTEBOOK"
FIGURES_ENV = "DLMPAPER_FIGURES"
MODELS_SUBDIR = ".models"


class ManifestError(RuntimeError):
    """A checkpoint file does not match its ``MANIFEST.sha256`` line."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: str | os.PathLike) -> None:
    """Write ``directory/MANIFEST.sha256``: one ``<sha256>  <file>`` line per file (what
    :func:`verify_manifest` checks at load time; used for every checkpoint we ship)."""
    directory = Path(directory)
    lines = [
        f"{sha256_file(path)}  {path.name}\n"
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST_NAME
    ]
    (directory / MANIFEST_NAME).write_text("".join(lines))


def verify_manifest(directory: str | os.PathLike, *, fix: str = RESTORE_FIX) -> list[str]:
    """Check every file listed in ``directory/MANIFEST.sha256`` against its sha256.

    Returns the verified file names (empty when there is no manifest). A changed,
    truncated or missing file raises :class:`ManifestError` naming the file and
    ``fix`` (by default :data:`RESTORE_FIX`; each loader names its own retrain command).
    """
    directory = Path(directory)
    manifest = directory / MANIFEST_NAME
    if not manifest.is_file():
        return []
    checked: list[str] = []
    for lineno, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            raise ManifestError(f"{manifest}: line {lineno} is not '<sha256>  <filename>': {raw!r}. Fix: {fix}.")
        expected, fname = parts[0].lower(), parts[1].strip().lstrip("*")
        target = directory / fname
        if Path(fname).is_absolute() or ".." in Path(fname).parts:
            raise ManifestError(f"{manifest}: line {lineno} names a path outside the directory: {fname!r}")
        if not target.is_file():
            raise ManifestError(f"{target} is listed in {MANIFEST_NAME} but missing. Fix: {fix}.")
        actual = sha256_file(target)
        if actual != expected:
            raise ManifestError(
                f"{target} does not match {MANIFEST_NAME} (file changed or truncated: sha256 "
                f"{actual[:12]}..., expected {expected[:12]}...). Fix: {fix}."
            )
        checked.append(fname)
    return checked


def local_weights(location: str | Path | None) -> Path | None:
    """``model.safetensors`` of a local checkpoint folder, as given or relative to the repository
    root (the shipped ``data/embedded_model``, whatever the working directory); None for a hub id."""
    if not location:
        return None
    for base in (Path(str(location)), paths.ROOT / str(location)):
        if (base / "model.safetensors").is_file():
            return base / "model.safetensors"
    return None


def model_record(model, uses: str) -> dict:
    """The figures-manifest entry of a loaded ``DiffusionLM`` (or any object with ``name``,
    ``hub_id``, ``revision``, ``dtype``): ``revision`` is the sha256 of a local checkpoint's
    weights (:func:`local_weights`), else the adapter's hub revision; ``uses`` says what the
    notebook reads from the model."""
    hub_id = getattr(model, "hub_id", None)
    weights = local_weights(hub_id)
    return {
        "model_id": str(getattr(model, "name", hub_id)),
        "hub_id": None if hub_id is None else str(hub_id),
        "revision": sha256_file(weights) if weights is not None else getattr(model, "revision", None),
        "dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
        "uses": uses,
    }


def checkpoint_digest(directory: str | Path) -> str:
    """The sha256 of ``model.safetensors`` as listed in the folder's ``MANIFEST.sha256`` (the file
    itself is checked against it when the folder is loaded)."""
    for line in (Path(directory) / MANIFEST_NAME).read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == "model.safetensors":
            return digest
    raise ValueError(f"{directory}/{MANIFEST_NAME} does not list model.safetensors")


def _weights_record(model_id: str, weights: Path, uses: str, retrain: str) -> dict:
    """A manifest entry for one float32 ``model.safetensors`` (``revision`` = its sha256)."""
    if not weights.is_file():
        raise FileNotFoundError(f"no model weights at {weights}; train them with `{retrain}`")
    return {"model_id": model_id, "hub_id": None, "revision": sha256_file(weights), "dtype": "float32", "uses": uses}


def toy_model_record(name: str, uses: str, root: str | Path | None = None) -> dict:
    """The manifest entry of a shipped toy-language model (notebooks 02, 04, 05): ``model_id``
    ``toy/<language>``, ``revision`` = sha256 of its ``model.safetensors``."""
    from dlmpaper.lm import toymodels

    lang = toymodels.toy_language(name)
    weights = Path(root if root is not None else toymodels.TOY_MODELS) / lang.name / "model.safetensors"
    return _weights_record(f"toy/{lang.name}", weights, uses, toymodels.TOY_RETRAIN_COMMAND)


def family_model_record(directory: str | Path, uses: str | None = None) -> dict:
    """The manifest entry of a shipped family model folder (``data/family_models/<name>``; notebooks
    02 and 05): ``model_id`` ``dlmpaper/<name>``, ``revision`` its :func:`checkpoint_digest`, and
    ``uses`` when given."""
    directory = Path(directory)
    record = {"model_id": f"dlmpaper/{directory.name}", "revision": checkpoint_digest(directory)}
    return record if uses is None else {**record, "uses": uses}


def record_model(info: dict) -> None:
    """Record the model a notebook used, for ``figures/MANIFEST.json`` (call it in notebooks 00-05).

    ``info`` is a JSON-serialisable dict with at least ``"model_id"`` (hub id or local
    name) and ideally ``"revision"`` (commit hash or checkpoint sha256), e.g.
    ``record_model({"model_id": "GSAI-ML/LLaDA-8B-Instruct", "revision": "08b83a6...", "dtype": "bfloat16"})``.
    Calls accumulate per notebook, keyed by ``model_id``. Writes
    ``$DLMPAPER_FIGURES/.models/<notebook>.json`` when run by ``dlmpaper.reproduce`` (which sets
    ``DLMPAPER_NOTEBOOK``); outside a reproduction run it only validates ``info``.
    Returns None, so a notebook cell ending with this call shows no (volatile) path.
    """
    if not isinstance(info, dict) or not isinstance(info.get("model_id"), str) or not info["model_id"]:
        raise ValueError(
            "record_model needs a dict with a non-empty 'model_id', e.g. {'model_id': ..., 'revision': ...}"
        )
    notebook = os.environ.get(NOTEBOOK_ENV)
    figures = os.environ.get(FIGURES_ENV)
    json.dumps(info)  # fail early, inside the notebook, on values that are not JSON
    if not notebook or not figures:
        return None
    path = Path(figures) / MODELS_SUBDIR / f"{notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    models = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    models[info["model_id"]] = info
    path.write_text(json.dumps(models, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return None


def schedule_model_record(name: str, schedule: str, seed: int, uses: str, root: str | Path | None = None) -> dict:
    """The manifest entry of a toy masked model trained under a masking schedule (notebook 05,
    section 3): ``model_id`` ``toy/<language>/<schedule>/seed<seed>``, ``revision`` = sha256 of its
    ``model.safetensors`` under ``data/schedule_models/<schedule>/seed<seed>/<language>``."""
    from dlmpaper.lm import toymodels

    lang = toymodels.toy_language(name)
    base = Path(root if root is not None else paths.SCHEDULE_MODELS)
    weights = base / schedule / f"seed{seed}" / lang.name / "model.safetensors"
    retrain = f"{toymodels.TOY_RETRAIN_COMMAND} --schedules {schedule}"
    return _weights_record(f"toy/{lang.name}/{schedule}/seed{seed}", weights, uses, retrain)
