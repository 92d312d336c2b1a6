"""Every RL algorithm trains the smoke base in the right direction, reproducibly, and bad settings are refused.

The direction test is the one no loss-level test can make: a sign error in an advantage or a loss
passes a formula check written with the same sign, but lowers the reward. Setting: the smoke base on
d = 1 problems (where it answers about 60% right, so most groups have mixed rewards), a learning rate
high enough to move in 60 steps (1e-3; at the smoke params' 5e-5 20 steps change nothing measurable);
measured on 2 shared cores: first tenth ~0.62, last tenth 0.69-0.86 for every algorithm, 4-10 s each.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from boundary import ROOT, config
from boundary.miniature import build, losses, rl
from boundary.miniature import model as M

SMOKE = ROOT / "models" / "smoke" / "base"
DIRECTION = {"lr": 1e-3, "steps": 60, "difficulties": [1], "prompts": 16, "checkpoints": [], "eval_every": 1000}


@pytest.fixture(scope="module")
def smoke():
    if not SMOKE.is_dir():
        pytest.skip("the smoke models are not built: make models EXPERIMENT=smoke")
    exp = config.load("smoke")
    return exp.miniature, build.task_params(exp.miniature)


def run(smoke, seed: int = 0, **changes):
    """Train the smoke base with miniature.rl of smoke.yaml changed by `changes`: (model, history)."""
    cfg, params = smoke
    rl_cfg = config.MiniatureRL.model_validate(cfg.rl.model_dump() | changes)
    model, tok = M.load(SMOKE)
    return model, rl.train(model, tok, rl_cfg, params, seed=seed)


@pytest.mark.parametrize("algorithm", losses.ALGORITHMS)
def test_training_reward_rises(smoke, algorithm):
    """The mean training reward of the last tenth of the run exceeds that of the first tenth."""
    _, history = run(smoke, algorithm=algorithm, **DIRECTION)
    reward = [row["reward"] for row in history if "reward" in row]
    tenth = len(reward) // 10
    first, last = np.mean(reward[:tenth]), np.mean(reward[-tenth:])
    assert last > first + 0.03, f"{algorithm}: reward {first:.3f} -> {last:.3f}"


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("algorithm, changes", [
    ("ppo", {"updates": 2}),  # a critic, two epochs per batch
    ("dapo", {}),  # dynamic sampling draws further prompts
    ("grpo", {"kl": 0.05, "reset_every": 2}),  # a reference, reset
])
def test_same_seed_same_weights(smoke, algorithm, changes):
    """Same seed: identical histories and weights; another seed: different weights."""
    short = {"steps": 4, "checkpoints": [], "eval_every": 1000, "algorithm": algorithm, **changes}
    (m0, h0), (m1, h1) = run(smoke, **short), run(smoke, **short)
    assert h0 == h1
    w0, w1 = _weights(m0), _weights(m1)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    other, _ = run(smoke, seed=1, **short)
    assert not all(torch.equal(w0[k], v) for k, v in _weights(other).items())


def test_kl_keeps_the_policy_near_the_base_and_resets_move_the_reference(smoke):
    """A strong KL penalty keeps the k3 to the reference smaller than a weak one; after a reset the reference is
    the policy, so the logged KL of the next step starts again from (near) zero."""
    common = {"lr": 1e-3, "steps": 12, "difficulties": [1], "checkpoints": [], "eval_every": 1000}
    _, weak = run(smoke, kl=1e-4, **common)
    _, strong = run(smoke, kl=1.0, **common)
    assert strong[-2]["kl"] < weak[-2]["kl"]
    _, reset = run(smoke, kl=1e-4, reset_every=6, **common)
    assert reset[6]["kl"] < 0.5 * reset[5]["kl"]  # step 6 is the first step after the reset at step 6
    assert reset[6]["kl"] < weak[6]["kl"]


@pytest.mark.parametrize("rl_section, message", [
    ({"algorithm": "ppo2"}, "miniature.rl.algorithm'.*'grpo', 'ppo', 'rloo', 'reinforce\\+\\+', 'remax', 'dapo' or 'dr-grpo', got 'ppo2'"),
    ({"kl": -0.1}, "miniature.rl.kl'.*greater than or equal to 0"),
    ({"reset_every": 10}, "reset_every=10 resets the KL reference, but kl is 0"),
    ({"steps": 10, "checkpoints": [5, 20]}, r"checkpoints \[20\] are outside the run's steps 1..10"),
    ({"updates": 0}, "miniature.rl.updates'.*greater than or equal to 1"),
    ({"klcoef": 0.1}, "unknown field 'miniature.rl.klcoef'"),
])
def test_bad_rl_settings_are_named(tmp_path, monkeypatch, rl_section, message):
    _check_error(tmp_path, monkeypatch, {"rl": rl_section}, message)


@pytest.mark.parametrize("study, message", [
    ({"variants": [{"label": "a", "algorithm": "rlhf"}], "hot_model": "a-seed0"}, "got 'rlhf'"),
    ({"variants": [{"label": "a", "reset_every": 5}], "hot_model": "a-seed0"},
     r"rl_study.variants.0 \(a\) with miniature.rl: .*reset_every=5 resets the KL reference, but kl is 0"),
    ({"variants": [{"label": "a"}, {"label": "a"}], "hot_model": "a-seed0"}, "labels must be unique"),
    ({"variants": [{"label": "a"}], "hot_model": "b-seed0"}, "hot_model 'b-seed0' is none of the study's models"),
    ({"variants": [{"label": "A B"}], "hot_model": "a-seed0"}, "variants.0.label"),
    ({"variants": [{"label": "a"}], "hot_model": "a-seed0", "temperatures": [1.2, 1.0]}, "must start at 1.0 and increase"),
])
def test_bad_study_settings_are_named(tmp_path, monkeypatch, study, message):
    _check_error(tmp_path, monkeypatch, {"rl_study": {"out": "models/x", **study}}, message)


def _check_error(tmp_path, monkeypatch, miniature: dict, message: str):
    import yaml
    params = tmp_path / "params"
    params.mkdir()
    tree = {"models": [{"label": "base", "role": "base", "path": "models/x/base"}],
            "benchmarks": [{"name": "miniature", "n": 4}], "miniature": miniature}
    (params / "bad.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.setattr(config, "PARAMS", params)
    with pytest.raises(config.ConfigError, match=message):
        config.load("bad")
