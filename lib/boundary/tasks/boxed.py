"""`\\boxed{}`: the answer format of MATH-style benchmarks (their gold solutions end in one, and the
prompts ask models for one), and THE parser of it in this project: the loaders read Minerva's gold
with it (boundary.tasks.parse), the graders read responses with it (boundary.verify.extract), the
miniature's reward too. It lives with the benchmarks so the stages flow one way (tasks -> verify).
"""
from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox|framebox)\s*")


def _closers(text: str) -> dict[int, int]:
    """{position of "{": position of its matching "}"} for every closed group, in one linear pass."""
    stack, pairs = [], {}
    for m in re.finditer(r"(?<!\\)[{}]", text):
        if m.group(0) == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox`, `\\framebox`) that closes, braces matched
    and stripped; `\\boxed 5` (no braces) up to the next space or dollar; None if there is none.

    A truncated response may end inside its last box: then the last box that closes counts. An
    empty box is skipped. Written here because Math-Verify parses answers to sympy but does not
    return the raw LaTeX, which the verdict stores and the loaders keep as gold."""
    boxes = list(_BOX.finditer(text))
    closers = _closers(text) if boxes else {}
    for m in reversed(boxes):
        j = m.end()
        if j < len(text) and text[j] == "{":
            inner = text[j + 1:closers[j]].strip() if j in closers else ""
            if inner:
                return inner
        elif j < len(text):
            word = re.match(r"[^\s$]+", text[j:])
            if word:
                return word.group(0)
    return None
