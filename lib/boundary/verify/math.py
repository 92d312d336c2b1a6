"""Math answers: extract the final answer, decide equivalence with Math-Verify, at scale and with hard timeouts.

Extraction is `boundary.verify.extract.math_answer` (the last box, `####` line or "answer is"
phrase, after a reasoning block first; under the `dapo` template the last "Answer:" line first);
without one the response has no answer (`no_answer`, counted, never a silent `wrong`). The entry
point is `boundary.verify.grade`; `grade_many` here is its math half.

Equivalence (answer_type "math") goes through Math-Verify (`parse` + `verify`) in worker processes:
Math-Verify's own timeouts use `signal.alarm`, which breaks in threads and returns a silent False on
time-out, so they are switched off and each check instead runs in a worker that is killed and
replaced when it overruns (`timeout`). `grade_many` checks each distinct (gold, extracted answer)
once, since most samples of a problem repeat a few answers, and spreads the distinct checks over a
process pool (two plain integers are compared directly: Math-Verify's verdict, without its ~10 ms
LaTeX parse). The visual answer types ("number" with a stated precision, MathVista; "choice", an
option letter or value, MathVision/MathVista) are plain Python and run in the caller.
"""
import atexit
import logging
import os
import pickle
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from importlib.metadata import version as _pkg_version
from multiprocessing.connection import wait

from tqdm import tqdm

from boundary import quiet
from boundary.verify import Verdict
from boundary.verify.extract import math_answer

REVISION = "2"  # this module's grading logic; bump it when extraction or comparison changes
VERIFIER = "math-verify"  # the name stored with every verdict of this module
VERSION = f"{_pkg_version('math-verify')}+boundary.{REVISION}"  # library version + ours
TIMEOUT_S = 5.0  # default wall-clock budget of one equivalence check, in seconds
MAX_ANSWER_CHARS = 2000  # longer extracted answers are `wrong` without parsing (no real answer is this long)
ANSWER_TYPES = ("math", "number", "choice")  # what `grade` accepts (code goes through boundary.verify.code)

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_INT = re.compile(r"\s*-?\d{1,100}\s*")  # a plain integer answer
_SCI = re.compile(r"(?<![\w\\])(\d+(?:\.\d+)?)[eE]([-+]?\d+)\b")  # 4.5e33, as Minerva writes it


def extract(response: str, template: str | None = None) -> tuple[str | None, str]:
    """The final answer of a response and how it was found: (answer, "boxed"|"hash"|"phrase"|...|"none");
    `boundary.verify.extract.math_answer` (the project's one extraction) as a pair."""
    found = math_answer(response, template)
    return found.value, found.how


def _latex(answer: str) -> str:
    """The answer boxed for Math-Verify: outer $...$ and a final full stop dropped, and `4.5e33`
    spelled `4.5\\times10^{33}` (Minerva's golds; Math-Verify reads it as 4.5*E*33)."""
    answer = answer.strip()
    if len(answer) > 1 and answer[0] == answer[-1] == "$":  # OlympiadBench golds come as $...$
        answer = answer[1:-1]
    answer = answer.rstrip().removesuffix(".").rstrip()  # `\boxed{104.}`: a sentence's full stop
    return "\\boxed{" + _SCI.sub(r"\1\\times10^{\2}", answer) + "}"


# ---------------------------------------------------------------- the worker side (Math-Verify)

_GOLDS: dict[str, list] = {}  # per worker: parsed golds, so each gold is parsed once


def _equivalent(extracted: str, gold: str) -> tuple[str, str]:
    """(status, detail) of one Math-Verify check; runs inside a worker process."""
    from math_verify import LatexExtractionConfig, ExprExtractionConfig, parse, verify

    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    if gold not in _GOLDS:
        if len(_GOLDS) > 10_000:
            _GOLDS.clear()
        _GOLDS[gold] = parse(_latex(gold), config, parsing_timeout=None)
    parsed_gold = _GOLDS[gold]
    if not parsed_gold:
        return "error", f"Math-Verify cannot parse the gold answer {gold!r}"
    parsed = parse(_latex(extracted), config, parsing_timeout=None)
    if not parsed:
        return "wrong", "Math-Verify cannot parse the extracted answer"
    if verify(parsed_gold, parsed, timeout_seconds=None):
        return "correct", ""
    return "wrong", f"not equivalent to {gold!r}"


def _serve() -> None:
    """Worker loop (`python -m boundary.verify.math`): read pickled (extracted, gold) from stdin, write (status, detail)."""
    import pickle
    import signal
    import sys

    # The parent owns the worker's lifetime (it kills it on time-out and closes stdin when done); a
    # Ctrl-C or a notebook kernel's interrupt, sent to the whole process group, is the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the "timeout disabled" warning: we kill instead
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by a library may corrupt the answer stream
    while True:
        try:
            extracted, gold = pickle.load(stdin)
        except EOFError:
            return
        try:
            status, detail = _equivalent(extracted, gold)
        except Exception as e:  # a Math-Verify crash is an `error` verdict, never a silent wrong
            status, detail = "error", f"{type(e).__name__}: {str(e)[:200]}"
        pickle.dump((status, detail), stdout)
        stdout.flush()


# Our own pool rather than a library's (pebble, concurrent.futures): those build on multiprocessing,
# whose spawn and forkserver children re-run the caller's main script, so a script that grades at top
# level without an `if __name__ == "__main__"` guard breaks ("All workers expired" under pebble 5.2),
# and fork copies a parent whose torch threads may hold locks. A worker here is a fresh interpreter
# reading pickled tasks on stdin: no main script re-run, no fork (tests/test_verify_math.py checks it).
class _Worker:
    """One worker process (a fresh interpreter, so no fork of a threaded parent and no __main__ guard needed)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "boundary.verify.math"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.task = None      # the (extracted, gold) being checked
        self.deadline = 0.0   # monotonic time by which it must answer

    def send(self, task: tuple[str, str], timeout_s: float) -> None:
        self.task, self.deadline = task, time.monotonic() + timeout_s
        pickle.dump(task, self.proc.stdin)
        self.proc.stdin.flush()

    def receive(self) -> tuple[str, str]:
        """The answer to the current task (the worker is known to have written it); raises EOFError if it died."""
        answer = pickle.load(self.proc.stdout)
        self.task = None
        return answer

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


_POOL: list[_Worker] = []  # live workers, kept between calls (starting one imports sympy: about a second)


def _shutdown() -> None:
    """Stop the kept workers (at exit)."""
    while _POOL:
        _POOL.pop().kill()


atexit.register(_shutdown)


def check_many(pairs: Sequence[tuple[str, str]], *, timeout_s: float = TIMEOUT_S, workers: int | None = None,
               progress: bool = False) -> dict[tuple[str, str], tuple[str, str]]:
    """Math-Verify every distinct (extracted, gold) pair once over a pool; {pair: (status, detail)}.

    A check that runs past `timeout_s` has its worker killed and replaced, and gets ("timeout", ...).
    """
    results: dict[tuple[str, str], tuple[str, str]] = {}
    todo = deque()
    for pair in dict.fromkeys(pairs):  # distinct, in first-seen order (deterministic)
        if len(pair[0]) > MAX_ANSWER_CHARS:
            results[pair] = ("wrong", f"extracted answer longer than {MAX_ANSWER_CHARS} characters")
        elif _INT.fullmatch(pair[0]) and _INT.fullmatch(pair[1]):
            # Two integers (GSM8K, AIME, AMC): Math-Verify's verdict is integer equality, without the
            # ~10 ms of its LaTeX parser; the tests check the two agree.
            same = int(pair[0]) == int(pair[1])
            results[pair] = ("correct", "") if same else ("wrong", f"not equivalent to {pair[1]!r}")
        else:
            todo.append(pair)
    n = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    while len(_POOL) < n:
        _POOL.append(_Worker())
    pool = _POOL[:n]
    bar = tqdm(total=len(todo), desc="math-verify", **quiet(progress and bool(todo)))
    try:
        while todo or any(w.task for w in pool):
            for w in pool:  # hand out work
                if w.task is None and todo:
                    w.send(todo.popleft(), timeout_s)
            busy = [w for w in pool if w.task is not None]
            left = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.proc.stdout for w in busy], timeout=left)
            for w in busy:
                task = w.task
                if w.proc.stdout in ready:
                    try:
                        results[task] = w.receive()
                        bar.update()
                        continue
                    except (EOFError, OSError, pickle.UnpicklingError):
                        results[task] = ("error", f"Math-Verify worker died (exit code {w.proc.poll()})")
                elif time.monotonic() >= w.deadline:
                    results[task] = ("timeout", f"no answer within {timeout_s:g} s, worker killed")
                else:
                    continue
                w.kill()  # replace a dead or overrunning worker
                replacement = _Worker()
                _POOL[_POOL.index(w)] = replacement
                pool[pool.index(w)] = replacement
                bar.update()
    except BaseException:
        _shutdown()  # an interrupted exchange leaves pipes mid-message: start afresh next time
        raise
    finally:
        bar.close()
    return results


# ---------------------------------------------------------------- the visual answer types (in-process)

def _number(text: str) -> float | None:
    """The last number written in `text` (commas, %, units and LaTeX around it ignored), or None."""
    nums = _NUMBER.findall(text.replace("\\!", "").replace("{,}", ""))
    if not nums:
        return None
    try:
        return float(nums[-1].replace(",", ""))
    except ValueError:
        return None


def _grade_number(extracted: str, gold: str, precision: int | None) -> tuple[str, str]:
    """MathVista free-form numbers: equal after rounding both to `precision` decimals (exact if None)."""
    g = _number(gold)
    if g is None:
        return "error", f"the gold answer {gold!r} is not a number"
    x = _number(extracted)
    if x is None:
        return "wrong", "the extracted answer holds no number"
    if precision is None:
        return ("correct", "") if x == g else ("wrong", f"{x!r} != {g!r}")
    ok = round(x, int(precision)) == round(g, int(precision))
    return ("correct", "") if ok else ("wrong", f"{x!r} != {g!r} at {precision} decimals")


def _norm(s: str) -> str:
    """A plain normalization for option values: no LaTeX wrappers, spaces, case or trailing dot."""
    s = re.sub(r"\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}", r"\1\2", s)
    s = s.replace("$", "").replace("\\left", "").replace("\\right", "").replace("^\\circ", "°")
    return re.sub(r"\s+", "", s).strip(".").lower()


def _option(answer: str, choices: Sequence[str]) -> int | None:
    """The index of the option an answer names: a letter A.. (alone, or as (B), B), B:) or an option's value."""
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    m = re.fullmatch(r"\s*\(?\s*([A-Za-z])\s*[).:]?\s*(?:.*)?", answer, re.S)
    if m and m.group(1).upper() in letters and (len(answer.strip()) <= 3 or re.match(r"\s*\(?[A-Z][).:]", answer)):
        return letters.index(m.group(1).upper())
    values = [_norm(c) for c in choices]
    if _norm(answer) in values:
        return values.index(_norm(answer))
    return None


def _grade_choice(extracted: str, gold: str, choices: Sequence[str] | None) -> tuple[str, str]:
    """MathVision/MathVista options: the chosen option (by letter or value) is the gold one."""
    if not choices:
        return "error", "answer_type 'choice' needs the options (`choices`)"
    g = _option(gold, choices)
    if g is None:
        return "error", f"the gold answer {gold!r} names none of the options {list(choices)!r}"
    x = _option(extracted, choices)
    if x is None:
        return "wrong", "the extracted answer names none of the options"
    return ("correct", "") if x == g else ("wrong", f"option {chr(65 + x)} chosen, {chr(65 + g)} is right")


def _extract_typed(response: str, answer_type: str, choices: Sequence[str] | None,
                   template: str | None = None) -> tuple[str | None, str]:
    """Extraction for the visual types: as `extract`, then (their own fallbacks) a last number or letter."""
    answer, how = extract(response, template)
    if answer is not None:
        return answer, how
    tail = response[-2000:]
    if answer_type == "number":
        nums = _NUMBER.findall(tail)
        return (nums[-1], "last-number") if nums else (None, "none")
    letters = "".join(chr(ord("A") + i) for i in range(len(choices or ())))
    m = re.findall(rf"\(([{letters}])\)|\b([{letters}])\b\W*$", tail) if letters else []
    if m:
        return (m[-1][0] or m[-1][1]), "last-letter"
    return None, "none"


# ---------------------------------------------------------------- the public entry points

def grade_many(responses: Sequence[str], golds: Sequence[str], answer_types: Sequence[str] | None = None, *,
               choices: Sequence[Sequence[str] | None] | None = None,
               precisions: Sequence[int | None] | None = None, templates: Sequence[str | None] | None = None,
               timeout_s: float = TIMEOUT_S, workers: int | None = None, progress: bool = False) -> list[Verdict]:
    """Grade responses[i] against golds[i] (with answer_types[i], default "math"; sampled under
    templates[i], which decides extraction: see `extract`); one Verdict each.

    Each distinct (gold, extracted answer) is checked once, over `workers` processes (default: all
    cores), each check within `timeout_s` seconds or `timeout`.
    """
    n = len(responses)
    if len(golds) != n:
        raise ValueError(f"grade_many: {n} responses but {len(golds)} golds")
    types = list(answer_types) if answer_types is not None else ["math"] * n
    choices = list(choices) if choices is not None else [None] * n
    precisions = list(precisions) if precisions is not None else [None] * n
    templates = list(templates) if templates is not None else [None] * n
    for name, seq in (("answer_types", types), ("choices", choices), ("precisions", precisions),
                      ("templates", templates)):
        if len(seq) != n:
            raise ValueError(f"grade_many: {n} responses but {len(seq)} {name}")
    out: list[Verdict | None] = [None] * n
    extracted: list[str | None] = [None] * n
    how: list[str] = ["none"] * n
    for i, (response, gold, kind) in enumerate(zip(responses, golds, types)):
        if kind not in ANSWER_TYPES:
            raise ValueError(f"grade_many: item {i} has answer_type {kind!r}, not one of {ANSWER_TYPES}")
        if gold is None or str(gold).strip() == "":
            out[i] = Verdict("error", None, VERIFIER, VERSION, f"item {i} has no gold answer")
            continue
        if kind == "math":
            extracted[i], how[i] = extract(response, templates[i])
        else:
            extracted[i], how[i] = _extract_typed(response, kind, choices[i], templates[i])
        if extracted[i] is None:
            out[i] = Verdict("no_answer", None, VERIFIER, VERSION, "no boxed, #### or 'answer is' answer found",
                             "extract=none")
        elif kind == "number":
            out[i] = Verdict(*_pick(_grade_number(extracted[i], str(gold), precisions[i]), extracted[i], how[i]))
        elif kind == "choice":
            out[i] = Verdict(*_pick(_grade_choice(extracted[i], str(gold), choices[i]), extracted[i], how[i]))
    pending = [i for i in range(n) if out[i] is None]
    checked = check_many([(extracted[i], str(golds[i])) for i in pending], timeout_s=timeout_s,
                         workers=workers, progress=progress)
    for i in pending:
        status, detail = checked[(extracted[i], str(golds[i]))]
        out[i] = Verdict(status, extracted[i], VERIFIER, VERSION, detail, f"extract={how[i]}")
    return out  # type: ignore[return-value]


def _pick(status_detail: tuple[str, str], extracted: str, how: str) -> tuple:
    """Verdict fields from a (status, detail) of the in-process graders."""
    return status_detail[0], extracted, VERIFIER, VERSION, status_detail[1], f"extract={how}"


def grade(response: str, gold: str, answer_type: str = "math", *, choices: Sequence[str] | None = None,
          precision: int | None = None, template: str | None = None, timeout_s: float = TIMEOUT_S) -> Verdict:
    """Grade one response against its gold answer; see `grade_many` for many at once (much faster)."""
    return grade_many([response], [gold], [answer_type], choices=[choices], precisions=[precision],
                      templates=[template], timeout_s=timeout_s, workers=1)[0]


if __name__ == "__main__":
    _serve()
