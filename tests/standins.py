"""Tiny random local stand-ins for the models the paper uses (no downloads).

Each ``build_*`` function writes a standard Hugging Face directory (config.json,
model.safetensors, tokenizer files) into ``directory`` and returns its path. The
weights are random (seeded): the stand-ins check plumbing (ids, chat encoding,
padding, logit alignment), never model quality.

- :func:`build_llada_like`: vocabulary of LLaDA's size (126464) with its special
  tokens at LLaDA's ids and a chat template in LLaDA's shape; ``<|mdm_mask|>`` is,
  as in LLaDA, *not* registered as ``tokenizer.mask_token``. Load it with
  ``load_model(path, spec=LLADA_LIKE_SPEC)`` (LLaDA's registry entry with the
  remote-code loader swapped for ``AutoModelForMaskedLM``). Its token strings also
  match the embedded model's, so pointing ``dlmpaper.paths.EMBEDDED_MODEL`` at it
  exercises the ``embedded`` adapter.
- :func:`build_dream_like`: Dream's special ids (mask 151666, eos 151643,
  ``<|im_end|>`` 151645) and a Qwen-style template; load with
  ``load_model(path, spec=DREAM_LIKE_SPEC)``, whose ``shift_logits=True`` makes
  the adapter treat raw output i-1 as the prediction for token i.
- :func:`build_bert_mlm`: a small-vocabulary BertForMaskedLM with ``[MASK]``, no
  chat template; load with plain ``load_model(path)`` (the generic masked-LM path).

All three are bidirectional BERTs (hidden 16, 1 layer, 512 positions) so prompts
with 128 appended masks fit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from dlmpaper.models import REGISTRY, ModelSpec

#: Words every stand-in knows (LIMA's first training prompt and the probe's usual suspects).
WORDS = (
    "Can brain cells move ? By movement I mean long distance migration ( preferably within "
    "the only ) . , Yes No and a of to in is it that neurons do they can migrate He She "
    "like likes user assistant system You are helpful"
).split()

LLADA_VOCAB = 126464
LLADA_SPECIAL = {
    "<|startoftext|>": 126080,
    "<|endoftext|>": 126081,
    "<|mdm_mask|>": 126336,
    "<|start_header_id|>": 126346,
    "<|end_header_id|>": 126347,
    "<|eot_id|>": 126348,
}
#: LLaDA's chat template shape: BOS, header, content, <|eot_id|>, then the assistant header.
LLADA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

DREAM_VOCAB = 151680
DREAM_SPECIAL = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|mask|>": 151666,
}
DREAM_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: LLaDA's registry entry, loadable from a local transformers-native directory.
LLADA_LIKE_SPEC: ModelSpec = dataclasses.replace(
    REGISTRY["llada-8b-instruct"],
    name="llada-like",
    hub_id=None,
    auto_class="AutoModelForMaskedLM",
    needs_remote_code=False,
    dtype="float32",
    rotary=False,
    description="tiny random stand-in with LLaDA's ids (tests only)",
)
#: Dream's registry entry (shifted logits, 4-D attention mask), loadable locally.
DREAM_LIKE_SPEC: ModelSpec = dataclasses.replace(
    REGISTRY["dream-7b-instruct"],
    name="dream-like",
    hub_id=None,
    auto_class="AutoModelForMaskedLM",
    needs_remote_code=False,
    dtype="float32",
    rotary=False,
    description="tiny random stand-in with Dream's ids and shifted logits (tests only)",
)


def _byte_level_vocab(size: int, special: dict[str, int]) -> dict[str, int]:
    """Words (bare and with the byte-level space marker) at low ids, specials at their
    fixed ids, dummy ``<|reserved_i|>`` tokens everywhere else."""
    vocab: dict[str, int] = {"<unk>": 0}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
        vocab.setdefault("\u0120" + word, len(vocab))  # "Ġword" = " word"
    for piece in ("\u010a", "\u010a\u010a", "\u0120"):  # "\n", "\n\n", " "
        vocab.setdefault(piece, len(vocab))
    by_id = {i: t for t, i in special.items()}
    assert len(vocab) < min(special.values())
    for i in range(len(vocab), size):
        vocab[by_id.get(i, f"<|reserved_{i}|>")] = i
    return vocab


def _byte_level_tokenizer(size: int, special: dict[str, int], template: str, **tokens: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(_byte_level_vocab(size, special), unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", chat_template=template, **tokens)


def _tiny_bert(vocab_size: int, seed: int) -> BertForMaskedLM:
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)
    return model.eval()


def _save(model, tokenizer, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_llada_like(directory: str | Path, *, seed: int = 0) -> Path:
    """Tiny random bidirectional masked LM with LLaDA's vocabulary size and special ids."""
    tokenizer = _byte_level_tokenizer(
        LLADA_VOCAB,
        LLADA_SPECIAL,
        LLADA_TEMPLATE,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    return _save(_tiny_bert(LLADA_VOCAB, seed), tokenizer, directory)


def build_dream_like(directory: str | Path, *, seed: int = 1) -> Path:
    """Tiny random masked LM with Dream's special ids; shifted logits are declared by DREAM_LIKE_SPEC."""
    tokenizer = _byte_level_tokenizer(
        DREAM_VOCAB,
        DREAM_SPECIAL,
        DREAM_TEMPLATE,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        mask_token="<|mask|>",
    )
    return _save(_tiny_bert(DREAM_VOCAB, seed), tokenizer, directory)


BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_bert_mlm(directory: str | Path, *, seed: int = 2) -> Path:
    """Tiny random BertForMaskedLM, word-level tokenizer with ``[MASK]``, no chat template."""
    vocab = {t: i for i, t in enumerate(BERT_SPECIAL)}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in BERT_SPECIAL])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    return _save(_tiny_bert(len(vocab), seed), tokenizer, directory)
