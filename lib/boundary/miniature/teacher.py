"""The teacher and the distilled model: a skill the base never saw, passed on by supervised training.

- **teacher**: the base trained further on clean traces (no slips) of which a share use `^`
  (powers, exponent 2 or 3), an operation absent from the base's corpus. Its answers are spread
  widely (a power is rarely equal to the sum or product a guesser would write), so chance rarely
  hits them.
- **distilled**: the base fine-tuned (loss on the response only) on the teacher's own sampled
  traces of training problems, keeping those the trace checker verifies (rejection-sampled
  distillation, as reasoning models are distilled), never the teacher's weights or the
  generator's exact traces.
"""
from __future__ import annotations

import random

from boundary.miniature import task, tokenizer as tk


def _question(rng, difficulties, share: float, exclude, max_run) -> str:
    """A training question, with `^` in it with probability `share`."""
    ops = task.BASE_OPS + task.NEW_OP if rng.random() < share else task.BASE_OPS
    ds = [d for d in difficulties if d >= 2] if "^" in ops else difficulties
    return task.draw_question(rng, ds or difficulties, ops, exclude, max_run)


def corpus(cfg, params: task.TaskParams, seed: int, tokenizer) -> list[tuple[list[int], int]]:
    """The teacher's examples (clean traces, styles mixed) of a `MiniatureTeacher` section."""
    rng = random.Random(f"miniature/teacher/{seed}")
    exclude = task.heldout_questions(params)
    out = []
    for _ in range(cfg.examples):
        q = _question(rng, cfg.difficulties, cfg.new_op_share, exclude, params.max_run)
        r = task.solve(q, rng, rng.choice(["left", "right", "random"]))
        out.append(tk.example_ids(tokenizer, q, r))
    return out


def distill_prompts(cfg, teacher_cfg, params: task.TaskParams, seed: int) -> list[str]:
    """The training questions the teacher answers for distillation (never held-out ones)."""
    rng = random.Random(f"miniature/distill/{seed}")
    exclude = task.heldout_questions(params)
    return [_question(rng, teacher_cfg.difficulties, teacher_cfg.new_op_share, exclude, params.max_run)
            for _ in range(cfg.prompts)]


def keep(cfg, question: str, response: str, finish_reason: str) -> bool:
    """Is this teacher sample kept for distillation (per `MiniatureDistill.keep`)?"""
    if cfg.keep == "all":
        return True  # every sample, truncated ones too (the tiny test build only)
    if finish_reason != "stop":
        return False  # truncated: never a training target
    if cfg.keep == "trace":
        return task.check_trace(question, response)
    if cfg.keep == "answer":
        return task.check_answer(question, response)
    raise ValueError(f"unknown keep rule {cfg.keep!r}")
