"""Shared pytest setup: offline hub, and tiny stand-in models built once per session.

Fixtures (session-scoped, built into a temp dir by ``tests/standins.py``):
``llada_like_dir``, ``dream_like_dir``, ``bert_mlm_dir`` (paths) and
``llada_like``, ``dream_like``, ``bert_mlm`` (loaded :class:`dlmpaper.lm.models.DiffusionLM`,
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

    from dlmpaper.lm.models import load_model

    return load_model(llada_like_dir, spec=LLADA_LIKE_SPEC)


@pytest.fixture(scope="session")
def dream_like(dream_like_dir):
    from standins import DREAM_LIKE_SPEC

    from dlmpaper.lm.models import load_model

    return load_model(dream_like_dir, spec=DREAM_LIKE_SPEC)


@pytest.fixture(scope="session")
def bert_mlm(bert_mlm_dir):
    from dlmpaper.lm.models import load_model

    return load_model(bert_mlm_dir)


# ------------------------------------------------------------------ remote-code stand-ins
@pytest.fixture(scope="session")
def llada_remote_dir(standins_root) -> Path:
    """Hub-like LLaDA directory with our LLaDA-interface remote code (tests/upstream_like)."""
    from standins import build_llada_remote

    return build_llada_remote(standins_root / "llada_remote")


@pytest.fixture(scope="session")
def dream_remote_dir(standins_root) -> Path:
    """Hub-like Dream directory with our Dream-interface remote code (tests/upstream_like)."""
    from standins import build_dream_remote

    return build_dream_remote(standins_root / "dream_remote")


@pytest.fixture(scope="session")
def llada_remote(llada_remote_dir):
    from dlmpaper.lm.models import load_model

    return load_model(llada_remote_dir, trust_remote_code=True, dtype="float32")


@pytest.fixture(scope="session")
def dream_remote(dream_remote_dir):
    from dlmpaper.lm.models import load_model

    return load_model(dream_remote_dir, trust_remote_code=True, dtype="float32")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache for this test; ``hub_cache(repo_id, directory)`` puts a
    directory into it as the cached snapshot of ``repo_id`` (the layout huggingface_hub reads offline)."""
    import shutil

    from huggingface_hub import constants

    root = tmp_path / "hf-hub-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root))

    def put(repo_id: str, directory: Path, revision: str = "0" * 40) -> Path:
        repo = root / ("models--" + repo_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(revision)
        snapshot = repo / "snapshots" / revision
        shutil.copytree(directory, snapshot)
        return snapshot

    return put
