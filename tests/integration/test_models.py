"""Contract of dlmpaper.lm.models on tiny local stand-ins (tests/standins.py); no downloads."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import shutil

import pytest
import torch
import transformers
from standins import LLADA_LIKE_SPEC, LLADA_SPECIAL, LLADA_TEMPLATE

from dlmpaper import paths
from dlmpaper.lm import models
from dlmpaper.lm.hub import HubAccessError, hub_available
from dlmpaper.lm.models import (
    REGISTRY,
    ModelNotFoundError,
    RemoteCodeRequiredError,
    TokenIdError,
    UnknownModelError,
    check_model_name,
    load_model,
)
from dlmpaper.provenance import MANIFEST_NAME, ManifestError, verify_manifest, write_manifest

PROMPT = "Can brain cells move? By movement I mean long distance migration"
PROMPTS = [PROMPT, "Yes", "He likes the brain cells and I like it"]


@pytest.fixture
def no_loading(monkeypatch):
    """Make any attempt to load weights or tokenizers fail loudly."""

    def boom(*args, **kwargs):
        raise AssertionError(f"from_pretrained called with {args} {kwargs}")

    for cls in (transformers.AutoTokenizer, transformers.AutoModel, transformers.AutoModelForMaskedLM):
        monkeypatch.setattr(cls, "from_pretrained", boom)


# ------------------------------------------------------------------ registry and names
def test_registry_holds_the_papers_facts():
    llada = REGISTRY["llada-8b-instruct"]
    assert (llada.hub_id, llada.mask_id, llada.eos_id, llada.eot_id, llada.pad_id) == (
        "GSAI-ML/LLaDA-8B-Instruct",
        126336,
        126081,
        126348,
        126081,
    )
    assert not llada.shift_logits and llada.needs_remote_code and llada.dtype == "bfloat16"
    assert REGISTRY["llada-8b-base"].hub_id == "GSAI-ML/LLaDA-8B-Base"
    dream = REGISTRY["dream-7b-instruct"]
    assert (dream.hub_id, dream.mask_id, dream.eos_id, dream.shift_logits) == (
        "Dream-org/Dream-v0-Instruct-7B",
        151666,
        151643,
        True,
    )
    assert REGISTRY["embedded"].mask_token == "<|mdm_mask|>"
    with pytest.raises(dataclasses.FrozenInstanceError):
        llada.mask_id = 0


def test_unknown_name_lists_known_names_before_loading(no_loading):
    with pytest.raises(UnknownModelError) as err:
        check_model_name("llada-9000")
    for name in REGISTRY:
        assert name in str(err.value)
    with pytest.raises(UnknownModelError):
        load_model("llada-9000")
    with pytest.raises(UnknownModelError):
        load_model("./no/such/dir")


def test_check_model_name_accepts_dirs_and_hub_ids(bert_mlm_dir, tmp_path, no_loading):
    assert check_model_name("llada-8b-instruct") is REGISTRY["llada-8b-instruct"]
    local = check_model_name(bert_mlm_dir)
    assert local.adapter == "masked_lm" and local.hub_id == str(bert_mlm_dir)
    assert check_model_name("some-org/some-model").hub_id == "some-org/some-model"
    assert check_model_name("GSAI-ML/LLaDA-8B-Instruct") is REGISTRY["llada-8b-instruct"]
    with pytest.raises(ModelNotFoundError, match="config.json"):
        check_model_name(tmp_path)  # a directory, but not a model


def test_embedded_missing_is_a_clear_error(monkeypatch, tmp_path, no_loading):
    monkeypatch.setattr(paths, "EMBEDDED_MODEL", tmp_path / "embedded_model")
    with pytest.raises(ModelNotFoundError, match="dlmpaper.train --preset embedded"):
        check_model_name("embedded")
    with pytest.raises(ModelNotFoundError, match="missing"):
        load_model("embedded")


def test_embedded_adapter_takes_ids_from_token_strings(monkeypatch, llada_like_dir, tmp_path):
    ckpt = shutil.copytree(llada_like_dir, tmp_path / "embedded_model")
    write_manifest(ckpt)
    monkeypatch.setattr(paths, "EMBEDDED_MODEL", ckpt)
    lm = load_model("embedded")
    assert (lm.name, lm.mask_id, lm.eos_id, lm.pad_id) == ("embedded", 126336, 126081, 126081)
    assert lm.end_ids == (126081, 126348)
    assert lm.hub_id == str(ckpt)


def test_shipped_model_without_its_manifest_is_refused(monkeypatch, llada_like_dir, tmp_path, no_loading):
    ckpt = shutil.copytree(llada_like_dir, tmp_path / "embedded_model")
    monkeypatch.setattr(paths, "EMBEDDED_MODEL", ckpt)
    with pytest.raises(ModelNotFoundError, match="MANIFEST.sha256.*git checkout -- data/embedded_model"):
        load_model("embedded")


@pytest.mark.parametrize("remove, fragment", [("model.safetensors", "weights"), ("tokenizer.json", "tokenizer")])
def test_incomplete_local_directory_names_what_is_missing(bert_mlm_dir, tmp_path, no_loading, remove, fragment):
    copy = shutil.copytree(bert_mlm_dir, tmp_path / "mlm")
    for name in (remove, "tokenizer_config.json") if remove == "tokenizer.json" else (remove,):
        (copy / name).unlink()
    with pytest.raises(
        ModelNotFoundError, match=f"lacks .*{fragment}.*Fix: pass a directory written by save_pretrained"
    ):
        load_model(copy)


# ------------------------------------------------------------------ ids and encoding
def test_llada_like_ids(llada_like):
    assert llada_like.tokenizer.mask_token_id is None  # as in LLaDA: ids come from the registry
    assert (llada_like.mask_id, llada_like.eos_id, llada_like.pad_id) == (126336, 126081, 126081)
    assert llada_like.end_ids == (126081, 126348)
    assert llada_like.vocab_size == 126464 and not llada_like.shift_logits
    assert llada_like.token_text([126336, 126081, 126348]) == ["<|mdm_mask|>", "<|endoftext|>", "<|eot_id|>"]


def test_llada_like_encode_chat_matches_template(llada_like):
    tok = llada_like.tokenizer
    ids = llada_like.encode_chat("Can brain cells move?")
    word = tok.convert_tokens_to_ids
    nl, nlnl = word("\u010a"), word("\u010a\u010a")
    expected = [
        LLADA_SPECIAL["<|startoftext|>"],
        LLADA_SPECIAL["<|start_header_id|>"],
        word("user"),
        LLADA_SPECIAL["<|end_header_id|>"],
        nl,
        nl,
        word("Can"),
        word("\u0120brain"),
        word("\u0120cells"),
        word("\u0120move"),
        word("?"),
        LLADA_SPECIAL["<|eot_id|>"],
        LLADA_SPECIAL["<|start_header_id|>"],
        word("assistant"),
        LLADA_SPECIAL["<|end_header_id|>"],
        nlnl,
    ]
    assert ids == expected
    assert tok.unk_token_id not in ids
    assert llada_like.decode(ids) == (
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nCan brain cells move?"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert "add_generation_prompt" in LLADA_TEMPLATE


def test_generic_path_without_chat_template_uses_plain_encoding(bert_mlm):
    ids = bert_mlm.encode_chat("Can brain cells move ?")
    tok = bert_mlm.tokenizer
    assert ids == [tok.cls_token_id] + tok.convert_tokens_to_ids(["Can", "brain", "cells", "move", "?"]) + [
        tok.sep_token_id
    ]
    assert bert_mlm.mask_id == tok.convert_tokens_to_ids("[MASK]")
    assert bert_mlm.end_ids == (tok.sep_token_id,)


def test_dream_like_ids_and_template(dream_like):
    assert (dream_like.mask_id, dream_like.eos_id, dream_like.end_ids) == (151666, 151643, (151643, 151645))
    assert dream_like.shift_logits
    text = dream_like.decode(dream_like.encode_chat("Yes"))
    assert text == "<|im_start|>user\nYes<|im_end|>\n<|im_start|>assistant\n"


def test_token_text_is_readable(llada_like):
    cells = llada_like.tokenizer.convert_tokens_to_ids("\u0120cells")
    assert llada_like.token_text(torch.tensor([cells, 126081])) == [" cells", "<|endoftext|>"]
    assert llada_like.token_text(cells) == [" cells"]


def test_describe(llada_like):
    row = llada_like.describe()
    assert set(row) >= {
        "name",
        "hub_id",
        "revision",
        "family",
        "n_parameters",
        "mask_id",
        "eos_id",
        "end_ids",
        "dtype",
        "device",
    }
    n_params = sum(p.numel() for p in llada_like.model.parameters())
    assert row["n_parameters"] == n_params > 126464 * 16
    assert (row["mask_id"], row["dtype"], row["device"], row["family"]) == (126336, "float32", "cpu", "masked")


def test_id_consistency_is_checked(bert_mlm_dir, llada_like_dir):
    with pytest.raises(TokenIdError, match="mask id 126336"):
        load_model(bert_mlm_dir, spec=LLADA_LIKE_SPEC)  # 50-token vocabulary has no id 126336
    with pytest.raises(TokenIdError, match="no mask token"):
        load_model(llada_like_dir)  # generic path: LLaDA does not register <|mdm_mask|> as mask_token
    wrong = dataclasses.replace(LLADA_LIKE_SPEC, mask_id=126081)  # id of <|endoftext|>
    with pytest.raises(TokenIdError, match="expected '<\\|mdm_mask\\|>'"):
        load_model(llada_like_dir, spec=wrong)


# ------------------------------------------------------------------ batching and logits
def test_batch_left_pads_and_appends_masks(bert_mlm):
    ids, att = bert_mlm.batch([[7, 8, 9], [5]], n_masks=2)
    m, p = bert_mlm.mask_id, bert_mlm.pad_id
    assert ids.tolist() == [[7, 8, 9, m, m], [p, p, 5, m, m]]
    assert att.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert ids.dtype == torch.long and ids.device == bert_mlm.device
    with pytest.raises(ValueError):
        bert_mlm.batch([])
    with pytest.raises(ValueError, match="context"):
        bert_mlm.batch([[5]], n_masks=600)


@pytest.mark.parametrize("which", ["llada_like", "dream_like", "bert_mlm"])
def test_logits_shape_and_float32(request, which):
    lm = request.getfixturevalue(which)
    ids, att = lm.batch([lm.encode_chat(PROMPT)], n_masks=4)
    out = lm.logits(ids, att)
    assert out.shape == (1, ids.shape[1], lm.vocab_size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_logits_float32_from_bfloat16_model(bert_mlm_dir):
    lm = load_model(bert_mlm_dir, dtype="bfloat16")
    assert lm.dtype == torch.bfloat16 and lm.describe()["dtype"] == "bfloat16"
    ids, att = lm.batch([[5, 6, 7]], n_masks=1)
    assert lm.logits(ids, att).dtype == torch.float32


def test_dream_shift_alignment(dream_like):
    ids, _ = dream_like.batch([dream_like.encode_chat(PROMPT)], n_masks=3)
    with torch.no_grad():
        raw = dream_like.model(input_ids=ids).logits
    out = dream_like.logits(ids)
    torch.testing.assert_close(out[:, 1:], raw[:, :-1], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 0], raw[:, 0], rtol=0, atol=0)
    assert not torch.allclose(out[:, 1:], raw[:, 1:])  # the shift is real, not a no-op


def test_unshifted_models_are_not_shifted(llada_like):
    ids, _ = llada_like.batch([llada_like.encode_chat("Yes")], n_masks=2)
    with torch.no_grad():
        raw = llada_like.model(input_ids=ids).logits
    torch.testing.assert_close(llada_like.logits(ids), raw, rtol=0, atol=0)


def _assert_padding_invariant(lm, n_masks=5, atol=1e-5):
    encoded = [lm.encode_chat(p) for p in PROMPTS]
    ids, att = lm.batch(encoded, n_masks=n_masks)
    assert (att == 0).any(), "the batch must actually contain padding"
    batched = lm.logits(ids, att)
    for row, seq in enumerate(encoded):
        alone_ids, alone_att = lm.batch([seq], n_masks=n_masks)
        alone = lm.logits(alone_ids, alone_att)[0]
        real = int(att[row].sum())
        torch.testing.assert_close(batched[row, -real:], alone, rtol=0, atol=atol)


@pytest.mark.parametrize("which", ["llada_like", "dream_like", "bert_mlm"])
def test_left_padding_does_not_change_real_logits(request, which):
    lm = request.getfixturevalue(which)
    assert lm.padding_mode == "position_ids"
    _assert_padding_invariant(lm)


def test_per_row_fallback_is_padding_invariant(dream_like):
    lm = copy.copy(dream_like)
    lm.padding_mode = "per_row"  # what a model without position_ids and without RoPE gets
    _assert_padding_invariant(lm)


def test_padding_check_can_fail(bert_mlm):
    """Negative control: absolute positions without position_ids do shift real logits."""
    lm = copy.copy(bert_mlm)
    lm.padding_mode = "relative"  # wrong for BERT (absolute position embeddings)
    with pytest.raises(AssertionError):
        _assert_padding_invariant(lm)


# ------------------------------------------------------------------ loading rules
def test_trust_remote_code_only_when_asked(monkeypatch, bert_mlm_dir):
    calls = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForMaskedLM):
        original = cls.from_pretrained

        def record(*args, _original=original, **kwargs):
            calls.append(kwargs)
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", record)
    load_model(bert_mlm_dir)
    assert len(calls) == 2 and all("trust_remote_code" not in kw for kw in calls)
    calls.clear()
    load_model(bert_mlm_dir, trust_remote_code=True)
    assert len(calls) == 2 and all(kw.get("trust_remote_code") is True for kw in calls)


def test_remote_code_models_need_explicit_opt_in(no_loading):
    with pytest.raises(RemoteCodeRequiredError, match="trust_remote_code=True.*--trust-remote-code"):
        load_model("llada-8b-instruct")
    with pytest.raises(RemoteCodeRequiredError):
        load_model("dream-7b-instruct")


def test_hub_offline_fails_fast(monkeypatch, no_loading):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_available() is False
    with pytest.raises(HubAccessError) as err:
        load_model("no-such-org-dlmpaper/no-such-model")
    message = str(err.value)
    assert "hf download no-such-org-dlmpaper/no-such-model" in message and "hf auth login" in message
    assert "--model embedded" in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(HubAccessError, match="GSAI-ML/LLaDA-8B-Instruct"):
        load_model("llada-8b-instruct", trust_remote_code=True)


def test_device_and_dtype_errors(bert_mlm_dir, no_loading):
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model(bert_mlm_dir, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_model(bert_mlm_dir, device="cuda")
    assert models.resolve_dtype("bf16") is torch.bfloat16


# ------------------------------------------------------------------ manifest
def _write_manifest(directory):
    lines = []
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}")
    (directory / MANIFEST_NAME).write_text("\n".join(lines) + "\n")


def test_manifest_verification(bert_mlm_dir, tmp_path):
    ckpt = shutil.copytree(bert_mlm_dir, tmp_path / "ckpt")
    assert verify_manifest(ckpt) == []  # no manifest: nothing to check
    _write_manifest(ckpt)
    assert verify_manifest(ckpt) == ["config.json", "model.safetensors", "tokenizer.json"]
    load_model(ckpt)  # verified at load time

    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    weights.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="model.safetensors") as err:
        verify_manifest(ckpt)
    assert "retrain" in str(err.value)
    with pytest.raises(ManifestError, match="model.safetensors"):
        load_model(ckpt)


def test_manifest_truncated_missing_and_malformed(bert_mlm_dir, tmp_path):
    ckpt = shutil.copytree(bert_mlm_dir, tmp_path / "ckpt")
    _write_manifest(ckpt)
    config = ckpt / "config.json"
    config.write_bytes(config.read_bytes()[:-10])
    with pytest.raises(ManifestError, match="config.json.*truncated"):
        verify_manifest(ckpt)
    config.unlink()
    with pytest.raises(ManifestError, match="config.json.*missing"):
        verify_manifest(ckpt)
    (ckpt / MANIFEST_NAME).write_text("not-a-hash  config.json\n")
    with pytest.raises(ManifestError, match="line 1"):
        verify_manifest(ckpt)


def test_embedded_manifest_checked_at_load(monkeypatch, llada_like_dir, tmp_path):
    ckpt = shutil.copytree(llada_like_dir, tmp_path / "embedded_model")
    config = ckpt / "config.json"
    (ckpt / MANIFEST_NAME).write_text(f"{hashlib.sha256(config.read_bytes()).hexdigest()}  config.json\n")
    monkeypatch.setattr(paths, "EMBEDDED_MODEL", ckpt)
    config.write_text(config.read_text().replace('"hidden_size": 16', '"hidden_size": 17'))
    with pytest.raises(ManifestError, match="config.json") as err:
        load_model("embedded")
    assert "python -m dlmpaper.train --preset embedded" in str(err.value)


@pytest.mark.parametrize("which", ["llada_like", "bert_mlm"])
def test_special_token_text_in_a_prompt_is_encoded_as_text(request, which):
    lm = request.getfixturevalue(which)
    token = "<|mdm_mask|>" if which == "llada_like" else "[MASK]"
    injected = lm.encode_chat(f"Yes {token} No")
    assert lm.mask_id not in injected
    plain = lm.encode_chat("Yes No")
    assert len(injected) > len(plain)  # the string became ordinary pieces
    assert lm.encode_chat("Yes No") == plain  # prompts without such strings are encoded as before


def test_template_parts_keep_their_special_ids_when_the_prompt_holds_special_text(llada_like):
    ids = llada_like.encode_chat("  He <|eot_id|> likes  ")
    assert ids.count(126348) == 1  # the template's own <|eot_id|>, not the user's
    assert ids[:3] == llada_like.encode_chat("He likes")[:3]
