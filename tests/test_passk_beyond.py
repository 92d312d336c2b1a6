"""pass@k past n, the simultaneous band, the planner, cover@tau and the transition table, tested
in synthetic worlds whose per-problem success rates are known (unsolvable problems included)."""
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from boundary import passk
from boundary.passk import distribution


def world(P: int, unsolvable: float, alpha: float, beta: float, scale: float, rng) -> np.ndarray:
    """P success rates: 0 with probability `unsolvable`, else scale * Beta(alpha, beta)."""
    return np.where(rng.random(P) < unsolvable, 0.0, scale * rng.beta(alpha, beta, P))


def true_pass(p: np.ndarray, ks) -> np.ndarray:
    """Mean pass@k of problems with known rates p (k = inf: the share with p > 0)."""
    return np.array([np.mean(p > 0) if np.isinf(k) else np.mean(-np.expm1(k * np.log1p(-p))) for k in ks])


# The paired world of the band and planner tests: 4,000 problem types with a base rate and an RL
# rate (RL sharper: higher on what the base often solves, zero on a tenth of what it rarely solves).
TYPES = np.random.default_rng(11).beta(0.4, 0.8, 4000)
RL_TYPES = np.where((TYPES < 0.15) & (np.random.default_rng(12).random(4000) < 0.25), 0.0, TYPES ** 0.6)


def test_pass_at_k_grid_call_costs_memory_of_the_answer():
    rng = np.random.default_rng(0)
    n, c, ks = np.full(500, 1024), rng.binomial(1024, rng.beta(0.5, 0.5, 500)), np.arange(1, 1025)
    tracemalloc.start()
    grid = passk.pass_at_k(n[:, None], c[:, None], ks[None, :])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30 * grid.nbytes  # was ~1,000x (a whole curve per cell: 4 GB)
    np.testing.assert_array_equal(grid, passk.curves(n, c))
    # Any shape: a 3-D broadcast and a scalar.
    cube = passk.pass_at_k(np.array([8, 16])[:, None, None], np.array([[1], [3]])[None], np.array([1, 8, 12]))
    assert cube.shape == (2, 2, 3) and np.isnan(cube[0, :, 2]).all()
    assert cube[1, 1, 1] == pytest.approx(passk.pass_at_k(16, 3, 8)) and isinstance(passk.pass_at_k(4, 1, 2), float)


def test_pass_at_k_in_small_chunks_agrees(monkeypatch):
    # Chunks of 64 running-sum cells force many blocks: the answer must not depend on the chunking.
    rng = np.random.default_rng(1)
    n = rng.integers(1, 40, 60)
    c = rng.integers(0, n + 1)
    ks = np.arange(1, 41)
    whole = passk.pass_at_k(n[:, None], c[:, None], ks[None, :])
    monkeypatch.setattr("boundary.passk.estimate._CHUNK_CELLS", 64)
    np.testing.assert_array_equal(passk.pass_at_k(n[:, None], c[:, None], ks[None, :]), whole)
    np.testing.assert_array_equal(whole, passk.curves(n, c, kmax=40))


@pytest.mark.parametrize("theta,n,c", [
    ((0.0, 0.7, 2.0, 1.0), 20, 0),  # scale 1: the beta-binomial itself
    ((0.0, 0.7, 2.0, 1.0), 20, 13),
    ((0.0, 3.0, 0.4, 1.0), 128, 128),
    ((0.0, 0.3, 1.5, 0.6), 50, 4),  # scale < 1: against scipy's adaptive quadrature
    ((0.0, 1.2, 0.5, 0.9), 200, 170),
])
def test_likelihood_against_independent_integrals(theta, n, c):
    got = distribution._log_marginal(theta, np.array([n]), np.array([c]), distribution._grid(n))[0][0]
    _, alpha, beta, a = theta
    if a == 1.0:
        want = stats.betabinom.logpmf(c, n, alpha, beta)
    else:
        dens = lambda x: stats.binom.pmf(c, n, a * x) * stats.beta.pdf(x, alpha, beta)
        want = np.log(integrate.quad(dens, 0, 1, points=[c / n / a] if c < n * a else None, limit=400)[0])
    assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2])
def test_fit_recovers_unsolvable_share_and_extrapolation(seed):
    # 500 problems, a fifth unsolvable, sampled n = 64: predict pass@1024 and pass@inf of these problems.
    rng = np.random.default_rng(seed)
    p = world(500, 0.2, 0.6, 1.5, 0.9, rng)
    c = rng.binomial(64, p)
    f = passk.fit(64, c)
    assert f.converged and abs(f.unsolvable - 0.2) < 0.05  # the share outside the boundary, within 0.05
    ks = np.array([1, 64, 1024, np.inf])
    got, want = passk.extrapolate(64, c, ks, fitted=f), true_pass(p, ks)
    assert np.all(np.abs(got - want) <= [0.02, 0.02, 0.03, 0.05]), (got, want)
    assert got[-1] == pytest.approx(1 - f.unsolvable, abs=0.02)  # pass@inf of these problems ~ the fit's
    gof = passk.goodness_of_fit(64, c, f)
    assert list(gof["k"]) == [1, 2, 4, 8, 16, 32, 64] and gof["error"].abs().max() < 0.01


def test_fit_without_unsolvable_problems_finds_none():
    rng = np.random.default_rng(3)
    c = rng.binomial(64, world(400, 0.0, 1.0, 2.0, 1.0, rng))
    assert passk.fit(64, c).unsolvable < 0.04


def test_population_curve_of_a_fit_is_its_distribution():
    f = passk.Fit(unsolvable=0.25, alpha=0.5, beta=2.0, scale=0.8, loglik=0.0, problems=1.0, converged=True)
    rng = np.random.default_rng(4)
    p = world(400_000, 0.25, 0.5, 2.0, 0.8, rng)
    np.testing.assert_allclose(f.pass_at_k([1, 10, 1000, np.inf]), true_pass(p, [1, 10, 1000, np.inf]), atol=3e-3)
    assert f.pass_at_k([np.inf])[0] == pytest.approx(0.75)


def test_posterior_draws_match_the_predictions():
    rng = np.random.default_rng(5)
    n, c = 32, rng.binomial(32, world(300, 0.2, 0.6, 1.5, 0.9, rng))
    f = passk.fit(n, c)
    draws = passk.posterior_draws(f, n, c, 2000, np.random.default_rng(0))
    assert draws.shape == (2000, 300) and (draws[:, c > 0] > 0).all()
    ks = np.array([1, 8, 256])
    mc = np.array([np.mean(-np.expm1(k * np.log1p(-draws))) for k in ks])
    np.testing.assert_allclose(mc, passk.extrapolate(n, c, ks, fitted=f), atol=4e-3)


@pytest.mark.parametrize("n,c,match", [
    (1, np.array([0, 1, 1, 0, 1]), "n = 1"),  # one sample identifies only the mean rate
    (8, np.array([3, 9]), "invalid counts"),
])
def test_fit_refuses_what_counts_cannot_identify(n, c, match):
    with pytest.raises(ValueError, match=match):
        passk.fit(n, c)


def test_all_solved_extrapolates_to_one_and_bad_k_is_refused():
    c = np.full(40, 16)
    f = passk.fit(16, c)
    assert f.unsolvable < 1e-3
    assert np.all(passk.extrapolate(16, c, [1, 16, 1e6, np.inf], fitted=f) > 0.999)
    with pytest.raises(ValueError, match="k must be >= 1"):
        passk.extrapolate(16, c, [0, 4], fitted=f)
    with pytest.raises(ValueError, match="min\\(n\\)"):
        passk.goodness_of_fit(16, c, f, ks=[32])


def bootstrap_differences(base: np.ndarray, rl: np.ndarray, n: int, ks, B: int, seed: int):
    """Many benchmarks at once, (runs, problems) counts at n: estimates (runs, K) of rl - base at ks and
    their bootstrap replicates (runs, B, K), resampled as `bootstrap_curves` resamples (one index
    matrix from `bootstrap_indices`, shared by the runs). Every count is one of n + 1 values, so
    per-problem pass@k is a lookup in one table."""
    table = passk.pass_at_k(n, np.arange(n + 1)[:, None], np.asarray(ks)[None, :])
    d = table[rl] - table[base]  # (runs, P, K)
    P = base.shape[1]
    W = np.zeros((B, P))
    np.add.at(W, (np.arange(B)[:, None], passk.bootstrap_indices(P, B, seed)), 1.0)
    return d.mean(axis=1), np.einsum("bp,rpk->rbk", W, d, optimize=True) / P


def test_simultaneous_band_covers_the_whole_true_curve():
    # 400 benchmarks of 200 problems drawn from the population, n = 32; the truth is the population's
    # mean pass@k difference at every k = 1..32.
    n, K, runs, P, B = 32, np.arange(1, 33), 400, 200, 400
    truth = true_pass(RL_TYPES, K) - true_pass(TYPES, K)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, TYPES.size, (runs, P))
    base, rl = rng.binomial(n, TYPES[pick]), rng.binomial(n, RL_TYPES[pick])
    est, boot = bootstrap_differences(base, rl, n, K, B, seed=0)
    # The vectorised runs are bootstrap_curves' own: run 0 through the public path gives the same band.
    d0 = passk.bootstrap_curves({"base": (np.full(P, n), base[0]), "rl": (np.full(P, n), rl[0])}, B=B,
                                seed=0).difference("base", "rl")
    np.testing.assert_allclose(np.stack(passk.simultaneous_band(est[0], boot[0], 0.95)),
                               d0[["band_low", "band_high"]].to_numpy().T, atol=1e-12)
    band = pointwise = 0
    for e, r in zip(est, boot):
        lo, hi = passk.simultaneous_band(e, r, 0.95)
        band += bool(np.all((lo <= truth) & (truth <= hi)))
        plo, phi = np.quantile(r, [0.025, 0.975], axis=0)
        pointwise += bool(np.all((plo <= truth) & (truth <= phi)))
    print(f"whole-curve coverage over {runs} runs: simultaneous {band / runs:.3f}, pointwise {pointwise / runs:.3f}")
    assert band / runs >= 0.93
    assert pointwise / runs < band / runs - 0.05  # the pointwise band misses the curve somewhere far more often


def test_planner_n_reaches_its_power():
    # A benchmark of 200 problems with known rates; the pilot samples each 16 times. The planner's n
    # must resolve rl - base at k = n in >= 80% of fresh benchmarks of counts drawn from the truth.
    rng = np.random.default_rng(7)
    pick = rng.integers(0, TYPES.size, 200)
    p_base, p_rl = TYPES[pick], RL_TYPES[pick]
    pilot = {m: (np.full(200, 16), rng.binomial(16, p)) for m, p in (("base", p_base), ("rl", p_rl))}
    plan = passk.plan(pilot["base"], pilot["rl"], ns=(16, 32, 64, 128, 256, 512), power=0.8, worlds=200, B=200)
    assert plan.n is not None and plan.n > 16, plan.table
    assert plan.table.set_index("n").loc[plan.n, "power"] >= 0.8 and "resolve" in str(plan)
    n, runs = plan.n, 200
    base, rl = rng.binomial(n, np.broadcast_to(p_base, (runs, 200))), rng.binomial(n, np.broadcast_to(p_rl, (runs, 200)))
    est, boot = bootstrap_differences(base, rl, n, [n], 200, seed=1)
    lo, hi = np.quantile(boot[:, :, 0], [0.025, 0.975], axis=1)
    truth = true_pass(p_rl, [n])[0] - true_pass(p_base, [n])[0]
    power = np.mean(hi < 0) if truth < 0 else np.mean(lo > 0)
    print(f"planner: n = {n} (planned power {plan.table.set_index('n').loc[n, 'power']:.2f}); "
          f"power against the truth {power:.2f}")
    assert power >= 0.8 - 0.1
    assert abs(power - plan.table.set_index("n").loc[n, "power"]) <= 0.15  # the simulation is not merely cautious


def test_planner_refuses_bad_questions():
    pilot = (np.full(20, 8), np.arange(20) % 9)
    with pytest.raises(ValueError, match="reaches k = 64"):
        passk.plan(pilot, pilot, k=64, ns=(16, 32))
    with pytest.raises(ValueError, match="same problems"):
        passk.plan(pilot, (np.full(5, 8), np.ones(5, int)))


def test_simultaneous_band_of_identical_models_is_the_estimate():
    n, c = np.full(10, 8), np.arange(10) % 9
    d = passk.bootstrap_curves({"a": (n, c), "b": (n, c)}, B=50).difference("a", "b")
    assert (d[["band_low", "band_high"]].to_numpy() == 0).all()


@pytest.mark.parametrize("n,c,tau,expected", [
    ([10, 10, 10, 10], [0, 3, 5, 10], 0.0, 1.0),  # tau = 0 counts every problem
    ([10, 10, 10, 10], [0, 3, 5, 10], 0.3, 0.75),  # a rate equal to tau (3/10) reaches it
    ([10, 10, 10, 10], [0, 3, 5, 10], 0.31, 0.5),
    ([10, 10, 10, 10], [0, 3, 5, 10], 1.0, 0.25),  # only the always-solved problem
    ([3, 7, 128], [1, 7, 1], 1e-9, 1.0),  # just above 0: solved at least once
    ([3, 7, 128], [1, 7, 1], 1 / 3, 2 / 3),  # 1/3 as a float reaches itself
])
def test_cover_at_tau_table(n, c, tau, expected):
    assert passk.cover(n, c, [tau])[0] == pytest.approx(expected)


def test_cover_at_tau_against_direct_computation():
    rng = np.random.default_rng(8)
    n = rng.integers(1, 200, 300)
    c = rng.integers(0, n + 1)
    taus = np.linspace(0, 1, 21)
    direct = [sum(ci / ni >= t for ni, ci in zip(n.tolist(), c.tolist())) / 300 for t in taus]
    np.testing.assert_allclose(passk.cover(n, c, taus), direct)
    table = passk.cover_table({"a": (n, c), "b": (n, n - c)}, taus)
    assert list(table.columns) == ["a", "b"] and table.index.name == "tau" and table.loc[0.0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="tau"):
        passk.cover(n, c, [1.5])


def test_transition_table_against_direct_crosstab():
    rng = np.random.default_rng(9)
    n = np.full(400, 32)
    a, b = rng.integers(0, 33, 400), rng.integers(0, 33, 400)
    got = passk.transitions((n, a), (n, b), names=("base", "rl"))
    bins = passk.HISTOGRAM_BINS
    want = pd.crosstab(pd.Categorical([bins[i] for i in passk.accuracy_bins(n, a)], bins),
                       pd.Categorical([bins[i] for i in passk.accuracy_bins(n, b)], bins), dropna=False)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    assert got.index.name == "base bin" and got.to_numpy().sum() == 400
    np.testing.assert_array_equal(got.sum(axis=1).to_numpy(), passk.accuracy_histogram(n, a).to_numpy())
    with pytest.raises(ValueError, match="same problems"):
        passk.transitions((n, a), (n[:3], b[:3]))


def test_projection_predicts_the_crossover_past_n():
    # RL ahead at small k, the base ahead past n = 16 (RL lost a tenth of what the base rarely solves):
    # the crossover of the true curves lies past n; the one predicted from n = 16 lands near it.
    rng = np.random.default_rng(10)
    pick = rng.integers(0, TYPES.size, 400)
    p_base, p_rl = TYPES[pick], RL_TYPES[pick]
    counts = {m: (np.full(400, 16), rng.binomial(16, p)) for m, p in (("base", p_base), ("rl", p_rl))}
    ks = np.unique(np.round(np.geomspace(1, 4096, 60)))
    true_cross = ks[np.argmax(true_pass(p_base, ks) >= true_pass(p_rl, ks))]
    proj = passk.project(counts, ks, B=8, seed=0)
    cross = proj.crossover("base", "rl")
    assert 16 < true_cross and cross.k is not None and true_cross / 2 <= cross.k <= true_cross * 2, (cross, true_cross)
    t = proj.table()
    assert set(t["model"]) == {"base", "rl"} and t["extrapolated"].sum() == 2 * np.sum(ks > 16)
    assert (t["ci_low"] <= t["pass_at_k"] + 1e-9).all() and (t["pass_at_k"] <= t["ci_high"] + 1e-9).all()
    b = proj.boundary()
    assert list(b.index) == ["base", "rl"] and (b["unsolvable ci_low"] <= b["unsolvable ci_high"]).all()
    assert b.loc["rl", "pass@inf"] == pytest.approx(1 - b.loc["rl", "unsolvable"])


def test_conditional_interval_is_narrower_than_over_problems_and_holds_the_estimate():
    rng = np.random.default_rng(13)
    p = world(300, 0.15, 0.6, 1.5, 0.9, rng)
    n, c = np.full(300, 64), rng.binomial(64, p)
    ks = np.array([1, 8, 64])
    f = passk.fit(n, c)
    cond = passk.conditional_intervals(n, c, ks, f, draws=1000, seed=0)
    boot = passk.bootstrap_curves({"m": (n, c)}, B=400).table().set_index("k").loc[ks]
    observed = boot["pass_at_k"].to_numpy()
    low, high = cond["cond_low"].to_numpy(), cond["cond_high"].to_numpy()
    assert np.all((low <= observed + 0.005) & (observed - 0.005 <= high)), (low, observed, high)
    assert np.all(high - low < (boot["ci_high"] - boot["ci_low"]).to_numpy())


def test_resamples_that_solve_nothing_predict_zero_and_leave_pass_at_infinity_out():
    # One model solves a single problem of 30: about a third of the resamples leave it out. Their
    # likelihood is maximised by rates going to 0, so they predict pass@k = 0 at finite k (in the
    # interval: dropping them would shift it up); their unsolvable share is unidentified (NaN), left
    # out of its interval and counted.
    n = np.full(30, 16)
    c = {"base": np.r_[5, np.zeros(29, int)], "rl": np.arange(30) % 17}
    proj = passk.project({m: (n, c[m]) for m in c}, [1, 16, 256, np.inf], B=30, seed=0)
    none = np.isnan(proj.unsolvable["base"])
    assert 0 < proj.failed["base"] == none.sum() < 30 and proj.failed["rl"] == 0
    assert proj.boundary().loc["base", "refits solving none"] == proj.failed["base"]
    assert (proj.boot["base"][none][:, :3] == 0).all() and np.isnan(proj.boot["base"][none][:, 3]).all()
    assert (proj.boot["base"][~none][:, :3] > 0).all()
    t = proj.table()
    assert t[["ci_low", "ci_high"]].notna().all().all()
    base = t[t["model"] == "base"].set_index("k")
    assert base.loc[1, "ci_low"] == 0 and base.loc[1, "ci_high"] > 0  # the zero resamples are inside the interval


def test_a_model_that_solved_nothing_predicts_zero_and_leaves_pass_at_infinity_unidentified():
    # Random-weight replicas of real models solve nothing: the analysis reports it and goes on.
    n, zero = np.full(30, 16), np.zeros(30, int)
    f = passk.fit(n, zero)
    assert not f.solved and np.isnan(f.unsolvable) and np.isnan(f.pass_at_infinity)
    got = passk.extrapolate(n, zero, [1, 16, 1e6, np.inf], fitted=f)
    assert (got[:3] == 0).all() and np.isnan(got[3])
    assert (passk.posterior_draws(f, n, zero, 5, np.random.default_rng(0)) == 0).all()
    gof = passk.goodness_of_fit(n, zero, f)
    assert (gof["observed"] == 0).all() and (gof["predicted"] == 0).all()
    other = np.arange(30) % 17
    proj = passk.project({"base": (n, zero), "rl": (n, other)}, [1, 16, 256, np.inf], B=20, seed=0)
    assert proj.failed["base"] == 20 and np.isnan(proj.boundary().loc["base", "pass@inf"])
    base = proj.table().query("model == 'base'").set_index("k")
    assert (base.loc[[1, 16, 256], ["pass_at_k", "ci_low", "ci_high"]] == 0).all().all()
    assert base.loc[np.inf, ["pass_at_k", "ci_low", "ci_high"]].isna().all()
    cross = proj.crossover("base", "rl")
    assert cross.k is None and cross.unsolved == ("base",) and "base solved no problem" in str(cross)
    assert "base unidentified" in proj.outside_boundary() and "rl 0." in proj.outside_boundary()
    cond = passk.conditional_intervals(n, zero, [1, 16], f)
    assert (cond[["cond_low", "cond_high"]] == 0).all().all()
    plan = passk.plan((n, zero), (n, other), worlds=40, refits=2, ns=(16, 32), seed=0)
    assert plan.table["power"].between(0, 1).all() and plan.failed_refits == 2
