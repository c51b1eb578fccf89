"""The embedded model's training card (``data/embedded_model/README.md``), written at export.

It states the data, configuration, parameter count, tokens seen, wall time and hardware,
the loss curve, the held-out evaluation (issue "embedded model", Quality) and the exact
command, so that the shipped checkpoint documents itself.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import plotting  # noqa: E402
from .train import read_state  # noqa: E402

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


def _loss_curve(log: list[dict], target: Path, ylabel: str = "SFT loss (LLaDA objective)",
                title: str = "embedded model: training loss") -> None:
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
            ce_rows.append((f"0.{ratio}", f"{last[f'ce_mask{ratio}']:.3f}", f"{last.get(f'unigram_ce_mask{ratio}', float('nan')):.3f}"))
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
reachable (CI, CPUs, the notebooks' `embedded` profile). Load it with `dlmpaper.models.load_model("embedded")`
or `transformers.AutoModelForMaskedLM.from_pretrained` on this folder.

## Data
WordNet 3.0 instruction pairs built by `python -m dlmpaper.corpus` (see `data/wordnet_corpus/README.md`);
every answer starts "The word X ...". Held-out prompts share no headword with training.

## Architecture and training
| | |
|---|---|
| backbone | ModernBERT (transformers-native), {model_cfg['num_hidden_layers']} layers, hidden {model_cfg['hidden_size']}, {model_cfg['num_attention_heads']} heads, all global attention, RoPE |
| vocabulary | {model_cfg['vocab_size']} (byte-level BPE; `<|mdm_mask|>` mask, `<|endoftext|>` EOS/pad, `<|eot_id|>` end of turn) |
| parameters | {n_params:,} |
| steps x batch | {state['step']:,} x {cfg['batch_size']} (lr {cfg['lr']}, AdamW, warm-up {cfg['warmup']}, then constant) |
| tokens seen | {state['tokens_seen']:,} |
| response region | {cfg['response_length']} tokens (answer, `<|eot_id|>`, EOS padding); shorter regions in {1 - cfg['full_length_share']:.0%} of batches |
| wall time | {hours:.2f} h of training steps on {cfg.get('extra', {}).get('hardware') or platform.machine()} ({cfg.get('extra', {}).get('device', 'cpu')}, {cfg.get('extra', {}).get('threads', '?')} threads) |

Command (reproduces this checkpoint; training resumes from `runs/embedded` if present). The shipped
run was trained in resumable pieces (time limits, 1-2 CPU threads); batches and masks depend only on
(seed, step), so the command replays the same data, up to floating-point summation order:

```
{command}
```

![training loss](loss_curve.png)

## Held-out evaluation of this checkpoint (step {state['step']})
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
    "autoregressive": ("An **autoregressive** LM: the embedded model's ModernBERT backbone with a causal "
                       "attention mask, trained with next-token cross-entropy on the response region",
                       "next-token cross-entropy (nats)"),
    "continuous": ("A **continuous (embedding-space) diffusion** LM in the style of CDCD (arXiv 2211.15089): "
                   "Gaussian noise (cosine schedule) on L2-normalised learned embeddings, the backbone predicts "
                   "x_0 and is trained with cross-entropy on x_0 (Diffusion-LM's rounding term); DDIM sampling "
                   "with score interpolation", "x_0 cross-entropy (nats)"),
}


def write_family_card(run_dir: Path, model_dir: Path, command: str, numbers: dict) -> None:
    """``README.md`` + ``loss_curve.png`` of a notebook-02 family model (``dlmpaper.families``)."""
    state = read_state(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    model_cfg = json.loads((model_dir / "config.json").read_text())
    family = cfg["family"]
    what, ylabel = FAMILY_TEXT[family]
    _loss_curve(state["log"], model_dir / "loss_curve.png", ylabel, f"{family} model: training loss")
    n_params = _parameter_count(model_dir)
    rows = [("held-out measure", "value")] + [(k.replace("_", " "), f"{v:.3f}") for k, v in sorted(numbers.items())]
    text = f"""# dlmpaper {family} model (WordNet corpus)

{what}. It is one of the three families of notebook `02_five_properties` (the masked one is the
embedded model), trained on the same WordNet corpus, with the same tokenizer (`data/embedded_model`)
and the same backbone size. Load it with `dlmpaper.families.load_family_model` on this folder.

| | |
|---|---|
| backbone | ModernBERT, {model_cfg['num_hidden_layers']} layers, hidden {model_cfg['hidden_size']}, {model_cfg['num_attention_heads']} heads |
| parameters | {n_params:,} |
| steps x batch | {state['step']:,} x {cfg['batch_size']} (lr {cfg['lr']}, AdamW, warm-up {cfg['warmup']}, then constant) |
| tokens seen | {state['tokens_seen']:,} |
| wall time | {state['seconds'] / 3600:.2f} h of training steps on {cfg.get('extra', {}).get('hardware') or platform.machine()} ({cfg.get('extra', {}).get('threads', '?')} threads) |

```
{command}
```

![training loss](loss_curve.png)

## Held-out evaluation (step {state['step']})
On the first {cfg['eval_pairs']} held-out pairs, response region of {cfg['response_length']} tokens (the answer,
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
