"""Probe measures that can fail (dlmpaper.analyses.probe; notebook 03, paper §4 issue (i)).

Hand-built top-k arrays with answers worked out by hand, then the negative controls on the
shipped embedded model: a prompt-ignoring stand-in must fail every verdict line, shuffled gold
answers must fail the two lines that read the gold answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlmpaper.analyses import probe as PM
from dlmpaper.core.probe import ProbeResult


def _result(top: np.ndarray) -> ProbeResult:
    """A ProbeResult holding only a top-k table (n_prompts, n_masks, top_k), prompts 'p0', 'p1', ..."""
    n, m, k = top.shape
    rows = [
        {"prompt_id": f"p{i}", "position": p + 1, "rank": r + 1, "token_id": int(top[i, p, r])}
        for i in range(n)
        for p in range(m)
        for r in range(k)
    ]
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # any row order
    prompts = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "prompt": [""] * n, "n_prompt_tokens": 1})
    return ProbeResult(
        table=table,
        per_prompt=pd.DataFrame(),
        mean_probs=np.zeros((m, 1)),
        prompts=prompts,
        n_masks=m,
        top_k=k,
        js_support=1,
        vocab_size=100,
        end_ids=(0,),
        model_name="hand",
    )


def _row(frame: pd.DataFrame, window: str, against: str) -> pd.Series:
    return frame[(frame["window"] == window) & (frame["scored_against"] == against)].iloc[0]


def test_derangement_moves_every_prompt_and_needs_two():
    assert PM.derangement(3).tolist() == [1, 2, 0]
    assert not np.any(PM.derangement(7) == np.arange(7))
    with pytest.raises(ValueError, match="at least 2"):
        PM.derangement(1)


def test_topk_ids_restores_prompt_and_position_order():
    top = np.arange(2 * 3 * 2).reshape(2, 3, 2)
    assert np.array_equal(PM.topk_ids(_result(top)), top)


def test_copy_rate_by_hand():
    # 3 prompts, 2 positions, top-2. Prompt tokens: p0 {10}, p1 {20}, p2 {30}.
    top = np.array(
        [
            [[10, 1], [1, 1]],  # p0 copies its own token at position 1
            [[1, 1], [30, 1]],  # p1 shows p2's token (its mismatched partner) at position 2
            [[1, 1], [1, 1]],
        ]
    )  # p2 copies nothing
    frame = PM.copy_rate(
        _result(top), [frozenset({10}), frozenset({20}), frozenset({30})], [(1, 1), (1, 2)], n_boot=200
    )
    assert _row(frame, "1-1", "own")["mean"] == pytest.approx(1 / 3)
    assert _row(frame, "1-1", "mismatched")["mean"] == 0.0
    assert _row(frame, "1-2", "own")["mean"] == pytest.approx(1 / 3)
    assert _row(frame, "1-2", "mismatched")["mean"] == pytest.approx(1 / 3)
    assert _row(frame, "1-2", "excess")["mean"] == pytest.approx(0.0)
    assert set(frame["n_prompts"]) == {3}


def test_copy_rate_leaves_out_prompts_without_content_and_checks_windows():
    top = np.zeros((3, 2, 1), dtype=int)
    top[0, 0, 0] = 5
    frame = PM.copy_rate(_result(top), [frozenset({5}), frozenset(), frozenset({6})], n_boot=50, windows=[(1, 2)])
    assert set(frame["n_prompts"]) == {2}
    assert _row(frame, "1-2", "own")["mean"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="window"):
        PM.copy_rate(_result(top), [frozenset({5})] * 3, windows=[(0, 2)])
    with pytest.raises(ValueError, match="token sets"):
        PM.copy_rate(_result(top), [frozenset({5})] * 2)


def test_gold_recall_by_hand():
    # 2 prompts, 4 positions, top-1; gold p0 {1, 2}, p1 {3, 4, 5, 6}.
    top = np.array([[[1], [9], [9], [3]], [[3], [4], [9], [9]]])
    frame = PM.gold_recall(_result(top), [frozenset({1, 2}), frozenset({3, 4, 5, 6})], [(1, 2), (3, 4)], n_boot=100)
    assert _row(frame, "1-2", "own")["mean"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert _row(frame, "1-2", "mismatched")["mean"] == pytest.approx((0 / 4 + 0 / 2) / 2)
    assert _row(frame, "3-4", "own")["mean"] == pytest.approx(0.0)
    assert _row(frame, "3-4", "mismatched")["mean"] == pytest.approx((1 / 4 + 0) / 2)
    assert _row(frame, "3-4", "excess")["mean"] == pytest.approx(-1 / 8)


def test_end_length_correlation():
    perfect = PM.end_length_correlation([10, 20, np.nan, 30, 40], [5, 7, 100, 8, 50], n_boot=200)
    assert perfect["rho"] == pytest.approx(1.0) and perfect["n_prompts"] == 4
    reversed_ = PM.end_length_correlation([4, 3, 2, 1], [1, 2, 3, 4], n_boot=200)
    assert reversed_["rho"] == pytest.approx(-1.0)
    constant = PM.end_length_correlation([23, 23, 23], [1, 2, 3])
    assert np.isnan(constant["rho"]) and np.isnan(constant["ci_low"])
    with pytest.raises(ValueError, match="end positions"):
        PM.end_length_correlation([1, 2], [1, 2, 3])


def test_shuffled_answers_moves_every_answer():
    prompts = pd.DataFrame({"prompt_id": list("abcdef"), "response": [f"r{i}" for i in range(6)]})
    out = PM.shuffled_answers(prompts, seed=3)
    assert sorted(out["response"]) == sorted(prompts["response"])
    assert not np.any(out["response"].to_numpy() == prompts["response"].to_numpy())
    assert out["prompt_id"].tolist() == prompts["prompt_id"].tolist()
    with pytest.raises(ValueError, match="response"):
        PM.shuffled_answers(prompts.drop(columns="response"))


def test_verdicts_follow_the_intervals():
    js = {
        "near": 0.3,
        "near_low": 0.25,
        "near_high": 0.35,
        "far": 0.0,
        "far_low": 0.0,
        "far_high": 0.0,
        "diff": 0.3,
        "diff_low": 0.25,
        "diff_high": 0.35,
    }
    noise = {**js, "near": 3e-8, "near_low": 3e-8, "near_high": 3e-8, "diff": 3e-8, "diff_low": 3e-8, "diff_high": 3e-8}

    def frame(measure, window, excess_low):
        return pd.DataFrame(
            [
                {
                    "measure": measure,
                    "window": window,
                    "scored_against": k,
                    "mean": 0.1,
                    "ci_low": excess_low if k == "excess" else 0.0,
                    "ci_high": 0.2,
                    "n_prompts": 9,
                }
                for k in ("own", "mismatched", "excess")
            ]
        )

    copy_up, copy_flat = frame("copy_rate", "1-8", 0.05), frame("copy_rate", "1-8", -0.01)
    recall = pd.concat([frame("gold_recall", "1-16", 0.3).assign(ci_high=0.4), frame("gold_recall", "113-128", -0.1)])
    good = PM.verdicts(js, copy_up, recall, {"rho": 0.4, "ci_low": 0.2, "ci_high": 0.6})
    assert good["verdict"].tolist() == ["supported"] * 4
    bad = PM.verdicts(
        noise,
        copy_flat,
        recall.assign(ci_low=-0.1),
        {"rho": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")},
    )
    assert bad["verdict"].tolist() == ["NOT supported"] * 4
    no_gold = PM.verdicts(js, copy_up, None, None)
    assert no_gold["verdict"].tolist()[2:] == ["n/a", "n/a"]


# ------------------------------------------------------------------ the shipped model and its controls
@pytest.fixture(scope="module")
def embedded_probe():
    import torch

    from dlmpaper import profiles
    from dlmpaper.core import probe

    torch.set_num_threads(1)
    prof = profiles.get_profile("embedded")
    lm = profiles.load_profile_model(prof, "cpu", None)
    prompts = profiles.load_profile_prompts(prof, 100, None)  # notebook 03's size

    def evidence(model, frame):
        result = probe.positional_probe(model, frame, n_masks=128, top_k=3, batch_size=8, progress=False)
        return PM.probe_evidence(result, frame, lm.tokenizer, n_boot=300)

    return lm, prompts, evidence


def test_prompt_ignoring_model_fails_every_verdict(embedded_probe):
    lm, prompts, evidence = embedded_probe
    out = evidence(PM.PromptIgnoringModel(lm), prompts)
    assert out["verdicts"]["verdict"].tolist() == ["NOT supported"] * 4
    assert out["js"]["near"] < PM.JS_NOISE_FLOOR
    assert _row(out["copy"], "1-8", "excess")["mean"] == pytest.approx(0.0)


def test_shuffled_answers_fail_the_gold_answer_lines(embedded_probe):
    lm, prompts, evidence = embedded_probe
    real = evidence(lm, prompts)
    shuffled = evidence(lm, PM.shuffled_answers(prompts))
    # the prompt-only lines do not read the answers: identical numbers
    assert real["verdicts"]["numbers"].tolist()[:2] == shuffled["verdicts"]["numbers"].tolist()[:2]
    gold_lines = shuffled["verdicts"][shuffled["verdicts"]["reads"] == "gold answer"]
    assert gold_lines["verdict"].tolist() == ["NOT supported"] * 2
    # the shipped model reads its prompt: lines 1-2 hold on its own held-out prompts
    assert real["verdicts"]["verdict"].tolist()[:2] == ["supported"] * 2
