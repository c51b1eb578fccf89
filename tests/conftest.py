"""Shared pytest setup: offline hub, and tiny stand-in models built once per session.

Fixtures (session-scoped, built into a temp dir by ``tests/standins.py``):
``llada_like_dir``, ``dream_like_dir``, ``bert_mlm_dir`` (paths) and
``llada_like``, ``dream_like``, ``bert_mlm`` (loaded :class:`dlmpaper.models.DiffusionLM`,
float32 on CPU). Tests must not mutate the loaded adapters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Offline before anything imports transformers / datasets (they read these at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:  # `import standins` works whatever pytest's rootdir/import mode
    sys.path.insert(0, _TESTS)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def standins_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("standins")


@pytest.fixture(scope="session")
def llada_like_dir(standins_root) -> Path:
    from standins import build_llada_like

    return build_llada_like(standins_root / "llada_like")


@pytest.fixture(scope="session")
def dream_like_dir(standins_root) -> Path:
    from standins import build_dream_like

    return build_dream_like(standins_root / "dream_like")


@pytest.fixture(scope="session")
def bert_mlm_dir(standins_root) -> Path:
    from standins import build_bert_mlm

    return build_bert_mlm(standins_root / "bert_mlm")


@pytest.fixture(scope="session")
def llada_like(llada_like_dir):
    from standins import LLADA_LIKE_SPEC

    from dlmpaper.models import load_model

    return load_model(llada_like_dir, spec=LLADA_LIKE_SPEC)


@pytest.fixture(scope="session")
def dream_like(dream_like_dir):
    from standins import DREAM_LIKE_SPEC

    from dlmpaper.models import load_model

    return load_model(dream_like_dir, spec=DREAM_LIKE_SPEC)


@pytest.fixture(scope="session")
def bert_mlm(bert_mlm_dir):
    from dlmpaper.models import load_model

    return load_model(bert_mlm_dir)
