"""The embedded training corpus: WordNet 3.0 turned into instruction-style pairs.

Paper context: the paper's probes (§4, issue (i)) and the marginal trap (§4, issue (ii))
run on LLaDA-8B-Instruct, an SFT'd chat model. To reproduce them offline we train a small
masked diffusion LM on instruction-style prompt -> response pairs that we can ship. WordNet
(Princeton's license allows redistribution with its notice) gives definitions, examples,
synonyms and hypernym chains for ~150k words; we compose them into answers of 5-120 tokens.

Design choices (see ``data/wordnet_corpus/README.md``):
- every answer restates the headword first ("The word X ..."), so "copy the prompt's content
  into the first answer positions" is learnable by a small model (the paper's "content-specific
  near the prompt" behaviour needs it);
- train / held-out are split **by headword** (a hash of the headword), so no headword is in both.

Build (needs the raw WordNet files, e.g. ``apt-get install wordnet-base``)::

    python -m dlmpaper.corpora.wordnet --wordnet-dir /usr/share/wordnet

Used by ``dlmpaper.train`` (training) and ``dlmpaper.prompts`` (the ``embedded`` prompt set).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dlmpaper import paths

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
#: Share of headwords held out (by a hash of the headword, so stable across rebuilds).
HELDOUT_SHARE = 0.05
#: The word-level cap on a composed answer (keeps answers within ~120 tokens).
MAX_ANSWER_WORDS = 85
_HEADWORD = re.compile(r"^[a-z]{3,14}$")

PROMPTS = {
    "define": ["What does the word {w} mean?", "Define the word {w}.", "What is the meaning of {w}?"],
    "example": ["Use the word {w} in a sentence.", "Give an example sentence with {w}."],
    "synonyms": ["Give a synonym for the word {w}.", "What are other words for {w}?"],
    "hypernyms": ["What kind of thing is {w}?", "What is {w} a kind of?"],
    "tell": ["Tell me about the word {w}."],
}


@dataclass
class Synset:
    """One WordNet synset: its words, gloss definition, examples and hypernym offsets."""

    pos: str
    words: list[str]
    definition: str
    examples: list[str]
    hypernyms: list[str] = field(default_factory=list)


def _clean_word(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word).replace("_", " ")


def parse_data_file(path: Path) -> dict[str, Synset]:
    """Parse a WordNet ``data.POS`` file (format: ``wndb(5WN)``) into synsets keyed by offset."""
    synsets = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):  # license header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, pos, n_words = fields[0], fields[2], int(fields[3], 16)
            words = [_clean_word(fields[4 + 2 * i]) for i in range(n_words)]
            cursor = 4 + 2 * n_words
            n_pointers = int(fields[cursor])
            hypernyms = []
            for j in range(n_pointers):
                symbol, target = fields[cursor + 1 + 4 * j], fields[cursor + 2 + 4 * j]
                if symbol in ("@", "@i"):
                    hypernyms.append(target)
            parts = [p.strip() for p in gloss.strip().split(";")]
            definition = "; ".join(p for p in parts if not p.startswith('"')) or gloss.strip()
            examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
            synsets[offset] = Synset(pos, words, definition.strip(), [e for e in examples if e], hypernyms)
    return synsets


def parse_index_file(path: Path) -> Iterator[tuple[str, str, int, list[str]]]:
    """Yield ``(lemma, pos, tagged_sense_count, synset_offsets)`` from a WordNet ``index.POS`` file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):
                continue
            fields = line.split()
            lemma, pos, n_synsets, n_pointers = fields[0], fields[1], int(fields[2]), int(fields[3])
            cursor = 4 + n_pointers
            tagged = int(fields[cursor + 1])
            offsets = fields[cursor + 2 : cursor + 2 + n_synsets]
            yield lemma, pos, tagged, offsets


def is_heldout(headword: str) -> bool:
    """Stable train / held-out assignment by headword (no headword is in both splits)."""
    digest = hashlib.sha256(headword.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELDOUT_SHARE


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".;:,")
    return text + "."


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _hypernym_chain(synset: Synset, synsets: dict[str, Synset], depth: int = 3) -> list[str]:
    chain, current = [], synset
    for _ in range(depth):
        if not current.hypernyms or current.hypernyms[0] not in synsets:
            break
        current = synsets[current.hypernyms[0]]
        chain.append(current.words[0])
    return chain


def compose_pairs(headword: str, pos: str, senses: list[Synset], synsets: dict[str, Synset]) -> list[dict]:
    """Compose the instruction pairs for one headword and part of speech.

    Every answer starts with "The word X", so its third token(s) copy the prompt's headword.
    """
    first = senses[0]
    pos_name = POS_NAMES[pos]
    intro = f"The word {headword} is {_a(pos_name)} {pos_name}."
    synonyms = [w for w in first.words if w.lower() != headword][:4]
    chain = _hypernym_chain(first, synsets)
    example = next((e for s in senses for e in s.examples if headword in e.lower().split()), None)
    answers = {"define": f"{intro} It means {_sentence(first.definition)}"}
    if example:
        answers["example"] = f"The word {headword} can be used like this: {_sentence(example)}"
    if synonyms:
        answers["synonyms"] = (
            f"The word {headword} has the synonym{'s' if len(synonyms) > 1 else ''} {_join(synonyms)}."
        )
    if chain:
        kinds = ", which is a kind of ".join(chain)
        answers["hypernyms"] = f"The word {headword} names a kind of {kinds}."
    tell = [intro, f"It means {_sentence(first.definition)}"]
    if example:
        tell.append(f"For example: {_sentence(example)}")
    if synonyms:
        tell.append(f"Similar words are {_join(synonyms)}.")
    if chain:
        tell.append(f"It is a kind of {chain[0]}.")
    for other in senses[1:3]:
        tell.append(f"It can also mean {_sentence(other.definition)}")
    words, kept = 0, []
    for sentence in tell:
        words += len(sentence.split())
        if words > MAX_ANSWER_WORDS:
            break
        kept.append(sentence)
    answers["tell"] = " ".join(kept)
    pairs = []
    for task, answer in answers.items():
        template = PROMPTS[task][
            int(hashlib.sha256(f"{headword}{pos}{task}".encode()).digest()[0]) % len(PROMPTS[task])
        ]
        pairs.append(
            {
                "headword": headword,
                "pos": pos_name,
                "task": task,
                "prompt": template.format(w=headword),
                "response": answer,
            }
        )
    return pairs


def build_corpus(wordnet_dir: Path, min_tagged: int = 0) -> tuple[list[dict], list[dict]]:
    """Build ``(train, heldout)`` pair lists from the raw WordNet 3.0 files in ``wordnet_dir``."""
    wordnet_dir = Path(wordnet_dir)
    missing = [f for p in POS_FILES.values() for f in (f"data.{p}", f"index.{p}") if not (wordnet_dir / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"WordNet files {missing} not found in {wordnet_dir}; install them with "
            "`apt-get install wordnet-base` (they land in /usr/share/wordnet)"
        )
    synsets: dict[str, Synset] = {}
    by_pos = {}
    for pos, name in POS_FILES.items():
        by_pos[pos] = parse_data_file(wordnet_dir / f"data.{name}")
    train, heldout = [], []
    for pos, name in POS_FILES.items():
        synsets = by_pos[pos]
        for lemma, _, tagged, offsets in parse_index_file(wordnet_dir / f"index.{name}"):
            if not _HEADWORD.match(lemma) or tagged < min_tagged:
                continue
            senses = [synsets[o] for o in offsets if o in synsets]
            if not senses:
                continue
            pairs = compose_pairs(lemma, senses[0].pos, senses, synsets)
            (heldout if is_heldout(lemma) else train).extend(pairs)
    return train, heldout


def write_jsonl_gz(rows: list[dict], path: Path) -> str:
    """Write rows as gzipped JSON lines with a fixed gzip header (reproducible bytes); return the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_jsonl_gz(path: Path) -> list[dict]:
    """Read a gzipped JSON-lines file written by :func:`write_jsonl_gz`."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_split(split: str, directory: Path | None = None) -> list[dict]:
    """The shipped corpus split (``"train"`` or ``"heldout"``) of ``directory`` (default: the WordNet
    corpus), checksum-verified against its ``SHA256SUMS``."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    directory = paths.CORPUS_DIR if directory is None else Path(directory)
    path = directory / f"{split}.jsonl.gz"
    expected = {}
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        expected[name] = digest
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected.get(path.name) != actual:
        raise ValueError(
            f"{path} does not match its checksum in SHA256SUMS; restore it with `git checkout {path.relative_to(paths.ROOT)}` "
            f"or rebuild it with `python -m {'dlmpaper.corpora.wordnet --wordnet-dir /usr/share/wordnet' if directory == paths.CORPUS_DIR else 'dlmpaper.corpora.general'}`"
        )
    return read_jsonl_gz(path)


def embedded_prompt_set(heldout: list[dict], n: int = 200) -> list[dict]:
    """The ``embedded`` profile's prompts: ``n`` held-out "Tell me about the word X" pairs, in a
    stable pseudo-random order (sha256 of the headword), with their gold answers (notebooks 03, 04)."""
    tell = sorted(
        (r for r in heldout if r["task"] == "tell"),
        key=lambda r: hashlib.sha256(f"{r['headword']}/{r['pos']}".encode()).hexdigest(),
    )
    return [
        {
            "prompt_id": f"embedded-{i:04d}",
            "prompt": r["prompt"],
            "response": r["response"],
            "headword": r["headword"],
            "pos": r["pos"],
        }
        for i, r in enumerate(tell[:n])
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=paths.CORPUS_DIR)
    args = parser.parse_args(argv)
    train, heldout = build_corpus(args.wordnet_dir)
    sums = {
        name: write_jsonl_gz(rows, args.out / name)
        for name, rows in (("train.jsonl.gz", train), ("heldout.jsonl.gz", heldout))
    }
    prompts = paths.PROMPTS_DIR / "embedded.jsonl"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    prompts.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in embedded_prompt_set(heldout)))
    sums["../prompts/embedded.jsonl"] = hashlib.sha256(prompts.read_bytes()).hexdigest()
    (args.out / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    heads = {split: len({r["headword"] for r in rows}) for split, rows in (("train", train), ("heldout", heldout))}
    print(
        f"train: {len(train)} pairs, {heads['train']} headwords; heldout: {len(heldout)} pairs, {heads['heldout']} headwords"
    )


if __name__ == "__main__":
    main()
