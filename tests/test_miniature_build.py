"""The miniature build end to end (tiny params), its checkpoints, and determinism of training."""
import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from boundary import config
from boundary.miniature import build, model as M, rl, task, train, tokenizer as tk

TINY = config.load("miniature-tiny").miniature


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny family, built once for the module into a temporary folder."""
    out = tmp_path_factory.mktemp("miniature-tiny")
    return out, build.build("miniature-tiny", out=out)


def test_tiny_build_writes_loadable_checkpoints(tiny):
    out, manifest = tiny
    names = {"base", "rl-seed0", "rl-seed0-step1", "teacher", "distilled"}
    assert set(manifest["checkpoints"]) == names
    assert json.loads((out / "manifest.json").read_text())["checkpoints"].keys() == names
    for name in names:
        model = AutoModelForCausalLM.from_pretrained(out / name)
        tokenizer = AutoTokenizer.from_pretrained(out / name)
        assert type(model).__name__ == "LlamaForCausalLM"
        assert model.config.hidden_size == TINY.model.hidden
        ids = torch.tensor([tk.prompt_ids(tokenizer, "3+4")])
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
        assert tokenizer.chat_template == tk.CHAT_TEMPLATE
        assert sum(f.stat().st_size for f in (out / name).iterdir()) < 20e6


def test_rl_history_is_recorded(tiny):
    out, _ = tiny
    meta = json.loads((out / "rl-seed0" / "miniature.json").read_text())
    steps = [row["step"] for row in meta["history"]]
    assert steps == list(range(TINY.rl.steps + 1))
    assert all(0.0 <= row["reward"] <= 1.0 for row in meta["history"][:-1])
    assert all("heldout_pass1" in row for row in meta["history"])  # eval_every = 1


def test_rebuild_reuses_fresh_checkpoints(tiny):
    """A second build with the same params rebuilds nothing (fingerprints match)."""
    out, first = tiny
    stamp = {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in first["checkpoints"]}
    again = build.build("miniature-tiny", out=out)
    assert again["seconds"] == {}
    assert {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in first["checkpoints"]} == stamp


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_supervised_training_is_deterministic():
    """Same seed, same corpus: identical weights; another seed: different weights."""
    tok = tk.build()
    rng = random.Random(0)
    examples = [tk.example_ids(tok, q, task.solve(q, rng)) for q in
                (task.expression(rng, rng.randint(1, 3)) for _ in range(48))]
    runs = []
    for seed in (0, 0, 1):
        m = M.fresh(TINY.model, tok, seed)
        train.fit(m, examples, epochs=1, batch_size=16, lr=3e-3, warmup=1, seed=seed, pad_id=tok.pad_token_id)
        runs.append(_weights(m))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_rl_training_is_deterministic():
    """Two RL runs of the same seed from the same model end in identical weights and histories."""
    tok = tk.build()
    params = build.task_params(TINY)
    results = []
    for _ in range(2):
        m = M.fresh(TINY.model, tok, 0)
        history = rl.train(m, tok, TINY.rl, params, seed=0)
        results.append((_weights(m), history))
    (w0, h0), (w1, h1) = results
    assert h0 == h1
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


@pytest.mark.parametrize("rewards, expected", [
    ([[1, 0, 0, 1]], [[0.866, -0.866, -0.866, 0.866]]),  # two right, two wrong: +-.5 / .577 (std with Bessel, as TRL)
    ([[1, 1, 1, 1]], [[0, 0, 0, 0]]),  # all right: no signal
    ([[0, 0, 0, 0]], [[0, 0, 0, 0]]),  # all wrong: no signal
])
def test_grpo_advantages(rewards, expected):
    from boundary.miniature import losses
    r = torch.tensor(rewards, dtype=torch.float32)
    got, _ = losses.advantages("grpo", r, torch.ones(r.numel(), 1))
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32).reshape(-1), atol=1e-3)


def test_rl_training_figure_has_three_lines_per_seed():
    """Reward, held-out pass@1 and its trace-verified version, for each seed."""
    import pandas as pd
    from boundary import plots
    rows = [{"seed": s, "step": t, "reward": 0.1 * t if t < 3 else None,
             "heldout_pass1": 0.2, "heldout_pass1_trace": 0.1} for s in (0, 1) for t in range(4)]
    fig = plots.rl_training(pd.DataFrame(rows))
    assert len(fig.axes[0].lines) == 6
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 1, 2]  # the final row has no reward
