"""Tests for dlmpaper.core.sampling: LLaDA's parallel decoder, its records, and the marginal-trap metrics
(paper §4, issue (ii), notebook 04_marginal_trap)."""

from __future__ import annotations

import copy
import importlib.util
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dlmpaper import paths
from dlmpaper.core import sampling as S
from dlmpaper.lm.models import DiffusionLM


def _load_reference():
    spec = importlib.util.spec_from_file_location("llada_reference", paths.BENCHMARKS / "llada_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_llada_generate


reference_llada_generate = _load_reference()

PROMPTS = ["Can brain cells move ?", "Yes", "He likes the cells that can migrate in the brain"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def llada_prompts(llada_like):
    ids = [llada_like.encode_chat(p) for p in PROMPTS]
    assert len({len(i) for i in ids}) == 3  # different lengths: left padding is exercised
    return ids


def _sharpened(lm):
    """A copy of a stand-in with weights redrawn at std 1: its predictions depend on the context,
    so the commit order changes the answer (the fixtures' small random weights make almost every
    position predict the same token). The session fixture itself is not touched."""
    model = copy.deepcopy(lm.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen))
    return DiffusionLM(model, lm.tokenizer, lm.spec)


@pytest.fixture(scope="module")
def sharp_llada(llada_like):
    return _sharpened(llada_like)


@pytest.fixture(scope="module")
def sharp(bert_mlm):
    """Small vocabulary (fast): most reference comparisons run on it."""
    return _sharpened(bert_mlm)


@pytest.fixture(scope="module")
def bert_prompts(bert_mlm):
    ids = [bert_mlm.encode_chat(p) for p in PROMPTS]
    assert len({len(i) for i in ids}) == 3
    return ids


# --------------------------------------------------------------------------- a hand-made model
class CountingLM:
    """Fake adapter with known logits. V=6, mask id 5, end id 4. Every masked-or-not position
    of the generated region prefers token ``n_visible % 5`` (4 is the end id) (``n_visible`` = committed tokens in
    the region) with logit ``a + slope * j`` at region position ``j``; all other logits 0."""

    mask_id, eos_id, end_ids, max_length, name, vocab_size = 5, 4, (4,), None, "counting", 6
    device = torch.device("cpu")

    def __init__(self, gen_length, a=1.0, slope=1.0, prompt_len=2):
        self.gen_length, self.a, self.slope, self.prompt_len = gen_length, a, slope, prompt_len
        self.calls = 0

    def batch(self, ids_list, n_masks=0):
        seqs = [list(s) + [self.mask_id] * n_masks for s in ids_list]
        length = max(map(len, seqs))
        x = torch.full((len(seqs), length), 0, dtype=torch.long)
        att = torch.zeros_like(x)
        for r, s in enumerate(seqs):
            x[r, length - len(s) :] = torch.tensor(s)
            att[r, length - len(s) :] = 1
        return x, att

    def logits(self, x, attention_mask=None):
        self.calls += 1
        x = torch.as_tensor(x)
        B, L = x.shape
        G = L - self.prompt_len if self.gen_length is None else self.gen_length
        out = torch.zeros((B, L, 6))
        region = x[:, L - G :]
        n_visible = (region != self.mask_id).sum(-1)
        for r in range(B):
            for j in range(G):
                out[r, L - G + j, int(n_visible[r]) % 5] = self.a + self.slope * j
        return out

    def decode(self, ids):
        return " ".join(str(int(i)) for i in ids)

    def token_text(self, ids):
        return [str(int(i)) for i in torch.as_tensor(ids).reshape(-1)]


class Boom:
    """Any use of this 'model' fails the test: validation must come first."""

    def __getattr__(self, name):
        raise AssertionError(f"model.{name} touched before settings were validated")


# --------------------------------------------------------------------------- schedule & settings
def test_transfer_schedule_by_hand():
    assert S.transfer_schedule(10, 4) == [3, 3, 2, 2]
    assert S.transfer_schedule(8, 8) == [1] * 8
    assert S.transfer_schedule(7, 1) == [7]
    assert S.transfer_schedule(5, 3) == [2, 2, 1]
    with pytest.raises(ValueError):
        S.transfer_schedule(4, 0)


def test_check_settings_derives_steps():
    s = S.check_settings(gen_length=64, block_length=16, tokens_per_step=4)
    assert (s.steps, s.n_blocks, s.steps_per_block) == (16, 4, 4)
    assert S.check_settings(gen_length=64, block_length=None, tokens_per_step=3).steps == 22  # ceil(64/3)
    assert S.check_settings(gen_length=32, block_length=8, tokens_per_step=3).steps == 4 * 3  # per block
    assert S.check_settings(gen_length=32, block_length=8).steps == 32  # default: one token per step


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(gen_length=10, block_length=4), "multiple of block_length"),
        (dict(gen_length=16, block_length=4, steps=6), "divisible by the number of blocks"),
        (dict(gen_length=16, block_length=4, steps=4, tokens_per_step=4), "not both"),
        (dict(gen_length=16, block_length=4, steps=32), "exceed block_length"),
        (dict(gen_length=0), ">= 1"),
        (dict(gen_length=8, block_length=8, remasking="lowest"), "unknown remasking"),
        (dict(gen_length=8, block_length=8, temperature=-1.0), "temperature"),
        (dict(gen_length=8, block_length=8, cfg_scale=float("nan")), "cfg_scale"),
        (dict(gen_length=8, block_length=8, tokens_per_step=0), ">= 1"),
    ],
)
def test_generate_validates_before_touching_the_model(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        S.generate(Boom(), [[1, 2]], progress=False, **kwargs)


def test_generate_rejects_bad_prompts(llada_like):
    with pytest.raises(TypeError, match="wrap a single prompt"):
        S.generate(llada_like, "Can brain cells move ?", gen_length=4, block_length=4, progress=False)
    with pytest.raises(ValueError, match="mask id"):
        S.generate(llada_like, [[1, llada_like.mask_id]], gen_length=4, block_length=4, progress=False)
    with pytest.raises(ValueError, match="context"):
        S.generate(llada_like, [[1, 2]], gen_length=512, block_length=512, progress=False)


# --------------------------------------------------------------------------- hand-made model
def test_commit_order_steps_and_disagreement_by_hand():
    # confidence rises to the right: 1 token/step commits positions 2, 1, 0 with tokens 0, 1, 2
    lm = CountingLM(gen_length=3, a=1.0, slope=1.0)
    res = S.generate(lm, [[0, 1]], gen_length=3, block_length=3, steps=3, progress=False)
    assert res.tokens.tolist() == [[2, 1, 0]]
    assert res.commit_step.tolist() == [[2, 1, 0]]
    expected_p = [math.exp(a) / (math.exp(a) + 4) for a in (1.0, 2.0, 3.0)]  # p at commit, mask id excluded
    assert np.allclose(res.confidence[0].numpy(), expected_p)
    assert torch.equal(res.confidence, res.committed_value)
    # pass s prefers token s % 5 everywhere; committed tokens: pos2=0 (step0), pos1=1, pos0=2
    d = res.disagreement[0].int().tolist()
    assert d == [[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1]]
    assert lm.calls == 4  # 3 steps + the final check
    frame = res.disagreement_frame()
    assert frame["n_committed"].tolist() == [0, 1, 2, 3]
    assert frame["n_disagree"].tolist() == [0, 1, 2, 3]
    assert frame["final"].tolist() == [False, False, False, True]
    assert res.texts == ["2 1 0"]


def test_remask_check_by_hand():
    # finished answer [2, 1, 0]: with one position masked, 2 tokens are visible -> prediction 2
    lm = CountingLM(gen_length=3, a=1.0, slope=1.0)
    res = S.generate(lm, [[0, 1]], gen_length=3, block_length=3, steps=3, progress=False, record=False)
    frame = S.remask_check(lm, res, batch_size=2)
    assert frame["position"].tolist() == [0, 1, 2] and frame["step"].tolist() == [2, 1, 0]
    assert frame["argmax_id"].tolist() == [2, 2, 2]
    assert frame["would_revise"].tolist() == [False, True, True]
    p_top = [math.exp(a) / (math.exp(a) + 4) for a in (1.0, 2.0, 3.0)]
    assert np.allclose(frame["p_argmax"], p_top)
    assert np.allclose(frame["p_committed"], [p_top[0], 1 / (math.exp(2.0) + 4), 1 / (math.exp(3.0) + 4)])


def test_blocks_go_left_to_right_and_tokens_per_step():
    # confidence rises to the right, but blocks force left-to-right order between blocks
    lm = CountingLM(gen_length=4, a=1.0, slope=1.0)
    res = S.generate(lm, [[0, 1]], gen_length=4, block_length=2, tokens_per_step=2, progress=False, record=False)
    assert res.settings.steps == 2
    assert res.commit_step.tolist() == [[0, 0, 1, 1]]
    assert res.tokens.tolist() == [[0, 0, 2, 2]]  # second block sees 2 committed tokens
    assert res.disagreement is None and lm.calls == 2
    with pytest.raises(ValueError, match="record=True"):
        res.disagreement_frame()
    recorded = S.generate(lm, [[0, 1]], gen_length=4, block_length=2, tokens_per_step=2, progress=False)
    assert torch.equal(recorded.tokens, res.tokens)
    # pass 1 prefers 2 over the first block's 0s; the final pass prefers 4 everywhere
    assert recorded.disagreement[0].int().tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert recorded.to_frame()["n_later_disagreements"].tolist() == [2, 2, 1, 1]


def test_end_id_cuts_texts():
    lm = CountingLM(gen_length=None, a=10.0, slope=-1.0, prompt_len=2)  # confidence falls to the right
    res = S.generate(lm, [[0, 1]], gen_length=6, block_length=6, steps=6, progress=False)
    # left to right 0, 1, 2, 3, then the end id 4, then 0: the answer stops before the end id
    assert res.tokens.tolist() == [[0, 1, 2, 3, 4, 0]]
    assert res.answer_lengths().tolist() == [4]
    assert res.texts == ["0 1 2 3"]
    assert res.to_frame()["in_answer"].tolist() == [True] * 4 + [False] * 2


# --------------------------------------------------------------------------- against LLaDA's algorithm
@pytest.mark.parametrize("gen_length, block_length, steps", [(8, 8, 8), (8, 4, 4), (12, 4, 6), (12, 12, 5)])
def test_matches_reference_low_confidence(sharp, bert_prompts, gen_length, block_length, steps):
    ours = S.generate(
        sharp,
        bert_prompts,
        gen_length=gen_length,
        block_length=block_length,
        steps=steps,
        batch_size=3,
        progress=False,
        record=False,
    )
    ref = reference_llada_generate(sharp, bert_prompts, gen_length=gen_length, block_length=block_length, steps=steps)
    assert ours.tokens.shape == (3, gen_length)
    assert torch.equal(ours.tokens, ref)
    assert not (ours.tokens == sharp.mask_id).any()
    assert len(set(ref.reshape(-1).tolist())) > gen_length // 2  # varied tokens: the check has teeth


def test_matches_reference_with_llada_ids(sharp_llada, llada_prompts):
    kw = dict(gen_length=8, block_length=4, steps=4)
    for cfg in (0.0, 1.5):
        ours = S.generate(sharp_llada, llada_prompts, cfg_scale=cfg, progress=False, record=False, **kw)
        assert torch.equal(ours.tokens, reference_llada_generate(sharp_llada, llada_prompts, cfg_scale=cfg, **kw))


def test_matches_reference_random_remasking_and_cfg(sharp, bert_prompts):
    kw = dict(gen_length=8, block_length=4, steps=4)
    ours = S.generate(sharp, bert_prompts, remasking="random", seed=3, progress=False, record=False, **kw)
    ref = reference_llada_generate(sharp, bert_prompts, remasking="random", seed=3, **kw)
    assert torch.equal(ours.tokens, ref)
    ours_cfg = S.generate(sharp, bert_prompts, cfg_scale=1.5, progress=False, record=False, **kw)
    ref_cfg = reference_llada_generate(sharp, bert_prompts, cfg_scale=1.5, **kw)
    assert torch.equal(ours_cfg.tokens, ref_cfg)
    plain = reference_llada_generate(sharp, bert_prompts, **kw)
    assert not torch.equal(ref_cfg, plain)  # guidance changes the answer
    assert not torch.equal(ref, plain)  # random remasking too


# --------------------------------------------------------------------------- determinism & records
def test_seeded_sampling_is_deterministic_and_batch_independent(sharp, bert_prompts):
    kw = dict(gen_length=8, block_length=4, steps=4, temperature=1.0, progress=False, record=False)
    a = S.generate(sharp, bert_prompts, seed=7, batch_size=3, **kw)
    b = S.generate(sharp, bert_prompts, seed=7, batch_size=1, **kw)
    c = S.generate(sharp, bert_prompts, seed=8, batch_size=3, **kw)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)
    greedy = S.generate(sharp, bert_prompts, seed=7, **{**kw, "temperature": 0.0})
    assert not torch.equal(a.tokens, greedy.tokens)


@pytest.mark.parametrize("remasking", S.REMASKING)
def test_records_are_consistent(sharp, bert_prompts, remasking):
    res = S.generate(
        sharp, bert_prompts[:2], gen_length=8, block_length=4, steps=4, remasking=remasking, progress=False
    )
    B, G = res.tokens.shape
    # each block's 4 positions committed in its 2 steps, 2 per step
    steps = res.commit_step
    assert ((steps[:, :4] >= 0) & (steps[:, :4] < 2)).all() and ((steps[:, 4:] >= 2) & (steps[:, 4:] < 4)).all()
    for s in range(4):
        assert ((steps == s).sum(-1) == 2).all()
    assert ((res.confidence > 0) & (res.confidence <= 1)).all()
    if remasking == "low_confidence":
        assert torch.equal(res.confidence, res.committed_value)
    elif remasking in ("random", "margin"):
        assert ((res.committed_value >= 0) & (res.committed_value <= 1)).all()
    else:
        assert (res.committed_value <= 0).all()
    # disagreement only where the position was committed before the pass
    before = res.commit_step[:, None, :] < torch.arange(5)[None, :, None]
    assert not (res.disagreement & ~before).any()
    frame = res.to_frame()
    assert len(frame) == B * G
    assert {
        "prompt",
        "position",
        "block",
        "step",
        "token_id",
        "token",
        "confidence",
        "score",
        "in_answer",
        "n_later_disagreements",
    } <= set(frame.columns)
    assert frame["token"].iloc[0] == sharp.token_text([int(res.tokens[0, 0])])[0]
    assert frame["block"].tolist()[:8] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_runs_on_dream_and_bert_adapters(dream_like, bert_mlm):
    for lm in (dream_like, bert_mlm):
        prompts = pd.Series(["Can brain cells move ?", "Yes"])  # a notebook's column works as a list
        res = S.generate(lm, prompts, gen_length=4, block_length=2, steps=2, progress=False)
        assert res.tokens.shape == (2, 4) and len(res.texts) == 2
        assert not (res.tokens == lm.mask_id).any()


# --------------------------------------------------------------------------- metrics
def test_incoherence_metrics_by_hand():
    row = [1, 1, 2, 2, 9, 1, 1]
    assert S.adjacent_duplicate_rate(row, end_ids=[9]) == pytest.approx(2 / 3)
    assert S.distinct_ratio(row, end_ids=[9]) == pytest.approx(0.5)
    assert S.answer_length(row, end_ids=[9]) == 4
    assert S.answer_length(row) == 7 and S.adjacent_duplicate_rate(row) == pytest.approx(3 / 6)
    batch = torch.tensor([[3, 4, 5, 9], [9, 1, 1, 1], [7, 7, 7, 7]])
    assert S.answer_length(batch, [9]).tolist() == [3, 0, 4]
    dup = S.adjacent_duplicate_rate(batch, [9])
    assert dup[0] == 0.0 and math.isnan(dup[1]) and dup[2] == 1.0
    dist = S.distinct_ratio(batch, [9])
    assert dist[0] == 1.0 and math.isnan(dist[1]) and dist[2] == pytest.approx(0.25)
    assert math.isnan(S.adjacent_duplicate_rate([5], [9]))


def test_sequential_log_likelihood_by_hand():
    # at region position j the fake prefers token (#visible answer tokens) % 5 with logit 2
    lm = CountingLM(gen_length=None, a=2.0, slope=0.0, prompt_len=2)
    z = math.log(math.exp(2.0) + 4)  # 5 real tokens: the mask id is no candidate
    per_token = S.sequential_log_likelihood(lm, [0, 1], [0, 1, 3], per_token=True, batch_size=2)
    assert np.allclose(per_token, [2 - z, 2 - z, -z])
    assert S.sequential_log_likelihood(lm, [0, 1], [0, 1, 3]) == pytest.approx(4 - 3 * z)
    # extra masked region positions do not change what is visible
    assert S.sequential_log_likelihood(lm, [0, 1], [0, 1, 3], region_length=5) == pytest.approx(4 - 3 * z)
    assert S.sequential_log_likelihood(lm, [0, 1], []) == 0.0
    with pytest.raises(ValueError, match="region_length"):
        S.sequential_log_likelihood(lm, [0, 1], [0, 1, 3], region_length=2)


def test_sequential_log_likelihood_batching_on_a_real_adapter(sharp, bert_prompts):
    answer = [int(t) for t in sharp.encode_chat("Yes they can migrate")[1:-1]]
    a = S.sequential_log_likelihood(sharp, bert_prompts[0], answer, batch_size=1, per_token=True)
    b = S.sequential_log_likelihood(sharp, bert_prompts[0], answer, batch_size=16, per_token=True)
    assert np.allclose(a, b, atol=1e-5) and (a < 0).all()


# --------------------------------------------------------------------------- sweep
def test_sweep_table(sharp):
    df = S.sweep(
        sharp,
        PROMPTS[:2],
        tokens_per_step=(1, 4),
        block_lengths=(4, None),
        gen_length=8,
        remasking=("low_confidence", "margin"),
        progress=False,
    )
    assert isinstance(df, pd.DataFrame) and len(df) == 2 * 2 * 2 * 2
    assert set(df["block_length"]) == {4, 8}
    steps = df.set_index(["tokens_per_step", "block_length"])["steps"].groupby(level=[0, 1]).first().to_dict()
    assert steps == {(1, 4): 8, (1, 8): 8, (4, 4): 2, (4, 8): 2}
    for col in (
        "text",
        "answer_length",
        "adjacent_duplicate_rate",
        "distinct_ratio",
        "seq_loglik",
        "seq_loglik_per_token",
    ):
        assert col in df.columns
    assert (df["seq_loglik"] < 0).all()


def test_sweep_validates_every_setting_first():
    with pytest.raises(ValueError, match="multiple of block_length"):
        S.sweep(Boom(), [[1, 2]], tokens_per_step=(1,), block_lengths=(8, 3), gen_length=8, progress=False)
