"""dlmpaper.analyses.remedies_lm: decoders on a real masked LM at matched NFE, judged by the autoregressive
family model (notebook 05, paper §5)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dlmpaper.analyses import remedies_lm as R


@pytest.fixture(scope="module")
def models():
    import torch

    from dlmpaper import profiles
    from dlmpaper.analyses import properties

    torch.set_num_threads(1)
    prof = profiles.get_profile("embedded")
    lm = profiles.load_profile_model(prof, "cpu", None)
    prompts = profiles.load_profile_prompts(prof, 8, None)
    return lm, properties.load_wordnet_families()["autoregressive"], prompts


def test_judge_prefers_the_gold_answer_and_ignores_batching(models):
    lm, judge, prompts = models
    tok = lm.tokenizer
    prompt_ids = [lm.encode_chat(p) for p in prompts["prompt"]]
    gold = [tok(r, add_special_tokens=False)["input_ids"] for r in prompts["response"]]
    scrambled = [list(reversed(a)) for a in gold]
    end = int(lm.end_ids[0])
    good = R.judge_log_likelihood(judge, prompt_ids, gold, end, batch_size=3)
    bad = R.judge_log_likelihood(judge, prompt_ids, scrambled, end, batch_size=3)
    assert np.all(good[:, 0] > bad[:, 0]), "the judge must prefer real answers to reversed ones"
    alone = np.vstack([R.judge_log_likelihood(judge, [p], [a], end) for p, a in zip(prompt_ids, gold)])
    np.testing.assert_allclose(good, alone, rtol=1e-6, atol=1e-4)  # left padding: float32 rounding only
    np.testing.assert_allclose(good[:, 1], good[:, 0] / np.array([len(a) + 1 for a in gold]))
    with pytest.raises(ValueError, match="prompts for"):
        R.judge_log_likelihood(judge, prompt_ids, gold[:2], end)


def test_calibrate_bisects_to_the_target(monkeypatch):
    class Fake:
        def __init__(self, value):
            self.nfe_masked = np.array([math.ceil(10 * value)] * 4)

    monkeypatch.setattr(R, "_run", lambda lm, prompts, strategy, *a: Fake(strategy))
    up = R.AdaptiveDecoder("up", lambda v: v, 0.0, 1.0, more_passes_when_larger=True)
    out = R.calibrate(None, ["p"], up, 5, iterations=12)
    assert out["mean_nfe"] == 5 and 0.4 < out["parameter"] <= 0.5
    down = R.AdaptiveDecoder("down", lambda v: 1.0 - v, 0.0, 1.0, more_passes_when_larger=False)
    assert R.calibrate(None, ["p"], down, 3, iterations=12)["mean_nfe"] == 3
    with pytest.raises(ValueError, match="target_nfe"):
        R.calibrate(None, ["p"], up, 0)


def test_summarize_decoders_by_hand():
    table = pd.DataFrame({"decoder": ["a", "a", "b"], "nfe": [2, 4, 8], "distinct_ratio": [0.5, np.nan, 1.0]})
    out = R.summarize_decoders(table, ["nfe", "distinct_ratio"], n_boot=100).set_index(["decoder", "metric"])
    assert out.loc[("a", "nfe"), "mean"] == 3.0 and out.loc[("a", "distinct_ratio"), "n"] == 1
    assert out.loc[("b", "nfe"), "ci_low"] == out.loc[("b", "nfe"), "ci_high"] == 8.0
    with pytest.raises(ValueError, match="lacks"):
        R.summarize_decoders(table, ["judge_loglik"])


def test_compare_decoders_small_and_deterministic(models):
    lm, judge, prompts = models
    texts = prompts["prompt"].tolist()
    kwargs = dict(tokens_per_step=4, gen_length=8, block_length=8, calibration_iterations=3, progress=False)
    table, calibration = R.compare_decoders(lm, judge, texts[:4], texts[4:], **kwargs)
    again, _ = R.compare_decoders(lm, judge, texts[:4], texts[4:], **kwargs)
    pd.testing.assert_frame_equal(table, again)
    assert set(R.METRICS) <= set(table.columns) and len(calibration) == len(R.DEFAULT_ADAPTIVE)
    nfe = table.groupby("decoder")["nfe"].mean()
    assert nfe["low-confidence, 4/step (LLaDA)"] == 2 and nfe["low-confidence, 1/step (reference)"] == 8
    assert (table["judge_loglik"] < 0).all()
    with pytest.raises(ValueError, match="divide"):
        R.compare_decoders(lm, judge, texts[:4], texts[4:], tokens_per_step=3, gen_length=8, block_length=8)
