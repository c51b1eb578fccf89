"""Fuzz-style checks of `dlmpaper probe`: malformed prompt files and argument combinations.

Every case must end with exit code 2 and one ``error: ...`` line that names the problem and its
fix, within 10 s, without loading a model and without writing anything.
"""

from __future__ import annotations

import codecs
import time
from pathlib import Path

import pytest

from dlmpaper import cli

GOOD = b'{"prompt": "Can brain cells move ?", "prompt_id": "brain"}\n'

#: (case id, prompt file name, its bytes, what the error line must contain)
FILES = [
    ("jsonl-unclosed-object", "p.jsonl", b'{"prompt": "a"\n', "line 1: bad JSON"),
    ("jsonl-bad-second-line", "p.jsonl", GOOD + b'{"prompt": }\n', "line 2: bad JSON"),
    ("jsonl-array-record", "p.jsonl", b"[1, 2]\n", "expected an object"),
    ("jsonl-no-prompt-field", "p.jsonl", b'{"text": "a"}\n', "missing 'prompt' field"),
    ("jsonl-number-prompt", "p.jsonl", b'{"prompt": 3}\n', "'prompt' must be a string"),
    ("jsonl-null-prompt", "p.jsonl", b'{"prompt": null}\n', "missing 'prompt' field"),
    ("jsonl-empty-prompt", "p.jsonl", b'{"prompt": ""}\n', "empty prompt"),
    ("jsonl-blank-prompt", "p.jsonl", b'{"prompt": "  \\t "}\n', "empty prompt"),
    ("jsonl-duplicate-id", "p.jsonl", GOOD + GOOD, "line 2: duplicate prompt_id 'brain' (first on line 1)"),
    ("jsonl-list-id", "p.jsonl", b'{"prompt": "a", "prompt_id": [1]}\n', "'prompt_id' must be a string or integer"),
    ("jsonl-bool-id", "p.jsonl", b'{"prompt": "a", "prompt_id": true}\n', "'prompt_id' must be a string or integer"),
    ("jsonl-latin1", "p.jsonl", GOOD + '{"prompt": "caf\u00e9"}\n'.encode("latin-1"), "line 2: not UTF-8"),
    ("jsonl-utf16", "p.jsonl", codecs.BOM_UTF16_LE + GOOD.decode().encode("utf-16-le"), "line 1: not UTF-8"),
    ("jsonl-empty-file", "p.jsonl", b"", "no prompts in file"),
    ("jsonl-blank-lines", "p.jsonl", b"\n\n   \n", "no prompts in file"),
    ("jsonl-trailing-garbage", "p.jsonl", b'{"prompt": "a"} x\n', "bad JSON (Extra data"),
    ("jsonl-single-quotes", "p.jsonl", b"{'prompt': 'a'}\n", "bad JSON"),
    ("jsonl-nul-byte", "p.jsonl", b"\x00\n", "bad JSON"),
    ("jsonl-bad-escape", "p.jsonl", b'{"prompt": "\\u12"}\n', "bad JSON"),
    ("json-object-not-array", "p.json", b'{"prompt": "a"}', "expected a JSON array"),
    (
        "json-missing-comma",
        "p.json",
        b'[\n{"prompt": "a"}\n{"prompt": "b"}\n]',
        "line 3: bad JSON (expected ',' or ']'",
    ),
    ("json-extra-data", "p.json", b'[{"prompt": "a"}] []', "extra data after the array"),
    ("json-strings", "p.json", b'["a", "b"]', "expected an object"),
    ("json-empty-array", "p.json", b"[]", "no prompts in file"),
    ("json-unterminated", "p.json", b'[{"prompt": "a"}', "bad JSON"),
    ("json-latin1", "p.json", '[{"prompt": "\u00e9"}]'.encode("latin-1"), "line 1: not UTF-8"),
    ("json-empty-file", "p.json", b"", "expected a JSON array"),
    ("json-dict-prompt", "p.json", b'[{"prompt": {"text": "a"}}]', "'prompt' must be a string"),
    ("csv-no-prompt-column", "p.csv", b"text,prompt_id\na,1\n", "missing 'prompt' column"),
    ("csv-empty-file", "p.csv", b"", "empty file"),
    ("csv-unclosed-quote", "p.csv", b'prompt\nfine\n"never closed\nmore\nrows\n', "line 3: unclosed quote"),
    ("csv-extra-fields", "p.csv", b"prompt\na,b\n", "line 2: more fields than the header's 1"),
    ("csv-latin1", "p.csv", "prompt\nfine\ncaf\u00e9\n".encode("latin-1"), "line 3: not UTF-8"),
    ("csv-empty-prompt", "p.csv", b'prompt,prompt_id\n"",1\n', "empty prompt"),
    ("csv-duplicate-id", "p.csv", b"prompt,prompt_id\na,1\nb,1\n", "line 3: duplicate prompt_id '1'"),
    ("csv-text-after-quote", "p.csv", b'prompt\n"ab"c\n', "line 2: bad CSV"),
    ("csv-header-only", "p.csv", b"prompt,prompt_id\n", "no prompts in file"),
    ("csv-utf16", "p.csv", codecs.BOM_UTF16_LE + "prompt\na\n".encode("utf-16-le"), "line 1: not UTF-8"),
    ("txt-suffix", "p.txt", b"hello\n", "use 'lima', 'embedded' or a path ending in"),
]

#: (case id, arguments after a valid prompt file, what the error line must contain); {dir} = the case folder
ARGS = [
    ("missing-file", ["--prompts", "{dir}/absent.jsonl"], "prompt file not found"),
    ("prompts-is-a-folder", ["--prompts", "{dir}/folder.jsonl"], "prompt file not found"),
    ("n-masks-zero", ["--n-masks", "0"], "n_masks must be an integer >= 1"),
    ("n-masks-negative", ["--n-masks", "-5"], "n_masks must be an integer >= 1"),
    ("n-masks-over-context", ["--n-masks", "600"], "use at most 511 masks"),
    ("n-masks-over-embedded-context", ["--model", "embedded", "--n-masks", "100000"], "masks (fewer for long prompts)"),
    ("n-masks-text", ["--n-masks", "abc"], "argument --n-masks: invalid int value"),
    ("top-k-zero", ["--top-k", "0"], "top_k must be an integer >= 1"),
    ("top-k-over-vocabulary", ["--top-k", "51"], "exceeds the vocabulary of 50 tokens; use a smaller --top-k"),
    ("n-prompts-zero", ["--n-prompts", "0"], "n_prompts must be an integer >= 1"),
    ("batch-size-zero", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("n-boot-zero", ["--n-boot", "0"], "--n-boot must be >= 1"),
    ("every-zero", ["--every", "0"], "--every must be >= 1"),
    ("js-support-word", ["--js-support", "some"], "--js-support must be auto, full or a non-negative integer"),
    ("js-support-negative", ["--js-support", "-1"], "--js-support must be auto, full or a non-negative integer"),
    ("seed-negative", ["--seed", "-1"], "--seed must be an integer from 0 to 4294967295"),
    ("seed-huge", ["--seed", str(10**23)], "--seed must be an integer from 0 to 4294967295"),
    ("device-unknown", ["--device", "tpu"], "device"),
    ("dtype-unknown", ["--dtype", "float8"], "dtype"),
    ("model-unknown", ["--model", "no-such-model"], "Known names: embedded"),
    ("remote-code-without-flag", ["--model", "llada-8b-instruct"], "add --trust-remote-code"),
    ("out-is-a-folder", ["--out", "{dir}/folder.jsonl"], "is a directory; give a file path"),
    ("out-under-a-file", ["--out", "{dir}/p.jsonl/probe.csv"], "is a file, not a directory"),
    ("summary-same-as-out", ["--out", "{dir}/x.csv", "--summary-out", "{dir}/x.csv"], "give the summary its own file"),
    ("summary-out-folder", ["--summary-out", "{dir}"], "--summary-out"),
    ("max-memory-without-map", ["--max-memory", "0=1GiB"], "--max-memory needs --device-map"),
    ("spec-unknown", ["--spec", "bogus"], "invalid choice: 'bogus'"),
    ("flag-unknown", ["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


def _state(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def nothing_loads(monkeypatch):
    """Loading a model, its weights or LIMA fails the test (AssertionError is not a user error: it propagates)."""
    import transformers

    def forbidden(*args, **kwargs):
        raise AssertionError("the CLI loaded something before validating its arguments")

    monkeypatch.setattr("dlmpaper.lm.models.load_model", forbidden)
    monkeypatch.setattr("dlmpaper.prompts._load_lima", forbidden)
    for auto in ("AutoModel", "AutoModelForMaskedLM", "AutoTokenizer"):
        monkeypatch.setattr(getattr(transformers, auto), "from_pretrained", forbidden)


def _check(capsys, folder: Path, argv: list[str], needle: str) -> None:
    before = _state(folder)
    start = time.perf_counter()
    code = cli.main(argv)
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    assert seconds < 10, f"took {seconds:.1f} s"
    assert _state(folder) == before, "something was written"


@pytest.mark.parametrize("name, content, needle", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_malformed_prompt_file(capsys, tmp_path, nothing_loads, bert_mlm_dir, name, content, needle):
    (tmp_path / name).write_bytes(content)
    argv = [
        "probe",
        "--model",
        str(bert_mlm_dir),
        "--prompts",
        str(tmp_path / name),
        "--out",
        str(tmp_path / "out.csv"),
    ]
    _check(capsys, tmp_path, argv, needle)


@pytest.mark.parametrize(
    "name, content, needle", [c[1:] for c in FILES if "line" in c[3]], ids=[c[0] for c in FILES if "line" in c[3]]
)
def test_malformed_prompt_file_error_names_file_and_line(
    capsys, tmp_path, nothing_loads, bert_mlm_dir, name, content, needle
):
    (tmp_path / name).write_bytes(content)
    code = cli.main(
        ["probe", "--model", str(bert_mlm_dir), "--prompts", str(tmp_path / name), "--out", str(tmp_path / "o.csv")]
    )
    assert code == 2 and f"{name}, {needle}" in capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [c[1:] for c in ARGS], ids=[c[0] for c in ARGS])
def test_bad_argument_combination(capsys, tmp_path, nothing_loads, bert_mlm_dir, extra, needle):
    (tmp_path / "p.jsonl").write_bytes(GOOD)
    (tmp_path / "folder.jsonl").mkdir()
    base = [
        "probe",
        "--model",
        str(bert_mlm_dir),
        "--prompts",
        str(tmp_path / "p.jsonl"),
        "--out",
        str(tmp_path / "out.csv"),
    ]
    _check(capsys, tmp_path, base + [a.format(dir=tmp_path) for a in extra], needle)
