"""The two scales of every notebook: ``embedded`` (any CPU, offline) and ``paper`` (LLaDA + LIMA).

Notebooks never branch on the profile beyond their ``parameters`` cell: they call
:func:`get_profile` and :func:`load_profile_model` / :func:`load_profile_prompts`.
(docs/ARCHITECTURE.md, "Two scales, one code path".)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dlmpaper import prompts as data
from dlmpaper.lm import models


@dataclass(frozen=True)
class Profile:
    """What a profile runs: model, prompt set, sizes and numeric type.

    ``trust_remote_code`` applies to the profile's own ``model`` (at ``revision`` when pinned) only,
    never to a model passed in its place (:func:`load_profile_model`).
    """

    name: str
    model: str
    prompts: str
    n_prompts: int
    dtype: str
    trust_remote_code: bool
    description: str
    revision: str | None = None


PROFILES = {
    "embedded": Profile(
        "embedded",
        "embedded",
        "embedded",
        100,
        "float32",
        False,
        "the project's own small masked diffusion LM and the shipped held-out WordNet prompts (any CPU, offline)",
    ),
    "paper": Profile(
        "paper",
        "llada-8b-instruct",
        "lima",
        100,
        "bfloat16",
        True,
        "GSAI-ML/LLaDA-8B-Instruct in bf16 and the first 100 prompts of GAIR/lima train (one GPU, hub access)",
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]


#: Environment variables through which ``python -m dlmpaper.reproduce --device-map/--max-memory``
#: reaches every notebook's model (accelerate sharding / offloading; README "The paper at full scale").
DEVICE_MAP_ENV = "DLMPAPER_DEVICE_MAP"
MAX_MEMORY_ENV = "DLMPAPER_MAX_MEMORY"


def is_profile_model(profile: Profile, model: str | None) -> bool:
    """Whether ``model`` (None, a registry name or a hub id) names the profile's own model; a local
    folder that happens to be called like the hub id does not."""
    if model is None or model == profile.model:
        return True
    own = models.REGISTRY.get(profile.model)
    return own is not None and own.hub_id is not None and model == own.hub_id and not Path(model).expanduser().exists()


def load_profile_model(
    profile: Profile, device: str = "cpu", model: str | None = None, trust_remote_code: bool = False
) -> models.DiffusionLM:
    """Load the profile's model (or ``model``, a registry name / hub id / local path, when given).

    The profile's ``trust_remote_code`` covers its own model only (by registry name or hub id, at
    the profile's pinned revision); any other ``model`` runs its repository's code only when the
    caller passes ``trust_remote_code=True`` for it after reviewing that code.
    ``DLMPAPER_DEVICE_MAP`` / ``DLMPAPER_MAX_MEMORY`` (set by ``reproduce --device-map/--max-memory``)
    shard or offload it with accelerate instead of placing it on ``device``.
    """
    own = is_profile_model(profile, model)
    name = model or profile.model
    device_map = os.environ.get(DEVICE_MAP_ENV) or None
    return models.load_model(
        name,
        device=device,
        dtype=profile.dtype,
        revision=profile.revision if own else None,
        trust_remote_code=trust_remote_code or (own and profile.trust_remote_code),
        device_map=device_map,
        max_memory=models.parse_max_memory(os.environ.get(MAX_MEMORY_ENV)) if device_map else None,
    )


def load_profile_prompts(profile: Profile, n: int | None = None, prompts: str | None = None) -> pd.DataFrame:
    """The profile's prompt set (first ``n``), or ``prompts`` (``lima``, ``embedded`` or a file) when given."""
    return data.load_prompts(prompts or profile.prompts, n or profile.n_prompts)
