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

from dlmpaper.lm.models import REGISTRY, ModelSpec

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


# --------------------------------------------------------------------------- remote-code stand-ins
#: Where our re-implementations of the upstream remote-code interfaces live (upstream_like/README.md).
UPSTREAM_LIKE = Path(__file__).resolve().parent / "upstream_like"

#: Small shapes of LLaDA-8B's architecture (the real one: d_model 4096, 32 heads, 32 layers, mlp 12288).
LLADA_TINY = dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128, max_sequence_length=512)
#: Small shapes of Dream-7B's (Qwen2) architecture (the real one: hidden 3584, 28 heads, 4 kv heads, 28 layers).
DREAM_TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


def _import_upstream_like(family: str, module: str):
    import importlib

    return importlib.import_module(f"upstream_like.{family}.{module}")


def _write_remote_dir(
    directory: Path, family: str, files: tuple[str, ...], *, replace: dict[str, str] | None = None
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in files:
        text = (UPSTREAM_LIKE / family / name).read_text()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        (directory / name).write_text(text)


def _save_remote(
    model, config, auto_map: dict[str, str], tokenizer, directory: Path, extra: dict | None = None
) -> Path:
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    cfg = config.to_dict()
    cfg.update({"auto_map": auto_map, **(extra or {})})
    (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    tokenizer.save_pretrained(directory)
    return directory


def _standard_rope(config, device=None, **_):
    """RoPE's inverse frequencies base^(-2i/d) (Su et al. 2021), as transformers 4.x's "default" entry gave them."""
    dim = config.hidden_size // config.num_attention_heads
    return 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float, device=device) / dim)), 1.0


def build_llada_remote(directory: str | Path, *, seed: int = 0, ignore_attention_mask: bool = False, **shape) -> Path:
    """A hub-like LLaDA directory: config.json with ``auto_map``, our LLaDA-interface modelling files,
    random safetensors weights under upstream parameter names, LLaDA's tokenizer ids and template.

    ``ignore_attention_mask=True`` writes the variant that accepts ``attention_mask`` and drops it
    (the Feb-2025 lineage of circulating copies). Loading it needs ``trust_remote_code=True``."""
    directory = Path(directory)
    files = ("configuration_llada.py", "modeling_llada.py")
    _write_remote_dir(
        directory,
        "llada",
        files,
        replace={"IGNORE_ATTENTION_MASK = False": f"IGNORE_ATTENTION_MASK = {bool(ignore_attention_mask)}"},
    )
    cfg_mod = _import_upstream_like("llada", "configuration_llada")
    model_mod = _import_upstream_like("llada", "modeling_llada")
    config = cfg_mod.LLaDAConfig(**{**LLADA_TINY, **shape})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_mod.LLaDAModelLM(config)
        for param in model.parameters():  # the remote class never initialises: give it seeded values
            torch.nn.init.normal_(param, std=0.15 if param.dim() > 1 else 0.02)
            if param.dim() == 1:
                param.data += 1.0
    tokenizer = _byte_level_tokenizer(
        LLADA_VOCAB,
        LLADA_SPECIAL,
        LLADA_TEMPLATE,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    auto_map = {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModel": "modeling_llada.LLaDAModelLM",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
    }
    return _save_remote(model.eval(), config, auto_map, tokenizer, directory)


def build_dream_remote(directory: str | Path, *, seed: int = 1, **shape) -> Path:
    """A hub-like Dream directory (config.json with ``auto_map``, our Dream-interface modelling and
    generation files, random weights, generation_config.json, Dream's special ids)."""
    import json

    directory = Path(directory)
    _write_remote_dir(directory, "dream", ("configuration_dream.py", "modeling_dream.py", "generation_utils.py"))
    cfg_mod = _import_upstream_like("dream", "configuration_dream")
    model_mod = _import_upstream_like("dream", "modeling_dream")
    config = cfg_mod.DreamConfig(**{**DREAM_TINY, **shape})
    upstream_table = model_mod.ROPE_INIT_FUNCTIONS  # transformers 5.x has no "default" entry
    model_mod.ROPE_INIT_FUNCTIONS = {**upstream_table, "default": _standard_rope}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_mod.DreamModel(config)
            for param in model.parameters():
                torch.nn.init.normal_(param, std=0.15 if param.dim() > 1 else 0.02)
                if param.dim() == 1:
                    param.data += 1.0
    finally:
        model_mod.ROPE_INIT_FUNCTIONS = upstream_table
    tokenizer = _byte_level_tokenizer(
        DREAM_VOCAB,
        DREAM_SPECIAL,
        DREAM_TEMPLATE,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        mask_token="<|mask|>",
    )
    auto_map = {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"}
    _save_remote(model.eval(), config, auto_map, tokenizer, directory)
    generation = {
        "eps": 1e-3,
        "steps": 512,
        "alg": "origin",
        "mask_token_id": 151666,
        "pad_token_id": 151643,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "temperature": 0.0,
        "max_new_tokens": 16,
    }
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True))
    return directory


def direct_upstream_model(directory: str | Path, family: str) -> torch.nn.Module:
    """The upstream-interface class built by hand from ``directory``'s config and weights, without
    ``from_pretrained`` or any dlmpaper code: the reference a loaded adapter must equal exactly."""
    import json

    from safetensors.torch import load_file

    directory = Path(directory)
    values = json.loads((directory / "config.json").read_text())
    for key in ("auto_map", "architectures", "model_type", "transformers_version"):
        values.pop(key, None)
    if family == "llada":
        config = _import_upstream_like("llada", "configuration_llada").LLaDAConfig(**values)
        model = _import_upstream_like("llada", "modeling_llada").LLaDAModelLM(config)
    else:
        config = _import_upstream_like("dream", "configuration_dream").DreamConfig(**values)
        model_mod = _import_upstream_like("dream", "modeling_dream")
        upstream_table = model_mod.ROPE_INIT_FUNCTIONS
        model_mod.ROPE_INIT_FUNCTIONS = {**upstream_table, "default": _standard_rope}
        try:
            model = model_mod.DreamModel(config)
        finally:
            model_mod.ROPE_INIT_FUNCTIONS = upstream_table
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    config.use_cache = False
    return model.eval()
