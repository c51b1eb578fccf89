"""Train, evaluate and export the embedded masked diffusion LM (issue "embedded model").

    python -m dlmpaper.train --out runs/embedded --steps 20000          # train (resumes if runs/embedded exists)
    python -m dlmpaper.train --out runs/embedded --evaluate              # held-out evaluation only
    python -m dlmpaper.train --out runs/embedded --export data/embedded_model   # ship the latest checkpoint
    python -m dlmpaper.train --corpus general --out runs/general --hidden 320 --layers 6 --heads 5 \
        --response-length 160 --steps 30000      # issue 15: the general corpus (data/general_corpus)

The objective is LLaDA's SFT loss (``dlmpaper.training``) on the WordNet instruction corpus
(``dlmpaper.corpus``). ``--family autoregressive`` / ``--family continuous`` train the other two
families of notebook 02 on the same corpus, tokenizer and backbone (``dlmpaper.families``):

    python -m dlmpaper.train --family autoregressive --out runs/wordnet-autoregressive --export data/family_models/wordnet-autoregressive
 Training is resumable: the run directory holds the model
(safetensors), the AdamW state (safetensors, never pickles), the step and the loss log; batches
and masks are drawn from generators seeded by (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, ModernBertForMaskedLM

from . import corpus, embedded, families, paths
from .models import write_manifest
from .training import corrupt, left_padded_positions, masked_logits, sft_loss

RETRAIN_COMMAND = embedded.RETRAIN_COMMAND


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in the run directory and the training card)."""

    steps: int = 20000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 200
    eps: float = 1e-3
    seed: int = 0
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    vocab_size: int = 8192
    response_length: int = embedded.RESPONSE_LENGTH
    full_length_share: float = 0.25
    max_train_pairs: int | None = None
    eval_pairs: int = 256
    family: str = "masked"
    #: training corpus: "wordnet" (data/wordnet_corpus) or "general" (data/general_corpus, issue 15)
    corpus: str = "wordnet"
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data

CORPORA = ("wordnet", "general")


def load_corpus(name: str, split: str) -> list[dict]:
    """A shipped corpus split: ``wordnet`` (``data/wordnet_corpus``) or ``general`` (``data/general_corpus``, issue 15)."""
    if name not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {name!r}")
    return corpus.load_split(split, paths.CORPUS_DIR if name == "wordnet" else paths.GENERAL_CORPUS_DIR)



def render_prompt(prompt: str) -> str:
    """The chat template as a plain string (matches ``tokenizer.apply_chat_template``; checked in tests)."""
    return (
        f"{embedded.BOS}{embedded.HEADER_START}user{embedded.HEADER_END}\n\n{prompt.strip()}{embedded.EOT}"
        f"{embedded.HEADER_START}assistant{embedded.HEADER_END}\n\n"
    )


@dataclass
class EncodedPairs:
    """Tokenised pairs: chat-templated prompts and response bodies (no EOT/EOS yet)."""

    prompts: list[list[int]]
    bodies: list[list[int]]
    rows: list[dict]


def encode_pairs(tokenizer, rows: list[dict], response_length: int) -> EncodedPairs:
    prompts = tokenizer([render_prompt(r["prompt"]) for r in rows], add_special_tokens=False)["input_ids"]
    bodies = tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]
    return EncodedPairs(prompts, [b[: response_length - 1] for b in bodies], rows)


def make_batch(data: EncodedPairs, indices, tokenizer, response_length: int):
    """Left-padded batch: prompt, then the response + ``<|eot_id|>`` + EOS padding to ``response_length``.

    Returns ``(input_ids, attention_mask, response_mask)``.
    """
    eot, eos = tokenizer.convert_tokens_to_ids([embedded.EOT, embedded.EOS])
    prompt_len = max(len(data.prompts[i]) for i in indices)
    rows, attn, resp = [], [], []
    for i in indices:
        prompt, body = data.prompts[i], data.bodies[i]
        pad = prompt_len - len(prompt)
        response = body + [eot] + [eos] * (response_length - 1 - len(body))
        rows.append([eos] * pad + prompt + response)
        attn.append([0] * pad + [1] * (len(prompt) + response_length))
        resp.append([0] * (pad + len(prompt)) + [1] * response_length)
    return torch.tensor(rows), torch.tensor(attn), torch.tensor(resp)


def batch_response_length(data: EncodedPairs, indices, cfg: TrainConfig, generator: torch.Generator) -> int:
    """Response region for one batch: the full 128 with probability ``full_length_share``, else the
    longest answer plus a random EOS tail (saves compute; the tail is still trained on)."""
    if torch.rand((), generator=generator).item() < cfg.full_length_share:
        return cfg.response_length
    longest = max(len(data.bodies[i]) for i in indices) + 1
    return min(cfg.response_length, longest + int(torch.randint(0, 17, (), generator=generator)))


# ----------------------------------------------------------------------------- checkpoints


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """AdamW state as safetensors (tensors per parameter index; hyper-parameters in metadata)."""
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{index}.{key}"] = torch.as_tensor(value).contiguous()
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(optimizer.state_dict()["param_groups"])})


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    tensors = load_file(str(path))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, tokenizer, heldout: list[dict], cfg: TrainConfig, unigram: np.ndarray | None = None, batch_size: int = 32) -> dict:
    """Held-out numbers for the training card (issue "embedded model", Quality):

    - masked-token cross-entropy (nats) at fixed mask ratios 0.25 / 0.5 / 0.75, next to the unigram baseline;
    - copying: for "Tell me about the word X" prompts with 128 masks in one forward pass, the share whose
      top-3 at X's gold position in the answer contains X's first token;
    - probe shape: share of (prompt, position) pairs whose top-1 is EOS at mask positions 97-128 and 1-16.
    """
    if cfg.family != "masked":
        return evaluate_family(model, tokenizer, heldout, cfg, batch_size)
    model.eval()
    mask_id = tokenizer.convert_tokens_to_ids(embedded.MASK)
    eos = tokenizer.convert_tokens_to_ids(embedded.EOS)
    rows = heldout[: cfg.eval_pairs]
    data = encode_pairs(tokenizer, rows, cfg.response_length)
    result = {}
    for ratio in (0.25, 0.5, 0.75):
        total, count, base = 0.0, 0, 0.0
        for start in range(0, len(rows), batch_size):
            idx = list(range(start, min(start + batch_size, len(rows))))
            ids, attn, resp = make_batch(data, idx, tokenizer, cfg.response_length)
            gen = torch.Generator().manual_seed(1000 + start)
            t = torch.full((len(idx),), ratio)
            mb = corrupt(ids, resp, mask_id, gen, eps=0.0, t=t)
            logits = masked_logits(model, mb.noisy_ids, attn, left_padded_positions(attn), mb.masked)
            targets = ids[mb.masked]
            total += torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum").item()
            count += targets.numel()
            if unigram is not None:
                base += float(-np.log(unigram[targets.numpy()]).sum())
        result[f"ce_mask{int(ratio * 100)}"] = total / max(count, 1)
        if unigram is not None:
            result[f"unigram_ce_mask{int(ratio * 100)}"] = base / max(count, 1)
    tell = [r for r in heldout if r.get("task") == "tell"][: cfg.eval_pairs]
    hits, eos_far, eos_near = [], [], []
    for start in range(0, len(tell), batch_size):
        chunk = tell[start : start + batch_size]
        enc = encode_pairs(tokenizer, chunk, cfg.response_length)
        ids, attn, resp = make_batch(enc, list(range(len(chunk))), tokenizer, cfg.response_length)
        noisy = torch.where(resp.bool(), torch.full_like(ids, mask_id), ids)
        hidden_logits = model(input_ids=noisy, attention_mask=attn, position_ids=left_padded_positions(attn)).logits
        region = hidden_logits[:, -cfg.response_length :]
        top3 = region.topk(3, dim=-1).indices
        for b, row in enumerate(chunk):
            target = tokenizer.encode(" " + row["headword"], add_special_tokens=False)[0]
            body = enc.bodies[b]
            if target in body:
                hits.append(target in top3[b, body.index(target)].tolist())
        eos_far.extend((top3[:, 96:128, 0] == eos).float().mean(dim=1).tolist())
        eos_near.extend((top3[:, 0:16, 0] == eos).float().mean(dim=1).tolist())
    if tell:
        result["copy_top3"] = float(np.mean(hits)) if hits else float("nan")
        result["copy_n"] = len(hits)
        result["eos_top1_97_128"] = float(np.mean(eos_far))
        result["eos_top1_1_16"] = float(np.mean(eos_near))
    if cfg.corpus == "general":  # issue 15's probe goals (copy, invented words, EOS shape, length)
        from .goals import evaluate_goals

        result.update({k: v for k, v in evaluate_goals(model, tokenizer, heldout).items() if not k.endswith(("_lo", "_hi"))})
    model.train()
    return result


@torch.no_grad()
def evaluate_family(model, tokenizer, heldout: list[dict], cfg: TrainConfig, batch_size: int = 32) -> dict:
    """Held-out numbers of an autoregressive or continuous run (the families' training cards):

    - autoregressive: teacher-forced next-token cross-entropy on the response region (nats/token);
    - continuous: cross-entropy of x_0 from z_t at t = 0.25 / 0.5 / 0.75 (fixed noise, seeded), and
      the share of response tokens whose argmax is right at each t.
    """
    model.eval()
    data = encode_pairs(tokenizer, heldout[: cfg.eval_pairs], cfg.response_length)
    levels = (None,) if cfg.family == "autoregressive" else (0.25, 0.5, 0.75)
    result = {}
    for level in levels:
        total, right, count = 0.0, 0, 0
        for start in range(0, len(data.rows), batch_size):
            idx = list(range(start, min(start + batch_size, len(data.rows))))
            ids, attn, resp = make_batch(data, idx, tokenizer, cfg.response_length)
            pos = left_padded_positions(attn)
            if level is None:
                logits, targets = families.next_token_logits(model, ids, attn, pos, resp)
            else:
                gen = torch.Generator().manual_seed(1000 + start)
                t = torch.full((len(idx),), level)
                z = model.noisy(ids, resp, t, gen)
                logits = model(z, t, ~resp.bool(), attn, pos, select=resp.bool())
                targets = ids[resp.bool()]
            total += F.cross_entropy(logits.float(), targets, reduction="sum").item()
            right += int((logits.argmax(-1) == targets).sum())
            count += targets.numel()
        key = "response_ce" if level is None else f"ce_t{int(level * 100)}"
        result[key] = total / max(count, 1)
        result[key.replace("ce", "accuracy")] = right / max(count, 1)
    model.train()
    return result


def unigram_table(tokenizer, data: EncodedPairs, cfg: TrainConfig) -> np.ndarray:
    """Unigram distribution of response-region tokens (EOS padding to 128 included), add-one smoothed."""
    counts = np.ones(len(tokenizer), dtype=np.float64)
    eot, eos = tokenizer.convert_tokens_to_ids([embedded.EOT, embedded.EOS])
    for body in data.bodies:
        np.add.at(counts, body, 1)
        counts[eot] += 1
        counts[eos] += cfg.response_length - 1 - len(body)
    return counts / counts.sum()


# ----------------------------------------------------------------------------- the run


class Run:
    """A resumable training run in ``out`` (model, tokenizer, optimizer, log, config)."""

    def __init__(self, out: Path, cfg: TrainConfig, device: str = "cpu"):
        self.out, self.cfg, self.device = Path(out), cfg, torch.device(device)
        self.out.mkdir(parents=True, exist_ok=True)
        train_rows = load_corpus(cfg.corpus, "train")
        self.heldout = load_corpus(cfg.corpus, "heldout")
        if cfg.max_train_pairs:
            train_rows = train_rows[: cfg.max_train_pairs]
        families.check_family(cfg.family)
        tok_dir = self.out / "model"
        if (tok_dir / "tokenizer.json").exists():
            self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        elif cfg.family != "masked":  # the other families share the embedded model's tokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)
            self.tokenizer.save_pretrained(tok_dir)
        else:
            texts = (r["prompt"] + "\n" + r["response"] for r in load_corpus(cfg.corpus, "train"))
            self.tokenizer = embedded.train_tokenizer(texts, cfg.vocab_size)
            self.tokenizer.save_pretrained(tok_dir)
        self.data = encode_pairs(self.tokenizer, train_rows, cfg.response_length)
        self.mask_id = self.tokenizer.convert_tokens_to_ids(embedded.MASK)
        self.unigram = unigram_table(self.tokenizer, self.data, cfg)
        if (tok_dir / families.FAMILY_JSON).exists():
            self.model = families.load_family_model(tok_dir, check_manifest=False)[1]
        elif (tok_dir / "model.safetensors").exists():
            self.model = AutoModelForMaskedLM.from_pretrained(tok_dir, attn_implementation="sdpa")
        else:
            torch.manual_seed(cfg.seed)
            max_len = max(256, cfg.response_length + 128)  # prompt + response region (default: 256)
            self.model = ModernBertForMaskedLM(embedded.model_config(len(self.tokenizer), cfg.hidden, cfg.layers, cfg.heads, max_len))
            if cfg.family == "continuous":
                self.model = families.EmbeddingDiffusionLM(self.model)
        self.model.to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        self.state = {"step": 0, "tokens_seen": 0, "seconds": 0.0, "log": [], "evals": []}
        if (self.out / "state.json").exists():
            self.state = json.loads((self.out / "state.json").read_text())
            load_optimizer(self.optimizer, self.out / "optimizer.safetensors")

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then constant (runs are continued across sessions)."""
        return self.cfg.lr * min(1.0, (step + 1) / self.cfg.warmup)

    def save(self) -> None:
        model_dir = self.out / "model"
        if self.cfg.family == "masked":
            self.model.save_pretrained(model_dir)
        else:
            families.save_family_model(self.model, model_dir, self.cfg.family)
        save_optimizer(self.optimizer, self.out / "optimizer.safetensors")
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
        tmp = self.out / "state.json.tmp"
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.out / "state.json")

    def step(self) -> float:
        cfg, step = self.cfg, self.state["step"]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        indices = torch.randint(0, len(self.data.prompts), (cfg.batch_size,), generator=gen).tolist()
        length = batch_response_length(self.data, indices, cfg, gen)
        ids, attn, resp = make_batch(self.data, indices, self.tokenizer, length)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(step)
        loss = self.loss(ids, attn, resp, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.state["step"] = step + 1
        self.state["tokens_seen"] += int(attn.sum())
        return float(loss.detach())

    def loss(self, ids, attn, resp, gen: torch.Generator) -> torch.Tensor:
        """The family's training loss on one batch (corruption drawn from ``gen``)."""
        family = self.cfg.family
        if family == "masked":
            batch = corrupt(ids, resp, self.mask_id, gen, eps=self.cfg.eps)
            batch.noisy_ids, batch.masked, batch.p_mask = (x.to(self.device) for x in (batch.noisy_ids, batch.masked, batch.p_mask))
        ids, attn, resp = ids.to(self.device), attn.to(self.device), resp.to(self.device)
        positions = left_padded_positions(attn)
        if family == "autoregressive":
            return families.ar_loss(self.model, ids, attn, positions, resp)
        if family == "continuous":
            return families.continuous_loss(self.model, ids, attn, positions, resp, gen)
        logits = masked_logits(self.model, batch.noisy_ids, attn, positions, batch.masked)
        return sft_loss(logits, batch, ids, resp)

    def train(self, until_step: int, eval_every: int, save_every: int, time_limit_min: float | None = None) -> None:
        start_wall = time.time()
        bar = tqdm(total=until_step, initial=self.state["step"], desc="training", unit="step", dynamic_ncols=True)
        losses = []
        while self.state["step"] < until_step:
            t0 = time.time()
            losses.append(self.step())
            self.state["seconds"] += time.time() - t0
            bar.update(1)
            step = self.state["step"]
            if step % 50 == 0:
                self.state["log"].append({"step": step, "loss": float(np.mean(losses)), "seconds": round(self.state["seconds"], 1)})
                bar.set_postfix(loss=f"{np.mean(losses):.3f}")
                losses = []
            if step % eval_every == 0 or step == until_step:
                numbers = evaluate(self.model, self.tokenizer, self.heldout, self.cfg, self.unigram)
                self.state["evals"].append({"step": step, **numbers})
                tqdm.write(f"step {step}: " + ", ".join(f"{k}={v:.3f}" for k, v in numbers.items()))
            if step % save_every == 0 or step == until_step:
                self.save()
            if time_limit_min is not None and time.time() - start_wall > 60 * time_limit_min:
                self.save()
                tqdm.write(f"time limit reached at step {step}; resume with the same command")
                break
        bar.close()


def generation_numbers(model_dir: Path, n_prompts: int = 32) -> dict:
    """Adjacent-duplicate-token rate of answers to held-out prompts at 1 and 8 tokens per step
    (LLaDA's low-confidence sampler, blocks of 32, 64 new tokens)."""
    from .models import load_model
    from .sampling import adjacent_duplicate_rate, generate

    model = load_model(str(model_dir))
    prompts = [r["prompt"] for r in corpus.load_split("heldout") if r["task"] == "tell"][:n_prompts]
    numbers = {}
    for k in (1, 8):
        result = generate(model, prompts, gen_length=64, block_length=32, tokens_per_step=k, progress=False)
        numbers[f"adjacent_duplicate_rate_k{k}"] = float(np.nanmean(adjacent_duplicate_rate(result.tokens, model.end_ids)))
    return numbers


def export(run_dir: Path, target: Path, command: str) -> None:
    """Copy the run's model + tokenizer to ``target``, write the training card and MANIFEST.sha256."""
    from .cardwriter import write_card, write_family_card

    run_dir, target = Path(run_dir), Path(target)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    # the other families use the embedded model's tokenizer: ship only their weights and config
    tokenizer_files = shutil.ignore_patterns("tokenizer*", "chat_template.jinja", "special_tokens_map.json")
    shutil.copytree(run_dir / "model", staging, ignore=None if cfg.family == "masked" else tokenizer_files)
    run = Run(run_dir, cfg)
    numbers = evaluate(run.model, run.tokenizer, run.heldout, cfg, run.unigram)
    if cfg.family == "masked":
        numbers.update(generation_numbers(staging))
        write_card(run_dir, staging, command, numbers)
    else:
        write_family_card(run_dir, staging, command, numbers)
    write_manifest(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=families.FAMILIES, default="masked",
                        help="objective and sampler family (notebook 02); the embedded model is 'masked'")
    parser.add_argument("--preset", choices=["embedded"], default=None,
                        help="the shipped recipe: train in runs/embedded (resuming), then export to data/embedded_model")
    parser.add_argument("--out", type=Path, default=paths.RUNS / "embedded", help="run directory (resumed if it exists)")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    parser.add_argument("--layers", type=int, default=TrainConfig.layers)
    parser.add_argument("--heads", type=int, default=TrainConfig.heads)
    parser.add_argument("--corpus", choices=CORPORA, default=TrainConfig.corpus,
                        help="training corpus of a new run (a resumed run keeps its own): wordnet, or general (issue 15)")
    parser.add_argument("--response-length", type=int, default=TrainConfig.response_length,
                        help="response region of a new run in tokens (the probe uses 128 masks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--max-train-pairs", type=int, default=None, help="train on a slice (tests, quick trials)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-pairs", type=int, default=256)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=None, help="minutes; stop cleanly (resumable) after this")
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the run's current model")
    parser.add_argument("--export", type=Path, default=None, help="copy the run's model + card here (e.g. data/embedded_model)")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "eval_every", "save_every", "eval_pairs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export is not None:
        step = json.loads((args.out / "state.json").read_text())["step"]
        saved_family = json.loads((args.out / "config.json").read_text()).get("family", "masked")
        command = RETRAIN_COMMAND if saved_family == "masked" else f"python -m dlmpaper.train --family {saved_family} --out {args.out}"
        export(args.out, args.export, f"{command} --steps {step}")
        print(f"exported {args.out} -> {args.export}")
        return 0
    saved = args.out / "config.json"
    cfg = TrainConfig(**json.loads(saved.read_text())) if saved.exists() else TrainConfig()
    cfg.steps, cfg.batch_size, cfg.lr, cfg.seed = args.steps, args.batch_size, args.lr, args.seed
    cfg.max_train_pairs, cfg.eval_pairs = args.max_train_pairs, args.eval_pairs
    if not saved.exists():
        cfg.hidden, cfg.layers, cfg.family = args.hidden, args.layers, args.family
        cfg.heads, cfg.corpus, cfg.response_length = args.heads, args.corpus, args.response_length
    elif cfg.family != args.family:
        parser.error(f"{args.out} holds a {cfg.family!r} run; pass --family {cfg.family} or another --out")
    cfg.extra = {"device": args.device, "hardware": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    run = Run(args.out, cfg, args.device)
    if args.evaluate:
        print(json.dumps(evaluate(run.model, run.tokenizer, run.heldout, cfg, run.unigram), indent=1))
        return 0
    run.train(args.steps, args.eval_every, args.save_every, args.time_limit)
    if args.preset == "embedded" and run.state["step"] >= args.steps:
        export(args.out, paths.EMBEDDED_MODEL, f"{RETRAIN_COMMAND} --steps {args.steps}")
        print(f"exported {args.out} -> {paths.EMBEDDED_MODEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
