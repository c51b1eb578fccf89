"""Benchmark: the positional probe (paper §4, issue (i)) against the bare forward passes it needs.

Times :func:`dlmpaper.core.probe.positional_probe` end to end (encoding, batching, forward
passes, statistics, tables) and, on the same batches (:func:`dlmpaper.core.probe.plan_batches`),
nothing but ``model.logits``. Reports the overhead ratio probe / bare (goal <= 1.10) and
the wall time for N prompts x ``n_masks`` masks; writes ``benchmarks/results/probe.json``.
Wall and CPU (``time.process_time``) seconds are both recorded: on a shared machine CPU
time is the steadier measure of the work done.

    python benchmarks/bench_probe.py                      # embedded model (or a stand-in), 100 prompts
    python benchmarks/bench_probe.py --n-prompts 8 --repeats 1            # quick check
    python benchmarks/bench_probe.py --model llada-8b-instruct --prompts lima \\
        --device cuda --trust-remote-code                                  # the paper's setting

Default model: ``embedded`` when ``dlmpaper.paths.EMBEDDED_MODEL`` holds a checkpoint,
else a random stand-in with the embedded model's architecture and vocabulary size
(ModernBERT, V = 8192), so the cost ratio is representative even before training.
Default prompts: the shipped ``embedded`` set when present, else generated sentences.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from dlmpaper import paths
from dlmpaper.core.probe import plan_batches, positional_probe
from dlmpaper.lm.models import REGISTRY, load_model
from dlmpaper.prompts import embedded_prompts_path, load_prompts

GOAL = 1.10
RESULT = Path(paths.BENCHMARKS) / "results" / "probe.json"

_WORDS = (
    "can brain cells move by movement I mean long distance migration preferably within the only yes no "
    "and a of to in is it that neurons do they migrate he she like likes what why how which explain "
    "history water energy light language model word sentence question answer small large old new"
).split()


def _standin_dir(directory: Path, vocab_size: int = 8192, seed: int = 0) -> Path:
    """A random model shaped like the embedded one (ModernBERT, its config, V = vocab_size)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from dlmpaper.lm import embedded

    vocab = {tok: i for i, tok in enumerate(embedded.SPECIAL_TOKENS)}
    for word in _WORDS:
        vocab.setdefault(word, len(vocab))
        vocab.setdefault("\u0120" + word, len(vocab))
    for piece in ("\u010a", "\u010a\u010a", "\u0120", "?", ".", ","):
        vocab.setdefault(piece, len(vocab))
    for i in range(len(vocab), vocab_size):
        vocab[f"<|filler_{i}|>"] = i
    raw = Tokenizer(models.WordLevel(vocab, unk_token=embedded.EOS))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer = embedded.wrap_tokenizer(raw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        from transformers import ModernBertForMaskedLM

        model = ModernBertForMaskedLM(embedded.model_config(vocab_size)).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _prompts(source: str | None, n: int):
    if source is None:
        source = "embedded" if embedded_prompts_path().is_file() else "generated"
    if source != "generated":
        return source, load_prompts(source, n)
    texts = []
    for i in range(n):  # deterministic sentences of 6..40 words
        length = 6 + (i * 7) % 35
        texts.append(" ".join(_WORDS[(i * 3 + j * 5) % len(_WORDS)] for j in range(length)) + " ?")
    return source, texts


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def _time_bare(model, batches) -> tuple[float, float]:
    """(wall, CPU) seconds of nothing but ``model.logits`` on the probe's batches."""
    _sync(model)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for batch in batches:
            logits = model.logits(batch.input_ids, batch.attention_mask)
            del logits
    _sync(model)
    return time.perf_counter() - start, time.process_time() - cpu


def _time_probe(model, prompts, n_masks: int, batch_size: int, js_support="auto"):
    """(wall, CPU) seconds of the whole probe, and its result."""
    _sync(model)
    start, cpu = time.perf_counter(), time.process_time()
    result = positional_probe(
        model, prompts, n_masks=n_masks, batch_size=batch_size, progress=False, js_support=js_support
    )
    _sync(model)
    return time.perf_counter() - start, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="name, local directory or hub id (default: embedded or a stand-in)"
    )
    parser.add_argument(
        "--prompts", default=None, help="lima | embedded | FILE | generated (default: embedded if shipped)"
    )
    parser.add_argument("--n-prompts", type=int, default=100)
    parser.add_argument("--n-masks", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each (min is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-js-variant", action="store_true", help="skip the extra timing with js_support=0")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="dlmpaper-bench-") as tmp:
        name = args.model
        if name is None:
            name = "embedded" if (Path(paths.EMBEDDED_MODEL) / "config.json").is_file() else None
        if name is None:
            model = load_model(_standin_dir(Path(tmp) / "standin"), spec=REGISTRY["embedded"], device=args.device)
            label = "embedded-shaped random stand-in"
        else:
            model = load_model(name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
            label = name
        source, prompts = _prompts(args.prompts, args.n_prompts)
        _, batches = plan_batches(model, prompts, args.n_masks, args.batch_size)

        # warm-up: one batch each way (allocator, kernels, lazy init)
        _time_bare(model, batches[:1])
        positional_probe(
            model, prompts[: args.batch_size], n_masks=args.n_masks, batch_size=args.batch_size, progress=False
        )

        bare, probe, probe_no_js = [], [], []
        bare_cpu, probe_cpu, probe_no_js_cpu = [], [], []
        result = None
        for _ in range(max(1, args.repeats)):  # interleaved, so drift hits all alike
            wall, cpu = _time_bare(model, batches)
            bare.append(wall)
            bare_cpu.append(cpu)
            wall, cpu, result = _time_probe(model, prompts, args.n_masks, args.batch_size)
            probe.append(wall)
            probe_cpu.append(cpu)
            if not args.no_js_variant:  # the same probe without prompt-specificity (js_support=0)
                wall, cpu, _ = _time_probe(model, prompts, args.n_masks, args.batch_size, 0)
                probe_no_js.append(wall)
                probe_no_js_cpu.append(cpu)

    ratio = min(probe) / min(bare)
    cpu_ratio = min(probe_cpu) / min(bare_cpu)
    report = {
        "benchmark": "positional_probe vs bare forward passes (paper §4 issue (i))",
        "model": label,
        "vocab_size": model.vocab_size,
        "device": str(model.device),
        "device_name": torch.cuda.get_device_name(model.device)
        if model.device.type == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": str(model.dtype).removeprefix("torch."),
        "prompts": source,
        "n_prompts": result.n_prompts,
        "n_masks": args.n_masks,
        "batch_size": args.batch_size,
        "n_batches": len(batches),
        "js_exact": bool(result.meta.get("js_exact")),
        "js_support": result.js_support,
        "threads": torch.get_num_threads(),
        "repeats": len(bare),
        "bare_seconds": bare,
        "probe_seconds": probe,
        "wall_seconds": min(probe),
        "overhead_ratio": ratio,
        "overhead_ratio_median": statistics.median(probe) / statistics.median(bare),
        "bare_cpu_seconds": bare_cpu,
        "probe_cpu_seconds": probe_cpu,
        "overhead_ratio_cpu": cpu_ratio,
        "probe_without_js_seconds": probe_no_js,
        "probe_without_js_cpu_seconds": probe_no_js_cpu,
        "overhead_ratio_without_js": min(probe_no_js) / min(bare) if probe_no_js else None,
        "overhead_ratio_without_js_cpu": min(probe_no_js_cpu) / min(bare_cpu) if probe_no_js else None,
        "goal": GOAL,
        "meets_goal": ratio <= GOAL,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{label} on {report['device']}: {result.n_prompts} prompts x {args.n_masks} masks in "
        f"{min(probe):.2f} s (bare forwards {min(bare):.2f} s); overhead ratio {ratio:.3f} wall, "
        f"{cpu_ratio:.3f} CPU time "
        f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})"
        + (f", {report['overhead_ratio_without_js']:.3f} without the JS statistic" if probe_no_js else "")
        + f"; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
