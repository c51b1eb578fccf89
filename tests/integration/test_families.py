"""The autoregressive, continuous and uniform families (dlmpaper.lm.families): masks, losses, samplers, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from dlmpaper.lm import families, toymodels
from dlmpaper.provenance import write_manifest
from dlmpaper.train import toy


def tiny_backbone(vocab: int = 12, positions: int = 8, seed: int = 0) -> BertForMaskedLM:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=vocab - 1,
    )
    return BertForMaskedLM(cfg).eval()


def test_causal_mask_by_hand():
    mask = families.causal_attention_mask(torch.tensor([[0, 1, 1]]))[0, 0]
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.bool)  # padded row sees itself only
    assert torch.equal(mask, expected)


def test_autoregressive_backbone_cannot_see_the_future():
    model = tiny_backbone()
    ids = torch.randint(0, 10, (2, 8), generator=torch.Generator().manual_seed(0))
    later = ids.clone()
    later[:, 5:] = (later[:, 5:] + 1) % 10
    attn = families.causal_attention_mask(torch.ones_like(ids))
    a = model(input_ids=ids, attention_mask=attn).logits
    b = model(input_ids=later, attention_mask=attn).logits
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_ar_loss_is_log_vocab_for_a_uniform_model():
    model = tiny_backbone()
    with torch.no_grad():
        model.cls.predictions.decoder.weight.zero_()
        model.cls.predictions.bias.zero_()
    ids = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(1))
    resp = torch.tensor([[0, 0, 1, 1, 1, 1]] * 3)
    loss = families.ar_loss(model, ids, torch.ones_like(ids), torch.arange(6)[None].expand(3, -1), resp)
    assert loss.item() == pytest.approx(math.log(12), abs=1e-5)


def test_diffusion_embeddings_lie_on_the_sphere_and_noise_follows_the_schedule():
    model = families.EmbeddingDiffusionLM(tiny_backbone(), embed_dim=8)
    E = model.diffusion_embeddings()
    assert torch.allclose(E.norm(dim=-1), torch.full((12,), math.sqrt(8)), atol=1e-5)
    ids = torch.zeros(4000, 1, dtype=torch.long)
    z = model.noisy(ids, torch.ones_like(ids), torch.full((4000,), 0.5), torch.Generator().manual_seed(0))
    ab = float(model.schedule.alpha_bar(0.5))
    assert torch.allclose(z.mean(dim=(0, 1)), math.sqrt(ab) * E[0], atol=0.06)
    assert z.var(dim=(0, 1)).mean().item() == pytest.approx(1 - ab, rel=0.06)
    clean = model.noisy(ids[:2], torch.zeros_like(ids[:2]), torch.full((2,), 0.9))
    assert torch.equal(clean, E[ids[:2]])


def test_continuous_sampler_records_every_step_and_keeps_clean_positions():
    model = families.EmbeddingDiffusionLM(tiny_backbone(), embed_dim=8).eval()
    clean = torch.tensor([[3, 4, 0, 0]])
    noisy = torch.tensor([[False, False, True, True]])
    trace = families.continuous_generate(
        model,
        clean,
        noisy,
        torch.ones(1, 4, dtype=torch.long),
        torch.arange(4)[None],
        steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert trace.step_tokens.shape == (5, 1, 4) and trace.step_snap_distance.shape == (5, 1, 4)
    assert torch.equal(trace.step_tokens[:, 0, :2], clean[0, :2].expand(5, -1))
    assert torch.all(trace.step_snap_distance[:, 0, :2] < 1e-3)  # clean positions sit on their embedding
    with pytest.raises(ValueError, match="steps"):
        families.continuous_generate(model, clean, noisy, torch.ones(1, 4, dtype=torch.long), torch.arange(4)[None], 0)


def test_toy_families_train_and_round_trip_through_checkpoints(tmp_path):
    lang = toymodels.toy_language("agreement")
    for family in ("autoregressive", "continuous", "uniform"):
        model, log = toy.train_toy_model(lang, family=family, steps=30, batch_size=32, log_every=5, progress=False)
        assert log["loss"].iloc[-1] < log["loss"].iloc[0]
        target = toy.ship_family_model(model, lang, family, log, 1.0, root=tmp_path)
        again = toymodels.load_toy_family_model(lang, family, root=tmp_path)
        ids = torch.tensor(lang.sample(4, 0))
        if family == "autoregressive":
            mask = families.causal_attention_mask(torch.ones_like(ids))
            assert torch.allclose(
                model(input_ids=ids, attention_mask=mask).logits, again(input_ids=ids, attention_mask=mask).logits
            )
        elif family == "uniform":
            t, pos = torch.full((4,), 0.5), torch.arange(lang.length)[None].expand(4, -1)
            assert torch.allclose(model(ids, t, torch.ones_like(ids), pos), again(ids, t, torch.ones_like(ids), pos))
            assert isinstance(again, families.UniformDiffusionLM)
        else:
            assert torch.equal(model.diffusion_embeddings(), again.diffusion_embeddings())
        assert (target / "README.md").exists() and (target / "training.json").exists()


def test_corrupt_or_missing_family_checkpoint_fails_clearly(tmp_path):
    model = families.EmbeddingDiffusionLM(tiny_backbone(), embed_dim=8)
    target = families.save_family_model(model, tmp_path / "m", "continuous")
    write_manifest(target)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(families.FamilyModelError, match="model.safetensors"):
        families.load_family_model(target, fix="retrain it")
    with pytest.raises(families.FamilyModelError, match="family.json"):
        families.load_family_model(tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown model family"):
        families.check_family("uniformish")


def test_uniform_sampler_keeps_clean_positions_and_marks_what_the_model_drew():
    model = families.UniformDiffusionLM(tiny_backbone())
    clean = torch.tensor([[3, 4, 0, 0, 0]])
    noisy = torch.tensor([[False, False, True, True, True]])
    noise_ids = families.uniform_noise_ids(model.config.vocab_size, (0,))
    trace = families.uniform_generate(
        model,
        clean,
        noisy,
        torch.ones_like(clean),
        torch.arange(5)[None],
        6,
        noise_ids,
        torch.Generator().manual_seed(0),
    )
    assert trace.step_tokens.shape == (6, 1, 5) and trace.step_decided.shape == (6, 1, 5)
    assert (trace.step_tokens[:, 0, :2] == clean[0, :2]).all() and trace.step_decided[:, 0, :2].all()
    assert trace.step_decided[-1].all()  # the last pass draws every value from the model
    assert set(trace.tokens[0, 2:].tolist()) <= set(noise_ids.tolist())
