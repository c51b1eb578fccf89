"""The taxonomy of diffusion language models and the paper's five-property judgements.

Paper: "On the Role of Discreteness in Diffusion LLMs" (arXiv 2512.22630): existing
diffusion LMs split into continuous (Gaussian on embeddings) and discrete (masking or
substitution over tokens) families, each meeting only part of five properties
(D1 smooth corruption, D2 tractable intermediate states, D3 iterative refinement,
L1 discreteness, L2 structural dependency). Autoregressive LMs are the reference.

The data live in ``data/taxonomy.yaml`` (:data:`dlmpaper.paths.TAXONOMY`); this module
loads and validates it. Used by notebooks 01_taxonomy and 02_five_properties.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dlmpaper import paths

#: Method families, in display order.
FAMILIES: tuple[str, ...] = ("continuous", "discrete-absorbing", "discrete-uniform", "autoregressive")
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
    "name", "year", "arxiv", "family", "state_space", "corruption", "decoding", "revisable", "note",
)
_ARXIV_ID = re.compile(r"^\d{4}\.\d{4,5}$")
_FIRST_YEAR = 1990
_JUDGEMENT_KEYS = {"value", "source", "where", "reason"}


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the entry and the fix."""


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
        raise TaxonomyError(f"{label}: missing field(s) {', '.join(missing)}; every method needs {', '.join(METHOD_FIELDS)}")
    unknown = sorted(set(entry) - set(METHOD_FIELDS) - {"authors"})
    if unknown:
        raise TaxonomyError(f"{label}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(METHOD_FIELDS)}, authors")
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
            f"{label}: bad arxiv id {arxiv!r}; write it quoted like \"2205.14217\", or null if there is none"
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
            raise TaxonomyError(
                f"judgements: unknown family {family!r}; use one of {', '.join(JUDGEMENT_FAMILIES)}"
            )
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
            rows.append({
                "family": family,
                "property": prop,
                "property_name": properties[prop]["name"],
                "side": properties[prop]["side"],
                "value": value,
                "by": j["source"],
                "source": source,
                "reason": str(j.get("reason", "")),
            })
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
    mdf = mdf[["name", "authors", "year", "arxiv", "family", "group", "state_space",
               "corruption", "decoding", "revisable", "note"]]

    jdf = pd.DataFrame(_check_judgements(doc["judgements"], properties))
    jdf["family"] = pd.Categorical(jdf["family"], categories=list(JUDGEMENT_FAMILIES), ordered=True)
    jdf["property"] = pd.Categorical(jdf["property"], categories=list(PROPERTIES), ordered=True)
    jdf = jdf.sort_values(["family", "property"]).reset_index(drop=True)
    return mdf, jdf


def property_matrix(judgements: pd.DataFrame) -> pd.DataFrame:
    """Wide family x property table of values (rows: families, columns: D1..L2); notebook 02."""
    wide = judgements.pivot(index="family", columns="property", values="value")
    return wide.reindex(index=[f for f in JUDGEMENT_FAMILIES if f in set(judgements["family"])],
                        columns=list(PROPERTIES))
