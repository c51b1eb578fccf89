"""Train, evaluate and export the embedded masked diffusion LM (issue "embedded model").

    python -m dlmpaper.train --out runs/embedded --steps 20000          # train (resumes if runs/embedded exists)
    python -m dlmpaper.train --out runs/embedded --evaluate              # held-out evaluation only
    python -m dlmpaper.train --out runs/embedded --export data/embedded_model   # ship the latest checkpoint
    python -m dlmpaper.train --corpus general --out runs/general --hidden 320 --layers 6 --heads 5 \
        --response-length 160 --steps 30000      # the general corpus (data/general_corpus)

The objective is LLaDA's SFT loss (``dlmpaper.core.objectives``) on the WordNet instruction corpus
(``dlmpaper.corpora.wordnet``). ``--family autoregressive`` / ``continuous`` / ``uniform`` train the
other families of notebook 02 on the same corpus, tokenizer and backbone (``dlmpaper.lm.families``):

    python -m dlmpaper.train --family autoregressive --out runs/wordnet-autoregressive --export data/family_models/wordnet-autoregressive
 Training is resumable: a checkpoint holds the model
(safetensors), the AdamW state (safetensors, never pickles), the step and the loss log; batches
and masks are drawn from generators seeded by (seed, step), so a resumed run sees exactly the
batches an uninterrupted one would.

Run directory: ``config.json``, ``model/`` (the tokenizer), ``checkpoints/step-N-XXXX/`` (``model/``,
``optimizer.safetensors``, ``state.json``) and ``checkpoint.json``, which names the current
checkpoint with the sha256 of each file and is written last: a kill at any point leaves the
previous checkpoint in force, and resume verifies the files first. Run directories of earlier
versions (model, optimizer and ``state.json`` side by side) still resume; their next save
uses the new layout and leaves the old files as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, ModernBertForMaskedLM

from dlmpaper import guards, paths
from dlmpaper.core.objectives import corrupt, left_padded_positions, masked_logits, sft_loss
from dlmpaper.corpora import wordnet as corpus
from dlmpaper.lm import embedded, families
from dlmpaper.lm.embedded import EncodedPairs, encode_pairs, make_batch
from dlmpaper.provenance import MANIFEST_NAME, ManifestError, sha256_file, verify_manifest, write_manifest

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
    #: training corpus: "wordnet" (data/wordnet_corpus) or "general" (data/general_corpus)
    corpus: str = "wordnet"
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data

CORPORA = ("wordnet", "general")


def load_corpus(name: str, split: str) -> list[dict]:
    """A shipped corpus split: ``wordnet`` (``data/wordnet_corpus``) or ``general`` (``data/general_corpus``)."""
    if name not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {name!r}")
    return corpus.load_split(split, paths.CORPUS_DIR if name == "wordnet" else paths.GENERAL_CORPUS_DIR)


def _save_tokenizer(tokenizer, directory: Path) -> None:
    """Save ``tokenizer`` into ``directory`` whole: written beside it, then renamed into place."""
    if directory.exists():
        tokenizer.save_pretrained(directory)
        return
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        tokenizer.save_pretrained(staging)
        guards.replace_dir(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


#: Names the current checkpoint (and the sha256 of its files); written last, so it is the commit.
CHECKPOINT_POINTER = "checkpoint.json"
CHECKPOINTS_DIR = "checkpoints"


class CheckpointError(RuntimeError):
    """A run directory's checkpoint is damaged or inconsistent (one line naming the fix)."""


def write_checkpoint(out: Path, step: int, write_files, fresh_optimizer: bool = False) -> Path:
    """Write a checkpoint with ``write_files(folder)`` into a fresh folder under ``out/checkpoints``,
    then commit it by replacing ``out/checkpoint.json``; older checkpoints are deleted after that.
    ``fresh_optimizer``: the checkpoint carries no AdamW state (a run seeded from a snapshot)."""
    out = Path(out)
    folder = out / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}-{secrets.token_hex(4)}"
    tmp, final = folder / f".{name}.tmp", folder / name
    tmp.mkdir()
    try:
        write_files(tmp)
        files = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
            files[path.relative_to(tmp).as_posix()] = sha256_file(path)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pointer = {"format": 1, "step": step, "path": f"{CHECKPOINTS_DIR}/{final.name}", "files": files}
    if fresh_optimizer:
        pointer["fresh_optimizer"] = True
    guards.atomic_write_text(out / CHECKPOINT_POINTER, json.dumps(pointer, indent=1) + "\n")
    remove_stale_checkpoints(out)
    return final


def remove_stale_checkpoints(out: Path) -> None:
    """Delete every folder under ``out/checkpoints`` but the committed one (left by kills or replaced)."""
    folder = Path(out) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return
    pointer = Path(out) / CHECKPOINT_POINTER
    keep = json.loads(pointer.read_text())["path"].split("/")[-1] if pointer.exists() else None
    for path in folder.iterdir():
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def checkpoint_dir(out: Path) -> Path | None:
    """Folder of the run's current checkpoint (``model/``, ``optimizer.safetensors``, ``state.json``),
    verified against ``checkpoint.json``; the run directory itself for the earlier layout; None if
    nothing was saved yet. Raises :class:`CheckpointError` for damage."""
    out = Path(out)
    pointer = out / CHECKPOINT_POINTER
    fix = f"delete {out} and train again, or restore it from a backup"
    if not pointer.exists():
        return out if (out / "state.json").exists() else None
    try:
        record = json.loads(pointer.read_text())
        folder, files = out / record["path"], record["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{pointer} is unreadable ({exc}); {fix}") from None
    required = ("state.json",) if record.get("fresh_optimizer") else ("state.json", "optimizer.safetensors")
    for name in required:
        if name not in files:
            raise CheckpointError(f"{pointer} lists no {name}; {fix}")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing; {fix}")
        if sha256_file(path) != expected:
            raise CheckpointError(f"checkpoint file {path} does not match {pointer} (changed or truncated); {fix}")
    return folder


def read_state(out: Path) -> dict:
    """The training state (step, tokens, loss log, evaluations) of the run's current checkpoint."""
    folder = checkpoint_dir(out)
    if folder is None:
        raise CheckpointError(f"{out} holds no checkpoint yet; train first (python -m dlmpaper.train --out {out})")
    try:
        return json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'state.json'} is unreadable ({exc}); delete {out} and train again") from None


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model, tokenizer, heldout: list[dict], cfg: TrainConfig, unigram: np.ndarray | None = None, batch_size: int = 32
) -> dict:
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
    if cfg.corpus == "general":  # the probe goals (copy, invented words, EOS shape, length)
        from dlmpaper.train.goals import evaluate_goals

        result.update(
            {k: v for k, v in evaluate_goals(model, tokenizer, heldout).items() if not k.endswith(("_lo", "_hi"))}
        )
    model.train()
    return result


@torch.no_grad()
def evaluate_family(model, tokenizer, heldout: list[dict], cfg: TrainConfig, batch_size: int = 32) -> dict:
    """Held-out numbers of an autoregressive, continuous or uniform run (the families' training cards):

    - autoregressive: teacher-forced next-token cross-entropy on the response region (nats/token);
    - continuous / uniform: cross-entropy of x_0 from z_t (Gaussian) or x_t (uniform substitution) at
      t = 0.25 / 0.5 / 0.75 (fixed noise, seeded), and the share of response tokens whose argmax is
      right at each t.
    """
    model.eval()
    data = encode_pairs(tokenizer, heldout[: cfg.eval_pairs], cfg.response_length)
    levels = (None,) if cfg.family == "autoregressive" else (0.25, 0.5, 0.75)
    noise_ids = embedded.uniform_noise_ids(tokenizer) if cfg.family == "uniform" else None
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
                if cfg.family == "uniform":
                    noisy = families.uniform_corrupt(ids, resp, t, noise_ids, gen)
                    logits = model(noisy, t, attn, pos, select=resp.bool())
                else:
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
        self.checkpoint = checkpoint_dir(self.out)  # verified; None before the first save
        remove_stale_checkpoints(self.out)
        tok_dir = self.out / "model"
        saved = self.checkpoint / "model" if self.checkpoint is not None else None
        if saved is not None and (saved / "tokenizer.json").exists():
            self.tokenizer = AutoTokenizer.from_pretrained(saved)
        elif (tok_dir / "tokenizer.json").exists():
            self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        elif cfg.family != "masked":  # the other families share the embedded model's tokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(paths.EMBEDDED_MODEL)
            _save_tokenizer(self.tokenizer, tok_dir)
        else:
            texts = (r["prompt"] + "\n" + r["response"] for r in load_corpus(cfg.corpus, "train"))
            self.tokenizer = embedded.train_tokenizer(texts, cfg.vocab_size)
            _save_tokenizer(self.tokenizer, tok_dir)
        self.data = encode_pairs(self.tokenizer, train_rows, cfg.response_length)
        self.mask_id = self.tokenizer.convert_tokens_to_ids(embedded.MASK)
        self.noise_ids = embedded.uniform_noise_ids(self.tokenizer)
        self.unigram = unigram_table(self.tokenizer, self.data, cfg)
        if self.checkpoint is None:
            torch.manual_seed(cfg.seed)
            max_len = max(256, cfg.response_length + 128)  # prompt + response region (default: 256)
            self.model = ModernBertForMaskedLM(
                embedded.model_config(len(self.tokenizer), cfg.hidden, cfg.layers, cfg.heads, max_len)
            )
            if cfg.family == "continuous":
                self.model = families.EmbeddingDiffusionLM(self.model)
            elif cfg.family == "uniform":
                self.model = families.UniformDiffusionLM(self.model)
        else:
            self.model = self._resume(self._load_model, saved)
        self.model.to(self.device).train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
        )
        self.state = {"step": 0, "tokens_seen": 0, "seconds": 0.0, "log": [], "evals": []}
        if self.checkpoint is not None:
            self._resume(self._load_training_state)
            self._check_steps()

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then constant (runs are continued across sessions). A run seeded from a
        snapshot (fresh AdamW moments) warms up again from the snapshot's step."""
        start = self.state.get("optimizer_restart", 0)
        return self.cfg.lr * min(1.0, (step - start + 1) / self.cfg.warmup)

    @staticmethod
    def _load_model(saved: Path) -> torch.nn.Module:
        if (saved / families.FAMILY_JSON).exists():
            return families.load_family_model(saved, check_manifest=False)[1]
        return AutoModelForMaskedLM.from_pretrained(saved, attn_implementation="sdpa")

    def _load_training_state(self) -> None:
        self.state = json.loads((self.checkpoint / "state.json").read_text())
        if (self.checkpoint / "optimizer.safetensors").exists() or "optimizer_restart" not in self.state:
            load_optimizer(self.optimizer, self.checkpoint / "optimizer.safetensors")

    def _resume(self, load, *args):
        """``load(*args)`` with any failure to read the checkpoint as one :class:`CheckpointError`."""
        try:
            return load(*args)
        except Exception as exc:  # safetensors, transformers and json raise many types for a damaged file
            why = " (a save of an earlier dlmpaper was cut short)" if self.checkpoint == self.out else ""
            raise CheckpointError(
                f"cannot resume from {self.checkpoint}{why}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}; "
                f"delete {self.out} and train again, or restore it from a backup"
            ) from None

    def _check_steps(self) -> None:
        """The optimizer's step count must equal the saved step (an earlier layout could mix two saves)."""
        steps = [int(v["step"]) for v in self.optimizer.state_dict()["state"].values() if "step" in v]
        if steps and max(steps) != self.state["step"] - self.state.get("optimizer_restart", 0):
            raise CheckpointError(
                f"{self.checkpoint} is inconsistent: optimizer state at step {max(steps)}, state.json at step "
                f"{self.state['step']} (a save was cut short); resuming would diverge: train again with a new --out"
            )

    def save(self) -> None:
        """Write a checkpoint as one unit (:func:`write_checkpoint`)."""
        guards.atomic_write_text(self.out / "config.json", json.dumps(asdict(self.cfg), indent=1))

        def write(folder: Path) -> None:
            model_dir = folder / "model"
            if self.cfg.family == "masked":
                self.model.save_pretrained(model_dir)
            else:
                families.save_family_model(self.model, model_dir, self.cfg.family)
            self.tokenizer.save_pretrained(model_dir)
            save_optimizer(self.optimizer, folder / "optimizer.safetensors")
            (folder / "state.json").write_text(json.dumps(self.state))

        self.checkpoint = write_checkpoint(self.out, self.state["step"], write)

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
            batch.noisy_ids, batch.masked, batch.p_mask = (
                x.to(self.device) for x in (batch.noisy_ids, batch.masked, batch.p_mask)
            )
        ids, attn, resp = ids.to(self.device), attn.to(self.device), resp.to(self.device)
        positions = left_padded_positions(attn)
        if family == "autoregressive":
            return families.ar_loss(self.model, ids, attn, positions, resp)
        if family == "continuous":
            return families.continuous_loss(self.model, ids, attn, positions, resp, gen)
        if family == "uniform":
            return families.uniform_loss(self.model, ids, attn, positions, resp, self.noise_ids, gen)
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
                self.state["log"].append(
                    {"step": step, "loss": float(np.mean(losses)), "seconds": round(self.state["seconds"], 1)}
                )
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


# ----------------------------------------------------------------------------- snapshots

#: Largest weight shard of a snapshot (each file stays under the 25 MB a shipped file may have).
SNAPSHOT_SHARD = "20MB"


def write_snapshot(run_dir: Path, target: Path) -> None:
    """Copy the run's current model (fp32 safetensors shards of <= 20 MB), tokenizer, config and
    state (no AdamW moments) to ``target`` with a MANIFEST: what carries a long run from one
    session to the next in git (``data/training_snapshots/``; resumed with ``--init-from``)."""
    run_dir, target = Path(run_dir), Path(target)
    state = read_state(run_dir)
    model = Run._load_model(checkpoint_dir(run_dir) / "model")
    tmp = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=target.parent))
    try:
        model.save_pretrained(tmp, max_shard_size=SNAPSHOT_SHARD)
        AutoTokenizer.from_pretrained(checkpoint_dir(run_dir) / "model").save_pretrained(tmp)
        shutil.copyfile(run_dir / "config.json", tmp / "train_config.json")
        (tmp / "state.json").write_text(json.dumps(state))
        readme = target / "README.md"
        if readme.exists():
            shutil.copyfile(readme, tmp / "README.md")
        write_manifest(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def seed_run_from_snapshot(snapshot: Path, out: Path) -> TrainConfig:
    """Start run directory ``out`` from a snapshot written by :func:`write_snapshot`: its weights,
    tokenizer, config and state, with fresh AdamW moments (and a new warm-up) from its step on."""
    snapshot, out = Path(snapshot), Path(out)
    if (out / "config.json").exists():
        raise CheckpointError(f"{out} already holds a run; resume it without --init-from, or pick a new --out")
    for name in ("train_config.json", "state.json", "config.json", "tokenizer.json"):
        if not (snapshot / name).is_file():
            raise CheckpointError(
                f"{snapshot} is not a training snapshot (no {name}); pass a folder written by --snapshot"
            )
    verify_manifest(snapshot, fix=f"restore {snapshot} from git")
    cfg = TrainConfig(**json.loads((snapshot / "train_config.json").read_text()))
    state = json.loads((snapshot / "state.json").read_text())
    state["optimizer_restart"] = state["step"]
    model = AutoModelForMaskedLM.from_pretrained(snapshot, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(snapshot)

    def write(folder: Path) -> None:
        model.save_pretrained(folder / "model")
        tokenizer.save_pretrained(folder / "model")
        (folder / "state.json").write_text(json.dumps(state))

    out.mkdir(parents=True, exist_ok=True)
    write_checkpoint(out, state["step"], write, fresh_optimizer=True)
    guards.atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=1))
    return cfg


def generation_numbers(model_dir: Path, n_prompts: int = 32) -> dict:
    """Adjacent-duplicate-token rate of answers to held-out prompts at 1 and 8 tokens per step
    (LLaDA's low-confidence sampler, blocks of 32, 64 new tokens)."""
    from dlmpaper.core.sampling import adjacent_duplicate_rate, generate
    from dlmpaper.lm.models import load_model

    model = load_model(str(model_dir))
    prompts = [r["prompt"] for r in corpus.load_split("heldout") if r["task"] == "tell"][:n_prompts]
    numbers = {}
    for k in (1, 8):
        result = generate(model, prompts, gen_length=64, block_length=32, tokens_per_step=k, progress=False)
        numbers[f"adjacent_duplicate_rate_k{k}"] = float(
            np.nanmean(adjacent_duplicate_rate(result.tokens, model.end_ids))
        )
    return numbers


class ExportError(ValueError):
    """``--export`` names a folder that is not safe to replace."""


def _export_kind(folder: Path) -> str | None:
    """The family of an earlier export in ``folder`` (``masked`` for the embedded model's layout)."""
    if (folder / families.FAMILY_JSON).is_file():
        try:
            return str(json.loads((folder / families.FAMILY_JSON).read_text()).get("family"))
        except (OSError, ValueError, AttributeError):
            return None
    return "masked" if (folder / "config.json").is_file() else None


def check_export_target(target: Path, family: str) -> None:
    """``target`` may be replaced by an export of ``family``: it is absent, an empty folder, or an
    earlier export of the same family whose every file is listed in its ``MANIFEST.sha256``."""
    target = Path(target)
    hint = "choose a new or empty folder, e.g. data/family_models/<name>"
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ExportError(f"--export {target} is not a folder; {hint}")
    if not target.exists() or not any(target.iterdir()):
        return
    manifest = target / MANIFEST_NAME
    if not manifest.is_file():
        raise ExportError(
            f"--export {target} is not empty and holds no earlier export ({MANIFEST_NAME} missing); "
            f"refusing to replace it: {hint}"
        )
    listed = {line.split(maxsplit=1)[1].strip() for line in manifest.read_text().splitlines() if len(line.split()) == 2}
    extra = sorted(p.name for p in target.iterdir() if p.name not in listed | {MANIFEST_NAME})
    if extra:
        raise ExportError(
            f"--export {target} holds files that are not part of an export ({', '.join(extra[:5])}); "
            f"refusing to replace them: move them away or {hint}"
        )
    kind = _export_kind(target)
    if kind != family:
        raise ExportError(f"--export {target} holds a {kind or 'unrecognised'} model, this run is {family}; {hint}")


def export(run_dir: Path, target: Path, command: str) -> None:
    """Copy the checkpoint's model (+ tokenizer for the masked family) to ``target`` with the training
    card and MANIFEST.sha256: written in a sibling folder, then swapped in (:func:`check_export_target`)."""
    from dlmpaper.train.cards import write_card, write_family_card

    run_dir, target = Path(run_dir), Path(target)
    cfg = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    guards.restore_dir(target)
    check_export_target(target, cfg.family)
    folder = checkpoint_dir(run_dir)
    if folder is None:
        raise CheckpointError(
            f"{run_dir} holds no checkpoint yet; train first (python -m dlmpaper.train --out {run_dir})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.export-*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.export-"))
    try:
        # the other families use the embedded model's tokenizer: ship only their weights and config
        tokenizer_files = shutil.ignore_patterns("tokenizer*", "chat_template.jinja", "special_tokens_map.json")
        shutil.copytree(
            folder / "model", staging, ignore=None if cfg.family == "masked" else tokenizer_files, dirs_exist_ok=True
        )
        run = Run(run_dir, cfg)
        numbers = evaluate(run.model, run.tokenizer, run.heldout, cfg, run.unigram)
        if cfg.family == "masked":
            numbers.update(generation_numbers(staging))
            write_card(run_dir, staging, command, numbers)
        else:
            write_family_card(run_dir, staging, command, numbers)
        write_manifest(staging)
        check_export_target(target, cfg.family)  # again: the folder may have changed meanwhile
        guards.replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmpaper.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--family",
        choices=families.FAMILIES,
        default="masked",
        help="objective and sampler family (notebook 02); the embedded model is 'masked'",
    )
    parser.add_argument(
        "--preset",
        choices=["embedded"],
        default=None,
        help="the shipped recipe: train in runs/embedded (resuming), then export to data/embedded_model",
    )
    parser.add_argument(
        "--out", type=Path, default=paths.RUNS / "embedded", help="run directory (resumed if it exists)"
    )
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    parser.add_argument("--layers", type=int, default=TrainConfig.layers)
    parser.add_argument("--heads", type=int, default=TrainConfig.heads)
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default=TrainConfig.corpus,
        help="training corpus of a new run (a resumed run keeps its own): wordnet, or general",
    )
    parser.add_argument(
        "--response-length",
        type=int,
        default=TrainConfig.response_length,
        help="response region of a new run in tokens (the probe uses 128 masks)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--max-train-pairs", type=int, default=None, help="train on a slice (tests, quick trials)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-pairs", type=int, default=256)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=None, help="minutes; stop cleanly (resumable) after this")
    parser.add_argument("--evaluate", action="store_true", help="only evaluate the run's current model")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start a new --out from a training snapshot (its weights and step; fresh AdamW)",
    )
    parser.add_argument(
        "--snapshot",
        type=Path,
        default=None,
        help="write the run's current model as a training snapshot here (e.g. data/training_snapshots/general)",
    )
    parser.add_argument(
        "--export", type=Path, default=None, help="copy the run's model + card here (e.g. data/embedded_model)"
    )
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "eval_every", "save_every", "eval_pairs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available; use --device cpu")
    try:
        guards.check_seed(args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    interrupted = {}

    def on_sigterm(signum, frame):
        interrupted["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return _main(parser, args)
    except (CheckpointError, ExportError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        signum = interrupted.get("signal", signal.SIGINT)
        print(
            f"interrupted by {signal.Signals(signum).name}: the last checkpoint in {args.out} is intact; "
            "resume with the same command",
            file=sys.stderr,
        )
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.snapshot is not None:
        write_snapshot(args.out, args.snapshot)
        print(f"snapshot of {args.out} (step {read_state(args.out)['step']}) -> {args.snapshot}")
        return 0
    if args.init_from is not None:
        seed_run_from_snapshot(args.init_from, args.out)
    if args.export is not None:
        if not (args.out / "config.json").is_file():
            parser.error(f"{args.out} holds no training run (no config.json); train first or fix --out")
        saved_family = json.loads((args.out / "config.json").read_text()).get("family", "masked")
        step = read_state(args.out)["step"]
        command = (
            RETRAIN_COMMAND
            if saved_family == "masked"
            else f"python -m dlmpaper.train --family {saved_family} --out {args.out}"
        )
        export(args.out, args.export, f"{command} --steps {step}")
        print(f"exported {args.out} -> {args.export}")
        return 0
    if args.preset == "embedded":
        check_export_target(paths.EMBEDDED_MODEL, "masked")
    saved = args.out / "config.json"
    cfg = TrainConfig(**json.loads(saved.read_text())) if saved.exists() else TrainConfig()
    cfg.steps, cfg.batch_size, cfg.lr, cfg.seed = args.steps, args.batch_size, args.lr, args.seed
    cfg.max_train_pairs, cfg.eval_pairs = args.max_train_pairs, args.eval_pairs
    if not saved.exists():
        cfg.hidden, cfg.layers, cfg.family = args.hidden, args.layers, args.family
        cfg.heads, cfg.corpus, cfg.response_length = args.heads, args.corpus, args.response_length
    elif cfg.family != args.family:
        parser.error(f"{args.out} holds a {cfg.family!r} run; pass --family {cfg.family} or another --out")
    cfg.extra = {
        "device": args.device,
        "hardware": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
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
