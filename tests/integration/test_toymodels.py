"""Tests for dlmpaper.lm.toymodels, dlmpaper.train.toy and the toy analyses of dlmpaper.analyses.trap: masked diffusion LMs trained on the exact toy languages
(paper §4, issue (ii); notebook 04_marginal_trap)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dlmpaper.analyses import trap as AT
from dlmpaper.core import trap as T
from dlmpaper.lm import toymodels as TM
from dlmpaper.train import toy as TT

SHIPPED = sorted(TM.TOY_LANGUAGES)
VERB_STATES = ["I _ _", "he _ _", "they _ _", "she _ _"]


@pytest.fixture(scope="module")
def agreement():
    return T.agreement_language()


@pytest.fixture(scope="module")
def short_run(agreement):
    """The initial model and a 200-step training run on the agreement language (same seed)."""
    init, empty = TT.train_toy_model(agreement, steps=0, seed=0, progress=False)
    model, log = TT.train_toy_model(agreement, steps=200, batch_size=32, lr=5e-3, seed=0, log_every=20, progress=False)
    return init, empty, model, log


# ------------------------------------------------------------------------- training


def test_short_training_lowers_loss(short_run):
    _, empty, _, log = short_run
    assert empty.empty and list(log.columns) == ["step", "loss", "lr"]
    assert log["step"].iloc[-1] == 200
    assert log["loss"].iloc[-3:].mean() < 0.8 * log["loss"].iloc[:2].mean()
    # the evaluation loss is bounded below by H(X)/L (log 36 / 3 for agreement)
    assert log.attrs["entropy_per_token"] == pytest.approx(np.log(36) / 3)
    assert log.attrs["eval_loss"] > log.attrs["entropy_per_token"] - 0.05


def test_verb_marginal_moves_towards_exact(short_run, agreement):
    init, _, model, _ = short_run
    before = AT.marginal_divergence(init, agreement, VERB_STATES)
    after = AT.marginal_divergence(model, agreement, VERB_STATES)
    verb_before = before[before["position"] == 1]
    verb_after = after[after["position"] == 1]
    assert len(verb_after) == len(VERB_STATES)
    assert verb_after["tv"].mean() < 0.5 * verb_before["tv"].mean()
    assert verb_after["kl"].mean() < verb_before["kl"].mean()
    # the trained model's most likely verb agrees with the subject
    top = dict(zip(verb_after["state"], verb_after["model_top"]))
    assert top["I _ _"] in T.VERBS["plural"] and top["he _ _"] in T.VERBS["singular"]


def test_training_is_deterministic_and_leaves_global_rng(agreement):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, log_a = TT.train_toy_model(agreement, steps=5, batch_size=8, seed=3, log_every=1, progress=False)
    assert torch.rand(1).item() == expected.item()  # caller's RNG untouched
    b, log_b = TT.train_toy_model(agreement, steps=5, batch_size=8, seed=3, log_every=1, progress=False)
    c, _ = TT.train_toy_model(agreement, steps=5, batch_size=8, seed=4, log_every=1, progress=False)
    assert log_a["loss"].tolist() == log_b["loss"].tolist()
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


# ------------------------------------------------------------------------ marginals


def test_model_marginal_fn_shape_and_normalisation(short_run, agreement):
    _, _, model, _ = short_run
    fn = TM.model_marginal_fn(model, agreement)
    batch = np.stack([agreement.encode("_ _ _"), agreement.encode("I _ tennis"), agreement.encode("_ _ _")])
    p = fn(batch)
    assert p.shape == (3, 3, agreement.vocab_size)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(p[0], p[2])  # identical rows, identical marginals
    np.testing.assert_allclose(fn(batch[1:2])[0], p[1])  # the cache returns what was computed
    uncached = TM.model_marginal_fn(model, agreement, cache=False)(batch)
    np.testing.assert_allclose(uncached, p, atol=1e-6)


def test_marginal_divergence_zero_for_exact(agreement):
    div = AT.marginal_divergence(T.exact_marginal_fn(agreement), agreement, ["_ _ _", "I _ _", "_ likes _"])
    assert len(div) == 3 + 2 + 2
    assert div["kl"].max() == pytest.approx(0.0, abs=1e-12)
    assert div["tv"].max() == pytest.approx(0.0, abs=1e-12)
    # a uniform model: TV for the verb given "I" is 1/2 (mass 1/2 each on like/play vs 1/11 each)
    uniform = lambda b: np.ones((np.atleast_2d(b).shape[0], 3, agreement.vocab_size))  # noqa: E731
    row = AT.marginal_divergence(uniform, agreement, ["I _ _"]).set_index("position").loc[1]
    V = agreement.vocab_size
    assert row["tv"] == pytest.approx(0.5 * (2 * (0.5 - 1 / V) + (V - 2) / V))
    assert row["kl"] == pytest.approx(np.log(V / 2))


def test_wrong_language_is_refused(short_run):
    _, _, model, _ = short_run
    with pytest.raises(ValueError, match="agreement"):
        TM.model_marginal_fn(model, T.copy_language())


def test_sample_partial_states(agreement):
    s = AT.sample_partial_states(agreement, 200, seed=1)
    assert s.shape == (200, 3)
    assert (s == agreement.mask_id).any(axis=1).all()
    np.testing.assert_array_equal(s, AT.sample_partial_states(agreement, 200, seed=1))


# ---------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_load(name):
    directory = TM.TOY_MODELS / name
    size = sum(p.stat().st_size for p in directory.iterdir())
    assert size < 1_000_000
    model = TM.load_toy_model(name)
    lang = TM.toy_language(name)
    assert model.config.toy_language == lang.name and model.config.vocab_size == lang.vocab_size + 2
    assert (directory / "README.md").read_text().count(TM.TOY_RETRAIN_COMMAND) >= 1
    # a trained model puts almost all of the first left-to-right step on allowed tokens
    p = TM.model_marginal_fn(model, lang)(np.full((1, lang.length), lang.mask_id))[0, 0]
    allowed = np.unique(lang.sequences[:, 0])
    assert p[allowed].sum() > 0.95


def test_corrupted_checkpoint_raises_clear_error(tmp_path):
    shutil.copytree(TM.TOY_MODELS / "agreement", tmp_path / "agreement")
    TM.load_toy_model("agreement", root=tmp_path)  # intact copy loads
    weights = tmp_path / "agreement" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(TM.ToyModelChecksumError, match=r"model\.safetensors.*python -m dlmpaper\.train\.toy --train"):
        TM.load_toy_model("agreement", root=tmp_path)
    weights.unlink()
    with pytest.raises(TM.ToyModelChecksumError, match="missing"):
        TM.load_toy_model("agreement", root=tmp_path)


def test_save_and_load_roundtrip(short_run, tmp_path, agreement):
    _, _, model, log = short_run
    target = TT.save_toy_model(model, agreement, tmp_path / "agreement", log=log)
    assert {p.name for p in target.iterdir()} >= {"config.json", "model.safetensors", "MANIFEST.sha256", "README.md"}
    back = TM.load_toy_model("agreement", root=tmp_path)
    x = np.stack([agreement.encode("_ _ _"), agreement.encode("he _ chess")])
    torch.testing.assert_close(TM.toy_logits(back, x), TM.toy_logits(model, x))


def test_unknown_language_names_the_choices():
    with pytest.raises(ValueError, match="agreement"):
        TM.toy_language("klingon")
    assert TM.toy_language("brackets").name == "brackets8"


# ------------------------------------------------------------------------- analyses


def test_toy_invalid_rates_columns_and_exact_reference():
    df = AT.toy_invalid_rates(["agreement"], tokens_per_step=[1, 2, 3, 8], n_samples=300)
    assert list(df.columns) == [
        "language",
        "order",
        "marginals",
        "tokens_per_step",
        "n_steps",
        "n_samples",
        "invalid_exact",
        "invalid_sim",
        "sim_ci_low",
        "sim_ci_high",
    ]
    assert set(df["marginals"]) == {"exact", "trained"} and set(df["order"]) == {"left_to_right", "random"}
    assert sorted(df["tokens_per_step"].unique()) == [1, 2, 3]  # k = 8 > L = 3 is skipped
    assert len(df) == 2 * 2 * 3
    k1 = df[(df.marginals == "exact") & (df.tokens_per_step == 1)]
    assert len(k1) == 2 and (k1["invalid_exact"] == 0).all() and (k1["invalid_sim"] == 0).all()
    # one step for all three tokens, exact marginals: 1 - P(subject and verb agree) = 4/9
    one_shot = df[(df.marginals == "exact") & (df.tokens_per_step == 3)]
    np.testing.assert_allclose(one_shot["invalid_exact"], 4 / 9)
    # the trained model learned the conditionals (k = 1 near 0) and falls into the same trap at k = 3
    trained = df[(df.marginals == "trained")].set_index(["order", "tokens_per_step"])
    assert trained.loc[("left_to_right", 1), "invalid_exact"] < 0.05
    assert abs(trained.loc[("left_to_right", 3), "invalid_exact"] - 4 / 9) < 0.05


def test_toy_model_quality_table():
    q = AT.toy_model_quality(["agreement"], n_states=64)
    assert list(q["language"]) == ["agreement"]
    row = q.iloc[0]
    assert 0 <= row["kl_mean"] <= row["kl_max"] and 0 <= row["tv_mean"] <= row["tv_max"] <= 1
    assert row["invalid_k1_left_to_right"] < 0.05
    assert row["eval_loss"] >= row["entropy_per_token"] - 0.05
