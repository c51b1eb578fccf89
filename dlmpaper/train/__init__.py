"""Training: LLaDA's objective, one resumable loop for every family and corpus, model cards, the
command line (``python -m dlmpaper.train``; ``python -m dlmpaper.train.toy`` for the toy languages).

Nothing outside this package imports it (docs/ARCHITECTURE.md "Layout"): notebooks and analyses read
the checkpoints it ships through :mod:`dlmpaper.lm`.
"""
