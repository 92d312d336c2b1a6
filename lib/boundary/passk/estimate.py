"""The unbiased pass@k estimator for every k up to n, computed once per distinct (n, c).

The estimator (Chen et al. 2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), the chance that k samples drawn without replacement
contain a correct one. Here it is computed for all k at once as
    log C(n-c,k)/C(n,k) = sum_{j<k} log1p(-c/(n-j)),   pass@k = -expm1(that sum),
a running sum of small terms, so n in the thousands neither overflows (no binomials are
formed) nor cancels (1 - ratio is taken by expm1, exact near 0). Entries with k > n are
NaN, never 1.0: the reference human-eval code returns 1.0 there (its `n - c < k` shortcut),
which silently reports a k that was never sampled as solved.
"""
from __future__ import annotations

import numpy as np

# Largest number of running-sum cells held at once (pairs x k); bounds memory on any call shape.
_CHUNK_CELLS = 1 << 22


def _check(n: np.ndarray, c: np.ndarray) -> None:
    """Reject counts that are not counts: the culprits are named by position."""
    bad = (n < 1) | (c < 0) | (c > n)
    if np.any(bad):
        where = np.argwhere(bad)[:5].tolist()
        raise ValueError(f"invalid counts (need 0 <= c <= n, n >= 1) at positions {where}")


def _running(un: np.ndarray, uc: np.ndarray, kmax: int) -> np.ndarray:
    """pass@k for k = 1..kmax of distinct pairs (un, uc) (1-D float arrays): (pairs, kmax), NaN where k > n."""
    un, uc = un[:, None], uc[:, None]
    j = np.arange(kmax, dtype=np.float64)[None, :]  # draw index 0..kmax-1
    remaining = un - j  # samples left before draw j
    with np.errstate(divide="ignore", invalid="ignore"):
        # log P(draw j misses | earlier draws missed); -inf once the wrong ones run out.
        step = np.where(remaining - uc > 0, np.log1p(-uc / remaining), -np.inf)
    step = np.where(uc == 0, 0.0, step)  # no correct sample: never solved
    out = -np.expm1(np.cumsum(step, axis=1)) + 0.0  # + 0.0 turns -0.0 into 0.0
    out[np.broadcast_to(j + 1 > un, out.shape)] = np.nan  # k > n: not estimable from n samples
    return out


def curves(n, c, kmax: int | None = None) -> np.ndarray:
    """Per-problem pass@k for k = 1..kmax: an array (problems, kmax), NaN where k > n.

    kmax defaults to the largest n. Unique (n, c) pairs are computed once, so a thousand
    problems with n = 1024 cost at most ~1025 running sums per distinct n.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    c = np.asarray(c, dtype=np.int64).ravel()
    if n.shape != c.shape:
        raise ValueError(f"n and c differ in shape: {n.shape} vs {c.shape}")
    _check(n, c)
    kmax = int(n.max()) if kmax is None else int(kmax)
    pairs, inverse = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True)
    out = _running(pairs[:, 0].astype(np.float64), pairs[:, 1].astype(np.float64), kmax)
    return out[inverse.ravel()]


def pass_at_k(n, c, k):
    """pass@k = 1 - C(n-c,k)/C(n,k), numpy-broadcast over n, c and k; NaN where k > n.

    Exact for every 1 <= k <= n (to floating point), stable for n in the thousands.
    Each distinct (n, c) of the broadcast of n and c is computed once, as one running sum up to
    the largest k asked (capped at its n), in chunks of bounded size, and every cell of the answer
    is looked up in those sums: the natural grid call `pass_at_k(n[:, None], c[:, None], ks[None, :])`
    costs the distinct pairs' sums plus memory proportional to its answer.
    Raises ValueError for k < 1 or counts outside 0 <= c <= n.
    """
    n, c, k = (np.asarray(x, dtype=np.int64) for x in (n, c, k))
    shape = np.broadcast_shapes(n.shape, c.shape, k.shape)
    if np.any(k < 1):
        raise ValueError("k must be >= 1")
    nb, cb = np.broadcast_arrays(n, c)  # the (n, c) grid alone: problems, not problems x k
    flat_n, flat_c = nb.ravel(), cb.ravel()
    key = flat_n * (int(flat_c.max()) + 1) + flat_c  # one integer per (n, c): unique without 2-D sorts
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    un, uc = flat_n[first], flat_c[first]
    _check(un, uc)
    need = np.minimum(un, int(k.max()))  # length of each pair's running sum
    pair = np.broadcast_to(inverse.reshape(nb.shape), shape)  # views: nothing answer-sized yet
    kk, nn = np.broadcast_to(k, shape), np.broadcast_to(nb, shape)
    out = np.full(shape, np.nan)
    start = 0
    while start < un.size:  # chunks of pairs whose running sums fit in _CHUNK_CELLS
        stop, width = start + 1, int(need[start])
        while stop < un.size and (stop - start + 1) * max(width, int(need[stop])) <= _CHUNK_CELLS:
            width = max(width, int(need[stop]))
            stop += 1
        block = _running(un[start:stop].astype(np.float64), uc[start:stop].astype(np.float64), width)
        if start == 0 and stop == un.size:  # every pair in one block: one gather, no masks
            out[...] = block[pair, np.minimum(kk, width) - 1]
        else:
            mask = (pair >= start) & (pair < stop)
            out[mask] = block[pair[mask] - start, np.minimum(kk[mask], width) - 1]
        start = stop
    out[kk > nn] = np.nan  # k > n: not estimable from n samples
    return out if shape else float(out)


def mean_curve(n, c) -> np.ndarray:
    """pass@k averaged over problems for k = 1..min(n) (every problem must reach k)."""
    return curves(n, c, kmax=int(np.min(n))).mean(axis=0)
