"""RLVR of the base model: the training loop every policy-gradient algorithm shares.

Each step draws `prompts` training problems (never held-out ones), samples a group of `samples`
rollouts per problem with the project's decode engine (`boundary.sampling.decode.generate`),
rewards a rollout 1 when its last `\\boxed{}` holds the gold answer (0 when wrong or truncated:
the answer-only verdict, as RLVR rewards real models), and takes `updates` optimizer steps on the
batch with the loss of `algorithm` (boundary.miniature.losses: grpo, ppo, rloo, reinforce++, remax,
dapo, dr-grpo). One rollout and reward path for all: an algorithm only changes the advantages and
the loss, and adds what it needs (PPO a critic, ReMax one greedy rollout per prompt, DAPO more
prompts until `prompts` groups have mixed rewards). `kl` > 0 keeps the policy near a reference,
at first the base; `reset_every` makes the current policy the reference (and restarts the
optimizer) every so many steps, as ProRL.

Why not TRL's trainers: their rollouts go through `model.generate` with a shared generator, so a
rollout's randomness depends on the batch it lands in; here every rollout is a function of
(seed, step, problem, sample index) through the decode engine's counter-based noise, which makes
training reproducible and uses the very sampler the evaluation uses. Their accelerate/datasets
machinery also costs more per step than this 1M-parameter model's own update on 2 CPU cores. Our
losses are checked against TRL's on a fixed batch (tests/test_rl_losses.py).

`encode` makes the same loop train a vision-language model: it maps a question to its prompt ids
and per-prompt prefill inputs (the drawn expression's `pixel_values`, boundary.miniature.vision.Encoder),
which reach both the rollouts and every forward pass of the update.
"""
from __future__ import annotations

import copy
import random
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from boundary.miniature import losses, task, tokenizer as tk
from boundary.sampling.decode import generate, problem_key

Encode = Callable[[str], tuple[list[int], dict | None]]  # question -> (prompt ids, prefill inputs or None)
MAX_DRAWS = 4  # DAPO's dynamic sampling: at most this many draws of `prompts` problems per step


def text_encoder(tokenizer) -> Encode:
    """The text world's encoder: the chat prompt of the question, no further inputs."""
    return lambda q: (tk.prompt_ids(tokenizer, q), None)


def rollouts(model, tokenizer, questions: list[str], samples: int, seed: int, *, temperature: float,
             max_new_tokens: int, batch_size: int = 256,
             encode: Encode | None = None) -> list[list[tuple[list[int], str, str]]]:
    """`samples` completions of each question: per question a list of (tokens, text, finish_reason).

    encode: question -> (prompt ids, prefill inputs); default the text chat prompt (`text_encoder`).
    """
    encoded = [(encode or text_encoder(tokenizer))(q) for q in questions]
    prompts = [ids for ids, _ in encoded]
    extra = None if encoded[0][1] is None else [x for _, x in encoded]
    out: list[list] = [[None] * samples for _ in questions]
    for c in generate(model, prompts, [problem_key(q) for q in questions], [range(samples)] * len(questions),
                      seed, temperature=temperature, max_new_tokens=max_new_tokens,
                      stop_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
                      batch_size=batch_size, extra=extra):
        out[c.prompt][c.sample] = (list(c.tokens), tokenizer.decode(c.tokens), c.finish_reason)
    return out


def reward(question: str, completion: tuple[list[int], str, str]) -> float:
    """The binary RLVR reward: 1 when the answer is right and the rollout ended by itself."""
    _, text, fin = completion
    return float(fin == "stop" and task.check_answer(question, text))


def heldout_pass1(model, tokenizer, problems: list[dict], samples: int, seed: int, max_new_tokens: int,
                  encode: Encode | None = None) -> dict:
    """Held-out pass@1 at temperature 1 (answer-only and trace-verified), `samples` per problem."""
    outs = rollouts(model, tokenizer, [p["question"] for p in problems], samples, seed,
                    temperature=1.0, max_new_tokens=max_new_tokens, encode=encode)
    ans = [task.check_answer(p, text) and fin == "stop" for p, group in zip(problems, outs) for _, text, fin in group]
    tr = [task.check_trace(p, text) and fin == "stop" for p, group in zip(problems, outs) for _, text, fin in group]
    return {"heldout_pass1": float(np.mean(ans)), "heldout_pass1_trace": float(np.mean(tr))}


def token_logprobs(model, prompts: list[list[int]], completions: list[list[int]], width: int, pad_id: int,
                   extra: list[dict] | None = None, temperature: float = 1.0, values: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per completion token: log pi(token) at `temperature` and the entropy of pi there, both [B, width]
    (zeros past each completion). values=True: `model` is a `Critic`; returns (values, values).

    extra: per sequence, further model inputs ([1, ...] tensors, e.g. pixel_values), concatenated.
    """
    seqs = [p + c for p, c in zip(prompts, completions)]
    full = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), full), pad_id, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
    mask = torch.arange(full)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]
    inputs = {k: torch.cat([e[k] for e in extra]) for k in extra[0]} if extra else {}
    # the positions whose output predicts completion token t: len(prompt) - 1 + t
    pos = torch.tensor([[min(len(p) - 1 + t, full - 1) for t in range(width)] for p in prompts])
    if values:
        v = model(ids, mask.long(), inputs).gather(1, pos)
        return v, v
    logits = model(input_ids=ids, attention_mask=mask.long(), **inputs).logits.float() / temperature
    logits = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))
    logp_all = torch.log_softmax(logits, -1)
    target = torch.tensor([c + [pad_id] * (width - len(c)) for c in completions])
    cmask = completion_mask(completions, width)
    logp = logp_all.gather(2, target[..., None])[..., 0] * cmask
    entropy = -(logp_all.exp() * logp_all).sum(-1) * cmask
    return logp, entropy


def completion_mask(completions: list[list[int]], width: int) -> torch.Tensor:
    """[B, width] float mask of the completion tokens."""
    return (torch.arange(width)[None, :] < torch.tensor([len(c) for c in completions])[:, None]).float()


class Critic(torch.nn.Module):
    """PPO's value function: a copy of the policy's network with a scalar head on its last hidden state
    (zero-initialised, so the first values are 0). Trained beside the policy, never saved with it."""

    def __init__(self, policy):
        super().__init__()
        self.body = copy.deepcopy(policy)
        self.head = torch.nn.Linear(self.body.config.get_text_config().hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, ids, mask, inputs):
        out = self.body(input_ids=ids, attention_mask=mask, output_hidden_states=True, **inputs)
        return self.head(out.hidden_states[-1].float())[..., 0]


def draw(model, tokenizer, cfg, params: task.TaskParams, seed: int, step: int, exclude, encode: Encode, spec):
    """One step's rollouts: (questions, rollouts, rewards [P, G] as a numpy array, the first draw's mean
    reward). DAPO (dynamic sampling) keeps only groups with mixed rewards and draws again, up to
    MAX_DRAWS times, until `prompts` groups are kept."""
    rng = random.Random(f"miniature/rl/{seed}/{step}")
    questions, outs, rewards, first = [], [], [], None
    for d in range(MAX_DRAWS if spec.dynamic_sampling else 1):
        qs = [task.draw_question(rng, cfg.difficulties, task.BASE_OPS, exclude, params.max_run) for _ in range(cfg.prompts)]
        os_ = rollouts(model, tokenizer, qs, cfg.samples, seed=seed * 1_000_003 + step + 7_919 * d,
                       temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, encode=encode)
        rs = [[reward(q, c) for c in group] for q, group in zip(qs, os_)]
        first = float(np.mean(rs)) if first is None else first
        for q, o, r in zip(qs, os_, rs):
            if not spec.dynamic_sampling or 0 < sum(r) < len(r):
                questions.append(q), outs.append(o), rewards.append(r)
        if len(questions) >= cfg.prompts:
            break
    k = min(len(questions), cfg.prompts)
    return questions[:k], outs[:k], np.array(rewards[:k], dtype=float).reshape(k, cfg.samples), first


def train(model, tokenizer, cfg, params: task.TaskParams, seed: int, *,
          on_checkpoint: Callable[[int], None] | None = None, desc: str = "rl",
          encode: Encode | None = None) -> list[dict]:
    """Train `model` in place with `cfg` (a MiniatureRL section); return one history row per step.

    encode: question -> (prompt ids, prefill inputs), for rollouts, evaluation and the update alike
    (default: the text chat prompt; a vision.Encoder trains the VLM on drawn expressions).

    Rows: step, reward (mean training reward of that step's first draw of rollouts), loss, kl (mean
    k3 to the reference, when kl > 0), groups (groups trained on), and at every `eval_every` steps
    (and step 0) the held-out pass@1 of the policy before that step's update.
    `on_checkpoint(step)` is called after the updates of every step listed in cfg.checkpoints.
    """
    torch.manual_seed(seed)
    spec = losses.SPECS[cfg.algorithm]
    exclude = task.heldout_questions(params)
    test = task.problems("test", params)
    stride = max(1, len(test) // cfg.eval_problems)
    eval_set = test[::stride][: cfg.eval_problems]
    new_opt = lambda m, lr: torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))  # noqa: E731
    opt = new_opt(model, cfg.lr)
    ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.kl > 0 else None
    critic = Critic(model) if spec.critic else None
    critic_opt = new_opt(critic, cfg.critic_lr) if critic else None
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    encode = encode or text_encoder(tokenizer)
    history = []
    for step in tqdm(range(cfg.steps + 1), desc=desc, mininterval=2):
        model.eval()
        row = {"step": step}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row |= heldout_pass1(model, tokenizer, eval_set, cfg.eval_samples, seed=10_000 + step,
                                 max_new_tokens=cfg.max_new_tokens, encode=encode)
        if step == cfg.steps:
            history.append(row)
            break
        questions, outs, rewards, row["reward"] = draw(model, tokenizer, cfg, params, seed, step, exclude, encode, spec)
        row["groups"] = len(questions)
        if questions:
            row |= update(model, tokenizer, cfg, spec, questions, outs, rewards, encode, opt, ref, critic, critic_opt,
                          seed, step, eos, pad)
        history.append(row)
        if ref is not None and cfg.reset_every and (step + 1) % cfg.reset_every == 0:
            ref.load_state_dict(model.state_dict())  # ProRL: the reference becomes the current policy,
            opt = new_opt(model, cfg.lr)  # and the optimizer starts afresh
        if on_checkpoint and (step + 1) in cfg.checkpoints:
            model.eval()
            on_checkpoint(step + 1)
    model.eval()
    return history


def update(model, tokenizer, cfg, spec, questions, outs, rewards, encode, opt, ref, critic, critic_opt,
           seed, step, eos, pad) -> dict:
    """The optimizer steps of one batch (see `train`); returns the row's loss and kl."""
    prompts, extra, comps = [], [], []
    for q, group in zip(questions, outs):
        p, x = encode(q)
        for toks, _, fin in group:
            prompts.append(p), extra.append(x)
            comps.append(toks + ([eos] if fin == "stop" else []))  # the stop token is an action too
    extra = None if extra[0] is None else extra
    width = max(1, max(map(len, comps)))
    mask = completion_mask(comps, width)
    fwd = lambda m, rows, **kw: token_logprobs(  # noqa: E731
        m, [prompts[i] for i in rows], [comps[i] for i in rows], width, pad,
        None if extra is None else [extra[i] for i in rows], cfg.temperature, **kw)
    every = list(range(len(comps)))
    with torch.no_grad():
        old = fwd(model, every)[0] if cfg.updates > 1 or (spec.kl_in_reward and cfg.kl > 0) else None
        ref_lp = fwd(ref, every)[0] if ref is not None else None
        values = fwd(critic, every, values=True)[0] if critic else None
        greedy = None
        if spec.greedy_baseline:  # ReMax: the reward of each prompt's greedy answer is its baseline
            g = rollouts(model, tokenizer, questions, 1, seed=seed * 1_000_003 + step, temperature=0.0,
                         max_new_tokens=cfg.max_new_tokens, encode=encode)
            greedy = torch.tensor([reward(q, c[0]) for q, c in zip(questions, g)])
    adv, returns = losses.advantages(cfg.algorithm, torch.tensor(rewards, dtype=torch.float32), mask, beta=cfg.kl,
                                     old=old, ref=ref_lp, values=values, greedy=greedy)
    # Rows whose loss is exactly zero (a per-sequence advantage of 0, no KL term in the loss) are not
    # run through the network: the loss keeps the whole batch's normalisation (rows, tokens).
    kl_in_loss = cfg.kl > 0 and not spec.kl_in_reward
    rows = [i for i in every if adv.dim() == 2 or kl_in_loss or adv[i] != 0]
    out = {} if ref_lp is None or old is None else {"kl": float((losses.kl_k3(old, ref_lp) * mask).sum() / mask.sum())}
    if not rows and critic is None:
        return out
    for _ in range(cfg.updates):
        model.train()
        if rows:
            logp = fwd(model, rows)[0]
            if ref_lp is not None and "kl" not in out and len(rows) == len(comps):  # before the first step
                out["kl"] = float((losses.kl_k3(logp.detach(), ref_lp) * mask).sum() / mask.sum())
            o = old[rows] if old is not None else logp.detach()
            loss = losses.policy_loss(cfg.algorithm, logp, o, adv[rows], mask[rows], beta=cfg.kl,
                                      ref=None if ref_lp is None else ref_lp[rows], max_len=cfg.max_new_tokens,
                                      rows=len(comps), tokens=float(mask.sum()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            out["loss"] = float(loss.item())
        if critic is not None:
            critic.train()
            vloss = losses.value_loss(fwd(critic, every, values=True)[0], values, returns, mask)
            critic_opt.zero_grad(set_to_none=True)
            vloss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
            critic_opt.step()
            out["value_loss"] = float(vloss.item())
    return out
