"""The miniature's RL losses against TRL's on one fixed batch, and the advantages against their formulas.

TRL (a `dev` dependency) implements GRPO's loss types `grpo`, `dr_grpo` and `dapo` in
GRPOTrainer._compute_loss and RLOO in RLOOTrainer._compute_loss. Each test builds TRL's trainer on
the smoke base, hands its loss code the same batch (log-probabilities, old and reference
log-probabilities, advantages, mask) and requires the same loss as boundary.miniature.losses: the
check that each of our algorithms is the one it names. The per-token log-probabilities are ours in
both: TRL 1.16 computes them through its fused LM head, a forward-pass detail that is not the algorithm
(on this model it differs from a plain log_softmax by up to ~0.07, which test_logprobs_are_the_models
pins down for ours).
"""
from __future__ import annotations

import tempfile

import pytest
import torch

from boundary.miniature import losses, rl
from boundary.miniature import model as M
from boundary.miniature import tokenizer as tk

trl = pytest.importorskip("trl", reason="TRL is a dev dependency: pip install -e .[dev]")


@pytest.fixture(scope="module")
def batch(smoke_models):
    """Three prompts of equal length (TRL left-pads prompts), four completions each, fixed rewards."""
    model, tok = M.load(smoke_models / "base")
    g = torch.Generator().manual_seed(0)
    prompts = [tk.prompt_ids(tok, q) for q in ("12+34", "56-78", "90*12")]
    texts = ["=46 done", "=4", "x=1", "=460", "=-22", "=22", "-", "=-2", "=1080", "=10", "=1", "=108"]
    comps = [[tok.convert_tokens_to_ids(c) for c in s] + [tok.eos_token_id] for s in texts]
    P = [prompts[i // 4] for i in range(len(comps))]
    width = max(map(len, comps))
    mask = rl.completion_mask(comps, width)
    model.train()
    logp, ent = rl.token_logprobs(model, P, comps, width, tok.pad_token_id)
    return {"model": model, "tok": tok, "P": P, "comps": comps, "width": width, "mask": mask, "logp": logp, "ent": ent,
            "old": (logp.detach() + 0.1 * torch.randn(logp.shape, generator=g)) * mask,
            "ref": (logp.detach() + 0.2 * torch.randn(logp.shape, generator=g)) * mask,
            "rewards": torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 1, 1]])}


@pytest.fixture(scope="module")
def smoke_models():
    from boundary import ROOT
    folder = ROOT / "models" / "smoke"
    if not (folder / "base").is_dir():
        pytest.skip("the smoke models are not built: make models EXPERIMENT=smoke")
    return folder


def trainer(cls, config_cls, b, **kwargs):
    """TRL's trainer on the smoke base, its forward replaced by our log-probabilities of the batch."""
    from datasets import Dataset
    args = config_cls(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, num_generations=4,
                      report_to=[], use_cpu=True, **kwargs)
    t = cls(model=b["model"], reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
            train_dataset=Dataset.from_dict({"prompt": ["1+2"] * 8}), processing_class=b["tok"])
    t._get_per_token_logps_and_entropies = lambda *a, **k: (b["logp"], b["ent"], None)
    t.current_gradient_accumulation_steps = 1
    return t


def inputs(b, **more):
    """The batch as TRL's `_compute_loss` reads it."""
    pad = b["tok"].pad_token_id
    return {"prompt_ids": torch.tensor(b["P"]), "prompt_mask": torch.ones(len(b["P"]), len(b["P"][0]), dtype=torch.long),
            "completion_ids": torch.tensor([c + [pad] * (b["width"] - len(c)) for c in b["comps"]]),
            "completion_mask": b["mask"].long(), **more}


@pytest.mark.parametrize("ours, theirs, beta", [
    ("grpo", "grpo", 0.0),  # GRPO: clipped ratio, mean per sequence, then over sequences
    ("grpo", "grpo", 0.05),  # ... plus beta x k3 to the reference, per token
    ("dr-grpo", "dr_grpo", 0.0),  # Dr. GRPO: sum over tokens / (B x max_completion_length)
    ("dr-grpo", "dr_grpo", 0.05),
    ("dapo", "dapo", 0.0),  # DAPO: clip-higher (0.2, 0.28), mean over all tokens of the batch
    ("dapo", "dapo", 0.05),
])
def test_grpo_family_loss_equals_trl(batch, ours, theirs, beta):
    from trl import GRPOConfig, GRPOTrainer
    b, spec = batch, losses.SPECS[ours]
    adv, _ = losses.advantages(ours, b["rewards"], b["mask"])
    t = trainer(GRPOTrainer, GRPOConfig, b, loss_type=theirs, beta=beta, epsilon=losses.CLIP_LOW,
                epsilon_high=spec.clip_high, max_completion_length=b["width"] + 3)
    expected = t._compute_loss(b["model"], inputs(b, advantages=adv, old_per_token_logps=b["old"],
                                                  ref_per_token_logps=b["ref"], num_items_in_batch=b["mask"].sum()))
    got = losses.policy_loss(ours, b["logp"], b["old"], adv, b["mask"], beta=beta, ref=b["ref"], max_len=b["width"] + 3)
    assert float(got) == pytest.approx(float(expected), rel=1e-5, abs=1e-9)  # float32 sums in another order
    assert float(got) != 0.0  # a batch with signal: the comparison is not 0 == 0


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_rloo_loss_and_advantages_equal_trl(batch, beta):
    """RLOO: leave-one-out advantages of rewards minus beta x summed k1 (TRL computes them inline, so they are
    written out here from its code's formula), then TRL's sequence-level clipped loss."""
    from trl import RLOOConfig, RLOOTrainer
    b = batch
    adv, _ = losses.advantages("rloo", b["rewards"], b["mask"], beta=beta, old=b["old"], ref=b["ref"])
    r = b["rewards"].reshape(-1) - beta * ((b["old"] - b["ref"]) * b["mask"]).sum(1)
    g = r.view(3, 4)
    expected_adv = (g - (g.sum(1, keepdim=True) - g) / 3).reshape(-1)
    assert torch.allclose(adv, expected_adv, atol=1e-6)
    t = trainer(RLOOTrainer, RLOOConfig, b, beta=beta, epsilon=losses.CLIP_LOW, epsilon_high=losses.SPECS["rloo"].clip_high)
    expected = t._compute_loss(b["model"], inputs(b, advantages=adv, old_logps=(b["old"] * b["mask"]).sum(1)))
    got = losses.policy_loss("rloo", b["logp"], b["old"], adv, b["mask"], beta=beta, ref=b["ref"])
    assert float(got) == pytest.approx(float(expected), rel=1e-5, abs=1e-9)  # float32 sums in another order
    assert float(got) != 0.0


def test_logprobs_are_the_models(batch):
    """Our per-token log-probabilities and entropies are those of the model's own logits."""
    b = batch
    L = len(b["P"][0])
    for i, c in enumerate(b["comps"]):
        with torch.no_grad():
            lp = b["model"](input_ids=torch.tensor([b["P"][i] + c])).logits[0].float().log_softmax(-1)
        want = lp[L - 1:L - 1 + len(c)].gather(1, torch.tensor(c)[:, None])[:, 0]
        assert torch.allclose(b["logp"][i, :len(c)].detach(), want, atol=1e-5)
        assert torch.allclose(b["ent"][i, :len(c)].detach(), -(lp.exp() * lp).sum(-1)[L - 1:L - 1 + len(c)], atol=1e-5)
        assert float(b["logp"][i, len(c):].abs().sum()) == 0.0  # nothing past the completion


@pytest.mark.parametrize("algorithm, rewards, expected", [
    ("grpo", [[1, 0, 0, 1]], [0.866, -0.866, -0.866, 0.866]),  # (r - .5) / (std with Bessel .577 + 1e-4)
    ("grpo", [[1, 1, 1, 1]], [0, 0, 0, 0]),  # a uniform group has no signal
    ("dapo", [[1, 0, 0, 0]], [1.5, -0.5, -0.5, -0.5]),  # (r - .25) / .5
    ("dr-grpo", [[1, 0, 0, 1]], [0.5, -0.5, -0.5, 0.5]),  # r - mean, no std
    ("rloo", [[1, 0, 0, 1]], [0.667, -0.667, -0.667, 0.667]),  # r - mean of the three others
    ("rloo", [[1, 0, 0, 0]], [1.0, -0.333, -0.333, -0.333]),
])
def test_group_advantages(algorithm, rewards, expected):
    r = torch.tensor(rewards, dtype=torch.float32)
    adv, _ = losses.advantages(algorithm, r, torch.ones(r.numel(), 3))
    assert torch.allclose(adv, torch.tensor(expected, dtype=torch.float32), atol=2e-3)


def test_remax_baseline_is_the_greedy_reward():
    r = torch.tensor([[1.0, 0, 1], [0, 0, 1]])
    adv, _ = losses.advantages("remax", r, torch.ones(6, 2), greedy=torch.tensor([1.0, 0.0]))
    assert adv.tolist() == [0.0, -1.0, 0.0, 0.0, 0.0, 1.0]


def test_reinforce_pp_whitens_returns_over_the_batch():
    """Token rewards: -beta x k1 per token, the outcome at the last token; returns-to-go, whitened over all tokens."""
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    old, ref = torch.tensor([[0.0, -1, 0], [-1, 0, 0]]), torch.zeros(2, 3)
    adv, _ = losses.advantages("reinforce++", torch.tensor([[1.0, 0.0]]), mask, beta=0.5, old=old, ref=ref)
    ret = torch.tensor([[1.5, 1.5, 1.0], [0.5, 0.0, 0.0]])  # rows: [0, .5, 1] and [.5, 0] summed from the end
    m = mask.bool()
    want = (ret - ret[m].mean()) / (ret[m].std() + 1e-8) * mask
    assert torch.allclose(adv, want, atol=1e-6)
    assert float(adv[m].mean()) == pytest.approx(0.0, abs=1e-6)


def test_gae_with_lambda_one_is_return_minus_value():
    """gamma = lambda = 1: GAE telescopes to (sum of rewards from t) - V(t); returns = that + V."""
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.2, 0.5, 0.7]])
    adv, ret = losses.gae(r, v, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.8, 0.5, 0.3]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0]]))


def test_sequence_level_ratio_clips_whole_sequences():
    """RLOO's ratio is of the sequence: a sequence whose log-probability rose by 1 is clipped at 1.2 for A > 0."""
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.5, 0.5]], requires_grad=True)
    loss = losses.policy_loss("rloo", logp, old, torch.tensor([1.0]), mask)
    assert float(loss) == pytest.approx(-1.2)
    loss.backward()
    assert float(logp.grad.abs().sum()) == 0.0  # clipped: no gradient
