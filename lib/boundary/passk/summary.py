"""The recipes of notebooks 03, 05 and 06: one frozen record per analysis of a pair on one benchmark.

- `report(table, ref, treated, ...)`: pass@k for k <= n (paired bootstrap curves, the difference with
  its pointwise and simultaneous bands, the crossover, coverage, the accuracy histogram, ΔSE, the
  verdict): the paper's analysis;
- `past(report_, ...)`: beyond n (the fitted distributions, the projection and its predicted crossover,
  the unsolvable share, goodness of fit, cover@tau, the bin transitions, the conditional intervals).

The notebooks call these, save `.tables()` and display the fields; the sentences (`ahead`, `ends`) are
read from the intervals here, so every notebook says them the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from boundary.passk.breadth import accuracy_histogram, cover_table, transitions
from boundary.passk.compare import (Crossover, Curves, bootstrap_curves, coverage, crossover,
                                    sampling_efficiency_gap, solved, verdict)
from boundary.passk.distribution import goodness_of_fit
from boundary.passk.pairs import paired
from boundary.passk.project import PredictedCrossover, Projection, conditional_intervals, project

POWERS = [2**i for i in range(20)]  # the k the tables show (the curves hold every k)
TAUS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]  # cover@tau's grid of success-rate thresholds


def at_powers(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table with a `k` column at powers of two (what a notebook displays)."""
    return frame[frame["k"].isin(POWERS)]


def ends(cur: Curves, ref: str, treated: str) -> pd.DataFrame:
    """pass@k of both models and the paired difference treated - ref with its pointwise interval, at k = 1
    and at the largest k: columns k, <ref>, <treated>, diff, ci_low, ci_high."""
    d = cur.difference(ref, treated).iloc[[0, -1]]
    ks = d["k"].to_numpy(dtype=int)
    return pd.DataFrame({"k": ks, ref: cur.mean[ref][ks - 1], treated: cur.mean[treated][ks - 1],
                         "diff": d["diff"].to_numpy(), "ci_low": d["ci_low"].to_numpy(), "ci_high": d["ci_high"].to_numpy()})


@dataclass(frozen=True)
class Report:
    """pass@k of `treated` against `ref` on one benchmark for every k <= n, with paired intervals."""

    benchmark: str
    ref: str  # the reference (base) model
    treated: str  # the treated (RL, distilled) model
    problems: list  # the problem ids both models were sampled on, in table order
    counts: dict  # model -> (n, c) per-problem arrays, aligned on `problems` (every model of the curves)
    curves: Curves  # paired bootstrap curves of every model in `counts`
    curve_table: pd.DataFrame  # long: model, k, pass_at_k, ci_low, ci_high
    difference: pd.DataFrame  # treated - ref: k, diff, pointwise ci, simultaneous band
    crossover: Crossover  # the first k where ref catches treated, over the bootstrap
    coverage_k: int  # the k at which a problem counts as solved (coverage)
    coverage: pd.DataFrame  # category, count, problems (ids)
    histogram: pd.DataFrame  # model, bin, problems: the accuracy histogram (the paper's Fig. 5)
    gap: dict  # ΔSE = ref pass@K - treated pass@1 with its interval
    verdict: str  # the one-paragraph reading of the simultaneous band

    def powers(self) -> pd.DataFrame:
        """pass@k of every model at powers of two, one column per model."""
        return at_powers(self.curve_table).pivot(index="k", columns="model", values="pass_at_k")

    def ahead(self) -> str:
        """Who is ahead over all k at once (the simultaneous band), beside what the pointwise interval alone says."""
        d = self.difference
        lines = []
        for who, sel in ((self.treated, d["band_low"] > 0), (self.ref, d["band_high"] < 0)):
            ks = d.loc[sel, "k"].to_numpy()
            lines.append(f"{who} ahead over all k at once: "
                         + (f"{ks.size} k, from k={ks.min()} to k={ks.max()}" if ks.size else "at no k"))
        lines.append(f"{self.ref} ahead by the pointwise interval alone: {int((d['ci_high'] < 0).sum())} k")
        return "\n".join(lines)

    def ends(self) -> str:
        """The difference at k = 1 and at the largest k, one line each."""
        return "\n".join(f"{self.benchmark}, k={r['k']}: {self.treated} - {self.ref} = {r['diff']:+.3f} "
                          f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                          for r in ends(self.curves, self.ref, self.treated).to_dict("records"))

    def delta_se(self) -> str:
        """ΔSE with its interval, as a sentence."""
        g = self.gap
        return (f"ΔSE = {self.ref} pass@{g['K']} - {self.treated} pass@1 = {g['delta_se']:.3f} "
                f"[{g['ci_low']:.3f}, {g['ci_high']:.3f}]")

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables the notebooks save (name -> frame)."""
        return {"pass_at_k": self.curve_table, "pass_at_k_difference": self.difference,
                "coverage": self.coverage[["category", "count"]], "accuracy_histogram": self.histogram}


def report(table: pd.DataFrame, ref: str, treated: str, benchmark: str, models: list[str] | None = None,
           B: int = 1000, ci: float = 0.95, seed: int = 0, coverage_k: int | None = None,
           coverage_threshold: float = 0.5, treatment: str = "RL") -> Report:
    """The k <= n analysis of `treated` against `ref` on `benchmark` of a counts table (model, benchmark,
    problem, n, c). `models`: further models drawn on the same curves (after the pair); `coverage_k`:
    the k of the coverage sets (None: the largest k, i.e. "ever solved in n samples"); `treatment`:
    what made `treated` from `ref`, for the verdict."""
    models = [ref, treated] + [m for m in (models or []) if m not in (ref, treated)]
    problems, pc = paired(table, models, benchmark=benchmark)
    cur = bootstrap_curves(pc, B=B, ci=ci, seed=seed)
    diff = cur.difference(ref, treated)
    k_cov = int(coverage_k or cur.k[-1])
    got = {m: solved(*pc[m], k=k_cov, threshold=coverage_threshold) for m in (ref, treated)}
    hist = pd.concat({m: accuracy_histogram(*pc[m]) for m in (ref, treated)}, names=["model", "bin"]).reset_index()
    return Report(benchmark=benchmark, ref=ref, treated=treated, problems=problems, counts=pc, curves=cur,
                  curve_table=cur.table(), difference=diff, crossover=crossover(cur, ref, treated), coverage_k=k_cov,
                  coverage=coverage(problems, got[ref], got[treated], a=ref, b=treated), histogram=hist,
                  gap=sampling_efficiency_gap(cur, ref, treated), verdict=verdict(diff, ref, treated, treatment))


@dataclass(frozen=True)
class Past:
    """Past the sampled n: the pair's fitted success-rate distributions and what they predict."""

    projection: Projection  # the fits and their bootstrap refits
    table: pd.DataFrame  # model, k, pass_at_k, ci_low, ci_high for k up to `extrapolate_to` and infinity
    predicted: PredictedCrossover  # the crossover k the fits predict
    boundary: pd.DataFrame  # per model: the unsolvable share (outside the boundary) with its interval, the fit
    fit: pd.DataFrame  # goodness of fit: observed against predicted pass@k for k <= n
    cover: pd.DataFrame  # cover@tau of both models
    transitions: pd.DataFrame  # problems by (ref bin, treated bin): the data behind Fig. 5
    conditional: pd.DataFrame  # per model and k <= n: the bootstrap interval beside the benchmark-held-fixed one

    def shown(self, ks=None) -> pd.DataFrame:
        """The projection as displayed: pass@k and its interval per model, rounded, one row per k
        (`ks`: the k to show; None: all)."""
        t = self.table if ks is None else self.table[self.table["k"].isin(ks)]
        return t.assign(pass_at_k=t["pass_at_k"].round(3),
                        interval=[f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(t["ci_low"], t["ci_high"])]
                        ).pivot(index="k", columns="model", values=["pass_at_k", "interval"]).rename(index="{:g}".format)

    def worst_fit(self) -> str:
        """The largest |predicted - observed| for k <= n per model, as a sentence."""
        err = self.fit.groupby("model", sort=False)["error"].agg(lambda e: e.abs().max())
        return "largest |predicted - observed| for k <= n: " + ", ".join(f"{m} {e:.3f}" for m, e in err.items())

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables the notebooks save (name -> frame)."""
        return {"pass_at_k_projection": self.table, "boundary_fit": self.boundary, "goodness_of_fit": self.fit,
                "cover_at_tau": self.cover, "accuracy_transitions": self.transitions,
                "conditional_intervals": self.conditional}


def past(rep: Report, extrapolate_to: int = 65536, B: int = 50, ci: float = 0.95, seed: int = 0,
         taus=TAUS, draws: int = 1000) -> Past:
    """Fit both models of `rep` and predict past n: every power of two up to `extrapolate_to`, the
    largest sampled k and infinity; `B` bootstrap refits over problems; `draws` posterior draws per
    problem for the conditional intervals."""
    ref, treated = rep.ref, rep.treated
    pair = {m: rep.counts[m] for m in (ref, treated)}
    K = int(rep.curves.k[-1])
    ks = sorted({2**i for i in range(int(math.log2(extrapolate_to)) + 1)} | {K}) + [math.inf]
    proj = project(pair, ks, B=B, ci=ci, seed=seed)
    gof = pd.concat({m: goodness_of_fit(*pair[m], proj.fits[m]) for m in pair}, names=["model", "row"])
    gof = gof.reset_index(level="row", drop=True).reset_index()
    ks_cond = [k for k in ks if k <= proj.n]
    rows = []
    for m in pair:
        cond = conditional_intervals(*pair[m], ks_cond, proj.fits[m], draws=draws, ci=ci, seed=seed)
        boot = rep.curve_table[(rep.curve_table["model"] == m) & rep.curve_table["k"].isin(ks_cond)]
        rows.append(cond.assign(model=m, pass_at_k=boot["pass_at_k"].to_numpy(), boot_low=boot["ci_low"].to_numpy(),
                                boot_high=boot["ci_high"].to_numpy()))
    cond = pd.concat(rows, ignore_index=True).astype({"k": int})
    cond = cond[["model", "k", "pass_at_k", "boot_low", "boot_high", "cond_low", "cond_high"]]
    return Past(projection=proj, table=proj.table(), predicted=proj.crossover(ref, treated), boundary=proj.boundary(),
                fit=gof, cover=cover_table(pair, taus), transitions=transitions(pair[ref], pair[treated], names=(ref, treated)),
                conditional=cond)

