"""The ``paper`` profile trusts remote code for its own pinned model only (docs/ARCHITECTURE.md "Two scales, one code path").

Notebooks 00, 03 and 04 pass their ``model`` parameter to :func:`dlmpaper.profiles.load_profile_model`.
"""

from __future__ import annotations

import shutil

import pytest

from dlmpaper.lm.models import RemoteCodeRequiredError
from dlmpaper.profiles import get_profile, is_profile_model, load_profile_model


@pytest.fixture
def booby_trapped(tmp_path, llada_remote_dir):
    """A LLaDA-like folder whose modelling code writes a marker file when it is imported."""
    folder = shutil.copytree(llada_remote_dir, tmp_path / "someone_elses_model")
    marker = tmp_path / "code_ran"
    modeling = folder / "modeling_llada.py"
    modeling.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + modeling.read_text())
    return folder, marker


def test_model_override_does_not_inherit_the_profiles_trust(booby_trapped):
    folder, marker = booby_trapped
    with pytest.raises(RemoteCodeRequiredError, match="trust_remote_code"):
        load_profile_model(get_profile("paper"), "cpu", str(folder))
    assert not marker.exists(), "the folder's Python code ran"


def test_explicit_trust_for_the_override_loads_it(booby_trapped):
    folder, marker = booby_trapped
    lm = load_profile_model(get_profile("paper"), "cpu", str(folder), trust_remote_code=True)
    assert marker.exists() and lm.mask_id == 126336


def test_the_profiles_own_pinned_model_is_trusted(hub_cache, llada_remote_dir):
    hub_cache("GSAI-ML/LLaDA-8B-Instruct", llada_remote_dir)
    for name in (None, "GSAI-ML/LLaDA-8B-Instruct"):
        lm = load_profile_model(get_profile("paper"), "cpu", name)
        assert lm.hub_id == "GSAI-ML/LLaDA-8B-Instruct"


def test_other_registered_models_and_lookalike_folders_are_not_the_profiles(tmp_path, monkeypatch):
    paper = get_profile("paper")
    assert not is_profile_model(paper, "llada-8b-base")
    assert not is_profile_model(paper, "Dream-org/Dream-v0-Instruct-7B")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "GSAI-ML" / "LLaDA-8B-Instruct").mkdir(parents=True)  # a local folder named like the hub id
    assert not is_profile_model(paper, "GSAI-ML/LLaDA-8B-Instruct")
