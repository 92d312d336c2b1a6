"""Comparing models' pass@k curves on the same problems: paired bootstrap over problems,
pointwise and simultaneous (sup-t) bands of the difference, the crossover, coverage, ΔSE and
the one-sentence verdict.

Every function takes per-problem arrays `n` and `c` (problems may have different n, as when
seeds are pooled or a run was topped up); curves are reported for k = 1..min(n).
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass

import numpy as np
import pandas as pd

from boundary.passk.estimate import curves, pass_at_k
from boundary.passk.pairs import paired


def bootstrap_indices(problems: int, B: int, seed: int) -> np.ndarray:
    """B resamples of problem indices (B, problems), seeded; shared by every model (paired)."""
    return np.random.default_rng(seed).integers(0, problems, size=(B, problems))


def _resampled_means(per_problem: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over each resample's problems: (B, K) from (P, K) and (B, P) indices."""
    P = per_problem.shape[0]
    weights = np.zeros((idx.shape[0], P))
    np.add.at(weights, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return weights @ per_problem / P


def percentile_interval(values: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """The `ci` percentile interval of bootstrap replicates along axis 0 (rows that are NaN, such as
    resamples that could not be refitted, are left out): the one bootstrap interval of pass@k curves
    and of their projections past n. A column with no replicate at all (pass@infinity of a model
    that solved nothing) gets NaN, quietly: the tables say why."""
    a = (1 - ci) / 2
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        return np.nanquantile(values, a, axis=0), np.nanquantile(values, 1 - a, axis=0)


@dataclass(frozen=True)
class Curves:
    """Mean pass@k curves of several models on the same problems, with bootstrap replicates."""

    k: np.ndarray  # 1..K
    mean: dict[str, np.ndarray]  # model -> (K,) pass@k over problems
    boot: dict[str, np.ndarray]  # model -> (B, K) replicate means, same resamples for all models
    ci: float  # confidence level of the intervals

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of bootstrap replicates along axis 0."""
        return percentile_interval(values, self.ci)

    def table(self) -> pd.DataFrame:
        """Long table: model, k, pass_at_k, ci_low, ci_high."""
        rows = []
        for model, m in self.mean.items():
            lo, hi = self.interval(self.boot[model])
            rows.append(pd.DataFrame({"model": model, "k": self.k, "pass_at_k": m, "ci_low": lo, "ci_high": hi}))
        return pd.concat(rows, ignore_index=True)

    def difference(self, a: str, b: str) -> pd.DataFrame:
        """Paired difference b - a per k: k, diff, its pointwise interval (ci_low, ci_high) and the
        simultaneous band over all k at once (band_low, band_high; see `simultaneous_band`)."""
        d = self.boot[b] - self.boot[a]
        est = self.mean[b] - self.mean[a]
        lo, hi = self.interval(d)
        band_lo, band_hi = simultaneous_band(est, d, self.ci)
        return pd.DataFrame({"k": self.k, "diff": est, "ci_low": lo, "ci_high": hi,
                             "band_low": band_lo, "band_high": band_hi})


def simultaneous_band(estimate: np.ndarray, boot: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Sup-t band: estimate +- q * sd(k), q the `ci` quantile over replicates of max_k |boot - estimate| / sd.

    Covers the whole curve at once with probability ~`ci` (Montiel Olea and Plagborg-Moller 2019),
    so a claim at any k, or at many k together, keeps its level; a pointwise interval does not when
    one reads the k where it happens to exclude zero. `boot` is (replicates, K); where every
    replicate equals the estimate (sd 0, e.g. two identical models) the band is the estimate itself.
    """
    estimate, boot = np.asarray(estimate, float), np.asarray(boot, float)
    sd = boot.std(axis=0)
    live = sd > 0
    if not live.any():
        return estimate.copy(), estimate.copy()
    t = np.max(np.abs(boot[:, live] - estimate[live]) / sd[live], axis=1)
    q = float(np.quantile(t, ci))
    return estimate - q * sd, estimate + q * sd


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


def sampling_efficiency_gap(curves_: Curves, base: str, rl: str, K: int | None = None) -> dict:
    """Delta_SE = base pass@K - RL pass@1 (K defaults to the largest k), with its paired CI.

    The paper's measure of how far RL's single-sample accuracy stays below the base model's
    own reach: 0 would mean RL makes one sample as good as the base's K samples.
    """
    K = int(curves_.k[-1]) if K is None else int(K)
    value = curves_.mean[base][K - 1] - curves_.mean[rl][0]
    lo, hi = curves_.interval(curves_.boot[base][:, K - 1] - curves_.boot[rl][:, 0])
    return {"K": K, "delta_se": float(value), "ci_low": float(lo), "ci_high": float(hi)}


def _standing(low: float, high: float) -> str:
    """'ahead of' / 'behind' / 'indistinguishable from', by whether the band excludes 0."""
    if low > 0:
        return "ahead of"
    if high < 0:
        return "behind"
    return "indistinguishable from"


def _runs(ks: np.ndarray) -> str:
    """k values as ranges of consecutive k: '1-4, 9, 12-16'."""
    if ks.size == 0:
        return "none"
    cuts = np.flatnonzero(np.diff(ks) != 1) + 1
    return ", ".join(f"{g[0]}" if g.size == 1 else f"{g[0]}-{g[-1]}" for g in np.split(ks, cuts))


def verdict(diff: pd.DataFrame, ref: str, treated: str, treatment: str = "RL") -> str:
    """One paragraph on the paired difference treated - ref, read from the simultaneous band.

    `diff` is `Curves.difference(ref, treated)` (columns k, diff, band_low, band_high). The band
    covers the whole curve at once, so the k where it excludes zero are claims that hold together:
    "ref overtakes treated" is said only where the whole band is below zero. `treatment` names
    what made `treated` from `ref` (e.g. "RL" or "distillation").
    """
    missing = {"k", "band_low", "band_high"} - set(diff.columns)
    if missing:
        raise ValueError(f"verdict reads the simultaneous band: columns {sorted(missing)} missing "
                         "(use Curves.difference)")
    first, last = diff.iloc[0], diff.iloc[-1]
    s1, sK = _standing(first["band_low"], first["band_high"]), _standing(last["band_low"], last["band_high"])
    k = diff["k"].to_numpy(dtype=np.int64)
    ahead, behind = k[diff["band_low"].to_numpy() > 0], k[diff["band_high"].to_numpy() < 0]
    said = f"At k=1 {treated} is {s1} {ref}; at k={int(last['k'])} {treated} is {sK} {ref}: "
    if sK == "behind":
        said += f"{ref} reaches problems {treated} no longer does, so {treatment} narrowed the boundary."
    elif sK == "ahead of":
        said += f"{treated} reaches problems {ref} does not, so {treatment} widened the boundary here."
    elif s1 == "ahead of":
        said += f"the advantage of {treated} vanishes at large k (sharper sampling, same boundary)."
    elif s1 == "behind":
        said += f"{treated} starts behind {ref} and catches up at large k."
    else:
        said += "no difference is resolved at either end."
    return said + (f" Over all k at once (simultaneous band): {treated} ahead at k "
                   f"{_runs(ahead)}; {ref} ahead at k {_runs(behind)}.")


def overview(table: pd.DataFrame, ref: str, treated: str, B: int, ci: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every benchmark of a counts table at a glance (the paper's Fig. 2 grid and its numbers).

    Returns (curves, summary): the long curve table of `ref` and `treated` with a `benchmark`
    column, and one summary row per benchmark: problems, K (largest k), pass@1 and pass@K of each,
    the paired difference treated - ref at k=1 and k=K with intervals, and the crossover k.
    """
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
