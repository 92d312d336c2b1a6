"""boundary.verify.grade, end to end: realistic responses per format, written to a sample store by
the test and graded by `runs.grade`, each with its expected status.

The truth is independent of the extractor: the canonical solutions of the real benchmark rows
(../shared) wrapped every way real chat and base models wrap them must be `correct`; broken
programs in the same wrappings `wrong`; responses without code `no_answer`; a program that does not
compile `wrong` with the reason. Math: the gold answer, with and without reasoning blocks, under
`qwen-boxed` and `dapo`.
"""
import pandas as pd
import pytest

from boundary import runs, tasks
from boundary.config import Experiment
from boundary.store import Sample
from boundary.verify import Verdict, grade
from boundary.verify.extract import boxed, math_answer, program
import test_verify_code  # noqa: E402 (tests/ is on the path, as for tiny_lm): shared reference programs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A local checkpoint for the experiment's model: a store's key holds the model's stop rule, which
    runs reads from the model's tokenizer (a hub id would be fetched, and there is no network)."""
    from tiny_lm import save_tiny_checkpoint

    return str(save_tiny_checkpoint(tmp_path_factory.mktemp("tiny")))


def _grade_through_runs(model, tmp_path, monkeypatch, shared, bench: str, template: str, limit: int,
                        responses: dict[str, list[str]]) -> pd.DataFrame:
    """Write `responses` ({problem id: texts}) into the store of a one-model experiment (`model`)
    sampled under `template`, grade them with runs.grade, and return the verdicts (problem, sample order)."""
    monkeypatch.setenv("BOUNDARY_OUTPUTS", str(tmp_path))
    n = max(len(texts) for texts in responses.values())
    cfg = Experiment.model_validate({
        "name": f"grading-{bench}-{template}",
        "models": [{"label": "base", "role": "base", "path": model, "template": template}],
        "benchmarks": [{"name": bench, "n": n, "limit": limit, "source": str(shared("data", "benchmarks", bench))}],
        "passk": {"pair": ["base", "base"]},
    })
    run, = runs.runs(cfg)
    run.store.append([Sample(pid, i, text, "stop", 1, 1, "0" * 64, "test", "0")
                      for pid, texts in responses.items() for i, text in enumerate(texts)])
    verdicts = runs.grade(cfg, progress=False)
    return verdicts.sort_values(["problem", "sample"]).reset_index(drop=True)


def _problem(shared, bench: str, suffix: str, limit: int) -> tasks.Problem:
    found = [p for p in tasks.load(bench, source=shared("data", "benchmarks", bench), limit=limit)
             if p.id.endswith(suffix)]
    assert len(found) == 1, suffix
    return found[0]


def _check(verdicts: pd.DataFrame, table: list[tuple[str, str]]) -> None:
    """Every row's status is the table's; a `wrong` program that does not compile says so."""
    got = list(zip(verdicts["status"], verdicts["detail"], verdicts["provenance"]))
    assert len(got) == len(table)
    for (name, want), (status, detail, prov) in zip(table, got):
        assert status == want, f"{name}: {status} ({detail}; {prov})"
        if "syntax error" in name:
            assert "does not compile" in detail, (name, detail)


# ---------------------------------------------------------------- HumanEval+ and MBPP+

def _evalplus_wrappings(good: str, body: str, prompt_body_ok: bool, entry: str) -> list[tuple[str, str]]:
    """(name, response under chat, what the program is): the ways an instruct model answers
    evalplus's chat prompt, whose assistant turn is pre-filled up to an open ```python fence."""
    rows = [
        ("prefilled: code, fence, prose", good + "```\n\nThis solution iterates over the input and returns the result."),
        ("prefilled: code then a usage block", good + "```\n\nExample:\n```python\nprint(" + "1)\n```\n"),
        ("prefilled: code, __main__ and asserts",
         good + "\nif __name__ == \"__main__\":\n    assert False, 'self-test'\n```\n"),
        ("prefilled: closed at once, then prose and a block",
         "```\nHere is the function:\n\n```python\n" + good + "```\n"),
        ("prefilled: no closing fence (stopped after the code)", good),
        ("reasoning block whole, a draft inside",
         "```\n<think>\nA first try:\n```python\nimport sys\n" + _draft(entry) + "```\nNo, that fails.\n</think>\n"
         "Final answer:\n```python\n" + good + "```\n"),
        ("reasoning closed only (opened by the prompt)",
         "```\nThinking about edge cases...\n```python\n" + _draft(entry) + "```\n</think>\n\n```python\n" + good + "```"),
    ]
    if prompt_body_ok:
        rows.append(("prefilled: only the body, the signature is the prompt's", body + "```\nDone."))
    return rows


def _draft(entry: str) -> str:
    """A wrong draft of the function, as a model writes one inside its reasoning."""
    return f"def {entry}(*args):\n    return None\n"


BROKEN_BODY = "    return None\n"  # wrong for every task of the tables (they return values that are not None)


def _broken(program: str) -> str:
    """The program with every `return` of its functions giving None: wrong on every real test."""
    out = []
    for line in program.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("return ") or stripped == "return":
            line = line[:len(line) - len(stripped)] + "return None"
        out.append(line)
    return "\n".join(out)


NO_CODE = [
    ("prefilled: closed at once, prose only", "```\nI am sorry, I cannot write this function."),
    ("reasoning, then prose only", "```\n<think>\nHmm.\n</think>\nThe function should sort the list first."),
    ("prose inside the pre-filled fence", "I am not sure how to do this.\n```\n"),
]


def _syntax_error(entry: str) -> tuple[str, str]:
    return ("syntax error in the answer", f"def {entry}(*args)\n    return 0\n```\n")


@pytest.mark.shared
@pytest.mark.parametrize("bench, suffix, limit", [
    ("humaneval_plus", "HumanEval/0", 1),  # has_close_elements
    ("humaneval_plus", "HumanEval/2", 3),  # truncate_number (floats)
    ("mbpp_plus", "Mbpp/2", 1),            # similar_elements: tuple inputs, deserialized by the loader
])
def test_evalplus_chat_answers(tiny_model, tmp_path, monkeypatch, shared, bench, suffix, limit):
    p = _problem(shared, bench, suffix, limit)
    good = p.tests["canonical_solution"]
    body = good[len(p.question):] if good.startswith(p.question) else None
    wrapped = _evalplus_wrappings(good, body or "", body is not None, p.tests["entry_point"])
    table = [(name, "correct") for name, _ in wrapped]
    texts = [text for _, text in wrapped]
    for name, text in wrapped:  # the same wrappings around a broken program
        table.append((f"broken, {name}", "wrong"))
        texts.append(text.replace(good, _broken(good)).replace(body or "\0", BROKEN_BODY))
    for name, text in NO_CODE + [_syntax_error(p.tests["entry_point"])]:
        table.append((name, "no_answer" if "syntax" not in name else "wrong"))
        texts.append(text)
    v = _grade_through_runs(tiny_model, tmp_path, monkeypatch, shared, bench, "chat", limit, {p.id: texts})
    _check(v, table)
    assert v.loc[0, "extracted"] == good  # the program graded, for notebook 02
    assert v["verifier"].eq("sandbox-python").all()


@pytest.mark.shared
@pytest.mark.parametrize("bench, suffix, limit", [
    ("humaneval_plus", "HumanEval/0", 1),
    ("mbpp_plus", "Mbpp/2", 1),
])
def test_evalplus_plain_completions(tiny_model, tmp_path, monkeypatch, shared, bench, suffix, limit):
    """A base model's direct completion: the program is the prompt plus the completion, cut at
    evalplus's stop sequences (a test block, a main, another def after the function)."""
    p = _problem(shared, bench, suffix, limit)
    good = p.tests["canonical_solution"]
    if bench == "humaneval_plus":  # the completion continues the signature and docstring
        body = good[len(p.question):]
        rows = [("body, then a main", body + "\n\ndef main():\n    print(has_close_elements([1.0], 0.5))\n", "correct"),
                ("body, then a check block", body + "\nif __name__ == '__main__':\n    import doctest\n", "correct"),
                ("body, then another def", body + "\ndef unused(x):\n    return x +\n", "correct"),
                ("broken body, then a main", BROKEN_BODY + "\n\ndef main():\n    pass\n", "wrong"),
                ("syntax error in the body", "    return [\n", "wrong"),
                ("nothing", "", "no_answer")]
    else:  # MBPP+: the prompt is a docstring with a test; the completion writes the whole function
        rows = [("function, then the docstring closes", good + '\n"""\nMore text.', "correct"),
                ("function, then an assert", good + "\nassert similar_elements((1, 2), (2, 3)) == (2,)\n", "correct"),
                ("broken function", _broken(good) + '\n"""', "wrong"),
                ("prose only", "I think this is about sets.", "no_answer")]
    v = _grade_through_runs(tiny_model, tmp_path, monkeypatch, shared, bench, "plain", limit, {p.id: [r[1] for r in rows]})
    _check(v, [(r[0], r[2]) for r in rows])


# ---------------------------------------------------------------- LiveCodeBench

SECOND_LARGEST = ("n = int(input())\na = list(map(int, input().split()))\n"
                  "print(sorted(range(n), key=lambda i: a[i])[-2] + 1)\n")
SECOND_LARGEST_MAIN = ("import sys\n\ndef main():\n    data = sys.stdin.read().split()\n    n = int(data[0])\n"
                       "    a = list(map(int, data[1:1 + n]))\n    print(sorted(range(n), key=lambda i: a[i])[-2] + 1)\n\n"
                       "if __name__ == \"__main__\":\n    main()\n")
SHORTEST = test_verify_code.SHORTEST  # a LiveCodeBench functional solution (LeetCode style)


def _lcb_wrappings(good: str, broken: str, usage: str) -> list[tuple[str, str, str]]:  # noqa: D103
    """(name, response, expected): how chat and reasoning models answer rllm's LiveCodeBench prompt."""
    rows = []
    for label, prog, status in (("", good, "correct"), ("broken, ", broken, "wrong")):
        rows += [
            (f"{label}one fenced block with prose", f"Approach: sort.\n\n```python\n{prog}```\n\nComplexity O(n log n).", status),
            (f"{label}sample input block, then the program",
             f"Sample input:\n```\n4\n8 2 5 1\n```\nSolution:\n```python\n{prog}```\n", status),
            (f"{label}the program, then a usage block", f"```python\n{prog}```\nUsage:\n```python\n{usage}\n```\n", status),
            (f"{label}reasoning whole, a draft inside",
             f"<think>\nDraft:\n```python\nprint(1)\n```\n</think>\n```python\n{prog}```", status),
            (f"{label}reasoning closed only (DeepCoder's prompt opens it)",
             f"Let me think.\n```python\nprint(0)\n```\nThat is wrong.\n</think>\n\n```python\n{prog}```\n", status),
            (f"{label}several blocks, the last one the final program",
             f"First attempt:\n```python\n{broken if status == 'correct' else good}```\nFixed:\n```python\n{prog}```\n", status),
        ]
    rows += [("no code at all", "I cannot solve this problem in time.", "no_answer"),
             ("reasoning cut at the token limit", "<think>\nLet me consider the constraints. N is at most", "no_answer"),
             ("syntax error in the answer", "```python\nn = int(input()\nprint(n)\n```\n", "wrong")]
    return rows


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["stdin", "stdin-main", "functional"])
@pytest.mark.parametrize("template", ["chat", "plain"])
def test_livecodebench_answers(tiny_model, tmp_path, monkeypatch, shared, kind, template):
    limit = 6 if kind == "functional" else 1
    probs = tasks.load("livecodebench", source=shared("data", "benchmarks", "livecodebench"), limit=limit)
    p = probs[5] if kind == "functional" else probs[0]
    assert p.tests["format"] == ("functional" if kind == "functional" else "stdin")
    good = {"stdin": SECOND_LARGEST, "stdin-main": SECOND_LARGEST_MAIN, "functional": SHORTEST}[kind]
    broken = good.replace("[-2] + 1", "[-1] + 1").replace("res.append(dist[n - 1])", "res.append(dist[n - 1] + 1)")
    usage = ("print(Solution().shortestDistanceAfterQueries(5, [[2, 4], [0, 2], [0, 4]]))" if kind == "functional"
             else "# run: python main.py < input.txt")
    rows = _lcb_wrappings(good, broken, usage)
    v = _grade_through_runs(tiny_model, tmp_path, monkeypatch, shared, "livecodebench", template, limit, {p.id: [r[1] for r in rows]})
    _check(v, [(r[0], r[2]) for r in rows])


# ---------------------------------------------------------------- math

MATH = [  # (name, template, response, expected status) for GSM8K's first problem (gold 18)
    ("boxed", "qwen-boxed", "She sells 16 - 3 - 4 = 9 eggs for 9 * 2 = 18 dollars.\n\\boxed{18}", "correct"),
    ("boxed, wrong", "qwen-boxed", "So \\boxed{16}.", "wrong"),
    ("reasoning whole, a draft box inside", "qwen-boxed", "<think>maybe \\boxed{17}? no.</think>\nThe answer is \\boxed{18}.", "correct"),
    ("reasoning closed only, a draft box inside", "qwen-boxed", "First \\boxed{17}... recheck.\n</think>\n\n\\boxed{18}", "correct"),
    ("reasoning closed only, wrong after it", "qwen-boxed", "I get \\boxed{18}.\n</think>\nFinal: \\boxed{20}", "wrong"),
    ("answer only inside the reasoning", "qwen-boxed", "<think>9 * 2 = 18 so \\boxed{18}</think>", "correct"),
    ("reasoning cut at the token limit", "qwen-boxed", "<think>\n16 - 3 - 4 = 9, and then", "no_answer"),
    ("no answer", "qwen-boxed", "Janet has ducks.", "no_answer"),
    ("GSM8K line", "qwen-boxed", "9 * 2 = 18\n#### 18", "correct"),
    ("dapo: Answer line", "dapo", "16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\nAnswer: 18", "correct"),
    ("dapo: Answer line with dollars", "dapo", "...\nAnswer: $18$", "correct"),
    ("dapo: Answer line beats an earlier box", "dapo", "\\boxed{18} hmm, no.\nAnswer: 16", "wrong"),
    ("dapo: the last Answer line", "dapo", "Answer: 16\nWait, recount.\nAnswer: 18", "correct"),
    ("dapo: box as fallback", "dapo", "So the total is \\boxed{18}.", "correct"),
    ("dapo: after a reasoning block", "dapo", "<think>Answer: 16</think>\nAnswer: 18", "correct"),
]


@pytest.mark.shared
@pytest.mark.parametrize("template", ["qwen-boxed", "dapo"])
def test_math_answers(tiny_model, tmp_path, monkeypatch, shared, template):
    p = tasks.load("gsm8k", source=shared("data", "benchmarks", "gsm8k"), limit=1)[0]
    assert p.gold == "18"
    rows = [r for r in MATH if r[1] == template]
    v = _grade_through_runs(tiny_model, tmp_path, monkeypatch, shared, "gsm8k", template, 1, {p.id: [r[2] for r in rows]})
    _check(v, [(r[0], r[3]) for r in rows])
    assert set(v.loc[v["status"] == "correct", "extracted"]) == {"18"}


# ---------------------------------------------------------------- the entry point itself (no ../shared)

ADD = tasks.Problem(id="t/add", benchmark="t", question='def add(a, b):\n    """Return a + b."""\n', gold=None,
                    answer_type="code", tests={"format": "humaneval", "entry_point": "add", "test": None,
                                               "canonical_solution": "def add(a, b):\n    return a + b\n",
                                               "base_inputs": [[1, 2], [3, 4]], "plus_inputs": [], "atol": 0})


@pytest.mark.parametrize("response, template, status, how", [
    ("def add(a, b):\n    return a + b\n```\nDone.", "chat", "correct", "fence:entry-point"),
    ("    return a + b\n```", "chat", "correct", "fence:prompt+body"),
    ("    return a + b\n\nprint(add(1, 2))\n", "plain", "correct", "completion"),
    ("```\nNo idea.", "chat", "no_answer", "none"),
    ("def add(a, b)\n    return a + b\n```", "chat", "wrong", "fence:does-not-compile"),
])
def test_grade_code_carries_program_and_provenance(response, template, status, how):
    v = grade(ADD, response, template)
    assert isinstance(v, Verdict) and v.status == status, v
    assert v.provenance.startswith(f"extract={how}")
    if status == "correct":
        assert v.extracted == "def add(a, b):\n    return a + b\n" or v.extracted.endswith("return a + b\n")
        assert "sandbox=" in v.provenance


def test_grade_rejects_unknown_templates_and_mismatches():
    with pytest.raises(tasks.TaskError, match="no prompt template 'nope'"):
        grade(ADD, "x", "nope")
    from boundary.verify import grade_many
    with pytest.raises(ValueError, match="1 problems, 2 responses"):
        grade_many([ADD], ["a", "b"], "chat")


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{\\frac{1}{2}} then \\boxed{x^{2}}", "x^{2}"),   # the last box, nested braces
    ("\\boxed{4} and then \\boxed{5", "4"),                   # a truncated last box: the closed one
    ("\\fbox{3}", "3"),                                       # \fbox
    ("\\boxed{unclosed", None),                               # nothing closes
])
def test_one_boxed_parser_everywhere(text, expected):
    """The loaders, the graders and the miniature all read boxes with the same function."""
    from boundary.miniature import task
    from boundary.tasks import parse
    assert boxed(text) == expected
    assert task.boxed is boxed and parse.boxed is boxed
    assert math_answer(text).value == expected


def test_stdin_program_is_the_last_that_does_io():
    text = "```python\nprint(1)\n```\nInput:\n```\n3\n```\nOutput:\n```\n5\n```\n"
    assert program(text, fmt="stdin", entry=None).value == "print(1)\n"
