"""The RL study's params and build: it reuses its experiment's base, names its checkpoints as models, and
its analyses read paired intervals the way notebook 07 states them."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from boundary import ROOT, config, rlstudy
from boundary.miniature import build


@pytest.mark.parametrize("study, plain", [("smoke-rl", "smoke"), ("miniature-rl", "miniature")])
def test_study_reuses_the_base_of_its_experiment(study, plain):
    """The sections that make the base are the plain experiment's, so the base's fingerprint is the same and
    `make models EXPERIMENT=<study>` finds it built, never trains a second one into the same folder."""
    a, b = config.load(study).miniature, config.load(plain).miniature
    assert a.out == b.out
    fp = lambda m: build.fingerprint(m.model, m.task, m.pretrain, m.seed, sources=build.BASE_SOURCES)  # noqa: E731
    assert fp(a) == fp(b)


def test_study_models_are_named_from_the_variants():
    cfg = config.load("smoke-rl")
    labels = [m.label for m in cfg.models]
    assert labels[0] == "base" and "grpo-seed0" in labels and "prorl-seed0-step20" in labels
    steps = {m.label: m.step for m in cfg.models}
    assert steps["grpo-long-seed0-step40"] == 40 and steps["grpo-long-seed0"] == 60
    assert all(m.role == "rl" and m.path.startswith("models/smoke-rl/") for m in cfg.models[1:])
    table = rlstudy.study_models(cfg)
    assert list(table["label"]) == labels[1:]
    assert rlstudy.sections(cfg) == {
        "algorithms": ["grpo", "ppo", "rloo", "reinforce++", "remax", "dapo", "dr-grpo"],
        "length": ["grpo-long", "prorl"], "settings": ["grpo-kl", "grpo-rollouts4", "grpo-rollouts16"]}
    kl = table[table["variant"] == "prorl"].iloc[0]
    assert kl["kl"] == 0.01 and kl["reset_every"] == 20 and kl["algorithm"] == "grpo"


def test_study_build_reuses_a_built_base(tmp_path, capsys):
    """With the base in place, the study trains only its variants (here shrunk to 2 steps), into rl_study.out."""
    base = ROOT / "models" / "smoke" / "base"
    exp = config.load("smoke-rl")
    fp = build.fingerprint(exp.miniature.model, exp.miniature.task, exp.miniature.pretrain, exp.miniature.seed,
                           sources=build.BASE_SOURCES)
    if not base.is_dir() or json.loads((base / "miniature.json").read_text()).get("fingerprint") != fp:
        pytest.skip("the smoke base is not built with today's code: make models EXPERIMENT=smoke")
    shutil.copytree(base, tmp_path / "base")
    before = (tmp_path / "base" / "model.safetensors").read_bytes()
    variants = [{"label": "grpo", "algorithm": "grpo"}, {"label": "grpo-long", "steps": 3, "checkpoints": [1]}]
    manifest = build.build("smoke-rl", out=tmp_path, overrides={
        "miniature.rl.steps": 2, "miniature.rl_study.variants": variants})
    assert ">> base: up to date" in capsys.readouterr().out
    assert (tmp_path / "base" / "model.safetensors").read_bytes() == before
    study = tmp_path / "rl-study"
    for name in ("grpo-seed0", "grpo-long-seed0", "grpo-long-seed0-step1"):
        assert (study / name / "miniature.json").is_file(), name
    assert not (tmp_path / "rl-seed0").exists() and not (tmp_path / "teacher").exists()
    history = pd.read_csv(study / "rl_history.csv")
    assert set(history["model"]) == {"grpo-seed0", "grpo-long-seed0"}
    assert set(manifest["checkpoints"]) >= {"base", "grpo-seed0", "grpo-long-seed0-step1"}


def test_matched_temperature_interpolates_on_the_grid():
    ent = pd.DataFrame({"model": "rl", "temperature": [1.0, 1.2, 1.4], "entropy": [0.2, 0.4, 0.8]})
    assert rlstudy.matched_temperature(ent, "rl", 0.6) == pytest.approx(1.3)  # half-way between 1.2 and 1.4
    assert rlstudy.matched_temperature(ent, "rl", 0.1) == 1.0  # already as uncertain as the base
    assert rlstudy.matched_temperature(ent, "rl", 2.0) == 1.4  # never reached: the grid's top


def test_compare_pairs_against_the_base():
    """A model identical to the base differs by exactly 0 with a zero-width interval; ΔSE = base pass@n - pass@1."""
    table = pd.DataFrame({"model": ["base"] * 3 + ["same"] * 3 + ["better"] * 3, "benchmark": "b",
                          "problem": ["p1", "p2", "p3"] * 3, "n": 4, "c": [0, 2, 4, 0, 2, 4, 4, 4, 4]})
    out = rlstudy.compare(table, "base", ["same", "better"], "b", B=50, ci=0.9, seed=0).set_index("model")
    assert out.loc["same", "diff@1"] == 0 and out.loc["same", "diff@1 low"] == 0 == out.loc["same", "diff@4 high"]
    assert out.loc["better", "pass@1"] == 1.0 and out.loc["better", "diff@1"] == pytest.approx(0.5)
    assert out.loc["same", "ΔSE"] == pytest.approx(2 / 3 - 0.5)  # base pass@4 = 2/3, pass@1 = 1/2
