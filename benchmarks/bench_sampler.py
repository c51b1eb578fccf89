"""Benchmark: batched :func:`dlmpaper.core.sampling.generate` against the unbatched LLaDA reference.

Checks that both give identical tokens at temperature 0 and reports the throughput ratio
(prompts/s ours / reference; goal >= 1.5x). Writes ``benchmarks/results/sampler.json``.

    python benchmarks/bench_sampler.py                       # embedded model if shipped, else a stand-in
    python benchmarks/bench_sampler.py --model llada-like --n-prompts 16 --gen-length 32 --block-length 8
    python benchmarks/bench_sampler.py --model embedded --gen-length 64 --steps 32 --device cuda

``--model llada-like`` builds the tiny random stand-in of ``tests/standins.py`` (LLaDA's
126k vocabulary and ids; weights redrawn at std 1 so that answers vary). Used to back the
speed claim of notebook 04_marginal_trap's sweep.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from dlmpaper import paths
from dlmpaper.core.sampling import generate
from dlmpaper.lm.models import DiffusionLM, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llada_reference import reference_llada_generate  # noqa: E402

FALLBACK_PROMPTS = [
    "Can brain cells move?",
    "Yes or no?",
    "He likes the cells that can migrate in the brain.",
    "Tell me about neurons.",
    "Do they migrate?",
    "You are helpful. Can neurons move a long distance within the brain?",
]


def _standin(device: str) -> DiffusionLM:
    sys.path.insert(0, str(paths.ROOT / "tests"))
    from standins import LLADA_LIKE_SPEC, build_llada_like

    directory = Path(tempfile.mkdtemp(prefix="bench_sampler_")) / "llada_like"
    lm = load_model(build_llada_like(directory), spec=LLADA_LIKE_SPEC, device=device)
    model = copy.deepcopy(lm.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen).to(param.device))
    return DiffusionLM(model, lm.tokenizer, lm.spec)


def _model(name: str, device: str) -> DiffusionLM:
    if name == "auto":
        name = "embedded" if (paths.EMBEDDED_MODEL / "config.json").is_file() else "llada-like"
    if name == "llada-like":
        return _standin(device)
    return load_model(name, device=device)


def _prompts(n: int, embedded: bool) -> list[str]:
    """The shipped prompt set for the embedded model; otherwise sentences of varied length
    (the stand-in's tokenizer knows few words: varied lengths exercise left padding)."""
    texts = []
    if embedded:
        from dlmpaper.prompts import load_prompts

        texts = list(load_prompts("embedded", n)["prompt"])
    while len(texts) < n:
        texts.append(FALLBACK_PROMPTS[len(texts) % len(FALLBACK_PROMPTS)])
    return texts[:n]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="auto", help="'auto', 'llada-like' (stand-in), 'embedded', a path or hub id")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--gen-length", type=int, default=32)
    ap.add_argument("--block-length", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="default: gen_length / 2 (two tokens per step)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--remasking", default="low_confidence", choices=("low_confidence", "random"))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=paths.BENCHMARKS / "results" / "sampler.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or max(1, args.gen_length // 2)

    lm = _model(args.model, args.device)
    prompts = _prompts(args.n_prompts, embedded=lm.spec.adapter == "embedded")
    ids = [lm.encode_chat(p) for p in prompts]
    kw = dict(gen_length=args.gen_length, block_length=args.block_length, steps=steps, remasking=args.remasking)

    # warm-up (allocator, kernels) on one prompt, not timed
    generate(lm, ids[:1], progress=False, record=False, **kw)
    reference_llada_generate(lm, ids[:1], **kw)

    timings, cpu = {}, {}  # wall seconds, and this process's CPU seconds (robust on a shared machine)
    _sync(lm.device)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = reference_llada_generate(lm, ids, **kw)
    _sync(lm.device)
    timings["reference"], cpu["reference"] = time.perf_counter() - t0, time.process_time() - c0
    results = {}
    for record in (False, True):
        label = "generate" + ("+record" if record else "")
        t0, c0 = time.perf_counter(), time.process_time()
        results[label] = generate(lm, ids, batch_size=args.batch_size, progress=False, record=record, **kw)
        _sync(lm.device)
        timings[label], cpu[label] = time.perf_counter() - t0, time.process_time() - c0

    identical = all(torch.equal(r.tokens, ref) for r in results.values())
    rows = [
        {
            "sampler": k,
            "seconds": round(v, 4),
            "cpu_seconds": round(cpu[k], 4),
            "prompts_per_s": round(len(ids) / v, 3),
            "speedup": round(timings["reference"] / v, 3),
            "cpu_speedup": round(cpu["reference"] / cpu[k], 3),
        }
        for k, v in timings.items()
    ]
    report = {
        "model": lm.name,
        "n_parameters": int(sum(p.numel() for p in lm.model.parameters())),
        "vocab_size": lm.vocab_size,
        "device": str(lm.device),
        "torch_threads": torch.get_num_threads(),
        "n_prompts": len(ids),
        "prompt_lengths": [len(i) for i in ids],
        "settings": {**kw, "batch_size": args.batch_size, "temperature": 0.0},
        "identical_tokens": identical,
        "speedup": round(timings["reference"] / timings["generate"], 3),
        "cpu_speedup": round(cpu["reference"] / cpu["generate"], 3),
        "goal_speedup": 1.5,
        "rows": rows,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"model={lm.name} device={lm.device} prompts={len(ids)} {kw}")
    print(f"{'sampler':<18}{'seconds':>10}{'cpu s':>10}{'prompts/s':>12}{'speedup':>10}{'cpu speedup':>13}")
    for r in rows:
        print(
            f"{r['sampler']:<18}{r['seconds']:>10.3f}{r['cpu_seconds']:>10.3f}{r['prompts_per_s']:>12.2f}"
            f"{r['speedup']:>10.2f}{r['cpu_speedup']:>13.2f}"
        )
    print(f"identical tokens at T=0: {identical}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if not identical:
        raise SystemExit("batched generate and the reference disagree at temperature 0")
    return report


if __name__ == "__main__":
    main()
