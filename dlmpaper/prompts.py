"""Prompt sets: LIMA (paper §4 uses ``GAIR/lima`` train[:100]), the shipped set, local files.

Every loader returns one tidy DataFrame with columns ``prompt_id`` (str) and
``prompt`` (str), plus ``response`` / ``headword`` / ``source`` where the source has
them (extra columns of local files are kept). Notebooks 03_positional_probe and
04_marginal_trap read their prompts here; :func:`check_prompt_source` lets callers
fail before loading a model.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from dlmpaper import paths
from dlmpaper.lm.hub import HubAccessError, dataset_cached, hub_available, offline

__all__ = [
    "LIMA_ID",
    "PROMPT_SOURCES",
    "PROMPT_SUFFIXES",
    "PromptFileError",
    "check_prompt_source",
    "embedded_prompts_path",
    "first_user_turn",
    "lima_frame",
    "load_prompts",
    "read_prompt_file",
]

#: The gated hub dataset the paper samples its prompts from (CC BY-NC-SA).
LIMA_ID = "GAIR/lima"
#: Named prompt sources; anything else must be a file with one of PROMPT_SUFFIXES.
PROMPT_SOURCES = ("lima", "embedded")
PROMPT_SUFFIXES = (".jsonl", ".json", ".csv")


class PromptFileError(ValueError):
    """A local prompt file is malformed; the message names the file and the line."""


def embedded_prompts_path() -> Path:
    """The shipped prompt set (``data/prompts/embedded.jsonl``), built from held-out corpus data."""
    return Path(paths.PROMPTS_DIR) / "embedded.jsonl"


def _check_n(n: int | None) -> None:
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1 (number of prompts to load), got {n}")


def check_prompt_source(source: str | os.PathLike) -> str | Path:
    """Validate a prompt source cheaply (no download): ``"lima"``, ``"embedded"`` or an existing file.

    Returns ``"lima"``, or the :class:`~pathlib.Path` of the file to read. Raises
    ``FileNotFoundError`` for missing files and ``ValueError`` for anything unknown.
    """
    name = os.fspath(source)
    if name == "lima":
        return "lima"
    if name == "embedded":
        path = embedded_prompts_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"the embedded prompt set is missing at {path}; it ships with the repository "
                "(restore it with git), or pass --prompts lima or a .jsonl/.json/.csv file"
            )
        return path
    path = Path(name).expanduser()
    if path.suffix.lower() in PROMPT_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"prompt file not found: {path}")
        return path
    raise ValueError(
        f"unknown prompt source {name!r}: use 'lima', 'embedded' or a path ending in {', '.join(PROMPT_SUFFIXES)}"
    )


def load_prompts(
    source: str | os.PathLike,
    n: int | None = None,
    *,
    split: str = "train",
    dataset_id: str = LIMA_ID,
    revision: str | None = None,
) -> pd.DataFrame:
    """The first ``n`` prompts of ``source`` as a DataFrame (``prompt_id``, ``prompt``, ...).

    ``"lima"`` loads ``dataset_id`` (default the gated ``GAIR/lima``; an ungated mirror,
    a local dataset directory or a JSONL data file also work) with ``datasets`` and takes
    the first user turn of ``conversations``; ``"embedded"`` reads the shipped set;
    a ``.jsonl``/``.json``/``.csv`` path reads that file. Paper §4: ``load_prompts("lima", 100)``.
    """
    _check_n(n)
    resolved = check_prompt_source(source)
    if resolved == "lima":
        frame = _load_lima(dataset_id, split=split, revision=revision, n=n)
    else:
        frame = read_prompt_file(resolved)
    if n is not None:
        frame = frame.head(n).reset_index(drop=True)
    return frame


# --------------------------------------------------------------------------- LIMA
def first_user_turn(conversations: Any) -> str:
    """The user's first message of a LIMA ``conversations`` field.

    LIMA stores alternating strings (user first); mirrors sometimes use
    ``{"from"/"role": ..., "value"/"content": ...}`` dicts, handled too.
    """
    turns = _turns(conversations)
    if not turns:
        raise ValueError("conversation has no turns")
    return turns[0][1]


def _turns(conversations: Any) -> list[tuple[str, str]]:
    """(role, text) pairs; plain strings alternate user / assistant."""
    if isinstance(conversations, str) or not isinstance(conversations, Iterable):
        raise ValueError(f"'conversations' must be a list of turns, got {type(conversations).__name__}")
    out: list[tuple[str, str]] = []
    for k, turn in enumerate(conversations):
        if isinstance(turn, str):
            out.append(("user" if k % 2 == 0 else "assistant", turn))
        elif isinstance(turn, dict):
            role = str(turn.get("role", turn.get("from", "user" if k % 2 == 0 else "assistant"))).lower()
            text = turn.get("content", turn.get("value", turn.get("text")))
            if not isinstance(text, str):
                raise ValueError(f"turn {k} has no text")
            out.append(("user" if role in ("user", "human") else "assistant", text))
        else:
            raise ValueError(f"turn {k} is a {type(turn).__name__}, expected str or dict")
    users = [i for i, (role, _) in enumerate(out) if role == "user"]
    if not users:
        return []
    return out[users[0] :]


def lima_frame(rows: Iterable[dict], *, split: str = "train") -> pd.DataFrame:
    """Parse LIMA rows (``conversations``, ``source``) into the prompt table.

    ``prompt_id`` is ``lima-<split>-<row:04d>`` (row = position in the split, so
    ``lima-train-0000`` is the paper's single-prompt figure), ``prompt`` the first user
    turn, ``response`` the turn after it (None when absent), ``source`` LIMA's origin tag.
    """
    base = split.split("[")[0]
    records = []
    for i, row in enumerate(rows):
        if "conversations" not in row:
            raise ValueError(f"LIMA row {i} has no 'conversations' field (fields: {sorted(row)})")
        try:
            turns = _turns(row["conversations"])
        except ValueError as exc:
            raise ValueError(f"LIMA row {i}: {exc}") from exc
        if not turns or not turns[0][1].strip():
            raise ValueError(f"LIMA row {i}: empty first user turn")
        response = turns[1][1] if len(turns) > 1 else None
        records.append(
            {
                "prompt_id": f"lima-{base}-{i:04d}",
                "prompt": turns[0][1],
                "response": response,
                "source": row.get("source"),
            }
        )
    return pd.DataFrame.from_records(records, columns=["prompt_id", "prompt", "response", "source"])


def _lima_error(dataset_id: str, detail: str) -> HubAccessError:
    return HubAccessError(
        f"cannot load LIMA ({dataset_id!r}): {detail}. LIMA is gated: accept its terms on "
        f"https://huggingface.co/datasets/{dataset_id}, run `hf auth login` on a machine "
        "with hub access (the dataset is then cached), or use `--prompts embedded` offline."
    )


def _load_lima(dataset_id: str, *, split: str, revision: str | None, n: int | None) -> pd.DataFrame:
    import datasets

    local = Path(dataset_id).expanduser()
    if local.exists():
        # A local stand-in or mirror: a data file (json/jsonl/csv/parquet) or a dataset directory.
        with tempfile.TemporaryDirectory(prefix="dlmpaper-lima-") as cache:
            if local.is_file():
                suffix = local.suffix.lower().lstrip(".")
                builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(suffix)
                if builder is None:
                    raise ValueError(f"{local}: unsupported data file type (use .jsonl, .json, .csv or .parquet)")
                base = split.split("[")[0]
                ds = datasets.load_dataset(builder, data_files={base: str(local)}, split=split, cache_dir=cache)
            else:
                ds = datasets.load_dataset(str(local), split=split, cache_dir=cache)
            rows = ds.select(range(min(n, len(ds)))) if n is not None else ds
            return lima_frame(rows.to_list(), split=split)

    if "/" not in dataset_id:
        raise ValueError(f"dataset_id {dataset_id!r} is neither an existing path nor a hub id 'org/name'")
    if not dataset_cached(dataset_id):
        if offline(datasets=True):
            raise _lima_error(dataset_id, "HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set and it is not cached")
        if not hub_available():
            raise _lima_error(dataset_id, "the Hugging Face Hub is unreachable and it is not cached")
    try:
        ds = datasets.load_dataset(dataset_id, split=split, revision=revision)
    except (OSError, ConnectionError) as exc:  # DatasetNotFoundError (gated / no auth) is an OSError
        raise _lima_error(dataset_id, f"{exc.__class__.__name__}: {exc}") from exc
    rows = ds.select(range(min(n, len(ds)))) if n is not None else ds
    return lima_frame(rows.to_list(), split=split)


# --------------------------------------------------------------------------- local files
def read_prompt_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``.jsonl`` / ``.json`` (array of objects) / ``.csv`` prompt file, validated.

    Each record needs a non-empty string ``prompt``; ``prompt_id`` is optional
    (default ``<file stem>-<index:04d>``) and must be unique. Other fields are kept
    as columns. Problems raise :class:`PromptFileError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = _jsonl_records(path)
    elif suffix == ".json":
        records = _json_records(path)
    elif suffix == ".csv":
        records = _csv_records(path)
    else:
        raise ValueError(f"{path}: unsupported prompt file type (use {', '.join(PROMPT_SUFFIXES)})")
    return _validate(path, records)


def _fail(path: Path, line: int, what: str) -> PromptFileError:
    return PromptFileError(f"{path.name}, line {line}: {what} (file: {path})")


def _read_text(path: Path) -> str:
    """The file's text: UTF-8, a leading byte-order mark dropped; anything else fails naming the line."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise _fail(
            path,
            data.count(b"\n", 0, exc.start) + 1,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {exc.start - line_start + 1}); re-save the file as UTF-8",
        ) from None


def _jsonl_records(path: Path) -> list[tuple[int, Any]]:
    records = []
    for lineno, line in enumerate(io.StringIO(_read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _fail(path, lineno, f"bad JSON ({exc.msg} at column {exc.colno})") from exc
    return records


def _json_records(path: Path) -> list[tuple[int, Any]]:
    """Walk a JSON array element by element so each record keeps its starting line."""
    text = _read_text(path)
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def bad(pos: int, what: str) -> PromptFileError:
        return _fail(path, line_of(pos), what)

    pos = skip(0)
    if pos >= len(text) or text[pos] != "[":
        raise bad(pos, "expected a JSON array of objects ('[' ...)")
    pos = skip(pos + 1)
    records: list[tuple[int, Any]] = []
    if pos < len(text) and text[pos] == "]":
        return records
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _fail(path, exc.lineno, f"bad JSON ({exc.msg} at column {exc.colno})") from exc
        records.append((line_of(pos), value))
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip(pos + 1) != len(text):
                raise bad(skip(pos + 1), "bad JSON (extra data after the array)")
            return records
        raise bad(pos, "bad JSON (expected ',' or ']' between records)")


def _csv_records(path: Path) -> list[tuple[int, Any]]:
    """Rows of a CSV file; ``strict`` quoting, so an unclosed quote cannot swallow the rest of the file."""
    records = []
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""), strict=True)
    start = 1
    try:
        if reader.fieldnames is None:
            raise _fail(path, 1, "empty file (expected a header row with a 'prompt' column)")
        if "prompt" not in reader.fieldnames:
            raise _fail(path, 1, f"missing 'prompt' column in header {reader.fieldnames}")
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise _fail(path, start, f"more fields than the header's {len(reader.fieldnames)}")
            records.append((start, dict(row)))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise _fail(
                path,
                start,
                "unclosed quote: the quoted field starting on this line runs to the end of the file; "
                'close it (write a quote inside a field as "")',
            ) from None
        raise _fail(
            path, start, f'bad CSV ({exc}); quote fields that contain commas, write a quote inside one as ""'
        ) from None
    return records


def _validate(path: Path, records: list[tuple[int, Any]]) -> pd.DataFrame:
    seen: dict[str, int] = {}
    rows = []
    for index, (line, record) in enumerate(records):
        if not isinstance(record, dict):
            raise _fail(path, line, f"expected an object with a 'prompt' field, got {type(record).__name__}")
        if "prompt" not in record or record["prompt"] is None:
            raise _fail(path, line, f"missing 'prompt' field (fields: {sorted(record)})")
        prompt = record["prompt"]
        if not isinstance(prompt, str):
            raise _fail(path, line, f"'prompt' must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise _fail(path, line, "empty prompt")
        raw_id = record.get("prompt_id")
        if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
            prompt_id = f"{path.stem}-{index:04d}"
        elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
            prompt_id = str(raw_id)
        else:
            raise _fail(path, line, f"'prompt_id' must be a string or integer, got {type(raw_id).__name__}")
        if prompt_id in seen:
            raise _fail(path, line, f"duplicate prompt_id {prompt_id!r} (first on line {seen[prompt_id]})")
        seen[prompt_id] = line
        rows.append({**record, "prompt_id": prompt_id, "prompt": prompt})
    if not rows:
        raise PromptFileError(f"{path.name}: no prompts in file (file: {path})")
    columns = ["prompt_id", "prompt"]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return pd.DataFrame.from_records(rows, columns=columns)
