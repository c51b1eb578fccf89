"""The package layout's import rules (docs/ARCHITECTURE.md "Layout"), checked on the import graph.

- nothing outside ``dlmpaper/train`` imports ``dlmpaper.train``;
- ``dlmpaper/core`` never imports ``dlmpaper.lm``, ``analyses``, ``figures`` or ``train`` at run
  time (a ``TYPE_CHECKING`` import of the model protocol is a type, not a dependency);
- ``dlmpaper/figures`` never loads a model (no import of ``dlmpaper.lm``, ``transformers`` or
  ``dlmpaper.train``);
- nothing imports ``dlmpaper.reproduce`` (the runner) except the CLI;
- no module imports a private (underscore) name of another module;
- notebooks import only ``dlmpaper`` itself, ``dlmpaper.profiles`` and the public faces of
  ``dlmpaper.lm``, ``dlmpaper.analyses`` and ``dlmpaper.figures``.
"""

from __future__ import annotations

import ast
import json

import pytest

from dlmpaper import paths

PACKAGE = paths.ROOT / "dlmpaper"


def _imports(tree: ast.AST, module: str) -> list[tuple[str, str | None, bool]]:
    """``(imported module, imported name or None, inside TYPE_CHECKING)`` for every import."""
    out = []
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            type_only.update(id(n) for n in ast.walk(node))
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, id(node) in type_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            out += [(base, a.name, id(node) in type_only) for a in node.names]
    return out


def _modules() -> dict[str, ast.AST]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(paths.ROOT).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


MODULES = _modules()


def _targets(name: str) -> list[tuple[str, str | None, bool]]:
    full = []
    for mod, attr, type_only in _imports(MODULES[name], name):
        if attr and f"{mod}.{attr}" in MODULES:  # `from dlmpaper.lm import toymodels`
            full.append((f"{mod}.{attr}", None, type_only))
        else:
            full.append((mod, attr, type_only))
    return full


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_import_rules(name):
    problems = []
    for mod, attr, type_only in _targets(name):
        if _under(mod, "dlmpaper.train") and not _under(name, "dlmpaper.train"):
            problems.append(f"imports the trainer {mod}")
        if (
            _under(name, "dlmpaper.core")
            and not type_only
            and any(_under(mod, f"dlmpaper.{p}") for p in ("lm", "analyses", "figures", "train"))
        ):
            problems.append(f"core imports {mod} at run time")
        if _under(name, "dlmpaper.figures") and (
            _under(mod, "dlmpaper.lm") or _under(mod, "dlmpaper.train") or _under(mod, "transformers")
        ):
            problems.append(f"a figures module loads models through {mod}")
        if _under(mod, "dlmpaper.reproduce") and name not in ("dlmpaper.cli",):
            problems.append("imports the runner dlmpaper.reproduce")
        if attr and attr.startswith("_") and _under(mod, "dlmpaper") and not attr.startswith("__"):
            problems.append(f"imports the private name {mod}.{attr}")
    assert not problems, f"{name}: " + "; ".join(problems)


ALLOWED_IN_NOTEBOOKS = ("dlmpaper", "dlmpaper.profiles", "dlmpaper.lm", "dlmpaper.analyses", "dlmpaper.figures")


@pytest.mark.parametrize("notebook", sorted(p.name for p in paths.NOTEBOOKS.glob("[0-9]*.ipynb")))
def test_notebooks_import_only_public_faces(notebook):
    nb = json.loads((paths.NOTEBOOKS / notebook).read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    bad = []
    for mod, attr, _ in _imports(ast.parse(code), "notebook"):
        if not _under(mod, "dlmpaper"):
            continue
        top = mod if mod in ALLOWED_IN_NOTEBOOKS else ".".join(mod.split(".")[:2])
        if top not in ALLOWED_IN_NOTEBOOKS or mod.count(".") > 2 or (attr or "").startswith("_"):
            bad.append(f"{mod}.{attr}" if attr else mod)
        if mod == "dlmpaper" and attr not in ("lm", "profiles", "quiet_library_progress", "analyses", "figures"):
            bad.append(f"dlmpaper.{attr}")
    assert not bad, f"{notebook} imports {bad}; use dlmpaper.lm / dlmpaper.analyses.* / dlmpaper.figures.*"


def test_the_rules_can_fail():
    """The checker itself: a made-up module that breaks each rule is caught."""
    MODULES["dlmpaper.figures.bad"] = ast.parse(
        "from dlmpaper.lm.models import load_model\nfrom dlmpaper.train import loop\nfrom dlmpaper.core.probe import _js_terms\n"
    )
    try:
        with pytest.raises(AssertionError) as info:
            test_import_rules("dlmpaper.figures.bad")
        text = str(info.value)
        assert "loads models" in text and "imports the trainer" in text and "private name" in text
    finally:
        del MODULES["dlmpaper.figures.bad"]
