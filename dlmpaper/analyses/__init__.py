"""One module per notebook's measurements: models and prompts in, tidy pandas DataFrames out
(docs/ARCHITECTURE.md "Layout"). Every entry point that takes a model types it as
:class:`dlmpaper.lm.MaskedDiffusionLM`.
"""
