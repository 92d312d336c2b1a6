"""Code: grade a generated program against a benchmark's tests, whatever their format.

`run_tests(program, tests)` dispatches a `boundary.tasks.Problem.tests` dict to its format:
"humaneval" and "mbpp" (evalplus: base and plus inputs, expected outputs from the canonical
solution, `atol`, evalplus's special oracles; `boundary.verify.evalplus`), or an assertion test;
LiveCodeBench "stdin" (whole program, stdin to stdout) and "functional" (a `Solution` method, JSON
arguments; `boundary.verify.livecodebench`). Every program runs in the sandbox of
`boundary.verify.sandbox`, which also defines the verdicts' name and version (`VERIFIER`,
`VERSION`). The names of those modules are re-exported here, where the graders and tests find them.
"""
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from boundary import quiet
from boundary.verify import Verdict
from boundary.verify.evalplus import expected_outputs, matches, run_inputs
from boundary.verify._sandbox import Unencodable
from boundary.verify.livecodebench import LCB_IMPORTS, run_functional, run_stdin, same_stdout
from boundary.verify.sandbox import (_SCRIPT, FILE_BYTES, MEMORY_BYTES, PROTECTIONS, REVISION, TIMEOUT_S,
                                     VERIFIER, VERSION, Sandbox, _judge, _Proxy, _verdict, isolation,
                                     provenance, run)

# What the graders and tests call as code.*: this module's entry points and those of the three it joins.
__all__ = ["run_tests", "run_many", "expected_outputs", "matches", "run_inputs", "run_functional", "run_stdin",
           "same_stdout", "_SCRIPT", "FILE_BYTES", "LCB_IMPORTS", "MEMORY_BYTES", "PROTECTIONS", "REVISION",
           "TIMEOUT_S", "VERIFIER", "VERSION", "Sandbox", "Unencodable", "_judge", "_Proxy", "_verdict", "isolation",
           "provenance", "run"]


def _canonical(tests: dict) -> str:
    """The canonical program: its solution, behind the prompt when the solution is only a function body."""
    sol = tests.get("canonical_solution") or ""
    if f"def {tests['entry_point']}" not in sol:
        sol = (tests.get("prompt") or "") + sol
    return sol


def run_tests(program: str, tests: dict, timeout_s: float | None = None, *, plus: bool = True) -> Verdict:
    """Grade `program` against a `boundary.tasks.Problem.tests` dict (see the module docstring for formats).

    humaneval/mbpp: base inputs, then (if `plus`) plus inputs, against the canonical solution's
    outputs; without inputs, the `test` source. `timeout_s` bounds the whole run (default: TIMEOUT_S
    or 4x the canonical solution's time if longer; for LiveCodeBench 5 s plus 1 s per case).
    """
    fmt = tests.get("format")
    try:
        if fmt in ("humaneval", "mbpp"):
            inputs = list(tests.get("base_inputs") or []) + (list(tests.get("plus_inputs") or []) if plus else [])
            if not inputs:
                return run(program, tests["test"], tests["entry_point"], timeout_s or TIMEOUT_S)
            expected, seconds = expected_outputs(_canonical(tests), tests["entry_point"], inputs, dataset=fmt)
            budget = timeout_s or max(TIMEOUT_S, 4 * seconds + 2)  # evalplus: 4x the canonical time
            return run_inputs(program, tests["entry_point"], inputs, expected, atol=float(tests.get("atol") or 0),
                              dataset=fmt, timeout_s=budget)
        if fmt in ("stdin", "functional"):
            budget = timeout_s or 5.0 + len(tests["inputs"])
            if fmt == "stdin":
                return run_stdin(program, tests["inputs"], tests["outputs"], budget)
            return run_functional(program, tests["fn_name"], tests["inputs"], tests["outputs"], budget)
    except KeyError as e:
        return _verdict("error", f"the {fmt!r} tests lack the field {e}")
    except RuntimeError as e:  # the canonical solution itself fails: the task, not the program, is broken
        return _verdict("error", str(e))
    return _verdict("error", f"unknown test format {fmt!r}")


def run_many(programs: Sequence[str], tests: Sequence[dict], timeout_s: float | None = None, *,
             workers: int | None = None, plus: bool = True, progress: bool = False) -> list[Verdict]:
    """`run_tests` over many (program, tests) pairs, `workers` sandboxes at a time (default: all cores)."""
    if len(programs) != len(tests):
        raise ValueError(f"run_many: {len(programs)} programs but {len(tests)} tests")
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda pt: run_tests(pt[0], pt[1], timeout_s, plus=plus), zip(programs, tests))
        return list(tqdm(jobs, total=len(programs), desc="sandbox", **quiet(progress)))
