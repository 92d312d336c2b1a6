"""Extrapolated pass@k with bands: bootstrap over problems of the fits, the predicted crossover,
and intervals conditional on the benchmark.

Two intervals answer two questions. The bootstrap over problems (refitting on every resample)
asks: on *another* benchmark drawn like this one, where would the curve lie? It generalises to
new problems. The conditional interval holds the problems fixed and draws each problem's success
rate from its posterior under the fit: on *this* benchmark, how sure are we of pass@k given the
samples we have? It is narrower, and it is the one to quote for a leaderboard number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from boundary.passk.compare import bootstrap_indices, percentile_interval
from boundary.passk.distribution import Fit, _grid, _pairs, _predict, extrapolate, fit, posterior_draws


@dataclass(frozen=True)
class PredictedCrossover:
    """The first k of the grid at which the reference's predicted pass@k reaches the treated's."""

    k: float | None  # on the full problem set; None if it never does on the grid (np.inf: only at k = inf)
    ci_low: float  # percentile interval over the bootstrap replicates that cross
    ci_high: float
    never: float  # share of replicates that never cross on the grid
    kmax: float  # the grid's largest k
    unsolved: tuple[str, ...] = ()  # the models that solved no problem (no curve to cross: pass@k 0 at every k)

    def __str__(self) -> str:
        if self.unsolved:
            return (f"no crossover to predict: {' and '.join(self.unsolved)} solved no problem "
                    "(pass@k 0 at every finite k, pass@infinity unidentified)")
        if self.k is None:
            return f"no predicted crossover up to k={self.kmax:g} ({self.never:.0%} of bootstrap fits none either)"
        return (f"predicted crossover at k={self.k:g} ({self.ci_low:g}-{self.ci_high:g} over bootstrap fits; "
                f"{self.never:.0%} of them never cross up to k={self.kmax:g})")


@dataclass(frozen=True)
class Projection:
    """Predicted mean pass@k of several models on the same problems, with bootstrap refits."""

    k: np.ndarray  # the k predicted (floats; np.inf for pass@infinity)
    n: int  # the smallest n sampled: past it the curves are extrapolations
    fits: dict[str, Fit]  # model -> its fit on all problems
    mean: dict[str, np.ndarray]  # model -> (K,) predicted pass@k
    boot: dict[str, np.ndarray]  # model -> (B, K) predictions of the refits, same resamples for all models
    unsolvable: dict[str, np.ndarray]  # model -> (B,) unsolvable share of each refit
    failed: dict[str, int]  # model -> resamples in which it solved nothing: pass@k 0, unsolvable share NaN
    ci: float  # confidence level of the intervals

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of bootstrap replicates along axis 0, failed refits (NaN) left out."""
        return percentile_interval(values, self.ci)

    def table(self) -> pd.DataFrame:
        """Long table: model, k, pass_at_k, ci_low, ci_high, extrapolated (k > n)."""
        rows = []
        for model, m in self.mean.items():
            lo, hi = self.interval(self.boot[model])
            rows.append(pd.DataFrame({"model": model, "k": self.k, "pass_at_k": m, "ci_low": lo, "ci_high": hi,
                                      "extrapolated": self.k > self.n}))
        return pd.concat(rows, ignore_index=True)

    def boundary(self) -> pd.DataFrame:
        """One row per model: the fit's parameters, the unsolvable share with its bootstrap interval."""
        rows = {}
        for model, f in self.fits.items():
            lo, hi = self.interval(self.unsolvable[model])
            rows[model] = {**f.row(), "unsolvable ci_low": float(lo), "unsolvable ci_high": float(hi),
                           "refits solving none": self.failed[model]}
        return pd.DataFrame(rows).T[["unsolvable", "unsolvable ci_low", "unsolvable ci_high", "pass@inf", "alpha",
                                     "beta", "scale", "loglik", "problems", "refits solving none"]].rename_axis("model")

    def outside_boundary(self) -> str:
        """One line per the notebooks' findings: each model's fitted unsolvable share with its interval."""
        parts = []
        for model, r in self.boundary().iterrows():
            if not self.fits[model].solved:
                parts.append(f"{model} unidentified (it solved no problem)")
            else:
                parts.append(f"{model} {r['unsolvable']:.3f} [{r['unsolvable ci_low']:.3f}, {r['unsolvable ci_high']:.3f}]")
        return "outside the boundary (fitted unsolvable share): " + "; ".join(parts)

    def crossover(self, ref: str, treated: str) -> PredictedCrossover:
        """First k on the grid with ref's predicted pass@k >= treated's, with its bootstrap spread;
        none when either model solved no problem (its curve is 0 throughout: nothing is crossed)."""
        unsolved = tuple(m for m in (ref, treated) if not self.fits[m].solved)
        if unsolved:
            return PredictedCrossover(k=None, ci_low=np.nan, ci_high=np.nan, never=np.nan, kmax=float(self.k[-1]),
                                      unsolved=unsolved)
        def first(r, t):
            caught = r >= t
            return np.where(caught.any(axis=-1), self.k[np.argmax(caught, axis=-1)], np.nan)

        k0 = float(first(self.mean[ref], self.mean[treated]))
        finite = np.isfinite(self.k)  # pass@inf is NaN (unidentified) for a resample that solved nothing
        fitted = ~(np.isnan(self.boot[ref][:, finite]).any(axis=1) | np.isnan(self.boot[treated][:, finite]).any(axis=1))
        reps = first(self.boot[ref][fitted], self.boot[treated][fitted])
        crossed = reps[~np.isnan(reps)]
        a = (1 - self.ci) / 2
        lo, hi = np.quantile(crossed, [a, 1 - a], method="inverted_cdf") if crossed.size else (np.nan, np.nan)
        return PredictedCrossover(k=None if np.isnan(k0) else k0, ci_low=float(lo), ci_high=float(hi),
                                  never=float(np.mean(np.isnan(reps))), kmax=float(self.k[-1]))


def project(counts: dict[str, tuple], ks, B: int = 100, ci: float = 0.95, seed: int = 0) -> Projection:
    """Fit every model, predict pass@k at `ks` (any k >= 1, np.inf included), and refit on B paired
    bootstrap resamples of the problems (the same resamples for every model, as `bootstrap_curves`).

    `counts` maps model -> (n, c) over the same problems in the same order. A resample changes only
    how often each distinct (n, c) counts, so each refit starts from the full fit and costs a few
    likelihood passes over the distinct pairs. A resample in which a model solves nothing predicts
    pass@k = 0 at every finite k (the likelihood's limit, `Fit.none_solved`), and its unsolvable share
    and pass@infinity are NaN: left out of those intervals and counted in `failed`. A model that
    solved nothing at all is reported the same way (pass@k 0, pass@infinity unidentified).
    """
    sizes = {m: np.size(c) for m, (_, c) in counts.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"models must cover the same problems for a paired comparison: {sizes}")
    ks = np.asarray(ks, dtype=np.float64).ravel()
    P = next(iter(sizes.values()))
    idx = bootstrap_indices(P, B, seed)
    weights = np.zeros((B, P))
    np.add.at(weights, (np.arange(B)[:, None], idx), 1.0)
    fits, mean, boot, unsolvable, failed, nmin = {}, {}, {}, {}, {}, None
    for model, (n, c) in counts.items():
        un, uc, inverse = _pairs(n, c)
        nmin = int(np.min(np.broadcast_to(n, np.shape(c)))) if nmin is None else min(nmin, int(np.min(n)))
        fits[model] = fit(n, c)
        t = _grid(int(un.max()))
        mean[model] = extrapolate(n, c, ks, fitted=fits[model])
        reps, zero = np.empty((B, ks.size)), np.empty(B)
        for b in range(B):
            f = fit(n, c, weights=weights[b], start=fits[model] if fits[model].solved else None)
            per = _predict(f, un, uc, ks, t)
            reps[b] = np.bincount(inverse, weights=weights[b], minlength=un.size) @ per / P
            zero[b] = f.unsolvable
        boot[model], unsolvable[model], failed[model] = reps, zero, int(np.isnan(zero).sum())
    return Projection(k=ks, n=nmin, fits=fits, mean=mean, boot=boot, unsolvable=unsolvable, failed=failed, ci=ci)


def conditional_intervals(n, c, ks, fitted: Fit, draws: int = 1000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """pass@k of *these* problems with the benchmark held fixed: k, cond_low, cond_high.

    Each problem's success rate is drawn from its posterior under `fitted` (the zero-inflated
    scaled Beta as the prior: a flat or Jeffreys Beta prior would credit every problem never solved
    in n samples with pass@n near 0.3), and the mean of 1 - (1 - p)^k over the problems is taken
    per draw; the interval is the draws' percentile interval.
    """
    ks = np.asarray(ks, dtype=np.float64).ravel()
    p = posterior_draws(fitted, n, c, draws, np.random.default_rng(seed))
    means = np.empty((draws, ks.size))
    for j, k in enumerate(ks):  # one k at a time: memory of one (draws, problems) array
        means[:, j] = (p > 0).mean(axis=1) if np.isinf(k) else -np.expm1(k * np.log1p(-p)).mean(axis=1)
    a = (1 - ci) / 2
    return pd.DataFrame({"k": ks, "cond_low": np.quantile(means, a, axis=0), "cond_high": np.quantile(means, 1 - a, axis=0)})
