"""The embedded model's tokenizer, architecture and sequence layout (issue "embedded model").

The embedded model is a small masked diffusion LM in LLaDA's image: a bidirectional
transformer (transformers' ModernBERT, no hand-written attention), no timestep input,
a mask token that absorbs, an end-of-text token that pads the response as in LLaDA's SFT,
and LLaDA's chat template shape. Used by every notebook under the ``embedded`` profile.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import ModernBertConfig, PreTrainedTokenizerFast

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


def model_config(vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4, max_len: int = 256) -> ModernBertConfig:
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


def encode_pair(tokenizer: PreTrainedTokenizerFast, prompt: str, response: str, response_length: int = RESPONSE_LENGTH):
    """Return ``(prompt_ids, response_ids)``: the chat-templated prompt, and the response with
    ``<|eot_id|>`` and ``<|endoftext|>`` padding to exactly ``response_length`` tokens (LLaDA SFT layout)."""
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    body = tokenizer.encode(response, add_special_tokens=False)[: response_length - 1]
    eot, eos = tokenizer.convert_tokens_to_ids([EOT, EOS])
    response_ids = body + [eot] + [eos] * (response_length - 1 - len(body))
    return list(prompt_ids), response_ids


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    tokenizer.save_pretrained(directory)
