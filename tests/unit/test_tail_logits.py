"""dlmpaper.core.logits: the vocabulary projection at the last positions only equals slicing the
full logits (to float32 rounding: a matrix product of fewer rows may take another kernel), and falls
back to full logits wherever the head cannot be sliced."""

import pytest
import torch

from dlmpaper.core.logits import sliceable_head, tail_logits
from dlmpaper.core.sampling import generate


def _batch(model, n_masks=5):
    prompts = [model.encode_chat("a b"), model.encode_chat("c d e f g")]
    return model.batch(prompts, n_masks=n_masks)


def test_tail_logits_equal_sliced_full_logits(llada_like):
    ids, attn = _batch(llada_like)
    head = sliceable_head(llada_like)
    assert head is not None
    calls = []
    handle = head.register_forward_hook(lambda _m, _a, out: calls.append(out.shape[1]))
    try:
        full = llada_like.logits(ids, attn)
        for n in (1, 3, ids.shape[1] - 1, ids.shape[1]):
            tail = tail_logits(llada_like, ids, attn, n)
            torch.testing.assert_close(tail, full[:, -n:], rtol=1e-5, atol=1e-6)
            assert tail.is_contiguous()
    finally:
        handle.remove()
    assert calls == [ids.shape[1], 1, 3, ids.shape[1] - 1, ids.shape[1]]  # the head saw only the tail


def test_tail_logits_falls_back_for_shifted_logits(dream_like):
    assert sliceable_head(dream_like) is None  # Dream-style shift: position i reads raw i - 1
    ids, attn = _batch(dream_like)
    assert torch.equal(tail_logits(dream_like, ids, attn, 4), dream_like.logits(ids, attn)[:, -4:])


def test_tail_logits_rejects_a_bad_length(llada_like):
    ids, attn = _batch(llada_like)
    for n in (0, ids.shape[1] + 1):
        with pytest.raises(ValueError, match="n_last"):
            tail_logits(llada_like, ids, attn, n)


def test_samplers_unchanged_with_the_full_head(llada_like, monkeypatch):
    """The decoders read tail_logits; forcing full logits (head lookup -> None) changes no token."""
    import dlmpaper.core.sampling as S
    from dlmpaper.core.strategies import ConfidenceThreshold

    kwargs = dict(gen_length=8, block_length=4, steps=4, batch_size=2, progress=False)
    fast = [generate(llada_like, ["a b", "c d e"], **kwargs, strategy=s) for s in (None, ConfidenceThreshold(tau=0.5))]
    monkeypatch.setattr(S, "sliceable_head", lambda model: None)
    slow = [generate(llada_like, ["a b", "c d e"], **kwargs, strategy=s) for s in (None, ConfidenceThreshold(tau=0.5))]
    for a, b in zip(fast, slow):
        assert torch.equal(a.tokens, b.tokens)
        torch.testing.assert_close(a.confidence, b.confidence, rtol=1e-5, atol=1e-7)
