"""Where a model's weights came from: file digests and the model entries of the figures manifest.

One home for the sha256 of a checkpoint file (:func:`sha256_file`), the digest listed in a shipped
folder's ``MANIFEST.sha256`` (:func:`checkpoint_digest`) and the entry every notebook passes to
``dlmpaper.reproduce.record_model`` (:func:`model_record`, :func:`toy_model_record`), so that
``figures/MANIFEST.json`` names the exact weights behind each figure (docs/ARCHITECTURE.md
"Data flow"). Used by notebooks 01-05, ``dlmpaper.models`` (manifest checks), ``dlmpaper.train``
(checkpoints) and ``dlmpaper.reproduce``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import paths

__all__ = ["MANIFEST_NAME", "checkpoint_digest", "local_weights", "model_record", "sha256_file", "toy_model_record"]

#: The checksum file of every shipped checkpoint folder (``sha256sum`` format).
MANIFEST_NAME = "MANIFEST.sha256"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def toy_model_record(name: str, uses: str, root: str | Path | None = None) -> dict:
    """The manifest entry of a shipped toy-language model (notebooks 02, 04, 05): ``model_id``
    ``toy/<language>``, ``revision`` = sha256 of its ``model.safetensors``."""
    from . import toymodels

    lang = toymodels.toy_language(name)
    weights = Path(root if root is not None else toymodels.TOY_MODELS) / lang.name / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no toy model weights at {weights}; train them with `{toymodels.RETRAIN_COMMAND}`")
    return {"model_id": f"toy/{lang.name}", "hub_id": None, "revision": sha256_file(weights), "dtype": "float32",
            "uses": uses}
