"""Small masked diffusion LMs trained on the exact toy languages (paper §4, issue (ii)).

``dlmpaper.trap`` computes the marginal trap with the *exact* marginals of a toy language:
the ideal token-wise model. This module asks whether a real masked diffusion LM, trained on
samples of the same language with LLaDA's objective, falls into the trap the same way:

* :func:`train_toy_model` -- a tiny bidirectional transformer (transformers' BERT, no
  hand-written attention) trained with ``dlmpaper.training``'s objective, the whole sequence
  being the "response" (no prompt): mask with ``p = (1 - eps) t + eps``, loss = CE on masked / p;
* :func:`save_toy_model` / :func:`load_toy_model` -- the shipped checkpoints in
  ``data/toy_models/<lang.name>/`` (HF directory + ``MANIFEST.sha256`` checked at load);
* :func:`model_marginal_fn` -- the trained model as a ``trap.MarginalFn``;
* :func:`toy_invalid_rates` -- invalid rate vs tokens per step, trained next to exact marginals;
* :func:`toy_model_quality` / :func:`marginal_divergence` -- KL / TV to the exact marginals.

Notebooks ``04_marginal_trap`` and ``02_five_properties`` (property L2). Retrain and ship all
checkpoints (a few minutes on one CPU core)::

    python -m dlmpaper.toymodels --train

``--families autoregressive continuous`` trains the other two families of notebook 02 (property L2)
on the same languages with the same BERT size (``dlmpaper.families``) and ships them into
``data/family_models/<language>-<family>/``::

    python -m dlmpaper.toymodels --train --families autoregressive continuous

Vocabulary of every toy model: ids ``0 .. V-1`` are the language's tokens, ``V`` is the mask
(``lang.mask_id``), ``V + 1`` is a padding id that never occurs (BERT zeroes the embedding
of ``pad_token_id``, so it must not be a real token).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from transformers import BertConfig, BertForMaskedLM

from . import families, paths
from .models import MANIFEST_NAME as MANIFEST
from .models import ManifestError, write_manifest
from .models import verify_manifest as verify_manifest_lines
from .trap import (
    ORDERS,
    MarginalFn,
    ModelMarginalDecoder,
    ToyLanguage,
    agreement_language,
    brackets_language,
    copy_language,
    exact_marginal_fn,
    invalid_rate_by_tokens_per_step,
    marginal_fn_from_logits,
    parse_partial,
)
from .training import DEFAULT_EPS, corrupt, masked_logits, sft_loss

#: Where the shipped toy checkpoints live (one folder per language name).
TOY_MODELS = paths.TOY_MODELS
RETRAIN_COMMAND = "python -m dlmpaper.toymodels --train"
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


@dataclass
class ToyTrainConfig:
    """Hyper-parameters of one toy training run (stored in ``training.json`` and the card)."""

    steps: int = 2000
    batch_size: int = 128
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.0
    eps: float = DEFAULT_EPS
    seed: int = 0


#: Recipe used by ``--train`` per language (overrides of :class:`ToyTrainConfig`).
RECIPES: dict[str, dict] = {
    "agreement": dict(steps=1000),
    "brackets8": dict(steps=3000),
    "copy6": dict(steps=1500),
}


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


def toy_model_config(lang: ToyLanguage, hidden: int = 64, layers: int = 2, heads: int = 2, positions: int | None = None) -> BertConfig:
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


def _check_model(model, lang: ToyLanguage) -> None:
    cfg = model.config
    name = getattr(cfg, "toy_language", None)
    if name is not None and name != lang.name:
        raise ValueError(f"model was trained on {name!r}, not {lang.name!r}; load the matching toy model")
    if cfg.vocab_size < lang.vocab_size + 1 or getattr(cfg, "mask_token_id", lang.mask_id) != lang.mask_id:
        raise ValueError(f"model vocabulary ({cfg.vocab_size} ids) does not fit {lang.name}'s layout (mask id {lang.mask_id})")


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
            xb = x[a:a + chunk]
            outs.append(model(input_ids=xb, attention_mask=torch.ones_like(xb),
                              position_ids=pos.expand(xb.shape[0], -1)).logits.float())
        return torch.cat(outs) if outs else torch.zeros(0, x.shape[1], model.config.vocab_size)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- training


def _loss(model, ids: torch.Tensor, mask_id: int, generator: torch.Generator, eps: float,
          family: str = "masked") -> torch.Tensor:
    """The family's objective with the whole sequence as the response. Masked: LLaDA's, ``t``
    stratified over the batch (``t_b = (b + u_b) / B``: same expectation as i.i.d. ``t``, lower
    variance). Autoregressive: next-token CE after a start token (the mask id). Continuous:
    ``families.continuous_loss``."""
    B, L = ids.shape
    resp = torch.ones_like(ids, dtype=torch.bool)
    if family == "autoregressive":
        full = torch.cat([torch.full((B, 1), mask_id), ids], dim=1)
        full_resp = torch.cat([torch.zeros(B, 1, dtype=torch.bool), resp], dim=1)
        return families.ar_loss(model, full, torch.ones_like(full), torch.arange(L + 1)[None].expand(B, -1), full_resp)
    if family == "continuous":
        return families.continuous_loss(model, ids, torch.ones_like(ids), torch.arange(L)[None].expand(B, -1), resp, generator)
    t = (torch.arange(B, dtype=torch.float32) + torch.rand(B, generator=generator)) / B
    batch = corrupt(ids, resp, mask_id, generator, eps=eps, t=t)
    pos = torch.arange(L)[None].expand(B, -1)
    logits = masked_logits(model, batch.noisy_ids, torch.ones_like(ids), pos, batch.masked)
    return sft_loss(logits, batch, ids, resp)


@torch.no_grad()
def evaluation_loss(model, lang: ToyLanguage, n: int = 4096, seed: int = 12345, eps: float = DEFAULT_EPS,
                    family: str = "masked") -> float:
    """LLaDA's objective on ``n`` fresh samples with fixed masks (seeded): the card's final loss,
    comparable to :func:`entropy_per_token`."""
    was_training = model.training
    model.eval()
    try:
        ids = torch.from_numpy(lang.sample(n, np.random.default_rng(seed)))
        gen = torch.Generator().manual_seed(seed)
        return float(_loss(model, ids, lang.mask_id, gen, eps, family))
    finally:
        model.train(was_training)


def train_toy_model(
    lang: ToyLanguage | str,
    *,
    steps: int = ToyTrainConfig.steps,
    batch_size: int = ToyTrainConfig.batch_size,
    hidden: int = ToyTrainConfig.hidden,
    layers: int = ToyTrainConfig.layers,
    heads: int = ToyTrainConfig.heads,
    lr: float = ToyTrainConfig.lr,
    warmup: int = ToyTrainConfig.warmup,
    weight_decay: float = ToyTrainConfig.weight_decay,
    eps: float = ToyTrainConfig.eps,
    seed: int = 0,
    log_every: int = 50,
    threads: int | None = 1,
    progress: bool = True,
    family: str = "masked",
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train a tiny masked diffusion LM on samples of ``lang`` (paper §2 objective, §4 trap;
    notebook 04_marginal_trap).

    Each step draws ``batch_size`` sequences from ``lang.sample``, masks every token with
    ``p = (1 - eps) t + eps`` and minimises CE on the masked tokens / p
    (``dlmpaper.training.corrupt`` + ``sft_loss``, no prompt). AdamW, linear warm-up then cosine
    decay to 0, gradient clipping at 1. ``steps=0`` returns the initialised model. Deterministic
    given ``seed`` (the caller's torch RNG is left untouched); runs on ``threads`` CPU threads
    (restored afterwards). Returns ``(model in eval mode, log)`` where ``log`` has columns
    ``step, loss, lr`` (loss averaged over the last ``log_every`` steps); ``log.attrs`` holds the
    config, ``eval_loss`` (:func:`evaluation_loss`) and ``entropy_per_token``. ``family``
    ``"autoregressive"`` / ``"continuous"`` trains that family on the same backbone and size
    instead (:func:`_loss`; notebook 02, property L2).
    """
    lang = toy_language(lang)
    families.check_family(family)
    if steps < 0 or batch_size < 1 or log_every < 1:
        raise ValueError("steps must be >= 0, batch_size and log_every >= 1")
    cfg = ToyTrainConfig(steps=steps, batch_size=batch_size, hidden=hidden, layers=layers, heads=heads,
                         lr=lr, warmup=warmup, weight_decay=weight_decay, eps=eps, seed=seed)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    rows: list[dict] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            positions = lang.length + 1 if family == "autoregressive" else None
            model = BertForMaskedLM(toy_model_config(lang, hidden, layers, heads, positions))
            if family == "continuous":
                model = families.EmbeddingDiffusionLM(model, embed_dim=16)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        bar = None
        if progress and steps:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"toy {lang.name}", unit="step", dynamic_ncols=True)
        window: list[float] = []
        for step in range(steps):
            rate = lr * min(1.0, (step + 1) / max(1, warmup)) * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            for group in opt.param_groups:
                group["lr"] = rate
            ids = torch.from_numpy(lang.sample(batch_size, rng))
            loss = _loss(model, ids, lang.mask_id, gen, eps, family)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            window.append(float(loss.detach()))
            if (step + 1) % log_every == 0 or step + 1 == steps:
                rows.append(dict(step=step + 1, loss=float(np.mean(window)), lr=rate))
                window = []
                if bar is not None:
                    bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}")
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        model.eval()
        log = pd.DataFrame(rows, columns=["step", "loss", "lr"])
        log.attrs.update(language=lang.name, family=family, config=asdict(cfg),
                         eval_loss=evaluation_loss(model, lang, eps=eps, family=family),
                         entropy_per_token=entropy_per_token(lang))
    finally:
        torch.set_num_threads(old_threads)
    return model, log


# ------------------------------------------------------------------------ marginals


def model_marginal_fn(model, lang: ToyLanguage | str, chunk: int = 4096, cache: bool = True) -> MarginalFn:
    """A trained toy model as a ``trap.MarginalFn`` for ``trap.ModelMarginalDecoder`` and
    ``invalid_rate_by_tokens_per_step`` (via ``trap.marginal_fn_from_logits``: softmax over the
    ``V`` language ids). Distinct rows are run once; with ``cache`` their results are kept for
    later calls (the model must not change afterwards). Notebook 04_marginal_trap."""
    lang = toy_language(lang)
    _check_model(model, lang)
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


def sample_partial_states(lang: ToyLanguage, n: int = 512, seed: int = 0, eps: float = DEFAULT_EPS) -> np.ndarray:
    """``n`` partially masked states ``(n, L)`` drawn like training inputs: a sample of ``lang``,
    each token masked with ``p = (1 - eps) t + eps``, ``t ~ U(0, 1)``; a row left without a mask
    gets one at a random position."""
    rng = np.random.default_rng(seed)
    x = lang.sample(n, rng)
    p = (1 - eps) * rng.random(n) + eps
    masked = rng.random(x.shape) < p[:, None]
    none = ~masked.any(axis=1)
    masked[np.flatnonzero(none), rng.integers(0, lang.length, none.sum())] = True
    return np.where(masked, lang.mask_id, x)


def marginal_divergence(model_or_fn, lang: ToyLanguage | str, partials) -> pd.DataFrame:
    """Trained vs exact one-step marginals at every masked position of each partial state
    (§4: the trap is exact only if the model learned the exact marginals).

    ``model_or_fn``: a toy model or a ``MarginalFn``; ``partials``: an int array ``(n, L)`` or a
    list of partial sequences (``"I _ _"``). Tidy rows: ``state, position, kl`` (KL(exact ||
    model), nats), ``tv`` (total variation), ``exact_top`` and ``model_top`` (argmax tokens).
    """
    lang = toy_language(lang)
    fn = model_or_fn if callable(model_or_fn) and not isinstance(model_or_fn, torch.nn.Module) else model_marginal_fn(model_or_fn, lang)
    if isinstance(partials, np.ndarray) and partials.ndim == 2:
        states = partials.astype(np.int64)
    else:
        states = np.stack([parse_partial(lang, p) for p in partials])
    exact = exact_marginal_fn(lang)(states)
    model = np.asarray(fn(states), dtype=np.float64)[..., : lang.vocab_size]
    model = model / model.sum(axis=-1, keepdims=True)
    rows = []
    for b, i in zip(*np.nonzero(states == lang.mask_id)):
        p, q = exact[b, i], model[b, i]
        nz = p > 0
        kl = float(np.sum(p[nz] * (np.log(p[nz]) - np.log(np.maximum(q[nz], 1e-300)))))
        rows.append(dict(state=lang.to_text(states[b]).replace("[MASK]", "_"), position=int(i), kl=max(0.0, kl),
                         tv=float(0.5 * np.abs(p - q).sum()), exact_top=lang.vocab[int(p.argmax())],
                         model_top=lang.vocab[int(q.argmax())]))
    return pd.DataFrame(rows, columns=["state", "position", "kl", "tv", "exact_top", "model_top"])


# ---------------------------------------------------------------------- checkpoints


def verify_manifest(directory: Path) -> None:
    """Check every ``MANIFEST.sha256`` line of ``directory`` (``models.verify_manifest``); raise
    :class:`ToyModelChecksumError` naming the first missing or changed file and the retrain command."""
    directory = Path(directory)
    fix = f"retrain and ship with `{RETRAIN_COMMAND}` (or restore the file from git)"
    if not (directory / MANIFEST).exists():
        raise ToyModelChecksumError(f"{directory / MANIFEST} is missing; {fix}")
    try:
        listed = verify_manifest_lines(directory, fix=fix)
    except ManifestError as exc:
        raise ToyModelChecksumError(str(exc)) from exc
    for needed in ("config.json", "model.safetensors"):
        if needed not in listed:
            raise ToyModelChecksumError(f"{MANIFEST} in {directory} does not list {needed}; {fix}")


def save_toy_model(model, lang: ToyLanguage | str, directory: Path | None = None, *,
                   log: pd.DataFrame | None = None, quality: Mapping | None = None,
                   rates: pd.DataFrame | None = None, command: str = RETRAIN_COMMAND) -> Path:
    """Write ``model`` as a standard HF directory (``config.json`` + ``model.safetensors``) to
    ``directory`` (default ``data/toy_models/<lang.name>``), plus ``training.json`` and the
    ``README.md`` training card when ``log`` is given, then ``MANIFEST.sha256``. Returns the folder."""
    lang = toy_language(lang)
    _check_model(model, lang)
    directory = Path(directory) if directory is not None else TOY_MODELS / lang.name
    directory.mkdir(parents=True, exist_ok=True)
    ours = {"config.json", "model.safetensors", TRAINING_JSON, "README.md", MANIFEST}
    others = sorted(p.name for p in directory.iterdir() if p.name not in ours)
    if others:
        raise ValueError(f"{directory} holds other files {others}; save a toy model into an empty or toy-model folder")
    for name in ours:
        (directory / name).unlink(missing_ok=True)
    model.save_pretrained(directory)
    if log is not None:
        info = dict(language=lang.name, description=lang.description, command=command,
                    config=log.attrs.get("config", {}), final_train_loss=float(log["loss"].iloc[-1]) if len(log) else None,
                    eval_loss=log.attrs.get("eval_loss"), entropy_per_token=log.attrs.get("entropy_per_token"),
                    parameters=int(sum(p.numel() for p in model.parameters())), quality=dict(quality or {}))
        (directory / TRAINING_JSON).write_text(json.dumps(info, indent=1) + "\n")
        (directory / "README.md").write_text(_card(lang, info, rates))
    write_manifest(directory)
    return directory


def load_toy_model(name: str | ToyLanguage, root: Path | None = None) -> BertForMaskedLM:
    """The shipped toy model for language ``name`` from ``<root>/<lang.name>/`` (default root
    ``data/toy_models``), after checking ``MANIFEST.sha256``; eval mode, float32, CPU."""
    lang = toy_language(name)
    directory = Path(root if root is not None else TOY_MODELS) / lang.name
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"no toy model in {directory}; train and ship it with `{RETRAIN_COMMAND}`")
    verify_manifest(directory)
    model = BertForMaskedLM.from_pretrained(directory, dtype=torch.float32)
    _check_model(model, lang)
    return model.eval()


def _models(langs: list[ToyLanguage], models: Mapping | None, root: Path | None) -> dict:
    out = {}
    for lang in langs:
        given = dict(models or {})
        m = given.get(lang.name)
        if m is None:
            m = next((v for k, v in given.items() if ALIASES.get(k) == lang.name), None)
        out[lang.name] = m if m is not None else load_toy_model(lang, root)
    return out


# ------------------------------------------------------------------------- analyses


def toy_invalid_rates(
    langs=None,
    tokens_per_step: Sequence[int] | None = None,
    orders: Sequence[str] = ORDERS,
    n_samples: int = 20_000,
    seed: int = 0,
    exact: bool = True,
    models: Mapping | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """Invalid rate of full parallel decoding vs tokens per step, the trained model's marginals
    next to the exact ones (§4, issue (ii); notebook 04_marginal_trap, figure "invalid rate
    vs k, trained vs exact").

    For each language (default: every shipped toy model), order and ``k`` in ``tokens_per_step``
    (default ``1 .. L``; values above a language's ``L`` are skipped for it) both decoders run through ``trap.invalid_rate_by_tokens_per_step``: exact
    recursion (``invalid_exact``, NaN when ``exact=False``) and ``n_samples`` simulated chains
    (``invalid_sim`` with a 95% Wilson interval). ``models`` maps language names to models
    (default: :func:`load_toy_model`). Tidy columns: ``language, order, marginals`` ("exact" or
    "trained"), ``tokens_per_step, n_steps, n_samples, invalid_exact, invalid_sim, sim_ci_low,
    sim_ci_high``. The exact-marginal rows at ``k = 1`` are exactly 0.
    """
    langs = toy_languages(langs)
    loaded = _models(langs, models, root)
    frames = []
    for lang in langs:
        ks = range(1, lang.length + 1) if tokens_per_step is None else [k for k in tokens_per_step if int(k) <= lang.length]
        fn = model_marginal_fn(loaded[lang.name], lang)
        for order in orders:
            for label, marg in (("exact", None), ("trained", fn)):
                frames.append(invalid_rate_by_tokens_per_step(
                    lang, ks, order=order, n_samples=n_samples, seed=seed, marginal_fn=marg, exact=exact,
                    marginals_label=label))
    return pd.concat(frames, ignore_index=True)


def toy_model_quality(
    langs=None,
    n_states: int = 1024,
    seed: int = 0,
    models: Mapping | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """How close each trained toy model is to the ideal token-wise model (§4; notebook
    04_marginal_trap, and the training cards).

    One row per language: over ``n_states`` partially masked states drawn like training inputs
    (:func:`sample_partial_states`), the mean / 95th percentile / max of KL(exact || trained)
    and the mean / max TV at the masked positions; ``invalid_k1_left_to_right`` and
    ``invalid_k1_random``: exact probability that one-token-per-step decoding with the trained
    marginals ends invalid (0 for the exact marginals; near 0 iff the conditionals were learned);
    ``eval_loss`` (:func:`evaluation_loss`) next to its floor ``entropy_per_token``.
    """
    langs = toy_languages(langs)
    loaded = _models(langs, models, root)
    rows = []
    for lang in langs:
        model = loaded[lang.name]
        fn = model_marginal_fn(model, lang)
        div = marginal_divergence(fn, lang, sample_partial_states(lang, n_states, seed))
        dec = ModelMarginalDecoder(lang, fn)
        rows.append(dict(
            language=lang.name, n_states=int(n_states), n_positions=len(div),
            kl_mean=float(div["kl"].mean()), kl_p95=float(div["kl"].quantile(0.95)), kl_max=float(div["kl"].max()),
            tv_mean=float(div["tv"].mean()), tv_max=float(div["tv"].max()),
            invalid_k1_left_to_right=dec.invalid_exact(1, "left_to_right"),
            invalid_k1_random=dec.invalid_exact(1, "random"),
            eval_loss=evaluation_loss(model, lang), entropy_per_token=entropy_per_token(lang),
        ))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ shipping


def _card(lang: ToyLanguage, info: dict, rates: pd.DataFrame | None) -> str:
    cfg, q = info["config"], info["quality"]
    lines = [
        f"# Toy masked diffusion LM: `{lang.name}`",
        "",
        f"A tiny BERT-architecture masked diffusion LM trained on the exact toy language `{lang.name}` "
        f"({lang.description}; {lang.sequences.shape[0]} sequences of length {lang.length}, "
        f"vocabulary {lang.vocab} + `[MASK]` (id {lang.mask_id}) + an unused pad id).",
        "Used by `dlmpaper.toymodels` (notebooks 04_marginal_trap and 02_five_properties, property L2):",
        "the marginal trap of paper §4 (issue (ii)) with a *trained* model's marginals next to the exact ones.",
        "",
        "## Training",
        "",
        "LLaDA's objective (`dlmpaper.training`), the whole sequence as the response: each token masked with "
        "p = (1 - eps) t + eps, loss = CE on masked tokens / p (t stratified over the batch); AdamW, "
        "linear warm-up then cosine decay.",
        "",
        f"- command: `{info['command']}`",
        "- " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
        f"- parameters: {info['parameters']:,} (float32 safetensors)",
        f"- final training loss (mean of the last log window): {info['final_train_loss']:.4f}",
        f"- evaluation loss (4096 fresh samples, fixed masks): {info['eval_loss']:.4f} "
        f"(floor = entropy per token H(X)/L = {info['entropy_per_token']:.4f})",
        "",
        "## Measured quality",
        "",
    ]
    if q:
        lines += [
            f"On {q['n_states']} partially masked states drawn like training inputs ({q['n_positions']} masked positions):",
            "",
            f"- KL(exact || trained) per masked position: mean {q['kl_mean']:.4f}, 95th pct {q['kl_p95']:.4f}, "
            f"max {q['kl_max']:.4f} nats",
            f"- total variation: mean {q['tv_mean']:.4f}, max {q['tv_max']:.4f}",
            f"- invalid rate at k = 1 (exact recursion, trained marginals): left_to_right "
            f"{q['invalid_k1_left_to_right']:.4f}, random {q['invalid_k1_random']:.4f} (exact marginals: 0)",
            "",
        ]
    if rates is not None and len(rates):
        t = rates.pivot_table(index=["order", "tokens_per_step"], columns="marginals", values="invalid_exact").reset_index()
        lines += ["Invalid rate vs tokens per step k (exact recursion over the decoder's states):", "",
                  "| order | k | exact marginals | trained marginals |", "|---|---|---|---|"]
        for r in t.itertuples(index=False):
            lines.append(f"| {r.order} | {r.tokens_per_step} | {getattr(r, 'exact'):.4f} | {getattr(r, 'trained'):.4f} |")
        lines.append("")
    lines += ["Files: `config.json`, `model.safetensors`, `training.json`, this card; `MANIFEST.sha256` is "
              "checked by `dlmpaper.toymodels.load_toy_model`.", ""]
    return "\n".join(lines)


def train_and_ship(langs=None, root: Path | None = None, progress: bool = True, command: str = RETRAIN_COMMAND) -> pd.DataFrame:
    """Train every toy model with its :data:`RECIPES` entry, measure it, write it to
    ``<root>/<lang.name>`` (default ``data/toy_models``); returns the quality table."""
    root = Path(root) if root is not None else TOY_MODELS
    quality = []
    for lang in toy_languages(langs):
        t0 = time.time()
        model, log = train_toy_model(lang, progress=progress, **RECIPES.get(lang.name, {}))
        seconds = time.time() - t0
        q = toy_model_quality([lang], models={lang.name: model}).iloc[0].to_dict()
        rates = toy_invalid_rates([lang], models={lang.name: model}, n_samples=2000)
        target = save_toy_model(model, lang, root / lang.name, log=log, quality=q, rates=rates, command=command)
        size = sum(p.stat().st_size for p in target.iterdir())
        print(f"{lang.name}: {seconds:.0f} s, eval loss {log.attrs['eval_loss']:.4f} "
              f"(floor {log.attrs['entropy_per_token']:.4f}), k=1 invalid {q['invalid_k1_left_to_right']:.4f}, "
              f"{size / 1e6:.2f} MB -> {target}", flush=True)
        quality.append(q)
    return pd.DataFrame(quality)


#: Recipes of the autoregressive and continuous toy models (overrides of :class:`ToyTrainConfig`).
FAMILY_RECIPES: dict[str, dict] = {"autoregressive": dict(steps=1500), "continuous": dict(steps=3000)}
#: Per (family, language) overrides: the continuous model needs far longer on brackets (at 3,000
#: steps it still produced 50% invalid sequences with 32 DDIM steps, at 8,000 16%).
FAMILY_RECIPE_OVERRIDES: dict[tuple[str, str], dict] = {("continuous", "brackets8"): dict(steps=12000)}


def family_model_dir(lang: ToyLanguage | str, family: str, root: Path | None = None) -> Path:
    """``data/family_models/<lang.name>-<family>`` (or under ``root``)."""
    return Path(root if root is not None else paths.FAMILY_MODELS) / f"{toy_language(lang).name}-{families.check_family(family)}"


def load_toy_family_model(lang: ToyLanguage | str, family: str, root: Path | None = None):
    """A shipped toy model of ``family`` for ``lang``: the masked ones from ``data/toy_models``
    (:func:`load_toy_model`), the others from :func:`family_model_dir` (manifest checked)."""
    if family == "masked":
        return load_toy_model(lang)
    directory = family_model_dir(lang, family, root)
    if not (directory / families.FAMILY_JSON).exists():
        raise FileNotFoundError(f"no {family} toy model in {directory}; train and ship it with "
                                f"`{RETRAIN_COMMAND} --families {family}`")
    fix = f"retrain and ship it with `{RETRAIN_COMMAND} --families {family}` (or restore the file from git)"
    return families.load_family_model(directory, fix=fix)[1]


def ship_family_model(model, lang: ToyLanguage, family: str, log: pd.DataFrame, seconds: float,
                      root: Path | None = None, command: str = RETRAIN_COMMAND) -> Path:
    """Write a trained autoregressive / continuous toy model with ``training.json``, a card and
    ``MANIFEST.sha256`` into :func:`family_model_dir` (the folder is replaced)."""
    directory = family_model_dir(lang, family, root)
    if directory.exists():
        for old in directory.iterdir():
            old.unlink()
    families.save_family_model(model, directory, family, {"toy_language": lang.name})
    info = dict(language=lang.name, family=family, command=command, config=log.attrs["config"],
                final_train_loss=float(log["loss"].iloc[-1]), eval_loss=log.attrs["eval_loss"],
                entropy_per_token=log.attrs["entropy_per_token"], seconds=round(seconds, 1),
                parameters=int(sum(p.numel() for p in model.parameters())))
    (directory / TRAINING_JSON).write_text(json.dumps(info, indent=1) + "\n")
    what = {"autoregressive": "the same tiny BERT with a causal attention mask, next-token cross-entropy after a start token",
            "continuous": "a CDCD-style embedding diffusion LM on the same tiny BERT (16-dim normalised embeddings, cosine "
                          "Gaussian schedule, cross-entropy on x_0; `dlmpaper.families`)"}[family]
    floor = (f" (floor for this loss: entropy per token {info['entropy_per_token']:.4f})" if family == "autoregressive"
             else " (x_0 cross-entropy averaged over t; not a likelihood)")
    (directory / "README.md").write_text("\n".join([
        f"# Toy {family} LM: `{lang.name}`", "",
        f"{what}, trained on samples of the exact toy language `{lang.name}` ({lang.description}).",
        "Used by notebook 02_five_properties (property L2: invalid-sequence rate at matched compute).", "",
        f"- command: `{command}`",
        "- " + ", ".join(f"{k}={v}" for k, v in info["config"].items()),
        f"- parameters: {info['parameters']:,}; training took {seconds:.0f} s on one CPU thread",
        f"- evaluation loss (4096 fresh samples): {info['eval_loss']:.4f}{floor}", "",
        "Weights: MIT, like the code. `MANIFEST.sha256` is checked by `dlmpaper.toymodels.load_toy_family_model`.", ""]))
    write_manifest(directory)
    return directory


def train_and_ship_families(names: Sequence[str], langs=None, root: Path | None = None, progress: bool = True,
                            command: str = RETRAIN_COMMAND) -> None:
    for family in names:
        families.check_family(family)
        if family == "masked":
            raise ValueError("the masked toy models are trained by `--train` without --families")
        for lang in toy_languages(langs):
            t0 = time.time()
            recipe = {**FAMILY_RECIPES[family], **FAMILY_RECIPE_OVERRIDES.get((family, lang.name), {})}
            model, log = train_toy_model(lang, family=family, progress=progress, **recipe)
            target = ship_family_model(model, lang, family, log, time.time() - t0, root, command)
            print(f"{lang.name} {family}: {time.time() - t0:.0f} s, eval loss {log.attrs['eval_loss']:.4f} -> {target}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.toymodels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train and ship every toy model into data/toy_models")
    parser.add_argument("--languages", nargs="+", default=None, help=f"subset of {sorted(TOY_LANGUAGES)}")
    parser.add_argument("--out", type=Path, default=None, help="root folder (default data/toy_models)")
    parser.add_argument("--quality", action="store_true", help="print the quality table of the shipped models")
    parser.add_argument("--families", nargs="+", default=None, choices=["autoregressive", "continuous"],
                        help="with --train: train these families (notebook 02) into data/family_models instead")
    args = parser.parse_args(argv)
    if not (args.train or args.quality):
        parser.error("nothing to do: pass --train (train and ship) or --quality (measure the shipped models)")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if args.train:
            command = " ".join(["python -m dlmpaper.toymodels"] + (argv if argv is not None else sys.argv[1:]))
            if args.families:
                train_and_ship_families(args.families, args.languages, args.out, command=command)
            else:
                print(train_and_ship(args.languages, args.out, command=command).to_string(index=False))
        if args.quality:
            print(toy_model_quality(args.languages, root=args.out).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
