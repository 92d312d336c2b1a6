"""The arithmetic-chain language of the miniature's benchmarks: expressions, the valid reductions
that make a solution trace, and the trace-verified verdict `check_trace`.

It lives with the benchmarks (tasks) rather than in the miniature because it defines what the
`miniature` benchmarks' trace checkers accept (boundary.tasks.registry), and the stages flow one
way: the miniature, which draws problems and traces in this language, imports it from here.
Precedence is `^` > `*` > `+ -`; additive operations reduce left to right, products in any order
(they associate), so one problem has several valid traces.
"""
from __future__ import annotations

import re

PREC = {"+": 1, "-": 1, "*": 2, "^": 3}  # operator precedence
_EXPR = re.compile(r"-?\d+(?:[-+*^]\d+)*")  # a well-formed (intermediate) expression


def tokens(expr: str) -> list | None:
    """[n0, op1, n1, op2, n2, ...] of an expression string, or None if it is not well formed."""
    if not _EXPR.fullmatch(expr):
        return None
    out, i = [], 0
    while i < len(expr):
        j = i + 1 if (i == 0 and expr[0] == "-") else i
        while j < len(expr) and expr[j].isdigit():
            j += 1
        out.append(int(expr[i:j]))
        if j < len(expr):
            out.append(expr[j])
        i = j + 1
    return out


def join(toks: list) -> str:
    """The canonical string of a token list (integers in plain decimal)."""
    return "".join(str(t) for t in toks)


def apply(op: str, a: int, b: int) -> int:
    """One binary operation on integers."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "^" and 0 <= b <= 3:
        return a ** b
    raise ValueError(f"not an operation of the task: {a}{op}{b}")


def reducible(toks: list) -> list[int]:
    """Positions (odd indices) of the operations that may be reduced next.

    An operation is ready when its right neighbour does not bind tighter and its left neighbour
    binds less tightly, except that adjacent products may go in any order (they associate).
    Additive operations therefore reduce strictly left to right, after the products beside them.
    """
    ready = []
    for j in range(1, len(toks), 2):
        op, left = toks[j], toks[j - 2] if j >= 3 else None
        right = toks[j + 2] if j + 2 < len(toks) else None
        if right is not None and PREC[right] > PREC[op]:
            continue
        if right == "^" and op == "^":
            continue  # never generated; exclude to keep `^` unambiguous
        if left is not None and not (PREC[op] > PREC[left] or (op == "*" and left == "*")):
            continue
        ready.append(j)
    return ready


def reduce_at(toks: list, j: int, slip: int = 0) -> list:
    """The token list with operation j reduced (its result off by `slip`)."""
    return toks[: j - 1] + [apply(toks[j], toks[j - 1], toks[j + 1]) + slip] + toks[j + 2:]


def successors(expr: str) -> set[str]:
    """Every expression one valid, exact reduction away from `expr`."""
    toks, out = tokens(expr), set()
    for j in reducible(toks) if toks is not None else []:
        try:
            out.add(join(reduce_at(toks, j)))
        except ValueError:
            pass  # e.g. a power with an exponent outside the task's: no valid step there
    return out


def evaluate(expr: str) -> int:
    """The value of a question by Python's own arithmetic, independent of the reduction rules."""
    if not _EXPR.fullmatch(expr) or expr.startswith("-"):
        raise ValueError(f"not a question: {expr!r}")
    return int(eval(expr.replace("^", "**"), {"__builtins__": {}}))  # digits and + - * ** only


# ---------------------------------------------------------------- generation

def gold_of(problem_or_question) -> tuple[str, str]:
    """(question, gold answer) from a problem record or a bare question."""
    if isinstance(problem_or_question, dict):
        return problem_or_question["question"], problem_or_question["answer"]
    return problem_or_question, str(evaluate(problem_or_question))


def check_trace(problem_or_question, response: str) -> bool:
    """Trace-verified verdict: the right answer reached by valid steps only.

    The response must be `step=step=...=N\\boxed{N}` where each step is one valid exact
    reduction of the previous expression (the first of the question) and N is the gold answer.
    """
    question, gold = gold_of(problem_or_question)
    m = re.fullmatch(r"(.*)\\boxed\{([^{}]*)\}", response.strip(), flags=re.S)
    if not m:
        return False
    prev = question
    for step in m.group(1).split("="):
        if step not in successors(prev):
            return False
        prev = step
    return tokens(prev) is not None and len(tokens(prev)) == 1 and m.group(2) == prev == gold
