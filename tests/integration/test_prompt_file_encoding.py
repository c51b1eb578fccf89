"""Prompt files (dlmpaper.prompts, README "Probe your own diffusion LM"): encodings and CSV quoting."""

from __future__ import annotations

import codecs

import pytest

from dlmpaper.prompts import PromptFileError, read_prompt_file


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_non_utf8_file_names_the_file_and_line(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    body = {
        ".jsonl": '{"prompt": "fine"}\n{"prompt": "caf\u00e9"}\n',
        ".json": '[\n {"prompt": "fine"},\n {"prompt": "caf\u00e9"}\n]\n',
        ".csv": "prompt\nfine\ncaf\u00e9\n",
    }[suffix]
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(path)
    message = str(info.value)
    line = {".jsonl": 2, ".json": 3, ".csv": 3}[suffix]
    assert f"latin1{suffix}, line {line}:" in message and "UTF-8" in message and "\n" not in message


@pytest.mark.parametrize(
    "suffix, body",
    [
        (".csv", "prompt,prompt_id\nCan brain cells move?,a\n"),
        (".jsonl", '{"prompt": "Can brain cells move?", "prompt_id": "a"}\n'),
        (".json", '[{"prompt": "Can brain cells move?", "prompt_id": "a"}]'),
    ],
)
def test_utf8_byte_order_mark_is_accepted(tmp_path, suffix, body):
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(codecs.BOM_UTF8 + body.encode("utf-8"))
    frame = read_prompt_file(path)
    assert frame["prompt"].tolist() == ["Can brain cells move?"] and frame["prompt_id"].tolist() == ["a"]


def test_unclosed_csv_quote_is_reported_with_its_line(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text('prompt,prompt_id\nfirst,a\n"second, never closed,b\nthird,c\nfourth,d\n', encoding="utf-8")
    with pytest.raises(PromptFileError, match=r"quotes\.csv, line 3: unclosed quote"):
        read_prompt_file(path)


def test_quoted_multiline_csv_prompt_still_reads(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('prompt,prompt_id\n"two\nlines",a\nnext,b\n', encoding="utf-8")
    frame = read_prompt_file(path)
    assert frame["prompt"].tolist() == ["two\nlines", "next"]
