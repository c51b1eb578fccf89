"""The general instruction corpus (dlmpaper.corpora.general) and its probe goals (dlmpaper.train.goals).

The builder's tests use small source files the test writes itself (CI has none of the Debian
dictionary packages); the shares, forms and lengths are checked on the shipped corpus.
"""

from __future__ import annotations

import gzip
import statistics

import pytest

from dlmpaper import paths
from dlmpaper.analyses.probe import content_token_sets
from dlmpaper.corpora import general as gc
from dlmpaper.corpora.wordnet import load_split

# ----------------------------------------------------------------------------- fixture sources

# offset: (lexfile, word, gloss, pointers)  -- a tiny WordNet in wndb(5WN) format
NOUNS = {
    "00000001": (5, "animal", "a living organism that feeds on organic matter", ["~ 00000002"]),
    "00000002": (
        5,
        "vertebrate",
        "an animal having a bony or cartilaginous skeleton",
        ["@ 00000001", "~ 00000003", "~ 00000004"],
    ),
    "00000003": (
        5,
        "mammal",
        "a warm-blooded vertebrate that nourishes its young with milk",
        ["@ 00000002", "~ 00000005", "~ 00000006"],
    ),
    "00000004": (5, "fish", "a cold-blooded aquatic vertebrate with gills and fins", ["@ 00000002", "~ 00000007"]),
    "00000005": (
        5,
        "whale",
        'a very large marine mammal that breathes through a blowhole; "the whale surfaced"',
        ["@ 00000003"],
    ),
    "00000006": (5, "dog", 'a domesticated carnivorous mammal; "the dog barked"', ["@ 00000003", "%p 00000008"]),
    "00000007": (5, "trout", "a freshwater fish of the salmon family", ["@ 00000004"]),
    "00000008": (8, "tail", "the flexible hindmost part of an animal's body", ["#p 00000006"]),
    "00000009": (6, "car", "a motor vehicle with four wheels", ["@ 00000011", "%p 00000010"]),
    "00000010": (6, "wheel", "a simple machine consisting of a circular frame", ["#p 00000009"]),
    "00000011": (6, "vehicle", "a conveyance that transports people or objects", ["~ 00000009"]),
}
#: Hand-checked truth: (x, y) pairs where "x is a y" holds in the fixture; all others are false.
IS_A = {
    ("whale", "mammal"),
    ("whale", "vertebrate"),
    ("whale", "animal"),
    ("dog", "mammal"),
    ("dog", "vertebrate"),
    ("dog", "animal"),
    ("trout", "fish"),
    ("trout", "vertebrate"),
    ("trout", "animal"),
    ("car", "vehicle"),
    ("mammal", "vertebrate"),
    ("mammal", "animal"),
    ("fish", "vertebrate"),
    ("fish", "animal"),
    ("vertebrate", "animal"),
}
PART_OF = {("tail", "dog"), ("wheel", "car")}
ELEMENTS = [
    ("hydrogen", "H", 1, "1.0079", "Colourless, odourless gaseous chemical element."),
    ("iron", "Fe", 26, "55.847", "Silvery malleable and ductile metallic transition element."),
    ("gold", "Au", 79, "196.967", "Gold metallic element; a noble metal."),
    ("lead", "Pb", 82, "207.19", "Heavy dull grey ductile metallic element."),
]


def _b64(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = alphabet[n % 64] + out
        n //= 64
        if not n:
            return out


def _write_dictd(directory, name: str, entries: list[tuple[str, str]]) -> None:
    data, index = b"", []
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(raw))}")
        data += raw
    (directory / f"{name}.index").write_text("\n".join(index) + "\n")
    with gzip.GzipFile(directory / f"{name}.dict.dz", "wb", mtime=0) as handle:
        handle.write(data)


@pytest.fixture()
def sources(tmp_path, monkeypatch):
    """Relocated, tiny versions of every source; returns the ``root_map`` for :func:`gc.build`."""
    monkeypatch.setattr(gc, "CATEGORY_MIN_HYPONYMS", 1)
    wn = tmp_path / "wordnet"
    wn.mkdir()
    lines = []
    for offset, (lexfile, word, gloss, ptrs) in NOUNS.items():
        ptr_text = " ".join(f"{p} n 0000" for p in ptrs)
        lines.append(f"{offset} {lexfile:02d} n 01 {word} 0 {len(ptrs):03d} {ptr_text} | {gloss}")
    (wn / "data.noun").write_text("\n".join(lines) + "\n")
    (wn / "index.noun").write_text(
        "".join(f"{w} n 1 0 1 9 {o}\n" for o, (_, w, _, _) in sorted(NOUNS.items(), key=lambda kv: kv[1][1]))
    )
    for pos in ("verb", "adj", "adv"):
        (wn / f"data.{pos}").write_text("")
        (wn / f"index.{pos}").write_text("")
    dictd = tmp_path / "dictd"
    dictd.mkdir()
    _write_dictd(
        dictd,
        "jargon",
        [
            (
                "frobnicate",
                "frobnicate\n /frob'ni-kayt/, vt.\n\n    [from frob] To manipulate or adjust, "
                "usually aimlessly, a knob or setting.\n\n",
            )
        ],
    )
    _write_dictd(
        dictd,
        "devil",
        [
            (
                "abasement",
                "ABASEMENT, n.  A decent and customary mental attitude in the presence\nof wealth or power.\n\n",
            )
        ],
    )
    _write_dictd(
        dictd,
        "elements",
        [(n, f"{n}\nSymbol: {s}\nAtomic number: {z}\nAtomic weight: {w}\n{t}\n\n") for n, s, z, w, t in ELEMENTS],
    )
    faq = tmp_path / "faq"
    faq.mkdir()
    for name in ("general", "programming", "design", "library", "extending", "windows", "gui", "installed"):
        (faq / f"{name}.rst.txt").write_text("")
    (faq / "general.rst.txt").write_text(
        "What is Python?\n---------------\n\nPython is an interpreted, interactive, "
        "object-oriented programming language.\n\n"
    )
    return {"wordnet": wn, "jargon": dictd, "devil": dictd, "elements": dictd, "python_faq": faq}


# ----------------------------------------------------------------------------- builder


def test_build_is_deterministic(sources, tmp_path):
    first = gc.write(tmp_path / "a", *gc.build(sources, n_invented=50), copy_licenses=False)
    second = gc.write(tmp_path / "b", *gc.build(sources, n_invented=50), copy_licenses=False)
    assert first == second
    assert (tmp_path / "a" / "train.jsonl.gz").read_bytes() == (tmp_path / "b" / "train.jsonl.gz").read_bytes()


def test_split_is_by_subject_and_keeps_heldout_subjects_out_of_train(sources):
    train, heldout = gc.build(sources, n_invented=400)
    held = {r["subject"] for r in heldout}
    assert held, "5% of 400 invented words: some subjects must be held out"
    assert not held & {r["subject"] for r in train}
    assert all(gc.is_heldout(s) for s in held)
    for word in held:  # no training prompt names a held-out subject as its second term either
        assert not any(f" {word} " in f" {r['prompt'].rstrip('?.').lower()} " for r in train if r["subject"] != word)


def test_every_source_contributes_with_its_subject_restated(sources):
    rows = sum(gc.build(sources, n_invented=50), [])
    assert {r["source"] for r in rows} == {"wordnet", "jargon", "devil", "elements", "python_faq", "invented"}
    for r in rows:
        assert set(r) == {"prompt", "response", "source", "subject", "form", "style"}
        assert r["form"] in gc.FORMS and r["style"] == gc.FORMS[r["form"]][0]
        if r["source"] != "python_faq":  # FAQ subjects are the question itself
            assert r["subject"].lower() in r["response"][:80].lower(), (r["prompt"], r["response"])


def test_yes_no_answers_match_hand_checked_wordnet_relations(sources):
    wn = gc.WordNet(sources["wordnet"])
    assert not wn.is_a("whale", "fish") and wn.is_a("whale", "mammal") and wn.is_a("whale", "animal")
    assert not wn.is_a("animal", "whale") and not wn.is_a("trout", "mammal")
    assert wn.part_of("wheel", "car") and wn.part_of("tail", "dog") and not wn.part_of("tail", "car")
    words = [w for _, w, _, _ in NOUNS.values()]
    for x in words:
        for y in words:
            assert wn.is_a(x, y) == ((x, y) in IS_A), (x, y)
    checked = 0
    for x in words:
        rng = gc._seed("wordnet", x)
        pool = sorted(o for o, s in wn.synsets.items() if s.hyponyms)
        holonyms = sorted({h for s in wn.synsets.values() for h in s.part_holonyms})
        for pair in gc._wordnet_candidates(wn, x, rng, pool, holonyms, sorted(wn.synsets), True):
            if pair.form in ("is_a", "should_call"):
                assert pair.response.startswith("Yes, " if (x, pair.other) in IS_A else "No, "), (
                    pair.prompt,
                    pair.response,
                )
                checked += 1
            if pair.form == "part_of":
                assert pair.response.startswith("Yes, " if (x, pair.other) in PART_OF else "No, "), (
                    pair.prompt,
                    pair.response,
                )
                checked += 1
    assert checked >= 8


def test_element_comparisons_are_right(sources):
    rows = [r for r in sum(gc.build(sources, n_invented=0), []) if r["form"] == "element_heavier"]
    weight = {n: float(w) for n, _, _, w, _ in ELEMENTS}
    assert rows
    for r in rows:
        x = r["subject"]
        y = next(n for n in weight if n != x and n in r["prompt"].split("than")[1])
        assert r["response"].startswith(("Yes, " if weight[x] > weight[y] else "No, ") + x)


def test_invented_words_are_new_and_never_the_reserved_evaluation_words(sources):
    rows = [r for r in sum(gc.build(sources, n_invented=300), []) if r["source"] == "invented"]
    words = {r["subject"] for r in rows}
    assert len(words) > 100
    assert not words & set(gc.RESERVED_INVENTED)
    assert not words & {w for _, w, _, _ in NOUNS.values()}
    for r in rows:
        assert r["subject"] in " ".join(r["response"].split()[:8]), r["response"]


def test_missing_source_names_the_package_in_one_line(sources, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(gc.MissingSourceError) as info:
        gc.build({**sources, "jargon": empty})
    message = str(info.value)
    assert "apt-get install dict-jargon" in message and "\n" not in message
    with pytest.raises(gc.MissingSourceError, match="apt-get install wordnet-base"):
        gc.build({**sources, "wordnet": empty})


# ----------------------------------------------------------------------------- the shipped corpus


@pytest.fixture(scope="module")
def shipped():
    return load_split("train", paths.GENERAL_CORPUS_DIR), load_split("heldout", paths.GENERAL_CORPUS_DIR)


def test_shipped_corpus_meets_the_issue_shares(shipped):
    train, heldout = shipped
    assert len({r["source"] for r in train}) >= 5
    assert sum(r["style"] == "dictionary" for r in train) / len(train) <= 0.5
    assert len({r["form"] for r in train}) >= 20
    assert {"why", "compare", "example", "sentence", "how", "natural", "yes/no"} <= {r["style"] for r in train}
    assert not {r["subject"] for r in train} & {r["subject"] for r in heldout}
    assert 0.03 < len(heldout) / (len(train) + len(heldout)) < 0.08
    text = " ".join(r["prompt"] + " " + r["response"] for r in train).lower()
    assert not [w for w in gc.RESERVED_INVENTED if w in text]


def test_shipped_yes_no_answers_start_with_yes_or_no_and_restate_the_subject(shipped):
    train, _ = shipped
    yes_no = [r for r in train if r["style"] == "yes/no"]
    assert all(r["response"].startswith(("Yes, ", "No, ")) for r in yes_no)
    shares = sum(r["response"].startswith("Yes") for r in yes_no) / len(yes_no)
    assert 0.3 < shares < 0.7, "true and false questions in balance"
    restated = [r for r in train if r["source"] != "python_faq"]
    ok = sum(
        r["subject"].lower() in " ".join(r["response"].split()[: 8 + len(r["subject"].split())]).lower()
        for r in restated
    )
    assert ok / len(restated) > 0.999


def test_shipped_answer_lengths_vary(shipped):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)
    lengths = gc.token_lengths(shipped[0][::20], tokenizer)
    assert statistics.median(lengths) >= 40
    assert max(lengths) > 128 and min(lengths) < 20


@pytest.mark.skipif(
    not all(p.exists() for _, files in gc.SOURCES.values() for p in files),
    reason="Debian source packages not installed",
)
def test_rebuild_reproduces_the_shipped_bytes(tmp_path):
    gc.write(tmp_path, *gc.build())
    for name in ("train.jsonl.gz", "heldout.jsonl.gz"):
        assert (tmp_path / name).read_bytes() == (paths.GENERAL_CORPUS_DIR / name).read_bytes()


# ----------------------------------------------------------------------------- goals


def test_goal_helpers():
    import torch

    from dlmpaper.train import goals

    eos = 0
    top3 = torch.tensor(
        [[[5, 1, 2], [0, 1, 2], [0, 1, 2]], [[0, 1, 2], [5, 1, 2], [0, 1, 2]], [[5, 1, 2], [5, 1, 2], [5, 1, 2]]]
    )
    assert goals.end_dominance(top3, eos).tolist() == [2, 3, 4]
    assert goals._hits(top3, [{5}, {7}, {2}], (1, 2)).tolist() == [1.0, 0.0, 1.0]


def test_trainer_selects_the_general_corpus():
    from dlmpaper.train.loop import TrainConfig, load_corpus

    assert TrainConfig().corpus == "wordnet", "the default corpus stays WordNet until the lead switches it"
    assert load_corpus("general", "heldout") == load_split("heldout", paths.GENERAL_CORPUS_DIR)
    with pytest.raises(ValueError, match="corpus must be one of"):
        load_corpus("lima", "train")


class _PromptIgnoring(__import__("torch").nn.Module):
    """A negative control: the same logits at every position for every prompt."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.logits.expand(input_ids.shape[0], input_ids.shape[1], -1))


def test_goals_do_not_credit_a_prompt_ignoring_model(shipped):
    import torch
    from transformers import AutoTokenizer

    from dlmpaper.train import goals

    tokenizer = AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)
    heldout = shipped[1]
    general = goals.general_prompts(heldout, 64)
    # favour the content pieces of the first prompts and an invented word's first piece: prompt-blind hits
    logits = torch.zeros(len(tokenizer))
    favoured = sorted(
        set(content_token_sets(tokenizer, [general[0]["prompt"]])[0]) | goals.first_pieces(tokenizer, "plorvish")
    )[:3]
    logits[favoured] = 10.0
    result = goals.evaluate_goals(_PromptIgnoring(logits), tokenizer, heldout, n_general=64)
    assert result["copy_1_8"] > 0, "the control must hit sometimes, or it tests nothing"
    assert result["copy_1_8_minus_mismatched_lo"] <= 0.0 <= result["copy_1_8_minus_mismatched_hi"]
    assert result["invented_1_8"] == pytest.approx(result["invented_1_8_mismatched"], abs=0.1)
    assert result["eos_97_128"] == 0.0 and result["n_general"] > 40


def test_trainer_evaluate_reports_the_goals_for_the_general_corpus(shipped):
    import torch
    from transformers import AutoTokenizer, ModernBertForMaskedLM

    from dlmpaper.lm import embedded
    from dlmpaper.train.loop import TrainConfig, evaluate

    tokenizer = AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)
    torch.manual_seed(0)
    model = ModernBertForMaskedLM(embedded.model_config(len(tokenizer), hidden=32, layers=1, heads=2, max_len=384))
    cfg = TrainConfig(corpus="general", eval_pairs=16, response_length=160)
    numbers = evaluate(model, tokenizer, shipped[1][:40], cfg)
    for key in (
        "ce_mask50",
        "copy_1_8",
        "copy_1_8_mismatched",
        "invented_1_8",
        "eos_97_128",
        "eos_1_16",
        "end_length_rho",
    ):
        assert key in numbers
    assert "copy_top3" not in numbers, "the WordNet headword measure needs 'tell' rows"
