"""One function per benchmark: a raw row (hub or local layout) -> the normalized `Problem`.

Questions and gold answers follow the paper's evaluation code (Qwen2.5-Math `evaluation/parser.py`,
which limit-of-RLVR and SimpleRL-Zoo reuse): `parse_question` takes the first of the fields
question/problem/Question/input, strips it, and appends " (True or False)" / " (Yes or No)" when
the gold answer is one of those words; `parse_ground_truth` takes GSM8K's text after "####",
Minerva's last \\boxed{} of the solution, OlympiadBench's first final answer without "$".
Gold answers are kept as written (no string normalization): the verifier owns equivalence.
"""
from __future__ import annotations

import hashlib
import json
import re

from boundary.tasks.problem import Problem
from boundary.tasks.rows import Row
from boundary.tasks.boxed import boxed  # the project's one \boxed{} parser (Minerva's gold)


def _question(row: Row, gold: str | None) -> str:
    """The paper's question text (Qwen2.5-Math parse_question, quoted in the module docstring)."""
    for key in ("question", "problem", "Question", "input"):
        if isinstance(row.data.get(key), str):
            question = row.data[key]
            break
    else:
        raise row.fail("no question text (none of the fields question, problem, Question, input)")
    if gold is not None and gold.lower() in ("true", "false"):
        question += " (True or False)"
    if gold is not None and gold.lower() in ("yes", "no"):
        question += " (Yes or No)"
    if not question.strip():
        raise row.fail("the question is empty")
    return question.strip()


def _number(value: object) -> str:
    """A gold answer stored as a JSON number, as text: 27.0 -> "27", 0.5 -> "0.5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _native_id(row: Row, *fields: str) -> str:
    """The row's own id from the first present field, else its position in the source."""
    for name in fields:
        if row.data.get(name) is not None:
            return str(row.data[name])
    return str(row.index)


# --- math -------------------------------------------------------------------------------------

def gsm8k(row: Row, name: str) -> Problem:
    """openai/gsm8k (question, answer with the solution then "#### <number>")."""
    answer = row.get("answer")
    if "####" not in answer:
        raise row.fail("field 'answer' has no '####' before the final answer")
    solution, gold = answer.rsplit("####", 1)
    gold = gold.strip().replace(",", "")  # an integer; "2,125" has a thousands separator, not a tuple
    return Problem(id=f"{name}/{_native_id(row, 'idx')}", benchmark=name,
                   question=_question(row, gold), gold=gold, answer_type="math",
                   meta={"solution": solution.strip()})


def math500(row: Row, name: str) -> Problem:
    """HuggingFaceH4/MATH-500 (problem, solution, answer, subject, level, unique_id)."""
    gold = row.get("answer")
    return Problem(id=f"{name}/{row.get('unique_id')}", benchmark=name, question=_question(row, gold),
                   gold=gold, answer_type="math",
                   meta={"subject": row.get("subject"), "level": row.get("level", int)})


def minerva_math(row: Row, name: str) -> Problem:
    """Minerva Math: local copy (problem, solution with a \\boxed answer, idx) or the hub mirror
    math-ai/minervamath (question, answer)."""
    if row.data.get("answer") is not None:
        gold = _number(row.get("answer", (str, int, float)))
    else:
        gold = boxed(row.get("solution"))
        if gold is None:
            raise row.fail("field 'solution' has no \\boxed{...} answer")
    return Problem(id=f"{name}/{_native_id(row, 'idx')}", benchmark=name, question=_question(row, gold),
                   gold=gold, answer_type="math", meta={"type": row.data.get("type")})


def olympiadbench(row: Row, name: str) -> Problem:
    """OlympiadBench, English open-ended text-only math (OE_TO_maths_en_COMP): question, final_answer."""
    finals = row.get("final_answer", list)
    if not finals or not isinstance(finals[0], str):
        raise row.fail("field 'final_answer' should be a non-empty list of strings")
    gold = finals[0].strip("$")
    return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=_question(row, gold),
                   gold=gold, answer_type="math",
                   meta={"final_answers": finals, "unit": row.data.get("unit"),
                         "answer_kind": row.data.get("answer_type"), "subfield": row.data.get("subfield"),
                         "is_multiple_answer": row.data.get("is_multiple_answer")})


def competition(row: Row, name: str) -> Problem:
    """AIME24 / AMC23 (question or problem, answer as text or number, id, url)."""
    gold = _number(row.get("answer", (str, int, float)))
    return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=_question(row, gold),
                   gold=gold, answer_type="math", meta={"url": row.data.get("url")})


# --- code -------------------------------------------------------------------------------------

def humaneval_plus(row: Row, name: str) -> Problem:
    """evalplus HumanEval+ release file (task_id, prompt, canonical_solution, entry_point, test,
    base_input, plus_input, atol, contract). `canonical_solution` in `tests` is the complete
    reference program (prompt + reference body), runnable as is."""
    prompt = row.get("prompt")
    tests = {"format": "humaneval", "test": row.get("test"), "entry_point": row.get("entry_point"),
             "plus_inputs": row.get("plus_input", list, optional=True),
             "base_inputs": row.get("base_input", list, optional=True),
             "atol": float(row.get("atol", (int, float), optional=True) or 0),
             "canonical_solution": prompt + row.get("canonical_solution")}
    return Problem(id=f"{name}/{row.get('task_id')}", benchmark=name, question=prompt, gold=None,
                   answer_type="code", tests=tests, meta={"contract": row.data.get("contract")})


def mbpp_plus(row: Row, name: str) -> Problem:
    """evalplus MBPP+ release file (task_id, prompt, canonical_solution, entry_point, base_input,
    plus_input, atol, assertion)."""
    plus = row.get("plus_input", (list, dict))
    if isinstance(plus, dict) and plus:  # v0.2.0 stores Mbpp/793's empty plus inputs as {}
        raise row.fail("field 'plus_input' should be a list of argument lists")
    task_id = row.get("task_id")
    inputs = {}
    for field, raw in (("base_input", row.get("base_input", list)), ("plus_input", list(plus))):
        try:
            inputs[field] = mbpp_inputs(task_id, raw)
        except (TypeError, ValueError, IndexError, KeyError) as e:
            raise row.fail(f"field {field!r} does not have the shape evalplus gives {task_id}'s arguments "
                           f"({type(e).__name__}: {e})") from None
    tests = {"format": "mbpp", "entry_point": row.get("entry_point"),
             "base_inputs": inputs["base_input"], "plus_inputs": inputs["plus_input"],
             "atol": float(row.get("atol", (int, float), optional=True) or 0),
             "canonical_solution": row.get("canonical_solution"),
             "test": row.get("assertion", optional=True)}
    return Problem(id=f"{name}/{row.get('task_id')}", benchmark=name, question=row.get("prompt"),
                   gold=None, answer_type="code", tests=tests, meta={"contract": row.data.get("contract")})


def mbpp_inputs(task_id: str, inputs: list) -> list:
    """MBPP+ inputs as Python values: JSON lists back to the tuples/sets/complex numbers some tasks take.

    A copy of evalplus's `mbpp_deserialize_inputs` (evalplus/data/mbpp.py, v0.3.1, Apache-2.0):
    evalplus itself pulls in LLM-provider clients, too heavy a dependency for one table. Applied
    by the loader (`mbpp_plus`), so what production grades is what the tests grade.
    """
    n = int(str(task_id).split("/")[-1])
    def tuples(lst):
        return [tuple(x) for x in lst]

    def deep(x):
        return tuple(deep(i) for i in x) if isinstance(x, list) else x
    if n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
             740, 744, 809):
        return [tuples(inp) for inp in inputs]
    if n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[tuples(ll) for ll in inp] for inp in inputs]
    if n in (75, 413, 444, 753):
        return [[tuples(inp[0])] + [inp[1]] for inp in inputs]
    if n in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if n == 115:
        return [[[set(i) if isinstance(i, list) and len(i) else {} for i in inp[0]]] for inp in inputs]
    if n == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if n in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if n in (259, 401, 445):
        return [tuples([tuples(ll) for ll in inp]) for inp in inputs]
    if n == 278:
        return [tuples([[tuple(i) if isinstance(i, list) else i for i in inp[0]]]) for inp in inputs]
    if n == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if n == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}] + inp[1:] for inp in inputs]
    if n == 252:
        return [[complex(inp[0])] for inp in inputs]
    if n in (580, 615, 791):
        return [deep(inp) for inp in inputs]
    return inputs


def _json_field(row: Row, field: str, kind: type) -> object:
    """A field that may be stored as JSON text (DeepCoder on the hub) or as the value itself."""
    value = row.data.get(field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise row.fail(f"field {field!r} is not valid JSON text ({e.msg})") from None
    if value is not None and not isinstance(value, kind):
        raise row.fail(f"field {field!r} should be a {kind.__name__}, it is a {type(value).__name__}")
    return value


def livecodebench(row: Row, name: str) -> Problem:
    """LiveCodeBench v5, 2024-08..2025-02, in DeepCoder's (rllm) layout: problem, starter_code,
    tests [{input, output, testtype}], optional metadata {func_name}. The id is a hash of the
    statement (the layout has no problem id), so it does not depend on row order."""
    statement = row.get("problem")
    starter = row.get("starter_code", optional=True) or ""
    cases = _json_field(row, "tests", list)
    if not cases:
        raise row.fail("field 'tests' is empty")
    kinds = set()
    for j, case in enumerate(cases):
        if not isinstance(case, dict) or not all(isinstance(case.get(k), str) for k in ("input", "output", "testtype")):
            raise row.fail(f"tests[{j}] should be an object with string input, output and testtype")
        kinds.add(case["testtype"])
    if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
        raise row.fail(f"tests mix or misname test types {sorted(kinds)}: expected all 'stdin' or all 'functional'")
    kind = kinds.pop()
    metadata = _json_field(row, "metadata", dict) or {}
    fn_name = metadata.get("func_name")
    if kind == "functional" and not fn_name:
        found = re.search(r"def\s+(\w+)\s*\(\s*self", starter)
        if not found:
            raise row.fail("functional tests, but no func_name in metadata and no method in starter_code")
        fn_name = found.group(1)
    tests = {"format": kind, "inputs": [c["input"] for c in cases], "outputs": [c["output"] for c in cases],
             "fn_name": fn_name if kind == "functional" else None, "starter_code": starter or None}
    key = hashlib.sha1(statement.encode()).hexdigest()[:12]
    meta = {k: metadata[k] for k in ("platform", "difficulty", "contest_date", "question_id") if k in metadata}
    return Problem(id=f"{name}/{key}", benchmark=name, question=statement, gold=None, answer_type="code",
                   tests=tests, meta=meta)


# --- visual -----------------------------------------------------------------------------------

def _image(row: Row, path_field: str, hub_field: str) -> tuple[bytes | None, str | None]:
    """(image bytes or None, relative image path): the hub's undecoded image column, or the file
    `path_field` names relative to the local file's folder (None when that file is absent)."""
    hub = row.data.get(hub_field)
    if isinstance(hub, dict) and hub.get("bytes"):
        return hub["bytes"], hub.get("path")
    relative = row.get(path_field, optional=True)
    if relative is None or row.folder is None:
        return None, relative
    path = row.folder / relative
    return (path.read_bytes() if path.is_file() else None), relative


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def mathvista(row: Row, name: str) -> Problem:
    """AI4Math/MathVista testmini (pid, question, image, choices, unit, precision, answer,
    question_type, answer_type, metadata; the hub adds decoded_image). Free-form answers are
    "number" with meta["precision"] (decimal places; None for integers), as MathVista grades them."""
    image, relative = _image(row, "image", "decoded_image")
    kind = row.get("question_type")
    gold = _number(row.get("answer", (str, int, float)))
    meta = {"visual": True, "image_path": relative, "unit": row.data.get("unit"),
            "precision": row.data.get("precision"), "answer_kind": row.data.get("answer_type"),
            "metadata": row.data.get("metadata")}
    if kind == "multi_choice":
        choices = row.get("choices", list)
        if gold not in choices:
            raise row.fail(f"answer {gold!r} is not one of the choices {choices}")
        meta["gold_letter"] = _letters(len(choices))[choices.index(gold)]
        return Problem(id=f"{name}/{row.get('pid')}", benchmark=name, question=row.get("question"), gold=gold,
                       answer_type="choice", image=image, choices=choices, meta=meta)
    if kind != "free_form":
        raise row.fail(f"field 'question_type' is {kind!r}, expected 'multi_choice' or 'free_form'")
    return Problem(id=f"{name}/{row.get('pid')}", benchmark=name, question=row.get("question"), gold=gold,
                   answer_type="number", image=image, meta=meta)


def mathvision(row: Row, name: str) -> Problem:
    """MathLLMs/MathVision testmini (id, question, options, image, answer, solution, level,
    subject; the hub adds decoded_image). With options: "choice" (gold is the letter); else "math"."""
    image, relative = _image(row, "image", "decoded_image")
    options = row.get("options", list, optional=True) or []
    gold = _number(row.get("answer", (str, int, float)))
    meta = {"visual": True, "image_path": relative, "level": row.data.get("level"),
            "subject": row.data.get("subject")}
    if options:
        if gold not in _letters(len(options)):
            raise row.fail(f"answer {gold!r} is not an option letter for {len(options)} options")
        return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=row.get("question"),
                       gold=gold, answer_type="choice", image=image, choices=[str(o) for o in options], meta=meta)
    return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=row.get("question"),
                   gold=gold, answer_type="math", image=image, meta=meta)


# --- the miniature (records of boundary.miniature.task.problems) -------------------------------

def miniature(row: Row, name: str) -> Problem:
    """A miniature-task record (id, question, answer, difficulty, skill; see the interfaces brief)."""
    return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=row.get("question"),
                   gold=_number(row.get("answer", (str, int, float))), answer_type="math",
                   meta={"difficulty": row.data.get("difficulty"), "skill": row.data.get("skill")})


def miniature_visual(row: Row, name: str) -> Problem:
    """A row of the miniature's visual benchmark (test.parquet: id, question, answer, difficulty,
    expression, image PNG bytes): the expression drawn is kept in meta["expression"], where the
    trace checker reads it (the question only says "the expression in the image")."""
    image = row.get("image", bytes)
    if not image:
        raise row.fail("field 'image' is empty")
    return Problem(id=f"{name}/{_native_id(row, 'id')}", benchmark=name, question=row.get("question"),
                   gold=_number(row.get("answer", (str, int, float))), answer_type="math", image=image,
                   meta={"visual": True, "expression": row.get("expression"),
                         "difficulty": row.data.get("difficulty")})


def records(items: list[dict], label: str) -> list[Row]:
    """Rows of in-memory records (e.g. the miniature's `problems(split)`), each named by `label` and index."""
    return [Row(dict(item), f"{label} record {i}", i, None) for i, item in enumerate(items)]

