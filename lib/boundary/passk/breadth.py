"""Breadth and depth of what a model solves: accuracy bins (the paper's Fig. 5), the base-to-RL
transition table between them, and cover@tau (the share of problems solved at a rate >= tau).

pass@k at large k counts a problem solved by one lucky sample in k; cover@tau asks how many
problems a model solves *reliably*. A base model that leads at large k but only at low tau leads
by rare hits, which is the sharpening picture; a lead at high tau would be real breadth.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from boundary.passk.estimate import _check

# Bins of per-problem accuracy c/n of the paper's Fig. 5: exactly 0, (0, .1], ..., (.9, 1), exactly 1.
HISTOGRAM_BINS = ["0", *[f"({i / 10:.1f}, {(i + 1) / 10:.1f}]" for i in range(9)], "(0.9, 1)", "1"]


def accuracy_bins(n, c) -> np.ndarray:
    """Index into HISTOGRAM_BINS of each problem's accuracy c/n (integer arithmetic, no float edges)."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    _check(n, c)
    # c/n in (i/10, (i+1)/10] iff 10c > i*n and 10c <= (i+1)n.
    inner = np.clip((10 * c + n - 1) // n - 1, 0, 8)  # ceil(10c/n) - 1 for 0 < c/n <= 0.9
    return np.where(c == 0, 0, np.where(c == n, 11, np.where(10 * c > 9 * n, 10, 1 + inner)))


def accuracy_histogram(n, c) -> pd.Series:
    """Number of problems per accuracy bin (HISTOGRAM_BINS order) of the paper's Fig. 5."""
    return pd.Series(np.bincount(accuracy_bins(n, c), minlength=12), index=HISTOGRAM_BINS, name="problems")


def transitions(ref: tuple, treated: tuple, names: tuple[str, str] = ("base", "rl")) -> pd.DataFrame:
    """Problems per (ref bin, treated bin): rows the ref model's accuracy bin, columns the treated's.

    `ref` and `treated` are (n, c) over the same problems in the same order. The diagonal holds
    problems whose accuracy stayed in its bin; mass moving from the middle to "1" and from "(0.0,
    0.1]" to "0" is RL sharpening its distribution (the per-problem data behind the paper's Fig. 5).
    """
    a, b = accuracy_bins(*ref), accuracy_bins(*treated)
    if a.shape != b.shape:
        raise ValueError(f"both models must cover the same problems: {a.size} vs {b.size}")
    grid = np.zeros((12, 12), dtype=np.int64)
    np.add.at(grid, (a, b), 1)
    index = pd.Index(HISTOGRAM_BINS, name=f"{names[0]} bin")
    return pd.DataFrame(grid, index=index, columns=pd.Index(HISTOGRAM_BINS, name=f"{names[1]} bin"))


def cover(n, c, taus) -> np.ndarray:
    """cover@tau: share of problems whose observed success rate c/n is at least tau, per tau.

    tau = 0 counts every problem; a tau just above 0 gives the share solved at least once, the
    limit of pass@k at k = n. c / n and tau are both correctly rounded, so a rate equal to tau
    (3/10 and 0.3) counts as reaching it.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    c = np.asarray(c, dtype=np.int64).ravel()
    _check(n, c)
    taus = np.asarray(taus, dtype=np.float64).ravel()
    if np.any((taus < 0) | (taus > 1)):
        raise ValueError(f"tau must lie in [0, 1]: got {taus[(taus < 0) | (taus > 1)].tolist()}")
    rate = c / n
    return (rate[None, :] >= taus[:, None]).mean(axis=1)


def cover_table(counts: dict[str, tuple], taus) -> pd.DataFrame:
    """cover@tau of several models (model -> (n, c)) for a grid of tau: index tau, one column per model."""
    taus = np.asarray(taus, dtype=np.float64)
    return pd.DataFrame({m: cover(n, c, taus) for m, (n, c) in counts.items()},
                        index=pd.Index(taus, name="tau"))
