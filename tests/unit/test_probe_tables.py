"""Tests for dlmpaper.figures.probe: numbers and figures of notebook 03 (paper §4, issue (i)).

Everything runs on a small hand-made ProbeResult (no model): 4 prompts x 12 mask positions,
positions 1-4 prompt-specific content tokens, 5-8 "the"/".", 9-12 end-of-sequence.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dlmpaper.analyses import probe as AP  # noqa: E402
from dlmpaper.core import probe as P  # noqa: E402
from dlmpaper.figures import probe as fp  # noqa: E402

EOS = 0
VOCAB = ["<|endoftext|>", " the", ".", " cells", " migrate", " Yes", " brain", " move", " neurons", " apel", "ike"]
N_PROMPTS, N_MASKS, TOP_K = 4, 12, 3


def _top1(prompt: int, position: int) -> int:
    """Top-1 token id: content (prompt-specific) near, "the"/"." in the middle, EOS far."""
    if position <= 4:
        return 3 + (prompt + position) % 5  # 3..7: content tokens, differ between prompts
    if position <= 8:
        return 1 if position % 2 else 2
    return EOS


def _result(js_near: float = 0.2, js_far: float = 0.01) -> P.ProbeResult:
    ids = [f"p{i}" for i in range(N_PROMPTS)]
    per, table = [], []
    for i, pid in enumerate(ids):
        for pos in range(1, N_MASKS + 1):
            top = _top1(i, pos)
            js = js_near + 0.01 * i if pos <= 4 else js_far
            per.append(
                {
                    "prompt_id": pid,
                    "position": pos,
                    "entropy": 2.0 if pos <= 8 else 0.1,
                    "top1_id": top,
                    "top1_token": VOCAB[top],
                    "top1_prob": 0.5 if pos <= 8 else 0.99,
                    "top1_is_end": top == EOS,
                    "js": js,
                    "js_upper": js,
                }
            )
            others = [t for t in (1, 2, 8) if t != top][: TOP_K - 1]
            for rank, (tok, prob) in enumerate(zip([top, *others], [0.5, 0.3, 0.1]), start=1):
                table.append(
                    {
                        "prompt_id": pid,
                        "position": pos,
                        "rank": rank,
                        "token_id": tok,
                        "token": VOCAB[tok],
                        "prob": prob,
                    }
                )
    prompts = pd.DataFrame(
        {
            "prompt_id": ids,
            "prompt": [f"Tell me about the word w{i}." for i in range(N_PROMPTS)],
            "n_prompt_tokens": [7] * N_PROMPTS,
        }
    )
    return P.ProbeResult(
        table=pd.DataFrame(table),
        per_prompt=pd.DataFrame(per),
        mean_probs=np.full((N_MASKS, len(VOCAB)), 1 / len(VOCAB)),
        prompts=prompts,
        n_masks=N_MASKS,
        top_k=TOP_K,
        js_support=len(VOCAB),
        vocab_size=len(VOCAB),
        end_ids=(EOS,),
        model_name="synthetic",
    )


# ranks by hand: the 1, . 2, cells 3, ..., EOS unranked (a corpus of responses has none)
RANKS = P.unigram_ranks_from_counts({1: 100, 2: 90, 3: 50, 4: 40, 5: 30, 6: 20, 7: 10, 8: 5})


class WordTokenizer:
    """Whitespace tokenizer with offsets: token ids from a growing vocabulary (duck-types HF)."""

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def _encode(self, text):
        ids, offsets, start = [], [], 0
        for word in text.split(" "):
            if word:
                ids.append(self.vocab.setdefault(word, 100 + len(self.vocab)))  # ids apart from VOCAB's
                offsets.append((start, start + len(word)))
            start += len(word) + 1
        return ids, offsets

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        if isinstance(text, list):
            return {"input_ids": [self._encode(t)[0] for t in text]}
        ids, offsets = self._encode(text)
        out = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out

    def decode(self, ids, clean_up_tokenization_spaces=False):
        inverse = {v: k for k, v in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- helpers
def test_display_token():
    assert fp.display_token("<|endoftext|>") == "EOS"
    assert fp.display_token("<|eot_id|>") == "EOT"
    assert fp.display_token(" the") == "\u2423the"
    assert fp.display_token("\n") == "\\n"
    assert fp.display_token(" extraordinarily", max_chars=5) == "\u2423extr\u2026"
    assert fp.display_token("<|start_header|>", max_chars=20) == "START_HEADER"


def test_corpus_unigram_counts_by_hand():
    tok = WordTokenizer()
    rows = [{"response": "a b a"}, {"response": "b c"}, {"response": "a"}, {"response": "c c c"}]
    counts = AP.corpus_unigram_counts(tok, rows)
    a, b, c = tok.vocab["a"], tok.vocab["b"], tok.vocab["c"]
    assert counts.to_dict() == {a: 3, b: 2, c: 4} and counts.index.tolist() == sorted([a, b, c])
    # every 2nd row: rows 0 and 2 -> a b a, a
    assert AP.corpus_unigram_counts(tok, rows, max_rows=2).to_dict() == {a: 3, b: 1}
    ranks = P.unigram_ranks_from_counts(counts)
    assert ranks[c] == 1 and ranks[a] == 2 and ranks[b] == 3
    with pytest.raises(ValueError, match="field"):
        AP.corpus_unigram_counts(tok, rows, field="answer")
    with pytest.raises(ValueError, match="empty"):
        AP.corpus_unigram_counts(tok, [])
    with pytest.raises(ValueError, match="max_rows"):
        AP.corpus_unigram_counts(tok, rows, max_rows=0)


def test_per_prompt_statistics_shares_partition_and_nonend_freq():
    stats = P.per_prompt_values(_result(), RANKS)
    total = stats["end_share"] + stats["stop_punct_share"] + stats["content_share"]
    np.testing.assert_array_equal(total, 1.0)
    np.testing.assert_array_equal(stats["content_share"][:, :4], 1.0)
    np.testing.assert_array_equal(stats["stop_punct_share"][:, 4:8], 1.0)
    np.testing.assert_array_equal(stats["end_share"][:, 8:], 1.0)
    # near: 4 prompts, 4 different top-1 tokens -> one prompt holds the modal token; later: all agree
    np.testing.assert_array_equal(stats["modal_share"][:, :4].mean(axis=0), 0.25)
    np.testing.assert_array_equal(stats["modal_share"][:, 4:], 1.0)
    # "the" rank 1 -> class 0, "." rank 2 -> class 1; EOS (unranked, rank 9 -> class 3) is NaN when non-end
    np.testing.assert_array_equal(stats["top1_freq_class"][0, 4:8], [0, 1, 0, 1])
    assert np.isnan(stats["top1_freq_class_nonend"][:, 8:]).all()
    np.testing.assert_array_equal(stats["top1_freq_class"][:, 8:], 3.0)
    assert "top1_freq_class" not in P.per_prompt_values(_result())


def test_window_summary_by_hand():
    windows = {"near": (1, 4), "mid": (5, 8), "far": (9, 100)}
    summary = AP.window_summary(_result(), windows, RANKS, n_boot=200, seed=3)
    assert list(summary.columns) == ["window", "first", "last", "statistic", "mean", "ci_low", "ci_high", "n_prompts"]
    cell = summary.set_index(["window", "statistic"])
    assert cell.loc[("far", "end_share"), "mean"] == 1.0 and cell.loc[("far", "end_share"), "last"] == N_MASKS
    assert cell.loc[("near", "end_share"), "mean"] == 0.0
    assert cell.loc[("mid", "top1_freq_class_nonend"), "mean"] == pytest.approx(0.5)
    assert math.isnan(cell.loc[("far", "top1_freq_class_nonend"), "mean"])
    assert cell.loc[("far", "top1_freq_class_nonend"), "n_prompts"] == 0
    # near JS: prompt i has 0.2 + 0.01 i -> mean 0.215; the CI lies within the range of prompt values
    near = cell.loc[("near", "js_divergence")]
    assert near["mean"] == pytest.approx(0.215)
    assert 0.2 - 1e-12 <= near["ci_low"] <= near["mean"] <= near["ci_high"] <= 0.23 + 1e-12
    assert near["ci_high"] > near["ci_low"]
    # constant statistic: zero-width CI
    assert cell.loc[("mid", "entropy"), "ci_low"] == cell.loc[("mid", "entropy"), "ci_high"] == 2.0
    again = AP.window_summary(_result(), windows, RANKS, n_boot=200, seed=3)
    pd.testing.assert_frame_equal(summary, again)
    with pytest.raises(ValueError, match="starts after"):
        AP.window_summary(_result(), {"x": (13, 20)})


def test_compare_windows_detects_and_rejects():
    out = AP.compare_windows(_result(), "js_divergence", (1, 4), (9, 12), n_boot=300, seed=0)
    assert out["near"] == pytest.approx(0.215) and out["far"] == pytest.approx(0.01)
    assert out["diff"] == pytest.approx(0.205) and out["separated"]
    flat = AP.compare_windows(_result(js_near=0.01), "js_divergence", (1, 4), (9, 12), n_boot=300, seed=0)
    assert flat["diff_low"] <= flat["diff"] <= flat["diff_high"]
    same = AP.compare_windows(_result(js_near=0.01, js_far=0.01), "entropy", (9, 10), (11, 12), n_boot=50)
    assert not same["separated"]  # identical windows overlap
    nan = AP.compare_windows(_result(), "top1_freq_class_nonend", (1, 4), (9, 12), reference_ranks=RANKS, n_boot=50)
    assert math.isnan(nan["far"]) and not nan["separated"]
    with pytest.raises(ValueError, match="unknown statistic"):
        AP.compare_windows(_result(), "perplexity")


def test_frequency_class_by_position():
    freq = AP.frequency_class_by_position(_result(), RANKS, n_boot=100, min_prompts=2)
    assert freq["statistic"].unique().tolist() == ["top1_freq_class_nonend"]
    assert freq["position"].tolist() == list(range(1, N_MASKS + 1))
    np.testing.assert_allclose(freq["mean"][4:8], [0, 1, 0, 1])
    assert freq["mean"][8:].isna().all() and (freq["n_prompts"][8:] == 0).all()
    assert (freq["n_prompts"][:8] == N_PROMPTS).all()
    # cells 3 -> rank 3 class 1, migrate 4 -> 2, Yes 5 -> 2, brain 6 -> 2, move 7 -> 2 (ranks 4..7)
    expected = np.mean([math.floor(math.log2(RANKS[3 + (i + 1) % 5])) for i in range(N_PROMPTS)])
    assert freq["mean"][0] == pytest.approx(expected)
    too_few = AP.frequency_class_by_position(_result(), RANKS, n_boot=10, min_prompts=N_PROMPTS + 1)
    assert too_few["mean"].isna().all()
    with_end = AP.frequency_class_by_position(_result(), RANKS, exclude_end=False, min_prompts=1, n_boot=10)
    np.testing.assert_allclose(with_end["mean"][8:], 3.0)


# --------------------------------------------------------------------------- copying check
def test_headword_positions_and_copy_check():
    tok = WordTokenizer()
    prompts = pd.DataFrame(
        {
            "prompt_id": ["p0", "p1", "p2", "p3"],
            "headword": ["cells", "brain", "Move", "absent"],
            "response": [
                "The word cells is a noun.",
                "The word brain is a noun.",
                "Words: we move it.",
                "The word here is another.",
            ],
        }
    )
    gold = AP.headword_positions(tok, prompts)
    assert gold["gold_position"].tolist()[:3] == [3.0, 3.0, 3.0]
    assert math.isnan(gold["gold_position"][3]) and gold["token_id"][3] == -1
    assert gold["token"].tolist()[:3] == ["cells", "brain", "move"]

    result = _result()
    table = result.table.copy()
    # p0: put the headword at rank 2 of its gold position 3; p2: not in the top-k
    sel = (table["prompt_id"] == "p0") & (table["position"] == 3) & (table["rank"] == 2)
    table.loc[sel, "token_id"] = tok.vocab["cells"]
    table.loc[sel, "prob"] = 0.3
    # p1: the headword twice in its top-k (cannot happen in a real top-k): counted once, best rank
    for rank in (2, 3):
        sel = (table["prompt_id"] == "p1") & (table["position"] == 3) & (table["rank"] == rank)
        table.loc[sel, "token_id"] = tok.vocab["brain"]
    table.loc[(table["prompt_id"] == "p1") & (table["position"] == 4) & (table["rank"] == 1), "token_id"] = tok.vocab[
        "brain"
    ]
    result.table = table
    check = AP.headword_copy_check(result, tok, prompts)
    assert check["prompt_id"].tolist() == ["p0", "p1", "p2"]  # p3: headword not in the response
    assert check["in_top_k"].tolist() == [True, True, False]
    assert check["rank"].tolist()[:2] == [2, 2] and check["prob"].tolist() == [0.3, 0.3, 0.0]
    with pytest.raises(ValueError, match="headword"):
        AP.headword_copy_check(result, tok, prompts.drop(columns="headword"))


# --------------------------------------------------------------------------- figures
def _texts(fig):
    return {t.get_text() for ax in fig.axes for t in ax.texts}


def test_plot_single_prompt():
    fig = fp.plot_single_prompt(_result().table, "p1", positions_per_row=5, title="Prompt: w1")
    bands = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(bands) == math.ceil(N_MASKS / 5)
    assert {"EOS", "\u2423the", "."} <= _texts(fig)
    assert sum(len(ax.texts) for ax in bands) == N_MASKS * TOP_K
    assert bands[-1].get_xticklabels()[-1].get_text() == str(N_MASKS)
    with pytest.raises(ValueError, match="not in the table"):
        fp.plot_single_prompt(_result().table, "nope")
    with pytest.raises(ValueError, match="lacks"):
        fp.plot_single_prompt(_result().table.drop(columns="prob"))


def test_plot_aggregate_and_drift():
    result = _result()
    summary = P.position_summary(result, n_boot=50)
    freq = AP.frequency_class_by_position(result, RANKS, n_boot=50, min_prompts=1)
    both = pd.concat([summary, freq], ignore_index=True)
    fig = fp.plot_aggregate(both, ["entropy", "end_share", "top1_freq_class_nonend", "js_divergence"], ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    assert [ax.get_title() for ax in visible][2] == fp.STAT_LABELS["top1_freq_class_nonend"]
    assert len(fp.plot_aggregate(summary).axes) == 6  # 6 statistics (JS upper folded into the JS panel)
    with pytest.raises(ValueError, match="not in summary"):
        fp.plot_aggregate(summary, ["top1_freq_class"])

    ends = P.end_dominance_distance(result)
    drift = fp.plot_frequency_drift({"corpus": freq, "model": freq}, ends, N_MASKS)
    left, right = drift.axes
    assert len(left.get_lines()) == 2 and "never: 0" in right.get_title()
    assert sum(p.get_height() for p in right.patches) == N_PROMPTS  # every prompt ends in EOS at 9
    with pytest.raises(ValueError, match="top1_freq_class"):
        fp.plot_frequency_drift({"x": summary}, ends, N_MASKS)
