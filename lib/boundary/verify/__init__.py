"""Verification: turn a model's response into a verdict that pass@k can trust.

`boundary.verify.grade(problem, response, template)` is THE entry point (`grade_many` its batch
form, `boundary.verify.grading`): it extracts (`boundary.verify.extract`: boxed answers, programs
out of fences and reasoning blocks, completions), then compares with the checker of the problem's
answer type below. Every stage grades through it (runs.grade through the verdict cache, notebooks,
benchmarks, tests).

`boundary.verify.math` grades math answers (Math-Verify, process-isolated hard timeouts, one check
per distinct answer), and the visual answer types (numbers with a stated precision, option letters);
`boundary.verify.code` runs programs against HumanEval+/MBPP+/LiveCodeBench tests in a sandbox whose
verdict the program cannot forge; `boundary.verify.regrade` keeps a Parquet cache of verdicts beside
the sample store, so a grader upgrade re-grades only what changed.

Every grader returns the same frozen `Verdict`, which names the verifier and its version, so a
stored verdict always says what produced it. Nothing scores zero silently: a verifier that crashed
is `error`, one that ran out of time is `timeout`, a response without an answer is `no_answer`.
"""
from dataclasses import dataclass, replace

# The statuses a verdict can have; only "correct" counts as a pass.
STATUSES = ("correct", "wrong", "no_answer", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    status: str                   # one of STATUSES
    extracted: str | None         # what was extracted: the answer, or the program (None if none was found)
    verifier: str                 # the grader's name, e.g. "math-verify" or "sandbox-python"
    version: str                  # the grader's version: a change of it re-grades stored verdicts
    detail: str = ""              # a short reason (why wrong, which test failed, what timed out)
    provenance: str = ""          # how it was extracted and checked, e.g. "extract=fence:entry-point;
    #                               sandbox=rlimits,nobody,...; unavailable=..." (protections missing here)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"Verdict.status must be one of {STATUSES}, got {self.status!r}")

    def with_(self, **changes) -> "Verdict":
        """A copy with some fields changed (the verdict stays frozen)."""
        return replace(self, **changes)

    @property
    def correct(self) -> bool:
        """True only for a `correct` verdict (timeouts and errors are not passes)."""
        return self.status == "correct"


def __getattr__(name: str):
    """`grade` and `grade_many` load on first use: the entry point imports the graders and the
    templates, which import this module's `Verdict` (and the loaders import `extract.boxed`)."""
    if name in ("grade", "grade_many"):
        from boundary.verify import grading
        return getattr(grading, name)
    raise AttributeError(f"module 'boundary.verify' has no attribute {name!r}")
