"""The project explains itself: code and notebooks cite the paper or docs/ARCHITECTURE.md, never a
file outside the repository, and every cited ARCHITECTURE.md section exists."""

from __future__ import annotations

import re

from dlmpaper import paths

SOURCES = ["dlmpaper", "tests", "notebooks", "benchmarks", "docs"]
SUFFIXES = {".py", ".ipynb", ".md", ".cfg", ".toml", ".yml"}
THIS_FILE = "test_self_contained.py"  # it names the patterns it forbids


def _texts():
    for folder in SOURCES:
        for path in sorted((paths.ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and ".ipynb_checkpoints" not in path.parts and path.name != THIS_FILE:
                yield path, path.read_text(encoding="utf-8")
    yield paths.ROOT / "README.md", (paths.ROOT / "README.md").read_text(encoding="utf-8")


def _hits(pattern: str) -> list[str]:
    return [f"{p.relative_to(paths.ROOT)}: {m.group(0)}" for p, text in _texts() for m in re.finditer(pattern, text)]


def test_nothing_cites_a_file_outside_the_repository():
    hits = _hits(r"DESIGN\.md|\.\./shared/")
    assert not hits, hits


def test_cited_architecture_sections_exist():
    doc = (paths.ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in doc.splitlines() if line.startswith("#")}
    cited = re.compile(r'ARCHITECTURE\.md,?\s+"([^"]+)"')
    missing = [
        f"{p.relative_to(paths.ROOT)}: {m.group(1)!r}"
        for p, text in _texts()
        for m in cited.finditer(text.replace("\\n", " "))
        if m.group(1).rstrip(".") not in headings
    ]
    assert not missing, missing


def test_one_paper_section_numbering():
    """§2 taxonomy, §3 the five properties, §4 issues (i) probe and (ii) marginal trap, §5 remedies."""
    hits = _hits(r"Sec\. ?\d|§4-5|§5,? issue|§4\.\d")
    assert not hits, hits


def test_readme_module_map_names_every_module():
    readme = (paths.ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("dlmpaper/   ") : readme.index("data/       ")]
    package = paths.ROOT / "dlmpaper"
    modules = sorted(
        {p.stem for p in package.rglob("*.py") if p.stem not in ("__init__", "__main__")}
        | {p.parent.name for p in package.rglob("__init__.py") if p.parent != package}
    )
    missing = [m for m in modules if not re.search(rf"\b{m}\b", block)]
    assert not missing, f"README's module map lacks {missing}"
