"""What an analysis needs of a model: the :class:`MaskedDiffusionLM` protocol (docs/ARCHITECTURE.md
"Where to add things").

Every analysis entry point (the probe of notebook 03, the sampler of notebooks 02, 04 and 05, the
measures of :mod:`dlmpaper.analyses`) types its model argument with this protocol rather than the
concrete :class:`dlmpaper.lm.models.DiffusionLM`, so that a user's own diffusion LM plugs in by
offering these members. ``DiffusionLM`` satisfies it (tests/unit/test_probe_reference.py checks that).
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class MaskedDiffusionLM(Protocol):
    """A masked diffusion LM as the analyses use it (paper §4: bidirectional, no timestep input,
    the logit at position i predicts token i once aligned)."""

    #: registry or local name, and hub id / local path (recorded in the figures manifest)
    name: str
    hub_id: str | None
    tokenizer: Any
    #: where inputs go, and the parameters' dtype
    device: torch.device
    dtype: torch.dtype
    #: the mask id, end-of-sequence id, every end id (EOS and end-of-turn) and padding id
    mask_id: int
    eos_id: int
    end_ids: Sequence[int]
    pad_id: int
    #: logit width and context limit (None: unlimited)
    vocab_size: int
    max_length: int | None

    def encode_chat(self, prompt: str, *, system: str | None = None) -> list[int]:
        """The prompt rendered with the model's chat template, as token ids."""

    def batch(self, ids_list: Sequence[Sequence[int]], n_masks: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(input_ids, attention_mask)`` with ``n_masks`` mask tokens after each row."""

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.FloatTensor:
        """``(B, L, vocab)`` logits aligned so that position i predicts token i; padding invisible."""

    def token_text(self, ids: int | Iterable[int] | torch.Tensor) -> list[str]:
        """Each id as its vocabulary piece."""

    def decode(self, ids: Iterable[int] | torch.Tensor, *, skip_special_tokens: bool = False) -> str:
        """Ids as text."""
