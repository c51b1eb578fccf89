"""The toy-language models (paper §4, issue (ii): the marginal trap): small masked diffusion LMs and their
autoregressive / continuous siblings trained on the exact toy languages of :mod:`dlmpaper.core.trap`.

``dlmpaper.core.trap`` computes the marginal trap with the *exact* marginals of a toy language:
the ideal token-wise model. The shipped models ask whether a real masked diffusion LM, trained on
samples of the same language with LLaDA's objective, falls into the trap the same way. This module
loads them and reads them:

* :func:`load_toy_model` / :func:`load_toy_family_model` -- the shipped checkpoints in
  ``data/toy_models/<lang.name>/`` and ``data/family_models/<lang.name>-<family>/`` (HF directory
  + ``MANIFEST.sha256`` checked at load);
* :func:`model_marginal_fn` -- a trained model as a ``trap.MarginalFn``;
* :func:`toy_loss` / :func:`evaluation_loss` -- each family's objective on a toy model, and its
  value on fresh samples next to the floor :func:`entropy_per_token`.

Training and shipping live in :mod:`dlmpaper.train.toy` (``python -m dlmpaper.train.toy --train``);
the analyses that compare trained with exact marginals in :mod:`dlmpaper.analyses.trap`. Notebooks
04_marginal_trap, 02_five_properties (property L2) and 05_remedies.

Vocabulary of every toy model: ids ``0 .. V-1`` are the language's tokens, ``V`` is the mask
(``lang.mask_id``), ``V + 1`` is a padding id that never occurs (BERT zeroes the embedding
of ``pad_token_id``, so it must not be a real token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from dlmpaper import paths
from dlmpaper.core.objectives import DEFAULT_EPS, corrupt, masked_logits, scheduled_corrupt, sft_loss
from dlmpaper.core.trap import (
    MarginalFn,
    ToyLanguage,
    agreement_language,
    brackets_language,
    copy_language,
    marginal_fn_from_logits,
)
from dlmpaper.lm import families
from dlmpaper.provenance import MANIFEST_NAME as MANIFEST
from dlmpaper.provenance import ManifestError, verify_manifest

#: Where the shipped toy checkpoints live (one folder per language name).
TOY_MODELS = paths.TOY_MODELS
TOY_RETRAIN_COMMAND = "python -m dlmpaper.train.toy --train"
TRAINING_JSON = "training.json"

#: The shipped toy languages by ``lang.name`` (trap's defaults).
TOY_LANGUAGES: dict[str, Callable[[], ToyLanguage]] = {
    "agreement": agreement_language,
    "brackets8": brackets_language,
    "copy6": copy_language,
}
#: Short names accepted wherever a language name is.
ALIASES = {"brackets": "brackets8", "copy": "copy6"}


class ToyModelChecksumError(ValueError):
    """A shipped toy checkpoint file is missing or differs from its ``MANIFEST.sha256`` line."""


# --------------------------------------------------------------------------- languages


def toy_language(name: str | ToyLanguage) -> ToyLanguage:
    """The toy language called ``name`` (``"agreement"``, ``"brackets8"``/``"brackets"``,
    ``"copy6"``/``"copy"``); a :class:`ToyLanguage` is returned unchanged."""
    if isinstance(name, ToyLanguage):
        return name
    key = ALIASES.get(name, name)
    if key not in TOY_LANGUAGES:
        raise ValueError(f"unknown toy language {name!r}; choose one of {sorted(TOY_LANGUAGES)} (or {sorted(ALIASES)})")
    return TOY_LANGUAGES[key]()


def toy_languages(langs) -> list[ToyLanguage]:
    """Toy languages by name or object (one, several, or None for all of :data:`TOY_LANGUAGES`)."""
    if langs is None:
        return [toy_language(n) for n in TOY_LANGUAGES]
    if isinstance(langs, (str, ToyLanguage)):
        langs = [langs]
    return [toy_language(x) for x in langs]


def entropy_per_token(lang: ToyLanguage) -> float:
    """H(X) / L in nats: the lowest value LLaDA's objective can reach on ``lang`` (its loss
    is an upper bound on the per-token negative log-likelihood, tight for the exact model)."""
    return float(-(lang.probs * np.log(lang.probs)).sum() / lang.length)


# ------------------------------------------------------------------------------ model


def toy_model_config(
    lang: ToyLanguage, hidden: int = 64, layers: int = 2, heads: int = 2, positions: int | None = None
) -> BertConfig:
    """A tiny BERT config for ``lang``: vocab ``V + 2`` (tokens, mask, unused pad), bidirectional
    attention, learned *absolute* position embeddings (``L`` of them), tied embeddings, no dropout.

    Absolute positions matter here: with rotary positions only (ModernBERT, LLaDA) and no prompt,
    a fully masked input is identical at every position, so every position would get the same
    marginal and the first left-to-right step could not know it must open a bracket.
    ``positions`` (default ``L``): the autoregressive family reads ``L + 1`` (a start token first).
    """
    V = lang.vocab_size
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    return BertConfig(
        vocab_size=V + 2,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=positions or lang.length,
        type_vocab_size=1,
        pad_token_id=V + 1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=True,
        mask_token_id=V,
        toy_language=lang.name,
        toy_vocab=list(lang.full_vocab),
    )


def check_toy_model(model, lang: ToyLanguage) -> None:
    cfg = model.config
    name = getattr(cfg, "toy_language", None)
    if name is not None and name != lang.name:
        raise ValueError(f"model was trained on {name!r}, not {lang.name!r}; load the matching toy model")
    if cfg.vocab_size < lang.vocab_size + 1 or getattr(cfg, "mask_token_id", lang.mask_id) != lang.mask_id:
        raise ValueError(
            f"model vocabulary ({cfg.vocab_size} ids) does not fit {lang.name}'s layout (mask id {lang.mask_id})"
        )


@torch.no_grad()
def toy_logits(model, ids: np.ndarray | torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Logits ``(B, L, V + 2)`` of a toy model for ids in trap's layout (mask = ``V``), float32,
    in chunks of ``chunk`` rows (eval mode, no gradient)."""
    x = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    if x.ndim != 2:
        raise ValueError(f"ids must be (B, L), got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        pos = torch.arange(x.shape[1])[None]
        outs = []
        for a in range(0, x.shape[0], chunk):
            xb = x[a : a + chunk]
            outs.append(
                model(
                    input_ids=xb, attention_mask=torch.ones_like(xb), position_ids=pos.expand(xb.shape[0], -1)
                ).logits.float()
            )
        return torch.cat(outs) if outs else torch.zeros(0, x.shape[1], model.config.vocab_size)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- objective


def toy_noise_ids(model) -> torch.Tensor:
    """The uniform family's noise vocabulary on a toy model: the language's tokens, without the
    mask and pad ids that :func:`toy_model_config` appends."""
    return families.uniform_noise_ids(model.config.vocab_size, (model.config.mask_token_id, model.config.pad_token_id))


def toy_loss(
    model,
    ids: torch.Tensor,
    mask_id: int,
    generator: torch.Generator,
    eps: float,
    family: str = "masked",
    exponents: Sequence[float] | None = None,
) -> torch.Tensor:
    """The family's objective with the whole sequence as the response. Masked: LLaDA's, ``t``
    stratified over the batch (``t_b = (b + u_b) / B``: same expectation as i.i.d. ``t``, lower
    variance); with ``exponents`` the per-position schedule of
    :func:`dlmpaper.core.objectives.scheduled_corrupt` and its ELBO weights instead (notebook 05,
    section 3). Autoregressive: next-token CE after a start token (the mask id). Continuous:
    ``families.continuous_loss``. Uniform: ``families.uniform_loss`` with noise over the language's
    tokens (:func:`toy_noise_ids`)."""
    if exponents is not None and family != "masked":
        raise ValueError(f"a masking schedule only applies to the masked family, not {family!r}")
    B, L = ids.shape
    resp = torch.ones_like(ids, dtype=torch.bool)
    if family == "autoregressive":
        full = torch.cat([torch.full((B, 1), mask_id), ids], dim=1)
        full_resp = torch.cat([torch.zeros(B, 1, dtype=torch.bool), resp], dim=1)
        return families.ar_loss(model, full, torch.ones_like(full), torch.arange(L + 1)[None].expand(B, -1), full_resp)
    if family == "continuous":
        return families.continuous_loss(
            model, ids, torch.ones_like(ids), torch.arange(L)[None].expand(B, -1), resp, generator
        )
    if family == "uniform":
        return families.uniform_loss(
            model, ids, torch.ones_like(ids), torch.arange(L)[None].expand(B, -1), resp, toy_noise_ids(model), generator
        )
    t = (torch.arange(B, dtype=torch.float32) + torch.rand(B, generator=generator)) / B
    if exponents is not None:
        noisy, masked, weight = scheduled_corrupt(ids, torch.as_tensor(exponents), mask_id, t, generator, eps)
        pos = torch.arange(L)[None].expand(B, -1)
        logits = masked_logits(model, noisy, torch.ones_like(ids), pos, masked)
        token_ce = torch.nn.functional.cross_entropy(logits.float(), ids[masked], reduction="none")
        return (token_ce * weight[masked]).sum() / (B * L)
    batch = corrupt(ids, resp, mask_id, generator, eps=eps, t=t)
    pos = torch.arange(L)[None].expand(B, -1)
    logits = masked_logits(model, batch.noisy_ids, torch.ones_like(ids), pos, batch.masked)
    return sft_loss(logits, batch, ids, resp)


@torch.no_grad()
def evaluation_loss(
    model, lang: ToyLanguage, n: int = 4096, seed: int = 12345, eps: float = DEFAULT_EPS, family: str = "masked"
) -> float:
    """LLaDA's objective on ``n`` fresh samples with fixed masks (seeded): the card's final loss,
    comparable to :func:`entropy_per_token`."""
    was_training = model.training
    model.eval()
    try:
        ids = torch.from_numpy(lang.sample(n, np.random.default_rng(seed)))
        gen = torch.Generator().manual_seed(seed)
        return float(toy_loss(model, ids, lang.mask_id, gen, eps, family))
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------ marginals


def model_marginal_fn(model, lang: ToyLanguage | str, chunk: int = 4096, cache: bool = True) -> MarginalFn:
    """A trained toy model as a ``trap.MarginalFn`` for ``trap.ModelMarginalDecoder`` and
    ``invalid_rate_by_tokens_per_step`` (via ``trap.marginal_fn_from_logits``: softmax over the
    ``V`` language ids). Distinct rows are run once; with ``cache`` their results are kept for
    later calls (the model must not change afterwards). Notebook 04_marginal_trap."""
    lang = toy_language(lang)
    check_toy_model(model, lang)
    base = marginal_fn_from_logits(lambda ids: toy_logits(model, ids, chunk), lang)
    store: dict[bytes, np.ndarray] = {}

    def fn(batch: np.ndarray) -> np.ndarray:
        batch = np.atleast_2d(np.asarray(batch, dtype=np.int64))
        if batch.shape[1] != lang.length:
            raise ValueError(f"{lang.name}: rows must have length {lang.length}, got {batch.shape[1]}")
        uniq, inv = np.unique(batch, axis=0, return_inverse=True)
        if not cache:
            return base(uniq)[inv.ravel()]
        keys = [row.tobytes() for row in uniq]
        missing = [i for i, k in enumerate(keys) if k not in store]
        if missing:
            for i, p in zip(missing, base(uniq[missing])):
                store[keys[i]] = p
        return np.stack([store[k] for k in keys])[inv.ravel()]

    return fn


# ---------------------------------------------------------------------- checkpoints


def verify_toy_checkpoint(directory: Path) -> None:
    """Check every ``MANIFEST.sha256`` line of ``directory`` (``dlmpaper.provenance.verify_manifest``); raise
    :class:`ToyModelChecksumError` naming the first missing or changed file and the retrain command."""
    directory = Path(directory)
    fix = f"retrain and ship with `{TOY_RETRAIN_COMMAND}` (or restore the file from git)"
    if not (directory / MANIFEST).exists():
        raise ToyModelChecksumError(f"{directory / MANIFEST} is missing; {fix}")
    try:
        listed = verify_manifest(directory, fix=fix)
    except ManifestError as exc:
        raise ToyModelChecksumError(str(exc)) from exc
    for needed in ("config.json", "model.safetensors"):
        if needed not in listed:
            raise ToyModelChecksumError(f"{MANIFEST} in {directory} does not list {needed}; {fix}")


def load_toy_model(name: str | ToyLanguage, root: Path | None = None) -> BertForMaskedLM:
    """The shipped toy model for language ``name`` from ``<root>/<lang.name>/`` (default root
    ``data/toy_models``), after checking ``MANIFEST.sha256``; eval mode, float32, CPU."""
    lang = toy_language(name)
    directory = Path(root if root is not None else TOY_MODELS) / lang.name
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"no toy model in {directory}; train and ship it with `{TOY_RETRAIN_COMMAND}`")
    verify_toy_checkpoint(directory)
    model = BertForMaskedLM.from_pretrained(directory, dtype=torch.float32)
    check_toy_model(model, lang)
    return model.eval()


def load_schedule_model(
    name: str | ToyLanguage, schedule: str, seed: int = 0, root: Path | None = None
) -> BertForMaskedLM:
    """The toy masked model of ``name`` trained under masking ``schedule`` with ``seed`` (notebook 05,
    section 3), from ``<root>/<schedule>/seed<seed>/<lang.name>`` (default root
    ``data/schedule_models``), manifest checked."""
    base = Path(root if root is not None else paths.SCHEDULE_MODELS) / schedule / f"seed{seed}"
    if not (base / toy_language(name).name / "config.json").exists():
        raise FileNotFoundError(
            f"no {schedule} schedule model for {toy_language(name).name} in {base}; train and ship it with "
            f"`{TOY_RETRAIN_COMMAND} --schedules {schedule}`"
        )
    return load_toy_model(name, root=base)


def toy_models_for(langs: list[ToyLanguage], models: Mapping | None, root: Path | None) -> dict:
    """``{language name: model}`` for ``langs``: the given ``models`` (by name or alias), else the
    shipped ones (:func:`load_toy_model`)."""
    out = {}
    for lang in langs:
        given = dict(models or {})
        m = given.get(lang.name)
        if m is None:
            m = next((v for k, v in given.items() if ALIASES.get(k) == lang.name), None)
        out[lang.name] = m if m is not None else load_toy_model(lang, root)
    return out


def family_model_dir(lang: ToyLanguage | str, family: str, root: Path | None = None) -> Path:
    """``data/family_models/<lang.name>-<family>`` (or under ``root``)."""
    return (
        Path(root if root is not None else paths.FAMILY_MODELS)
        / f"{toy_language(lang).name}-{families.check_family(family)}"
    )


def load_toy_family_model(lang: ToyLanguage | str, family: str, root: Path | None = None):
    """A shipped toy model of ``family`` for ``lang``: the masked ones from ``data/toy_models``
    (:func:`load_toy_model`), the others from :func:`family_model_dir` (manifest checked)."""
    if family == "masked":
        return load_toy_model(lang)
    directory = family_model_dir(lang, family, root)
    if not (directory / families.FAMILY_JSON).exists():
        raise FileNotFoundError(
            f"no {family} toy model in {directory}; train and ship it with `{TOY_RETRAIN_COMMAND} --families {family}`"
        )
    fix = f"retrain and ship it with `{TOY_RETRAIN_COMMAND} --families {family}` (or restore the file from git)"
    return families.load_family_model(directory, fix=fix)[1]
