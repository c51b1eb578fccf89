"""The ``dlmpaper`` command line (pyproject: ``dlmpaper = "dlmpaper.cli:main"``).

Subcommands (argparse), one function each:

* ``dlmpaper probe``: the 128-mask positional probe (paper §4, issue (i); notebook
  03_positional_probe) on any model and prompt set; prints a compact per-position summary
  and writes the tidy top-k table as CSV.

Every argument, the model name and the prompt source are checked before anything is
loaded; the library's errors end the command with ONE line ``error: ...`` on stderr and
exit code 2 (no traceback; set ``DLMPAPER_DEBUG=1`` to see it). ``python -m dlmpaper.cli``
works too.

Adding a subcommand (e.g. ``generate``): write ``_add_<name>_parser(subparsers)`` that
sets ``func=_run_<name>`` and register it in :data:`SUBCOMMANDS` (see the marked place).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["CliError", "SUBCOMMANDS", "build_parser", "compact_summary", "main"]

EXIT_USAGE = 2


class CliError(Exception):
    """A user error the CLI reports as one ``error: ...`` line (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one ``error: ...`` line like every other user error."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise CliError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------- probe
def _add_probe_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "probe",
        help="128 masks after each prompt, one forward pass, top-k per mask position (paper §4)",
        description=(
            "Positional probe (paper §4, issue (i)): append --n-masks mask tokens to each chat prompt, run one "
            "forward pass, and read the top-k tokens at every mask position. Prints a per-position summary with "
            "bootstrap CIs over prompts and writes the tidy top-k table (prompt_id, position, rank, token_id, "
            "token, prob) to --out."
        ),
    )
    p.add_argument(
        "--model",
        default="embedded",
        help="registry name, local model directory or hub id 'org/name' (default: embedded)",
    )
    p.add_argument(
        "--prompts", default="embedded", help="lima | embedded | FILE (.jsonl/.json/.csv) (default: embedded)"
    )
    p.add_argument("--n-prompts", type=int, default=100, help="first N prompts of the source (default: 100)")
    p.add_argument("--n-masks", type=int, default=128, help="mask tokens after each prompt (default: 128)")
    p.add_argument("--top-k", type=int, default=3, help="tokens read per mask position (default: 3)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default: 8)")
    p.add_argument("--out", type=Path, default=Path("probe_results.csv"), help="tidy top-k CSV to write")
    p.add_argument("--summary-out", type=Path, default=None, help="also write the per-position summary CSV here")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: the model's registry dtype)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's hub code (LLaDA, Dream)")
    p.add_argument(
        "--spec",
        choices=("llada", "dream", "masked_lm"),
        default=None,
        help="treat the checkpoint as LLaDA, Dream or a plain masked LM (default: from its config.json)",
    )
    p.add_argument(
        "--device-map",
        default=None,
        help="accelerate device map, e.g. auto: shard the model over GPUs / offload to CPU (overrides --device)",
    )
    p.add_argument(
        "--max-memory", default=None, help="with --device-map: memory per device, e.g. 0=20GiB,1=20GiB,cpu=64GiB"
    )
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of the model")
    p.add_argument(
        "--dataset-id", default=None, help="LIMA dataset id or local mirror for --prompts lima (default: GAIR/lima)"
    )
    p.add_argument(
        "--js-support", default="auto", help="tokens kept for prompt-specificity: auto | full | N | 0 (skip)"
    )
    p.add_argument(
        "--skip-long", action="store_true", help="drop prompts that do not fit the context instead of failing"
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--every", type=int, default=8, help="print every N-th position (default: 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_probe)


def _parse_js_support(value: str):
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text == "full":
        return None
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"--js-support must be auto, full or a non-negative integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"--js-support must be auto, full or a non-negative integer, got {value!r}")
    return number


def compact_summary(result, summary, every: int = 8):
    """Every ``every``-th position (and the last): entropy, top-1 prob, end share, modal top-1 token."""
    import pandas as pd

    from dlmpaper.core.probe import modal_top1

    wide = summary.pivot(index="position", columns="statistic", values="mean")
    modal = modal_top1(result).set_index("position")
    positions = sorted(set(range(1, result.n_masks + 1, every)) | {result.n_masks})
    return pd.DataFrame(
        {
            "position": positions,
            "entropy": wide.loc[positions, "entropy"].round(3).to_numpy(),
            "top1_prob": wide.loc[positions, "top1_prob"].round(3).to_numpy(),
            "end_share": wide.loc[positions, "end_share"].round(2).to_numpy(),
            "top1_token": [repr(t) for t in modal.loc[positions, "token"]],
            "top1_share": modal.loc[positions, "share"].round(2).to_numpy(),
        }
    )


#: config.json keys of the context length, in the order :class:`dlmpaper.lm.models.DiffusionLM` reads them.
_CONTEXT_KEYS = ("max_position_embeddings", "max_sequence_length", "n_positions", "max_seq_len")


def _config_limits(spec) -> tuple[int | None, int | None]:
    """(context length, vocabulary size) from a local checkpoint's ``config.json`` (the embedded
    model or a model folder), so --n-masks / --top-k fail before the weights load; (None, None)
    for hub models or an unreadable config (the loader reports that)."""
    from dlmpaper import paths

    folder = Path(paths.EMBEDDED_MODEL) if spec.hub_id is None else Path(spec.hub_id).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(config, dict):
        return None, None

    def positive(key):
        value = config.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    length = next((positive(k) for k in _CONTEXT_KEYS if positive(k)), None)
    sizes = [v for v in (positive("vocab_size"), positive("embedding_size")) if v]
    return length, max(sizes) if sizes else None


def _run_probe(args: argparse.Namespace) -> int:
    # 1. cheap checks: arguments, model name, prompt source (nothing loaded yet)
    from dlmpaper.core.probe import end_dominance_distance, position_summary, positional_probe, validate_probe_args
    from dlmpaper.guards import check_output_file, check_seed, replacing
    from dlmpaper.lm.models import (
        RemoteCodeRequiredError,
        check_model_name,
        load_model,
        parse_max_memory,
        resolve_device,
        resolve_dtype,
    )
    from dlmpaper.prompts import check_prompt_source, load_prompts

    validate_probe_args(args.n_masks, args.top_k, args.n_prompts)
    for flag, value in (("--batch-size", args.batch_size), ("--n-boot", args.n_boot), ("--every", args.every)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    js_support = _parse_js_support(args.js_support)
    spec = check_model_name(args.model, spec=args.spec)
    max_memory = parse_max_memory(args.max_memory)
    if max_memory is not None and args.device_map is None:
        raise ValueError("--max-memory needs --device-map (e.g. --device-map auto)")
    if spec.needs_remote_code and not args.trust_remote_code:
        raise RemoteCodeRequiredError(
            f"{spec.name} runs custom modelling code from its hub repository; add --trust-remote-code "
            "after reviewing that code"
        )
    validate_probe_args(args.n_masks, args.top_k, args.n_prompts, *_config_limits(spec))
    check_prompt_source(args.prompts)
    resolve_device(args.device)
    if args.dtype is not None:
        resolve_dtype(args.dtype)
    check_seed(args.seed)
    check_output_file(args.out, "--out")
    if args.summary_out is not None:
        check_output_file(args.summary_out, "--summary-out")
        if args.summary_out.resolve() == args.out.resolve():
            raise ValueError(f"--summary-out and --out are both {args.out}; give the summary its own file")

    # 2. prompts (cheap for files; LIMA may need the hub), then the model
    kwargs = {"dataset_id": args.dataset_id} if args.dataset_id else {}
    prompts = load_prompts(args.prompts, args.n_prompts, **kwargs)
    model = load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        spec=args.spec,
        device_map=args.device_map,
        max_memory=max_memory,
    )
    validate_probe_args(args.n_masks, args.top_k, args.n_prompts, model.max_length, model.vocab_size)

    # 3. the probe
    result = positional_probe(
        model,
        prompts,
        n_masks=args.n_masks,
        top_k=args.top_k,
        batch_size=args.batch_size,
        progress=not args.quiet,
        js_support=js_support,
        too_long="skip" if args.skip_long else "error",
    )
    summary = position_summary(result, n_boot=args.n_boot, seed=args.seed)
    ends = end_dominance_distance(result)

    for path, frame in ((args.out, result.table), (args.summary_out, summary)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                frame.to_csv(tmp, index=False)

    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(
            f"positional probe: {model.name} ({str(model.dtype).removeprefix('torch.')}, {model.device}), "
            f"{result.n_prompts} prompts x "
            f"{result.n_masks} masks, top-{result.top_k}; means over prompts"
        )
        print(compact_summary(result, summary, args.every).to_string(index=False))
    reached = ends["end_dominance_position"].notna()
    if reached.any():
        median = ends.loc[reached, "end_dominance_position"].median()
        print(
            f"end token top-1 for good from position {median:.0f} (median) in {int(reached.sum())}/{len(ends)} prompts"
        )
    else:
        print(f"end token never top-1 to the last position in any of {len(ends)} prompts")
    print(
        f"wrote {len(result.table)} rows to {args.out}"
        + (f" and the summary to {args.summary_out}" if args.summary_out else "")
    )
    return 0


# --------------------------------------------------------------------------- registry of subcommands
#: name -> function adding its parser. New subcommands (e.g. "generate") go here.
SUBCOMMANDS: dict[str, Callable] = {
    "probe": _add_probe_parser,
    # "generate": _add_generate_parser,   # <- add the next subcommand here
}


def build_parser() -> argparse.ArgumentParser:
    """The ``dlmpaper`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    parser = _Parser(
        prog="dlmpaper",
        description="Reproducible companion to 'On the Role of Discreteness in Diffusion LLMs' (arXiv 2512.22630).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in SUBCOMMANDS.values():
        add(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: reported as one line, exit code 2."""
    from dlmpaper.lm.models import HubAccessError
    from dlmpaper.lm.remote_code import RemoteCodeError
    from dlmpaper.provenance import ManifestError

    errors: list[type[BaseException]] = [
        CliError,
        ValueError,
        FileNotFoundError,
        HubAccessError,
        ManifestError,
        RemoteCodeError,
    ]
    import torch

    if hasattr(torch, "OutOfMemoryError"):
        errors.append(torch.OutOfMemoryError)
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if exc.__class__.__name__ == "OutOfMemoryError":
        text = f"out of memory ({text[:200]}); use a smaller --batch-size or --n-masks"
    return text or exc.__class__.__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dlmpaper`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - filtered just below; bugs keep their traceback
        if isinstance(exc, _user_errors()) and not os.environ.get("DLMPAPER_DEBUG"):
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
