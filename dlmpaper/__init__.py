"""dlmpaper: reproducible companion to *On the Role of Discreteness in Diffusion LLMs*
(Jin, Wang, Lin, Bing, Sun; arXiv 2512.22630).

The package holds all logic; the numbered notebooks in ``notebooks/`` only wire it
together and explain. See the README for the two commands that regenerate every
figure and run every test.
"""

import os

__version__ = "0.1.0"


def quiet_library_progress() -> None:
    """Turn off the progress bars of transformers ("Loading weights") and datasets for this process.

    The notebooks (00-04) call it in their first code cell: each of them says what it loaded
    right after loading it, and in JupyterLab those bars are stderr boxes (under papermill
    and nbval, output that differs between runs). Hub download bars (huggingface_hub) and
    dlmpaper's own ``progress=`` bars are left on. An explicit
    ``HF_DATASETS_DISABLE_PROGRESS_BARS=0`` in the environment is respected.
    """
    import sys

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS") == "0":
        return
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    else:  # read when datasets is imported; no need to import it here
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
