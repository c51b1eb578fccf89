"""The decoders of :mod:`dlmpaper.core.strategies` evaluated exactly on the toy languages
(paper §4, issue (ii), the marginal trap, and §5, the remedies it points to).

``dlmpaper.core.trap`` already gives notebook 04's exact *naive* curve: the invalid rate of decoding
``k`` tokens per step in left-to-right or random order (``trap.invalid_rate_by_tokens_per_step``).
:func:`remedy_table` puts every strategy next to it, on the same languages and marginals:

* the toy sampler: one block = the whole sequence, no prompt; each pass reads the marginals
  (exact by default, or a trained toy model's through ``trap.MarginalFn``), ranks masked positions
  by the marginal's maximum probability (or entropy), the strategy picks the set, and the tokens are
  drawn independently from their marginals (temperature 1). Positions are then a function of the
  marginals, so the distribution of the final sequence is enumerated exactly
  (:func:`decoder_distribution`, states merged, every branch's probability kept);
* KL(true || sampler) and the invalid rate from that distribution, the expected NFE, and the sum of
  the total correlations of the sets committed together along the *true* path (the same positions,
  tokens drawn jointly from the exact conditional): by the chain rule of KL this bounds
  KL(true || sampler) for exact marginals and no revision (Li & Cai, arXiv 2505.21400), with
  equality when the positions do not depend on the tokens;
* a simulation of the same sampler (:func:`simulate_decoder`, 95% Wilson intervals), used where
  enumeration is too large and as a check of it elsewhere.

The verifier proposes with the masked marginals and judges with an autoregressive conditional,
the shipped toy AR model (:func:`toy_ar_fn`) or the exact one (:func:`exact_ar_fn`).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dlmpaper.core.strategies import (
    ConfidenceThreshold,
    Dilated,
    EntropyBounded,
    FactorRule,
    LowConfidence,
    Remask,
    StepContext,
    Verifier,
)
from dlmpaper.core.tables import ci_text as ci_text  # re-exported: how notebooks print an estimate
from dlmpaper.core.tables import rounded as rounded
from dlmpaper.core.trap import (
    ModelMarginalDecoder,
    ToyLanguage,
    conditional_joint,
    consistent_rows,
    invalid_rate_by_tokens_per_step,
    total_correlation,
    wilson,
)

#: ``ar_fn(prefixes (B, j) int) -> probs (B, V)``: next-token distribution after each prefix.
ARFn = Callable[[np.ndarray], np.ndarray]


class EnumerationTooLarge(RuntimeError):
    """The exact enumeration would visit more than ``max_states`` states in one pass."""


# ------------------------------------------------------------------------ AR conditionals


def exact_ar_fn(lang: ToyLanguage) -> ARFn:
    """The language's exact next-token conditional (an ideal AR judge); uniform after a
    zero-probability prefix."""
    V = lang.vocab_size

    def fn(prefixes: np.ndarray) -> np.ndarray:
        prefixes = np.atleast_2d(np.asarray(prefixes, dtype=np.int64))
        j = prefixes.shape[1]
        out = np.full((prefixes.shape[0], V), 1.0 / V)
        for b, pre in enumerate(prefixes):
            keep = np.all(lang.sequences[:, :j] == pre, axis=1)
            if keep.any():
                w = np.bincount(lang.sequences[keep, j], weights=lang.probs[keep], minlength=V)
                out[b] = w / w.sum()
        return out

    return fn


def toy_ar_fn(model, lang: ToyLanguage) -> ARFn:
    """A toy autoregressive family model (``toymodels.load_toy_family_model(lang, "autoregressive")``)
    as an :data:`ARFn`: start token (the mask id) + prefix under a causal mask, softmax over the
    ``V`` language ids at the last position, float64; results cached per prefix."""
    from dlmpaper.core.strategies import CausalJudge

    judge = CausalJudge(model, start_id=lang.mask_id)
    V, store = lang.vocab_size, {}

    def fn(prefixes: np.ndarray) -> np.ndarray:
        prefixes = np.atleast_2d(np.asarray(prefixes, dtype=np.int64))
        keys = [p.tobytes() for p in prefixes]
        todo = [i for i, k in enumerate(keys) if k not in store]
        if todo:
            j = prefixes.shape[1]
            x = torch.from_numpy(np.concatenate([prefixes[todo], np.full((len(todo), 1), lang.mask_id)], 1))
            logits = judge.conditionals(x, torch.ones_like(x))[:, j, :V].double()
            for i, p in zip(todo, torch.softmax(logits, -1).numpy()):
                store[keys[i]] = p
        return np.stack([store[k] for k in keys])

    return fn


def load_toy_ar(lang: ToyLanguage | str):
    """The shipped autoregressive toy model of ``lang`` (``data/family_models/<name>-autoregressive``)."""
    from dlmpaper.lm.toymodels import load_toy_family_model

    return load_toy_family_model(lang, "autoregressive")


# ------------------------------------------------------------------------------ one step


def _context(lang, probs_row: np.ndarray, cols: np.ndarray, k: int, step: int, steps: int) -> StepContext:
    p = torch.from_numpy(probs_row[cols])
    ent = -torch.special.xlogy(p, p).sum(-1)
    return StepContext(p.max(-1).values, ent, torch.from_numpy(cols), k, step, steps, lang.length)


def _plan(strategy, lang, tokens, conf, probs_row, step, steps):
    """``(S, undo)``: positions committed this pass and positions re-masked after it."""
    from dlmpaper.core.sampling import transfer_schedule

    cols = np.flatnonzero(tokens == lang.mask_id)
    m = cols.size
    schedule = transfer_schedule(lang.length, steps) if steps else []
    k = schedule[step] if step < len(schedule) else m
    undo = np.zeros(0, dtype=np.int64)
    if isinstance(strategy, Remask):
        earlier = np.flatnonzero(tokens != lang.mask_id)
        n_back = strategy.n_remask(earlier.size, step, steps)
        k = min(m, math.ceil((m + n_back) / (steps - step)))
        undo = earlier[strategy.remask(torch.from_numpy(conf[earlier]), n_back).numpy()]
    chosen = strategy.select(_context(lang, probs_row, cols, k, step, steps)).numpy()
    return cols[np.sort(chosen)], undo


def _steps_of(strategy, lang, steps):
    if getattr(strategy, "adaptive", False):
        return lang.length  # the even-schedule index runs past the end; adaptive rules ignore it
    if steps is None or not 1 <= int(steps) <= lang.length:
        raise ValueError(f"{strategy.name} needs steps in 1..{lang.length} for {lang.name}, got {steps}")
    return int(steps)


# ---------------------------------------------------------------------------- enumeration


def decoder_distribution(
    lang: ToyLanguage,
    strategy,
    steps: int | None = None,
    *,
    marginal_fn=None,
    ar_fn: ARFn | None = None,
    joint: bool = False,
    max_states: int = 200_000,
) -> dict:
    """Exact distribution of the toy sampler's final sequence under ``strategy`` (module docstring).

    Returns ``final`` ({sequence tuple: probability}, complete sequences not pruned), ``invalid``
    (mass of sequences known invalid; states that can no longer become valid are pruned unless the
    strategy revises), ``nfe_masked`` / ``nfe_ar`` (expected passes; pruned runs finish as under
    uniform marginals, :func:`_uniform_tail`, the verifier's as if every proposal were accepted),
    ``tc`` (expected sum of the exact total correlation of each committed set, over consistent
    states). ``joint=True`` draws the committed set from the exact conditional joint instead (the
    true path of the bound).
    """
    if isinstance(strategy, Verifier):
        return _verifier_distribution(lang, strategy, marginal_fn, ar_fn or exact_ar_fn(lang))
    steps = _steps_of(strategy, lang, steps)
    dec = ModelMarginalDecoder(lang, marginal_fn)
    revises = isinstance(strategy, Remask)
    seqs, mask_id = lang.sequences, lang.mask_id
    start = np.full(lang.length, mask_id, dtype=np.int64)
    frontier = {(start.tobytes(), np.zeros(lang.length).tobytes()): 1.0}
    final: dict[tuple, float] = {}
    invalid = nfe = tc = 0.0
    step = 0
    while frontier:
        if len(frontier) > max_states:
            raise EnumerationTooLarge(f"{len(frontier)} states at pass {step} (max_states={max_states})")
        keys = list(frontier)
        toks = np.stack([np.frombuffer(k[0], dtype=np.int64) for k in keys])
        confs = np.stack([np.frombuffer(k[1], dtype=np.float64) for k in keys])
        M = dec.probs(toks)
        nxt: dict = {}
        for i, key in enumerate(keys):
            w = frontier[key]
            tokens, conf = toks[i], confs[i]
            S, undo = _plan(strategy, lang, tokens, conf, M[i], step, steps)
            rows_ok = consistent_rows(lang, tokens)
            if rows_ok.any() and S.size > 1:
                tc += w * total_correlation(lang, tokens, positions=S)
            if joint:
                comps, probs = conditional_joint(lang, tokens, positions=S)
                branches = [(c, p) for c, p in zip(comps, probs)]
            else:
                branches = _product_branches(M[i], S, seqs, rows_ok, prune=not revises)
                lost = w * max(0.0, 1.0 - sum(p for _, p in branches))
                if lost > 0:
                    rest = np.setdiff1d(np.flatnonzero(tokens == mask_id), S)
                    invalid += lost
                    nfe += lost * (step + 1 + _uniform_tail(strategy, lang, rest, step + 1, steps))
            for vals, p in branches:
                new, nc = tokens.copy(), conf.copy()
                new[S] = vals
                nc[S] = M[i][S, vals]
                new[undo], nc[undo] = mask_id, 0.0
                if np.all(new != mask_id):
                    final[tuple(new.tolist())] = final.get(tuple(new.tolist()), 0.0) + w * p
                    nfe += w * p * (step + 1)
                else:
                    k2 = (new.tobytes(), (nc if revises else np.zeros(lang.length)).tobytes())
                    nxt[k2] = nxt.get(k2, 0.0) + w * p
        frontier = {k: v for k, v in nxt.items() if v > 0}
        step += 1
    return dict(final=final, invalid=invalid, nfe_masked=nfe, nfe_ar=0.0, tc=tc)


def _uniform_tail(strategy, lang, rest: np.ndarray, step: int, steps: int) -> int:
    """Passes a run still makes after it was pruned (already invalid) with ``rest`` masked: the
    exact marginals of a zero-probability state are uniform (``trap.exact_marginal_fn``), so the
    strategy's choices no longer depend on the tokens. Exact for exact marginals; for trained ones
    an approximation (the simulation's ``nfe_sim`` is then the check)."""
    tokens = np.zeros(lang.length, dtype=np.int64)
    tokens[rest] = lang.mask_id
    uniform = np.full((lang.length, lang.vocab_size), 1.0 / lang.vocab_size)
    n = 0
    while np.any(tokens == lang.mask_id):
        S, _ = _plan(strategy, lang, tokens, np.zeros(lang.length), uniform, step + n, steps)
        tokens[S] = 0
        n += 1
    return n


def _product_branches(M, S, seqs, rows_ok, prune: bool):
    """Value tuples of the positions ``S`` with their product-of-marginals probability; with
    ``prune``, assignments that leave the support are dropped (their mass is the invalid mass)."""
    parts = [((), 1.0, rows_ok)]
    for p in S:
        out = []
        for vals, w, ok in parts:
            allowed = set(seqs[ok, p].tolist()) if prune else None
            for v in np.flatnonzero(M[p] > 0):
                if prune and int(v) not in allowed:
                    continue
                out.append((vals + (int(v),), w * float(M[p, v]), ok & (seqs[:, p] == v)))
        parts = out
    return [(np.asarray(v, dtype=np.int64), w) for v, w, _ in parts]


def _verifier_distribution(lang, strategy, marginal_fn, ar_fn) -> dict:
    """Exact distribution of :class:`strategies.Verifier` on the toy sampler (left to right).
    Per proposed position with masked marginal ``q`` and judge conditional ``p``: the ratio test
    keeps ``y`` with mass ``min(p, q)(y)`` and corrects to ``z`` with mass ``max(0, p - q)(z)``
    (they sum to 1); greedy keeps ``argmax p`` with mass ``q(argmax p)``, else commits it."""
    dec = ModelMarginalDecoder(lang, marginal_fn)
    L, V, mask_id, seqs = lang.length, lang.vocab_size, lang.mask_id, lang.sequences
    frontier = {(): 1.0}
    final: dict[tuple, float] = {}
    invalid = rounds_done = 0.0
    rnd = 0
    while frontier:
        keys = list(frontier)
        states = np.full((len(keys), L), mask_id, dtype=np.int64)
        for i, pre in enumerate(keys):
            states[i, : len(pre)] = pre
        M = dec.probs(states)
        nxt: dict = {}

        def lose(length, w):
            nonlocal invalid, rounds_done
            invalid += w
            rounds_done += w * (rnd + 1 + math.ceil((L - length) / strategy.k))

        def emit(prefix, w):
            nonlocal rounds_done
            if not np.all(seqs[:, : len(prefix)] == np.asarray(prefix, dtype=np.int64), axis=1).any():
                lose(len(prefix), w)
            elif len(prefix) == L:
                final[prefix] = final.get(prefix, 0.0) + w
                rounds_done += w * (rnd + 1)
            else:
                nxt[prefix] = nxt.get(prefix, 0.0) + w

        for i, pre in enumerate(keys):
            kk = min(strategy.k, L - len(pre))
            todo = [(pre, frontier[pre], 0)]
            while todo:
                prefix, w, j = todo.pop()
                if j == kk:
                    emit(prefix, w)
                    continue
                q = M[i, len(pre) + j]
                p = ar_fn(np.asarray([prefix], dtype=np.int64).reshape(1, -1))[0]
                if strategy.acceptance == "greedy":
                    best = int(p.argmax())
                    keep, fix = np.zeros(V), np.zeros(V)
                    keep[best], fix[best] = q[best], 1.0 - q[best]
                else:
                    keep, fix = np.minimum(p, q), np.maximum(0.0, p - q)
                for y in np.flatnonzero(keep > 0):
                    new = prefix + (int(y),)
                    if np.all(seqs[:, : len(new)] == np.asarray(new), axis=1).any():
                        todo.append((new, w * keep[y], j + 1))
                    else:  # committed whatever happens to the rest of the round
                        lose(len(pre) + kk, w * keep[y])
                for z in np.flatnonzero(fix > 0):
                    emit(prefix + (int(z),), w * fix[z])
        frontier = {k: v for k, v in nxt.items() if v > 0}
        rnd += 1
    return dict(final=final, invalid=invalid, nfe_masked=rounds_done, nfe_ar=rounds_done, tc=float("nan"))


def ar_distribution(lang: ToyLanguage, ar_fn: ARFn) -> dict:
    """Exact distribution of ancestral sampling from ``ar_fn`` (the AR reference: L passes);
    prefixes outside the support are pruned into ``invalid``."""
    frontier, invalid = {(): 1.0}, 0.0
    seqs = lang.sequences
    for j in range(lang.length):
        nxt: dict = {}
        keys = list(frontier)
        P = ar_fn(np.asarray(keys, dtype=np.int64).reshape(len(keys), j))
        for pre, p in zip(keys, P):
            ok = np.all(seqs[:, :j] == np.asarray(pre, dtype=np.int64), axis=1)
            allowed = set(seqs[ok, j].tolist())
            for y in np.flatnonzero(p > 0):
                if int(y) in allowed:
                    nxt[pre + (int(y),)] = nxt.get(pre + (int(y),), 0.0) + frontier[pre] * p[y]
                else:
                    invalid += frontier[pre] * p[y]
        frontier = nxt
    return dict(final=frontier, invalid=invalid, nfe_masked=0.0, nfe_ar=float(lang.length), tc=float("nan"))


def invalid_mass(lang: ToyLanguage, final: Mapping[tuple, float]) -> float:
    """Probability of an invalid sequence: 1 minus the sampler's mass on the support."""
    if not final:
        return 1.0
    seqs = np.asarray(list(final), dtype=np.int64)
    w = np.asarray(list(final.values()))
    return float(min(1.0, max(0.0, 1.0 - w[lang.valid_mask(seqs)].sum())))


def kl_true_sampler(lang: ToyLanguage, final: Mapping[tuple, float]) -> float:
    """KL(true || sampler) in nats from the sampler's distribution over full sequences (inf when
    the sampler gives a valid sequence probability 0)."""
    q = np.array([final.get(tuple(s.tolist()), 0.0) for s in lang.sequences])
    if np.any(q <= 0):
        return float("inf")
    return float(max(0.0, np.sum(lang.probs * (np.log(lang.probs) - np.log(q)))))


# ----------------------------------------------------------------------------- simulation


def simulate_decoder(
    lang: ToyLanguage,
    strategy,
    steps: int | None = None,
    n: int = 20_000,
    *,
    rng=None,
    marginal_fn=None,
    ar_fn: ARFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` runs of the toy sampler: final ids ``(n, L)`` and passes per run ``(n,)`` (masked
    passes; the verifier uses as many AR passes). Chains in the same state share one marginal call."""
    rng = np.random.default_rng(rng)
    dec = ModelMarginalDecoder(lang, marginal_fn)
    L, mask_id = lang.length, lang.mask_id
    x = np.full((int(n), L), mask_id, dtype=np.int64)
    conf = np.zeros(x.shape)
    passes = np.zeros(int(n), dtype=np.int64)
    verifier = isinstance(strategy, Verifier)
    ar = (ar_fn or exact_ar_fn(lang)) if verifier else None
    steps = None if verifier else _steps_of(strategy, lang, steps)
    step = 0
    while True:
        live = np.flatnonzero(np.any(x == mask_id, axis=1))
        if live.size == 0:
            return x, passes
        passes[live] += 1
        key = np.concatenate([x[live], conf[live]], 1) if isinstance(strategy, Remask) else x[live]
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        M = dec.probs(uniq[:, :L].astype(np.int64))
        for u in range(uniq.shape[0]):
            rows = live[inv == u]
            if verifier:
                _simulate_round(lang, strategy, x, rows, M[u], ar, rng)
                continue
            S, undo = _plan(strategy, lang, x[rows[0]], conf[rows[0]], M[u], step, steps)
            for p in S:
                cdf = np.cumsum(M[u, p])
                v = np.minimum((rng.random(rows.size) * cdf[-1] >= cdf[:, None]).sum(0), lang.vocab_size - 1)
                x[rows, p] = v
                conf[rows, p] = M[u, p, v]
            x[np.ix_(rows, undo)] = mask_id
            conf[np.ix_(rows, undo)] = 0.0
        step += 1


def _draw(p: np.ndarray, rng) -> int:
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), p.size - 1))


def _simulate_round(lang, strategy, x, rows, M, ar, rng) -> None:
    i = int(np.sum(x[rows[0]] != lang.mask_id))
    kk = min(strategy.k, lang.length - i)
    for r in rows:
        for j in range(kk):
            q = M[i + j]
            y = _draw(q, rng)
            p = ar(x[r, : i + j][None])[0]
            if strategy.acceptance == "greedy":
                best = int(p.argmax())
                x[r, i + j] = best
                if y != best:
                    break
                continue
            if rng.random() * q[y] < p[y]:
                x[r, i + j] = y
                continue
            x[r, i + j] = _draw(np.maximum(0.0, p - q), rng)
            break


# ---------------------------------------------------------------------------------- tables


def default_decoders(lang: ToyLanguage) -> list[tuple[str, object, int | None]]:
    """``(label, strategy, steps)`` of :func:`remedy_table`'s default grid for ``lang``: the
    default at every step count, each adaptive rule at a few settings, DUS and remasking at every
    step count, the verifier at k = 2 and k = L."""
    L = lang.length
    out = [(f"low_confidence s={s}", LowConfidence(), s) for s in range(1, L + 1)]
    out += [(f"threshold tau={t}", ConfidenceThreshold(t), None) for t in (0.3, 0.5, 0.7, 0.9)]
    out += [(f"factor f={f}", FactorRule(f), None) for f in (0.5, 1.0, 2.0, 4.0)]
    out += [(f"entropy_bounded gamma={g}", EntropyBounded(g), None) for g in (0.01, 0.3, 1.0, 3.0)]
    out += [(f"dilated s={s}", Dilated(), s) for s in range(1, L + 1)]
    out += [(f"remask sigma=0.25 s={s}", Remask(0.25), s) for s in range(2, L + 1)]
    out += [(f"verifier k={k}", Verifier(k), None) for k in sorted({2, L})]
    return out


def remedy_table(
    langs=None,
    decoders: Mapping[str, Sequence] | None = None,
    *,
    marginals: str = "exact",
    judge: str = "trained",
    n_samples: int = 20_000,
    seed: int = 0,
    simulate: bool = True,
    max_states: int = 200_000,
) -> pd.DataFrame:
    """Invalid rate, KL(true || sampler) and NFE of every decoder on every toy language.

    ``langs``: names or languages (default the three shipped ones); ``decoders``: {language name:
    list of (label, strategy, steps)} (default :func:`default_decoders`); ``marginals``: ``"exact"``
    (the ideal token-wise model, notebook 04's reference) or ``"trained"`` (the shipped toy masked
    model); ``judge``: the verifier's AR conditional, ``"trained"`` (shipped toy AR model) or
    ``"exact"``. One row per (language, decoder): ``method`` ("exact", or "simulated" where the
    enumeration exceeds ``max_states``), ``nfe_masked``, ``nfe_ar``, ``nfe`` (their sum, or the
    simulated ``nfe_sim`` where ``nfe_method`` is "simulated", see :func:`_exact_nfe`),
    ``invalid``, ``kl``, ``tc_bound`` (expected summed total correlation on the true path; NaN for
    the verifier and for remasking), ``bound_holds`` (``kl <= tc_bound``; proven for exact marginals
    only: with trained ones the marginals' own error adds to the KL and the bound can fail), and with
    ``simulate`` ``invalid_sim``, ``sim_ci_low``, ``sim_ci_high``, ``agrees`` (exact value inside
    the 95% Wilson interval). Deterministic given ``seed``. The rows ``decoder = naive left_to_right``
    are trap's exact naive curve (``trap.invalid_rate_by_tokens_per_step``), reused as the reference,
    and ``decoder = autoregressive`` is ancestral sampling from the judge (:func:`ar_distribution`).
    """
    from dlmpaper.lm.toymodels import load_toy_model, model_marginal_fn, toy_languages

    if marginals not in ("exact", "trained") or judge not in ("exact", "trained"):
        raise ValueError("marginals and judge must each be 'exact' or 'trained'")
    rows = []
    for li, lang in enumerate(toy_languages(langs)):
        fn = None if marginals == "exact" else model_marginal_fn(load_toy_model(lang), lang)
        ar = exact_ar_fn(lang) if judge == "exact" else toy_ar_fn(load_ar_cached(lang), lang)
        grid = (decoders or {}).get(lang.name) or default_decoders(lang)
        for di, (label, strategy, steps) in enumerate(grid):
            strategy.validate()
            row = dict(
                language=lang.name,
                length=lang.length,
                decoder=strategy.name,
                label=label,
                marginals=marginals,
                steps=steps,
            )
            try:
                d = decoder_distribution(lang, strategy, steps, marginal_fn=fn, ar_fn=ar, max_states=max_states)
                if d["tc"] == d["tc"] and not isinstance(strategy, Remask):
                    tc_true = decoder_distribution(lang, strategy, steps, marginal_fn=fn, joint=True)["tc"]
                else:
                    tc_true = float("nan")
                kl = kl_true_sampler(lang, d["final"])
                row.update(
                    method="exact",
                    nfe_masked=d["nfe_masked"],
                    nfe_ar=d["nfe_ar"],
                    invalid=invalid_mass(lang, d["final"]),
                    kl=kl,
                    tc_bound=tc_true,
                    bound_holds=bool(kl <= tc_true + 1e-9) if tc_true == tc_true else None,
                )
            except EnumerationTooLarge:
                row.update(method="simulated", kl=float("nan"), tc_bound=float("nan"), bound_holds=None)
            if simulate or row["method"] == "simulated":
                xs, passes = simulate_decoder(
                    lang,
                    strategy,
                    steps,
                    n_samples,
                    rng=np.random.default_rng((seed, li, di)),
                    marginal_fn=fn,
                    ar_fn=ar,
                )
                bad = int((~lang.valid_mask(xs)).sum())
                lo, hi = wilson(bad, xs.shape[0])
                both = 2 if isinstance(strategy, Verifier) else 1
                row.update(
                    invalid_sim=bad / xs.shape[0], sim_ci_low=lo, sim_ci_high=hi, nfe_sim=float(both * passes.mean())
                )
                if row["method"] == "simulated":
                    ar_passes = passes.mean() if isinstance(strategy, Verifier) else 0.0
                    row.update(invalid=bad / xs.shape[0], nfe_masked=float(passes.mean()), nfe_ar=float(ar_passes))
                else:
                    row["agrees"] = bool(lo - 1e-12 <= row["invalid"] <= hi + 1e-12)
            row["nfe"] = row["nfe_masked"] + row["nfe_ar"]
            row["nfe_method"] = "exact" if _exact_nfe(strategy, fn) and row["method"] == "exact" else "simulated"
            if row["nfe_method"] == "simulated" and "nfe_sim" in row:
                row["nfe"] = row["nfe_sim"]
            rows.append(row)
        d = ar_distribution(lang, ar)
        rows.append(
            dict(
                language=lang.name,
                length=lang.length,
                decoder="autoregressive",
                label=f"autoregressive judge ({judge})",
                marginals=judge,
                steps=lang.length,
                method="exact",
                nfe_masked=0.0,
                nfe_ar=float(lang.length),
                nfe=float(lang.length),
                invalid=1.0 - sum(d["final"].values()),
                kl=kl_true_sampler(lang, d["final"]),
            )
        )
        naive = invalid_rate_by_tokens_per_step(
            lang, range(1, lang.length + 1), order="left_to_right", n_samples=2, seed=seed, marginal_fn=fn
        )
        for r in naive.itertuples(index=False):
            rows.append(
                dict(
                    language=lang.name,
                    length=lang.length,
                    decoder="naive left_to_right",
                    label=f"naive left_to_right k={r.tokens_per_step}",
                    marginals=marginals,
                    steps=r.n_steps,
                    method="exact",
                    nfe_masked=float(r.n_steps),
                    nfe_ar=0.0,
                    nfe=float(r.n_steps),
                    invalid=r.invalid_exact,
                )
            )
    return pd.DataFrame(rows)


def _exact_nfe(strategy, marginal_fn) -> bool:
    """Whether :func:`decoder_distribution`'s expected NFE is exact: pruned runs finish exactly as
    :func:`_uniform_tail` says for fixed schedules, and for adaptive rules under exact marginals;
    the verifier's tail (every proposal accepted) and adaptive rules under trained marginals are
    approximations, so :func:`remedy_table` then reports the simulated NFE."""
    if isinstance(strategy, Verifier):
        return False
    return not getattr(strategy, "adaptive", False) or marginal_fn is None


_AR_CACHE: dict = {}


def load_ar_cached(lang: ToyLanguage):
    """:func:`load_toy_ar`, loaded once per language per process."""
    if lang.name not in _AR_CACHE:
        _AR_CACHE[lang.name] = load_toy_ar(lang)
    return _AR_CACHE[lang.name]


def _default_at_budget(sub: pd.DataFrame, L: int) -> float:
    """Invalid rate of the default low-confidence decoder at ``steps = ceil(L / 2)`` in one
    language's rows (NaN when the table has no such row)."""
    ref = sub[(sub["decoder"] == "low_confidence") & (sub["steps"] == math.ceil(L / 2))]["invalid"]
    return float(ref.iloc[0]) if len(ref) else float("nan")


def best_at_nfe(table: pd.DataFrame, budget: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per language and decoder family, the row with the lowest invalid rate among those whose
    expected NFE (masked + AR) is at most the budget (default ``ceil(L / 2)``), and the invalid rate
    of the default low-confidence decoder at ``steps = ceil(L / 2)`` next to it (``naive_invalid``)
    with the relative cut ``1 - invalid / naive_invalid``."""
    out = []
    for lang, sub in table.groupby("language", sort=False):
        L = int(sub["length"].iloc[0])
        b = (budget or {}).get(lang, math.ceil(L / 2))
        naive = _default_at_budget(sub, L)
        ok = sub[sub["nfe"] <= b + 1e-9]
        for dec, g in ok.groupby("decoder", sort=False):
            best = g.loc[g["invalid"].idxmin()]
            out.append(
                dict(
                    language=lang,
                    budget=b,
                    decoder=dec,
                    label=best["label"],
                    nfe=best["nfe"],
                    invalid=best["invalid"],
                    naive_invalid=naive,
                    cut=1 - best["invalid"] / naive if naive > 0 else float("nan"),
                )
            )
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------- goals

#: Rows of :func:`remedy_table` that are references, not remedies: the default decoder, notebook
#: 04's naive curve and the AR model.
REFERENCES = ("low_confidence", "naive left_to_right", "autoregressive")

#: Invalid rates closer than this are ties (enumeration noise), broken by the lower NFE.
_TIE = 1e-12


def _cheapest_best(rows: pd.DataFrame) -> pd.Series:
    """The row with the lowest invalid rate, ties (within :data:`_TIE`) to the lower NFE, then to
    the earlier row."""
    key = (rows["invalid"] / _TIE).round() * _TIE
    order = np.lexsort((np.arange(len(rows)), rows["nfe"].to_numpy(), key.to_numpy()))
    return rows.iloc[order[0]]


def budget_goal(table: pd.DataFrame, *, min_cut: float = 0.5) -> pd.DataFrame:
    """Notebook 05's first goal, per language, at the budget NFE = ``ceil(L / 2)`` (masked + AR
    passes; notebook 05, paper §5): ``naive_invalid`` (the default low-confidence decoder at
    ``steps = ceil(L / 2)``), the best remedy within the budget (lowest invalid rate over every
    row of :func:`best_at_nfe` whose family is not in :data:`REFERENCES`; ties to the lower
    NFE), its ``cut = 1 - invalid / naive_invalid`` and ``met``: ``cut >= min_cut``, or None when
    the naive rate is 0 (nothing to cut) or no remedy fits the budget."""
    best = best_at_nfe(table)
    out = []
    for lang, sub in table.groupby("language", sort=False):
        L = int(sub["length"].iloc[0])
        cand = best[(best["language"] == lang) & ~best["decoder"].isin(REFERENCES)] if len(best) else best
        naive = _default_at_budget(sub, L)
        row = dict(
            language=lang,
            length=L,
            budget=math.ceil(L / 2),
            naive_invalid=naive,
            label=None,
            decoder=None,
            nfe=float("nan"),
            invalid=float("nan"),
            cut=float("nan"),
            met=None,
        )
        if len(cand):
            b = _cheapest_best(cand.reset_index(drop=True))
            cut = 1 - b["invalid"] / naive if naive > _TIE else float("nan")
            row.update(
                label=b["label"],
                decoder=b["decoder"],
                nfe=float(b["nfe"]),
                invalid=float(b["invalid"]),
                cut=cut,
                met=bool(cut >= min_cut) if cut == cut else None,
            )
        out.append(row)
    return pd.DataFrame(out)


def ar_match(table: pd.DataFrame, *, tol: float = 0.01, exclude: Sequence[str] = REFERENCES) -> pd.DataFrame:
    """Notebook 05's second goal, per language (notebook 05, paper §5): ``ar_invalid``, the invalid
    rate of the autoregressive rows, and the cheapest decoder (lowest expected NFE, masked + AR;
    ties to the lower invalid rate) whose family is not in ``exclude``, whose invalid rate is at most
    ``ar_invalid + tol`` and whose NFE is below ``L``; ``met`` says whether there is one."""
    out = []
    for lang, sub in table.groupby("language", sort=False):
        L = int(sub["length"].iloc[0])
        ar = float(sub[sub["decoder"] == "autoregressive"]["invalid"].iloc[0])
        ok = sub[~sub["decoder"].isin(exclude) & (sub["invalid"] <= ar + tol) & (sub["nfe"] < L - 1e-9)]
        row = dict(
            language=lang,
            length=L,
            ar_invalid=ar,
            label=None,
            decoder=None,
            nfe=float("nan"),
            invalid=float("nan"),
            met=False,
        )
        if len(ok):
            order = np.lexsort((np.arange(len(ok)), ok["invalid"].to_numpy(), ok["nfe"].to_numpy()))
            b = ok.iloc[order[0]]
            row.update(
                label=b["label"], decoder=b["decoder"], nfe=float(b["nfe"]), invalid=float(b["invalid"]), met=True
            )
        out.append(row)
    return pd.DataFrame(out)


def check_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per language and in total (``language = "all"``): ``n_simulated`` settings with both an exact
    value and a simulation, ``n_agree`` of them with the exact invalid rate inside the simulation's
    95% Wilson interval (about 95% expected by chance alone), ``n_bound`` settings with a
    total-correlation bound (not the verifier, remasking or the references) and ``n_bound_holds``
    of them with ``KL <= bound`` (Li & Cai, arXiv 2505.21400; notebook 05)."""

    def counts(d: pd.DataFrame) -> dict:
        agrees = d["agrees"] if "agrees" in d else pd.Series(dtype=object)
        holds = d["bound_holds"] if "bound_holds" in d else pd.Series(dtype=object)
        return dict(
            n_simulated=int(agrees.notna().sum()),
            n_agree=int(agrees.eq(True).sum()),
            n_bound=int(holds.notna().sum()),
            n_bound_holds=int(holds.eq(True).sum()),
        )

    rows = [dict(language=lang, **counts(d)) for lang, d in table.groupby("language", sort=False)]
    rows.append(dict(language="all", **counts(table)))
    return pd.DataFrame(rows)
