"""The positional-probe goals of the general-corpus model, measured on a checkpoint (paper §4, issue (i)).

One forward pass with 128 mask tokens after each chat prompt (the paper's probe), top-3 tokens
per mask position, then:

- ``copy_1_8``: share of held-out general prompts whose top-3 at positions 1-8 holds a
  word-initial piece (>= 3 letters) of one of their own content words (stop words and template
  words excluded), next to ``copy_1_8_mismatched``, the same statistic scored against another
  prompt's content words (fixed derangement: the next prompt in the list);
- ``invented_1_8``: share of invented-word prompts (words never in training, several question
  forms) whose top-3 at positions 1-8 holds the word's first piece, with its mismatched baseline;
- ``eos_97_128`` / ``eos_1_16``: share of (prompt, position) pairs with EOS top-1;
- ``end_length_rho``: Spearman correlation between the end-dominance position (first position
  from which EOS stays top-1 to the end) and the gold answer's length in tokens.

Every number comes with a 95% percentile-bootstrap interval over prompts (1000 resamples, seed 0).
The content-word and statistics helpers are shared with notebook 03 (:mod:`dlmpaper.analyses.probe`,
:mod:`dlmpaper.core.stats`); ``dlmpaper.train`` calls :func:`evaluate_goals` during training.

    python -m dlmpaper.train.goals --model runs/general/model --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dlmpaper import paths
from dlmpaper.analyses.probe import content_token_sets
from dlmpaper.core.objectives import left_padded_positions
from dlmpaper.core.stats import bootstrap_statistic, spearman
from dlmpaper.corpora import general as general_corpus
from dlmpaper.lm import embedded

PROBE_MASKS = 128


@torch.no_grad()
def probe_top3(model, tokenizer, prompts: list[str], masks: int = PROBE_MASKS, batch_size: int = 32) -> torch.Tensor:
    """Top-3 token ids (n_prompts, masks, 3) at the mask positions after each prompt, one forward pass (§4)."""
    mask_id = tokenizer.convert_tokens_to_ids(embedded.MASK)
    eos = tokenizer.convert_tokens_to_ids(embedded.EOS)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        encoded = tokenizer(
            [embedded.render_prompt(p) for p in prompts[start : start + batch_size]], add_special_tokens=False
        )["input_ids"]
        width = max(len(e) for e in encoded)
        ids = torch.tensor([[eos] * (width - len(e)) + e + [mask_id] * masks for e in encoded])
        attn = torch.tensor([[0] * (width - len(e)) + [1] * (len(e) + masks) for e in encoded])
        logits = model(input_ids=ids, attention_mask=attn, position_ids=left_padded_positions(attn)).logits
        out.append(logits[:, -masks:].topk(3, dim=-1).indices)
    if was_training:
        model.train()
    return torch.cat(out)


def first_pieces(tokenizer, word: str) -> set[int]:
    """The first token of ``word`` as it follows a quote or starts a word, and after a space."""
    return {tokenizer.encode(variant, add_special_tokens=False)[0] for variant in (word, " " + word)}


def _hits(top3: torch.Tensor, targets: list[set[int]], window: tuple[int, int]) -> np.ndarray:
    lo, hi = window
    return np.array(
        [bool(set(top3[i, lo - 1 : hi].flatten().tolist()) & targets[i]) for i in range(len(targets))], dtype=float
    )


def end_dominance(top3: torch.Tensor, eos: int) -> np.ndarray:
    """Per prompt, the first (1-based) position from which EOS is top-1 at every later position (masks + 1 if never)."""
    is_eos = (top3[:, :, 0] == eos).numpy()
    out = []
    for row in is_eos:
        tail = np.flip(np.cumprod(np.flip(row)))  # 1 where EOS is top-1 from here to the end
        out.append(int(len(row) - tail.sum()) + 1)
    return np.array(out)


def general_prompts(heldout: list[dict], n: int = 256) -> list[dict]:
    """``n`` held-out general (not invented-word) pairs in a stable pseudo-random order, one per subject."""
    rows, seen = [], set()
    for r in sorted(heldout, key=lambda r: hashlib.sha256(f"goals\x1f{r['prompt']}".encode()).hexdigest()):
        if r["source"] != "invented" and r["subject"] not in seen:
            seen.add(r["subject"])
            rows.append(r)
    return rows[:n]


def invented_prompts() -> list[tuple[str, str]]:
    """``(prompt, word)``: the reserved invented words (never in training) in every invented-word question form."""
    templates = [t for form, (_, ts) in general_corpus.FORMS.items() if form.startswith("invented_") for t in ts]
    return [(t.format(w=w), w) for w in general_corpus.RESERVED_INVENTED for t in templates]


def evaluate_goals(model, tokenizer, heldout: list[dict], n_general: int = 256, masks: int = PROBE_MASKS) -> dict:
    """The issue-15 goal numbers (see the module docstring) with 95% bootstrap intervals."""
    eos = tokenizer.convert_tokens_to_ids(embedded.EOS)
    general = general_prompts(heldout, n_general)
    top3 = probe_top3(model, tokenizer, [r["prompt"] for r in general], masks)
    own = [set(ids) for ids in content_token_sets(tokenizer, [r["prompt"] for r in general])]
    keep = [i for i, p in enumerate(own) if p]
    mismatched = [own[keep[(k + 1) % len(keep)]] for k in range(len(keep))]
    copy = _hits(top3[keep], [own[i] for i in keep], (1, 8))
    copy_mis = _hits(top3[keep], mismatched, (1, 8))
    result = {"n_general": len(keep)}
    for key, values in (
        ("copy_1_8", copy),
        ("copy_1_8_mismatched", copy_mis),
        ("copy_1_8_minus_mismatched", copy - copy_mis),
    ):
        result[key], result[key + "_lo"], result[key + "_hi"] = bootstrap_statistic(values)
    eos_far = (top3[:, 96:128, 0] == eos).float().mean(dim=1).numpy()
    eos_near = (top3[:, 0:16, 0] == eos).float().mean(dim=1).numpy()
    for key, values in (("eos_97_128", eos_far), ("eos_1_16", eos_near)):
        result[key], result[key + "_lo"], result[key + "_hi"] = bootstrap_statistic(values)
    lengths = [len(ids) for ids in tokenizer([r["response"] for r in general], add_special_tokens=False)["input_ids"]]
    pairs = np.stack([end_dominance(top3, eos), np.array(lengths)], axis=1).astype(float)
    result["end_length_rho"], result["end_length_rho_lo"], result["end_length_rho_hi"] = bootstrap_statistic(
        pairs, stat=spearman
    )
    invented = invented_prompts()
    top3_inv = probe_top3(model, tokenizer, [p for p, _ in invented], masks)
    words = [first_pieces(tokenizer, w) for _, w in invented]
    n_templates = len(invented) // len(general_corpus.RESERVED_INVENTED)
    shifted = [words[(i + n_templates) % len(words)] for i in range(len(words))]  # the next word, same form
    inv, inv_mis = _hits(top3_inv, words, (1, 8)), _hits(top3_inv, shifted, (1, 8))
    result["n_invented"] = len(invented)
    for key, values in (("invented_1_8", inv), ("invented_1_8_mismatched", inv_mis)):
        result[key], result[key + "_lo"], result[key + "_hi"] = bootstrap_statistic(values)
    return result


GOALS = {  # (measure, comparison, threshold)
    "copy_1_8": (">=", 0.50),
    "copy_1_8_minus_mismatched": (">=", 0.30),
    "invented_1_8": (">=", 0.50),
    "eos_97_128": (">=", 0.90),
    "eos_1_16": ("<=", 0.10),
    "end_length_rho": (">", 0.0),
}


def summary(result: dict) -> str:
    """One line per goal: value [95% CI], goal, met."""
    lines = []
    for key, (op, goal) in GOALS.items():
        v, lo, hi = result[key], result[key + "_lo"], result[key + "_hi"]
        met = v >= goal if op == ">=" else v <= goal if op == "<=" else lo > goal
        lines.append(f"{key:28s} {v:6.3f} [{lo:.3f}, {hi:.3f}]  goal {op} {goal:.2f}  {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.train.goals", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, default=paths.RUNS / "general" / "model", help="a Hugging Face model directory"
    )
    parser.add_argument("--n-general", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from dlmpaper.corpora.wordnet import load_split

    model = AutoModelForMaskedLM.from_pretrained(args.model, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    result = evaluate_goals(model, tokenizer, load_split("heldout", paths.GENERAL_CORPUS_DIR), args.n_general)
    state = args.model.parent / "state.json"
    if state.exists():
        result["step"] = json.loads(state.read_text())["step"]
    print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
