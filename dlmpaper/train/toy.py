"""Train and ship the toy-language models (paper §4, issue (ii); notebooks 04_marginal_trap, 02_five_properties
and 05_remedies read them through :mod:`dlmpaper.lm.toymodels`).

:func:`train_toy_model` trains a tiny bidirectional transformer (transformers' BERT, no hand-written
attention) with LLaDA's objective (``dlmpaper.core.objectives``), the whole sequence being the
"response" (no prompt): mask with ``p = (1 - eps) t + eps``, loss = CE on masked / p. Retrain and
ship all masked checkpoints (a few minutes on one CPU core)::

    python -m dlmpaper.train.toy --train

``--families autoregressive continuous`` trains the other two families of notebook 02 (property L2)
on the same languages with the same BERT size (``dlmpaper.lm.families``) and ships them into
``data/family_models/<language>-<family>/``::

    python -m dlmpaper.train.toy --train --families autoregressive continuous
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from transformers import BertForMaskedLM

from dlmpaper import paths
from dlmpaper.analyses.schedules import SCHEDULES, schedule_exponents
from dlmpaper.analyses.trap import toy_invalid_rates, toy_model_quality
from dlmpaper.core.objectives import DEFAULT_EPS
from dlmpaper.core.trap import ToyLanguage
from dlmpaper.lm import families
from dlmpaper.lm.toymodels import (
    MANIFEST,
    TOY_LANGUAGES,
    TOY_MODELS,
    TOY_RETRAIN_COMMAND,
    TRAINING_JSON,
    check_toy_model,
    entropy_per_token,
    evaluation_loss,
    family_model_dir,
    toy_language,
    toy_languages,
    toy_loss,
    toy_model_config,
)
from dlmpaper.provenance import write_manifest
from dlmpaper.train.cards import toy_card, toy_family_card


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
    exponents: Sequence[float] | None = None,
) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train a tiny masked diffusion LM on samples of ``lang`` (paper §2 objective, §4 trap;
    notebook 04_marginal_trap).

    Each step draws ``batch_size`` sequences from ``lang.sample``, masks every token with
    ``p = (1 - eps) t + eps`` and minimises CE on the masked tokens / p
    (``dlmpaper.core.objectives.corrupt`` + ``sft_loss``, no prompt). AdamW, linear warm-up then cosine
    decay to 0, gradient clipping at 1. ``steps=0`` returns the initialised model. Deterministic
    given ``seed`` (the caller's torch RNG is left untouched); runs on ``threads`` CPU threads
    (restored afterwards). Returns ``(model in eval mode, log)`` where ``log`` has columns
    ``step, loss, lr`` (loss averaged over the last ``log_every`` steps); ``log.attrs`` holds the
    config, ``eval_loss`` (:func:`dlmpaper.lm.toymodels.evaluation_loss`) and ``entropy_per_token``. ``family``
    ``"autoregressive"`` / ``"continuous"`` / ``"uniform"`` trains that family on the same backbone and size
    instead (:func:`dlmpaper.lm.toymodels.toy_loss`; notebook 02, property L2). ``exponents``
    (one per position) trains the masked model under the per-position schedule of
    :func:`dlmpaper.core.objectives.scheduled_corrupt` instead of the linear one (notebook 05,
    section 3); ``log.attrs["exponents"]`` records them.
    """
    lang = toy_language(lang)
    families.check_family(family)
    if steps < 0 or batch_size < 1 or log_every < 1:
        raise ValueError("steps must be >= 0, batch_size and log_every >= 1")
    cfg = ToyTrainConfig(
        steps=steps,
        batch_size=batch_size,
        hidden=hidden,
        layers=layers,
        heads=heads,
        lr=lr,
        warmup=warmup,
        weight_decay=weight_decay,
        eps=eps,
        seed=seed,
    )
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
            elif family == "uniform":
                model = families.UniformDiffusionLM(model, time_dim=16)
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
            loss = toy_loss(model, ids, lang.mask_id, gen, eps, family, exponents)
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
        log.attrs.update(
            language=lang.name,
            family=family,
            config=asdict(cfg),
            eval_loss=evaluation_loss(model, lang, eps=eps, family=family),
            entropy_per_token=entropy_per_token(lang),
            exponents=None if exponents is None else [float(w) for w in exponents],
        )
    finally:
        torch.set_num_threads(old_threads)
    return model, log


def save_toy_model(
    model,
    lang: ToyLanguage | str,
    directory: Path | None = None,
    *,
    log: pd.DataFrame | None = None,
    quality: Mapping | None = None,
    rates: pd.DataFrame | None = None,
    command: str = TOY_RETRAIN_COMMAND,
) -> Path:
    """Write ``model`` as a standard HF directory (``config.json`` + ``model.safetensors``) to
    ``directory`` (default ``data/toy_models/<lang.name>``), plus ``training.json`` and the
    ``README.md`` training card when ``log`` is given, then ``MANIFEST.sha256``. Returns the folder."""
    lang = toy_language(lang)
    check_toy_model(model, lang)
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
        info = dict(
            language=lang.name,
            description=lang.description,
            command=command,
            config=log.attrs.get("config", {}),
            final_train_loss=float(log["loss"].iloc[-1]) if len(log) else None,
            eval_loss=log.attrs.get("eval_loss"),
            entropy_per_token=log.attrs.get("entropy_per_token"),
            parameters=int(sum(p.numel() for p in model.parameters())),
            quality=dict(quality or {}),
            exponents=log.attrs.get("exponents"),
        )
        (directory / TRAINING_JSON).write_text(json.dumps(info, indent=1) + "\n")
        (directory / "README.md").write_text(toy_card(lang, info, rates))
    write_manifest(directory)
    return directory


def _train_measure_ship(lang: ToyLanguage, target: Path, command: str, progress: bool, **train_kwargs) -> tuple:
    """Train one masked toy model, measure it (quality, invalid rates) and ship it to ``target``:
    ``(quality row, training log, seconds, target)``."""
    t0 = time.time()
    model, log = train_toy_model(lang, progress=progress, **train_kwargs)
    seconds = time.time() - t0
    q = toy_model_quality([lang], models={lang.name: model}).iloc[0].to_dict()
    rates = toy_invalid_rates([lang], models={lang.name: model}, n_samples=2000)
    save_toy_model(model, lang, target, log=log, quality=q, rates=rates, command=command)
    return q, log, seconds, target


def train_and_ship(
    langs=None, root: Path | None = None, progress: bool = True, command: str = TOY_RETRAIN_COMMAND
) -> pd.DataFrame:
    """Train every toy model with its :data:`RECIPES` entry, measure it, write it to
    ``<root>/<lang.name>`` (default ``data/toy_models``); returns the quality table."""
    root = Path(root) if root is not None else TOY_MODELS
    quality = []
    for lang in toy_languages(langs):
        q, log, seconds, target = _train_measure_ship(
            lang, root / lang.name, command, progress, **RECIPES.get(lang.name, {})
        )
        size = sum(p.stat().st_size for p in target.iterdir())
        print(
            f"{lang.name}: {seconds:.0f} s, eval loss {log.attrs['eval_loss']:.4f} "
            f"(floor {log.attrs['entropy_per_token']:.4f}), k=1 invalid {q['invalid_k1_left_to_right']:.4f}, "
            f"{size / 1e6:.2f} MB -> {target}",
            flush=True,
        )
        quality.append(q)
    return pd.DataFrame(quality)


def train_and_ship_schedules(
    schedules: Sequence[str],
    langs=None,
    root: Path | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    progress: bool = True,
    command: str = TOY_RETRAIN_COMMAND,
) -> pd.DataFrame:
    """Train a masked toy model per language, seed and masking schedule of
    :data:`dlmpaper.analyses.schedules.SCHEDULES` (notebook 05, section 3) with the language's
    :data:`RECIPES` entry (equal training compute: same steps, batch and model for every schedule),
    and ship each to ``<root>/<schedule>/seed<seed>/<lang.name>`` (default ``data/schedule_models``).
    Several seeds tell a schedule's effect from the spread of training itself."""
    root = Path(root) if root is not None else paths.SCHEDULE_MODELS
    quality = []
    for schedule in schedules:
        for seed in seeds:
            for lang in toy_languages(langs):
                recipe = {**RECIPES.get(lang.name, {}), "seed": int(seed)}
                target = root / schedule / f"seed{seed}" / lang.name
                q, log, seconds, _ = _train_measure_ship(
                    lang, target, command, progress, exponents=schedule_exponents(lang, schedule), **recipe
                )
                print(
                    f"{lang.name} {schedule} seed {seed}: {seconds:.0f} s, eval loss {log.attrs['eval_loss']:.4f}",
                    flush=True,
                )
                quality.append({"schedule": schedule, "seed": int(seed), **q})
    return pd.DataFrame(quality)


#: Recipes of the autoregressive, continuous and uniform toy models (overrides of :class:`ToyTrainConfig`).
FAMILY_RECIPES: dict[str, dict] = {
    "autoregressive": dict(steps=1500),
    "continuous": dict(steps=3000),
    "uniform": dict(steps=3000),
}
#: Per (family, language) overrides: the continuous model needs far longer on brackets (at 3,000
#: steps it still produced 50% invalid sequences with 32 DDIM steps, at 8,000 16%).
FAMILY_RECIPE_OVERRIDES: dict[tuple[str, str], dict] = {
    ("continuous", "brackets8"): dict(steps=12000),
    ("uniform", "brackets8"): dict(steps=12000),  # the same budget as the continuous model's
}


def ship_family_model(
    model,
    lang: ToyLanguage,
    family: str,
    log: pd.DataFrame,
    seconds: float,
    root: Path | None = None,
    command: str = TOY_RETRAIN_COMMAND,
) -> Path:
    """Write a trained autoregressive / continuous toy model with ``training.json``, a card and
    ``MANIFEST.sha256`` into :func:`family_model_dir` (the folder is replaced)."""
    directory = family_model_dir(lang, family, root)
    if directory.exists():
        for old in directory.iterdir():
            old.unlink()
    families.save_family_model(model, directory, family, {"toy_language": lang.name})
    info = dict(
        language=lang.name,
        family=family,
        command=command,
        config=log.attrs["config"],
        final_train_loss=float(log["loss"].iloc[-1]),
        eval_loss=log.attrs["eval_loss"],
        entropy_per_token=log.attrs["entropy_per_token"],
        seconds=round(seconds, 1),
        parameters=int(sum(p.numel() for p in model.parameters())),
    )
    (directory / TRAINING_JSON).write_text(json.dumps(info, indent=1) + "\n")
    (directory / "README.md").write_text(toy_family_card(lang, family, info, command))
    write_manifest(directory)
    return directory


def train_and_ship_families(
    names: Sequence[str],
    langs=None,
    root: Path | None = None,
    progress: bool = True,
    command: str = TOY_RETRAIN_COMMAND,
) -> None:
    for family in names:
        families.check_family(family)
        if family == "masked":
            raise ValueError("the masked toy models are trained by `--train` without --families")
        for lang in toy_languages(langs):
            t0 = time.time()
            recipe = {**FAMILY_RECIPES[family], **FAMILY_RECIPE_OVERRIDES.get((family, lang.name), {})}
            model, log = train_toy_model(lang, family=family, progress=progress, **recipe)
            target = ship_family_model(model, lang, family, log, time.time() - t0, root, command)
            print(
                f"{lang.name} {family}: {time.time() - t0:.0f} s, eval loss {log.attrs['eval_loss']:.4f} -> {target}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.train.toy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train and ship every toy model into data/toy_models")
    parser.add_argument("--languages", nargs="+", default=None, help=f"subset of {sorted(TOY_LANGUAGES)}")
    parser.add_argument("--out", type=Path, default=None, help="root folder (default data/toy_models)")
    parser.add_argument("--quality", action="store_true", help="print the quality table of the shipped models")
    parser.add_argument(
        "--families",
        nargs="+",
        default=None,
        choices=["autoregressive", "continuous", "uniform"],
        help="with --train: train these families (notebook 02) into data/family_models instead",
    )
    parser.add_argument(
        "--schedules",
        nargs="+",
        default=None,
        choices=list(SCHEDULES),
        help="with --train: train masked models under these masking schedules (notebook 05) into data/schedule_models",
    )
    args = parser.parse_args(argv)
    if not (args.train or args.quality):
        parser.error("nothing to do: pass --train (train and ship) or --quality (measure the shipped models)")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if args.train:
            command = " ".join(["python -m dlmpaper.train.toy"] + (argv if argv is not None else sys.argv[1:]))
            if args.families:
                train_and_ship_families(args.families, args.languages, args.out, command=command)
            elif args.schedules:
                print(
                    train_and_ship_schedules(args.schedules, args.languages, args.out, command=command).to_string(
                        index=False
                    )
                )
            else:
                print(train_and_ship(args.languages, args.out, command=command).to_string(index=False))
        if args.quality:
            print(toy_model_quality(args.languages, root=args.out).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
