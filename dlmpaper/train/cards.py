"""Every shipped model's training card (its ``README.md``), written when it is exported.

:func:`write_card` (the embedded model, ``data/embedded_model/README.md``) and
:func:`write_family_card` (the WordNet autoregressive / continuous models) state the data,
configuration, parameter count, tokens seen, wall time and hardware, the loss curve, the held-out
evaluation and the exact command; :func:`toy_card` and :func:`toy_family_card` do the same for the
toy-language models. The shipped checkpoints document themselves.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlmpaper.core.trap import ToyLanguage  # noqa: E402
from dlmpaper.figures import style as plotting  # noqa: E402
from dlmpaper.train.loop import read_state  # noqa: E402

#: The licence section of every WordNet-trained model card.
LICENSE = """## License
Weights: MIT, like the code. Trained on WordNet 3.0 (Copyright 2006 by Princeton University; the
WordNet license and notice are in `data/wordnet_corpus/LICENSE`). `MANIFEST.sha256` lists the
SHA-256 of every file here and is verified whenever `dlmpaper` loads the model."""

GOALS = {
    "copy_top3": ("copying: top-3 at X's gold position contains X's first token", ">= 0.50"),
    "eos_top1_97_128": ("share of (prompt, position) with EOS top-1, mask positions 97-128", ">= 0.90"),
    "eos_top1_1_16": ("share of (prompt, position) with EOS top-1, mask positions 1-16", "<= 0.10"),
}


def _loss_curve(
    log: list[dict],
    target: Path,
    ylabel: str = "SFT loss (LLaDA objective)",
    title: str = "embedded model: training loss",
) -> None:
    plotting.use_style()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    fig.savefig(target, dpi=110, metadata=plotting.PNG_METADATA)
    plt.close(fig)


def _table(rows: list[tuple]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in body]
    return "\n".join(lines)


def write_card(run_dir: Path, model_dir: Path, command: str, extra_numbers: dict | None = None) -> None:
    """Write ``README.md`` and ``loss_curve.png`` into ``model_dir`` from the run's state."""
    state = read_state(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    model_cfg = json.loads((model_dir / "config.json").read_text())
    _loss_curve(state["log"], model_dir / "loss_curve.png")
    evals = state["evals"]
    last = dict(evals[-1]) if evals else {}
    last.update(extra_numbers or {})
    ce_rows = [("mask ratio", "model CE (nats)", "unigram CE (nats)")]
    for ratio in (25, 50, 75):
        if f"ce_mask{ratio}" in last:
            ce_rows.append(
                (
                    f"0.{ratio}",
                    f"{last[f'ce_mask{ratio}']:.3f}",
                    f"{last.get(f'unigram_ce_mask{ratio}', float('nan')):.3f}",
                )
            )
    goal_rows = [("measure", "value", "goal", "met")]
    for key, (label, goal) in GOALS.items():
        if key in last:
            value = last[key]
            met = value >= float(goal[3:]) if goal.startswith(">=") else value <= float(goal[3:])
            goal_rows.append((label, f"{value:.3f}", goal, "yes" if met else "**no**"))
    for key, value in sorted((extra_numbers or {}).items()):
        if key.startswith("adjacent_duplicate"):
            goal_rows.append((key.replace("_", " "), f"{value:.3f}", "report", "-"))
    history = [("step", "CE@0.5", "copy top-3")]
    for e in evals:
        history.append((e["step"], f"{e['ce_mask50']:.3f}", f"{e['copy_top3']:.3f}"))
    n_params = _parameter_count(model_dir)
    hours = state["seconds"] / 3600
    text = f"""# dlmpaper embedded model

A small **masked diffusion language model** trained by `dlmpaper` with LLaDA's SFT objective
(t ~ U(0,1), p = (1-eps) t + eps, prompt never masked, EOS padding of the response trained on,
cross-entropy on masked tokens / p). It stands in for LLaDA-8B-Instruct wherever no model hub is
reachable (CI, CPUs, the notebooks' `embedded` profile). Load it with `dlmpaper.lm.models.load_model("embedded")`
or `transformers.AutoModelForMaskedLM.from_pretrained` on this folder.

## Data
WordNet 3.0 instruction pairs built by `python -m dlmpaper.corpora.wordnet` (see `data/wordnet_corpus/README.md`);
every answer starts "The word X ...". Held-out prompts share no headword with training.

## Architecture and training
| | |
|---|---|
| backbone | ModernBERT (transformers-native), {model_cfg["num_hidden_layers"]} layers, hidden {model_cfg["hidden_size"]}, {model_cfg["num_attention_heads"]} heads, all global attention, RoPE |
| vocabulary | {model_cfg["vocab_size"]} (byte-level BPE; `<|mdm_mask|>` mask, `<|endoftext|>` EOS/pad, `<|eot_id|>` end of turn) |
| parameters | {n_params:,} |
| steps x batch | {state["step"]:,} x {cfg["batch_size"]} (lr {cfg["lr"]}, AdamW, warm-up {cfg["warmup"]}, then constant) |
| tokens seen | {state["tokens_seen"]:,} |
| response region | {cfg["response_length"]} tokens (answer, `<|eot_id|>`, EOS padding); shorter regions in {1 - cfg["full_length_share"]:.0%} of batches |
| wall time | {hours:.2f} h of training steps on {cfg.get("extra", {}).get("hardware") or platform.machine()} ({cfg.get("extra", {}).get("device", "cpu")}, {cfg.get("extra", {}).get("threads", "?")} threads) |

Command (reproduces this checkpoint; training resumes from `runs/embedded` if present). The shipped
run was trained in resumable pieces (time limits, 1-2 CPU threads); batches and masks depend only on
(seed, step), so the command replays the same data, up to floating-point summation order:

```
{command}
```

![training loss](loss_curve.png)

## Held-out evaluation of this checkpoint (step {state["step"]})
Masked-token cross-entropy at fixed mask ratios on held-out pairs (response region of 128, EOS padding included):

{_table(ce_rows)}

The issue's quality goals (128 masks after held-out "Tell me about the word X" prompts, one forward pass):

{_table(goal_rows)}

History:

{_table(history)}

{LICENSE}
"""
    (model_dir / "README.md").write_text(text)


FAMILY_TEXT = {
    "autoregressive": (
        "An **autoregressive** LM: the embedded model's ModernBERT backbone with a causal "
        "attention mask, trained with next-token cross-entropy on the response region",
        "next-token cross-entropy (nats)",
    ),
    "continuous": (
        "A **continuous (embedding-space) diffusion** LM in the style of CDCD (arXiv 2211.15089): "
        "Gaussian noise (cosine schedule) on L2-normalised learned embeddings, the backbone predicts "
        "x_0 and is trained with cross-entropy on x_0 (Diffusion-LM's rounding term); DDIM sampling "
        "with score interpolation",
        "x_0 cross-entropy (nats)",
    ),
    "uniform": (
        "A **uniform-substitution discrete diffusion** LM in the style of D3PM-uniform (arXiv 2107.03006): "
        "each response token is kept with probability 1 - t and otherwise replaced by a uniformly drawn "
        "token, the bidirectional backbone predicts x_0 and is trained with cross-entropy on x_0; "
        "ancestral D3PM sampling, which can revise tokens",
        "x_0 cross-entropy (nats)",
    ),
}


def write_family_card(run_dir: Path, model_dir: Path, command: str, numbers: dict) -> None:
    """``README.md`` + ``loss_curve.png`` of a notebook-02 family model (``dlmpaper.lm.families``)."""
    state = read_state(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    model_cfg = json.loads((model_dir / "config.json").read_text())
    family = cfg["family"]
    what, ylabel = FAMILY_TEXT[family]
    _loss_curve(state["log"], model_dir / "loss_curve.png", ylabel, f"{family} model: training loss")
    n_params = _parameter_count(model_dir)
    rows = [("held-out measure", "value")] + [(k.replace("_", " "), f"{v:.3f}") for k, v in sorted(numbers.items())]
    text = f"""# dlmpaper {family} model (WordNet corpus)

{what}. It is one of the four families of notebook `02_five_properties` (the masked one is the
embedded model), trained on the same WordNet corpus, with the same tokenizer (`data/embedded_model`)
and the same backbone size. Load it with `dlmpaper.lm.families.load_family_model` on this folder.

| | |
|---|---|
| backbone | ModernBERT, {model_cfg["num_hidden_layers"]} layers, hidden {model_cfg["hidden_size"]}, {model_cfg["num_attention_heads"]} heads |
| parameters | {n_params:,} |
| steps x batch | {state["step"]:,} x {cfg["batch_size"]} (lr {cfg["lr"]}, AdamW, warm-up {cfg["warmup"]}, then constant) |
| tokens seen | {state["tokens_seen"]:,} |
| wall time | {state["seconds"] / 3600:.2f} h of training steps on {cfg.get("extra", {}).get("hardware") or platform.machine()} ({cfg.get("extra", {}).get("threads", "?")} threads) |

```
{command}
```

![training loss](loss_curve.png)

## Held-out evaluation (step {state["step"]})
On the first {cfg["eval_pairs"]} held-out pairs, response region of {cfg["response_length"]} tokens (the answer,
`<|eot_id|>` and EOS padding, which is easy to predict and lifts every number here):

{_table(rows)}

{LICENSE}
"""
    (model_dir / "README.md").write_text(text)


def _parameter_count(model_dir: Path) -> int:
    """Number of weights in ``model_dir/model.safetensors`` (read from the header, no tensors loaded)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as handle:
        return sum(_prod(handle.get_slice(key).get_shape()) for key in handle.keys())


def _prod(shape) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


def toy_card(lang: ToyLanguage, info: dict, rates: pd.DataFrame | None) -> str:
    """The ``README.md`` of a shipped masked toy model: recipe, losses, measured quality and the
    invalid rate by tokens per step (``dlmpaper.train.toy.save_toy_model``)."""
    cfg, q = info["config"], info["quality"]
    lines = [
        f"# Toy masked diffusion LM: `{lang.name}`",
        "",
        f"A tiny BERT-architecture masked diffusion LM trained on the exact toy language `{lang.name}` "
        f"({lang.description}; {lang.sequences.shape[0]} sequences of length {lang.length}, "
        f"vocabulary {lang.vocab} + `[MASK]` (id {lang.mask_id}) + an unused pad id).",
        *(
            [
                "Used by notebook 05_remedies, section 3 (`dlmpaper.analyses.schedules`): corruption that follows",
                "where the information is (paper §5, for §4 issue (i)), against uniform masking at equal compute.",
            ]
            if info.get("exponents") is not None
            else [
                "Used by `dlmpaper.lm.toymodels` (notebooks 04_marginal_trap and 02_five_properties, property L2):",
                "the marginal trap of paper §4 (issue (ii)) with a *trained* model's marginals next to the exact ones.",
            ]
        ),
        "",
        "## Training",
        "",
        "LLaDA's objective (`dlmpaper.core.objectives`), the whole sequence as the response: each token masked with "
        "p = (1 - eps) t + eps, loss = CE on masked tokens / p (t stratified over the batch); AdamW, "
        "linear warm-up then cosine decay.",
        "",
        f"- command: `{info['command']}`",
        *(
            [
                "- masking schedule (notebook 05, section 3): position i masked with probability "
                "eps + (1 - eps) t^w_i, w = " + ", ".join(f"{w:.3f}" for w in info["exponents"])
            ]
            if info.get("exponents") is not None
            else []
        ),
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
        t = rates.pivot_table(
            index=["order", "tokens_per_step"], columns="marginals", values="invalid_exact"
        ).reset_index()
        lines += [
            "Invalid rate vs tokens per step k (exact recursion over the decoder's states):",
            "",
            "| order | k | exact marginals | trained marginals |",
            "|---|---|---|---|",
        ]
        for r in t.itertuples(index=False):
            lines.append(
                f"| {r.order} | {r.tokens_per_step} | {getattr(r, 'exact'):.4f} | {getattr(r, 'trained'):.4f} |"
            )
        lines.append("")
    lines += [
        "Files: `config.json`, `model.safetensors`, `training.json`, this card; `MANIFEST.sha256` is "
        "checked by `dlmpaper.lm.toymodels.load_toy_model`.",
        "",
    ]
    return "\n".join(lines)


def toy_family_card(lang: ToyLanguage, family: str, info: dict, command: str) -> str:
    """The ``README.md`` of a shipped autoregressive / continuous / uniform toy model
    (``dlmpaper.train.toy.ship_family_model``)."""
    what = {
        "autoregressive": "the same tiny BERT with a causal attention mask, next-token cross-entropy after a start token",
        "continuous": "a CDCD-style embedding diffusion LM on the same tiny BERT (16-dim normalised embeddings, cosine "
        "Gaussian schedule, cross-entropy on x_0; `dlmpaper.lm.families`)",
        "uniform": "a D3PM-uniform discrete diffusion LM on the same tiny BERT (each token kept w.p. 1 - t, else "
        "a uniform draw from the language's tokens; cross-entropy on x_0; `dlmpaper.lm.families`)",
    }[family]
    floor = (
        f" (floor for this loss: entropy per token {info['entropy_per_token']:.4f})"
        if family == "autoregressive"
        else " (x_0 cross-entropy averaged over t; not a likelihood)"
    )
    return "\n".join(
        [
            f"# Toy {family} LM: `{lang.name}`",
            "",
            f"{what}, trained on samples of the exact toy language `{lang.name}` ({lang.description}).",
            "Used by notebook 02_five_properties (property L2: invalid-sequence rate at matched compute).",
            "",
            f"- command: `{command}`",
            "- " + ", ".join(f"{k}={v}" for k, v in info["config"].items()),
            f"- parameters: {info['parameters']:,}; training took {info['seconds']:.0f} s on one CPU thread",
            f"- evaluation loss (4096 fresh samples): {info['eval_loss']:.4f}{floor}",
            "",
            "Weights: MIT, like the code. `MANIFEST.sha256` is checked by `dlmpaper.lm.toymodels.load_toy_family_model`.",
            "",
        ]
    )
