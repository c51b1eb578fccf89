"""The fast probe (:func:`dlmpaper.core.probe.positional_probe`: batching, left padding, the
mask-only head, streaming statistics) against its plain reference (:func:`reference_probe`: one
prompt, one forward pass, softmax, top-k, entropy), and the adapter against the model protocol."""

from __future__ import annotations

import numpy as np
import pytest

from dlmpaper.core.probe import positional_probe, reference_probe
from dlmpaper.lm import MaskedDiffusionLM

PROMPTS = ["Why does bread go stale?", 'Tell me about the word "tennis".', "Is a whale a fish?"]


@pytest.mark.parametrize("fixture", ["llada_like", "bert_mlm"])
def test_fast_probe_equals_the_reference(request, fixture):
    model = request.getfixturevalue(fixture)
    n_masks, k = 12, 3
    fast = positional_probe(model, PROMPTS, n_masks=n_masks, top_k=k, batch_size=2, progress=False)
    for i, prompt in enumerate(PROMPTS):
        ref = reference_probe(model, prompt, n_masks=n_masks, top_k=k)
        pid = fast.prompts["prompt_id"].iloc[i]
        got = fast.table[fast.table["prompt_id"] == pid].sort_values(["position", "rank"])
        assert got["token_id"].tolist() == ref["token_id"].tolist()
        np.testing.assert_allclose(got["prob"].to_numpy(), ref["prob"].to_numpy(), rtol=1e-4, atol=1e-6)
        entropy = fast.per_prompt[fast.per_prompt["prompt_id"] == pid].sort_values("position")["entropy"]
        np.testing.assert_allclose(
            entropy.to_numpy(), ref.drop_duplicates("position")["entropy"].to_numpy(), rtol=1e-4, atol=1e-5
        )


def test_reference_probe_by_hand(llada_like):
    """Probabilities are a softmax: each position's top-k is sorted and sums to at most 1; the
    entropy lies in [0, log V]."""
    ref = reference_probe(llada_like, PROMPTS[0], n_masks=4, top_k=3)
    assert list(ref["position"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    for _, g in ref.groupby("position"):
        assert (np.diff(g["prob"].to_numpy()) <= 0).all() and g["prob"].sum() <= 1 + 1e-9
    assert ((ref["entropy"] >= 0) & (ref["entropy"] <= np.log(llada_like.vocab_size) + 1e-9)).all()


def test_the_adapter_satisfies_the_model_protocol(llada_like, bert_mlm):
    assert isinstance(llada_like, MaskedDiffusionLM) and isinstance(bert_mlm, MaskedDiffusionLM)
    assert not isinstance(object(), MaskedDiffusionLM)
