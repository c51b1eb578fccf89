"""The marginal trap, computed exactly on toy languages (paper §4, issue (ii)).

A masked diffusion LM is trained token-wise: at every masked position it learns the
*marginal* of that token given the visible ones. Decoding several masked positions in
one step therefore samples from the **product of per-position marginals**, not from
their joint. In the paper's example "I like" and "He likes" are both likely, so the
product also puts mass on "I likes". This module makes that statement exact:

* :class:`ToyLanguage` -- a language with a known joint distribution over fixed-length
  sequences (its support is enumerated), built by :func:`agreement_language`,
  :func:`brackets_language` and :func:`copy_language`.
* exact conditionals for a partially masked sequence: :func:`conditional_joint`,
  :func:`marginals`, :func:`total_correlation`;
* the one-step trap: :func:`parallel_invalid_probability` (closed form) and
  :func:`simulate_parallel_decoding` (Monte Carlo);
* full decoding with ``k`` tokens per step: :class:`ModelMarginalDecoder` and
  :func:`invalid_rate_by_tokens_per_step` (exact recursion and simulation), with a hook
  (``marginal_fn``) so a trained masked LM can replace the exact marginals;
* :func:`likes_example` -- the paper's "I likes tennis" table (notebook 04_marginal_trap).

Used by notebooks ``04_marginal_trap`` and ``02_five_properties`` (property L2,
structural dependency). Pure numpy; torch is only touched by
:func:`marginal_fn_from_logits` when a model returns torch tensors.

Vocabulary layout (every :class:`ToyLanguage`): ids ``0 .. V-1`` are ``lang.vocab`` in
order, id ``V`` (``lang.mask_id``) is the mask token ``"[MASK]"``; ``lang.full_vocab``
lists all ``V + 1`` tokens (the size a model's embedding needs). A *partial* sequence is
a length-``L`` list whose masked entries are ``None``, ``lang.mask_id``, ``"[MASK]"`` or
``"_"``; visible entries are token strings or ids. A whitespace-separated string such as
``"_ _ tennis"`` is accepted too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

MASK_TOKEN = "[MASK]"
#: Shorthands accepted for a masked position in a partial sequence (besides ``None``).
MASK_ALIASES = (MASK_TOKEN, "_")

#: ``marginal_fn(partial_batch) -> probs``: ``partial_batch`` is an int array ``(B, L)``
#: holding ``lang.mask_id`` at masked positions; ``probs`` is ``(B, L, V)`` (or
#: ``(B, L, V + 1)``, the mask column is then dropped); rows at masked positions are
#: renormalised over the ``V`` language tokens, rows at visible positions are ignored.
MarginalFn = Callable[[np.ndarray], np.ndarray]


class ZeroProbabilityContextError(ValueError):
    """The visible tokens of a partial sequence have probability 0 under the language."""


# --------------------------------------------------------------------------- language


@dataclass(eq=False)
class ToyLanguage:
    """A language with an exact joint distribution over sequences of fixed ``length``.

    ``sequences`` (N, length) holds the support as token ids (``0 .. V-1``, see the module
    docstring for the layout), ``probs`` (N,) their probabilities (all > 0, sum 1).
    A sequence is valid iff it is in the support. Notebook 04_marginal_trap.
    """

    name: str
    vocab: list[str]
    sequences: np.ndarray
    probs: np.ndarray
    description: str = ""
    length: int = field(init=False)
    _codes: np.ndarray = field(init=False, repr=False)
    _order: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vocab = [str(t) for t in self.vocab]
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError(f"{self.name}: vocab has duplicate tokens; make every token unique")
        if MASK_TOKEN in self.vocab or "_" in self.vocab:
            raise ValueError(f"{self.name}: {MASK_TOKEN!r} and '_' are reserved for the mask; rename the token")
        seqs = np.asarray(self.sequences, dtype=np.int64)
        probs = np.asarray(self.probs, dtype=np.float64)
        if seqs.ndim != 2 or seqs.shape[0] == 0 or seqs.shape[0] != probs.shape[0] or probs.ndim != 1:
            raise ValueError(f"{self.name}: need sequences (N, L) and probs (N,) with N >= 1")
        if seqs.min() < 0 or seqs.max() >= len(self.vocab):
            raise ValueError(f"{self.name}: token ids must lie in 0..{len(self.vocab) - 1}")
        if not np.all(np.isfinite(probs)) or np.any(probs <= 0):
            raise ValueError(f"{self.name}: probabilities must be finite and > 0; drop zero-probability sequences")
        if abs(probs.sum() - 1.0) > 1e-9:
            raise ValueError(f"{self.name}: probabilities sum to {probs.sum()!r}; normalise them to 1")
        self.sequences = seqs
        self.probs = probs / probs.sum()
        self.length = seqs.shape[1]
        base = len(self.vocab) + 1
        if base**self.length >= 2**62:
            raise ValueError(f"{self.name}: (V+1)^L too large for exact enumeration; use a shorter length")
        self._codes = self._encode_rows(seqs)
        if np.unique(self._codes).size != self._codes.size:
            raise ValueError(f"{self.name}: duplicate sequences in the support; merge their probabilities")
        self._order = np.argsort(self._codes)

    # -- vocabulary -----------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """``V``: number of language tokens (the mask excluded)."""
        return len(self.vocab)

    @property
    def mask_id(self) -> int:
        """Id of the mask token: ``V`` (one past the language tokens)."""
        return len(self.vocab)

    @property
    def full_vocab(self) -> list[str]:
        """All ``V + 1`` tokens, ids in order: ``vocab + ["[MASK]"]``."""
        return [*self.vocab, MASK_TOKEN]

    def encode(self, tokens: Sequence[str | int | None] | str) -> np.ndarray:
        """Token strings (or ids, or mask shorthands) -> int ids; masks become ``mask_id``."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        index = {t: i for i, t in enumerate(self.vocab)}
        out = []
        for t in tokens:
            if t is None or (isinstance(t, str) and t in MASK_ALIASES):
                out.append(self.mask_id)
            elif isinstance(t, (int, np.integer)):
                if not 0 <= int(t) <= self.mask_id:
                    raise ValueError(f"{self.name}: id {t} outside 0..{self.mask_id}")
                out.append(int(t))
            elif isinstance(t, str) and t in index:
                out.append(index[t])
            else:
                raise ValueError(f"{self.name}: unknown token {t!r}; known tokens are {self.vocab}")
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Int ids -> token strings (``mask_id`` -> ``"[MASK]"``)."""
        full = self.full_vocab
        return [full[int(i)] for i in ids]

    def to_text(self, ids: Iterable[int]) -> str:
        """Ids -> one space-separated string (for tables and figure labels)."""
        return " ".join(self.decode(ids))

    # -- distribution ---------------------------------------------------------------
    def _encode_rows(self, seqs: np.ndarray) -> np.ndarray:
        base = len(self.vocab) + 1
        weights = base ** np.arange(self.length - 1, -1, -1, dtype=np.int64)
        return np.asarray(seqs, dtype=np.int64) @ weights

    def _lookup(self, seqs: np.ndarray) -> np.ndarray:
        """Index into the support for each row of ``seqs`` (-1 where not in the support)."""
        seqs = np.atleast_2d(np.asarray(seqs, dtype=np.int64))
        if seqs.shape[1] != self.length:
            raise ValueError(f"{self.name}: sequences must have length {self.length}, got {seqs.shape[1]}")
        codes = self._encode_rows(seqs)
        sorted_codes = self._codes[self._order]
        pos = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
        hit = sorted_codes[pos] == codes
        return np.where(hit, self._order[pos], -1)

    def valid_mask(self, seqs: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`is_valid` over the rows of an int array ``(n, L)``."""
        return self._lookup(seqs) >= 0

    def is_valid(self, seq: Sequence[str | int] | np.ndarray | str) -> bool:
        """True iff the fully visible sequence ``seq`` (tokens or ids) is in the support."""
        ids = self.encode(list(seq) if not isinstance(seq, str) else seq)
        if ids.shape[0] != self.length or np.any(ids == self.mask_id):
            return False
        return bool(self.valid_mask(ids[None])[0])

    def prob(self, seq: Sequence[str | int] | np.ndarray | str) -> float:
        """Exact probability of a fully visible sequence (0 outside the support)."""
        ids = self.encode(list(seq) if not isinstance(seq, str) else seq)
        if ids.shape[0] != self.length or np.any(ids == self.mask_id):
            return 0.0
        i = self._lookup(ids[None])[0]
        return float(self.probs[i]) if i >= 0 else 0.0

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` i.i.d. sequences ``(n, L)`` of ids from the exact joint."""
        rng = np.random.default_rng(rng)
        idx = rng.choice(self.sequences.shape[0], size=int(n), p=self.probs)
        return self.sequences[idx].copy()

    def table(self) -> pd.DataFrame:
        """The support as a tidy table: ``text``, ``prob`` and one column per position."""
        cols = {f"pos{i}": [self.vocab[t] for t in self.sequences[:, i]] for i in range(self.length)}
        return pd.DataFrame({"text": [self.to_text(s) for s in self.sequences], "prob": self.probs, **cols})

    @classmethod
    def from_sentences(
        cls,
        name: str,
        sentences: Sequence[Sequence[str] | str],
        weights: Sequence[float] | None = None,
        vocab: Sequence[str] | None = None,
        description: str = "",
    ) -> "ToyLanguage":
        """Build a language from token lists (or space-separated strings) and weights
        (uniform when ``None``; normalised here). ``vocab`` fixes the id order."""
        toks = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        if vocab is None:
            vocab = list(dict.fromkeys(t for s in toks for t in s))
        index = {t: i for i, t in enumerate(vocab)}
        missing = {t for s in toks for t in s} - set(index)
        if missing:
            raise ValueError(f"{name}: tokens {sorted(missing)} missing from vocab")
        if len({len(s) for s in toks}) != 1:
            raise ValueError(f"{name}: all sentences need the same length; pad them")
        w = np.ones(len(toks)) if weights is None else np.asarray(weights, dtype=np.float64)
        seqs = np.array([[index[t] for t in s] for s in toks], dtype=np.int64)
        return cls(name=name, vocab=list(vocab), sequences=seqs, probs=w / w.sum(), description=description)


#: Subjects of :func:`agreement_language` by grammatical number.
PLURAL_SUBJECTS = ("I", "you", "we", "they")
SINGULAR_SUBJECTS = ("he", "she")
VERBS = {"plural": ("like", "play"), "singular": ("likes", "plays")}
OBJECTS = ("tennis", "music", "chess")


def agreement_language() -> ToyLanguage:
    """Subject-verb agreement, the paper's example (§4, issue (ii)): ``subject verb object``.

    Subjects {I, you, we, they} take "like"/"play", {he, she} take "likes"/"plays";
    objects {tennis, music, chess}. Uniform over the 36 valid sentences
    (4*2*3 + 2*2*3), so "I like tennis" and "he likes music" have probability 1/36 and
    "I likes tennis" has 0. Notebooks 04_marginal_trap and 02_five_properties (L2).
    """
    vocab = [*PLURAL_SUBJECTS, *SINGULAR_SUBJECTS, *VERBS["plural"], *VERBS["singular"], *OBJECTS]
    sentences = []
    for number, subjects in (("plural", PLURAL_SUBJECTS), ("singular", SINGULAR_SUBJECTS)):
        for s, v, o in itertools.product(subjects, VERBS[number], OBJECTS):
            sentences.append([s, v, o])
    return ToyLanguage.from_sentences(
        "agreement",
        sentences,
        vocab=vocab,
        description="subject-verb agreement, uniform over the 36 valid 'subject verb object' sentences",
    )


def _balanced(length: int, pairs: Sequence[tuple[str, str]]) -> list[list[str]]:
    out: list[list[str]] = []

    def rec(prefix: list[str], stack: list[int]) -> None:
        remaining = length - len(prefix)
        if remaining == 0:
            if not stack:
                out.append(list(prefix))
            return
        if len(stack) < remaining:  # room to open and still close everything
            for k, (op, _) in enumerate(pairs):
                rec(prefix + [op], stack + [k])
        if stack:
            rec(prefix + [pairs[stack[-1]][1]], stack[:-1])

    rec([], [])
    return out


def brackets_language(length: int = 8, kinds: int = 2) -> ToyLanguage:
    """All well-matched bracket strings of exactly ``length`` over ``kinds`` bracket
    types ("()", "[]", "{}"), uniform. Long-range constraint: a closing bracket must match
    the type of an opener arbitrarily far back. ``length=8, kinds=2``: Catalan(4) * 2^4 =
    224 strings. Notebook 04_marginal_trap."""
    all_pairs = [("(", ")"), ("[", "]"), ("{", "}")]
    if length < 2 or length % 2:
        raise ValueError(f"brackets_language: length must be even and >= 2, got {length}")
    if not 1 <= kinds <= len(all_pairs):
        raise ValueError(f"brackets_language: kinds must be 1..{len(all_pairs)}, got {kinds}")
    pairs = all_pairs[:kinds]
    vocab = [t for p in pairs for t in p]
    return ToyLanguage.from_sentences(
        f"brackets{length}",
        _balanced(length, pairs),
        vocab=vocab,
        description=f"all balanced strings of length {length} over {kinds} bracket kinds, uniform",
    )


def copy_language(length: int = 6, n_attributes: int = 3, n_fillers: int = 2) -> ToyLanguage:
    """An attribute at position 0 that must be repeated at the last position, with
    ``length - 2`` free filler tokens between; uniform. The constraint spans the whole
    sequence. Defaults: 3 attributes (A, B, C), 2 fillers (x, y), 3 * 2^4 = 48 sequences.
    Notebook 04_marginal_trap."""
    if length < 2:
        raise ValueError(f"copy_language: length must be >= 2, got {length}")
    if not 1 <= n_attributes <= 26 or not 1 <= n_fillers <= 26:
        raise ValueError("copy_language: n_attributes and n_fillers must be 1..26")
    attrs = [chr(ord("A") + i) for i in range(n_attributes)]
    fillers = list("xyzwvutsrqponmlkjihgfedcba"[:n_fillers])
    sentences = [[a, *mid, a] for a in attrs for mid in itertools.product(fillers, repeat=length - 2)]
    return ToyLanguage.from_sentences(
        f"copy{length}",
        sentences,
        vocab=[*attrs, *fillers],
        description=f"first token repeated at position {length - 1}, {length - 2} free fillers between, uniform",
    )


# ----------------------------------------------------------- exact conditionals (one state)


def parse_partial(lang: ToyLanguage, partial: Sequence[str | int | None] | np.ndarray | str) -> np.ndarray:
    """A partial sequence -> ids ``(L,)`` with ``lang.mask_id`` at masked positions."""
    ids = lang.encode(list(partial) if not isinstance(partial, str) else partial)
    if ids.shape[0] != lang.length:
        raise ValueError(f"{lang.name}: partial sequence must have length {lang.length}, got {ids.shape[0]}")
    return ids


def masked_positions(lang: ToyLanguage, partial) -> np.ndarray:
    """Sorted indices of the masked positions of ``partial``."""
    return np.flatnonzero(parse_partial(lang, partial) == lang.mask_id)


def consistent_rows(lang: ToyLanguage, state: np.ndarray) -> np.ndarray:
    """Boolean (N,): support rows that agree with the visible positions of ``state``."""
    vis = state != lang.mask_id
    return np.all(lang.sequences[:, vis] == state[vis], axis=1)


def _resolve_positions(lang: ToyLanguage, ids: np.ndarray, positions) -> np.ndarray:
    masked = np.flatnonzero(ids == lang.mask_id)
    if positions is None:
        return masked
    pos = np.asarray(sorted({int(p) for p in positions}), dtype=np.int64)
    if pos.size == 0 or not np.all(np.isin(pos, masked)):
        raise ValueError(f"{lang.name}: positions {list(pos)} must be a non-empty subset of the masked {list(masked)}")
    return pos


def conditional_joint(lang: ToyLanguage, partial, positions=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact joint of the masked positions given the visible ones, by enumeration.

    Returns ``(completions (M, k), probs (M,))``: the distinct values the masked positions
    (or the chosen subset ``positions`` of them, the others marginalised out) take on the
    support, in ascending position order, and their conditional probabilities.
    Raises :class:`ZeroProbabilityContextError` when the visible part has probability 0.
    """
    ids = parse_partial(lang, partial)
    pos = _resolve_positions(lang, ids, positions)
    keep = consistent_rows(lang, ids)
    if not keep.any():
        raise ZeroProbabilityContextError(
            f"{lang.name}: visible tokens {lang.to_text(ids)!r} have probability 0; "
            "fix the visible tokens or mask more positions"
        )
    comps = lang.sequences[keep][:, pos]
    p = lang.probs[keep]
    uniq, inv = np.unique(comps, axis=0, return_inverse=True)
    probs = np.bincount(inv.ravel(), weights=p, minlength=uniq.shape[0])
    return uniq, probs / probs.sum()


def marginals(lang: ToyLanguage, partial, positions=None) -> list[np.ndarray]:
    """Exact marginal ``(V,)`` of each masked position (or of each of ``positions``)
    given the visible tokens: what an ideal token-wise trained masked LM predicts."""
    comps, probs = conditional_joint(lang, partial, positions)
    return [np.bincount(comps[:, j], weights=probs, minlength=lang.vocab_size) for j in range(comps.shape[1])]


def _product_mass(margs: list[np.ndarray], comps: np.ndarray) -> np.ndarray:
    """Product-of-marginals probability of each row of ``comps``."""
    q = np.ones(comps.shape[0])
    for j, m in enumerate(margs):
        q = q * m[comps[:, j]]
    return q


def parallel_invalid_probability(lang: ToyLanguage, partial, positions=None) -> float:
    """Closed-form probability that one parallel step yields an invalid sequence (§4).

    Decoding model: the chosen masked positions ``S`` (default: all masked) are sampled in
    ONE step, independently, each from its exact marginal given the visible tokens; the
    remaining masked positions are then filled from the exact conditional given
    everything visible, which is always possible when the ``S`` values occur in the
    support. So invalidity comes only from the parallel step:

        P(invalid) = 1 - sum_{s in proj_S(support | visible)} prod_{i in S} m_i(s_i).
    """
    comps, _ = conditional_joint(lang, partial, positions)
    margs = marginals(lang, partial, positions)
    return float(max(0.0, 1.0 - _product_mass(margs, comps).sum()))


def total_correlation(lang: ToyLanguage, partial, positions=None) -> float:
    """Total correlation (nats) of the masked positions given the visible ones:
    ``KL(joint || product of marginals)``, the information a factorised step cannot
    represent (0 iff the positions are conditionally independent)."""
    comps, probs = conditional_joint(lang, partial, positions)
    q = _product_mass(marginals(lang, partial, positions), comps)
    return float(max(0.0, np.sum(probs * (np.log(probs) - np.log(q)))))


def _sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs (n, V)`` by inverse CDF; zero-probability tokens are
    never drawn (``u`` is scaled to ``[0, cdf[-1])``)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return (u[:, None] >= cdf).sum(axis=1)


def simulate_parallel_decoding(
    lang: ToyLanguage,
    partial,
    n_samples: int = 100_000,
    rng: np.random.Generator | int | None = None,
    positions=None,
) -> float:
    """Monte-Carlo estimate of :func:`parallel_invalid_probability`: sample the chosen
    positions independently from their marginals, fill the remaining masked positions
    from the exact conditional (from their marginals when no valid completion exists),
    and count invalid full sequences with :meth:`ToyLanguage.is_valid`."""
    rng = np.random.default_rng(rng)
    n = int(n_samples)
    if n < 1:
        raise ValueError("simulate_parallel_decoding: n_samples must be >= 1")
    ids = parse_partial(lang, partial)
    pos = _resolve_positions(lang, ids, positions)
    masked = np.flatnonzero(ids == lang.mask_id)
    rest = np.setdiff1d(masked, pos)
    margs = marginals(lang, ids, positions=masked)  # raises on a zero-probability context
    by_pos = dict(zip(masked.tolist(), margs))
    out = np.tile(ids, (n, 1))
    for p in pos:
        out[:, p] = rng.choice(lang.vocab_size, size=n, p=by_pos[int(p)])
    if rest.size:
        vals, inv = np.unique(out[:, pos], axis=0, return_inverse=True)
        inv = inv.ravel()
        for j, v in enumerate(vals):
            rows = np.flatnonzero(inv == j)
            state = ids.copy()
            state[pos] = v
            if consistent_rows(lang, state).any():
                comps, probs = conditional_joint(lang, state)
                pick = rng.choice(comps.shape[0], size=rows.size, p=probs)
                out[np.ix_(rows, rest)] = comps[pick]
            else:  # no valid completion: fill arbitrarily, the sequence is invalid anyway
                for p in rest:
                    out[rows, p] = rng.choice(lang.vocab_size, size=rows.size, p=by_pos[int(p)])
    return float(1.0 - lang.valid_mask(out).mean())


# ------------------------------------------------------------------ multi-step decoding


def exact_marginal_fn(lang: ToyLanguage, chunk: int = 2048) -> MarginalFn:
    """The ideal token-wise model as a :data:`MarginalFn`: exact marginals given the
    visible tokens of each row. Visible positions get a one-hot row; a row whose visible
    part has probability 0 gets uniform rows (such a row is already invalid)."""
    V, L = lang.vocab_size, lang.length
    onehot = np.zeros((lang.sequences.shape[0], L, V))
    np.put_along_axis(onehot, lang.sequences[:, :, None], 1.0, axis=2)
    onehot = onehot.reshape(-1, L * V)

    def fn(batch: np.ndarray) -> np.ndarray:
        batch = np.atleast_2d(np.asarray(batch, dtype=np.int64))
        _, first, inv = np.unique(lang._encode_rows(batch), return_index=True, return_inverse=True)
        uniq = batch[first]
        res = np.empty((uniq.shape[0], L * V))
        for a in range(0, uniq.shape[0], chunk):
            u = uniq[a : a + chunk]
            match = np.all((lang.sequences[None] == u[:, None]) | (u[:, None] == lang.mask_id), axis=2)
            w = match * lang.probs[None]
            z = w.sum(axis=1, keepdims=True)
            m = (w @ onehot) / np.where(z > 0, z, 1.0)
            m[z[:, 0] == 0] = 1.0 / V
            res[a : a + chunk] = m
        return res.reshape(-1, L, V)[inv.ravel()]

    return fn


def marginal_fn_from_logits(logits_fn: Callable, lang: ToyLanguage) -> MarginalFn:
    """Wrap a model's ``logits_fn(ids (B, L)) -> logits (B, L, V')`` (numpy or torch,
    ``V' >= V``; ids follow ``lang``'s layout, mask = ``lang.mask_id``) as a
    :data:`MarginalFn`: softmax over the ``V`` language ids in float64, mask and any
    extra ids dropped. The hook for a masked LM trained on a toy language."""

    def fn(batch: np.ndarray) -> np.ndarray:
        out = logits_fn(np.asarray(batch, dtype=np.int64))
        if hasattr(out, "detach"):  # torch tensor
            out = out.detach().to("cpu").double().numpy()
        logits = np.asarray(out, dtype=np.float64)[..., : lang.vocab_size]
        logits = logits - logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)

    return fn


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion ``k / n``."""
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


ORDERS = ("left_to_right", "random")


class ModelMarginalDecoder:
    """Parallel decoder with ``k`` tokens per step whose marginals come from ``marginal_fn``
    (default: :func:`exact_marginal_fn`, the reference "exact-marginal decoder").

    Start from the fully masked sequence; in each step choose ``min(k, #masked)``
    masked positions (``order="left_to_right"``: the leftmost; ``"random"``: a uniformly
    random subset) and sample their tokens independently from the marginals given what is
    committed so far. ``n_steps = ceil(L / k)``. Paper §4 (issue (ii)): the trap grows
    with k. Notebooks 04_marginal_trap, 02_five_properties.
    """

    def __init__(self, lang: ToyLanguage, marginal_fn: MarginalFn | None = None):
        self.lang = lang
        self.marginal_fn = marginal_fn if marginal_fn is not None else exact_marginal_fn(lang)

    def _check(self, k: int, order: str) -> int:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        k = int(k)
        if not 1 <= k <= self.lang.length:
            raise ValueError(f"tokens_per_step must be in 1..{self.lang.length} for {self.lang.name}, got {k}")
        return k

    def probs(self, batch: np.ndarray) -> np.ndarray:
        """Marginals ``(B, L, V)`` from ``marginal_fn``, checked and renormalised."""
        batch = np.atleast_2d(np.asarray(batch, dtype=np.int64))
        p = np.asarray(self.marginal_fn(batch), dtype=np.float64)
        B, L, V = batch.shape[0], self.lang.length, self.lang.vocab_size
        if p.ndim != 3 or p.shape[:2] != (B, L) or p.shape[2] not in (V, V + 1):
            raise ValueError(f"marginal_fn must return (B, L, V) = ({B}, {L}, {V}) or V+1 columns, got {p.shape}")
        p = p[..., :V]
        if np.any(p < 0) or not np.all(np.isfinite(p)):
            raise ValueError("marginal_fn returned negative or non-finite probabilities")
        z = p.sum(axis=-1, keepdims=True)
        masked = batch == self.lang.mask_id
        if np.any(z[masked][:, 0] <= 0):
            raise ValueError("marginal_fn returned an all-zero row at a masked position")
        return p / np.where(z > 0, z, 1.0)

    # -- exact ------------------------------------------------------------------------
    def invalid_exact(self, k: int, order: str = "left_to_right") -> float:
        """Exact probability that decoding ends in an invalid sequence.

        Forward recursion over committed states: only states inside the support are
        kept (any other state can no longer become valid). For each state and chosen set
        ``S = (s_1..s_k)`` the mass lost to invalid outcomes is accumulated as
        ``sum_j sum_{valid prefix a_<j} prod_{t<j} m_t(a_t) * sum_{v: (a_<j, v) invalid} m_j(v)``,
        a sum of non-negative terms; with exact marginals and ``k = 1`` every term has an
        exactly-zero marginal, so the result is exactly 0.
        """
        k = self._check(k, order)
        lang, V = self.lang, self.lang.vocab_size
        seqs = lang.sequences
        states = np.full((1, lang.length), lang.mask_id, dtype=np.int64)
        reach = np.ones(1)
        invalid = 0.0
        while states.shape[0] and np.any(states[0] == lang.mask_id):
            M = self.probs(states)
            match = np.all((seqs[None] == states[:, None]) | (states[:, None] == lang.mask_id), axis=2)
            patterns, pat_inv = np.unique(states == lang.mask_id, axis=0, return_inverse=True)
            pat_inv = pat_inv.ravel()
            new_states, new_w = [], []
            for pi, pattern in enumerate(patterns):
                g = np.flatnonzero(pat_inv == pi)
                free = np.flatnonzero(pattern)
                kk = min(k, free.size)
                subsets = [tuple(free[:kk])] if order == "left_to_right" else list(itertools.combinations(free, kk))
                u_all, n_all = np.nonzero(match[g])
                for S in subsets:
                    S = np.asarray(S)
                    key = np.unique(np.column_stack([u_all, seqs[n_all][:, S]]), axis=0)
                    u, vals = key[:, 0], key[:, 1:]
                    Mg = M[g[u]]  # (P, L, V) marginals of each pair's state
                    rw = reach[g[u]] / len(subsets)
                    for j in range(kk):  # mass of first leaving the support at coordinate j
                        pre, first, pinv = np.unique(key[:, : 1 + j], axis=0, return_index=True, return_inverse=True)
                        pinv = pinv.ravel()
                        allowed = np.zeros((pre.shape[0], V), dtype=bool)
                        allowed[pinv, vals[:, j]] = True
                        rows = first[:, None]
                        w_pre = rw[first] * np.prod(Mg[rows, S[:j], vals[rows, np.arange(j)]], axis=1)
                        invalid += float(np.sum(w_pre * np.where(allowed, 0.0, Mg[first, S[j], :]).sum(axis=1)))
                    w = rw * np.prod(Mg[np.arange(u.size)[:, None], S, vals], axis=1)
                    ns = states[g[u]].copy()
                    ns[:, S] = vals
                    new_states.append(ns)
                    new_w.append(w)
            allst = np.concatenate(new_states)
            uniq, inv = np.unique(allst, axis=0, return_inverse=True)
            reach = np.bincount(inv.ravel(), weights=np.concatenate(new_w), minlength=uniq.shape[0])
            keep = reach > 0
            states, reach = uniq[keep], reach[keep]
        return float(min(1.0, invalid))

    # -- simulation ---------------------------------------------------------------------
    def decode(
        self, n: int, k: int, order: str = "left_to_right", rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """Run the decoder ``n`` times in parallel; returns the final ids ``(n, L)``."""
        k = self._check(k, order)
        rng = np.random.default_rng(rng)
        lang = self.lang
        x = np.full((int(n), lang.length), lang.mask_id, dtype=np.int64)
        rows = np.arange(x.shape[0])[:, None]
        while np.any(x == lang.mask_id):
            masked = x == lang.mask_id
            kk = min(k, int(masked[0].sum()))  # every chain has the same number left
            if order == "left_to_right":
                keys = np.where(masked, np.arange(lang.length)[None].astype(float), np.inf)
            else:
                keys = np.where(masked, rng.random(x.shape), np.inf)
            chosen = np.argsort(keys, axis=1, kind="stable")[:, :kk]
            P = self.probs(x)
            for j in range(kk):
                col = chosen[:, j]
                x[rows[:, 0], col] = _sample_categorical(P[rows[:, 0], col], rng)
        return x

    def invalid_sim(
        self, n: int, k: int, order: str = "left_to_right", rng: np.random.Generator | int | None = None
    ) -> tuple[float, float, float]:
        """Simulated invalid rate and its 95% Wilson interval ``(rate, low, high)``."""
        x = self.decode(n, k, order, rng)
        bad = int((~self.lang.valid_mask(x)).sum())
        lo, hi = wilson(bad, x.shape[0])
        return bad / x.shape[0], lo, hi


def invalid_rate_by_tokens_per_step(
    lang: ToyLanguage,
    tokens_per_step: Sequence[int],
    order: str = "left_to_right",
    n_samples: int = 20_000,
    seed: int = 0,
    marginal_fn: MarginalFn | None = None,
    exact: bool = True,
    marginals_label: str | None = None,
) -> pd.DataFrame:
    """Invalid rate of full parallel decoding vs tokens committed per step (§4,
    issue (ii); notebook 04_marginal_trap, figure "invalid rate vs k").

    For each ``k`` the decoder of :class:`ModelMarginalDecoder` runs from the fully masked
    sequence, exactly (``invalid_exact``; NaN when ``exact=False``) and by simulation with
    ``n_samples`` chains (``invalid_sim`` with a 95% Wilson interval). With exact marginals
    ``k = 1`` is ancestral sampling (rate exactly 0) and ``k = L`` is the one-step closed form
    :func:`parallel_invalid_probability` from the fully masked state. Deterministic given
    ``seed`` (the generator for ``k`` is seeded with ``(seed, k)``).
    """
    dec = ModelMarginalDecoder(lang, marginal_fn)
    label = marginals_label or ("exact" if marginal_fn is None else "model")
    rows = []
    for k in tokens_per_step:
        k = dec._check(k, order)
        ex = dec.invalid_exact(k, order) if exact else float("nan")
        sim, lo, hi = dec.invalid_sim(n_samples, k, order, np.random.default_rng((int(seed), k)))
        rows.append(
            dict(
                language=lang.name,
                order=order,
                marginals=label,
                tokens_per_step=k,
                n_steps=math.ceil(lang.length / k),
                n_samples=int(n_samples),
                invalid_exact=ex,
                invalid_sim=sim,
                sim_ci_low=lo,
                sim_ci_high=hi,
            )
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- paper example


def likes_example(obj: str = "tennis") -> pd.DataFrame:
    """The paper's "I likes tennis" example, exactly (§4, issue (ii); notebook
    04_marginal_trap draws ``joint`` and ``product`` as two heatmaps).

    Agreement language, partial ``"_ _ <obj>"``: one row per (subject, verb) with the
    exact ``joint`` P(subject, verb | obj), the ``product`` of the two marginals and
    ``valid``. ``df.attrs`` holds ``invalid_mass`` (product mass on invalid pairs, 4/9 for
    the uniform language) and ``total_correlation`` (nats).
    """
    lang = agreement_language()
    partial = ["_", "_", obj]
    comps, probs = conditional_joint(lang, partial)
    m_subj, m_verb = marginals(lang, partial)
    joint = {(int(a), int(b)): float(p) for (a, b), p in zip(comps, probs)}
    subjects = [*PLURAL_SUBJECTS, *SINGULAR_SUBJECTS]
    verbs = [*VERBS["plural"], *VERBS["singular"]]
    rows = []
    for s in subjects:
        for v in verbs:
            i, j = lang.vocab.index(s), lang.vocab.index(v)
            rows.append(
                dict(
                    subject=s,
                    verb=v,
                    joint=joint.get((i, j), 0.0),
                    product=float(m_subj[i] * m_verb[j]),
                    valid=(i, j) in joint,
                )
            )
    df = pd.DataFrame(rows)
    df["subject"] = pd.Categorical(df["subject"], categories=subjects, ordered=True)
    df["verb"] = pd.Categorical(df["verb"], categories=verbs, ordered=True)
    df.attrs["invalid_mass"] = parallel_invalid_probability(lang, partial)
    df.attrs["total_correlation"] = total_correlation(lang, partial)
    df.attrs["partial"] = " ".join(partial)
    return df
