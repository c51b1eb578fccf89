"""Logits of the last positions only: the vocabulary projection restricted to where a reader looks.

The probe (§4, issue (i)) reads the 128 mask positions after a prompt, and every decoder of
:mod:`dlmpaper.core.sampling` reads the generated region; neither needs the prompt positions'
logits. For a small model the vocabulary projection is the largest matrix product (hidden 256 x
8,192 words for the embedded model: about as many multiply-adds per token as its four layers
together), so :func:`tail_logits` feeds the LM head only the last ``n_last`` hidden states through a
forward pre-hook. The slice is made contiguous; the result equals slicing the full logits to float32
rounding (bit for bit at the embedded model's batch shapes on CPU; a product of very few rows may
take another kernel: tests/unit/test_tail_logits.py). Models the hook cannot serve get the full
logits, sliced. Used by notebooks 02-05 through the probe, the samplers and
:func:`dlmpaper.analyses.properties.masked_gold_probability`.
"""

from __future__ import annotations

import torch

__all__ = ["sliceable_head", "tail_logits"]


def sliceable_head(model) -> torch.nn.Linear | None:
    """The LM head (``nn.Linear``) of a :class:`dlmpaper.lm.models.DiffusionLM` whose logits at the
    last positions depend only on the head's input there, or None (then callers take full logits).

    Needs: no Dream-style shift (``shift_logits``), batched padding (not ``per_row``) and a
    Hugging Face module whose ``get_output_embeddings()`` is a Linear layer. Duck-typed models
    (a user's own, the tests' stand-ins) and anything else get None.
    """
    if getattr(model, "shift_logits", True) or getattr(model, "padding_mode", "per_row") == "per_row":
        return None
    module = getattr(model, "model", None)
    get = getattr(module, "get_output_embeddings", None)
    if not isinstance(module, torch.nn.Module) or not callable(get):
        return None
    head = get()
    return head if isinstance(head, torch.nn.Linear) else None


def tail_logits(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    n_last: int,
    head: torch.nn.Linear | None | str = "auto",
) -> torch.Tensor:
    """float32 logits ``(B, n_last, V)`` at the last ``n_last`` positions: ``model.logits(...)[:, -n_last:]``.

    With a sliceable ``head`` (``"auto"``: :func:`sliceable_head`; pass it to skip the lookup in a
    loop, or None to force full logits) a forward pre-hook feeds the head only the last ``n_last``
    hidden states, as a fresh contiguous tensor; the hook is removed before returning. If the head
    is not called exactly once on a ``(B, L, H)`` input, the hook passes everything through and the
    full logits are sliced.
    """
    length = input_ids.shape[1]
    if not 1 <= n_last <= length:
        raise ValueError(f"n_last must be in [1, {length}], got {n_last}")
    if isinstance(head, str):
        head = sliceable_head(model)
    if head is None or length == n_last:
        return model.logits(input_ids, attention_mask)[:, -n_last:, :]
    calls = []

    def keep_last(_module, args):
        hidden = args[0]
        calls.append(hidden.shape)
        if len(calls) == 1 and hidden.dim() == 3 and hidden.shape[1] == length:
            return (hidden[:, -n_last:, :].contiguous(), *args[1:])
        return None

    handle = head.register_forward_pre_hook(keep_last)
    try:
        logits = model.logits(input_ids, attention_mask)
    finally:
        handle.remove()
    if logits.shape[1] != n_last and logits.shape[1] != length:
        raise RuntimeError(f"the LM head hook returned {tuple(logits.shape)} logits; take full logits instead")
    return logits[:, -n_last:, :]
