"""The miniature's reasoning task: integer arithmetic chains solved one reduction at a time.

A problem is an expression of d binary operations on digits 1-9, e.g. `7-2*3+4` (d = 3). Its
solution trace rewrites the expression one reduction per `=`, respecting precedence, and ends in
`\\boxed{N}`, the answer format of the real math benchmarks:

    question  7-2*3+4
    response  7-6+4=1+4=5\\boxed{5}

Operations: `+ - *` (the base model's world) and `^` (powers with exponent 2 or 3, the skill only
the teacher knows; its answers are spread widely, so chance rarely hits them). Precedence is
`^` > `*` > `+ -`; additive operations reduce left to right, products in any order (they
associate), so one problem has several valid traces (the "solution styles" of the corpus).
Every multiplicative run (a product of digits and powers) is at most `max_run`, so numbers stay
small; only the leading number of an intermediate expression can be negative.

Two verdicts per response, both pure functions of (problem, response):
- `check_answer`: the last `\\boxed{}` holds the gold integer (what a benchmark grader sees);
- `check_trace`: additionally, every step is one valid reduction of the previous one with exact
  arithmetic, and the box holds the final step's value. A right answer reached by a slip or an
  illegal order (a lucky hit) passes the first and fails the second.

Problem sets are deterministic for a seed (random.Random over a string seed, the same on every
machine). The held-out sets `test` and `unseen` are drawn first and excluded from every training
generator (`draw_question`), so held-out questions never appear in any training data.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable

from boundary.tasks.arith import (PREC, apply, check_trace, evaluate, gold_of, reducible,  # noqa: F401
                                   reduce_at, join, successors, tokens)  # the language, re-exported as task.*
from boundary.tasks.boxed import boxed  # noqa: F401 (the project's one \boxed{} parser, as task.boxed)

BASE_OPS = "+-*"  # operations of the base model's pretraining corpus
NEW_OP = "^"  # the teacher's skill, never in the base's corpus
EXPONENTS = (2, 3)  # right operands of `^`
SLIPS = (-10, -2, -1, 1, 2, 10)  # arithmetic slips of an imperfect trace: off by these


@dataclass(frozen=True)
class TaskParams:
    """What the problem sets are; mirrors `boundary.config.MiniatureTask` (its defaults too)."""

    seed: int = 0  # root of the held-out sets' random streams
    max_run: int = 100  # largest value of a multiplicative run (product of digits and powers)
    test_difficulties: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # d of the held-out `test` set
    test_per_difficulty: tuple[int, ...] = (16, 16, 32, 48, 64, 64)  # problems per d
    unseen_difficulties: tuple[int, ...] = (2, 3, 4)  # d of the held-out `unseen` (`^`) set
    unseen_per_difficulty: int = 24  # problems per d of `unseen`


def _runs_ok(toks: list, max_run: int) -> bool:
    """Is every multiplicative run (maximal chain of * and ^) at most max_run in value?"""
    i = 0
    while i < len(toks):
        j = i
        while j + 1 < len(toks) and toks[j + 1] in "*^":
            j += 2
        if j > i and evaluate(join(toks[i: j + 1])) > max_run:
            return False
        i = j + 2
    return True


def expression(rng: random.Random, d: int, ops: str = BASE_OPS, max_run: int = 100) -> str:
    """A random question with d operations from `ops` (at least one `^` when ops has it)."""
    while True:
        toks: list = [rng.randint(1, 9)]
        for _ in range(d):
            op = rng.choice(ops)
            if op == "^" and toks[-2:-1] == ["^"]:
                op = rng.choice(BASE_OPS)  # no towers of powers
            toks += [op, rng.choice(EXPONENTS) if op == "^" else rng.randint(1, 9)]
        if "^" in ops and "^" not in toks:
            continue
        if _runs_ok(toks, max_run):
            return join(toks)


def solve(question: str, rng: random.Random | None = None, style: str = "left",
          slip_rate: float = 0.0) -> str:
    """A solution trace (response text) of `question` in a style, with occasional slips.

    style: "left" reduces the first ready operation, "right" the last, "random" any one.
    Each step slips with probability `slip_rate` (off by one of SLIPS), and the trace carries
    on from the wrong value, as a careless solver would.
    """
    rng = rng or random.Random(0)
    toks, steps = tokens(question), []
    while len(toks) > 1:
        ready = reducible(toks)
        if style not in ("left", "right", "random"):
            raise ValueError(f"unknown solution style {style!r}")
        j = ready[0] if style == "left" else ready[-1] if style == "right" else rng.choice(ready)
        slip = rng.choice(SLIPS) if slip_rate and rng.random() < slip_rate else 0
        if j > 1 and apply(toks[j], toks[j - 1], toks[j + 1]) + slip < 0:
            slip = 0  # only the leading number may be negative (the expression stays well formed)
        toks = reduce_at(toks, j, slip)
        steps.append(join(toks))
    return "=".join(steps) + f"\\boxed{{{toks[0]}}}"


def problem(question: str, split: str, index: int) -> dict:
    """The record of one problem (the interface other modules read)."""
    toks = tokens(question)
    ops = sorted(set(toks[1::2]))
    return {
        "id": f"miniature-{split}-{index:04d}",
        "question": question,  # the text the chat template wraps
        "answer": str(evaluate(question)),  # gold, a canonical integer string
        "difficulty": len(toks) // 2,  # d: the number of operations
        "skill": "".join(ops),  # which operations it uses ("+-*", "*^", ...)
        "split": split,
    }


def _distinct(rng, d, ops, count, max_run, exclude: set) -> list[str]:
    """`count` distinct questions of d operations, none in `exclude`."""
    out: list[str] = []
    while len(out) < count:
        q = expression(rng, d, ops, max_run)
        if q not in exclude and q not in out:
            out.append(q)
    return out


def problems(split: str, params: TaskParams | None = None) -> list[dict]:
    """The held-out problem sets: `test` (operations + - *) and `unseen` (with the teacher's `^`).

    Records carry id, question, answer (gold string), difficulty (d), skill (operations used)
    and split. Deterministic for params.seed; never used for training (see `draw_question`).
    """
    p = params or TaskParams()
    if split == "test":
        if len(p.test_difficulties) != len(p.test_per_difficulty):
            raise ValueError("test_difficulties and test_per_difficulty differ in length")
        plan = [(d, c, BASE_OPS) for d, c in zip(p.test_difficulties, p.test_per_difficulty)]
    elif split == "unseen":
        plan = [(d, p.unseen_per_difficulty, BASE_OPS + NEW_OP) for d in p.unseen_difficulties]
    else:
        raise ValueError(f"unknown split {split!r}: the held-out splits are 'test' and 'unseen'")
    rng = random.Random(f"miniature/{split}/{p.seed}")
    questions: list[str] = []
    for d, count, ops in plan:
        questions += _distinct(rng, d, ops, count, p.max_run, set())
    return [problem(q, split, i) for i, q in enumerate(questions)]


def heldout_questions(params: TaskParams | None = None) -> set[str]:
    """Every held-out question (both splits): the training generators never emit these."""
    return {r["question"] for s in ("test", "unseen") for r in problems(s, params)}


def draw_question(rng: random.Random, difficulties: Iterable[int], ops: str, exclude: set[str],
           max_run: int = 100) -> str:
    """One training question: d uniform over `difficulties`, never a held-out question."""
    ds = list(difficulties)
    while True:
        q = expression(rng, rng.choice(ds), ops, max_run)
        if q not in exclude:
            return q


def check_answer(problem_or_question, response: str) -> bool:
    """Answer-only verdict: the last boxed value equals the gold integer (as Math-Verify would).

    Written here rather than calling Math-Verify because the RL reward and the n = 256 evaluation
    call it hundreds of thousands of times; tests check that both agree on miniature answers.
    """
    _, gold = gold_of(problem_or_question)
    got = boxed(response)
    if got is None or not re.fullmatch(r"[-+]?\d+", got):
        return False
    return int(got) == int(gold)
