"""dlmpaper.prompts: prompt files, the LIMA parser on a local stand-in, offline errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dlmpaper import paths
from dlmpaper import prompts as data
from dlmpaper.lm.hub import HubAccessError
from dlmpaper.prompts import PromptFileError, check_prompt_source, first_user_turn, lima_frame, load_prompts

LIMA_ROWS = [
    {
        "conversations": [
            "Can brain cells move? By movement I mean long distance migration.",
            "Yes, some brain cells migrate.",
        ],
        "source": "stackexchange",
    },
    {"conversations": ["Why is the sky blue?", "Rayleigh scattering."], "source": "wikihow"},
    {"conversations": ["Write a haiku."], "source": "multi_turn"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ local files
def test_jsonl_keeps_extra_columns_and_takes_first_n(tmp_path):
    f = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt_id": "a", "prompt": "Can brain cells move?", "headword": "cell"},
            {"prompt_id": 7, "prompt": "What is a dog?", "headword": "dog", "response": "An animal."},
            {"prompt_id": "c", "prompt": "Third."},
        ],
    )
    df = load_prompts(f)
    assert list(df.columns[:2]) == ["prompt_id", "prompt"]
    assert {"headword", "response"} <= set(df.columns)
    assert df["prompt_id"].tolist() == ["a", "7", "c"]  # ids are strings
    assert df.loc[1, "headword"] == "dog"
    two = load_prompts(str(f), n=2)
    assert two["prompt"].tolist() == ["Can brain cells move?", "What is a dog?"]


def test_missing_ids_are_generated_from_the_file_name(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"prompt": "one"}\n\n{"prompt": "two"}\n', encoding="utf-8")
    assert load_prompts(f)["prompt_id"].tolist() == ["mine-0000", "mine-0001"]


def test_json_array_and_csv(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps([{"prompt_id": "x", "prompt": "Hi there"}, {"prompt_id": "y", "prompt": "Bye"}], indent=2))
    assert load_prompts(j)["prompt_id"].tolist() == ["x", "y"]
    c = tmp_path / "p.csv"
    c.write_text('prompt_id,prompt,headword\nx,"Hello, world",hello\ny,"two\nlines",line\n', encoding="utf-8")
    df = load_prompts(c)
    assert df["prompt"].tolist() == ["Hello, world", "two\nlines"]
    assert df["headword"].tolist() == ["hello", "line"]


@pytest.mark.parametrize(
    "lines, line_no, what",
    [
        (['{"prompt": "ok"}', '{"prompt": "fine"}', '{"prompt": "broken"'], 3, "bad JSON"),
        (['{"prompt": "ok"}', '{"text": "no prompt here"}'], 2, "missing 'prompt'"),
        (['{"prompt": "ok"}', "", '{"prompt": "   "}'], 3, "empty prompt"),
        (['{"prompt_id": "a", "prompt": "x"}', '{"prompt_id": "a", "prompt": "y"}'], 2, "duplicate prompt_id 'a'"),
        (['["a list"]'], 1, "expected an object"),
        (['{"prompt": 3}'], 1, "must be a string"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, lines, line_no, what):
    f = tmp_path / "bad_prompts.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as err:
        load_prompts(f)
    message = str(err.value)
    assert "bad_prompts.jsonl" in message and f"line {line_no}:" in message and what in message


def test_duplicate_names_first_line(tmp_path):
    f = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt_id": "a", "prompt": "x"}, {"prompt_id": "b", "prompt": "y"}, {"prompt_id": "a", "prompt": "z"}],
    )
    with pytest.raises(PromptFileError, match="line 3: duplicate prompt_id 'a' \\(first on line 1\\)"):
        load_prompts(f)


def test_malformed_json_array_and_csv_lines(tmp_path):
    j = tmp_path / "arr.json"
    j.write_text('[\n  {"prompt": "ok"},\n  {"no": "prompt"}\n]\n')
    with pytest.raises(PromptFileError, match="arr.json, line 3: missing 'prompt'"):
        load_prompts(j)
    j.write_text('[\n  {"prompt": "ok"},\n  {"prompt": "oops",}\n]\n')
    with pytest.raises(PromptFileError, match="arr.json, line 3: bad JSON"):
        load_prompts(j)
    j.write_text('{"prompt": "not an array"}')
    with pytest.raises(PromptFileError, match="line 1: expected a JSON array"):
        load_prompts(j)
    c = tmp_path / "t.csv"
    c.write_text("prompt_id,prompt\na,hello\nb,\n")
    with pytest.raises(PromptFileError, match="t.csv, line 3: empty prompt"):
        load_prompts(c)
    c.write_text("id,text\na,hello\n")
    with pytest.raises(PromptFileError, match="t.csv, line 1: missing 'prompt' column"):
        load_prompts(c)


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="'lima', 'embedded'"):
        check_prompt_source("alpaca")
    with pytest.raises(FileNotFoundError):
        check_prompt_source(tmp_path / "nope.csv")


@pytest.mark.parametrize("n", [0, -3, 1.5, True])
def test_bad_n(tmp_path, n):
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "x"}])
    with pytest.raises(ValueError, match="n must"):
        load_prompts(f, n=n)


def test_embedded_source(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "PROMPTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="embedded prompt set is missing"):
        check_prompt_source("embedded")
    write_jsonl(tmp_path / "embedded.jsonl", [{"prompt_id": "wn-0", "prompt": "Define cell.", "headword": "cell"}])
    assert check_prompt_source("embedded") == tmp_path / "embedded.jsonl"
    df = load_prompts("embedded", n=1)
    assert df.to_dict("records") == [{"prompt_id": "wn-0", "prompt": "Define cell.", "headword": "cell"}]


# ------------------------------------------------------------------ LIMA
def test_first_user_turn_formats():
    assert first_user_turn(["Q?", "A."]) == "Q?"
    assert (
        first_user_turn(
            [{"from": "system", "value": "S"}, {"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
        )
        == "Q?"
    )
    assert first_user_turn([{"role": "user", "content": "Q2"}]) == "Q2"
    with pytest.raises(ValueError):
        first_user_turn("not a list")


def test_lima_frame_parsing():
    df = lima_frame(LIMA_ROWS, split="train")
    assert df.columns.tolist() == ["prompt_id", "prompt", "response", "source"]
    assert df["prompt_id"].tolist() == ["lima-train-0000", "lima-train-0001", "lima-train-0002"]
    assert df.loc[0, "prompt"].startswith("Can brain cells move?")
    assert df.loc[1, "response"] == "Rayleigh scattering."
    assert pd.isna(df.loc[2, "response"])
    with pytest.raises(ValueError, match="row 0"):
        lima_frame([{"source": "x"}])


def test_lima_through_datasets_on_a_local_stand_in(tmp_path):
    f = write_jsonl(tmp_path / "lima_train.jsonl", LIMA_ROWS)
    df = load_prompts("lima", n=2, dataset_id=str(f))
    assert df["prompt_id"].tolist() == ["lima-train-0000", "lima-train-0001"]
    assert df["prompt"].tolist() == [LIMA_ROWS[0]["conversations"][0], "Why is the sky blue?"]
    assert df["source"].tolist() == ["stackexchange", "wikihow"]
    assert len(load_prompts("lima", dataset_id=str(f))) == 3


def test_lima_offline_fails_fast_with_the_fix(monkeypatch):
    import datasets

    def boom(*args, **kwargs):
        raise AssertionError("load_dataset must not be attempted offline without a cache")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(HubAccessError) as err:
        load_prompts("lima", n=100, dataset_id="no-such-org-dlmpaper/lima-mirror")
    message = str(err.value)
    for needle in ("gated", "accept its terms", "hf auth login", "--prompts embedded"):
        assert needle in message
    assert check_prompt_source("lima") == "lima"  # the cheap check needs no hub access
    assert data.LIMA_ID == "GAIR/lima"
