"""The base model: pretrained from scratch on diverse, imperfect solution traces of + - * problems.

The corpus makes a base that knows the procedure but samples it unreliably, as a pretrained LLM
knows mathematics: every trace is a (question, response) turn through the chat template, its
solution order drawn from several styles (left-first, right-first, random valid order), and each
step slips with a small probability (off by 1, 2 or 10), the trace carrying on from the wrong
value. Problems are never held-out ones, and never use the teacher's `^`.
"""
from __future__ import annotations

import random

from boundary.miniature import task, tokenizer as tk


def corpus(cfg, params: task.TaskParams, seed: int, tokenizer) -> list[tuple[list[int], int]]:
    """The pretraining examples (token ids, prompt length) of a `MiniaturePretrain` section."""
    rng = random.Random(f"miniature/pretrain/{seed}")
    exclude = task.heldout_questions(params)
    out = []
    for _ in range(cfg.examples):
        q = task.draw_question(rng, cfg.difficulties, task.BASE_OPS, exclude, params.max_run)
        r = task.solve(q, rng, rng.choice(cfg.styles), cfg.slip_rate)
        out.append(tk.example_ids(tokenizer, q, r))
    return out
