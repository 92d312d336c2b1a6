"""The one normalized record every benchmark loader yields, and the error a bad row raises.

Downstream code (prompt templates, sampling, the verifiers) sees only `Problem`, never a
benchmark's own row layout; the layout is fixed in the interfaces brief shared between helpers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How a response to the problem is graded (boundary.verify picks its checker from this).
AnswerType = Literal["math", "number", "choice", "code"]
ANSWER_TYPES = ("math", "number", "choice", "code")


class TaskError(ValueError):
    """A benchmark row (or source) that cannot become a Problem; the message names file and line."""


@dataclass(frozen=True)
class Problem:
    """One benchmark problem, normalized across benchmarks."""

    id: str  # "<benchmark>/<the benchmark's own id>", stable across runs (sample-store key)
    benchmark: str  # registry name ("gsm8k", "math500", "humaneval_plus", ...)
    question: str  # the text a prompt template wraps (code: the task prompt or statement)
    gold: str | None  # gold answer as a string; None for code (graded by `tests`)
    answer_type: AnswerType  # "math" | "number" | "choice" | "code"
    tests: dict | None = None  # code only: what boundary.verify.code runs (formats: interfaces brief)
    image: bytes | None = None  # PNG/JPEG bytes of the figure (visual benchmarks), None if absent
    choices: list[str] | None = None  # "choice" only: the options, in order (A, B, C, ...)
    meta: dict = field(default_factory=dict)  # benchmark extras (level, subject, precision, source ...)

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise TaskError(f"{self.id}: answer_type {self.answer_type!r} is not one of {ANSWER_TYPES}")
        if (self.answer_type == "code") != (self.tests is not None):
            raise TaskError(f"{self.id}: code problems need tests, and only code problems have them")
        if self.answer_type == "choice" and not self.choices:
            raise TaskError(f"{self.id}: a multiple-choice problem needs its choices")
        if self.answer_type != "code" and not self.gold:
            raise TaskError(f"{self.id}: no gold answer")

    @classmethod
    def bare(cls, id: str, question: str, gold: str | None = None) -> "Problem":
        """A math problem known only by its question (the sampling command's rows, benchmarks and tests
        that sample a question outside any benchmark): rendered by a registered template like any
        other; its gold, unless given, is a marker (sampling never reads it; grading must not)."""
        return cls(id=str(id), benchmark="bare", question=str(question), gold=gold or "(no gold: a bare question)",
                   answer_type="math")

    @property
    def visual(self) -> bool:
        """True for problems of a visual benchmark (they need `image` to be prompted)."""
        return bool(self.meta.get("visual"))
