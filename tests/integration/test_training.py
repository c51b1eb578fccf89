"""LLaDA's SFT objective (dlmpaper.core.objectives), the trainer (dlmpaper.train) and the shipped checkpoint."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from dlmpaper import paths
from dlmpaper.core.objectives import corrupt, left_padded_positions, mask_probability, sft_loss
from dlmpaper.lm import embedded
from dlmpaper.lm.embedded import encode_pairs, make_batch, render_prompt
from dlmpaper.lm.models import EMBEDDED_FIX, load_model
from dlmpaper.provenance import ManifestError, verify_manifest
from dlmpaper.train.loop import Run, TrainConfig, evaluate

MASK = 99


def test_mask_probability_is_linear_with_floor_eps():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(mask_probability(t, eps=1e-3), torch.tensor([1e-3, 0.5005, 1.0]))
    with pytest.raises(ValueError):
        mask_probability(t, eps=1.0)


def test_prompt_is_never_masked_and_all_response_tokens_can_be():
    ids = torch.arange(1, 41).reshape(2, 20)
    response = torch.zeros_like(ids)
    response[:, 8:] = 1  # 8 prompt tokens, 12 response tokens (answer + EOS padding)
    batch = corrupt(ids, response, MASK, torch.Generator().manual_seed(0), t=torch.ones(2))
    assert batch.masked[:, :8].sum() == 0, "the prompt must never be masked"
    assert bool(batch.masked[:, 8:].all()), "at t=1 (p=1) every response token, EOS padding included, is masked"
    assert bool((batch.noisy_ids[:, 8:] == MASK).all()) and torch.equal(batch.noisy_ids[:, :8], ids[:, :8])


def test_masking_rate_matches_p():
    ids = torch.ones(200, 500, dtype=torch.long)
    response = torch.ones_like(ids)
    t = torch.full((200,), 0.3)
    batch = corrupt(ids, response, MASK, torch.Generator().manual_seed(1), eps=0.0, t=t)
    rate = batch.masked.float().mean().item()
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / ids.numel())
    drawn = corrupt(ids[:, :1], response[:, :1], MASK, torch.Generator().manual_seed(2))
    assert 0.4 < drawn.p_mask.mean().item() < 0.6, "t ~ U(0, 1) per sequence"


def test_sft_loss_divides_by_p_and_response_length():
    # Uniform logits: every masked token costs log V. Row 0: p=0.5, 4 response tokens, 2 masked;
    # row 1: p=0.25, 2 response tokens, 1 masked. L = (2 log V / (0.5*4) + log V / (0.25*2)) / 2.
    vocab = 7
    ids = torch.zeros(2, 5, dtype=torch.long)
    response = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]])
    masked = torch.tensor([[False, True, True, False, False], [False, False, False, True, False]])
    from dlmpaper.core.objectives import MaskedBatch

    batch = MaskedBatch(ids, masked, torch.tensor([0.5, 0.25]))
    logits = torch.zeros(int(masked.sum()), vocab)
    expected = (2 * math.log(vocab) / 2.0 + math.log(vocab) / 0.5) / 2
    assert sft_loss(logits, batch, ids, response).item() == pytest.approx(expected)


def test_left_padded_positions_start_at_first_real_token():
    attention = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert left_padded_positions(attention).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)


def test_rendered_prompt_equals_the_chat_template(tokenizer):
    for prompt in ["Tell me about the word dog.", "  Can brain cells move?\n"]:
        templated = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        assert templated == render_prompt(prompt)


def test_batch_layout_trains_eos_padding_and_never_the_prompt(tokenizer):
    rows = [
        {"prompt": "Define the word cat.", "response": "The word cat is a noun."},
        {"prompt": "Tell me about the word tiny.", "response": "The word tiny."},
    ]
    data = encode_pairs(tokenizer, rows, 16)
    ids, attention, response = make_batch(data, [0, 1], tokenizer, 16)
    eos, eot = tokenizer.convert_tokens_to_ids([embedded.EOS, embedded.EOT])
    assert (response.sum(dim=1) == 16).all(), "the whole response region, EOS padding included, is trained on"
    assert ids[1, -1].item() == eos and eot in ids[1, -16:].tolist()
    prompt_len = len(data.prompts[1])
    assert response[1, -16 - prompt_len : -16].sum() == 0, "prompt tokens are not part of the loss"
    assert attention[0].sum() == len(data.prompts[0]) + 16, "left padding is excluded by the attention mask"


@pytest.mark.slow
def test_short_training_lowers_heldout_loss_and_resumes_exactly(tmp_path):
    """About 30 s: a small model on a slice of the shipped corpus; loss falls; a resumed run equals an uninterrupted one."""
    torch.set_num_threads(1)

    def fresh_run(directory):
        (directory / "model").mkdir(parents=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            if (paths.EMBEDDED_MODEL / name).exists():
                shutil.copy(paths.EMBEDDED_MODEL / name, directory / "model" / name)
        cfg = TrainConfig(
            steps=40,
            batch_size=8,
            lr=3e-3,
            warmup=5,
            hidden=64,
            layers=2,
            heads=2,
            max_train_pairs=2000,
            eval_pairs=32,
            response_length=48,
            full_length_share=0.0,
        )
        return Run(directory, cfg)

    run = fresh_run(tmp_path / "a")
    before = evaluate(run.model, run.tokenizer, run.heldout, run.cfg, run.unigram)["ce_mask50"]
    run.train(until_step=40, eval_every=1000, save_every=1000)
    after = evaluate(run.model, run.tokenizer, run.heldout, run.cfg, run.unigram)["ce_mask50"]
    assert after < before - 0.5, f"held-out CE should fall: {before:.3f} -> {after:.3f}"

    resumed = fresh_run(tmp_path / "b")
    resumed.train(until_step=20, eval_every=1000, save_every=20)
    again = Run(tmp_path / "b", resumed.cfg)  # from the saved model, optimizer state and step
    assert again.state["step"] == 20
    again.train(until_step=40, eval_every=1000, save_every=1000)
    straight = fresh_run(tmp_path / "c")
    straight.train(until_step=40, eval_every=1000, save_every=1000)
    for (name, p), q in zip(straight.model.named_parameters(), again.model.parameters()):
        assert torch.allclose(p, q, atol=1e-5), f"resumed run differs at {name}"


def test_shipped_checkpoint_passes_its_manifest_and_size_limit():
    checked = verify_manifest(paths.EMBEDDED_MODEL)
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(checked)
    assert (paths.EMBEDDED_MODEL / "model.safetensors").stat().st_size <= 25_000_000
    model = load_model("embedded")
    assert model.mask_id == model.tokenizer.convert_tokens_to_ids(embedded.MASK)
    assert model.eos_id == model.tokenizer.convert_tokens_to_ids(embedded.EOS)


def test_corrupted_checkpoint_names_file_and_retrain_command(tmp_path):
    copy = tmp_path / "embedded_model"
    shutil.copytree(paths.EMBEDDED_MODEL, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(ManifestError, match="model.safetensors") as info:
        verify_manifest(copy, fix=EMBEDDED_FIX)
    assert embedded.RETRAIN_COMMAND in str(info.value)


@pytest.mark.parametrize("family", ["autoregressive", "continuous", "uniform"])
def test_other_families_train_on_the_corpus_resume_and_export(tmp_path, family):
    """The notebook-02 families share the trainer: loss falls, the run resumes, export ships a card."""
    from dlmpaper.lm import families
    from dlmpaper.train.loop import export

    torch.set_num_threads(1)
    cfg = TrainConfig(
        steps=12,
        batch_size=8,
        lr=3e-3,
        warmup=2,
        hidden=64,
        layers=2,
        heads=2,
        max_train_pairs=500,
        eval_pairs=16,
        response_length=32,
        full_length_share=0.0,
        family=family,
    )
    run = Run(tmp_path / "run", cfg)
    assert run.tokenizer.get_vocab() == load_model("embedded").tokenizer.get_vocab()  # the shared tokenizer
    key = "response_ce" if family == "autoregressive" else "ce_t50"
    before = evaluate(run.model, run.tokenizer, run.heldout, cfg)[key]
    run.train(until_step=6, eval_every=1000, save_every=6)
    again = Run(tmp_path / "run", cfg)
    assert again.state["step"] == 6 and type(again.model) is type(run.model)
    again.train(until_step=12, eval_every=12, save_every=12)
    assert again.state["evals"][-1][key] < before
    export(tmp_path / "run", tmp_path / "shipped", "python -m dlmpaper.train --family " + family)
    loaded_family, model = families.load_family_model(tmp_path / "shipped")
    assert loaded_family == family
    assert "tokenizer.json" not in {p.name for p in (tmp_path / "shipped").iterdir()}
    assert "Held-out evaluation" in (tmp_path / "shipped" / "README.md").read_text()
