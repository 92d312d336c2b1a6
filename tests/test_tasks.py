"""boundary.tasks: every benchmark loads from the shared copies with the paper's row counts, bad rows
name their file and line, the hub code path works on a local dataset folder, and registration is one entry."""
import gzip
import json
import warnings

import pytest

from boundary import tasks
from boundary.tasks import parse
from boundary.tasks.registry import Hub, Spec
from boundary.verify.extract import boxed

# benchmark -> problems in its shared copy (the expected row counts)
COUNTS = [
    ("gsm8k", 1319),  # GSM8K test
    ("math500", 500),  # MATH500 (PRM800K split)
    ("minerva_math", 272),  # Minerva Math (Qwen2.5-Math copy)
    ("olympiadbench", 675),  # OlympiadBench OE_TO_maths_en_COMP
    ("aime24", 30),  # AIME 2024 I and II
    ("amc23", 40),  # AMC 2023
    ("humaneval_plus", 164),  # HumanEval+ v0.1.10
    ("mbpp_plus", 378),  # MBPP+ v0.2.0
    ("livecodebench", 279),  # LiveCodeBench v5, 2024-08..2025-02
    ("mathvista", 1000),  # MathVista testmini records (the shared copy has no images)
    ("mathvision", 304),  # MathVision testmini
]


def _load_shared(shared, name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tasks.MissingImagesWarning)
        return tasks.load(name, source=shared("data", "benchmarks", name), **kwargs)


@pytest.mark.shared
@pytest.mark.parametrize("name,count", COUNTS)
def test_every_benchmark_loads_from_the_shared_copy(shared, name, count):
    problems = _load_shared(shared, name)
    assert len(problems) == count == tasks.REGISTRY[name].count
    assert len({p.id for p in problems}) == count  # ids are unique
    assert all(p.id.startswith(f"{name}/") and p.benchmark == name for p in problems)
    kind = tasks.REGISTRY[name].kind
    assert all((p.answer_type == "code") == (kind == "code") for p in problems)
    assert all(p.visual == (kind == "visual") for p in problems)


# benchmark -> (first problem id, its gold answer, start of its question)
FIRST = [
    ("gsm8k", "gsm8k/0", "18", "Janet’s ducks lay 16 eggs"),  # gold after '####'
    ("math500", "math500/test/precalculus/807.json", "\\left( 3, \\frac{\\pi}{2} \\right)", "Convert the point"),
    ("minerva_math", "minerva_math/0", "1.6", "Each of the two Magellan"),  # gold from \boxed{1.6}
    ("olympiadbench", "olympiadbench/1606", "2", "Xenia and Sergey"),  # final_answer[0]
    ("aime24", "aime24/60", "204", "Every morning Aya"),
    ("amc23", "amc23/0", "27", "Cities $A$ and $B$"),  # 27.0 in the file
    ("mathvista", "mathvista/1", "1.2", "When a spring does work"),
    ("mathvision", "mathvision/4", "6", "How many different digits"),
]


@pytest.mark.shared
@pytest.mark.parametrize("name,pid,gold,start", FIRST)
def test_first_problem_is_parsed_as_the_paper_code_does(shared, name, pid, gold, start):
    p = _load_shared(shared, name, limit=1)[0]
    assert (p.id, p.gold) == (pid, gold)
    assert p.question.startswith(start)


@pytest.mark.shared
def test_gsm8k_gold_drops_thousands_separators(shared):
    golds = [p.gold for p in _load_shared(shared, "gsm8k")]
    assert all(g.lstrip("-").replace(".", "", 1).isdigit() for g in golds)
    assert "2125" in golds  # written "#### 2,125" in the file


@pytest.mark.shared
def test_code_tests_follow_the_interfaces_brief(shared):
    he = _load_shared(shared, "humaneval_plus", limit=1)[0].tests
    assert he["format"] == "humaneval" and he["entry_point"] == "has_close_elements"
    assert he["base_inputs"][0] == [[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3] and he["plus_inputs"]
    assert "def check(candidate)" in he["test"] and he["canonical_solution"].startswith("from typing import List")
    mb = _load_shared(shared, "mbpp_plus")
    assert mb[0].tests["format"] == "mbpp" and mb[0].tests["test"].strip().startswith("assert similar_elements")
    assert next(p for p in mb if p.id == "mbpp_plus/Mbpp/793").tests["plus_inputs"] == []  # {} in v0.2.0
    lcb = _load_shared(shared, "livecodebench")
    stdin = [p for p in lcb if p.tests["format"] == "stdin"]
    functional = [p for p in lcb if p.tests["format"] == "functional"]
    assert (len(stdin), len(functional)) == (175, 104)
    assert stdin[0].tests["inputs"][0] == "4\n8 2 5 1\n" and stdin[0].tests["outputs"][0] == "3\n"
    assert all(p.tests["fn_name"] and p.tests["starter_code"] for p in functional)
    assert functional[0].tests["fn_name"] == "shortestDistanceAfterQueries"  # from the starter code


@pytest.mark.shared
@pytest.mark.parametrize("name,kept", [
    ("mathvista", 460),  # free_form items of MathVista testmini (540 are multi_choice)
    ("mathvision", 114),  # items without options (190 have options A-E)
])
def test_multiple_choice_items_are_removable(shared, name, kept):
    all_ = _load_shared(shared, name)
    free = _load_shared(shared, name, drop_multiple_choice=True)
    assert len(free) == kept and all(p.answer_type != "choice" for p in free)
    assert all(p.choices for p in all_ if p.answer_type == "choice")


@pytest.mark.shared
def test_mathvision_images_are_bytes_and_missing_mathvista_images_are_said(shared):
    images = [p.image for p in _load_shared(shared, "mathvision")]
    assert all(i is not None and i[:2] == b"\xff\xd8" for i in images)  # JPEG files in images/
    with pytest.warns(tasks.MissingImagesWarning, match=r"1000 of 1000 problems have no image"):
        vista = tasks.load("mathvista", source=shared("data", "benchmarks", "mathvista"))
    with pytest.raises(tasks.TaskError, match="mathvista/1: no image to prompt with"):
        tasks.render("chat", vista[0], tokenizer=None)


@pytest.mark.shared
def test_limit_keeps_the_first_problems(shared):
    assert [p.id for p in _load_shared(shared, "amc23", limit=3)] == ["amc23/0", "amc23/1", "amc23/2"]


@pytest.mark.shared
def test_broken_livecodebench_copy_is_refused_with_its_line(shared):
    # The "+12private" copy appends the same 12 functional tests to every problem (a bug upstream).
    path = shared("data", "benchmarks", "livecodebench", "lcb_v5_2408_2502_public+12private.json")
    with pytest.raises(tasks.TaskError, match=r"12private\.json:\d+: tests mix"):
        tasks.load("livecodebench", source=path)


# (file name, content, benchmark, expected message): each bad file names its culprit's line
MALFORMED = [
    ("bad.jsonl", '{"question": "q", "answer": "a #### 1"}\n\n{"question": \n', "gsm8k",
     r"bad\.jsonl:3: not valid JSON"),  # truncated JSON on line 3 (line 2 blank)
    ("bad.jsonl", '{"question": "q", "answer": "a #### 1"}\n{"question": "q", "answer": "no hashes"}\n', "gsm8k",
     r"bad\.jsonl:2: field 'answer' has no '####'"),  # gold answer missing
    ("bad.jsonl", '{"problem": "q", "solution": "s", "answer": "1", "subject": "A", "unique_id": "x"}\n', "math500",
     r"bad\.jsonl:1: field 'level' should be a int, it is missing"),  # a field missing
    ("bad.jsonl", '[1, 2]\n', "aime24", r"bad\.jsonl:1: a row must be a JSON object"),  # not an object
    ("bad.jsonl", '{"id": 7, "question": "q", "answer": ""}\n', "aime24",
     r"bad\.jsonl:1: TaskError: aime24/7: no gold answer"),  # caught by the Problem record itself
    ("bad.json", '[\n {"problem": "p", "starter_code": "", "tests": [{"input": "1", "output": "1", "testtype": "stdin"}]},\n'
     ' {"problem": "p2", "starter_code": "",\n  "tests": []}\n]', "livecodebench",
     r"bad\.json:3: field 'tests' is empty"),  # second element starts on line 3
    ("bad.json", '{"1": {"pid": "1", "question": "q", "answer": "5", "question_type": "free_form"},\n'
     ' "2": {"pid": "2", "question": "q", "answer": "E", "question_type": "multi_choice", "choices": ["a", "b"]}}',
     "mathvista", r"bad\.json:2: answer 'E' is not one of the choices"),  # MathVista's dict-of-records layout
    ("bad.json", '[\n {"problem": "p",, "tests": []}\n]', "livecodebench", r"bad\.json:2: not valid JSON"),  # syntax error
    ("bad.jsonl", '{"id": 1, "question": "q", "answer": "1"}\n{"id": 1, "question": "q", "answer": "2"}\n', "amc23",
     r"bad\.jsonl:2: duplicate problem id 'amc23/1' \(first at .*bad\.jsonl:1\)"),  # ids must be unique
]


@pytest.mark.parametrize("filename,content,name,message", MALFORMED)
def test_malformed_rows_name_file_and_line(tmp_path, filename, content, name, message):
    (tmp_path / filename).write_text(content)
    with pytest.raises(tasks.TaskError, match=message):
        tasks.load(name, source=tmp_path / filename)


def test_missing_sources_and_names_are_clear(tmp_path):
    with pytest.raises(tasks.TaskError, match=r"no benchmark 'gsm9k'; registered: aime24, amc23"):
        tasks.load("gsm9k")
    with pytest.raises(tasks.TaskError, match=r"local source .* does not exist .*a folder with test\.jsonl"):
        tasks.load("math500", source=tmp_path)


def _mathvista_rows():
    return [{"pid": "1", "question": "How long?", "choices": None, "unit": "cm", "precision": 1.0, "answer": "1.5",
             "question_type": "free_form", "answer_type": "float", "image": "images/1.jpg"},
            {"pid": "2", "question": "Which?", "choices": ["red", "blue"], "unit": None, "precision": None,
             "answer": "blue", "question_type": "multi_choice", "answer_type": "text", "image": "images/2.jpg"}]


def test_hub_path_reads_a_datasets_folder_with_raw_image_bytes(tmp_path, monkeypatch):
    """The hub code path (datasets.load_dataset, undecoded image column) on a local dataset folder."""
    import datasets

    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16  # kept as bytes: the image column is read undecoded
    rows = _mathvista_rows()
    for row in rows:
        row["decoded_image"] = {"bytes": png, "path": None}
    ds = datasets.Dataset.from_list(rows).cast_column("decoded_image", datasets.Image())
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "testmini-00000-of-00001.parquet"))
    spec = tasks.REGISTRY["mathvista"]
    monkeypatch.setitem(tasks.REGISTRY, "mathvista", Spec(spec.parse, spec.local, spec.kind,
                                                          hub=Hub(str(tmp_path), split="testmini", images=("decoded_image",))))
    problems = tasks.load("mathvista", drop_multiple_choice=False)
    assert [p.id for p in problems] == ["mathvista/1", "mathvista/2"]
    assert all(p.image == png for p in problems)
    assert problems[1].answer_type == "choice" and problems[1].meta["gold_letter"] == "B"
    assert problems[0].meta["precision"] == 1.0


def test_url_release_files_are_fetched_through_datasets(tmp_path, monkeypatch):
    """Release files (evalplus) go through datasets' download cache; a local path stands in for the URL."""
    row = {"task_id": "Mbpp/3", "prompt": "p", "entry_point": "f", "canonical_solution": "def f(): pass",
           "base_input": [[1]], "plus_input": [[2]], "atol": 0, "assertion": "assert f(1)"}
    path = tmp_path / "MbppPlus.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(row) + "\n")
    spec = tasks.REGISTRY["mbpp_plus"]
    monkeypatch.setitem(tasks.REGISTRY, "mbpp_plus", Spec(spec.parse, spec.local, spec.kind, hub=Hub(None, url=str(path))))
    (problem,) = tasks.load("mbpp_plus")
    assert problem.tests["plus_inputs"] == [[2]] and problem.id == "mbpp_plus/Mbpp/3"


@pytest.mark.parametrize("base_input, expected", [
    ([[[1, 2], [3]]], [[(1, 2), (3,)]]),  # Mbpp/2 takes two tuples: JSON lists become tuples in the loader
    ([[1, 2]], "does not have the shape evalplus gives Mbpp/2"),  # ints where tuples belong: named, not a crash
])
def test_mbpp_inputs_are_deserialized_by_the_loader(base_input, expected):
    from boundary.tasks.rows import Row
    row = Row({"task_id": "Mbpp/2", "prompt": "p", "entry_point": "f", "canonical_solution": "def f(a, b): pass",
               "base_input": base_input, "plus_input": [], "atol": 0}, "MbppPlus.jsonl.gz:1", 0, None)
    if isinstance(expected, str):
        with pytest.raises(tasks.TaskError, match=expected):
            parse.mbpp_plus(row, "mbpp_plus")
    else:
        assert parse.mbpp_plus(row, "mbpp_plus").tests["base_inputs"] == expected


def test_a_new_benchmark_is_one_registry_entry(monkeypatch):
    """How the miniature joins: records in memory, parsed by parse.miniature, named by `source`."""
    records = {"test": [{"id": "t0", "question": "2+3*4=?", "answer": 14, "difficulty": 2, "skill": "+*"}]}
    monkeypatch.setitem(tasks.REGISTRY, "miniature", Spec(
        parse.miniature, local="", rows=lambda source: parse.records(records[source or "test"], "miniature")))
    (p,) = tasks.load("miniature")
    assert (p.id, p.question, p.gold, p.answer_type, p.meta["skill"]) == ("miniature/t0", "2+3*4=?", "14", "math", "+*")
    assert tasks.render("qwen-boxed", p).count("2+3*4=?") == 1


# (text, its last \boxed{} content): the Minerva gold extraction
BOXED = [
    ("so $\\boxed{1.6}$ cm", "1.6"),  # plain
    ("\\boxed{\\frac{1}{2}} then \\boxed{x^{2}}", "x^{2}"),  # last one, nested braces
    ("\\fbox{3}", "3"),  # \fbox as in AIME solutions
    ("no box", None),  # absent
    ("\\boxed{unclosed", None),  # unbalanced
]


@pytest.mark.parametrize("text,expected", BOXED)
def test_boxed_reads_minerva_golds(text, expected):
    assert boxed(text) == expected


@pytest.mark.shared
def test_a_params_benchmark_entry_loads(shared):
    from boundary.config import Benchmark

    entry = Benchmark(name="mathvision", source=str(shared("data", "benchmarks", "mathvision")), n=128, limit=5,
                      drop_multiple_choice=True, revision="ignored-for-local-copies")
    problems = tasks.load_benchmark(entry)
    assert len(problems) == 5 and all(p.answer_type == "math" for p in problems)
