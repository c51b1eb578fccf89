"""environment.yml (for conda users) and pyproject.toml must pin the same packages to the same versions."""

import re
import tomllib

import yaml

from dlmpaper import paths


def _pins(requirements):
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def project_pins():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return _pins(requirements)


def environment_pins():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section), env


def test_every_requirement_is_an_exact_pin():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    loose = [r for r in project["dependencies"] if "==" not in r]
    assert not loose, f"pyproject.toml has unpinned requirements: {loose}"


def test_environment_yml_matches_pyproject():
    env_pins, env = environment_pins()
    assert env_pins == project_pins(), "environment.yml and pyproject.toml disagree: update both together"
    assert "python=3.11" in env["dependencies"]


def test_torch_is_the_pinned_cpu_wheel_version():
    assert project_pins()["torch"] == "2.13.0"
