"""Repository-wide pytest setup (applies to ``tests/`` and to nbval over ``notebooks/``).

The notebooks run by nbval must not rewrite the committed figures: their kernels inherit
``DLMPAPER_FIGURES`` pointing at a scratch folder, and run offline like everything in CI, with the
CPU numerics of ``make figures`` (:func:`dlmpaper.reproduce.numerics_env`).
"""

import os
import tempfile

from dlmpaper.reproduce import numerics_env

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Remote code loaded by the tests (tests/upstream_like) is imported from a scratch modules cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="dlmpaper-hf-modules-"))
os.environ.setdefault("DLMPAPER_FIGURES", tempfile.mkdtemp(prefix="dlmpaper-nbval-figures-"))
# The CPU numerics of make figures' kernels (one thread, AVX2 code paths), for nbval's kernels.
os.environ.update(numerics_env())
