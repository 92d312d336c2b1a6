"""Code sandbox throughput: programs per second on HumanEval+ (base + plus inputs), and against evalplus's evaluator.

Programs: every HumanEval+ task's canonical solution and a wrong-return mutant of it (so half pass,
half fail), graded by `boundary.verify.code.run_many` with WORKERS sandboxes at a time. Expected
outputs (the canonical solutions run once per task, as evalplus also does and caches) are computed
before the clock starts, for both graders. If evalplus is installed (`pip install evalplus`: it is
not a dependency of this project), the same programs go through `evalplus.evaluate` offline, its
dataset pointed at the local copy with HUMANEVAL_OVERRIDE_PATH, and the verdicts are compared.

With `--grading N`: grading throughput (samples/s) on N realistic code responses instead, before
and after extraction. The responses wrap HumanEval+ canonical solutions and mutants the ways real
models do (evalplus's pre-filled chat fence then prose, a usage block after the solution, a
reasoning block with a draft, a closing `</think>` only, a base model's plain completion running on
past the function, prose without code); "before" hands the raw text to the sandbox, as runs.grade
did before `boundary.verify.grade` (the program is the whole response), "after" grades through
`boundary.verify.grade_many` (extract, then run). Expected outputs are computed before the clock.

Run: .venv/bin/python benchmarks/verify_code_throughput.py [--workers 2] [--base-only] [--grading 1000]

Measured (--grading 1000 --workers 2, 2 shared cores under contention from other jobs, load 5-12,
root: PID + mount namespaces on; 424 of the 1,000 responses hold a passing program):
  base inputs:        before 12.1 samples/s, 0 correct (all 1,000 `wrong`);
                      after  19.6 samples/s, 1000/1000 verdicts as expected (424 correct, 410 wrong, 166 no_answer)
  base + plus inputs: before 20.0 samples/s, 0 correct; after 4.8 samples/s, 1000/1000 as expected
("before" is fast only because nearly every raw response fails to load; "after" runs the real tests.)
"""
import argparse
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from boundary import ROOT, tasks
from boundary.verify import code, grade_many

DATA = ROOT.parent / "shared" / "data" / "benchmarks" / "humaneval_plus" / "HumanEvalPlus-v0.1.10.jsonl.gz"


def mutant(program: str, entry: str) -> str:
    """The program with every return value changed (ints +1, bools negated, an item appended)."""
    return program + (
        f"\n_orig = {entry}\ndef {entry}(*a):\n    r = _orig(*a)\n    if isinstance(r, bool):\n        return not r\n"
        "    if isinstance(r, (int, float)):\n        return r + 1\n    if isinstance(r, str):\n        return r + '~'\n"
        "    if isinstance(r, (list, tuple)):\n        return r + type(r)(['~mutant'])\n    return [r]\n")


def evalplus_run(rows, programs, workers: int, base_only: bool) -> tuple[float, list[bool]] | str:
    """Time evalplus.evaluate on the same programs; its pass/fail per program, or why it could not run."""
    try:
        import evalplus  # noqa: F401
    except ImportError:
        return "evalplus is not installed (pip install evalplus into .venv to compare)"
    tmp = tempfile.mkdtemp(prefix="evalplus-bench-")
    try:
        data = os.path.join(tmp, "HumanEvalPlus.jsonl")
        with gzip.open(DATA) as src, open(data, "wb") as dst:
            shutil.copyfileobj(src, dst)
        samples = os.path.join(tmp, "samples.jsonl")
        with open(samples, "w") as f:
            for r, p in zip(rows * 2, programs):
                f.write(json.dumps({"task_id": r["task_id"], "solution": p}) + "\n")
        env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": data, "XDG_CACHE_HOME": tmp}
        cmd = [sys.executable, "-c", "import sys, evalplus.evaluate as e; e.evaluate('humaneval', sys.argv[1], "
               f"parallel={workers}, base_only={base_only}, i_just_wanna_run=True)", samples]
        warm = os.path.join(tmp, "warm.jsonl")  # ground truth computed (and cached) outside the clock
        with open(warm, "w") as f:
            for r in rows:
                f.write(json.dumps({"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]}) + "\n")
        subprocess.run(cmd[:-1] + [warm], env=env, check=True, capture_output=True)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - t
        results = json.load(open(samples.replace(".jsonl", "_eval_results.json")))["eval"]
        status = {}
        for task_id, items in results.items():
            for item in items:
                ok = item["base_status"] == "pass" and (base_only or item["plus_status"] == "pass")
                status.setdefault(task_id, []).append(ok)
        verdicts = [status[r["task_id"]][0] for r in rows] + [status[r["task_id"]][1] for r in rows]
        return seconds, verdicts
    except (subprocess.CalledProcessError, OSError, KeyError) as e:
        return f"evalplus failed: {type(e).__name__}: {str(getattr(e, 'stderr', e))[-500:]}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def responses(problems: list, count: int) -> list[tuple]:
    """`count` (problem, response, template, should pass) in the wrappings of the module docstring,
    cycling over tasks and wrappings (deterministic)."""
    out = []
    for i in range(count):
        p = problems[i % len(problems)]
        good = p.tests["canonical_solution"]
        body = good[len(p.question):]
        prog = good if (i // len(problems)) % 2 == 0 else mutant(good, p.tests["entry_point"])
        ok = prog is good
        kind = i % 6
        if kind == 0:
            out.append((p, prog + "```\n\nThis solution handles the edge cases.", "chat", ok))
        elif kind == 1:
            out.append((p, "```\nHere it is:\n```python\n" + prog + "```\nUsage:\n```python\nprint(1)\n```\n", "chat", ok))
        elif kind == 2:
            out.append((p, "```\n<think>\nDraft:\n```python\ndef f():\n    return 0\n```\n</think>\n```python\n" + prog + "```",
                        "chat", ok))
        elif kind == 3:
            out.append((p, "Checking the examples...\n</think>\n\n```python\n" + prog + "```\n", "chat", ok))
        elif kind == 4:  # a base model's completion: the body, then it runs on
            tail = "" if ok else "    return None\n"
            out.append((p, (body if ok else tail) + "\n\ndef main():\n    print(1)\n", "plain", ok))
        else:
            out.append((p, "```\nI am not sure how to solve this.", "chat", False))
    return out


def grading(a) -> None:
    """Samples/s on realistic responses, before and after extraction (see the module docstring)."""
    problems = tasks.load("humaneval_plus", source=DATA.parent)
    if a.base_only:  # grade_many runs every input the problem has: drop the plus inputs from the problems
        problems = [dataclasses.replace(p, tests={**p.tests, "plus_inputs": []}) for p in problems]
    items = responses(problems, a.grading)
    code.run_many([p.tests["canonical_solution"] for p in problems], [p.tests for p in problems],
                  workers=a.workers)  # expected outputs, outside the clock
    t = time.perf_counter()
    before = code.run_many([r for _, r, _, _ in items], [p.tests for p, *_ in items], workers=a.workers)
    t_before = time.perf_counter() - t
    t = time.perf_counter()
    after = grade_many([p for p, *_ in items], [r for _, r, _, _ in items], [tp for _, _, tp, _ in items],
                       workers=a.workers)
    t_after = time.perf_counter() - t
    should = [ok for *_, ok in items]
    n = len(items)
    print(f"{n} responses to {len(problems)} HumanEval+ tasks ({'base' if a.base_only else 'base + plus'} inputs), "
          f"{a.workers} workers, {sum(should)} should pass, isolation {code.isolation()}")
    for name, seconds, verdicts in (("before (raw text)", t_before, before), ("after (grade_many)", t_after, after)):
        agree = sum(v.correct == ok for v, ok in zip(verdicts, should))
        statuses = {s: sum(v.status == s for v in verdicts) for s in ("correct", "wrong", "no_answer", "timeout", "error")}
        print(f"{name:20s} {seconds:7.1f} s  {n / seconds:6.1f} samples/s  verdict as expected on {agree}/{n}  {statuses}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="sandboxes at a time")
    ap.add_argument("--base-only", action="store_true", help="base inputs only (no plus inputs)")
    ap.add_argument("--grading", type=int, default=0, metavar="N",
                    help="instead: grading throughput on N realistic responses, before and after extraction")
    a = ap.parse_args()
    if a.grading:
        grading(a)
        return
    rows = [json.loads(line) for line in gzip.open(DATA)]
    tests = [{"format": "humaneval", "entry_point": r["entry_point"], "atol": r["atol"], "base_inputs": r["base_input"],
              "plus_inputs": r["plus_input"], "canonical_solution": r["prompt"] + r["canonical_solution"]} for r in rows]
    programs = [t["canonical_solution"] for t in tests] + [mutant(t["canonical_solution"], t["entry_point"]) for t in tests]
    code.run_many([t["canonical_solution"] for t in tests], tests, workers=a.workers, plus=not a.base_only)  # expected outputs
    t = time.perf_counter()
    ours = [v.correct for v in code.run_many(programs, tests * 2, workers=a.workers, plus=not a.base_only)]
    seconds = time.perf_counter() - t
    print(f"{len(programs)} programs ({'base' if a.base_only else 'base + plus'} inputs), {a.workers} workers, "
          f"isolation {code.isolation()}")
    print(f"ours:     {seconds:7.1f} s  {len(programs) / seconds:6.1f} programs/s  "
          f"(canonical passing {sum(ours[:len(rows)])}/{len(rows)}, mutants passing {sum(ours[len(rows):])}/{len(rows)})")
    other = evalplus_run(rows, programs, a.workers, a.base_only)
    if isinstance(other, str):
        print(f"evalplus: {other}")
        return
    seconds_e, theirs = other
    same = sum(x == y for x, y in zip(ours, theirs))
    print(f"evalplus: {seconds_e:7.1f} s  {len(programs) / seconds_e:6.1f} programs/s  "
          f"(canonical passing {sum(theirs[:len(rows)])}/{len(rows)}, mutants passing {sum(theirs[len(rows):])}/{len(rows)})")
    print(f"ours / evalplus throughput: {seconds_e / seconds:.2f}x; same verdict on {same}/{len(programs)} programs")
    for i, (x, y) in enumerate(zip(ours, theirs)):
        if x != y:
            print(f"  differs: {rows[i % len(rows)]['task_id']} ({'canonical' if i < len(rows) else 'mutant'}): ours {x}, evalplus {y}")


if __name__ == "__main__":
    main()
