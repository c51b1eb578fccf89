"""The pins: pyproject.toml (direct dependencies), environment.yml (conda users) and
requirements.lock (the whole environment, with hashes; what ``make`` installs) agree.
README "Reproducibility" says why: the figures' bytes depend on the exact stack."""

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from dlmpaper import paths

LOCK = paths.ROOT / "requirements.lock"
#: Installed by pip from pyproject.toml after the lock, never hashed (see the Makefile's LOCK_NO_EMIT).
UNLOCKED = {"torch"}
CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")


def _pins(requirements):
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _project():
    return tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]


def project_pins():
    project = _project()
    requirements = list(project["dependencies"]) + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    return _pins(requirements)


def environment_pins():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section), env


def lock_entries():
    """``[(name, version, marker or None, n_hashes)]`` of requirements.lock (uv's format)."""
    entries = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+?))?\s*\\?\n", block)
        if match:
            name, version, marker = match.groups()
            entries.append((canonicalize_name(name), version, marker, block.count("--hash=sha256:")))
    return entries


def test_every_requirement_is_an_exact_pin():
    loose = [r for r in _project()["dependencies"] if "==" not in r]
    assert not loose, f"pyproject.toml has unpinned requirements: {loose}"


def test_environment_yml_matches_pyproject():
    env_pins, env = environment_pins()
    assert env_pins == project_pins(), "environment.yml and pyproject.toml disagree: update both together"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert _project()["requires-python"] == ">=" + python.split("=", 1)[1], (
        "requires-python and environment.yml's python"
    )


def test_running_python_and_torch_are_what_pyproject_says():
    # accelerate 1.16, numpy 2.4 and pandas 3.1 need Python 3.11; tomllib (used here) is 3.11+ too.
    minimum = tuple(int(x) for x in _project()["requires-python"].removeprefix(">=").split("."))
    assert sys.version_info[:2] >= minimum, f"Python {sys.version_info[:2]} is below requires-python {minimum}"
    import torch

    assert torch.__version__.split("+")[0] == project_pins()["torch"], (
        f"installed torch {torch.__version__} is not the pinned {project_pins()['torch']}: rerun make (clean-venv first)"
    )


def test_lock_pins_every_direct_dependency_at_the_same_version():
    entries = lock_entries()
    assert len(entries) > 100, "requirements.lock looks truncated; regenerate it with make lock"
    lock = {}
    for name, version, marker, _ in entries:
        lock.setdefault(name, set()).add(version)
    for name, version in project_pins().items():
        if name in UNLOCKED:
            assert name not in lock, f"{name} must stay out of the lock (machine-dependent wheel)"
            continue
        assert lock.get(name) == {version}, (
            f"{name}: pyproject.toml pins {version}, requirements.lock has {lock.get(name)}"
        )
    for name in ("pillow", "matplotlib", "numpy", "setuptools"):  # PNG bytes, figures, the editable build
        assert name in lock, name


def test_lock_has_hashes_and_no_cuda_wheels():
    for name, version, _, hashes in lock_entries():
        assert hashes >= 1, f"{name}=={version} has no --hash in requirements.lock"
        assert not CUDA_ONLY.match(name), f"{name} is a CUDA-only dependency of PyPI's torch; add it to LOCK_NO_EMIT"
    assert "make lock" in LOCK.read_text().splitlines()[1]


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (paths.ROOT / ".venv").resolve(),
    reason="checks the venv that make builds from the lock",
)
def test_the_venv_is_the_lock():
    wrong = []
    for name, version, marker, _ in lock_entries():
        if marker and not Marker(marker).evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong.append(f"{name}: lock {version}, installed {installed}")
    assert not wrong, "the venv differs from requirements.lock (rm -rf .venv; make):\n" + "\n".join(wrong)
