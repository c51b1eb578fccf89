"""Tests for dlmpaper.analyses.taxonomy: the shipped table and every validation error."""

from __future__ import annotations

import copy

import pytest
import yaml

from dlmpaper import paths
from dlmpaper.analyses.taxonomy import (
    FAMILIES,
    JUDGEMENT_FAMILIES,
    PROPERTIES,
    TaxonomyError,
    family_group,
    load_taxonomy,
    property_matrix,
)


def _method(name="M", family="continuous", **kw):
    m = {
        "name": name,
        "year": 2022,
        "arxiv": "2205.14217",
        "family": family,
        "state_space": "embedding R^d",
        "corruption": "Gaussian on embeddings",
        "decoding": "denoise",
        "revisable": True,
        "note": "n",
    }
    m.update(kw)
    return m


def _base():
    props = {p: {"name": p.lower(), "side": "diffusion" if p[0] == "D" else "language"} for p in PROPERTIES}
    judgements = {
        f: {p: {"value": "yes", "source": "ours", "reason": "r"} for p in PROPERTIES} for f in JUDGEMENT_FAMILIES
    }
    return {
        "properties": props,
        "methods": [_method("A"), _method("B", family="discrete-absorbing", revisable=False)],
        "judgements": judgements,
    }


def _write(tmp_path, doc):
    p = tmp_path / "tax.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_shipped_taxonomy_loads_with_all_families():
    methods, judgements = load_taxonomy(paths.TAXONOMY)
    assert len(methods) >= 15
    assert set(methods["family"]) == set(FAMILIES)
    assert methods["name"].is_unique
    # the required methods are there, with the ids we checked
    by_name = methods.set_index("name")
    assert by_name.loc["Diffusion-LM", "arxiv"] == "2205.14217"
    assert by_name.loc["LLaDA", "arxiv"] == "2502.09992"
    assert by_name.loc["MDLM", "family"] == "discrete-absorbing"
    assert by_name.loc["UDLM", "family"] == "discrete-uniform"
    assert by_name.loc["GPT-2", "arxiv"] is None
    assert not by_name.loc["LLaDA", "revisable"] and by_name.loc["SEDD-uniform", "revisable"]
    # one judgement per (family, property), 3 x 5
    assert len(judgements) == len(JUDGEMENT_FAMILIES) * len(PROPERTIES)
    assert set(judgements["by"]) == {"paper", "ours"}


def test_shipped_judgements_encode_the_papers_thesis():
    _, judgements = load_taxonomy()
    wide = property_matrix(judgements)
    assert list(wide.loc["continuous"]) == ["yes", "yes", "yes", "no", "partial"]
    assert list(wide.loc["discrete"]) == ["no", "yes", "partial", "yes", "no"]
    assert list(wide.loc["autoregressive"]) == ["no", "no", "no", "yes", "yes"]
    paper_rows = judgements[judgements["by"] == "paper"]
    assert paper_rows["source"].str.contains("2512.22630").all()
    assert (judgements.loc[judgements["by"] == "ours", "source"] == "our reading").all()


def test_minimal_valid_file_and_group(tmp_path):
    methods, judgements = load_taxonomy(_write(tmp_path, _base()))
    assert list(methods["name"]) == ["A", "B"]
    assert list(methods["group"]) == ["continuous", "discrete"]
    assert family_group("discrete-uniform") == "discrete"
    assert set(judgements.columns) >= {"family", "property", "value", "source"}


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d["methods"][0].update(family="hybrid"), r"method #0 \('A'\): unknown family 'hybrid'"),
        (lambda d: d["methods"][1].pop("decoding"), r"method #1 \('B'\): missing field\(s\) decoding"),
        (lambda d: d["methods"].append(_method("A")), r"method #2 \('A'\): duplicate name"),
        (lambda d: d["methods"][0].update(year=1066), r"method #0 \('A'\): bad year 1066"),
        (lambda d: d["methods"][0].update(year="2022"), r"bad year '2022'"),
        (lambda d: d["methods"][0].update(arxiv="arXiv:2205.14217"), r"bad arxiv id .arXiv:2205.14217."),
        (lambda d: d["methods"][0].update(revisable="maybe"), r"revisable must be true or false"),
        (
            lambda d: d["judgements"]["discrete"].update(D4={"value": "yes", "source": "ours"}),
            r"judgements\[discrete\]\[D4\]: unknown property 'D4'",
        ),
        (
            lambda d: d["judgements"]["continuous"]["L1"].update(value="sometimes"),
            r"judgements\[continuous\]\[L1\]: bad value 'sometimes'",
        ),
        (lambda d: d["judgements"]["continuous"]["L1"].update(source="rumour"), r"bad source 'rumour'"),
        (lambda d: d["judgements"].update(hybrid={}), r"judgements: unknown family 'hybrid'"),
        (lambda d: d["judgements"]["autoregressive"].pop("D2"), r"judgements\[autoregressive\]: missing property"),
    ],
)
def test_each_error_names_the_entry(tmp_path, mutate, pattern):
    doc = copy.deepcopy(_base())
    mutate(doc)
    with pytest.raises(TaxonomyError, match=pattern) as info:
        load_taxonomy(_write(tmp_path, doc))
    assert "\n" not in str(info.value)


def test_unquoted_comma_in_flow_mapping_is_caught(tmp_path):
    # `reason: a, b` in a flow mapping silently becomes two keys; the loader must refuse it.
    text = yaml.safe_dump({k: v for k, v in _base().items() if k != "judgements"}, sort_keys=False)
    lines = ["judgements:"]
    for fam in JUDGEMENT_FAMILIES:
        lines.append(f"  {fam}:")
        for p in PROPERTIES:
            lines.append(f'    {p}: {{value: "yes", source: ours, reason: first part, second part}}')
    p = tmp_path / "t.yaml"
    p.write_text(text + "\n".join(lines) + "\n")
    with pytest.raises(TaxonomyError, match="unknown key"):
        load_taxonomy(p)


def test_bare_yaml_yes_no_are_accepted(tmp_path):
    doc = _base()
    doc["judgements"]["continuous"]["D1"]["value"] = True  # what bare `yes` parses to
    doc["judgements"]["continuous"]["D2"]["value"] = False
    _, judgements = load_taxonomy(_write(tmp_path, doc))
    row = judgements.set_index(["family", "property"])["value"]
    assert row[("continuous", "D1")] == "yes" and row[("continuous", "D2")] == "no"


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")
    doc = _base()
    del doc["methods"]
    with pytest.raises(TaxonomyError, match="missing top-level key 'methods'"):
        load_taxonomy(_write(tmp_path, doc))
