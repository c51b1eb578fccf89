"""The paper's five properties, each measured by a proxy on models of every family (paper §3).

The paper judges the families qualitatively: D1 smooth corruption, D2 tractable intermediate
states, D3 iterative refinement, L1 discreteness, L2 structural dependency. Each function
below turns one property into a number that our models (masked = the embedded model,
autoregressive and continuous = ``dlmpaper.lm.families``) produce, and :func:`measured_matrix`
reads those numbers back into the paper's yes / partial / no with thresholds stated in its
docstring. Notebook ``02_five_properties``; figures by ``dlmpaper.figures.properties``.

Every function returns a tidy DataFrame and is deterministic given its ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from dlmpaper import paths
from dlmpaper.core import corruption
from dlmpaper.core.corruption import information_retained as information_retained  # re-exported for notebook 02
from dlmpaper.core.objectives import left_padded_positions
from dlmpaper.core.trap import ToyLanguage, invalid_rate_by_tokens_per_step, wilson
from dlmpaper.corpora.wordnet import load_split as load_split  # re-exported for notebook 02
from dlmpaper.lm import families
from dlmpaper.lm.protocol import MaskedDiffusionLM

# --------------------------------------------------------------------------------------- D1


def gold_posterior_gaussian(
    z: torch.Tensor, gold: torch.Tensor, embedding: torch.Tensor, alpha_bar: float
) -> torch.Tensor:
    """P(x_0 = gold | z_t) under a uniform prior over the vocabulary (D1: what z_t alone still says).

    q(z_t | v) = N(sqrt(abar) E_v, (1 - abar) I), so the posterior is a softmax over v of
    -||z_t - sqrt(abar) E_v||^2 / (2 (1 - abar)). ``z`` (N, d), ``gold`` (N,). At abar = 1 it is
    1 for the exact embedding; at abar = 0 it is 1 / V.
    """
    E = embedding.float()
    if alpha_bar >= 1.0:
        return (corruption.round_to_tokens(z, E)[0] == gold).float()
    d2 = z.pow(2).sum(-1, keepdim=True) - 2 * math.sqrt(alpha_bar) * z @ E.T + alpha_bar * E.pow(2).sum(-1)[None]
    logits = -d2 / (2 * (1 - alpha_bar))
    return torch.softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0]


def d1_single_token_paths(
    embedding: torch.Tensor,
    *,
    n_tokens: int = 256,
    n_steps: int = 100,
    schedule: str = "cosine",
    seed: int = 0,
) -> pd.DataFrame:
    """How abruptly one token's information disappears along the forward chain (D1, notebook 02).

    For ``n_tokens`` tokens drawn uniformly from the vocabulary of ``embedding`` (V, d: the
    diffusion space as the model sees it, e.g. ``EmbeddingDiffusionLM.diffusion_embeddings()``), run each
    forward chain for ``n_steps`` steps (``corruption.mask_chain`` / ``gaussian_chain``) and track
    the Bayes posterior of the gold token given the token's own state x_t (uniform prior):
    mask: 1 while visible, 1 / V once masked; Gaussian: :func:`gold_posterior_gaussian`.
    Returns one row per (process, token): ``max_drop`` (largest fall of the posterior in one
    step: 1 - 1/V for mask, smaller for a smooth process), ``width`` (length of the t axis over
    which the posterior falls from 0.9 to 0.1: one step, 1/n, for a jump) and ``fall_steps``
    (that width in chain steps).
    """
    E = embedding.float()
    V = E.shape[0]
    gen = torch.Generator().manual_seed(seed)
    gold = torch.randint(V, (n_tokens,), generator=gen)
    sched = corruption.GaussianSchedule(schedule)
    ts = torch.linspace(0, 1, n_steps + 1)
    mask_states = corruption.mask_chain(gold, n_steps, V, gen)
    gauss_states = corruption.gaussian_chain(gold, n_steps, E, gen, sched)
    paths = {
        "mask": torch.stack([torch.where(s == V, 1.0 / V, 1.0) for s in mask_states]),
        "gaussian": torch.stack(
            [gold_posterior_gaussian(z, gold, E, float(sched.alpha_bar(float(t)))) for z, t in zip(gauss_states, ts)]
        ),
    }
    rows = []
    for process, post in paths.items():  # post: (n_steps + 1, n_tokens)
        drops = (post[:-1] - post[1:]).max(dim=0).values
        for i in range(n_tokens):
            width = transition_width(post[:, i].numpy(), ts.numpy())
            rows.append(
                {
                    "process": process,
                    "token": int(gold[i]),
                    "max_drop": float(drops[i]),
                    "width": width,
                    "fall_steps": round(width * n_steps),
                }
            )
    return pd.DataFrame(rows)


def transition_width(posterior: np.ndarray, t: np.ndarray, high: float = 0.9, low: float = 0.1) -> float:
    """Length of t between the last time the posterior is >= ``high`` and the first time after it
    that it is <= ``low`` (NaN if it never falls that far). A jump gives one step of t."""
    above = np.flatnonzero(posterior >= high)
    if above.size == 0:
        return float("nan")
    start = above[-1]
    below = np.flatnonzero(posterior[start:] <= low)
    if below.size == 0:
        return float("nan")
    return float(t[start + below[0]] - t[start])


@torch.no_grad()
def masked_gold_probability(
    model: MaskedDiffusionLM,
    pairs: Sequence[tuple[list[int], list[int]]],
    levels: Sequence[float],
    *,
    seed: int = 0,
    max_distance: int = 8,
) -> pd.DataFrame:
    """The masked denoiser's gold-token probability against t and distance to the nearest visible
    token (D1, the paper's point that equal nominal noise is unequal information; notebook 02).

    ``model``: a ``dlmpaper.lm.models.DiffusionLM``; ``pairs``: ``(prompt_ids, response_ids)`` with
    the response in the LLaDA SFT layout. At each ``t`` every response token is masked with
    probability t (seeded); at each masked position of the answer *body* (before the first end
    token) we record p(gold) and the distance to the nearest unmasked token (prompt counts as
    visible), capped at ``max_distance``. Columns ``t, distance, gold_prob``.
    """
    gen = torch.Generator().manual_seed(seed)
    ends = set(model.end_ids)
    rows = []
    for t in levels:
        ids_list, bodies, masks = [], [], []
        for prompt, response in pairs:
            body = next((i for i, tok in enumerate(response) if tok in ends), len(response))
            masked = torch.rand(len(response), generator=gen) < t
            noisy = [model.mask_id if m else tok for tok, m in zip(response, masked.tolist())]
            ids_list.append(list(prompt) + noisy)
            bodies.append(body)
            masks.append(masked)
        ids, attn = model.batch(ids_list)
        probs = torch.softmax(model.logits(ids, attn).float(), dim=-1)
        for b, (prompt, response) in enumerate(pairs):
            R = len(response)
            masked = masks[b]
            visible = [-1] + [i for i in range(R) if not masked[i]]  # -1: the prompt
            region = probs[b, -R:]
            for i in range(bodies[b]):
                if not masked[i]:
                    continue
                dist = min(abs(i - j) for j in visible)
                rows.append(
                    {"t": float(t), "distance": min(dist, max_distance), "gold_prob": float(region[i, response[i]])}
                )
    return pd.DataFrame(rows, columns=["t", "distance", "gold_prob"])


@torch.no_grad()
def continuous_gold_probability(
    model: families.EmbeddingDiffusionLM,
    ids: torch.Tensor,
    attn: torch.Tensor,
    resp: torch.Tensor,
    body: torch.Tensor,
    levels: Sequence[float],
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """The continuous denoiser's gold-token probability at the answer-body positions from z_t,
    for each t (D1, notebook 02): the same axis as the masked model's curve, read from x_0 logits.
    ``body`` marks the answer tokens inside ``resp``. Columns ``t, gold_prob`` (one row per t: mean)."""
    gen = torch.Generator().manual_seed(seed)
    pos = left_padded_positions(attn)
    rows = []
    for t in levels:
        tt = torch.full((ids.shape[0],), float(t))
        z = model.noisy(ids, resp, tt, gen)
        logits = model(z, tt, ~resp.bool(), attn, pos, select=body.bool()).float()
        p = torch.softmax(logits, -1).gather(1, ids[body.bool()][:, None])[:, 0]
        rows.append({"t": float(t), "gold_prob": float(p.mean()), "n": int(p.numel())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- D2


def d2_tractability(
    x0: torch.Tensor, embedding: torch.Tensor, levels: Sequence[float], *, n_steps: int = 100, seed: int = 0
) -> pd.DataFrame:
    """Sampling x_t at noise level t: closed form vs running the chain (D2, notebook 02).

    For each process and t, ``closed_form_steps`` is 1 (one draw per token, any t) and
    ``chain_steps`` is round(t n) (steps of the Markov chain to reach t). ``closed_form_stat`` /
    ``chain_stat`` is the share of corrupted tokens (mask, uniform) or the mean squared distance
    to the clean embedding (Gaussian) in each sample: equal up to sampling noise when the closed
    form is right. The autoregressive family has no forward process: its rows say so
    (``closed_form_steps`` NaN).
    """
    gen = torch.Generator().manual_seed(seed)
    E = embedding.float()
    V = E.shape[0]
    mask_id = V
    e0 = E[x0]
    rows = []
    sched = corruption.GaussianSchedule("cosine")
    for t in levels:
        k = int(round(float(t) * n_steps))
        for process in ("mask", "uniform", "gaussian"):
            if process == "mask":
                cf = corruption.mask_closed_form(x0, t, mask_id, gen)
                ch = corruption.mask_chain(x0, n_steps, mask_id, gen)[k]
                stat = lambda s: float((s == mask_id).float().mean())  # noqa: E731
            elif process == "uniform":
                cf = corruption.uniform_closed_form(x0, t, V, gen)
                ch = corruption.uniform_chain(x0, n_steps, V, gen)[k]
                stat = lambda s: float((s != x0).float().mean())  # noqa: E731
            else:
                cf = corruption.gaussian_closed_form(x0, t, E, gen, sched)
                ch = corruption.gaussian_chain(x0, n_steps, E, gen, sched)[k]
                stat = lambda s: float((s - e0).pow(2).sum(-1).mean())  # noqa: E731
            rows.append(
                {
                    "family": "continuous" if process == "gaussian" else "masked" if process == "mask" else "uniform",
                    "process": process,
                    "t": float(t),
                    "closed_form_steps": 1,
                    "chain_steps": k,
                    "closed_form_stat": stat(cf),
                    "chain_stat": stat(ch),
                }
            )
        rows.append(
            {
                "family": "autoregressive",
                "process": "none",
                "t": float(t),
                "closed_form_steps": float("nan"),
                "chain_steps": float("nan"),
                "closed_form_stat": float("nan"),
                "chain_stat": float("nan"),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- D3


def changes_per_position(states: torch.Tensor, undecided: int | None = None) -> pd.DataFrame:
    """How many times each position changes value along a reverse trajectory (D3, notebook 02).

    ``states`` (S, B, L): the sequence after each sampler step (token ids; ``undecided`` marks a
    position without a value yet, e.g. the mask id). ``changes`` counts every step where the
    value differs from the previous step, *including* the first decision (undecided -> token);
    ``revisions`` counts only changes of an already decided value. Masked and autoregressive
    sampling: 1 change, 0 revisions per position; a sampler that refines: more.
    Columns ``row, position, changes, revisions``.
    """
    S, B, L = states.shape
    prev, cur = states[:-1], states[1:]
    changed = prev != cur
    decided_before = torch.ones_like(prev, dtype=torch.bool) if undecided is None else prev != undecided
    first = states[0] != undecided if undecided is not None else torch.zeros_like(states[0], dtype=torch.bool)
    changes = changed.sum(0) + first.long()
    revisions = (changed & decided_before).sum(0)
    rows = [
        {"row": b, "position": i, "changes": int(changes[b, i]), "revisions": int(revisions[b, i])}
        for b in range(B)
        for i in range(L)
    ]
    return pd.DataFrame(rows, columns=["row", "position", "changes", "revisions"])


def commit_trajectory(final: torch.Tensor, commit_step: torch.Tensor, steps: int, undecided: int) -> torch.Tensor:
    """States (steps + 1, B, L) of a sampler that writes ``final[b, i]`` at ``commit_step[b, i]``
    (1-based) and never touches it again (LLaDA's low-confidence remasking; AR with step = i + 1)."""
    s = torch.arange(steps + 1)[:, None, None]
    return torch.where(s >= commit_step[None], final[None], torch.full_like(final[None], undecided))


def out_of_order_share(commit_step: torch.Tensor) -> float:
    """Share of positions committed strictly before some position to their left (0 for
    left-to-right decoding; D3 tells masked refinement from autoregression)."""
    left_max = torch.cummax(commit_step, dim=1).values
    earlier = torch.zeros_like(commit_step, dtype=torch.bool)
    earlier[:, 1:] = commit_step[:, 1:] < left_max[:, :-1]
    return float(earlier.float().mean())


# --------------------------------------------------------------------------------------- L1


def on_token_lattice(distances: torch.Tensor, spacing: float, tol: float = 1e-3) -> torch.Tensor:
    """True where a state lies on the token lattice: its distance to the nearest embedding is at
    most ``tol`` times ``spacing`` (:func:`embedding_spacing`) (L1)."""
    return distances <= tol * spacing


def lattice_share(distances: torch.Tensor, embedding: torch.Tensor, tol: float = 1e-3) -> float:
    """Share of positions whose state lies on the token lattice (:func:`on_token_lattice` with the
    spacing of ``embedding``; L1). A discrete state (token or mask) is on it by definition: pass zeros."""
    return float(on_token_lattice(distances, embedding_spacing(embedding), tol).float().mean())


def embedding_spacing(embedding: torch.Tensor, chunk_size: int = 1024) -> float:
    """Median distance from each embedding row to its nearest other row (rows in chunks of
    ``chunk_size``, so a large vocabulary never needs its full V x V distance matrix)."""
    E = embedding.float()
    sq = E.pow(2).sum(-1)
    nearest = []
    for start in range(0, E.shape[0], chunk_size):
        d2 = (sq[start : start + chunk_size, None] - 2 * E[start : start + chunk_size] @ E.T + sq[None]).clamp_min(0)
        rows = torch.arange(d2.shape[0])
        d2[rows, rows + start] = float("inf")
        nearest.append(d2.min(dim=1).values)
    return float(torch.cat(nearest).sqrt().median())


def relative_rounding_error(distances: torch.Tensor, embedding: torch.Tensor) -> float:
    """Mean distance from the final continuous state to its rounded token, in units of the median
    nearest-neighbour spacing of the embeddings (0 = already on a token; 0.5 = half-way)."""
    return float(distances.float().mean() / embedding_spacing(embedding))


# ------------------------------------------------------------------- sampling on the corpus


#: Where the WordNet autoregressive / continuous models are shipped.
WORDNET_FAMILY_DIRS = {f: paths.FAMILY_MODELS / f"wordnet-{f}" for f in ("autoregressive", "continuous")}


def load_wordnet_families() -> dict:
    """The shipped WordNet autoregressive and continuous models (manifest checked; notebook 02)."""
    out = {}
    for family, directory in WORDNET_FAMILY_DIRS.items():
        fix = (
            f"train and ship it with `python -m dlmpaper.train --family {family} --out runs/wordnet-{family}` "
            f"then `--export {directory.relative_to(paths.ROOT)}` (or restore the folder from git)"
        )
        out[family] = families.load_family_model(directory, fix=fix)[1]
    return out


@dataclass
class HeldoutBatch:
    """Held-out WordNet pairs in the SFT layout, as id lists (``pairs``: prompt ids, response ids)
    and as one left-padded batch (``ids, attn, resp``; ``body`` marks the answer tokens)."""

    pairs: list[tuple[list[int], list[int]]]
    ids: torch.Tensor
    attn: torch.Tensor
    resp: torch.Tensor
    body: torch.Tensor


def heldout_batch(tokenizer, n: int = 32, response_length: int = 64, task: str = "tell") -> HeldoutBatch:
    """The first ``n`` held-out pairs of ``task`` (``corpus.load_split("heldout")``), encoded as in
    training (``embedded.encode_pairs`` / ``make_batch``) with a response region of ``response_length``."""
    from dlmpaper.corpora import wordnet as corpus
    from dlmpaper.lm.embedded import encode_pairs, make_batch

    rows = [r for r in corpus.load_split("heldout") if r["task"] == task][:n]
    data = encode_pairs(tokenizer, rows, response_length)
    ids, attn, resp = make_batch(data, list(range(len(rows))), tokenizer, response_length)
    R = response_length
    pairs = [(data.prompts[i], ids[i, -R:].tolist()) for i in range(len(rows))]
    body = torch.zeros_like(resp, dtype=torch.bool)
    for i, b in enumerate(data.bodies):
        body[i, ids.shape[1] - R : ids.shape[1] - R + len(b)] = True
    return HeldoutBatch(pairs, ids, attn, resp, body)


@dataclass
class SamplerTrace:
    """One family's reverse process on the same prompts (D3, L1): ``states`` (S + 1, B, G) the
    generated region after each forward pass (``undecided`` where no value yet; S + 1 states
    starting from the empty one), ``nfe`` forward passes, ``on_lattice`` (S, B, G) True where the
    state after each pass is a token (or the mask) and not a point between tokens,
    ``rounding`` (B, G) the final distance to the nearest token in spacing units (continuous
    only; 0 otherwise), ``commit_step`` (B, G) or None, ``texts`` the decoded answers."""

    family: str
    states: torch.Tensor
    undecided: int
    nfe: int
    on_lattice: torch.Tensor
    rounding: torch.Tensor
    commit_step: torch.Tensor | None
    texts: list[str]


@torch.no_grad()
def sample_families(
    masked_model: MaskedDiffusionLM,
    family_models: dict,
    prompts: Sequence[str],
    *,
    gen_length: int = 64,
    tokens_per_step: int = 2,
    seed: int = 0,
) -> dict[str, SamplerTrace]:
    """Run every family's sampler on the same chat prompts (notebook 02, D3 and L1).

    Masked: ``sampling.generate`` (LLaDA low-confidence remasking, one block, ``tokens_per_step``
    per pass); continuous: :func:`families.continuous_generate` with the same number of passes;
    autoregressive: greedy, one pass per token. ``masked_model`` is a ``DiffusionLM`` and lends
    its tokenizer (all families share it).
    """
    from dlmpaper.core.sampling import answer_tokens, generate

    G, steps = gen_length, gen_length // tokens_per_step
    undecided = -1
    out: dict[str, SamplerTrace] = {}
    res = generate(
        masked_model,
        list(prompts),
        gen_length=G,
        block_length=G,
        tokens_per_step=tokens_per_step,
        seed=seed,
        record=False,
        progress=False,
    )
    commit = res.commit_step.long() + 1
    states = commit_trajectory(res.tokens, commit, steps, undecided)
    out["masked"] = SamplerTrace(
        "masked",
        states,
        undecided,
        steps,
        torch.ones_like(states[1:], dtype=torch.bool),
        torch.zeros(res.tokens.shape),
        commit,
        list(res.texts),
    )
    ids_list = [masked_model.encode_chat(p) for p in prompts]
    ids, attn = masked_model.batch(ids_list)

    def decode(row):
        return masked_model.decode(answer_tokens(row.tolist(), masked_model.end_ids), skip_special_tokens=True)

    if "autoregressive" in family_models:
        toks = families.ar_generate(family_models["autoregressive"], ids, attn, G)
        commit = torch.arange(1, G + 1)[None].expand_as(toks)
        states = commit_trajectory(toks, commit, G, undecided)
        out["autoregressive"] = SamplerTrace(
            "autoregressive",
            states,
            undecided,
            G,
            torch.ones_like(states[1:], dtype=torch.bool),
            torch.zeros(toks.shape),
            commit,
            [decode(r) for r in toks],
        )
    if "continuous" in family_models:
        model = family_models["continuous"]
        B, P = ids.shape
        full = torch.cat([ids, torch.zeros(B, G, dtype=torch.long)], dim=1)
        full_attn = torch.cat([attn, torch.ones(B, G, dtype=attn.dtype)], dim=1)
        noisy = torch.zeros_like(full, dtype=torch.bool)
        noisy[:, P:] = True
        pos = left_padded_positions(full_attn)
        trace = families.continuous_generate(
            model, full, noisy, full_attn, pos, steps, torch.Generator().manual_seed(seed)
        )
        E = model.diffusion_embeddings()
        spacing = embedding_spacing(E)
        region = trace.step_tokens[:, :, P:]
        states = torch.cat([torch.full_like(region[:1], undecided), region])
        on = on_token_lattice(trace.step_snap_distance[:, :, P:], spacing)
        out["continuous"] = SamplerTrace(
            "continuous",
            states,
            undecided,
            steps,
            on,
            trace.final_rounding_distance[:, P:] / spacing,
            None,
            [decode(r) for r in trace.tokens[:, P:]],
        )
    return out


def trace_summary(traces: dict[str, SamplerTrace]) -> pd.DataFrame:
    """Per family (D3, L1): forward passes, mean changes and revisions per position, share of
    out-of-order commits, share of intermediate states (whole generated regions) on the token
    lattice, share of positions on it, and the final rounding error (spacing units)."""
    rows = []
    for fam, tr in traces.items():
        ch = changes_per_position(tr.states, undecided=tr.undecided)
        inter = tr.on_lattice[:-1] if tr.on_lattice.shape[0] > 1 else tr.on_lattice
        rows.append(
            {
                "family": fam,
                "nfe": tr.nfe,
                "changes": float(ch["changes"].mean()),
                "revisions": float(ch["revisions"].mean()),
                "max_changes": int(ch["changes"].max()),
                "out_of_order": out_of_order_share(tr.commit_step) if tr.commit_step is not None else float("nan"),
                "states_on_lattice": float(inter.all(dim=-1).float().mean()),
                "positions_on_lattice": float(inter.float().mean()),
                "final_rounding": float(tr.rounding.float().mean()),
            }
        )
    return pd.DataFrame(rows)


def per_pass_tables(traces: dict[str, SamplerTrace]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tidy tables over sampling progress (pass / passes), per family: ``changed`` (share of
    positions whose value changes at that pass, first decisions included; D3) and ``on_lattice``
    (share of positions whose state after that pass is a token or the mask; L1)."""
    changed, lattice = [], []
    for fam, tr in traces.items():
        diff = (tr.states[1:] != tr.states[:-1]).float().mean(dim=(1, 2))
        on = tr.on_lattice.float().mean(dim=(1, 2))
        for s in range(tr.nfe):
            progress = (s + 1) / tr.nfe
            changed.append({"family": fam, "progress": progress, "changed": float(diff[s])})
            lattice.append({"family": fam, "progress": progress, "on_lattice": float(on[s])})
    return pd.DataFrame(changed), pd.DataFrame(lattice)


# --------------------------------------------------------------------------------------- L2


def invalid_rate(lang: ToyLanguage, samples: np.ndarray) -> tuple[float, float, float]:
    """(rate, 95% Wilson low, high) of samples outside ``lang``'s support (L2)."""
    bad = int((~lang.valid_mask(np.asarray(samples))).sum())
    low, high = wilson(bad, len(samples))
    return bad / len(samples), low, high


@torch.no_grad()
def l2_invalid_rates(
    lang: ToyLanguage, models: dict, *, n_samples: int = 2000, seed: int = 0, marginal_fn: Callable | None = None
) -> pd.DataFrame:
    """Invalid-sequence rate of each family's sampler against the number of forward passes
    (NFE, matched compute) on toy language ``lang`` (L2, notebook 02).

    - masked: parallel decoding with the trained marginals (``marginal_fn``), k tokens per step,
      NFE = ceil(L / k), random order (trap's simulation);
    - autoregressive: ancestral sampling, NFE = L (one pass per token, temperature 1);
    - continuous: DDIM with S steps, NFE = S in 1 .. L, 2 L, 4 L.

    ``models``: ``{"autoregressive": model, "continuous": model}`` (either may be missing).
    Columns ``language, family, nfe, n_samples, invalid, ci_low, ci_high``.
    """
    L = lang.length
    rows = []
    if marginal_fn is not None:
        ks = sorted({math.ceil(L / nfe) for nfe in range(1, L + 1)})  # one k per distinct NFE
        table = invalid_rate_by_tokens_per_step(
            lang,
            ks,
            order="random",
            n_samples=n_samples,
            seed=seed,
            marginal_fn=marginal_fn,
            exact=False,
            marginals_label="trained",
        )
        for r in table.itertuples(index=False):
            rows.append(
                {
                    "family": "masked",
                    "nfe": int(r.n_steps),
                    "invalid": r.invalid_sim,
                    "ci_low": r.sim_ci_low,
                    "ci_high": r.sim_ci_high,
                }
            )
    gen = torch.Generator().manual_seed(seed)
    if "autoregressive" in models:
        toks = families.ar_generate(
            models["autoregressive"],
            torch.full((n_samples, 1), lang.mask_id),
            torch.ones(n_samples, 1, dtype=torch.long),
            L,
            gen,
            temperature=1.0,
        )
        rate, low, high = invalid_rate(lang, toks.numpy())
        rows.append({"family": "autoregressive", "nfe": L, "invalid": rate, "ci_low": low, "ci_high": high})
    if "continuous" in models:
        pos = torch.arange(L)[None].expand(n_samples, -1)
        ones = torch.ones(n_samples, L, dtype=torch.long)
        for S in [*range(1, L + 1), 2 * L, 4 * L]:
            trace = families.continuous_generate(
                models["continuous"], torch.zeros_like(ones), ones.bool(), ones, pos, S, gen
            )
            rate, low, high = invalid_rate(lang, trace.tokens.numpy())
            rows.append({"family": "continuous", "nfe": S, "invalid": rate, "ci_low": low, "ci_high": high})
    out = pd.DataFrame(rows, columns=["family", "nfe", "invalid", "ci_low", "ci_high"])
    out.insert(0, "language", lang.name)
    out.insert(3, "n_samples", n_samples)
    return out.sort_values(["family", "nfe"], kind="stable").reset_index(drop=True)


def l2_at_budget(l2: pd.DataFrame, toy_lengths: dict[str, int]) -> pd.DataFrame:
    """Per (language, family) the row of :func:`l2_invalid_rates` that L2's rule reads: the largest
    NFE <= ceil(L / 2) (autoregressive: NFE = L, the fewest passes it can use)."""
    picked = []
    for (lang, fam), sub in l2.groupby(["language", "family"], sort=False):
        L = toy_lengths[lang]
        sub = sub[sub["nfe"] <= (L if fam == "autoregressive" else math.ceil(L / 2))]
        if len(sub):
            picked.append(sub.sort_values("nfe").iloc[-1])
    return pd.DataFrame(picked).reset_index(drop=True)


# ------------------------------------------------------------------------------ the matrix


def property_summary(
    paths_df: pd.DataFrame,
    d2: pd.DataFrame,
    traces: pd.DataFrame,
    l2: pd.DataFrame,
    toy_lengths: dict[str, int],
    t_d2: float = 0.5,
) -> pd.DataFrame:
    """One measured number per (family, property), as :data:`RULES` reads them (notebook 02).

    ``paths_df``: :func:`d1_single_token_paths`; ``d2``: :func:`d2_tractability`; ``traces``:
    :func:`trace_summary`; ``l2``: :func:`l2_invalid_rates` rows of every toy language;
    ``toy_lengths``: language -> L. Columns ``family, property, value, extra, measure``.
    """
    rows = []
    fall = paths_df.groupby("process")["fall_steps"].median()
    at = d2[np.isclose(d2["t"], t_d2)].set_index("process")
    for fam, process in (("masked", "mask"), ("continuous", "gaussian"), ("autoregressive", None)):
        rows.append(
            {
                "family": fam,
                "property": "D1",
                "value": float(fall[process]) if process else float("nan"),
                "measure": "median fall steps" if process else "no forward process",
            }
        )
        if process:
            r = at.loc[process]
            agree = abs(r["closed_form_stat"] - r["chain_stat"]) <= max(0.02, 0.1 * abs(r["chain_stat"]))
            steps = 1.0 if agree else float(r["chain_steps"])
            rows.append({"family": fam, "property": "D2", "value": steps, "measure": f"steps to sample x_{t_d2:g}"})
        else:
            rows.append({"family": fam, "property": "D2", "value": float("nan"), "measure": "no forward process"})
    for r in traces.itertuples(index=False):
        rows.append(
            {
                "family": r.family,
                "property": "D3",
                "value": r.revisions,
                "extra": r.out_of_order,
                "measure": "revisions per position",
            }
        )
        rows.append(
            {
                "family": r.family,
                "property": "L1",
                "value": r.states_on_lattice,
                "measure": "states that are token sequences",
            }
        )
    for fam, part in l2_at_budget(l2, toy_lengths).groupby("family", sort=False):
        rows.append(
            {
                "family": fam,
                "property": "L2",
                "value": float(part["invalid"].mean()),
                "measure": "invalid rate at NFE ceil(L/2) (AR: L)",
            }
        )
    out = pd.DataFrame(rows, columns=["family", "property", "value", "extra", "measure"])
    return out


def judge(value: float, yes_if: Callable[[float], bool], no_if: Callable[[float], bool]) -> str:
    """``"yes"`` / ``"no"`` / ``"partial"`` from a measured number and two stated thresholds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if yes_if(value):
        return "yes"
    if no_if(value):
        return "no"
    return "partial"


#: Measured family -> the paper's family row (the masked model stands for the discrete family).
PAPER_ROW = {"continuous": "continuous", "masked": "discrete", "autoregressive": "autoregressive"}

#: The rule that turns each property's measurement into yes / partial / no (notebook 02).
RULES = {
    "D1": "median number of steps of a 100-step forward chain over which a token's gold posterior falls "
    "from 0.9 to 0.1: yes >= 3 (resolved as gradual), partial 2, no <= 1 (a jump); no forward process: no",
    "D2": "forward steps the cheapest exact sampler of x_0.5 needs (closed form: 1, if it matches the chain): "
    "yes = 1, partial < 10, no >= 10; no forward process: no",
    "D3": "mean revisions of a decided token per position r, share of out-of-order commits o: "
    "yes r >= 0.1; partial r < 0.1 and o > 0.01; no otherwise",
    "L1": "share of intermediate states that are token sequences s: yes >= 0.99, no <= 0.01, partial between",
    "L2": "mean invalid rate on the toy languages at NFE = ceil(L/2) (autoregressive: NFE = L, its minimum) v: "
    "yes <= 0.05, no >= 0.20, partial between",
}


def judge_property(prop: str, value: float, extra: float | None = None) -> str:
    """The yes / partial / no of :data:`RULES` for one measured ``value`` (D3: ``extra`` = o)."""
    if value is None or math.isnan(value):
        return "no" if prop in ("D1", "D2") else "n/a"
    if prop == "D1":
        return judge(value, lambda v: v >= 3, lambda v: v <= 1)
    if prop == "D2":
        return judge(value, lambda v: v <= 1, lambda v: v >= 10)
    if prop == "D3":
        if value >= 0.1:
            return "yes"
        return "partial" if (extra or 0.0) > 0.01 else "no"
    if prop == "L1":
        return judge(value, lambda v: v >= 0.99, lambda v: v <= 0.01)
    if prop == "L2":
        return judge(value, lambda v: v <= 0.05, lambda v: v >= 0.20)
    raise ValueError(f"unknown property {prop!r}; use one of {', '.join(RULES)}")


def measured_matrix(summary: pd.DataFrame) -> pd.DataFrame:
    """Judge every row of ``summary`` (columns ``family, property, value`` and optional ``extra``)
    with :func:`judge_property`; adds ``paper_family`` and ``judgement`` (notebook 02)."""
    out = summary.copy()
    if "extra" not in out:
        out["extra"] = float("nan")
    out["paper_family"] = out["family"].map(PAPER_ROW)
    out["judgement"] = [judge_property(p, v, e) for p, v, e in zip(out["property"], out["value"], out["extra"])]
    return out


def agreement_table(measured: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Measured vs paper judgement per (family, property): ``paper`` is taxonomy's judgement table
    (``family, property, value, source``). Column ``agrees``."""
    ref = paper.rename(columns={"family": "paper_family", "value": "paper", "source": "paper_source"})
    merged = measured.merge(
        ref[["paper_family", "property", "paper", "paper_source"]], on=["paper_family", "property"], how="left"
    )
    merged["agrees"] = merged["judgement"] == merged["paper"]
    return merged
