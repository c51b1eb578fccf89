"""The taxonomy of diffusion language models and the paper's five-property judgements.

Paper: "On the Role of Discreteness in Diffusion LLMs" (arXiv 2512.22630): existing
diffusion LMs split into continuous (Gaussian on embeddings) and discrete (masking or
substitution over tokens) families, each meeting only part of five properties
(D1 smooth corruption, D2 tractable intermediate states, D3 iterative refinement,
L1 discreteness, L2 structural dependency). Autoregressive LMs are the reference.

The data live in ``data/taxonomy.yaml`` (:data:`dlmpaper.paths.TAXONOMY`); this module loads and
validates it (:func:`load_taxonomy`, :func:`property_matrix`; notebooks 01_taxonomy and
02_five_properties) and measures notebook 01's tables:

* :func:`methods_overview`, :func:`family_summary` - compact tables of the taxonomy;
* :func:`content_vocab`, :func:`forward_processes` - one sentence corrupted by the three forward
  processes of :mod:`dlmpaper.core.corruption` (``GaussianSchedule`` and ``standardize_embedding``
  are re-exported for the notebook);
* :func:`change_levels`, :func:`change_summary`, :func:`kept_fraction` - at which noise level each
  position stops showing its original token (properties D1/L1).
"""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from dlmpaper import paths
from dlmpaper.core.corruption import GaussianSchedule, corruption_grid, standardize_embedding

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "JUDGEMENT_FAMILIES",
    "PROPERTIES",
    "PROCESS_FAMILY",
    "PROCESS_ORDER",
    "STATES",
    "TaxonomyError",
    "change_levels",
    "change_summary",
    "check_grid",
    "check_methods",
    "content_vocab",
    "family_group",
    "family_label",
    "family_summary",
    "forward_processes",
    "kept_fraction",
    "load_taxonomy",
    "methods_overview",
    "property_matrix",
    # re-exported for notebook 01 (dlmpaper.core.corruption)
    "GaussianSchedule",
    "standardize_embedding",
]

#: Method families, in display order.
FAMILIES: tuple[str, ...] = ("continuous", "discrete-absorbing", "discrete-uniform", "autoregressive")
#: Display names for legends and tick labels.
FAMILY_LABELS: dict[str, str] = {
    "continuous": "Continuous",
    "discrete-absorbing": "Discrete (absorbing)",
    "discrete-uniform": "Discrete (uniform)",
    "autoregressive": "Autoregressive",
}
#: Families the property judgements are made for (the paper's two, plus the AR reference).
JUDGEMENT_FAMILIES: tuple[str, ...] = ("continuous", "discrete", "autoregressive")
#: The paper's five properties, in display order.
PROPERTIES: tuple[str, ...] = ("D1", "D2", "D3", "L1", "L2")
#: Allowed judgement values, from best to worst.
VALUES: tuple[str, ...] = ("yes", "partial", "no")
#: Allowed judgement sources and how they are shown.
SOURCES: dict[str, str] = {"paper": "paper (arXiv 2512.22630)", "ours": "our reading"}

#: Fields every method entry must carry (``authors`` is optional).
METHOD_FIELDS: tuple[str, ...] = (
    "name",
    "year",
    "arxiv",
    "family",
    "state_space",
    "corruption",
    "decoding",
    "revisable",
    "note",
)
_ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}$")
_FIRST_YEAR = 1990
_JUDGEMENT_KEYS = {"value", "source", "where", "reason"}


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the entry and the fix."""


def family_label(family: str) -> str:
    """Display name of a model family, e.g. ``"Discrete (absorbing)"``; raises ValueError naming the
    known families."""
    if family not in FAMILY_LABELS:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    return FAMILY_LABELS[family]


def family_group(family: str) -> str:
    """Map a method family to its judgement family (``discrete-*`` -> ``discrete``)."""
    if family not in FAMILIES:
        raise TaxonomyError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    return "discrete" if family.startswith("discrete") else family


def _method_label(i: int, entry: Any) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return f"method #{i} ({entry['name']!r})"
    return f"method #{i}"


def _check_method(i: int, entry: Any, last_year: int) -> dict[str, Any]:
    label = _method_label(i, entry)
    if not isinstance(entry, dict):
        raise TaxonomyError(f"{label}: expected a mapping of fields, got {type(entry).__name__}")
    missing = [f for f in METHOD_FIELDS if f not in entry]
    if missing:
        raise TaxonomyError(
            f"{label}: missing field(s) {', '.join(missing)}; every method needs {', '.join(METHOD_FIELDS)}"
        )
    unknown = sorted(set(entry) - set(METHOD_FIELDS) - {"authors"})
    if unknown:
        raise TaxonomyError(
            f"{label}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(METHOD_FIELDS)}, authors"
        )
    if not isinstance(entry["name"], str) or not entry["name"].strip():
        raise TaxonomyError(f"{label}: name must be a non-empty string")
    if entry["family"] not in FAMILIES:
        raise TaxonomyError(f"{label}: unknown family {entry['family']!r}; use one of {', '.join(FAMILIES)}")
    year = entry["year"]
    if isinstance(year, bool) or not isinstance(year, int) or not _FIRST_YEAR <= year <= last_year:
        raise TaxonomyError(f"{label}: bad year {year!r}; give an integer between {_FIRST_YEAR} and {last_year}")
    arxiv = entry["arxiv"]
    if arxiv is not None and not (isinstance(arxiv, str) and _ARXIV_ID.match(arxiv)):
        raise TaxonomyError(
            f'{label}: bad arxiv id {arxiv!r}; write it quoted like "2205.14217", or null if there is none'
        )
    if not isinstance(entry["revisable"], bool):
        raise TaxonomyError(f"{label}: revisable must be true or false, got {entry['revisable']!r}")
    for field in ("state_space", "corruption", "decoding", "note"):
        if not isinstance(entry[field], str) or not entry[field].strip():
            raise TaxonomyError(f"{label}: {field} must be a non-empty string")
    out = {f: entry[f] for f in METHOD_FIELDS}
    out["authors"] = str(entry.get("authors", ""))
    return out


def _normalise_value(value: Any) -> Any:
    # YAML 1.1 reads bare yes/no as booleans; accept them for the author's convenience.
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


def _check_judgements(raw: Any, properties: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    if not isinstance(raw, dict):
        raise TaxonomyError("judgements: expected a mapping family -> property -> {value, source, reason}")
    rows = []
    for family, by_property in raw.items():
        if family not in JUDGEMENT_FAMILIES:
            raise TaxonomyError(f"judgements: unknown family {family!r}; use one of {', '.join(JUDGEMENT_FAMILIES)}")
        if not isinstance(by_property, dict):
            raise TaxonomyError(f"judgements[{family}]: expected a mapping property -> {{value, source, reason}}")
        for prop, j in by_property.items():
            label = f"judgements[{family}][{prop}]"
            if prop not in PROPERTIES:
                raise TaxonomyError(f"{label}: unknown property {prop!r}; use one of {', '.join(PROPERTIES)}")
            if not isinstance(j, dict) or "value" not in j or "source" not in j:
                raise TaxonomyError(f"{label}: needs at least 'value' and 'source'")
            extra = sorted(map(str, set(j) - _JUDGEMENT_KEYS))
            if extra:
                raise TaxonomyError(
                    f"{label}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(_JUDGEMENT_KEYS))}"
                    " (quote text that contains commas)"
                )
            value = _normalise_value(j["value"])
            if value not in VALUES:
                raise TaxonomyError(f"{label}: bad value {j['value']!r}; use one of {', '.join(VALUES)}")
            if j["source"] not in SOURCES:
                raise TaxonomyError(f"{label}: bad source {j['source']!r}; use one of {', '.join(SOURCES)}")
            source = SOURCES[j["source"]]
            if j.get("where"):
                source = f"{source}, {j['where']}"
            rows.append(
                {
                    "family": family,
                    "property": prop,
                    "property_name": properties[prop]["name"],
                    "side": properties[prop]["side"],
                    "value": value,
                    "by": j["source"],
                    "source": source,
                    "reason": str(j.get("reason", "")),
                }
            )
    for family in JUDGEMENT_FAMILIES:
        have = {r["property"] for r in rows if r["family"] == family}
        lacking = [p for p in PROPERTIES if p not in have]
        if lacking:
            raise TaxonomyError(f"judgements[{family}]: missing property(ies) {', '.join(lacking)}; judge all five")
    return rows


def _check_properties(raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        raise TaxonomyError("properties: expected a mapping D1..L2 -> {name, side, meaning}")
    for prop in raw:
        if prop not in PROPERTIES:
            raise TaxonomyError(f"properties: unknown property {prop!r}; use one of {', '.join(PROPERTIES)}")
    for prop in PROPERTIES:
        entry = raw.get(prop)
        if not isinstance(entry, dict) or not {"name", "side"} <= set(entry):
            raise TaxonomyError(f"properties[{prop}]: missing or lacks 'name' and 'side'")
        if entry["side"] not in ("diffusion", "language"):
            raise TaxonomyError(f"properties[{prop}]: side must be 'diffusion' or 'language', got {entry['side']!r}")
    return raw


def load_taxonomy(path: str | Path = paths.TAXONOMY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load and validate the taxonomy (notebooks 01_taxonomy, 02_five_properties).

    Returns ``(methods, judgements)``:

    - ``methods``: one row per method, columns ``name, authors, year, arxiv, family, group,
      state_space, corruption, decoding, revisable, note`` (``group`` is the judgement
      family: continuous / discrete / autoregressive), ordered by family then year.
    - ``judgements``: tidy, one row per (family, property), columns ``family, property,
      property_name, side, value, by, source, reason``; ``by`` is ``"paper"`` for the
      paper's own judgement and ``"ours"`` for our reading.

    Raises :class:`TaxonomyError` (one line naming the entry) on an unknown family,
    missing field, duplicate name, bad year or arXiv id, unknown property or bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise TaxonomyError(f"taxonomy file not found: {path}; pass the path to a taxonomy YAML file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path.name}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    if not isinstance(doc, dict):
        raise TaxonomyError(f"{path.name}: expected a mapping with keys 'properties', 'methods', 'judgements'")
    for key in ("properties", "methods", "judgements"):
        if key not in doc:
            raise TaxonomyError(f"{path.name}: missing top-level key {key!r}")

    properties = _check_properties(doc["properties"])
    if not isinstance(doc["methods"], list) or not doc["methods"]:
        raise TaxonomyError(f"{path.name}: 'methods' must be a non-empty list")
    last_year = datetime.date.today().year + 1
    methods, seen = [], set()
    for i, entry in enumerate(doc["methods"]):
        m = _check_method(i, entry, last_year)
        if m["name"] in seen:
            raise TaxonomyError(f"{_method_label(i, entry)}: duplicate name; method names must be unique")
        seen.add(m["name"])
        methods.append(m)

    mdf = pd.DataFrame(methods)
    mdf["arxiv"] = pd.Series([m["arxiv"] for m in methods], dtype=object)  # keep None, not NaN
    mdf["group"] = mdf["family"].map(family_group)
    mdf["family"] = pd.Categorical(mdf["family"], categories=list(FAMILIES), ordered=True)
    mdf = mdf.sort_values(["family", "year", "name"], kind="stable").reset_index(drop=True)
    mdf = mdf[
        [
            "name",
            "authors",
            "year",
            "arxiv",
            "family",
            "group",
            "state_space",
            "corruption",
            "decoding",
            "revisable",
            "note",
        ]
    ]

    jdf = pd.DataFrame(_check_judgements(doc["judgements"], properties))
    jdf["family"] = pd.Categorical(jdf["family"], categories=list(JUDGEMENT_FAMILIES), ordered=True)
    jdf["property"] = pd.Categorical(jdf["property"], categories=list(PROPERTIES), ordered=True)
    jdf = jdf.sort_values(["family", "property"]).reset_index(drop=True)
    return mdf, jdf


def property_matrix(judgements: pd.DataFrame) -> pd.DataFrame:
    """Wide family x property table of values (rows: families, columns: D1..L2); notebook 02."""
    wide = judgements.pivot(index="family", columns="property", values="value")
    return wide.reindex(
        index=[f for f in JUDGEMENT_FAMILIES if f in set(judgements["family"])], columns=list(PROPERTIES)
    )


# --------------------------------------------------------------------------- taxonomy tables (notebook 01)


def check_methods(methods: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(methods, pd.DataFrame):
        raise TypeError(f"methods must be the DataFrame of load_taxonomy(), got {type(methods).__name__}")
    missing = [c for c in needed if c not in methods.columns]
    if missing:
        raise ValueError(f"methods lacks column(s) {', '.join(missing)}; pass the first table of load_taxonomy()")
    unknown = sorted(set(map(str, methods["family"])) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown family(ies) {', '.join(unknown)}; use one of {', '.join(FAMILIES)}")


def methods_overview(methods: pd.DataFrame) -> pd.DataFrame:
    """Compact view of the methods table for notebook 01: one row per method, ordered by family then year.

    Columns: ``family`` (display label), ``method``, ``year``, ``arxiv``, ``corruption``, ``revisable``.
    """
    check_methods(methods, ("name", "year", "arxiv", "family", "corruption", "revisable"))
    order = {f: i for i, f in enumerate(FAMILIES)}
    df = methods.assign(_f=methods["family"].astype(str).map(order))
    df = df.sort_values(["_f", "year", "name"], kind="stable")
    return pd.DataFrame(
        {
            "family": df["family"].astype(str).map(family_label).to_numpy(),
            "method": df["name"].to_numpy(),
            "year": df["year"].astype(int).to_numpy(),
            "arxiv": df["arxiv"].fillna("-").to_numpy(),
            "corruption": df["corruption"].to_numpy(),
            "revisable": df["revisable"].astype(bool).to_numpy(),
        }
    )


def family_summary(methods: pd.DataFrame) -> pd.DataFrame:
    """Methods per family (§2 taxonomy; notebook 01): counts, year span and how many can revise tokens.

    One row per family present, in :data:`FAMILIES` order. Columns: ``family`` (display label),
    ``methods``, ``first_year``, ``last_year``, ``revisable`` (methods whose committed tokens can
    still change), ``examples`` (up to three method names, earliest first).
    """
    check_methods(methods, ("name", "year", "family", "revisable"))
    rows = []
    for fam in FAMILIES:
        sub = methods[methods["family"].astype(str) == fam].sort_values(["year", "name"], kind="stable")
        if sub.empty:
            continue
        rows.append(
            {
                "family": family_label(fam),
                "methods": len(sub),
                "first_year": int(sub["year"].min()),
                "last_year": int(sub["year"].max()),
                "revisable": int(sub["revisable"].astype(bool).sum()),
                "examples": ", ".join(sub["name"].head(3)),
            }
        )
    return pd.DataFrame(rows, columns=["family", "methods", "first_year", "last_year", "revisable", "examples"])


# --------------------------------------------------------------------------- forward processes (notebook 01)


def content_vocab(tokenizer) -> torch.Tensor:
    """Ids of the ordinary (non-special) tokens of ``tokenizer``, sorted; notebook 01.

    The uniform process substitutes from these, so a substituted cell always shows a real
    word piece, never ``[MASK]`` or an end-of-text token.
    """
    n = len(tokenizer)
    special = set(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in range(n) if i not in special]
    if not ids:
        raise ValueError("the tokenizer has no ordinary tokens; pass the model's tokenizer")
    return torch.tensor(ids, dtype=torch.long)


def forward_processes(
    x0: torch.Tensor | Sequence[int],
    levels: Sequence[float],
    *,
    mask_id: int,
    vocab_size: int,
    embedding: torch.Tensor,
    vocab_ids: torch.Tensor | Sequence[int] | None = None,
    seed: int = 0,
    schedule: GaussianSchedule | str = "cosine",
    token_text: Callable[[Sequence[int]], Sequence[str]] | None = None,
) -> pd.DataFrame:
    """One sentence through the three forward processes of §2 at each noise level (notebook 01).

    Calls :func:`dlmpaper.core.corruption.corruption_grid` once per process, in :data:`PROCESS_ORDER`,
    all drawing from one generator seeded by ``seed`` (deterministic; the processes get
    independent draws). Within a process the levels share their draws, so the rows read as
    one trajectory (a position masked at t stays masked at every larger t). ``embedding`` is the
    (V, d) matrix the Gaussian process adds noise to and rounds back with (pass it
    standardised, :func:`dlmpaper.core.corruption.standardize_embedding`); ``schedule`` maps the
    level t to abar_t. ``token_text`` (e.g. ``DiffusionLM.token_text``) adds the columns
    ``token`` (original) and ``shown`` (what x_t shows; ``"[M]"`` when masked).

    Columns: those of ``corruption_grid`` (``process, level, position, token_id, noisy_id, state,
    is_original, distance``) plus ``alpha_bar`` (Gaussian only, NaN otherwise) and, with
    ``token_text``, ``token, shown``. ``process`` is categorical in :data:`PROCESS_ORDER`.
    """
    x0 = torch.as_tensor(x0).long()
    sched = schedule if isinstance(schedule, GaussianSchedule) else GaussianSchedule(schedule)
    if embedding.shape[0] != vocab_size:
        raise ValueError(
            f"embedding has {embedding.shape[0]} rows but vocab_size is {vocab_size}; "
            "pass the input embedding matrix cut to the vocabulary"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    gen = torch.Generator().manual_seed(seed)
    parts = [
        corruption_grid(x0, levels, "mask", generator=gen, mask_id=mask_id),
        corruption_grid(x0, levels, "uniform", generator=gen, vocab_size=vocab_size, vocab_ids=vocab_ids),
        corruption_grid(x0, levels, "gaussian", generator=gen, embedding=embedding, schedule=sched),
    ]
    grid = pd.concat(parts, ignore_index=True)
    ab = {t: float(sched.alpha_bar(t)) for t in grid["level"].unique()}
    grid["alpha_bar"] = np.where(grid["process"] == "gaussian", grid["level"].map(ab), np.nan)
    grid["process"] = pd.Categorical(grid["process"], categories=list(PROCESS_ORDER), ordered=True)
    if token_text is not None:
        ids = sorted(set(grid["token_id"]) | set(grid["noisy_id"]))
        text = dict(zip(ids, token_text(ids)))
        grid["token"] = grid["token_id"].map(text)
        grid["shown"] = np.where(grid["state"] == "masked", _MASK_TEXT, grid["noisy_id"].map(text))
    return grid


def change_levels(grid: pd.DataFrame) -> pd.DataFrame:
    """Per process and position: the lowest level at which x_t stops showing the original token.

    ``first_change`` is NaN for a position that shows its original token at every level of
    ``grid``. Also ``token_id`` and ``token`` (when present). Used by notebook 01 to quote the
    Gaussian rounding threshold.
    """
    check_grid(grid)
    cols = ["process", "position", "token_id"] + (["token"] if "token" in grid.columns else [])
    changed = grid[~grid["is_original"]]
    first = changed.groupby(["process", "position"], observed=True)["level"].min()
    out = grid[cols].drop_duplicates(["process", "position"]).set_index(["process", "position"])
    out["first_change"] = first.reindex(out.index)
    return out.reset_index().sort_values(["process", "position"]).reset_index(drop=True)


def kept_fraction(grid: pd.DataFrame) -> pd.DataFrame:
    """Fraction of positions whose x_t shows the original token, per process and level (notebook 01)."""
    check_grid(grid)
    out = grid.groupby(["process", "level"], observed=True)["is_original"].mean().rename("kept_fraction").reset_index()
    return out


def change_summary(grid: pd.DataFrame, schedule: GaussianSchedule | str = "cosine") -> pd.DataFrame:
    """How abruptly each process stops showing the original tokens (§2, D1 vs L1; notebook 01).

    Per process, over the positions of ``grid`` (levels as given):

    * ``first_change``: lowest level at which any position shows something else;
    * ``half_changed``: lowest level at which at least half of the positions do;
    * ``all_changed``: lowest level at which every position does (NaN if never);
    * ``spread``: ``all_changed - first_change``, the width of the transition in t;
    * ``alpha_bar_first``, ``alpha_bar_all``: abar_t of ``schedule`` at those levels (Gaussian only).
    """
    check_grid(grid)
    sched = schedule if isinstance(schedule, GaussianSchedule) else GaussianSchedule(schedule)
    frac = kept_fraction(grid)
    rows = []
    for proc in [p for p in PROCESS_ORDER if p in set(grid["process"].astype(str))]:
        f = frac[frac["process"].astype(str) == proc].sort_values("level")
        lv, kept = f["level"].to_numpy(), f["kept_fraction"].to_numpy()

        def lowest(cond: np.ndarray) -> float:
            return float(lv[cond][0]) if cond.any() else math.nan

        first, half, every = lowest(kept < 1.0), lowest(kept <= 0.5), lowest(kept == 0.0)
        is_gauss = proc == "gaussian"
        rows.append(
            {
                "process": proc,
                "first_change": first,
                "half_changed": half,
                "all_changed": every,
                "spread": every - first,
                "alpha_bar_first": float(sched.alpha_bar(first)) if is_gauss and not math.isnan(first) else math.nan,
                "alpha_bar_all": float(sched.alpha_bar(every)) if is_gauss and not math.isnan(every) else math.nan,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "process",
            "first_change",
            "half_changed",
            "all_changed",
            "spread",
            "alpha_bar_first",
            "alpha_bar_all",
        ],
    )


def check_grid(grid: pd.DataFrame) -> None:
    need = ("process", "level", "position", "token_id", "noisy_id", "state", "is_original")
    if not isinstance(grid, pd.DataFrame) or any(c not in grid.columns for c in need):
        raise ValueError(
            f"grid must be a table from forward_processes / corruption_grid with columns {', '.join(need)}"
        )


#: The three forward processes, in display order (discrete first, as in the paper's §2 table).
PROCESS_ORDER: tuple[str, ...] = ("mask", "uniform", "gaussian")


#: The taxonomy family each process stands for (colours come from :data:`FAMILY_COLORS`).
PROCESS_FAMILY: dict[str, str] = {"mask": "discrete-absorbing", "uniform": "discrete-uniform", "gaussian": "continuous"}


#: What a cell of the grid shows (``state`` of :func:`dlmpaper.core.corruption.corruption_grid`).
STATES: tuple[str, ...] = ("kept", "masked", "substituted")
#: How a masked cell is shown in the grid.
_MASK_TEXT = "[M]"
