"""Hugging Face Hub access, checked before anything large is loaded (docs/ARCHITECTURE.md
"Facts the code relies on": offline, transformers and datasets fail within a second; without
``HF_HUB_OFFLINE`` they wait 20-50 s on an unreachable hub first).

The one home of: whether we are offline (:func:`offline`), whether the hub answers
(:func:`hub_available`), whether a model or dataset is in the local caches (:func:`model_cached`,
:func:`dataset_cached`) and the error that names the fix (:class:`HubAccessError`). Used by
``dlmpaper.lm.models`` (hub ids), ``dlmpaper.prompts`` (LIMA) and ``dlmpaper.reproduce`` (the
``paper`` profile's preflight). Standard library at import time; ``huggingface_hub`` and
``datasets`` are imported only when a cache is looked up.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["HubAccessError", "dataset_cached", "hub_available", "model_cached", "offline"]

#: The truth values huggingface_hub accepts for its boolean environment variables.
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubAccessError(RuntimeError):
    """The Hugging Face Hub cannot be reached and the files are not cached."""


def offline(*, datasets: bool = False) -> bool:
    """Whether ``HF_HUB_OFFLINE`` (with ``datasets=True`` also ``HF_DATASETS_OFFLINE``) is set.

    The same rule as ``huggingface_hub.is_offline_mode()``, but read from the environment at call
    time: ``is_offline_mode`` reports the value at import, so a notebook that sets the variable
    after importing transformers would be told otherwise.
    """
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    return any(os.environ.get(name, "").strip().upper() in _TRUE for name in names)


def hub_available(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers within ``timeout`` seconds.

    :func:`offline` -> False at once. Otherwise one HEAD request to the hub endpoint
    (``HF_ENDPOINT`` or huggingface.co), bounded in wall time by a thread even when DNS hangs.
    """
    if offline():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    result = {"ok": False}

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
            result["ok"] = True
        except urllib.error.HTTPError:  # the server answered (e.g. 403/405): reachable
            result["ok"] = True
        except Exception:  # noqa: BLE001 - any network failure means "not available"
            result["ok"] = False

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result["ok"]) and not thread.is_alive()


def model_cached(hub_id: str, revision: str | None = None) -> bool:
    """Whether the hub cache holds ``config.json`` of ``hub_id`` at ``revision``."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - invalid ids, unreadable cache: treat as not cached
        return False
    return isinstance(hit, str)


def dataset_cached(dataset_id: str) -> bool:
    """Whether the ``datasets`` cache or the hub cache holds something for ``dataset_id``
    (``org/name``), at the locations those libraries resolve (``HF_HOME``, ``HF_DATASETS_CACHE``,
    ``HF_HUB_CACHE``)."""
    if "/" not in dataset_id:
        return False
    from datasets import config as datasets_config
    from huggingface_hub import constants

    org, name = dataset_id.split("/", 1)
    processed = Path(datasets_config.HF_DATASETS_CACHE) / f"{org}___{name}"
    hub_repo = Path(constants.HF_HUB_CACHE) / f"datasets--{org}--{name}"
    return processed.exists() or hub_repo.exists()
