"""How many samples per problem a question needs: a planner by simulation from pilot counts.

Given pilot counts of two models on the same problems (say n = 16), each problem's success rates
are drawn from its posterior under the fitted distributions (`distribution.posterior_draws`);
the fits themselves are uncertain after a small pilot (the unsolvable share above all), so the
worlds are split among fits on paired bootstrap resamples of the pilot's problems. Then
new counts are sampled at each candidate n, and the paired bootstrap interval of treated - ref at
k is computed exactly as `bootstrap_curves(...).difference` does. The power at n is the share of
simulated worlds whose interval excludes zero on the side of that world's true difference; the
plan is the smallest candidate n that reaches the asked power.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from boundary.passk.compare import bootstrap_indices
from boundary.passk.distribution import fit, posterior_draws
from boundary.passk.estimate import pass_at_k


@dataclass(frozen=True)
class Plan:
    """The samples per problem that resolve treated - ref at k with the asked power."""

    n: int | None  # smallest candidate n reaching the power; None if none does
    k: int | None  # the k compared; None: k = n (the largest k, where a crossover shows)
    power: float  # the power asked
    ci: float  # confidence level of the interval
    worlds: int  # simulated worlds per candidate n
    table: pd.DataFrame  # n, k, power (right side), wrong_side (interval excludes 0 on the wrong side)
    failed_refits: int  # pilot resamples in which a model solved nothing: its rates are 0 in those worlds

    def __str__(self) -> str:
        at = "k = n" if self.k is None else f"k = {self.k}"
        if self.n is None:
            best = self.table.loc[self.table["power"].idxmax()]
            return (f"no candidate n resolves the difference at {at} with power {self.power:.0%} "
                    f"(best: n = {int(best['n'])}, power {best['power']:.0%})")
        got = float(self.table.set_index("n").loc[self.n, "power"])
        failed = f"; {self.failed_refits} pilot resamples solved nothing" if self.failed_refits else ""
        return (f"n = {self.n} samples per problem resolve the difference at {at} with power {got:.0%} "
                f"(asked {self.power:.0%}, {self.ci:.0%} intervals, {self.worlds} simulated worlds{failed})")


def plan(ref: tuple, treated: tuple, k: int | None = None, ns=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
         power: float = 0.8, ci: float = 0.95, worlds: int = 200, B: int = 200, refits: int = 20,
         seed: int = 0) -> Plan:
    """Smallest n per problem (of `ns`) at which the paired interval of treated - ref at k excludes 0.

    ref, treated: pilot (n, c) over the same problems. k: the k compared (None: k = n, the largest
    k of each candidate, where "the base catches up" is decided). power: share of simulated worlds
    that must resolve it. worlds: simulated worlds per candidate n. B: bootstrap resamples of each
    world's interval. refits: paired bootstrap refits of the pilot among which the worlds are split,
    at least 10 worlds each (the fits' own uncertainty; 0: every world from the fits on the whole pilot).
    """
    if np.size(ref[1]) != np.size(treated[1]):
        raise ValueError(f"models must cover the same problems: {np.size(ref[1])} vs {np.size(treated[1])}")
    if not 0 < power < 1:
        raise ValueError(f"power must lie in (0, 1): got {power}")
    if k is not None and max(ns) < k:
        raise ValueError(f"no candidate n in {list(ns)} reaches k = {k}")
    rng = np.random.default_rng(seed)
    P = np.size(ref[1])
    f_ref, f_treated = fit(*ref), fit(*treated)
    groups = np.array_split(np.arange(worlds), max(1, min(refits, worlds // 10)))  # >= 10 worlds a refit
    p_ref, p_treated = np.empty((worlds, P)), np.empty((worlds, P))
    resamples = bootstrap_indices(P, len(groups), seed + 1)
    failed = 0
    for g, members in enumerate(groups):  # each group of worlds: the pilot refitted on one resample
        fr, ft = f_ref, f_treated
        if refits:
            w = np.bincount(resamples[g], minlength=P)
            fr = fit(*ref, weights=w, start=f_ref if f_ref.solved else None)
            ft = fit(*treated, weights=w, start=f_treated if f_treated.solved else None)
            failed += (not fr.solved) + (not ft.solved)
        p_ref[members] = posterior_draws(fr, *ref, members.size, rng)  # each world's true rates
        p_treated[members] = posterior_draws(ft, *treated, members.size, rng)
    weights = np.zeros((B, P))
    np.add.at(weights, (np.arange(B)[:, None], bootstrap_indices(P, B, seed)), 1.0)
    a = (1 - ci) / 2
    rows = []
    for n in sorted(int(x) for x in ns):
        kk = n if k is None else int(k)
        if kk > n:
            continue  # pass@k is not estimable from fewer than k samples
        d = (pass_at_k(n, rng.binomial(n, p_treated), kk) - pass_at_k(n, rng.binomial(n, p_ref), kk))
        boot = d @ weights.T / P  # (worlds, B): each world's paired bootstrap replicates
        lo, hi = np.quantile(boot, a, axis=1), np.quantile(boot, 1 - a, axis=1)
        truth = (np.expm1(kk * np.log1p(-p_ref)) - np.expm1(kk * np.log1p(-p_treated))).mean(axis=1)
        right = ((lo > 0) & (truth > 0)) | ((hi < 0) & (truth < 0))
        wrong = ((lo > 0) & (truth < 0)) | ((hi < 0) & (truth > 0))
        rows.append({"n": n, "k": kk, "power": float(right.mean()), "wrong_side": float(wrong.mean())})
    table = pd.DataFrame(rows)
    reached = table[table["power"] >= power]
    return Plan(n=int(reached["n"].iloc[0]) if len(reached) else None, k=k, power=power, ci=ci, worlds=worlds,
                table=table, failed_refits=failed)
