"""The `paper` profile's code path end to end on random weights with LLaDA's architecture (no hub access).

    python benchmarks/gpu_check.py                       # CUDA, LLaDA's architecture scaled down
    python benchmarks/gpu_check.py --scale full          # CUDA, LLaDA-8B's real shapes (random bf16 weights, ~16 GB)
    python benchmarks/gpu_check.py --device cpu --n-prompts 3   # the same path on a CPU (a smoke run)

It builds a hub-like LLaDA checkpoint from the stand-in of LLaDA's remote code (tests/upstream_like),
places it in a private Hugging Face cache as `GSAI-ML/LLaDA-8B-Instruct`, and then, offline and
exactly as the `paper` profile does: loads it by registry name with its remote code (the
compatibility steps of dlmpaper.lm.remote_code), runs the §4 probe (128 masks) and LLaDA's sampler,
and executes notebook 03 with papermill (`profile="paper"`). Prints time and peak memory of each
stage and writes them to benchmarks/results/gpu_check.json (or --out). Random weights: the numbers
measure plumbing, speed and memory, never quality. Run it whenever a GPU is at hand (README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the stand-in builders

#: LLaDA-8B-Instruct's shapes (its config.json); "small" keeps the architecture at ~1/16 width.
SHAPES = {
    "full": dict(d_model=4096, n_heads=32, n_kv_heads=32, n_layers=32, mlp_hidden_size=12288, max_sequence_length=4096),
    "small": dict(d_model=512, n_heads=8, n_kv_heads=8, n_layers=4, mlp_hidden_size=1536, max_sequence_length=4096),
    "tiny": dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128, max_sequence_length=1024),
}
PROMPTS = [
    "Can brain cells move? By movement I mean long distance migration (preferably within the brain only).",
    "Why does bread go stale faster in the fridge?",
    "Can dogs see colors?",
    "Explain the difference between a virus and a bacterium.",
    "Write a sentence that uses the word 'serendipity'.",
    "How do airplanes stay in the air?",
    "Is a whale a fish?",
    "What is the capital of Australia, and why is it not Sydney?",
]


def _peak(device: str) -> dict:
    import torch

    out = {"cpu_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.startswith("cuda"):
        out["gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["gpu_peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return out


def _stage(report: dict, name: str, device: str, started: float) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    report["stages"][name] = {
        "seconds": round(time.perf_counter() - started, 3),
        **{k: round(v, 3) for k, v in _peak(device).items()},
    }
    print(f"{name:>10}: {report['stages'][name]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=SHAPES, default="small")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-notebook", action="store_true", help="probe and sampler only")
    parser.add_argument("--work", type=Path, default=None, help="where the checkpoint is built (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    args = parser.parse_args(argv)

    work = Path(args.work or tempfile.mkdtemp(prefix="dlmpaper-gpu-check-"))
    cache = work / "hf-hub-cache"
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
        HF_MODULES_CACHE=str(work / "hf-modules"),
        TRANSFORMERS_VERBOSITY="error",
    )
    import torch
    from standins import build_llada_remote

    from dlmpaper import profiles
    from dlmpaper.core import sampling
    from dlmpaper.core.probe import positional_probe

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; pass --device cpu for a smoke run", file=sys.stderr)
        return 2
    report = {
        "scale": args.scale,
        "shape": SHAPES[args.scale],
        "device": args.device,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "stages": {},
    }
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(0)

    started = time.perf_counter()
    snapshot = cache / "models--GSAI-ML--LLaDA-8B-Instruct" / "snapshots" / ("0" * 40)
    build_llada_remote(snapshot, **SHAPES[args.scale])
    (snapshot.parents[1] / "refs").mkdir(parents=True, exist_ok=True)
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    _stage(report, "build", args.device, started)

    started = time.perf_counter()
    paper = profiles.get_profile("paper")
    model = profiles.load_profile_model(paper, args.device)
    report["n_parameters"] = sum(p.numel() for p in model.model.parameters())
    report["compat_steps"] = list(model.compat_steps)
    report["padding_mode"] = model.padding_mode
    _stage(report, "load", args.device, started)

    prompts = (PROMPTS * (args.n_prompts // len(PROMPTS) + 1))[: args.n_prompts]
    started = time.perf_counter()
    result = positional_probe(model, prompts, n_masks=128, top_k=3, batch_size=args.batch_size, progress=False)
    report["probe_batch_size_used"] = result.meta["batch_size_used"]
    _stage(report, "probe", args.device, started)

    started = time.perf_counter()
    gen = sampling.generate(
        model,
        prompts,
        gen_length=64,
        block_length=32,
        steps=64,
        batch_size=args.batch_size,
        progress=False,
        record=False,
    )
    report["sampler_tokens"] = int(gen.tokens.numel())
    _stage(report, "sampler", args.device, started)
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()

    if not args.skip_notebook:
        import papermill as pm

        prompt_file = work / "prompts.jsonl"
        prompt_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
        os.environ["DLMPAPER_FIGURES"] = str(work / "figures")
        started = time.perf_counter()
        pm.execute_notebook(
            str(ROOT / "notebooks" / "03_positional_probe.ipynb"),
            str(work / "03_paper_profile.ipynb"),
            parameters={
                "profile": "paper",
                "device": args.device,
                "prompts": str(prompt_file),
                "n_prompts": len(prompts),
                "batch_size": args.batch_size,
            },
            progress_bar=False,
            cwd=str(ROOT / "notebooks"),
        )
        _stage(report, "notebook03", args.device, started)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: ok; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
