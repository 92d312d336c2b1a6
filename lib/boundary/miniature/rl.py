"""RLVR of the base model: GRPO with a binary correctness reward, written compactly here.

Each step draws `prompts` training problems (never held-out ones), samples a group of `samples`
rollouts per problem with the project's decode engine (`boundary.sampling.decode.generate`),
rewards a rollout 1 when its last `\\boxed{}` holds the gold answer (0 when wrong or truncated:
the answer-only verdict, as RLVR rewards real models), and takes one policy-gradient step on
group-normalised advantages A = (r - mean_group) / (std_group + eps), averaged over generated
tokens (token-mean, as DAPO), with no KL penalty (as the probe, DAPO and Dr. GRPO). With one
on-policy update per batch the PPO ratio is 1 and clipping never binds, so GRPO's surrogate
reduces exactly to this loss.

Why not TRL's GRPOTrainer: its rollouts go through `model.generate` with a shared generator, so
a rollout's randomness depends on the batch it lands in; here every rollout is a function of
(seed, step, problem, sample index) through the decode engine's counter-based noise, which makes
training reproducible and uses the very sampler the evaluation uses. Its accelerate/datasets
machinery also costs more per step than this 1M-parameter model's own update on 2 CPU cores.

`algorithm` is a parameter: another estimator (RLOO, REINFORCE++) is one more entry in
ADVANTAGES. `encode` makes the same loop train a vision-language model: it maps a question to its
prompt ids and per-prompt prefill inputs (the drawn expression's `pixel_values`,
boundary.miniature.vision.Encoder), which reach both the rollouts and the policy-gradient forward.
"""
from __future__ import annotations

import random
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from boundary.miniature import task, tokenizer as tk
from boundary.sampling.decode import generate, problem_key


def grpo_advantages(rewards: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """GRPO: rewards (groups, samples) normalised within each group; 0 where a group is uniform."""
    mean, std = rewards.mean(axis=1, keepdims=True), rewards.std(axis=1, keepdims=True)
    return np.where(std > 0, (rewards - mean) / (std + eps), 0.0)


ADVANTAGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"grpo": grpo_advantages}  # by `algorithm`
Encode = Callable[[str], tuple[list[int], dict | None]]  # question -> (prompt ids, prefill inputs or None)


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


def heldout_pass1(model, tokenizer, problems: list[dict], samples: int, seed: int, max_new_tokens: int,
                  encode: Encode | None = None) -> dict:
    """Held-out pass@1 at temperature 1 (answer-only and trace-verified), `samples` per problem."""
    outs = rollouts(model, tokenizer, [p["question"] for p in problems], samples, seed,
                    temperature=1.0, max_new_tokens=max_new_tokens, encode=encode)
    ans = [task.check_answer(p, text) and fin == "stop" for p, group in zip(problems, outs) for _, text, fin in group]
    tr = [task.check_trace(p, text) and fin == "stop" for p, group in zip(problems, outs) for _, text, fin in group]
    return {"heldout_pass1": float(np.mean(ans)), "heldout_pass1_trace": float(np.mean(tr))}


def policy_loss(model, prompts: list[list[int]], completions: list[list[int]], advantages: list[float],
                pad_id: int, extra: list[dict] | None = None) -> torch.Tensor:
    """Token-mean policy-gradient loss -A * log pi(token) over every generated token.

    extra: per sequence, further model inputs ([1, ...] tensors, e.g. pixel_values), concatenated.
    """
    seqs = [p + c for p, c in zip(prompts, completions)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    weight = torch.zeros((len(seqs), width))
    for r, (p, s, a) in enumerate(zip(prompts, seqs, advantages)):
        ids[r, : len(s)] = torch.tensor(s)
        weight[r, len(p): len(s)] = a  # positions of generated tokens
    mask = torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]
    inputs = {k: torch.cat([e[k] for e in extra]) for k in extra[0]} if extra else {}
    logits = model(input_ids=ids, attention_mask=mask.long(), **inputs).logits[:, :-1].float()
    logp = -F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(len(seqs), -1)
    w = weight[:, 1:]
    return -(logp * w).sum() / (w != 0).sum().clamp(min=1)


def train(model, tokenizer, cfg, params: task.TaskParams, seed: int, *,
          on_checkpoint: Callable[[int], None] | None = None, desc: str = "rl",
          encode: Encode | None = None) -> list[dict]:
    """Train `model` in place with `cfg` (a MiniatureRL section); return one history row per step.

    encode: question -> (prompt ids, prefill inputs), for rollouts, evaluation and the update alike
    (default: the text chat prompt; a vision.Encoder trains the VLM on drawn expressions).

    Rows: step, reward (mean training reward of that step's rollouts), and at every
    `eval_every` steps (and step 0) the held-out pass@1 of the policy before that step's update.
    `on_checkpoint(step)` is called after the updates of every step listed in cfg.checkpoints.
    """
    torch.manual_seed(seed)
    advantage = ADVANTAGES[cfg.algorithm]
    exclude = task.heldout_questions(params)
    test = task.problems("test", params)
    stride = max(1, len(test) // cfg.eval_problems)
    eval_set = test[::stride][: cfg.eval_problems]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))
    eos = tokenizer.eos_token_id
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
        rng = random.Random(f"miniature/rl/{seed}/{step}")
        questions = [task.sample(rng, cfg.difficulties, task.BASE_OPS, exclude, params.max_run)
                     for _ in range(cfg.prompts)]
        outs = rollouts(model, tokenizer, questions, cfg.samples, seed=seed * 1_000_003 + step,
                        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, encode=encode)
        rewards = np.array([[float(fin == "stop" and task.check_answer(q, text)) for _, text, fin in group]
                            for q, group in zip(questions, outs)])
        adv = advantage(rewards)
        row["reward"] = float(rewards.mean())
        prompts, comps, advs, extra = [], [], [], []
        for q, group, a_row in zip(questions, outs, adv):
            p, x = encode(q) if (a_row != 0).any() else (None, None)
            for (toks, _, fin), a in zip(group, a_row):
                if a != 0:
                    prompts.append(p)
                    extra.append(x)
                    comps.append(toks + ([eos] if fin == "stop" else []))  # the stop token is an action too
                    advs.append(float(a))
        if advs:
            model.train()
            loss = policy_loss(model, prompts, comps, advs, tokenizer.pad_token_id,
                               extra=None if extra[0] is None else extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            row["loss"] = float(loss.item())
        history.append(row)
        if on_checkpoint and (step + 1) in cfg.checkpoints:
            model.eval()
            on_checkpoint(step + 1)
    model.eval()
    return history
