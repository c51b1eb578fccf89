"""The embedded model's tokenizer, architecture and sequence layout (issue "embedded model").

The embedded model is a small masked diffusion LM in LLaDA's image: a bidirectional
transformer (transformers' ModernBERT, no hand-written attention), no timestep input,
a mask token that absorbs, an end-of-text token that pads the response as in LLaDA's SFT,
and LLaDA's chat template shape. Used by every notebook under the ``embedded`` profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import ModernBertConfig, PreTrainedTokenizerFast

from dlmpaper.lm import families

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"  # end of sequence and padding, as in LLaDA
EOT = "<|eot_id|>"
MASK = "<|mdm_mask|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
SPECIAL_TOKENS = [EOS, BOS, EOT, MASK, HEADER_START, HEADER_END]

#: LLaDA's chat template shape (user turn, then the assistant header), written as Jinja.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

#: The one-line recipe for the shipped checkpoint (train into runs/embedded, resumable, then export).
RETRAIN_COMMAND = "python -m dlmpaper.train --preset embedded"

#: Length of the response region every training example is padded to: the paper's probe uses 128 masks.
RESPONSE_LENGTH = 128


def uniform_noise_ids(tokenizer) -> torch.Tensor:
    """The noise vocabulary of a uniform-substitution model on this tokenizer: every id but
    [MASK] (``dlmpaper.lm.families.uniform_noise_ids``; its training and notebook 02)."""
    return families.uniform_noise_ids(len(tokenizer), (tokenizer.convert_tokens_to_ids(MASK),))


def train_tokenizer(texts, vocab_size: int = 8192) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (``tokenizers``) with our special tokens at ids 0-5."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a raw ``tokenizers`` object with our special tokens and chat template."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        mask_token=MASK,
        additional_special_tokens=[EOT, HEADER_START, HEADER_END],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def model_config(
    vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4, max_len: int = 256
) -> ModernBertConfig:
    """A small ModernBERT config: all layers global attention, RoPE, tied embeddings."""
    return ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_len,
        global_attn_every_n_layers=1,
        local_attention=max_len,
        pad_token_id=0,
        eos_token_id=0,
        bos_token_id=1,
        cls_token_id=1,
        sep_token_id=2,
        mask_token_id=3,
        tie_word_embeddings=True,
        embedding_dropout=0.0,
        attention_dropout=0.0,
        mlp_dropout=0.0,
        attn_implementation="sdpa",
    )


def render_prompt(prompt: str) -> str:
    """The chat template as a plain string (matches ``tokenizer.apply_chat_template``; checked in tests)."""
    return f"{BOS}{HEADER_START}user{HEADER_END}\n\n{prompt.strip()}{EOT}{HEADER_START}assistant{HEADER_END}\n\n"


@dataclass
class EncodedPairs:
    """Tokenised pairs: chat-templated prompts and response bodies (no EOT/EOS yet)."""

    prompts: list[list[int]]
    bodies: list[list[int]]
    rows: list[dict]


def encode_pairs(tokenizer, rows: list[dict], response_length: int) -> EncodedPairs:
    """Tokenise ``rows`` (``prompt``, ``response``): prompts through :func:`render_prompt`, bodies cut to
    ``response_length - 1`` tokens (room for ``<|eot_id|>``); used by training and notebook 02."""
    prompts = tokenizer([render_prompt(r["prompt"]) for r in rows], add_special_tokens=False)["input_ids"]
    bodies = tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]
    return EncodedPairs(prompts, [b[: response_length - 1] for b in bodies], rows)


def make_batch(data: EncodedPairs, indices, tokenizer, response_length: int):
    """Left-padded batch: prompt, then the response + ``<|eot_id|>`` + EOS padding to ``response_length``.

    Returns ``(input_ids, attention_mask, response_mask)``.
    """
    eot, eos = tokenizer.convert_tokens_to_ids([EOT, EOS])
    prompt_len = max(len(data.prompts[i]) for i in indices)
    rows, attn, resp = [], [], []
    for i in indices:
        prompt, body = data.prompts[i], data.bodies[i]
        pad = prompt_len - len(prompt)
        response = body + [eot] + [eos] * (response_length - 1 - len(body))
        rows.append([eos] * pad + prompt + response)
        attn.append([0] * pad + [1] * (len(prompt) + response_length))
        resp.append([0] * (pad + len(prompt)) + [1] * response_length)
    return torch.tensor(rows), torch.tensor(attn), torch.tensor(resp)
