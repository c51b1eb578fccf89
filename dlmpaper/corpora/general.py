"""The general instruction corpus: many sources, question forms and answer lengths.

Paper context: the positional probe (§4, issue (i)) reads the top-3 tokens at 128 mask positions
after a chat prompt. Its claim, content words near the prompt and end-of-sequence far away, is
only testable on a small model if that model has learnt general question answering rather than
one dictionary template. This module composes instruction pairs from redistributable text that
Debian packages install, each answer restating the question's subject in its first words (as
LIMA's answers do), with yes/no questions answered "Yes, ..." / "No, ...", and answer lengths
that depend on the question (short facts, long explanations).

Sources (licenses in ``data/general_corpus/LICENSES/``; see ``data/general_corpus/README.md``):

| source | Debian package | license |
|---|---|---|
| WordNet 3.0 (definitions, is-a, part-of, antonyms, examples) | ``wordnet-base`` | WordNet 3.0 license (permissive, keep notice) |
| The Jargon File 4.4.7 | ``dict-jargon`` | public domain |
| The Devil's Dictionary (Bierce, 1911) | ``dict-devil`` | public domain |
| the chemical elements of dict-elements (Z <= 100) | ``dict-elements`` | public domain |
| the Python 3.11 FAQs | ``python3-doc`` | PSF License Agreement (keep notice) |
| invented words (generated here) | none | MIT, like the code |

Held-out pairs are split **by subject** (sha256 of the lower-cased subject, 5%), over all sources
at once; a training pair that mentions a held-out subject as its second term is dropped. The build
is deterministic: no set iteration, no unseeded randomness, gzip with mtime 0.

    python -m dlmpaper.corpora.general            # writes data/general_corpus/

Used by ``dlmpaper.train --corpus general`` and ``dlmpaper.train.goals`` (the probe goals).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dlmpaper import paths
from dlmpaper.corpora.wordnet import write_jsonl_gz

#: Share of subjects held out (sha256 of the lower-cased subject).
HELDOUT_SHARE = 0.05
#: Answers are cut at a sentence boundary below this many words (about 190 tokens).
MAX_ANSWER_WORDS = 140
#: Invented words the probe evaluation uses (``dlmpaper.train.goals``): never generated for training.
RESERVED_INVENTED = (
    "plorvish",
    "blamupel",
    "tranquesh",
    "vorpelink",
    "snerdigal",
    "quimbrast",
    "flendorit",
    "grobulate",
    "mistrovan",
    "zelquinty",
    "drapsonet",
    "wumblique",
    "krenthous",
    "yarbolith",
    "pelminast",
    "chortovex",
)

WORDNET_DIR = Path("/usr/share/wordnet")
DICTD_DIR = Path("/usr/share/dictd")
PYTHON_DOC_DIR = Path("/usr/share/doc/python3.11/html/_sources/faq")

#: Where each source's raw text lives and which Debian package installs it.
SOURCES = {
    "wordnet": (
        "wordnet-base",
        [
            WORDNET_DIR / f
            for f in (
                "data.noun",
                "index.noun",
                "data.verb",
                "index.verb",
                "data.adj",
                "index.adj",
                "data.adv",
                "index.adv",
            )
        ],
    ),
    "jargon": ("dict-jargon", [DICTD_DIR / "jargon.index", DICTD_DIR / "jargon.dict.dz"]),
    "devil": ("dict-devil", [DICTD_DIR / "devil.index", DICTD_DIR / "devil.dict.dz"]),
    "elements": ("dict-elements", [DICTD_DIR / "elements.index", DICTD_DIR / "elements.dict.dz"]),
    "python_faq": (
        "python3-doc",
        [
            PYTHON_DOC_DIR / f"{name}.rst.txt"
            for name in ("general", "programming", "design", "library", "extending", "windows", "gui", "installed")
        ],
    ),
}

#: Question forms: form -> (style, prompt templates). ``style`` "dictionary" counts towards the
#: issue's "at most 50% dictionary-style" limit.
FORMS: dict[str, tuple[str, list[str]]] = {
    "what_is": ("dictionary", ["What is {ax}?", "What is meant by {ax}?", "Can you tell me what {ax} is?"]),
    "define": ("dictionary", ["Define the word {x}.", "What does the word {x} mean?", "What is the meaning of {x}?"]),
    "verb_meaning": ("dictionary", ["What does it mean to {x}?", "What does the verb {x} mean?"]),
    "adj_meaning": ("dictionary", ["What does it mean to be {x}?", "What does the adjective {x} mean?"]),
    "brief": (
        "dictionary",
        ["In one sentence, what does {x} mean?", "Briefly, what is {ax}?", "Give a short definition of {x}."],
    ),
    "detail": (
        "dictionary",
        [
            "Tell me everything you know about the word {x}.",
            "Explain the word {x} in detail.",
            "Describe {ax} in detail.",
        ],
    ),
    "is_a": ("yes/no", ["Is {ax} {ay}?", "Is {ax} a kind of {y}?", "Would you say that {ax} is {ay}?"]),
    "should_call": ("yes/no", ["Should I call {ax} {ay}?", "Can {ax} be called {ay}?"]),
    "part_of": ("yes/no", ["Is {ax} part of {ay}?", "Is {ax} one of the parts of {ay}?"]),
    "can_mean": ("yes/no", ['Can the word {x} mean "{g}"?', 'Does {x} mean "{g}"?']),
    "why_not": ("why", ["Why is {ax} not {ay}?", "Explain why {ax} is not {ay}."]),
    "compare": (
        "compare",
        ["Compare {ax} and {ay}.", "What is the difference between {ax} and {ay}?", "How is {ax} different from {ay}?"],
    ),
    "examples_of": (
        "example",
        ["Give an example of {ax}.", "Name some kinds of {x}.", "What are some examples of {x}?"],
    ),
    "parts": ("relation", ["What are the parts of {ax}?", "What parts does {ax} have?"]),
    "opposite": (
        "relation",
        ["What is the opposite of {x}?", "Give an antonym of {x}.", "What word means the opposite of {x}?"],
    ),
    "synonym": (
        "relation",
        ["What is another word for {x}?", "Give a synonym for {x}.", "Which words mean the same as {x}?"],
    ),
    "kind_of": ("relation", ["What kind of thing is {ax}?", "What category does {ax} belong to?"]),
    "sentence": (
        "sentence",
        [
            "Write a sentence using the word {x}.",
            "Use {x} in a sentence.",
            "Can you give an example sentence with {x}?",
        ],
    ),
    "used_for": ("how", ["What is {ax} used for?", "How is {ax} used?", "What do people use {ax} for?"]),
    "spell": (
        "spelling",
        ["How do you spell {x}?", "Spell the word {x} for me.", "How many letters are in the word {x}?"],
    ),
    "is_real": ("yes/no", ['Is "{x}" a real word?', "Is {x} an English word?", 'Does the word "{x}" exist?']),
    "jargon_meaning": (
        "dictionary",
        ["What does {x} mean in hacker slang?", "What is {x} in the Jargon File?", "In hacker jargon, what is {x}?"],
    ),
    "jargon_origin": (
        "explain",
        ["Where does the hacker term {x} come from?", "What is the origin of the jargon term {x}?"],
    ),
    "jargon_explain": ("explain", ["Explain the hacker term {x}.", "How do hackers use the word {x}?"]),
    "devil_define": (
        "dictionary",
        [
            "How does The Devil's Dictionary define {x}?",
            "What did Ambrose Bierce say about {x}?",
            "Give a cynical definition of {x}.",
        ],
    ),
    "element_symbol": ("fact", ["What is the chemical symbol for {x}?", "Which symbol stands for {x}?"]),
    "element_number": ("fact", ["What is the atomic number of {x}?", "How many protons does an atom of {x} have?"]),
    "element_weight": ("fact", ["What is the atomic weight of {x}?", "How heavy is an atom of {x}?"]),
    "element_by_number": ("fact", ["Which element has atomic number {n}?", "What is element number {n}?"]),
    "element_by_symbol": ("fact", ["Which element has the symbol {s}?", "What element does the symbol {s} stand for?"]),
    "element_about": ("explain", ["Tell me about the element {x}.", "What is {x}?", "Explain what {x} is."]),
    "element_heavier": ("yes/no", ["Is {x} heavier than {y}?", "Is an atom of {x} heavier than an atom of {y}?"]),
    "element_compare": ("compare", ["Compare {x} and {y}.", "What is the difference between {x} and {y}?"]),
    "faq": ("natural", ["{q}"]),
    "invented_meaning": (
        "invented",
        ['What does "{w}" mean?', 'What is the meaning of the word "{w}"?', 'Define "{w}".', "What does {w} mean?"],
    ),
    "invented_tell": (
        "invented",
        [
            'Tell me about the word "{w}".',
            'Explain the word "{w}".',
            "What is a {w}?",
            'Can you explain what "{w}" means?',
        ],
    ),
    "invented_sentence": ("invented", ['Use the word "{w}" in a sentence.', 'Write a sentence with "{w}".']),
    "invented_spell": ("invented", ['How do you spell "{w}"?', 'Spell "{w}" for me.']),
    "invented_is_real": ("yes/no", ['Is "{w}" a real word?', "Is {w} an English word?", 'Does the word "{w}" exist?']),
}

_HEADWORD = re.compile(r"^[a-z]{3,14}$")
#: Lexicographer files of concrete nouns, used for is-a and part-of questions (wndb(5WN)).
CONCRETE_LEXFILES = {
    5: "animal",
    6: "artifact",
    8: "body",
    13: "food",
    17: "object",
    18: "person",
    20: "plant",
    27: "substance",
}
#: A false is-a category is drawn from concrete synsets with at least this many direct hyponyms.
CATEGORY_MIN_HYPONYMS = 8
#: Noun lexicographer files whose nouns are mostly uncountable (no article in questions).
MASS_LEXFILES = {4, 7, 9, 10, 12, 13, 19, 22, 26, 27}


class MissingSourceError(FileNotFoundError):
    """A source's raw files are not installed; the message names the Debian package."""


def require(source: str, root_map: dict[str, Path] | None = None) -> list[Path]:
    """The raw files of ``source`` (relocated under ``root_map[source]`` if given), or a one-line error."""
    package, files = SOURCES[source]
    if root_map and source in root_map:
        files = [root_map[source] / f.name for f in files]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise MissingSourceError(
            f"source {source!r} is missing {missing[0]}: install it with `apt-get install {package}`"
        )
    return files


def _seed(*parts) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big"))


def is_heldout(subject: str) -> bool:
    """Stable held-out assignment by lower-cased subject (no subject is in both splits)."""
    digest = hashlib.sha256(subject.lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELDOUT_SHARE


def article(word: str, mass: bool = False) -> str:
    if mass:
        return word
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip(".;:, ")
    return _cap(text) + "." if text else ""


def _join(words: list[str], conj: str = "and") -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conj} " + words[-1]


def _trim(text: str, max_words: int = MAX_ANSWER_WORDS) -> str:
    """Cut ``text`` at the last sentence end within ``max_words`` words."""
    words = text.split()
    if len(words) <= max_words:
        return text
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut.rstrip(",;:") + "."


@dataclass
class Pair:
    prompt: str
    response: str
    source: str
    subject: str
    form: str
    other: str | None = None  # a second subject the prompt names (dropped from train if held out)

    def row(self) -> dict:
        return {
            "prompt": self.prompt,
            "response": _trim(self.response),
            "source": self.source,
            "subject": self.subject,
            "form": self.form,
            "style": FORMS[self.form][0],
        }


def _prompt(form: str, key: str, **values) -> str:
    templates = FORMS[form][1]
    return templates[_seed("template", form, key).randrange(len(templates))].format(**values)


# ----------------------------------------------------------------------------- WordNet


@dataclass
class Synset:
    """One WordNet synset with the pointers we use (wndb(5WN) format)."""

    offset: str
    pos: str
    lexfile: int
    words: list[str]
    gloss: str
    examples: list[str]
    hypernyms: list[str] = field(default_factory=list)
    hyponyms: list[str] = field(default_factory=list)
    part_holonyms: list[str] = field(default_factory=list)
    part_meronyms: list[str] = field(default_factory=list)
    antonyms: list[tuple[int, str, int]] = field(
        default_factory=list
    )  # (source word no, target offset, target word no)


def _clean_word(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word).replace("_", " ")


def parse_wordnet_data(path: Path, pos_key: str) -> dict[str, Synset]:
    """Parse a WordNet ``data.POS`` file into synsets keyed by ``POS:offset``."""
    synsets = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  ") or not line.strip():
                continue
            head, _, gloss = line.partition(" | ")
            f = head.split()
            offset, lexfile, n_words = f[0], int(f[1]), int(f[3], 16)
            words = [_clean_word(f[4 + 2 * i]) for i in range(n_words)]
            cursor = 4 + 2 * n_words
            s = Synset(f"{pos_key}:{offset}", pos_key, lexfile, words, "", [])
            for j in range(int(f[cursor])):
                symbol, target, tpos, st = f[cursor + 1 + 4 * j : cursor + 5 + 4 * j]
                tkey = f"{'a' if tpos == 's' else tpos}:{target}"
                if symbol in ("@", "@i"):
                    s.hypernyms.append(tkey)
                elif symbol in ("~", "~i"):
                    s.hyponyms.append(tkey)
                elif symbol == "#p":
                    s.part_holonyms.append(tkey)
                elif symbol == "%p":
                    s.part_meronyms.append(tkey)
                elif symbol == "!":
                    s.antonyms.append((int(st[:2], 16), tkey, int(st[2:], 16)))
            parts = [p.strip() for p in gloss.strip().split(";")]
            s.gloss = "; ".join(p for p in parts if not p.startswith('"')).strip() or gloss.strip()
            s.examples = [p.strip().strip('"').strip() for p in parts if p.startswith('"')]
            synsets[s.offset] = s
    return synsets


class WordNet:
    """The parts of WordNet 3.0 the composer needs: synsets, and lemma -> senses per part of speech."""

    POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}

    def __init__(self, directory: Path):
        self.synsets: dict[str, Synset] = {}
        self.senses: dict[tuple[str, str], list[str]] = {}
        self.tagged: dict[str, int] = {}
        for key, name in self.POS.items():
            self.synsets.update(parse_wordnet_data(directory / f"data.{name}", key))
        for key, name in self.POS.items():
            with open(directory / f"index.{name}", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith("  ") or not line.strip():
                        continue
                    f = line.split()
                    lemma, n_synsets, n_pointers = f[0], int(f[2]), int(f[3])
                    cursor = 4 + n_pointers
                    tagged = int(f[cursor + 1])
                    offsets = [f"{key}:{o}" for o in f[cursor + 2 : cursor + 2 + n_synsets]]
                    self.senses[(lemma, key)] = [o for o in offsets if o in self.synsets]
                    self.tagged[lemma] = self.tagged.get(lemma, 0) + tagged
        self._closure: dict[str, set[str]] = {}

    def ancestors(self, offset: str) -> set[str]:
        """All transitive hypernyms (instance hypernyms included) of a synset."""
        if offset not in self._closure:
            out: set[str] = set()
            stack = list(self.synsets[offset].hypernyms)
            while stack:
                o = stack.pop()
                if o in out or o not in self.synsets:
                    continue
                out.add(o)
                stack.extend(self.synsets[o].hypernyms)
            self._closure[offset] = out
        return self._closure[offset]

    def chain(self, offset: str, depth: int = 4) -> list[str]:
        """The first-hypernym chain of a synset (offsets), nearest first."""
        out, current = [], self.synsets[offset]
        for _ in range(depth):
            if not current.hypernyms or current.hypernyms[0] not in self.synsets:
                break
            current = self.synsets[current.hypernyms[0]]
            out.append(current.offset)
        return out

    def name(self, offset: str) -> str:
        return self.synsets[offset].words[0]

    def noun_senses(self, word: str) -> list[str]:
        return self.senses.get((word.replace(" ", "_"), "n"), [])

    def is_a(self, x: str, y: str) -> bool:
        """True iff some noun sense of ``x`` has some noun sense of ``y`` among its ancestors."""
        targets = set(self.noun_senses(y))
        return any(self.ancestors(o) & targets for o in self.noun_senses(x))

    def part_of(self, x: str, y: str) -> bool:
        """True iff some noun sense of ``x`` is a part of some sense of ``y`` or of one of its kinds' ancestors."""
        targets = set(self.noun_senses(y))
        for o in self.noun_senses(x):
            for h in self.synsets[o].part_holonyms:
                if h in targets or self.ancestors(h) & targets:
                    return True
        # y is a kind of something x is part of (a car has wheels because a wheeled vehicle does)
        holonyms = {h for o in self.noun_senses(x) for h in self.synsets[o].part_holonyms}
        return any(self.ancestors(t) & holonyms for t in targets)

    def related(self, x: str, y: str) -> bool:
        """Any sense of one is, or is an ancestor of, a sense of the other (or they share a word)."""
        xs, ys = set(self.noun_senses(x)), set(self.noun_senses(y))
        return bool(xs & ys) or self.is_a(x, y) or self.is_a(y, x)


def _mass(wn: WordNet, offset: str) -> bool:
    return wn.synsets[offset].lexfile in MASS_LEXFILES


def _an(wn: WordNet, word: str, offset: str) -> str:
    return article(word, _mass(wn, offset))


def _gloss_sentence(wn: WordNet, word: str, offset: str) -> str:
    """ "A whale is any of the larger cetacean mammals ..." (noun), "To run is to ..." (verb), ..."""
    s = wn.synsets[offset]
    gloss = s.gloss.rstrip(".; ")
    if s.pos == "n":
        return f"{_cap(_an(wn, word, offset))} is {_lower_first(gloss)}."
    if s.pos == "v":
        return f"To {word} is to {_lower_first(re.sub(r'^to ', '', gloss))}."
    if s.pos == "a":
        return f"Something {word} is {_lower_first(gloss)}."
    return f"The adverb {word} means {_lower_first(gloss)}."


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or a name-like capital pair."""
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _extras(wn: WordNet, word: str, senses: list[str], rng: random.Random, n: int) -> list[str]:
    """Up to ``n`` supporting sentences (kind, example, synonyms, other senses) in a seeded order."""
    first = wn.synsets[senses[0]]
    out = []
    chain = [wn.name(o) for o in wn.chain(senses[0], 3)]
    if chain and first.pos in "nv":
        verb = "is a kind of" if first.pos == "n" else "is a way to"
        out.append(f"It {verb} {', which is a kind of '.join(chain) if first.pos == 'n' else chain[0]}.")
    example = next((e for o in senses for e in wn.synsets[o].examples if word in e.lower().split()), None)
    if example:
        out.append(f'For example: "{_sentence(example)}"')
    synonyms = [w for w in first.words if w.lower() != word][:3]
    if synonyms:
        out.append(
            f"Other words for it are {_join(synonyms)}."
            if len(synonyms) > 1
            else f"Another word for it is {synonyms[0]}."
        )
    for o in senses[1:3]:
        out.append(f"{_cap(word)} can also mean {_lower_first(wn.synsets[o].gloss.rstrip('.; '))}.")
    rng.shuffle(out)
    return out[:n]


def wordnet_pairs(wn: WordNet) -> list[Pair]:
    """Compose WordNet pairs: a seeded choice of forms per headword, more for common words."""
    pairs: list[Pair] = []
    lemmas = sorted({lemma for lemma, _ in wn.senses if _HEADWORD.match(lemma)})
    # plausible false categories: concrete noun synsets with many hyponyms, named by a single word
    category_pool = sorted(
        o
        for o, s in wn.synsets.items()
        if s.pos == "n"
        and s.lexfile in CONCRETE_LEXFILES
        and len(s.hyponyms) >= CATEGORY_MIN_HYPONYMS
        and _HEADWORD.match(s.words[0])
    )
    holonym_pool = sorted(
        {h for s in wn.synsets.values() if s.pos == "n" for h in s.part_holonyms if _HEADWORD.match(wn.name(h))}
    )
    gloss_pool = sorted(o for o, s in wn.synsets.items() if s.pos == "n" and 3 <= len(s.gloss.split()) <= 14)
    for lemma in lemmas:
        rng = _seed("wordnet", lemma)
        common = wn.tagged.get(lemma, 0) > 0
        budget = 4 if wn.tagged.get(lemma, 0) >= 5 else 3 if common else (1 if rng.random() < 0.35 else 0)
        if budget == 0:
            continue
        candidates = _wordnet_candidates(wn, lemma, rng, category_pool, holonym_pool, gloss_pool, common)
        rng.shuffle(candidates)
        # at most one dictionary-style pair per headword keeps the dictionary share under half
        chosen, seen_forms, dictionary = [], set(), 0
        for pair in candidates:
            style = FORMS[pair.form][0]
            if pair.form in seen_forms or (style == "dictionary" and dictionary >= 1):
                continue
            chosen.append(pair)
            seen_forms.add(pair.form)
            dictionary += style == "dictionary"
            if len(chosen) >= budget:
                break
        pairs.extend(chosen)
    return pairs


def _wordnet_candidates(wn, lemma, rng, category_pool, holonym_pool, gloss_pool, common) -> list[Pair]:
    out: list[Pair] = []

    nouns, verbs, adjs = (
        wn.senses.get((lemma, "n"), []),
        wn.senses.get((lemma, "v"), []),
        wn.senses.get((lemma, "a"), []),
    )
    main = nouns or verbs or adjs or wn.senses.get((lemma, "r"), [])
    if not main:
        return out
    first = main[0]
    ax = _an(wn, lemma, first) if nouns else lemma

    def add(form, response, other=None, **values):
        values.setdefault("ax", ax)
        out.append(Pair(_prompt(form, lemma, x=lemma, **values), response, "wordnet", lemma, form, other))

    lead = _gloss_sentence(wn, lemma, first)
    if nouns:
        add("what_is", " ".join([lead] + _extras(wn, lemma, nouns, rng, rng.randint(1, 3))), ax=ax)
    if verbs:
        add(
            "verb_meaning",
            " ".join([_gloss_sentence(wn, lemma, verbs[0])] + _extras(wn, lemma, verbs, rng, rng.randint(1, 2))),
        )
    if adjs:
        add(
            "adj_meaning",
            " ".join([_gloss_sentence(wn, lemma, adjs[0])] + _extras(wn, lemma, adjs, rng, rng.randint(1, 2))),
        )
    pos_name = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}[wn.synsets[first].pos]
    add(
        "define",
        f"The word {lemma} is {article(pos_name)}. It means {_lower_first(wn.synsets[first].gloss.rstrip('.; '))}. "
        + " ".join(_extras(wn, lemma, main, rng, rng.randint(0, 2))),
    )
    add("brief", _cap(f"{lemma} means {_lower_first(wn.synsets[first].gloss.rstrip('.; '))}."), ax=ax)
    detail = [lead] + _extras(wn, lemma, main, rng, 5)
    if nouns:
        parts = [wn.name(m) for m in wn.synsets[nouns[0]].part_meronyms][:4]
        if parts:
            detail.append(f"Its parts include {_join([article(p) for p in parts])}.")
        kinds = [wn.name(h) for h in wn.synsets[nouns[0]].hyponyms][:4]
        if kinds:
            detail.append(f"Kinds of {lemma} include {_join(kinds)}.")
    for o in main[3:5]:
        detail.append(f"In another sense, {lemma} means {_lower_first(wn.synsets[o].gloss.rstrip('.; '))}.")
    if len(" ".join(detail).split()) >= 35:
        add("detail", " ".join(detail), ax=ax)
    # spelling and "is it a real word": rare words are where copying matters most
    letters = "-".join(lemma)
    if rng.random() < 0.4:
        add("spell", f"The word {lemma} is spelled {letters}. It has {len(lemma)} letters. {lead}")
    if not common:
        add(
            "is_real",
            f'Yes, "{lemma}" is a real word, though not a common one. It is {article(pos_name)}: {_lower_first(lead)}',
        )
    if nouns and wn.synsets[nouns[0]].lexfile in CONCRETE_LEXFILES:
        _noun_relations(wn, lemma, nouns, rng, category_pool, holonym_pool, add)
    if nouns:
        gloss = wn.synsets[nouns[0]].gloss
        used = re.search(r"\b(used (?:for|to|in|as|by) .*)", gloss)
        if used:
            add("used_for", f"{_cap(ax)} is {used.group(1).rstrip('.; ')}. {lead}", ax=ax)
        # "can X mean G?": true with one of its own glosses, false with a gloss from another lexicographer file
        if rng.random() < 0.5 or len(nouns) < 2:
            g = nouns[min(len(nouns) - 1, rng.randrange(2))]
            if 3 <= len(wn.synsets[g].gloss.split()) <= 14:
                add(
                    "can_mean",
                    f'Yes, the word {lemma} can mean "{wn.synsets[g].gloss}". {_gloss_sentence(wn, lemma, g)}',
                    g=wn.synsets[g].gloss,
                )
        else:
            lexfiles = {wn.synsets[o].lexfile for o in nouns}
            for _ in range(20):
                o = gloss_pool[rng.randrange(len(gloss_pool))]
                if wn.synsets[o].lexfile not in lexfiles and lemma not in " ".join(wn.synsets[o].words).lower():
                    add(
                        "can_mean",
                        f'No, the word {lemma} does not mean "{wn.synsets[o].gloss}"; that describes {article(wn.name(o))}. '
                        f"{_gloss_sentence(wn, lemma, nouns[0])}",
                        other=wn.name(o),
                        g=wn.synsets[o].gloss,
                    )
                    break
    sense = wn.synsets[first]
    example = next((e for o in main for e in wn.synsets[o].examples if lemma in e.lower().split()), None)
    if example:
        add(
            "sentence",
            f'Here is a sentence with the word {lemma}: "{_sentence(example)}" In it, {lemma} means {_lower_first(sense.gloss.rstrip(".; "))}.',
        )
    synonyms = [w for w in sense.words if w.lower() != lemma][:4]
    if synonyms:
        more = _join(synonyms[1:]) if len(synonyms) > 1 else None
        text = f"Another word for {lemma} is {synonyms[0]}." + (f" You can also say {more}." if more else "")
        add("synonym", f"{text} All of them mean {_lower_first(sense.gloss.rstrip('.; '))}.")
    for src_word, target, _tgt_word in sense.antonyms:
        if target in wn.synsets:
            ant = wn.synsets[target].words[max(0, _tgt_word - 1)] if _tgt_word else wn.name(target)
            add(
                "opposite",
                f"The opposite of {lemma} is {ant}. {_cap(lemma)} means {_lower_first(sense.gloss.rstrip('.; '))}, "
                f"while {ant} means {_lower_first(wn.synsets[target].gloss.rstrip('.; '))}.",
                other=ant,
            )
            break
    return out


def _noun_relations(wn, lemma, nouns, rng, category_pool, holonym_pool, add) -> None:
    """Is-a, part-of, why-not, compare, examples-of, parts and kind-of pairs for a concrete noun."""
    first = nouns[0]
    ax = _an(wn, lemma, first)
    chain = wn.chain(first, 4)
    # true is-a: an ancestor named by a single word, 1-4 steps up
    true_cats = [o for o in chain if _HEADWORD.match(wn.name(o)) and wn.name(o) != lemma]
    # false is-a: a category that no sense of the lemma falls under, and that is not under the lemma
    false_cat = None
    for _ in range(30):
        o = category_pool[rng.randrange(len(category_pool))]
        y = wn.name(o)
        if y != lemma and not wn.related(lemma, y) and not any(w.lower() == lemma for w in wn.synsets[o].words):
            false_cat = o
            break
    if true_cats:
        o = true_cats[rng.randrange(len(true_cats))]
        y = wn.name(o)
        ay = _an(wn, y, o)
        path = ", which is a kind of ".join(wn.name(c) for c in chain[: chain.index(o) + 1])
        if rng.random() < 0.7:
            add(
                "is_a",
                f"Yes, {ax} is {ay}. {_cap(ax)} is a kind of {path}. {_gloss_sentence(wn, lemma, first)}",
                other=y,
                ay=ay,
                y=y,
            )
        else:
            add("should_call", f"Yes, you can call {ax} {ay}, because {ax} is a kind of {path}.", other=y, ay=ay)
        add("kind_of", f"{_cap(ax)} is a kind of {path}. {_gloss_sentence(wn, lemma, first)}", ax=ax)
    if false_cat:
        y = wn.name(false_cat)
        ay = _an(wn, y, false_cat)
        kind = wn.name(chain[0]) if chain else None
        reason = f" {_cap(ax)} is a kind of {kind}, not a kind of {y}." if kind else ""
        form = "is_a" if rng.random() < 0.7 else "should_call"
        if form == "is_a":
            add("is_a", f"No, {ax} is not {ay}.{reason} {_gloss_sentence(wn, lemma, first)}", other=y, ay=ay, y=y)
        else:
            add(
                "should_call",
                f"No, you should not call {ax} {ay}.{reason} {_gloss_sentence(wn, lemma, first)}",
                other=y,
                ay=ay,
            )
        # why-not: the lowest common ancestor says what each one is instead
        ychain = wn.chain(false_cat, 12)
        xchain = wn.chain(first, 12)
        common = next((o for o in xchain if o in set(ychain) | {false_cat}), None)
        if common and common != false_cat and xchain.index(common) >= 1:
            x_kind = wn.name(xchain[xchain.index(common) - 1])
            y_kind = (
                wn.name(ychain[ychain.index(common) - 1]) if common in ychain and ychain.index(common) >= 1 else None
            )
            text = f"{_cap(ax)} is not {ay} because {ax} is {article(x_kind)}"
            text += f", while {ay} is {article(y_kind)}" if y_kind and y_kind != y else ""
            text += f". Both are kinds of {wn.name(common)}. {_gloss_sentence(wn, lemma, first)} {_gloss_sentence(wn, y, false_cat)}"
            add("why_not", text, other=y, ay=ay)
    # compare with a sibling (another hyponym of the first hypernym)
    if chain:
        siblings = [
            h
            for h in wn.synsets[chain[0]].hyponyms
            if h != first and _HEADWORD.match(wn.name(h)) and wn.name(h) != lemma
        ]
        if siblings:
            o = siblings[rng.randrange(len(siblings))]
            y = wn.name(o)
            ay = _an(wn, y, o)
            add(
                "compare",
                f"{_cap(ax)} and {ay} are both kinds of {wn.name(chain[0])}. {_gloss_sentence(wn, lemma, first)} "
                f"By contrast, {_lower_first(_gloss_sentence(wn, y, o))}",
                other=y,
                ay=ay,
            )
    kinds = [wn.name(h) for h in wn.synsets[first].hyponyms]
    if len(kinds) >= 2:
        picked = sorted(rng.sample(kinds, min(len(kinds), rng.randint(2, 5))))
        detail = " ".join(
            _gloss_sentence(wn, wn.name(h), h) for h in wn.synsets[first].hyponyms if wn.name(h) in picked[:2]
        )
        add("examples_of", f"Examples of {lemma} include {_join(picked)}. {detail}", ax=ax)
    parts = [wn.name(m) for m in wn.synsets[first].part_meronyms]
    if parts:
        add(
            "parts",
            f"The parts of {ax} include {_join([article(p) for p in parts[:6]])}. {_gloss_sentence(wn, lemma, first)}",
            ax=ax,
        )
    # part-of, true and false
    holonyms = [h for o in nouns for h in wn.synsets[o].part_holonyms if _HEADWORD.match(wn.name(h))]
    if holonyms:
        h = holonyms[rng.randrange(len(holonyms))]
        y = wn.name(h)
        ay = _an(wn, y, h)
        add(
            "part_of",
            f"Yes, {ax} is part of {ay}. {_gloss_sentence(wn, lemma, first)} {_gloss_sentence(wn, y, h)}",
            other=y,
            ay=ay,
        )
    lexfiles = {wn.synsets[o].lexfile for o in nouns}
    for _ in range(20):
        if not holonym_pool:
            break
        h = holonym_pool[rng.randrange(len(holonym_pool))]
        y = wn.name(h)
        if wn.synsets[h].lexfile in lexfiles or y == lemma or wn.part_of(lemma, y) or wn.related(lemma, y):
            continue
        ay = _an(wn, y, h)
        own = f" {_cap(ax)} is part of {_an(wn, wn.name(holonyms[0]), holonyms[0])}." if holonyms else ""
        add("part_of", f"No, {ax} is not part of {ay}.{own} {_gloss_sentence(wn, lemma, first)}", other=y, ay=ay)
        break


# ----------------------------------------------------------------------------- dictd sources


def _b64(text: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for ch in text:
        value = value * 64 + alphabet.index(ch)
    return value


def read_dictd(index: Path, dictionary: Path) -> list[tuple[str, str]]:
    """``(headword, entry text)`` pairs of a dictd database (``.index`` + gzip/dictzip ``.dict.dz``)."""
    data = gzip.open(dictionary).read() if dictionary.suffix == ".dz" else dictionary.read_bytes()
    out = []
    for line in index.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        start, length = _b64(parts[1]), _b64(parts[2])
        out.append((parts[0], data[start : start + length].decode("utf-8", errors="replace")))
    return out


def _unbrace(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[{}]", "", text)).strip()


def jargon_pairs(files: list[Path]) -> list[Pair]:
    """The Jargon File: meaning, origin (its bracketed etymology) and a longer explanation."""
    pairs = []
    for head, entry in read_dictd(files[0], files[1]):
        lines = entry.splitlines()
        term = lines[0].strip()
        body = "\n".join(lines[1:])
        paras = [_unbrace(p) for p in re.split(r"\n\s*\n", body) if p.strip() and not re.search(r"[\u2500-\u257f]", p)]
        paras = [
            p for p in paras if not re.fullmatch(r"(/[^/]*/)?\s*[a-z.,\s]*", p)
        ]  # pronunciation / part-of-speech lines
        if not paras or len(term) > 30 or not re.match(r"^[A-Za-z]", term):
            continue
        text = re.sub(r"^\d+\.\s*", "", paras[0])
        origin = None
        m = re.match(r"^\[([^\]]{8,})\]\s*(.*)$", text)
        if m:
            origin, text = m.group(1), m.group(2)
        text = re.sub(r"^\[[^\]]{1,7}\]\s*", "", text)  # usage tags such as [common], [IRC]
        text = re.sub(r"^(n|adj|v|vt|vi|interj|adv)\.(,?\s*(n|adj|v|vt|vi|interj|adv)\.)*\s*", "", text).strip()
        if len(text.split()) < 5:
            continue
        rng = _seed("jargon", term)
        key = term.lower()
        lead = (
            f"In hacker jargon, {term} means: {text}" if rng.random() < 0.5 else f"The hacker term {term} means: {text}"
        )
        pairs.append(Pair(_prompt("jargon_meaning", key, x=term), _trim(lead, 90), "jargon", key, "jargon_meaning"))
        if origin:
            pairs.append(
                Pair(
                    _prompt("jargon_origin", key, x=term),
                    f"The hacker term {term} comes from this: {_sentence(origin)} It means: {text}",
                    "jargon",
                    key,
                    "jargon_origin",
                )
            )
        elif len(paras) > 1:
            rest = " ".join(re.sub(r"^\d+\.\s*", "", p) for p in paras[1:3])
            pairs.append(
                Pair(
                    _prompt("jargon_explain", key, x=term),
                    f"The hacker term {term} means: {text} {rest}",
                    "jargon",
                    key,
                    "jargon_explain",
                )
            )
    return pairs


def devil_pairs(files: list[Path]) -> list[Pair]:
    """The Devil's Dictionary: Bierce's (satirical) definition, prose only."""
    pairs = []
    for head, entry in read_dictd(files[0], files[1]):
        m = re.match(r"^\s*([A-Z][A-Z' -]+),\s*([a-z.]+)\s+(.*)", entry, re.S)
        if not m:
            continue
        term = m.group(1).strip().lower()
        prose = re.split(r"\n\s*\n|\n {4}", m.group(3))[0]
        prose = re.sub(r"\s+", " ", prose).replace("_", "").strip()
        if len(prose.split()) < 4 or not _HEADWORD.match(term.replace(" ", "")):
            continue
        rng = _seed("devil", term)
        opener = rng.choice(
            [
                f"The Devil's Dictionary defines {term} as",
                f"Ambrose Bierce's Devil's Dictionary says that {term} is",
                f"A cynical definition of {term}, from The Devil's Dictionary:",
            ]
        )
        pairs.append(
            Pair(
                _prompt("devil_define", term, x=term),
                f'{opener} "{prose}" Bierce wrote it as satire, not as a real definition.',
                "devil",
                term,
                "devil_define",
            )
        )
    return pairs


@dataclass
class Element:
    name: str
    symbol: str
    number: int
    weight: float
    text: str


def parse_elements(files: list[Path]) -> list[Element]:
    """Elements 1-100 of dict-elements (the superheavy entries' text was copied from Wikipedia: left out)."""
    out = []
    for head, entry in read_dictd(files[0], files[1]):
        sym = re.search(r"^Symbol:\s*(\S+)", entry, re.M)
        num = re.search(r"^Atomic number:\s*(\d+)", entry, re.M)
        wt = re.search(r"^Atomic weight:\s*\(?([\d.]+)\)?", entry, re.M)
        if not (sym and num and wt) or int(num.group(1)) > 100:
            continue
        text = re.sub(r"\s+", " ", entry[wt.end() :]).strip()
        out.append(
            Element(entry.splitlines()[0].strip().lower(), sym.group(1), int(num.group(1)), float(wt.group(1)), text)
        )
    by_number = {}
    for e in sorted(out, key=lambda e: (e.number, e.name)):
        by_number.setdefault(e.number, e)
    return list(by_number.values())


def element_pairs(files: list[Path]) -> list[Pair]:
    pairs = []
    elements = parse_elements(files)
    for e in elements:
        x = e.name
        facts = f"{_cap(x)} has the symbol {e.symbol} and atomic number {e.number}; its atomic weight is {e.weight:g}."

        def add(form, resp, other=None, **v):
            return pairs.append(Pair(_prompt(form, x, x=x, **v), resp, "elements", x, form, other))

        add("element_symbol", f"The chemical symbol for {x} is {e.symbol}. {facts}")
        add(
            "element_number",
            f"The atomic number of {x} is {e.number}, so an atom of {x} has {e.number} protons. {facts}",
        )
        add("element_weight", f"The atomic weight of {x} is {e.weight:g}. {facts}")
        add(
            "element_by_number",
            f"The element with atomic number {e.number} is {x}, symbol {e.symbol}. {e.text}",
            n=e.number,
        )
        add(
            "element_by_symbol",
            f"The symbol {e.symbol} stands for {x}, the element with atomic number {e.number}. {e.text}",
            s=e.symbol,
        )
        add("element_about", f"{facts} {e.text}")
        rng = _seed("elements", x)
        for other in rng.sample([o for o in elements if o.number != e.number], min(6, len(elements) - 1)):
            heavier = e.weight > other.weight
            yn = "Yes" if heavier else "No"
            rel = "heavier" if heavier else "lighter"
            add(
                "element_heavier",
                f"{yn}, {x} is {rel} than {other.name}: an atom of {x} weighs about {e.weight:g} atomic mass units, "
                f"an atom of {other.name} about {other.weight:g}.",
                other=other.name,
                y=other.name,
            )
        other = rng.choice([o for o in elements if o.number != e.number])
        add(
            "element_compare",
            f"{_cap(x)} ({e.symbol}, atomic number {e.number}) and {other.name} ({other.symbol}, atomic number {other.number}) are both "
            f"chemical elements. {e.text} {_cap(other.name)}, by contrast: {other.text}",
            other=other.name,
            y=other.name,
        )
    return pairs


# ----------------------------------------------------------------------------- Python FAQ

_STOP = set(
    "a an the is are was were be been do does did i you we it its of in on to for with and or not can how what why when "
    "where which who whose there this that my your our as by at from into if so any some".split()
)


def _rst_text(text: str) -> str:
    text = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # :func:`x`, :ref:`text <target>`
    text = re.sub(r"`([^`<]+?)\s*<[^>]*>`_+", r"\1", text)  # `text <url>`_
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"\*\*?([^*]+)\*\*?", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def faq_pairs(files: list[Path]) -> list[Pair]:
    """Python FAQ questions (section titles ending in "?") with their first answer paragraphs."""
    pairs = []
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i in range(len(lines) - 1):
            title, rule = lines[i].strip(), lines[i + 1].strip()
            if not title.endswith("?") or not rule or set(rule) != {"-"} or len(rule) < len(title) - 2:
                continue
            body, j = [], i + 2
            while j < len(lines) and not (
                j + 1 < len(lines)
                and lines[j + 1].strip()
                and set(lines[j + 1].strip()) <= set("-=")
                and lines[j].strip()
            ):
                body.append(lines[j])
                j += 1
            paras = [p for p in re.split(r"\n\s*\n", "\n".join(body)) if p.strip()]
            prose = [
                _rst_text(p) for p in paras if not p.startswith((" ", "..", "\t")) and not p.rstrip().endswith("::")
            ]
            if not prose:
                continue
            answer = " ".join(prose[:3])
            words = [w for w in re.findall(r"[A-Za-z_]+", title.lower()) if w not in _STOP and len(w) > 2]
            head = re.findall(r"[A-Za-z_]+", " ".join(answer.split()[:12]).lower())
            if not any(w in head for w in words):
                subject = " ".join(title.rstrip("?").split()[-4:])
                answer = f"About {subject}: {answer}"
            key = re.sub(r"[^a-z0-9 ]", "", title.lower())
            pairs.append(Pair(title, answer, "python_faq", key, "faq"))
    return pairs


# ----------------------------------------------------------------------------- invented words

_ONSETS = [
    "b",
    "bl",
    "br",
    "d",
    "dr",
    "f",
    "fl",
    "fr",
    "g",
    "gl",
    "gr",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "pl",
    "pr",
    "qu",
    "s",
    "sk",
    "sl",
    "sn",
    "sp",
    "st",
    "str",
    "t",
    "tr",
    "v",
    "w",
    "y",
    "z",
    "ch",
    "sh",
    "th",
]
_VOWELS = ["a", "e", "i", "o", "u", "oo", "ai", "ea", "ou", "y"]
_CODAS = [
    "",
    "",
    "",
    "b",
    "d",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "x",
    "sh",
    "nk",
    "rt",
    "st",
    "nd",
    "mp",
    "sk",
    "v",
]
_SUFFIXES = ["", "", "", "ish", "el", "ent", "ous", "ify", "ine", "et", "ax", "ory", "al", "ic", "ate", "um"]


def invented_word(index: int) -> str:
    rng = _seed("invented", index)
    syllables = rng.choice([2, 2, 3])
    word = "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ) + rng.choice(_SUFFIXES)
    return word


def invented_pairs(n: int, known: set[str]) -> list[Pair]:
    """Questions about words that do not exist; answers restate and spell the word (§4 probe: copying)."""
    pairs, seen, index = [], set(known) | set(RESERVED_INVENTED), 0
    forms = ["invented_meaning", "invented_tell", "invented_sentence", "invented_spell", "invented_is_real"]
    while len(pairs) < n:
        w = invented_word(index)
        index += 1
        if w in seen or not 5 <= len(w) <= 14:
            continue
        seen.add(w)
        rng = _seed("invented-pair", w)
        spelled = "-".join(w)
        for form in rng.sample(forms, rng.choice([1, 1, 2])):
            q = f'"{w}"'
            tail = rng.sample(
                [
                    f"It is spelled {spelled}.",
                    "It may be a made-up word, a name, or a misspelling of another word.",
                    f"If you tell me where you saw {q}, I can try to work out what it was meant to say.",
                    "It does not appear in WordNet or in the other dictionaries I learnt from.",
                    f"Made-up words like {q} are sometimes used in tests, in games or in fiction.",
                ],
                rng.randint(1, 4),
            )
            if form == "invented_meaning":
                lead = rng.choice(
                    [
                        f"The word {q} is not in my dictionary, so I do not know what it means.",
                        f"{_cap(q)} is not a word I know; I cannot find a meaning for it.",
                        f"The word {q} does not seem to be an English word.",
                    ]
                )
            elif form == "invented_tell":
                lead = rng.choice(
                    [
                        f"The word {q} is not one I know, so I cannot tell you much about it.",
                        f"{_cap(q)} does not appear to be a real English word.",
                    ]
                )
            elif form == "invented_sentence":
                lead = f'The word {q} is not a word I know, so I can only use it as a made-up word: "The {w} was on the table."'
            elif form == "invented_spell":
                lead = f"The word {q} is spelled {spelled}. It has {len(w)} letters. It is not a word I know."
                tail = [t for t in tail if "spelled" not in t][:1]
            else:
                lead = f"No, {q} is not a real English word as far as I know."
            pairs.append(Pair(_prompt(form, w, w=w), " ".join([lead] + tail), "invented", w, form))
    return pairs


# ----------------------------------------------------------------------------- build


def build(
    root_map: dict[str, Path] | None = None, sources: tuple[str, ...] = tuple(SOURCES), n_invented: int = 6000
) -> tuple[list[dict], list[dict]]:
    """Build ``(train, heldout)`` rows from the installed sources (``root_map`` relocates a source's
    files, for tests). Missing files raise :class:`MissingSourceError` naming the Debian package."""
    files = {s: require(s, root_map) for s in sources}  # fail before any work
    pairs: list[Pair] = []
    known: set[str] = set()
    if "wordnet" in files:
        wn = WordNet(files["wordnet"][0].parent)
        pairs += wordnet_pairs(wn)
        known |= {lemma for lemma, _ in wn.senses}
    builders = {"jargon": jargon_pairs, "devil": devil_pairs, "elements": element_pairs, "python_faq": faq_pairs}
    for source, make in builders.items():
        if source in files:
            pairs += make(files[source])
    known |= {p.subject for p in pairs}
    if n_invented:
        pairs += invented_pairs(n_invented, known)
    train, heldout = [], []
    heldout_subjects = {p.subject for p in pairs if is_heldout(p.subject)}
    for p in pairs:
        if p.subject in heldout_subjects:
            heldout.append(p.row())
        elif p.other is None or p.other.lower() not in heldout_subjects:
            train.append(p.row())

    def order(r):
        return hashlib.sha256(f"{r['source']}\x1f{r['subject']}\x1f{r['form']}\x1f{r['prompt']}".encode()).hexdigest()

    return sorted(train, key=order), sorted(heldout, key=order)


def token_lengths(rows: list[dict], tokenizer) -> list[int]:
    return [len(ids) for ids in tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]]


def describe(train: list[dict], heldout: list[dict], tokenizer=None) -> dict:
    """Counts for the README: pairs per source and form, dictionary share, answer length in tokens."""
    stats = {
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
        "train_subjects": len({r["subject"] for r in train}),
        "heldout_subjects": len({r["subject"] for r in heldout}),
        "by_source": {},
        "by_form": {},
        "by_style": {},
    }
    for key, field_ in (("by_source", "source"), ("by_form", "form"), ("by_style", "style")):
        tr, he = Counter(r[field_] for r in train), Counter(r[field_] for r in heldout)
        stats[key] = {k: [tr[k], he[k]] for k in sorted(set(tr) | set(he))}
    stats["dictionary_share"] = sum(r["style"] == "dictionary" for r in train) / max(len(train), 1)
    if tokenizer is not None:
        lengths = sorted(token_lengths(train, tokenizer))

        def q(f):
            return lengths[min(len(lengths) - 1, int(f * len(lengths)))]

        stats["tokens"] = {
            "min": lengths[0],
            "p10": q(0.1),
            "median": statistics.median(lengths),
            "p90": q(0.9),
            "p99": q(0.99),
            "max": lengths[-1],
            "share_over_128": sum(x > 128 for x in lengths) / len(lengths),
        }
    return stats


LICENSE_FILES = {
    "wordnet": "/usr/share/doc/wordnet-base/copyright",
    "jargon": "/usr/share/doc/dict-jargon/copyright",
    "devil": "/usr/share/doc/dict-devil/copyright",
    "elements": "/usr/share/doc/dict-elements/copyright",
    "python_faq": "/usr/share/doc/python3-doc/copyright",
}


def write(out: Path, train: list[dict], heldout: list[dict], copy_licenses: bool = True) -> dict[str, str]:
    """Write the two gzipped splits, the per-source license texts and SHA256SUMS; return the checksums."""
    out.mkdir(parents=True, exist_ok=True)
    sums = {
        name: write_jsonl_gz(rows, out / name)
        for name, rows in (("train.jsonl.gz", train), ("heldout.jsonl.gz", heldout))
    }
    if copy_licenses:
        (out / "LICENSES").mkdir(exist_ok=True)
        for source, src in LICENSE_FILES.items():
            if Path(src).exists():
                shutil.copyfile(src, out / "LICENSES" / f"{source}.txt")
    for path in sorted((out / "LICENSES").glob("*.txt")) if (out / "LICENSES").exists() else []:
        sums[f"LICENSES/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    return sums


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.corpora.general", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=paths.GENERAL_CORPUS_DIR)
    parser.add_argument("--stats", type=Path, default=None, help="also write the README statistics as JSON here")
    args = parser.parse_args(argv)
    try:
        train, heldout = build()
    except MissingSourceError as error:
        raise SystemExit(f"error: {error}") from None
    write(args.out, train, heldout)
    from transformers import AutoTokenizer

    stats = describe(train, heldout, AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL))
    if args.stats:
        args.stats.write_text(json.dumps(stats, indent=1, sort_keys=True))
    print(json.dumps({k: v for k, v in stats.items() if k != "by_form"}, indent=1))


if __name__ == "__main__":
    main()
