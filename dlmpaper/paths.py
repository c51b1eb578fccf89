"""The one module that knows where things live (showyourwork habit: never ``../``).

Every other module and notebook asks here for paths, so the repository can be
moved, cloned or executed by papermill from any working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root: the folder that holds ``dlmpaper/``, ``notebooks/``, ``data/``.
ROOT = Path(os.environ.get("DLMPAPER_ROOT", Path(__file__).resolve().parent.parent))
PACKAGE = ROOT / "dlmpaper"
NOTEBOOKS = ROOT / "notebooks"
DATA = ROOT / "data"
#: Where every figure goes; ``DLMPAPER_FIGURES`` redirects it (tests use a temp dir).
FIGURES = Path(os.environ.get("DLMPAPER_FIGURES", ROOT / "figures"))
BENCHMARKS = ROOT / "benchmarks"

#: The shipped embedded model (Hugging Face directory: config, safetensors, tokenizer).
EMBEDDED_MODEL = DATA / "embedded_model"
#: Small masked LMs trained on the exact toy languages (notebook 04).
TOY_MODELS = DATA / "toy_models"
#: The autoregressive and continuous models of notebook 02 (WordNet and toy languages).
FAMILY_MODELS = DATA / "family_models"
#: Toy masked models trained under the masking schedules of notebook 05, section 3 (``<schedule>/<language>``).
SCHEDULE_MODELS = DATA / "schedule_models"
#: Shipped corpus built from WordNet 3.0 (see ``data/wordnet_corpus/README.md``).
CORPUS_DIR = DATA / "wordnet_corpus"
#: Shipped general instruction corpus (see ``data/general_corpus/README.md``).
GENERAL_CORPUS_DIR = DATA / "general_corpus"
#: Shipped prompt sets.
PROMPTS_DIR = DATA / "prompts"
#: The taxonomy of diffusion LMs (notebook 01).
TAXONOMY = DATA / "taxonomy.yaml"
#: Scratch space for training runs (git-ignored).
RUNS = ROOT / "runs"


def figure_path(name: str, suffix: str) -> Path:
    """Path of figure ``name`` with ``suffix`` (``"pdf"`` or ``"png"``) under :data:`FIGURES`."""
    return FIGURES / f"{name}.{suffix}"
