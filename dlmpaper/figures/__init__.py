"""Plots: one style and one ``save_figure`` (:mod:`dlmpaper.figures.style`) and one plotting module
per notebook. They draw tidy DataFrames and never load a model or compute a statistic
(docs/ARCHITECTURE.md "Layout").
"""
