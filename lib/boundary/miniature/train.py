"""Supervised next-token training of a miniature model: pretraining, the teacher, distillation.

One loop for the three: examples are (token ids, prompt length); the loss covers the whole
sequence (pretraining: the model learns the questions' shape too) or only the response
(`response_only`, supervised fine-tuning). Examples are batched by similar length (chunks of
many batches sorted by length, then batches shuffled), so little compute goes to padding.
AdamW with linear warm-up and cosine decay; deterministic for a seed on one machine.

Written here rather than with transformers' Trainer: the whole loop is a screenful, and the
Trainer's data collation, accelerate set-up and logging cost more than a step of this model.
"""
from __future__ import annotations

import math
import random
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm


def batches(examples: list[tuple[list[int], int]], batch_size: int, seed: int) -> list[list[int]]:
    """Indices of examples grouped into batches of similar length, in a seeded order."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    chunk = batch_size * 32
    out = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s: s + chunk], key=lambda i: len(examples[i][0]))
        out += [part[b: b + batch_size] for b in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def collate(examples, idx, pad_id: int, response_only: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, labels) of a batch, right-padded; -100 where no loss is taken."""
    width = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.bool)
    for r, i in enumerate(idx):
        seq, plen = examples[i]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = True
        labels[r, plen if response_only else 0: len(seq)] = torch.tensor(seq[plen if response_only else 0:])
    return ids, mask, labels


def lm_loss(model, ids, mask, labels, **inputs) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions (`inputs`: further model inputs, e.g. pixel_values)."""
    logits = model(input_ids=ids, attention_mask=mask.long(), **inputs).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)


def schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def fit(model, examples, *, epochs: int, batch_size: int, lr: float, warmup: int, seed: int,
        pad_id: int, response_only: bool = False, weight_decay: float = 0.01,
        desc: str = "train", inputs: Callable[[list[int]], dict] | None = None) -> list[float]:
    """Train in place for `epochs` passes over `examples`; return the loss of every step.

    inputs: further model inputs of a batch from its example indices (a VLM's `pixel_values`).
    """
    torch.manual_seed(seed)
    plan = [b for e in range(epochs) for b in batches(examples, batch_size, seed * 1000 + e)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    model.train()
    losses = []
    bar = tqdm(plan, desc=desc, mininterval=2)
    for step, idx in enumerate(bar):
        for g in opt.param_groups:
            g["lr"] = lr * schedule(step, len(plan), warmup)
        loss = lm_loss(model, *collate(examples, idx, pad_id, response_only), **(inputs(idx) if inputs else {}))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses
