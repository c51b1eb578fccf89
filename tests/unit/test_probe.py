"""Tests for dlmpaper.core.probe: the 128-mask positional probe (paper §4, issue (i); notebook 03)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dlmpaper.core import probe as P
from dlmpaper.core.logits import sliceable_head

PROMPTS = [
    "Can brain cells move ? By movement I mean long distance migration ( preferably within the brain only ) .",
    "Yes",
    "He likes the cells and neurons do migrate",
    "Can cells move ?",
]


# --------------------------------------------------------------------------- a hand-made model
class FakeModel:
    """Duck-typed DiffusionLM: prompt k is encoded as k+1 copies of token ``100 + k`` and gets
    the fixed mask logits ``tables[k]`` (n_masks, V). Lets us check the math by hand."""

    name = "fake"
    device = torch.device("cpu")
    dtype = torch.float32
    mask_id = 99
    pad_id = 98
    max_length = 64

    def __init__(self, tables, texts, end_ids=()):
        self.tables = [torch.as_tensor(t, dtype=torch.float32) for t in tables]
        self.n_masks, self.vocab_size = self.tables[0].shape
        self.texts = list(texts)
        self.end_ids = tuple(end_ids)
        self.prompts: dict[str, int] = {}
        self.calls = 0

    def encode_chat(self, prompt):
        k = self.prompts.setdefault(prompt, len(self.prompts))
        return [100 + k] * (k + 1)

    def batch(self, ids_list, n_masks=0):
        seqs = [list(s) + [self.mask_id] * n_masks for s in ids_list]
        length = max(map(len, seqs))
        ids = torch.full((len(seqs), length), self.pad_id)
        att = torch.zeros((len(seqs), length), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, length - len(s) :] = torch.tensor(s)
            att[r, length - len(s) :] = 1
        return ids, att

    def logits(self, input_ids, attention_mask=None):
        self.calls += 1
        out = torch.zeros((*input_ids.shape, self.vocab_size))
        for r in range(input_ids.shape[0]):
            first = int(attention_mask[r].argmax())
            k = int(input_ids[r, first]) - 100
            out[r, -self.n_masks :] = self.tables[k]
        return out

    def token_text(self, ids):
        return [self.texts[int(i)] for i in ids]


def _fake(tables, texts=None, end_ids=()):
    v = np.shape(tables[0])[1]
    return FakeModel(tables, texts or [f"w{i}" for i in range(v)], end_ids)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_masks=0, top_k=3, n_prompts=1), "n_masks"),
        (dict(n_masks=-5, top_k=3, n_prompts=1), "n_masks"),
        (dict(n_masks=True, top_k=3, n_prompts=1), "n_masks"),
        (dict(n_masks=8, top_k=0, n_prompts=1), "top_k"),
        (dict(n_masks=8, top_k=3, n_prompts=0), "n_prompts"),
        (dict(n_masks=512, top_k=3, n_prompts=1, max_length=512), "context of 512"),
        (dict(n_masks=8, top_k=11, n_prompts=1, vocab_size=10), "vocabulary of 10"),
    ],
)
def test_validate_probe_args_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.validate_probe_args(**kwargs)


def test_validate_probe_args_accepts_paper_setting():
    P.validate_probe_args(128, 3, 100, max_length=4096, vocab_size=126464)
    P.validate_probe_args(128, 3, None)


def test_as_prompt_frame():
    frame = P.as_prompt_frame(["a", "b"])
    assert frame["prompt_id"].tolist() == ["prompt-0000", "prompt-0001"]
    with pytest.raises(ValueError, match="lacks column"):
        P.as_prompt_frame(pd.DataFrame({"text": ["a"]}))
    with pytest.raises(ValueError, match="duplicate prompt_id"):
        P.as_prompt_frame(pd.DataFrame({"prompt_id": ["x", "x"], "prompt": ["a", "b"]}))
    with pytest.raises(TypeError, match="one string"):
        P.as_prompt_frame("just one prompt")


# --------------------------------------------------------------------------- against a direct forward pass
@pytest.fixture(scope="module")
def llada_result(llada_like):
    torch.set_num_threads(1)
    return P.positional_probe(llada_like, PROMPTS, n_masks=6, top_k=3, batch_size=3, progress=False, js_support=None)


def test_table_layout(llada_result):
    table = llada_result.table
    assert list(table.columns) == ["prompt_id", "position", "rank", "token_id", "token", "prob"]
    assert len(table) == len(PROMPTS) * 6 * 3
    # prompts keep the caller's order although batches are sorted by length
    assert table["prompt_id"].unique().tolist() == [f"prompt-{i:04d}" for i in range(len(PROMPTS))]
    assert table["position"].between(1, 6).all() and table["rank"].between(1, 3).all()
    assert (table.groupby(["prompt_id", "position"])["prob"].apply(lambda p: p.is_monotonic_decreasing)).all()
    assert llada_result.meta["n_batches"] == 2 and llada_result.meta["js_exact"]


def test_probe_equals_direct_forward_per_prompt(llada_like, llada_result):
    n_masks = 6
    for i, prompt in enumerate(PROMPTS):
        ids = llada_like.encode_chat(prompt) + [llada_like.mask_id] * n_masks
        logits = llada_like.logits(torch.tensor([ids]))[0, -n_masks:]
        probs = torch.softmax(logits.double(), dim=-1)
        top_p, top_ids = torch.topk(probs, 3, dim=-1)
        rows = llada_result.table[llada_result.table["prompt_id"] == f"prompt-{i:04d}"]
        np.testing.assert_array_equal(rows["token_id"].to_numpy(), top_ids.reshape(-1).numpy())
        np.testing.assert_allclose(rows["prob"].to_numpy(), top_p.reshape(-1).numpy(), rtol=0, atol=1e-6)
        entropy = -(probs * probs.log()).sum(-1).numpy()
        np.testing.assert_allclose(llada_result.matrix("entropy")[i], entropy, atol=1e-5)
        assert rows["token"].tolist() == llada_like.token_text(top_ids.reshape(-1))


def test_batching_and_left_padding_do_not_change_results(llada_like, llada_result):
    lengths = {len(llada_like.encode_chat(p)) for p in PROMPTS}
    assert len(lengths) > 1  # prompts of different lengths: batches are left-padded
    single = P.positional_probe(llada_like, PROMPTS, n_masks=6, top_k=3, batch_size=1, progress=False, js_support=None)
    np.testing.assert_array_equal(single.table["token_id"], llada_result.table["token_id"])
    np.testing.assert_allclose(single.table["prob"], llada_result.table["prob"], atol=1e-6)
    for column in ("entropy", "top1_prob", "js"):
        np.testing.assert_allclose(single.per_prompt[column], llada_result.per_prompt[column], atol=1e-5)
    np.testing.assert_allclose(single.mean_probs, llada_result.mean_probs, atol=1e-9)


def test_mean_probs_is_mean_of_distributions(llada_like, llada_result):
    assert llada_result.mean_probs.shape == (6, llada_like.vocab_size)
    np.testing.assert_allclose(llada_result.mean_probs.sum(-1), 1.0, atol=1e-6)
    top = llada_result.mean_top(2, llada_like.token_text)
    assert list(top.columns) == ["position", "rank", "token_id", "token", "prob"] and len(top) == 12


# --------------------------------------------------------------------------- statistics known by hand
def test_uniform_distribution_entropy_and_identical_prompts_js_zero():
    v, m = 7, 4
    model = _fake([np.zeros((m, v))] * 3)
    result = P.positional_probe(model, ["a", "b", "c"], n_masks=m, top_k=2, progress=False)
    np.testing.assert_allclose(result.matrix("entropy"), math.log(v), atol=1e-6)
    np.testing.assert_allclose(result.matrix("top1_prob"), 1 / v, atol=1e-7)
    np.testing.assert_allclose(result.matrix("js"), 0.0, atol=1e-6)
    np.testing.assert_allclose(result.mean_probs, 1 / v, atol=1e-12)
    assert model.calls == 1  # one forward pass for one batch


def test_js_of_two_point_masses_by_hand():
    # prompt a: p = (1, 0); prompt b: p = (0, 1); mean (1/2, 1/2): JS = 3/4 log(4/3) each
    inf = float("inf")
    a = np.array([[0.0, -inf]] * 3)
    b = np.array([[-inf, 0.0]] * 3)
    for support in (None, 1, "auto"):
        result = P.positional_probe(_fake([a, b]), ["a", "b"], n_masks=3, top_k=1, progress=False, js_support=support)
        np.testing.assert_allclose(result.matrix("js"), 0.75 * math.log(4 / 3), atol=1e-6)
        np.testing.assert_allclose(result.matrix("js_upper"), 0.75 * math.log(4 / 3), atol=1e-6)
        np.testing.assert_allclose(result.matrix("entropy"), 0.0, atol=1e-7)  # -inf logits: 0 log 0 = 0
        assert result.matrix("top1_id")[:, 0].tolist() == [0, 1]


def test_truncated_js_brackets_the_exact_value():
    rng = np.random.default_rng(0)
    tables = [rng.normal(scale=2.0, size=(5, 40)) for _ in range(4)]
    prompts = ["p0", "p1", "p2", "p3"]
    exact = P.positional_probe(_fake(tables), prompts, n_masks=5, top_k=3, progress=False, js_support=None)
    # direct float64 reference
    probs = np.stack(
        [
            np.exp(t - t.max(-1, keepdims=True)) / np.exp(t - t.max(-1, keepdims=True)).sum(-1, keepdims=True)
            for t in tables
        ]
    )
    mean = probs.mean(0)
    a = (probs + mean) / 2
    kl = lambda p, q: (p * np.log(p / q)).sum(-1)  # noqa: E731
    reference = 0.5 * kl(probs, a) + 0.5 * kl(mean[None], a)
    np.testing.assert_allclose(exact.matrix("js"), reference, atol=1e-6)
    assert reference.min() > 1e-3  # a non-trivial case
    for k in (1, 5, 20):
        cut = P.positional_probe(_fake(tables), prompts, n_masks=5, top_k=3, progress=False, js_support=k)
        assert cut.js_support == k and not cut.meta["js_exact"]
        assert (cut.matrix("js") <= reference + 1e-6).all()
        assert (cut.matrix("js_upper") >= reference - 1e-6).all()
        assert (cut.matrix("js_upper") - cut.matrix("js")).max() > 1e-4  # really truncated
    skipped = P.positional_probe(_fake(tables), prompts, n_masks=5, top_k=3, progress=False, js_support=0)
    assert skipped.per_prompt["js"].isna().all()
    np.testing.assert_allclose(skipped.matrix("entropy"), exact.matrix("entropy"))


def _hand_result():
    """Two prompts, V = 3 tokens ("the", end, " cells"), 5 positions with known top-1 sequences."""
    the, end, cells = 0, 1, 2
    top1 = {"a": [cells, end, the, end, end], "b": [the, the, end, end, end]}
    tables = []
    for key in ("a", "b"):
        t = np.zeros((5, 3))
        for pos, tok in enumerate(top1[key]):
            t[pos, tok] = 3.0
        tables.append(t)
    model = _fake(tables, texts=["\u0120the", "<|endoftext|>", "\u0120cells"], end_ids=(end,))
    return P.positional_probe(model, ["a", "b"], n_masks=5, top_k=2, progress=False)


def test_position_summary_hand_case():
    result = _hand_result()
    ranks = P.unigram_ranks_from_counts({0: 100, 1: 50, 2: 10})  # the: 1, end: 2, cells: 3
    summary = P.position_summary(result, reference_ranks=ranks, n_boot=200, seed=1)
    assert list(summary.columns) == ["position", "statistic", "mean", "ci_low", "ci_high", "n_prompts"]
    assert summary["statistic"].unique().tolist() == list(P.STATISTICS)
    wide = summary.pivot(index="position", columns="statistic", values="mean")
    np.testing.assert_allclose(wide["end_share"], [0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(wide["stop_punct_share"], [0.5, 0.5, 0.5, 0.0, 0.0])  # "the"; end tokens excluded
    # frequency class floor(log2(rank)): the -> 0, end (rank 2) -> 1, cells (rank 3) -> 1
    np.testing.assert_allclose(wide["top1_freq_class"], [0.5, 0.5, 0.5, 1.0, 1.0])
    p_top = math.exp(3) / (math.exp(3) + 2)
    np.testing.assert_allclose(wide["top1_prob"], p_top, atol=1e-6)
    np.testing.assert_allclose(
        wide["entropy"], -(p_top * math.log(p_top) + 2 * (1 - p_top) / 2 * math.log((1 - p_top) / 2)), atol=1e-5
    )
    assert (summary["ci_low"] <= summary["mean"] + 1e-12).all() and (
        summary["mean"] <= summary["ci_high"] + 1e-12
    ).all()
    # identical distributions at positions 4-5: JS 0 and a zero-width CI
    js = summary[(summary["statistic"] == "js_divergence") & (summary["position"] >= 4)]
    np.testing.assert_allclose(js[["mean", "ci_low", "ci_high"]].to_numpy(), 0.0, atol=1e-6)
    assert "top1_freq_class" not in set(P.position_summary(result, n_boot=10)["statistic"])


def test_end_dominance_distance_hand_case():
    ends = P.end_dominance_distance(_hand_result())
    assert ends["prompt_id"].tolist() == ["prompt-0000", "prompt-0001"]
    assert ends["end_dominance_position"].tolist() == [4.0, 3.0]  # a: end, the, end, end -> from 4
    assert ends["n_end_top1"].tolist() == [3, 3]
    never = np.zeros((3, 2))
    never[:, 0] = 1.0  # top-1 is token 0 everywhere, the end token is 1
    result = P.positional_probe(_fake([never], end_ids=(1,)), ["x"], n_masks=3, top_k=1, progress=False)
    assert math.isnan(P.end_dominance_distance(result)["end_dominance_position"][0])


def test_modal_top1():
    modal = P.modal_top1(_hand_result())
    # positions 1-3 are 1:1 ties (ties go to the lowest id, "the" = 0); 4-5: both prompts end
    assert modal["token_id"].tolist() == [0, 0, 0, 1, 1]
    assert modal["share"].tolist() == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert modal["token"].tolist()[-1] == "<|endoftext|>"


def test_bootstrap_ci_contains_mean_and_is_seeded(llada_result):
    a = P.position_summary(llada_result, n_boot=300, seed=0)
    b = P.position_summary(llada_result, n_boot=300, seed=0)
    c = P.position_summary(llada_result, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    assert (a["ci_low"] <= a["mean"] + 1e-12).all() and (a["mean"] <= a["ci_high"] + 1e-12).all()
    entropy = a[a["statistic"] == "entropy"]
    assert (entropy["ci_high"] > entropy["ci_low"]).all()  # prompts differ: a real interval
    with pytest.raises(ValueError, match="n_boot"):
        P.position_summary(llada_result, n_boot=0)


# --------------------------------------------------------------------------- token classes and ranks
@pytest.mark.parametrize(
    "text, expected",
    [
        ("\u0120the", True),
        (" The", True),
        ("\u2581of", True),
        (",", True),
        ("...", True),
        ("\u2014", True),
        ("\n", True),
        ("\u010a", True),
        (" cells", False),
        ("Yes", False),
        ("migrate", False),
        ("<|endoftext|>", False),
        ("", False),
        ("$", True),
    ],
)
def test_is_stop_or_punct(text, expected):
    assert P.is_stop_or_punct(text) is expected


def test_unigram_ranks_from_counts():
    ranks = P.unigram_ranks_from_counts({5: 3, 2: 10, 7: 3, 1: 1})
    assert ranks.to_dict() == {1: 4, 2: 1, 5: 2, 7: 3}  # ties (5, 7) broken by id
    dense = P.unigram_ranks_from_counts(np.array([0.0, 5.0, 2.0]))
    assert dense.tolist() == [3, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        P.unigram_ranks_from_counts({})


def test_unigram_ranks_from_model(llada_like):
    ranks = P.unigram_ranks_from_model(llada_like, n_masks=4)
    assert len(ranks) == llada_like.vocab_size
    assert ranks.min() == 1 and ranks.max() == llada_like.vocab_size and ranks.is_unique
    ids, att = llada_like.batch([llada_like.encode_chat("")], 4)
    mean = torch.softmax(llada_like.logits(ids, att)[0, -4:], -1).mean(0)
    assert ranks[int(mean.argmax())] == 1


# --------------------------------------------------------------------------- context limits
def test_prompt_too_long_errors_or_skips(bert_mlm):
    n_masks = bert_mlm.max_length - 12
    long_prompt = " ".join(["cells"] * 40)
    with pytest.raises(ValueError, match="prompt-0001"):
        P.positional_probe(bert_mlm, ["Yes", long_prompt], n_masks=n_masks, progress=False)
    with pytest.warns(UserWarning, match="skipping 1 prompt"):
        result = P.positional_probe(
            bert_mlm, ["Yes", long_prompt], n_masks=n_masks, top_k=1, progress=False, too_long="skip"
        )
    assert result.prompt_ids == ["prompt-0000"]
    with pytest.raises(ValueError, match="js_support"):
        P.positional_probe(bert_mlm, ["Yes"], n_masks=2, progress=False, js_support=-1)


# --------------------------------------------------------------------------- fast paths
@pytest.mark.parametrize("k", [1, 3, 8])
def test_chunked_topk_equals_torch_topk(k):
    gen = torch.Generator().manual_seed(k)
    x = torch.randn((3, 5, 64 * 40 + 37), generator=gen)  # a ragged last chunk
    x[0, 0, -1] = 9.0  # the maximum in the ragged tail
    x[1, 2, :3] = torch.tensor([7.0, 8.0, 6.5])  # the top 3 in one chunk
    vals, ids = P._topk_last(x, k)
    ref_vals, ref_ids = torch.topk(x, k, dim=-1)
    assert torch.equal(vals, ref_vals) and torch.equal(ids, ref_ids)
    assert int(ids[0, 0, 0]) == x.shape[-1] - 1


def test_mask_head_only_gives_the_full_logits_numbers(llada_like, dream_like, llada_result):
    assert sliceable_head(llada_like) is not None  # the fixture result used the sliced head
    assert sliceable_head(dream_like) is None  # shifted logits: never sliced
    assert sliceable_head(_fake([np.zeros((2, 3))])) is None
    full = P.positional_probe(
        llada_like, PROMPTS, n_masks=6, top_k=3, batch_size=3, progress=False, js_support=None, mask_head_only=False
    )
    np.testing.assert_array_equal(full.table["token_id"], llada_result.table["token_id"])
    np.testing.assert_allclose(full.table["prob"], llada_result.table["prob"], atol=1e-6)
    for column in ("entropy", "js"):
        np.testing.assert_allclose(full.per_prompt[column], llada_result.per_prompt[column], atol=1e-5)
    np.testing.assert_allclose(full.mean_probs, llada_result.mean_probs, atol=1e-7)
