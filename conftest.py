"""Repository-wide pytest setup (applies to ``tests/`` and to nbval over ``notebooks/``).

The notebooks run by nbval must not rewrite the committed figures: their kernels inherit
``DLMPAPER_FIGURES`` pointing at a scratch folder, and run offline like everything in CI.
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Remote code loaded by the tests (tests/upstream_like) is imported from a scratch modules cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="dlmpaper-hf-modules-"))
os.environ.setdefault("DLMPAPER_FIGURES", tempfile.mkdtemp(prefix="dlmpaper-nbval-figures-"))
