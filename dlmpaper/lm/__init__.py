"""Models: the public face notebooks and users import (docs/ARCHITECTURE.md "Layout").

One adapter over every diffusion LM (:class:`DiffusionLM`, typed for analyses as the
:class:`MaskedDiffusionLM` protocol), its registry and loader (:func:`load_model`), hub access
(:mod:`dlmpaper.lm.hub`), the remote-code fixes (:mod:`dlmpaper.lm.remote_code`), the embedded
model's chat layout (:mod:`dlmpaper.lm.embedded`), the other families
(:mod:`dlmpaper.lm.families`), the toy-language models (:mod:`dlmpaper.lm.toymodels`) and the
provenance records every notebook writes into ``figures/MANIFEST.json``
(:mod:`dlmpaper.provenance`).

Names resolve on first use, so ``import dlmpaper.lm.hub`` stays light (no torch) for the runner.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "dlmpaper.lm.models": (
        "DiffusionLM",
        "ModelSpec",
        "REGISTRY",
        "UnknownModelError",
        "ModelNotFoundError",
        "RemoteCodeRequiredError",
        "TokenIdError",
        "load_model",
        "registry_table",
        "spec_for",
    ),
    "dlmpaper.lm.protocol": ("MaskedDiffusionLM",),
    "dlmpaper.lm.hub": ("HubAccessError", "hub_available", "offline"),
    "dlmpaper.lm.families": ("load_family_model",),
    "dlmpaper.lm.toymodels": (
        "TOY_LANGUAGES",
        "family_model_dir",
        "load_schedule_model",
        "load_toy_family_model",
        "load_toy_model",
        "model_marginal_fn",
        "toy_language",
        "toy_languages",
    ),
    "dlmpaper.provenance": (
        "ManifestError",
        "checkpoint_digest",
        "family_model_record",
        "model_record",
        "record_model",
        "schedule_model_record",
        "toy_model_record",
    ),
}
_OWNER = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_OWNER)


def __getattr__(name: str):
    if name not in _OWNER:
        raise AttributeError(f"module 'dlmpaper.lm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_OWNER[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
