"""The policy-gradient algorithms of the miniature's RLVR: advantages and losses of one rollout batch.

Every algorithm sees the same batch (boundary.miniature.rl builds it): rewards per rollout in groups
of G consecutive rows (one prompt's rollouts), and per-token tensors [B, T] over the completions
with a mask: the policy's log-probabilities `logp`, those of the policy that sampled them `old`, and
those of the reference `ref` (the base, or the policy at the last reset). Names are the papers':

| algorithm   | advantage                                             | ratio    | loss over tokens      | KL to ref       |
|-------------|-------------------------------------------------------|----------|-----------------------|-----------------|
| grpo        | (r - group mean) / (group std + 1e-4)                 | token    | mean per sequence     | k3 x ratio in the loss |
| dr-grpo     | r - group mean (no std: Dr. GRPO)                     | token    | sum / (B x max_len)   | k3 in the loss  |
| dapo        | as grpo; groups of equal rewards dropped and redrawn  | token, clip-higher (0.2, 0.28) | mean per token | k3 in the loss |
| rloo        | r - mean of the other G-1 (r minus beta x summed k1)  | sequence | mean per sequence     | k1 in the reward|
| remax       | r - reward of the greedy answer to the same prompt    | token    | mean per token        | k1 in the reward|
| reinforce++ | return-to-go of token rewards, whitened over the batch| token    | mean per token        | k1 per token in the reward |
| ppo         | GAE(gamma 1, lambda 0.95) with a critic, whitened     | token    | mean per token        | k1 per token in the reward |

GRPO, Dr. GRPO and DAPO are TRL's GRPOTrainer loss types `grpo`, `dr_grpo` and `dapo` (std over the
group with Bessel's correction, as TRL's `nanstd`); RLOO is TRL's RLOOTrainer (sequence-level ratio,
first-order KL in the reward). tests/test_rl_losses.py computes both on one fixed batch. k1 is
log pi - log ref, k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman's unbiased, non-negative estimate);
in the loss, k3 is multiplied by the token's importance ratio, TRL's default `use_bias_correction_kl`
(DeepSeek-V3.2): its gradient is then the unbiased gradient of the reverse KL, also on-policy.
Why not TRL's trainers themselves: see boundary.miniature.rl.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

ALGORITHMS = ("grpo", "ppo", "rloo", "reinforce++", "remax", "dapo", "dr-grpo")  # the names params accept
EPS = 1e-4  # added to a standard deviation before dividing by it (TRL's GRPO and RLOO)


@dataclass(frozen=True)
class Spec:
    """What distinguishes one algorithm from another in the shared loop."""

    advantage: str  # "group", "group-mean", "leave-one-out", "greedy", "returns", "gae": see `advantages`
    ratio: str  # "token" or "sequence": the importance ratio per token or of the whole sequence (RLOO)
    aggregate: str  # "sequence", "token" or "constant": see `aggregate`
    clip_high: float  # upper clip range of the ratio (the lower is always 0.2)
    kl_in_reward: bool  # KL as a reward penalty (k1) rather than a loss term (k3)
    dynamic_sampling: bool = False  # drop groups whose rollouts all got the same reward, draw more (DAPO)
    critic: bool = False  # a learned value function (PPO)
    greedy_baseline: bool = False  # one greedy rollout per prompt as the baseline (ReMax)


CLIP_LOW = 0.2  # lower clip range of the ratio, every algorithm (PPO's 0.2)
SPECS = {
    "grpo": Spec("group", "token", "sequence", 0.2, False),
    "dr-grpo": Spec("group-mean", "token", "constant", 0.2, False),
    "dapo": Spec("group", "token", "token", 0.28, False, dynamic_sampling=True),
    "rloo": Spec("leave-one-out", "sequence", "sequence", 0.2, True),
    "remax": Spec("greedy", "token", "token", 0.2, True, greedy_baseline=True),
    "reinforce++": Spec("returns", "token", "token", 0.2, True),
    "ppo": Spec("gae", "token", "token", 0.2, True, critic=True),
}
assert set(SPECS) == set(ALGORITHMS)


def group_std(rewards: torch.Tensor) -> torch.Tensor:
    """Standard deviation within each group (rows), with Bessel's correction as TRL's `nanstd`."""
    return rewards.std(dim=1, keepdim=True, unbiased=True)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over the masked entries of the whole batch (REINFORCE++, PPO's advantages)."""
    m = mask.bool()
    mean, std = x[m].mean(), x[m].std() if m.sum() > 1 else torch.tensor(0.0)
    return torch.where(m, (x - mean) / (std + 1e-8), torch.zeros_like(x))


def token_rewards(rewards: torch.Tensor, k1: torch.Tensor | None, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards [B, T]: -beta x k1 at every token, plus the outcome reward at the last one."""
    out = torch.zeros_like(mask, dtype=torch.float32) if k1 is None else -beta * k1 * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    out[torch.arange(len(rewards)), last] += rewards
    return out


def returns_to_go(r: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the rewards from each token on (gamma = 1), masked."""
    return torch.flip(torch.cumsum(torch.flip(r * mask, [1]), 1), [1]) * mask


def gae(r: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns (PPO, TRL's defaults gamma 1, lambda 0.95)."""
    T = r.shape[1]
    adv, last = torch.zeros_like(r), torch.zeros(r.shape[0])
    values = values * mask
    for t in reversed(range(T)):
        nxt = values[:, t + 1] if t + 1 < T else torch.zeros(r.shape[0])
        delta = r[:, t] + gamma * nxt - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, adv + values


def advantages(algorithm: str, rewards: torch.Tensor, mask: torch.Tensor, *, beta: float = 0.0,
               old: torch.Tensor | None = None, ref: torch.Tensor | None = None,
               values: torch.Tensor | None = None, greedy: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(advantages, returns) of one batch: advantages [B] (one per sequence) or [B, T] (per token);
    returns [B, T] for PPO's critic, else None.

    rewards: [P, G], G rollouts of each of P prompts (rows of the batch in that order); mask [B, T]
    (B = P x G); beta: KL coefficient; old, ref: [B, T] log-probabilities (needed for a KL in the
    reward); values: [B, T] the critic's (PPO); greedy: [P] reward of each prompt's greedy answer (ReMax).
    """
    spec = SPECS[algorithm]
    P, G = rewards.shape
    flat = rewards.reshape(-1)
    k1 = (old - ref) if (spec.kl_in_reward and beta != 0) else None
    if spec.advantage in ("group", "group-mean"):
        adv = rewards - rewards.mean(dim=1, keepdim=True)
        if spec.advantage == "group":
            adv = adv / (group_std(rewards) + EPS)
        return adv.reshape(-1), None
    if spec.advantage in ("leave-one-out", "greedy"):
        r = flat if k1 is None else flat - beta * (k1 * mask).sum(1)
        r = r.view(P, G)
        base = (r.sum(1, keepdim=True) - r) / (G - 1) if spec.advantage == "leave-one-out" else greedy.view(P, 1)
        return (r - base).reshape(-1), None
    tok = token_rewards(flat, k1, mask, beta)
    if spec.advantage == "returns":
        return masked_whiten(returns_to_go(tok, mask), mask), None
    adv, ret = gae(tok, values, mask)
    return masked_whiten(adv, mask), ret


def kl_k3(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 (GRPO, TRL)."""
    d = ref - logp
    return torch.exp(d) - d - 1


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str, max_len: int,
              rows: int | None = None, tokens: int | None = None) -> torch.Tensor:
    """Reduce a masked [B, T] loss to a scalar: "sequence" (mean over each sequence's tokens, then over
    sequences: GRPO), "token" (sum over all tokens / their number: DAPO, PPO), "constant" (sum / (B x
    max_len): Dr. GRPO). rows, tokens: the batch's totals when rows whose loss is exactly zero were left
    out of `per_token` (default: those of `mask`)."""
    rows = per_token.shape[0] if rows is None else rows
    if how == "sequence":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / rows
    if how == "token":
        return (per_token * mask).sum() / max(float(mask.sum()) if tokens is None else tokens, 1.0)
    return (per_token * mask).sum() / (rows * max_len)


def policy_loss(algorithm: str, logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, *,
                beta: float = 0.0, ref: torch.Tensor | None = None, max_len: int = 1,
                rows: int | None = None, tokens: int | None = None) -> torch.Tensor:
    """The clipped surrogate of `algorithm` on one batch (minimised), with the KL loss term where the
    algorithm puts it there. logp: [B, T] with gradient; old: the same detached from the sampling policy;
    adv: [B] or [B, T]; ref: [B, T] (needed when beta != 0 for KL-in-loss algorithms); max_len:
    Dr. GRPO's constant (the rollouts' max_new_tokens); rows, tokens: see `aggregate`."""
    spec = SPECS[algorithm]
    if spec.ratio == "sequence":  # RLOO: one ratio per sequence, one loss per sequence
        ratio = torch.exp(((logp - old) * mask).sum(1))
        loss = -torch.min(ratio * adv, torch.clamp(ratio, 1 - CLIP_LOW, 1 + spec.clip_high) * adv)
        return loss.sum() / (loss.shape[0] if rows is None else rows)
    a = adv if adv.dim() == 2 else adv[:, None]
    ratio = torch.exp(logp - old)
    per_token = -torch.min(ratio * a, torch.clamp(ratio, 1 - CLIP_LOW, 1 + spec.clip_high) * a)
    if beta != 0 and not spec.kl_in_reward:
        per_token = per_token + beta * kl_k3(logp, ref) * ratio  # x ratio: TRL's default bias correction
    return aggregate(per_token, mask, spec.aggregate, max_len, rows, tokens)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped value loss: 0.5 x max((v - R)^2, (v_clipped - R)^2), mean over tokens (TRL's PPO)."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    per_token = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
