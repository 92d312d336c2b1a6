"""The one entry point of grading: `grade(problem, response, template) -> Verdict`, and its batch form.

Extract, then compare (Math-Verify's `parse` / `verify` split): `boundary.verify.extract` finds the
answer or the program in what the model wrote, as the prompt template it was sampled under shaped
it; the checker of the problem's answer type compares it (`boundary.verify.math`: Math-Verify with
hard timeouts, the visual answer types; `boundary.verify.code`: the sandbox). The verdict carries
what was extracted (`Verdict.extracted`, the program for code) and how (`Verdict.provenance`), so
a reader can see what was graded.

Every stage grades through here: `runs.grade` (through the verdict cache of
`boundary.verify.regrade`), notebooks, benchmarks and tests. `grade_many` runs exactly the same
extraction and comparison as `grade`, with the math checks deduplicated over a process pool and
the programs run a few sandboxes at a time.
"""
from __future__ import annotations

from collections.abc import Sequence

from boundary.tasks import templates
from boundary.tasks.problem import Problem
from boundary.verify import Verdict, code, math
from boundary.verify.extract import Extracted, program

FUNCTION_FORMATS = ("humaneval", "mbpp")  # evalplus formats: a function, prompted by its signature or a docstring


def _entry(tests: dict) -> str | None:
    """The name the program must define: a function, a `Solution` method, or None for stdin programs."""
    fmt = tests.get("format")
    if fmt in FUNCTION_FORMATS:
        return tests.get("entry_point")
    if fmt == "functional":
        return tests.get("fn_name")
    return None


def extract_program(problem: Problem, response: str, template: str) -> Extracted:
    """The program of a code response, as `template` shaped it (see `extract.program`):
    `plain` on HumanEval+/MBPP+ is a direct completion of the task prompt (evalplus); a chat
    template on them pre-fills the assistant turn up to an open ```` ```python ```` fence."""
    t = templates.get(template)
    fmt = problem.tests.get("format")
    evalplus = fmt in FUNCTION_FORMATS
    completion = evalplus and t.wrap == "plain" and t.code
    prompt = templates.render(template, problem) if completion else (problem.question if evalplus else "")
    return program(response, fmt=fmt, entry=_entry(problem.tests), prompt=prompt,
                   prefilled=evalplus and t.wrap == "chat" and t.code, completion=completion)


def _code_verdict(status: str, extracted: str | None, detail: str, how: str) -> Verdict:
    return Verdict(status, extracted, code.VERIFIER, code.VERSION, detail[:500], f"extract={how}")


def grade_many(problems: Sequence[Problem], responses: Sequence[str], template: str | Sequence[str], *,
               timeout_s: float | None = None, workers: int | None = None, progress: bool = False) -> list[Verdict]:
    """Grade responses[i] to problems[i], sampled under `template` (one name, or one per response);
    one Verdict each, in order. timeout_s: per math check, or per program run (default: each
    checker's own); workers: processes / sandboxes at a time (default: all cores)."""
    problems, responses = list(problems), list(responses)
    n = len(problems)
    names = [template] * n if isinstance(template, str) else list(template)
    if len(responses) != n or len(names) != n:
        raise ValueError(f"grade_many: {n} problems, {len(responses)} responses, {len(names)} templates")
    for i, (p, r, name) in enumerate(zip(problems, responses, names)):
        if not isinstance(p, Problem):
            raise TypeError(f"grade_many: item {i} is a {type(p).__name__}, not a boundary.tasks.Problem")
        if not isinstance(r, str):
            raise TypeError(f"grade_many: the response to {p.id} is a {type(r).__name__}, not text")
        templates.get(name)  # an unknown template name: a TaskError listing the known ones
    out: list[Verdict | None] = [None] * n
    is_code = [p.answer_type == "code" for p in problems]
    rest = [i for i in range(n) if not is_code[i]]
    if rest:
        verdicts = math.grade_many(
            [responses[i] for i in rest], [problems[i].gold for i in rest], [problems[i].answer_type for i in rest],
            choices=[problems[i].choices for i in rest], precisions=[_precision(problems[i]) for i in rest],
            templates=[names[i] for i in rest], timeout_s=timeout_s or math.TIMEOUT_S, workers=workers,
            progress=progress)
        for i, v in zip(rest, verdicts):
            out[i] = v
    run, programs, hows = [], [], []
    for i in (i for i in range(n) if is_code[i]):
        found = extract_program(problems[i], responses[i], names[i])
        if found.value is None:
            out[i] = _code_verdict("no_answer", None, found.detail, found.how)
            continue
        try:
            compile(found.value, "<program>", "exec")
        except (SyntaxError, ValueError) as e:  # ValueError: a null byte in the source
            out[i] = _code_verdict("wrong", found.value, f"the program does not compile: {e}", found.how)
            continue
        run.append(i)
        programs.append(found.value)
        hows.append(found.how)
    if run:
        verdicts = code.run_many(programs, [problems[i].tests for i in run], timeout_s, workers=workers,
                                 progress=progress)
        for i, prog, how, v in zip(run, programs, hows, verdicts):
            out[i] = v.with_(extracted=prog, provenance=f"extract={how}; {v.provenance}".rstrip("; "))
    return out  # type: ignore[return-value]


def _precision(problem: Problem) -> int | None:
    p = problem.meta.get("precision")
    return None if p is None or p != p else int(p)  # NaN from a table: no precision


def grade(problem: Problem, response: str, template: str, *, timeout_s: float | None = None) -> Verdict:
    """Grade one response to `problem`, sampled under prompt template `template` (its name in
    `boundary.tasks.TEMPLATES`): extract, then compare. See `grade_many` for many at once."""
    return grade_many([problem], [response], template, timeout_s=timeout_s, workers=1)[0]
