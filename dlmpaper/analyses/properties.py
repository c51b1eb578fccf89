"""The paper's five properties, each measured by a proxy on models of every family (paper §3).

The paper judges the families qualitatively: D1 smooth corruption, D2 tractable intermediate
states, D3 iterative refinement, L1 discreteness, L2 structural dependency. Each function
below turns one property into a number that our four models produce (masked = the embedded
model; uniform-substitution, continuous and autoregressive = ``dlmpaper.lm.families``, same
corpus, tokenizer and backbone size), and :func:`property_matrix` reads those numbers back into
the paper's yes / partial / no with the default rules of :data:`RULE_GRID`, marking the cells
that hold by construction (:data:`BY_CONSTRUCTION`); :func:`sensitivity_table` applies every
other rule of the grid and counts the verdicts that flip. Notebook ``02_five_properties``;
figures by ``dlmpaper.figures.properties``.

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
from dlmpaper.core.logits import tail_logits
from dlmpaper.core.objectives import left_padded_positions
from dlmpaper.core.stats import bootstrap_mean, bootstrap_statistic
from dlmpaper.core.trap import ToyLanguage, invalid_rate_by_tokens_per_step, wilson
from dlmpaper.corpora.wordnet import load_split as load_split  # re-exported for notebook 02
from dlmpaper.lm import families
from dlmpaper.lm.protocol import MaskedDiffusionLM
from dlmpaper.lm.toymodels import toy_noise_ids

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
    # -||z - sqrt(abar) E_v||^2 / (2 (1 - abar)) without ||z||^2, which is the same for every v
    scale = 1.0 / (1.0 - alpha_bar)
    logits = z @ (E.T * (math.sqrt(alpha_bar) * scale)) - (0.5 * alpha_bar * scale) * E.pow(2).sum(-1)[None]
    return torch.softmax(logits, dim=-1).gather(1, gold[:, None])[:, 0]


def gold_posterior_uniform(x_t: torch.Tensor, gold: torch.Tensor, keep: float, n_noise: int) -> torch.Tensor:
    """P(x_0 = gold | x_t) for uniform substitution under a uniform prior over the ``n_noise`` ids it
    draws from (D1): q(x_t | v) = keep [x_t = v] + (1 - keep) / N sums to 1 over v, so the posterior
    is ``keep + (1 - keep) / N`` while the token is itself and ``(1 - keep) / N`` once it was replaced."""
    return torch.where(x_t == gold, keep + (1 - keep) / n_noise, (1 - keep) / n_noise)


#: log-SNR of each process at t: Gaussian log(abar / (1 - abar)); masking and uniform substitution
#: log(a / (1 - a)) with a = 1 - t the probability that a token is still itself (MDLM's alpha_t).
def log_snr(process: str, t: np.ndarray, schedule: str = "cosine") -> np.ndarray:
    """log-SNR at noise levels ``t`` (D1's second axis); +inf at t = 0, -inf at t = 1."""
    t = np.asarray(t, dtype=np.float64)
    a = corruption.GaussianSchedule(schedule).alpha_bar(torch.as_tensor(t)).numpy() if process == "gaussian" else 1 - t
    with np.errstate(divide="ignore"):
        return np.log(a) - np.log1p(-a)


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
    diffusion space as the model sees it, e.g. ``EmbeddingDiffusionLM.diffusion_embeddings()``), run
    each forward chain for ``n_steps`` steps (``corruption.mask_chain`` / ``uniform_chain`` /
    ``gaussian_chain``) and track the Bayes posterior of the gold token given the token's own state
    x_t (uniform prior): mask: 1 while visible, 1 / V once masked; uniform:
    :func:`gold_posterior_uniform`; Gaussian: :func:`gold_posterior_gaussian`.

    One row per (process, token): ``max_drop`` (largest fall of the posterior in one step),
    ``jump`` (``max_drop`` > 0.5: half the information lost in one step), ``width`` (length of the
    t axis over which the posterior falls from 0.9 to 0.1, :func:`fall_span`; one step, 1/n, for a
    jump), ``width_logsnr`` (the same fall in units of log-SNR, :func:`log_snr`, on t clipped to
    [1/(2n), 1 - 1/(2n)] so that a fall at either end stays finite) and ``fall_steps`` (``width``
    in chain steps). ``width`` and ``width_logsnr`` do not depend on n for a gradual fall and shrink
    as 1/n for a jump: :func:`d1_width_summary` over :func:`d1_paths_by_resolution` shows which.
    """
    E = embedding.float()
    V = E.shape[0]
    gen = torch.Generator().manual_seed(seed)
    gold = torch.randint(V, (n_tokens,), generator=gen)
    sched = corruption.GaussianSchedule(schedule)
    ts = torch.linspace(0, 1, n_steps + 1)
    mask_states = corruption.mask_chain(gold, n_steps, V, gen)
    uniform_states = corruption.uniform_chain(gold, n_steps, V, gen)
    gauss_states = corruption.gaussian_chain(gold, n_steps, E, gen, sched)
    posteriors = {
        "mask": torch.stack([torch.where(s == V, 1.0 / V, 1.0) for s in mask_states]),
        "uniform": torch.stack(
            [gold_posterior_uniform(s, gold, 1.0 - float(t), V) for s, t in zip(uniform_states, ts)]
        ).float(),
        "gaussian": torch.stack(
            [gold_posterior_gaussian(z, gold, E, float(sched.alpha_bar(float(t)))) for z, t in zip(gauss_states, ts)]
        ),
    }
    t_np = ts.numpy().astype(np.float64)
    clipped = np.clip(t_np, 0.5 / n_steps, 1 - 0.5 / n_steps)
    rows = []
    for process, post in posteriors.items():  # post: (n_steps + 1, n_tokens)
        drops = (post[:-1] - post[1:]).max(dim=0).values
        lam = log_snr(process, clipped, schedule)
        for i in range(n_tokens):
            span = fall_span(post[:, i].numpy())
            width = float(t_np[span[1]] - t_np[span[0]]) if span else float("nan")
            rows.append(
                {
                    "process": process,
                    "n_steps": n_steps,
                    "token": int(gold[i]),
                    "max_drop": float(drops[i]),
                    "jump": bool(drops[i] > 0.5),
                    "width": width,
                    "width_logsnr": float(lam[span[0]] - lam[span[1]]) if span else float("nan"),
                    "fall_steps": round(width * n_steps) if span else -1,
                }
            )
    return pd.DataFrame(rows)


def fall_span(posterior: np.ndarray, high: float = 0.9, low: float = 0.1) -> tuple[int, int] | None:
    """Chain indices (start, end) of the posterior's fall: the last index where it is >= ``high`` and
    the first index after it where it is <= ``low``; None if it never falls that far."""
    above = np.flatnonzero(posterior >= high)
    if above.size == 0:
        return None
    start = int(above[-1])
    below = np.flatnonzero(posterior[start:] <= low)
    return None if below.size == 0 else (start, start + int(below[0]))


def transition_width(posterior: np.ndarray, t: np.ndarray, high: float = 0.9, low: float = 0.1) -> float:
    """Length of t between the last time the posterior is >= ``high`` and the first time after it
    that it is <= ``low`` (NaN if it never falls that far). A jump gives one step of t."""
    span = fall_span(posterior, high, low)
    return float("nan") if span is None else float(t[span[1]] - t[span[0]])


def d1_paths_by_resolution(
    embedding: torch.Tensor, resolutions: Sequence[int] = (10, 100, 1000), *, n_tokens: int = 128, seed: int = 0
) -> pd.DataFrame:
    """:func:`d1_single_token_paths` at every chain resolution n in ``resolutions`` (same tokens), one
    table (notebook 02)."""
    return pd.concat(
        [d1_single_token_paths(embedding, n_tokens=n_tokens, n_steps=n, seed=seed) for n in resolutions],
        ignore_index=True,
    )


def d1_width_summary(paths_df: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """D1 per (process, n_steps) of :func:`d1_paths_by_resolution` (notebook 02): the median fall
    width in t and in log-SNR with 95% bootstrap CIs over tokens (``width``, ``width_lo``,
    ``width_hi``, ``logsnr``, ``logsnr_lo``, ``logsnr_hi``) and the share of tokens that lose half
    their posterior in one step (``jump_share`` with its Wilson interval ``jump_lo``, ``jump_hi``).
    A jump shows as a width that shrinks like 1/n and a jump share that stays at 1; a gradual fall
    as a width that settles and a jump share that goes to 0 as n grows."""
    rows = []
    for (process, n), part in paths_df.groupby(["process", "n_steps"], sort=False):
        row = {"process": process, "n_steps": int(n), "n_tokens": len(part)}
        for col, key in (("width", "width"), ("width_logsnr", "logsnr")):
            values = part[col].dropna().to_numpy()[:, None]
            row[key], row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_statistic(
                values, lambda v: float(np.median(v)), n_boot=n_boot, seed=seed
            )
        jumps = int(part["jump"].sum())
        row["jump_share"] = jumps / len(part)
        row["jump_lo"], row["jump_hi"] = wilson(jumps, len(part))
        rows.append(row)
    return pd.DataFrame(rows)


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
        probs = torch.softmax(tail_logits(model, ids, attn, max(len(r) for _, r in pairs)).float(), dim=-1)
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
def denoiser_gold_probability(
    model: families.EmbeddingDiffusionLM | families.UniformDiffusionLM,
    batch: HeldoutBatch,
    levels: Sequence[float],
    *,
    seed: int = 0,
    noise_ids: torch.Tensor | None = None,
) -> pd.DataFrame:
    """A continuous or uniform denoiser's gold-token probability at the answer-body positions of
    ``batch`` from x_t, for each t (D1, notebook 02): the same axis as the masked model's curve,
    read from x_0 logits. Continuous: z_t = ``model.noisy``; uniform: ``families.uniform_corrupt``
    with ``noise_ids``. Columns ``t, gold_prob, n`` (one row per t: the mean over positions)."""
    gen = torch.Generator().manual_seed(seed)
    pos = left_padded_positions(batch.attn)
    body = batch.body.bool()
    uniform = isinstance(model, families.UniformDiffusionLM)
    if uniform and noise_ids is None:
        raise ValueError("a uniform denoiser needs the noise_ids it was trained with")
    rows = []
    for t in levels:
        tt = torch.full((batch.ids.shape[0],), float(t))
        if uniform:
            noisy = families.uniform_corrupt(batch.ids, batch.resp, tt, noise_ids, gen)
            logits = model(noisy, tt, batch.attn, pos, select=body).float()
        else:
            z = model.noisy(batch.ids, batch.resp, tt, gen)
            logits = model(z, tt, ~batch.resp.bool(), batch.attn, pos, select=body).float()
        p = torch.softmax(logits, -1).gather(1, batch.ids[body][:, None])[:, 0]
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
WORDNET_FAMILY_DIRS = {f: paths.FAMILY_MODELS / f"wordnet-{f}" for f in ("autoregressive", "continuous", "uniform")}


def load_wordnet_families() -> dict:
    """The shipped WordNet autoregressive, continuous and uniform models (manifest checked; notebook 02)."""
    out = {}
    for family, directory in WORDNET_FAMILY_DIRS.items():
        fix = (
            f"train and ship it with `python -m dlmpaper.train --family {family} --out runs/wordnet-{family}` "
            f"then `--export {directory.relative_to(paths.ROOT)}` (or restore the folder from git)"
        )
        out[family] = families.load_family_model(directory, fix=fix)[1]
    return out


def wordnet_noise_ids(masked_model: MaskedDiffusionLM) -> torch.Tensor:
    """The noise vocabulary of the WordNet uniform model on the tokenizer it shares with the masked
    model (``dlmpaper.lm.embedded.uniform_noise_ids``, as in its training)."""
    from dlmpaper.lm.embedded import uniform_noise_ids

    return uniform_noise_ids(masked_model.tokenizer)


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
    only; 0 otherwise), ``commit_step`` (B, G) or None, ``texts`` the decoded answers and
    ``answers`` their token ids (up to the first end token)."""

    family: str
    states: torch.Tensor
    undecided: int
    nfe: int
    on_lattice: torch.Tensor
    rounding: torch.Tensor
    commit_step: torch.Tensor | None
    texts: list[str]
    answers: list[list[int]]


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
    per pass); continuous: :func:`families.continuous_generate` and uniform:
    :func:`families.uniform_generate` with the same number of passes (the uniform state counts as
    undecided where it is still noise); autoregressive: greedy, one pass per token.
    ``masked_model`` is a ``DiffusionLM`` and lends its tokenizer (all families share it).
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
    ends = masked_model.end_ids

    def answers(tokens: torch.Tensor) -> list[list[int]]:
        return [answer_tokens(row.tolist(), ends) for row in tokens]

    def decode(row):
        return masked_model.decode(answer_tokens(row.tolist(), ends), skip_special_tokens=True)

    def token_trace(family: str, states: torch.Tensor, nfe: int, commit, final: torch.Tensor, texts=None):
        """A sampler whose every state is token ids (or undecided): on the lattice, no rounding."""
        on = torch.ones_like(states[1:], dtype=torch.bool)
        texts = [decode(r) for r in final] if texts is None else list(texts)
        return SamplerTrace(family, states, undecided, nfe, on, torch.zeros(final.shape), commit, texts, answers(final))

    out["masked"] = token_trace("masked", states, steps, commit, res.tokens, res.texts)
    ids_list = [masked_model.encode_chat(p) for p in prompts]
    ids, attn = masked_model.batch(ids_list)

    if "autoregressive" in family_models:
        toks = families.ar_generate(family_models["autoregressive"], ids, attn, G)
        commit = torch.arange(1, G + 1)[None].expand_as(toks)
        states = commit_trajectory(toks, commit, G, undecided)
        out["autoregressive"] = token_trace("autoregressive", states, G, commit, toks)
    B, P = ids.shape
    full = torch.cat([ids, torch.zeros(B, G, dtype=torch.long)], dim=1)
    full_attn = torch.cat([attn, torch.ones(B, G, dtype=attn.dtype)], dim=1)
    noisy = torch.zeros_like(full, dtype=torch.bool)
    noisy[:, P:] = True
    pos = left_padded_positions(full_attn)
    if "uniform" in family_models:
        noise_ids = wordnet_noise_ids(masked_model)
        trace = families.uniform_generate(
            family_models["uniform"], full, noisy, full_attn, pos, steps, noise_ids, torch.Generator().manual_seed(seed)
        )
        region = trace.step_tokens[:, :, P:]
        decided = torch.where(trace.step_decided[:, :, P:], region, torch.full_like(region, undecided))
        states = torch.cat([torch.full_like(region[:1], undecided), decided])
        out["uniform"] = token_trace("uniform", states, steps, None, trace.tokens[:, P:])
    if "continuous" in family_models:
        model = family_models["continuous"]
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
            answers(trace.tokens[:, P:]),
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


def d3_revisions_and_quality(
    traces: dict[str, SamplerTrace],
    judge_model,
    prompt_ids: Sequence[Sequence[int]],
    end_id: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """D3 with the quality of what was refined next to it (notebook 02): per family the mean number
    of revisions per position (changes of a value after it was first set;
    :func:`changes_per_position`) with a 95% bootstrap CI over prompts, and the log-likelihood per
    token of its answers under the autoregressive judge (``judge_model``, the WordNet
    autoregressive family model; ``analyses.remedies_lm.judge_log_likelihood``) with its CI, so that
    revisions of a sampler whose answers the judge finds unlikely are not read as refinement. The
    judge scores the autoregressive family's own greedy answers too: that row is a reference, not a
    fair comparison. Columns ``family, revisions, revisions_lo, revisions_hi, judge_loglik,
    judge_lo, judge_hi``."""
    from dlmpaper.analyses.remedies_lm import judge_log_likelihood

    rows = []
    for fam, tr in traces.items():
        per_prompt = changes_per_position(tr.states, tr.undecided).groupby("row")["revisions"].mean().to_numpy()
        rev = bootstrap_mean(per_prompt, n_boot=n_boot, seed=seed)
        scores = judge_log_likelihood(judge_model, prompt_ids, tr.answers, end_id)[:, 1]
        ll = bootstrap_mean(scores, n_boot=n_boot, seed=seed)
        rows.append(dict(zip(["family", "revisions", "revisions_lo", "revisions_hi"], (fam, *rev))))
        rows[-1].update(dict(zip(["judge_loglik", "judge_lo", "judge_hi"], ll)))
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
    - continuous: DDIM with S steps, NFE = S in 1 .. L, 2 L, 4 L;
    - uniform: ancestral D3PM-uniform sampling with S steps, the same NFE grid.

    ``models``: ``{"autoregressive": model, "continuous": model, "uniform": model}`` (any may be missing).
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
    pos = torch.arange(L)[None].expand(n_samples, -1)
    ones = torch.ones(n_samples, L, dtype=torch.long)
    for family in ("continuous", "uniform"):
        if family not in models:
            continue
        for S in [*range(1, L + 1), 2 * L, 4 * L]:
            if family == "continuous":
                trace = families.continuous_generate(
                    models[family], torch.zeros_like(ones), ones.bool(), ones, pos, S, gen
                )
            else:
                noise_ids = toy_noise_ids(models[family])
                trace = families.uniform_generate(
                    models[family], torch.zeros_like(ones), ones.bool(), ones, pos, S, noise_ids, gen
                )
            rate, low, high = invalid_rate(lang, trace.tokens.numpy())
            rows.append({"family": family, "nfe": S, "invalid": rate, "ci_low": low, "ci_high": high})
    out = pd.DataFrame(rows, columns=["family", "nfe", "invalid", "ci_low", "ci_high"])
    out.insert(0, "language", lang.name)
    out.insert(3, "n_samples", n_samples)
    return out.sort_values(["family", "nfe"], kind="stable").reset_index(drop=True)


def l2_budget_curve(l2: pd.DataFrame, toy_lengths: dict[str, int]) -> pd.DataFrame:
    """Invalid rate per (language, family) at every pass budget n = 1 .. 4 L (L2, notebook 02): the
    rate of the family's best setting that fits the budget (the largest NFE <= n it was run at).
    Budgets below a family's fewest passes (autoregressive: L) have no row. Columns ``language,
    family, budget, relative_budget`` (n / L), ``invalid``."""
    rows = []
    for (lang, fam), sub in l2.groupby(["language", "family"], sort=False):
        L = toy_lengths[lang]
        sub = sub.sort_values("nfe")
        for n in range(1, 4 * L + 1):
            fits = sub[sub["nfe"] <= n]
            if len(fits):
                rows.append(
                    {
                        "language": lang,
                        "family": fam,
                        "budget": n,
                        "relative_budget": n / L,
                        "invalid": float(fits["invalid"].iloc[-1]),
                    }
                )
    return pd.DataFrame(rows, columns=["language", "family", "budget", "relative_budget", "invalid"])


def l2_area(curve: pd.DataFrame, max_relative_budget: float = 1.0) -> pd.DataFrame:
    """Mean invalid rate over the budgets n <= ``max_relative_budget`` L at which each family can
    decode (:func:`l2_budget_curve`), per (language, family), and its mean over languages (L2's
    whole-curve measure: low only if the family respects the dependencies at every budget it can
    run, not at one chosen budget). Columns ``language, family, area`` (``language`` "mean" last)."""
    part = curve[curve["relative_budget"] <= max_relative_budget + 1e-9]
    per = part.groupby(["language", "family"], sort=False, as_index=False)["invalid"].mean()
    per = per.rename(columns={"invalid": "area"})
    mean = per.groupby("family", sort=False, as_index=False)["area"].mean().assign(language="mean")
    return pd.concat([per, mean[["language", "family", "area"]]], ignore_index=True)


# ------------------------------------------------------------------------------ the matrix

PROPERTIES = ("D1", "D2", "D3", "L1", "L2")
#: Our four models, in matrix order, and the paper's family row each stands for.
MEASURED_FAMILIES = ("masked", "uniform", "continuous", "autoregressive")
PAPER_ROW = {
    "masked": "discrete",
    "uniform": "discrete",
    "continuous": "continuous",
    "autoregressive": "autoregressive",
}

#: Cells whose measured value follows from how the process or sampler is defined: measuring them
#: checks our code, not the paper's claim, so they do not count towards agreement (notebook 02).
BY_CONSTRUCTION = {
    ("masked", "D1"): "a [MASK] replaces the token in one step, so its posterior jumps",
    ("masked", "D2"): "q(x_t | x_0) factorises over tokens in closed form",
    ("uniform", "D2"): "q(x_t | x_0) factorises over tokens in closed form",
    ("continuous", "D2"): "q(z_t | z_0) is Gaussian in closed form",
    ("autoregressive", "D1"): "there is no forward process",
    ("autoregressive", "D2"): "there is no forward process",
    ("masked", "D3"): "the low-confidence sampler never remasks a committed token",
    ("autoregressive", "D3"): "a prefix is never rewritten",
    ("masked", "L1"): "every state is token ids or [MASK]",
    ("uniform", "L1"): "every state is token ids",
    ("autoregressive", "L1"): "every state is token ids",
}


def measurements(
    d1: pd.DataFrame, d2: pd.DataFrame, traces: pd.DataFrame, d3: pd.DataFrame, curve: pd.DataFrame
) -> pd.DataFrame:
    """Every number a rule of :data:`RULE_GRID` may read, per (family, property, setting) (notebook 02).

    ``d1``: :func:`d1_width_summary`; ``d2``: :func:`d2_tractability`; ``traces``:
    :func:`trace_summary`; ``d3``: :func:`d3_revisions_and_quality`; ``curve``:
    :func:`l2_budget_curve` of every toy language. Settings: D1 ``jump n=<n>`` (share of tokens that
    lose half their posterior in one of n steps) and ``fall steps n=<n>`` (median chain steps of the
    0.9 -> 0.1 fall); D2 ``x_<t>`` (forward steps the cheapest exact sampler of x_t needs: 1 when
    the closed form matches the chain); D3 ``revisions`` (``extra``: share of out-of-order commits);
    L1 ``states`` / ``positions`` on the token lattice; L2 ``NFE <= <r> L`` (mean invalid rate
    over the budgets up to r L that the family can run, r = 1/4, 1/2, 1, 4) and ``area`` (= r 1).
    A family without a forward process has NaN for D1 and D2. Columns ``family, property,
    setting, value, extra``."""
    rows = []
    process_of = {"masked": "mask", "uniform": "uniform", "continuous": "gaussian"}
    for fam in MEASURED_FAMILIES:
        process = process_of.get(fam)
        for n in sorted(d1["n_steps"].unique()):
            row = d1[(d1["process"] == process) & (d1["n_steps"] == n)]
            jump = float(row["jump_share"].iloc[0]) if len(row) else float("nan")
            fall = float(round(row["width"].iloc[0] * n)) if len(row) else float("nan")
            rows.append((fam, "D1", f"jump n={n}", jump, float("nan")))
            rows.append((fam, "D1", f"fall steps n={n}", fall, float("nan")))
        for t in sorted(d2["t"].unique()):
            if not 0 < t < 1:
                continue
            r = d2[(d2["process"] == process) & np.isclose(d2["t"], t)] if process else d2.iloc[:0]
            if len(r):
                r = r.iloc[0]
                agree = abs(r["closed_form_stat"] - r["chain_stat"]) <= max(0.02, 0.1 * abs(r["chain_stat"]))
                steps = 1.0 if agree else float(r["chain_steps"])
            else:
                steps = float("nan")
            rows.append((fam, "D2", f"x_{t:g}", steps, float("nan")))
    for r in traces.itertuples(index=False):
        rows.append((r.family, "D3", "revisions", r.revisions, r.out_of_order))
        rows.append((r.family, "L1", "states", r.states_on_lattice, float("nan")))
        rows.append((r.family, "L1", "positions", r.positions_on_lattice, float("nan")))
    for fam, part in curve.groupby("family", sort=False):
        for ratio, label in ((0.25, "NFE <= L/4"), (0.5, "NFE <= L/2"), (1.0, "area"), (4.0, "NFE <= 4 L")):
            area = l2_area(part, ratio)
            mean = area[area["language"] == "mean"]["area"]
            rows.append((fam, "L2", label, float(mean.iloc[0]) if len(mean) else float("nan"), float("nan")))
    out = pd.DataFrame(rows, columns=["family", "property", "setting", "value", "extra"])
    out["value"] = out["value"].astype(float)
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


@dataclass(frozen=True)
class Rule:
    """One way to read a property's measurement as yes / partial / no: the ``setting`` of
    :func:`measurements` it reads and its two thresholds (``low_is_yes``: small values mean yes).
    ``order_counts`` (D3 only): the earlier rule that credited out-of-order commits as partial."""

    property: str
    setting: str
    yes: float
    no: float
    low_is_yes: bool = False
    order_counts: bool = False

    @property
    def missing(self) -> str:
        """The verdict where the family has no such measurement: D1 and D2 without a forward process
        are "no"; elsewhere "n/a"."""
        return "no" if self.property in ("D1", "D2") else "n/a"

    @property
    def name(self) -> str:
        op_yes, op_no = ("<=", ">=") if self.low_is_yes else (">=", "<=")
        extra = ", out-of-order > 0.01 -> partial" if self.order_counts else ""
        return f"{self.setting}: yes {op_yes} {self.yes:g}, no {op_no} {self.no:g}{extra}"

    def __call__(self, value: float, extra: float = float("nan")) -> str:
        if value is None or math.isnan(value):
            return self.missing
        if self.low_is_yes:
            verdict = judge(value, lambda v: v <= self.yes, lambda v: v >= self.no)
        else:
            verdict = judge(value, lambda v: v >= self.yes, lambda v: v <= self.no)
        if self.order_counts and verdict == "no" and not math.isnan(extra) and extra > 0.01:
            return "partial"
        return verdict


def _grid() -> dict[str, list[Rule]]:
    """The stated grid: per property the default rule first, then every alternative reading."""
    d1 = [Rule("D1", "jump n=1000", 0.05, 0.95, low_is_yes=True)]
    d1 += [Rule("D1", f"jump n={n}", c, 1 - c, low_is_yes=True) for n in (10, 100, 1000) for c in (0.05, 0.2)]
    d1 += [Rule("D1", f"fall steps n={n}", 3, 1) for n in (10, 100, 1000)]
    d2 = [Rule("D2", f"x_{t:g}", 1, 10, low_is_yes=True) for t in (0.5, 0.2, 0.8)]
    d3 = [Rule("D3", "revisions", 0.1, 0.01)]
    d3 += [Rule("D3", "revisions", y, n) for y in (0.05, 0.2) for n in (0.005, 0.02)]
    d3 += [Rule("D3", "revisions", 0.1, 0.01, order_counts=True)]
    l1 = [Rule("L1", "states", 0.99, 0.01), Rule("L1", "states", 0.9, 0.1), Rule("L1", "positions", 0.99, 0.01)]
    l2 = [Rule("L2", "area", 0.05, 0.2, low_is_yes=True)]
    l2 += [
        Rule("L2", setting, yes, no, low_is_yes=True)
        for setting in ("NFE <= L/4", "NFE <= L/2", "area", "NFE <= 4 L")
        for yes, no in ((0.05, 0.2), (0.02, 0.1), (0.1, 0.3))
    ]
    return {prop: list(dict.fromkeys(rules)) for prop, rules in zip(PROPERTIES, (d1, d2, d3, l1, l2))}


#: Every rule we consider per property; the first of each list is the default that the matrix uses
#: (notebook 02 prints them all and :func:`sensitivity_table` applies every one).
RULE_GRID: dict[str, list[Rule]] = _grid()
#: The default rule per property, as one line each (printed by notebook 02).
RULES = {prop: rules[0].name for prop, rules in RULE_GRID.items()}


def _verdict(meas: pd.DataFrame, family: str, rule: Rule) -> tuple[str, float]:
    row = meas[(meas["family"] == family) & (meas["property"] == rule.property) & (meas["setting"] == rule.setting)]
    if not len(row):
        return rule.missing, float("nan")
    value, extra = float(row["value"].iloc[0]), float(row["extra"].iloc[0])
    return rule(value, extra), value


def property_matrix(meas: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """The measured matrix under the default rules, next to the paper's (notebook 02): one row per
    (family, property) of :data:`MEASURED_FAMILIES` x the five properties with ``value``,
    ``judgement``, ``status`` (``measured`` or ``by construction``, :data:`BY_CONSTRUCTION`),
    ``paper`` and ``paper_source`` (``paper`` or ``ours``, from ``data/taxonomy.yaml``), ``agrees``
    and ``counted`` (a measured cell whose paper value is the paper's own statement: only those
    count as agreement with the paper)."""
    ref = paper.set_index(["family", "property"])
    rows = []
    for fam in MEASURED_FAMILIES:
        for prop, rules in RULE_GRID.items():
            verdict, value = _verdict(meas, fam, rules[0])
            key = (PAPER_ROW[fam], prop)
            paper_value = str(ref.loc[key, "value"]) if key in ref.index else "n/a"
            source = str(ref.loc[key, "source"]) if key in ref.index else "n/a"
            status = "by construction" if (fam, prop) in BY_CONSTRUCTION else "measured"
            rows.append(
                {
                    "family": fam,
                    "paper_family": PAPER_ROW[fam],
                    "property": prop,
                    "measure": rules[0].setting,
                    "value": value,
                    "judgement": verdict,
                    "status": status,
                    "paper": paper_value,
                    "paper_source": source,
                    "agrees": verdict == paper_value,
                    "counted": status == "measured" and source.startswith("paper"),
                }
            )
    return pd.DataFrame(rows)


def sensitivity_table(meas: pd.DataFrame) -> pd.DataFrame:
    """Every (family, property) verdict under every rule of :data:`RULE_GRID` (notebook 02): columns
    ``property, rule, default, family, value, judgement, flips`` where ``flips`` says the verdict
    differs from the default rule's for that family and property ("n/a", a budget the family cannot
    run at all, is no flip)."""
    rows = []
    for prop, rules in RULE_GRID.items():
        for fam in MEASURED_FAMILIES:
            default = _verdict(meas, fam, rules[0])[0]
            for k, rule in enumerate(rules):
                verdict, value = _verdict(meas, fam, rule)
                rows.append(
                    {
                        "property": prop,
                        "rule": rule.name,
                        "default": k == 0,
                        "family": fam,
                        "value": value,
                        "judgement": verdict,
                        "flips": verdict != default and verdict != "n/a",
                    }
                )
    return pd.DataFrame(rows)


def flip_summary(sens: pd.DataFrame) -> pd.DataFrame:
    """Per (family, property): how many of the non-default rules flip the default verdict, and to
    what (notebook 02's sensitivity count). Columns ``family, property, rules, flips, verdicts``."""
    rows = []
    for (prop, fam), part in sens.groupby(["property", "family"], sort=False):
        alt = part[~part["default"]]
        verdicts = "/".join(sorted(set(part["judgement"])))
        rows.append(
            {"family": fam, "property": prop, "rules": len(alt), "flips": int(alt["flips"].sum()), "verdicts": verdicts}
        )
    return pd.DataFrame(rows)
