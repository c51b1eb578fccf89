"""Forward corruption processes over real token sequences (paper §2: properties D1, D2).

Three processes, each with a closed form q(x_t | x_0) (property D2) and the step-by-step
Markov chain whose marginals equal that closed form:

- **absorbing mask** (D3PM-absorbing, MDLM, MD4, LLaDA, Dream): each token independently
  becomes ``[MASK]`` with probability t (linear schedule alpha_t = 1 - t, as LLaDA/MDLM);
- **uniform substitution** (D3PM-uniform, Austin et al. 2021, arXiv 2107.03006):
  q(x_t | x_0) = alpha_t onehot(x_0) + (1 - alpha_t) / V, with alpha_t = 1 - t;
- **Gaussian on embeddings** (Diffusion-LM, Li et al. 2022, arXiv 2205.14217):
  z_t = sqrt(abar_t) E[x_0] + sqrt(1 - abar_t) eps, with abar_t from a
  :class:`GaussianSchedule` (default cosine; Diffusion-LM's sqrt schedule is available).

Every sampler takes a ``torch.Generator`` (or an int seed) and is deterministic given it.
:func:`corruption_grid` feeds notebook 01's grid figure; :func:`information_retained`
feeds the D1 panel of notebook 02 (how much of the gold token x_t still reveals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch

PROCESSES: tuple[str, ...] = ("mask", "uniform", "gaussian")
SCHEDULES: tuple[str, ...] = ("cosine", "linear", "sqrt")


# --------------------------------------------------------------------------- validation


def _generator(generator: torch.Generator | int) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator or an int seed, got {type(generator).__name__}")


def _check_tokens(x0: torch.Tensor, vocab_size: int | None = None) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a LongTensor of token ids, got {type(x0).__name__}")
    if x0.dtype.is_floating_point or x0.dtype.is_complex or x0.dtype == torch.bool:
        raise TypeError(f"x0 must hold integer token ids, got dtype {x0.dtype}; pass x0.long()")
    if x0.dim() not in (1, 2):
        raise ValueError(f"x0 must have shape (L,) or (B, L), got {tuple(x0.shape)}")
    if x0.numel() and int(x0.min()) < 0:
        raise ValueError("x0 holds negative token ids; token ids must be >= 0")
    if vocab_size is not None and x0.numel() and int(x0.max()) >= vocab_size:
        raise ValueError(f"x0 holds token id {int(x0.max())} >= vocab_size {vocab_size}; pass the model's vocab size")
    return x0.long()


def _check_t(t: float) -> float:
    t = float(t)
    if not 0.0 <= t <= 1.0 or math.isnan(t):
        raise ValueError(f"noise level t must lie in [0, 1], got {t}")
    return t


def _check_steps(n_steps: int) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    return n_steps


def _check_mask_id(x0: torch.Tensor, mask_id: int) -> int:
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or mask_id < 0:
        raise ValueError(f"mask_id must be a non-negative int, got {mask_id!r}")
    if bool((x0 == mask_id).any()):
        raise ValueError(f"x0 already contains mask_id {mask_id}; pass clean token ids (or the right mask id)")
    return mask_id


def _check_vocab(vocab_size: int, vocab_ids: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    """The substitution vocabulary: all of range(vocab_size), or the given subset."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if vocab_ids is None:
        return torch.arange(vocab_size)
    ids = torch.as_tensor(vocab_ids).long().flatten()
    if ids.numel() == 0:
        raise ValueError("vocab_ids is empty; give at least one token id to substitute with")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(f"vocab_ids must lie in [0, vocab_size={vocab_size})")
    if ids.unique().numel() != ids.numel():
        raise ValueError("vocab_ids holds duplicates; each allowed token id once")
    return ids


def _check_embedding(embedding: torch.Tensor) -> torch.Tensor:
    if not isinstance(embedding, torch.Tensor) or embedding.dim() != 2:
        shape = tuple(embedding.shape) if isinstance(embedding, torch.Tensor) else type(embedding).__name__
        raise ValueError(f"embedding must be a (V, d) tensor, got {shape}")
    return embedding.detach().float()


# --------------------------------------------------------------------------- schedules


def linear_alpha(t: float | torch.Tensor) -> torch.Tensor:
    """Discrete-process keep probability alpha_t = 1 - t (linear schedule of LLaDA / MDLM)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError("noise level t must lie in [0, 1]")
    return 1.0 - t


@dataclass(frozen=True)
class GaussianSchedule:
    """Noise schedule abar_t on t in [0, 1] for the Gaussian process (paper §2, D1/D2).

    ``name``:
    - ``"cosine"`` (default): abar_t = f(t)/f(0), f(t) = cos^2((t + s)/(1 + s) pi/2), s = 0.008
      (Nichol & Dhariwal 2021, arXiv 2102.09672). abar_0 = 1, abar_1 ~ 0.
    - ``"linear"``: continuous limit of DDPM's linear betas (1e-4 .. 0.02 over 1000 steps),
      abar_t = exp(-(b0 t + (b1 - b0) t^2 / 2)), b0 = 0.1, b1 = 20 (VP-SDE, Song et al. 2021,
      arXiv 2011.13456). abar_0 = 1, abar_1 = exp(-10.05).
    - ``"sqrt"``: abar_t = 1 - sqrt(t + s), s = 1e-4, clipped at 0 (Diffusion-LM, Li et al. 2022,
      arXiv 2205.14217): noise rises fast at small t; abar_0 = 0.99, so even t = 0 is noisy.

    ``s`` overrides the offset of ``cosine`` / ``sqrt``.
    """

    name: str = "cosine"
    s: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; use one of {', '.join(SCHEDULES)}")

    def alpha_bar(self, t: float | torch.Tensor) -> torch.Tensor:
        """abar_t (float64 tensor, same shape as ``t``), non-increasing in t."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if bool(((t < 0) | (t > 1)).any()) or bool(torch.isnan(t).any()):
            raise ValueError("noise level t must lie in [0, 1]")
        if self.name == "cosine":
            s = 0.008 if self.s is None else self.s
            f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
            return (f(t) / f(torch.zeros_like(t))).clamp(0.0, 1.0)
        if self.name == "linear":
            b0, b1 = 0.1, 20.0
            return torch.exp(-(b0 * t + (b1 - b0) * t**2 / 2))
        s = 1e-4 if self.s is None else self.s
        return (1.0 - torch.sqrt(t + s)).clamp(0.0, 1.0)

    def betas(self, n_steps: int) -> torch.Tensor:
        """Per-step betas of the n-step chain on t_s = s/n: 1 - beta_s = abar(t_s)/abar(t_{s-1}).

        Their product telescopes, so the chain's marginal at step s equals the closed form at t_s.
        A step that starts from abar = 0 gets beta = 1.
        """
        n_steps = _check_steps(n_steps)
        ab = self.alpha_bar(torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64))
        prev, cur = ab[:-1], ab[1:]
        ratio = torch.where(prev > 0, cur / prev.clamp_min(1e-300), torch.zeros_like(prev))
        return (1.0 - ratio).clamp(0.0, 1.0)


def _schedule(schedule: GaussianSchedule | str) -> GaussianSchedule:
    if isinstance(schedule, GaussianSchedule):
        return schedule
    if isinstance(schedule, str):
        return GaussianSchedule(schedule)
    raise TypeError(f"schedule must be a GaussianSchedule or one of {SCHEDULES}, got {type(schedule).__name__}")


# --------------------------------------------------------------------------- absorbing mask


def mask_closed_form(x0: torch.Tensor, t: float, mask_id: int, generator: torch.Generator | int) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) of the absorbing process: each token -> ``mask_id`` w.p. t.

    Linear schedule alpha_t = 1 - t (LLaDA, MDLM). ``x0``: (L,) or (B, L) token ids.
    Used by notebooks 01 and 02.
    """
    x0 = _check_tokens(x0)
    t = _check_t(t)
    mask_id = _check_mask_id(x0, mask_id)
    u = torch.rand(x0.shape, generator=_generator(generator), dtype=torch.float64)
    return torch.where(u < t, torch.full_like(x0, mask_id), x0)


def mask_chain(x0: torch.Tensor, n_steps: int, mask_id: int, generator: torch.Generator | int) -> list[torch.Tensor]:
    """The absorbing Markov chain on t_s = s/n: ``[x_0, x_1, ..., x_n]`` (n + 1 states).

    At step s every still-visible token is masked w.p. (t_s - t_{s-1}) / (1 - t_{s-1}), so the
    marginal of x_s is :func:`mask_closed_form` at t_s, and x_n is all ``[MASK]``.
    """
    x0 = _check_tokens(x0)
    n_steps = _check_steps(n_steps)
    mask_id = _check_mask_id(x0, mask_id)
    gen = _generator(generator)
    states, x = [x0.clone()], x0.clone()
    for s in range(1, n_steps + 1):
        t_prev, t_cur = (s - 1) / n_steps, s / n_steps
        p = (t_cur - t_prev) / (1.0 - t_prev)
        u = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
        x = torch.where((x != mask_id) & (u < p), torch.full_like(x, mask_id), x)
        states.append(x.clone())
    return states


# --------------------------------------------------------------------------- uniform substitution


def _uniform_tokens(shape: torch.Size, ids: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return ids[torch.randint(ids.numel(), shape, generator=gen)]


def uniform_closed_form(
    x0: torch.Tensor,
    t: float,
    vocab_size: int,
    generator: torch.Generator | int,
    vocab_ids: torch.Tensor | Sequence[int] | None = None,
) -> torch.Tensor:
    """Sample x_t ~ alpha_t onehot(x_0) + (1 - alpha_t) Uniform(vocab), alpha_t = 1 - t (D3PM-uniform).

    Each token is kept w.p. alpha_t, else resampled uniformly over the substitution vocabulary
    (possibly to itself). ``vocab_ids`` restricts that vocabulary (e.g. to exclude special
    tokens); every position is still corrupted. Used by notebooks 01 and 02.
    """
    x0 = _check_tokens(x0, vocab_size)
    alpha = 1.0 - _check_t(t)
    ids = _check_vocab(vocab_size, vocab_ids)
    gen = _generator(generator)
    u = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
    r = _uniform_tokens(x0.shape, ids, gen)
    return torch.where(u < alpha, x0, r)


def uniform_chain(
    x0: torch.Tensor,
    n_steps: int,
    vocab_size: int,
    generator: torch.Generator | int,
    vocab_ids: torch.Tensor | Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """The uniform-substitution chain on t_s = s/n: ``[x_0, ..., x_n]``.

    Kernel Q_s: keep x_{s-1} w.p. a_s / a_{s-1} (a = 1 - t), else resample uniformly. The
    uniform distribution is a fixed point of every kernel, so the composition equals
    :func:`uniform_closed_form` at t_s; x_n is uniform over the substitution vocabulary.
    """
    x0 = _check_tokens(x0, vocab_size)
    n_steps = _check_steps(n_steps)
    ids = _check_vocab(vocab_size, vocab_ids)
    gen = _generator(generator)
    states, x = [x0.clone()], x0.clone()
    for s in range(1, n_steps + 1):
        a_prev, a_cur = 1.0 - (s - 1) / n_steps, 1.0 - s / n_steps
        keep = a_cur / a_prev
        u = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
        r = _uniform_tokens(x0.shape, ids, gen)
        x = torch.where(u < keep, x, r)
        states.append(x.clone())
    return states


# --------------------------------------------------------------------------- Gaussian on embeddings


def embed(x0: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """e_0 = E[x_0]: (..., L) token ids -> (..., L, d) float32 embeddings."""
    E = _check_embedding(embedding)
    x0 = _check_tokens(x0, E.shape[0])
    return E[x0]


def standardize_embedding(embedding: torch.Tensor) -> torch.Tensor:
    """Centre and scale E so each dimension has mean 0 and variance 1 over the vocabulary.

    Gaussian corruption assumes data of unit scale (as images in DDPM); a pretrained LM's
    embeddings are often far smaller, which makes every noise level look destructive.
    """
    E = _check_embedding(embedding)
    return (E - E.mean(0)) / E.std(0).clamp_min(1e-8)


def gaussian_closed_form(
    x0: torch.Tensor,
    t: float,
    embedding: torch.Tensor,
    generator: torch.Generator | int,
    schedule: GaussianSchedule | str = "cosine",
) -> torch.Tensor:
    """Sample z_t = sqrt(abar_t) E[x_0] + sqrt(1 - abar_t) eps (Diffusion-LM forward process).

    Returns (..., L, d) float32. ``schedule``: see :class:`GaussianSchedule` (default cosine).
    Used by notebooks 01 and 02.
    """
    t = _check_t(t)
    e0 = embed(x0, embedding)
    ab = float(_schedule(schedule).alpha_bar(t))
    eps = torch.randn(e0.shape, generator=_generator(generator))
    return math.sqrt(ab) * e0 + math.sqrt(1.0 - ab) * eps


def gaussian_chain(
    x0: torch.Tensor,
    n_steps: int,
    embedding: torch.Tensor,
    generator: torch.Generator | int,
    schedule: GaussianSchedule | str = "cosine",
) -> list[torch.Tensor]:
    """The Gaussian chain on t_s = s/n: ``[z_0, ..., z_n]``, z_s = sqrt(1 - beta_s) z_{s-1} + sqrt(beta_s) eps.

    z_0 is the closed form at t = 0 (exactly E[x_0] for the cosine and linear schedules);
    betas from :meth:`GaussianSchedule.betas`, so z_s has the closed-form marginal at t_s.
    """
    n_steps = _check_steps(n_steps)
    sched = _schedule(schedule)
    gen = _generator(generator)
    z = gaussian_closed_form(x0, 0.0, embedding, gen, sched)
    states = [z]
    for beta in sched.betas(n_steps).tolist():
        eps = torch.randn(z.shape, generator=gen)
        z = math.sqrt(1.0 - beta) * z + math.sqrt(beta) * eps
        states.append(z)
    return states


def round_to_tokens(
    z: torch.Tensor, embedding: torch.Tensor, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-embedding rounding (Diffusion-LM): argmin_v ||z - E[v]||_2 per position.

    ``z``: (..., d). Returns ``(token_ids, distances)`` of shape (...): the nearest token and its
    L2 distance. Positions are processed in chunks of ``chunk_size`` (default: as many as keep
    the chunk's distance matrix near 2**24 entries, 64 MB) to bound memory for large vocabularies.
    """
    E = _check_embedding(embedding)
    if not isinstance(z, torch.Tensor) or z.dim() < 1 or z.shape[-1] != E.shape[1]:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must have shape (..., d) with d = {E.shape[1]} (the embedding width), got {shape}")
    if chunk_size is None:
        chunk_size = max(1, 2**24 // E.shape[0])
    flat = z.detach().float().reshape(-1, E.shape[1])
    e_sq = (E * E).sum(1)
    ids, dists = [], []
    for start in range(0, flat.shape[0], chunk_size):
        zc = flat[start : start + chunk_size]
        d2 = (zc * zc).sum(1, keepdim=True) - 2.0 * zc @ E.T + e_sq
        best = d2.argmin(1)
        # recompute the winning distance directly, free of cancellation error
        dists.append((zc - E[best]).norm(dim=1))
        ids.append(best)
    out_shape = z.shape[:-1]
    return torch.cat(ids).reshape(out_shape), torch.cat(dists).reshape(out_shape)


# --------------------------------------------------------------------------- analyses


def corruption_grid(
    x0: torch.Tensor,
    levels: Sequence[float],
    process: str,
    *,
    generator: torch.Generator | int = 0,
    mask_id: int | None = None,
    vocab_size: int | None = None,
    vocab_ids: torch.Tensor | Sequence[int] | None = None,
    embedding: torch.Tensor | None = None,
    schedule: GaussianSchedule | str = "cosine",
) -> pd.DataFrame:
    """One sequence corrupted at several noise levels, as a tidy table (notebook 01's grid figure).

    ``x0``: (L,) token ids. ``process``: ``"mask"`` (needs ``mask_id``), ``"uniform"`` (needs
    ``vocab_size``; optional ``vocab_ids``) or ``"gaussian"`` (needs ``embedding``).
    The levels share their random draws (one uniform / replacement token / eps per position),
    so each level's marginal is the closed form and the rows read as one trajectory
    (a token masked at t stays masked at every larger t).

    Columns: ``process, level, position, token_id, noisy_id, state, is_original, distance``.
    ``state`` describes what x_t shows: ``"masked"``, ``"kept"`` (shows the original token) or
    ``"substituted"`` (shows another token). For Gaussian, ``noisy_id`` is the rounded token and
    ``distance`` its rounding distance (NaN for the discrete processes).
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; use one of {', '.join(PROCESSES)}")
    x0 = _check_tokens(x0)
    if x0.dim() != 1:
        raise ValueError(f"corruption_grid takes one sequence of shape (L,), got {tuple(x0.shape)}")
    levels = [_check_t(t) for t in levels]
    if not levels:
        raise ValueError("levels is empty; give at least one noise level in [0, 1]")
    gen = _generator(generator)
    L = x0.shape[0]
    rows = []
    if process == "mask":
        if mask_id is None:
            raise ValueError("process='mask' needs mask_id")
        mask_id = _check_mask_id(x0, mask_id)
        u = torch.rand(L, generator=gen, dtype=torch.float64)
        for t in levels:
            noisy = torch.where(u < t, torch.full_like(x0, mask_id), x0)
            rows += _grid_rows(process, t, x0, noisy, mask_id=mask_id)
    elif process == "uniform":
        if vocab_size is None:
            raise ValueError("process='uniform' needs vocab_size")
        x0 = _check_tokens(x0, vocab_size)
        ids = _check_vocab(vocab_size, vocab_ids)
        u = torch.rand(L, generator=gen, dtype=torch.float64)
        r = _uniform_tokens(x0.shape, ids, gen)
        for t in levels:
            noisy = torch.where(u < 1.0 - t, x0, r)
            rows += _grid_rows(process, t, x0, noisy)
    else:
        if embedding is None:
            raise ValueError("process='gaussian' needs embedding (a (V, d) tensor)")
        sched = _schedule(schedule)
        e0 = embed(x0, embedding)
        eps = torch.randn(e0.shape, generator=gen)
        for t in levels:
            ab = float(sched.alpha_bar(t))
            z = math.sqrt(ab) * e0 + math.sqrt(1.0 - ab) * eps
            noisy, dist = round_to_tokens(z, embedding)
            rows += _grid_rows(process, t, x0, noisy, distance=dist)
    return pd.DataFrame(
        rows, columns=["process", "level", "position", "token_id", "noisy_id", "state", "is_original", "distance"]
    )


def _grid_rows(process, t, x0, noisy, mask_id=None, distance=None) -> list[dict]:
    rows = []
    for pos, (a, b) in enumerate(zip(x0.tolist(), noisy.tolist())):
        if mask_id is not None and b == mask_id:
            state = "masked"
        else:
            state = "kept" if a == b else "substituted"
        rows.append(
            {
                "process": process,
                "level": t,
                "position": pos,
                "token_id": a,
                "noisy_id": b,
                "state": state,
                "is_original": a == b,
                "distance": float(distance[pos]) if distance is not None else float("nan"),
            }
        )
    return rows


def information_retained(
    levels: Sequence[float],
    *,
    vocab_size: int | None = None,
    vocab_ids: torch.Tensor | Sequence[int] | None = None,
    embedding: torch.Tensor | None = None,
    schedule: GaussianSchedule | str = "cosine",
    token_ids: torch.Tensor | None = None,
    n_samples: int = 2048,
    generator: torch.Generator | int = 0,
    processes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """P(gold token recovered from x_t alone by the simplest decoder), per process and level (D1, notebook 02).

    - mask: read the token if visible -> exactly 1 - t;
    - uniform: read the token as shown -> exactly alpha_t + (1 - alpha_t)/V (V = size of the
      substitution vocabulary; needs ``vocab_size``);
    - gaussian: nearest-embedding rounding accuracy, Monte-Carlo over ``token_ids`` (default:
      ``n_samples`` ids drawn uniformly from the vocabulary of ``embedding``), one eps each.

    ``processes`` defaults to those whose inputs are given (mask always). Note each process has
    its own time axis (t for the discrete ones, abar(t) of ``schedule`` for Gaussian).
    Columns: ``process, level, retained, stderr, method`` (``"exact"`` or ``"monte-carlo"``).
    """
    levels = [_check_t(t) for t in levels]
    if processes is None:
        processes = (
            ["mask"] + (["uniform"] if vocab_size is not None else []) + (["gaussian"] if embedding is not None else [])
        )
    for p in processes:
        if p not in PROCESSES:
            raise ValueError(f"unknown process {p!r}; use one of {', '.join(PROCESSES)}")
    rows = []
    if "mask" in processes:
        rows += [{"process": "mask", "level": t, "retained": 1.0 - t, "stderr": 0.0, "method": "exact"} for t in levels]
    if "uniform" in processes:
        if vocab_size is None:
            raise ValueError("process 'uniform' needs vocab_size")
        V = _check_vocab(vocab_size, vocab_ids).numel()
        rows += [
            {"process": "uniform", "level": t, "retained": (1.0 - t) + t / V, "stderr": 0.0, "method": "exact"}
            for t in levels
        ]
    if "gaussian" in processes:
        if embedding is None:
            raise ValueError("process 'gaussian' needs embedding (a (V, d) tensor)")
        E = _check_embedding(embedding)
        gen = _generator(generator)
        sched = _schedule(schedule)
        if token_ids is None:
            if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
                raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
            gold = torch.randint(E.shape[0], (n_samples,), generator=gen)
        else:
            gold = _check_tokens(torch.as_tensor(token_ids).flatten(), E.shape[0])
        e0 = E[gold]
        n = gold.numel()
        for t in levels:
            ab = float(sched.alpha_bar(t))
            eps = torch.randn(e0.shape, generator=gen)
            ids, _ = round_to_tokens(math.sqrt(ab) * e0 + math.sqrt(1.0 - ab) * eps, E)
            p = float((ids == gold).float().mean())
            rows.append(
                {
                    "process": "gaussian",
                    "level": t,
                    "retained": p,
                    "stderr": math.sqrt(p * (1 - p) / n),
                    "method": "monte-carlo",
                }
            )
    return pd.DataFrame(rows, columns=["process", "level", "retained", "stderr", "method"])
