"""The miniature task: generator, answer checker and trace checker agree; held-out sets stay held out."""
import random

import pytest

from boundary.miniature import task

SPLITS = {s: task.problems(s) for s in ("test", "unseen")}


@pytest.mark.parametrize("split", ["test", "unseen"])
def test_generator_and_checkers_agree_on_every_held_out_problem(split):
    """Gold = Python's own arithmetic; every style's clean trace passes both checkers."""
    rng = random.Random(1)
    for p in SPLITS[split]:
        assert p["answer"] == str(task.evaluate(p["question"])), p
        assert p["difficulty"] == len(task.tokens(p["question"])) // 2
        for style in ("left", "right", "random"):
            r = task.solve(p["question"], rng, style)
            assert task.check_answer(p, r), (p, r)
            assert task.check_trace(p, r), (p, r)


def test_generator_and_checkers_agree_on_training_problems():
    """Thousands of training questions (both operation sets), clean traces of random order."""
    rng = random.Random(2)
    for ops in (task.BASE_OPS, task.BASE_OPS + task.NEW_OP):
        for _ in range(1500):
            q = task.expression(rng, rng.randint(1, 8), ops)
            r = task.solve(q, rng, "random")
            assert task.check_answer(q, r) and task.check_trace(q, r), (q, r)
            assert task.boxed(r) == str(task.evaluate(q))


def test_slipped_traces_fail_the_trace_check():
    """A trace with a slip never passes the trace check (even when its answer happens to be right)."""
    rng = random.Random(3)
    slipped = 0
    for _ in range(800):
        q = task.expression(rng, rng.randint(2, 6))
        r = task.solve(q, rng, "random", slip_rate=0.3)
        if r != task.solve(q, random.Random(0), "left") and not task.check_trace(q, r):
            slipped += 1
        clean = all(s in task.successors(prev) for prev, s in zip([q] + r.split("\\")[0].split("="), r.split("\\")[0].split("=")))
        assert task.check_trace(q, r) == clean, (q, r)
    assert slipped > 100  # the slip rate actually produced slips


@pytest.mark.parametrize("question, response, answer_ok, trace_ok", [
    ("7-2*3+4", "7-6+4=1+4=5\\boxed{5}", True, True),  # the canonical trace
    ("2*3*4", "6*4=24\\boxed{24}", True, True),  # products in left order
    ("2*3*4", "2*12=24\\boxed{24}", True, True),  # ... or right order (they associate)
    ("9-2-3", "7-3=4\\boxed{4}", True, True),  # subtraction left to right
    ("9-2-3", "9--1=10\\boxed{4}", True, False),  # right to left is not a valid step (and malformed)
    ("2+2*1", "4*1=4\\boxed{4}", True, False),  # lucky hit: addition before the product
    ("5*4+1", "20+1=22\\boxed{21}", True, False),  # box does not match the last step
    ("5*4+1", "21+1=21\\boxed{21}", True, False),  # slip then a compensating slip: a lucky hit
    ("3+4", "7\\boxed{7}", True, True),  # one operation, one step
    ("3+4", "\\boxed{7}", True, False),  # no steps at all
    ("3+4*2", "3+8=11\\boxed{11}", True, True),  # precedence respected
    ("3+4*2", "7*2=14\\boxed{14}", False, False),  # precedence ignored: wrong answer
    ("3+4*2", "3+8=12\\boxed{12}", False, False),  # an arithmetic slip
    ("3+4*2", "3+8=11", False, False),  # no box
    ("3+4*2", "3+8=11\\boxed{11", False, False),  # truncated box
    ("3+4*2", "3+8=11\\boxed{011}", True, False),  # right value, not the canonical string
    ("3+4*2", "3+8=11\\boxed{11}\\boxed{12}", False, False),  # the last box counts
    ("2^3+1", "8+1=9\\boxed{9}", True, True),  # the teacher's power
    ("2^3+1", "6+1=7\\boxed{7}", False, False),  # a power read as a product
    ("3-5+1", "-2+1=-1\\boxed{-1}", True, True),  # a negative leading number
])
def test_verdicts(question, response, answer_ok, trace_ok):
    assert task.check_answer(question, response) == answer_ok
    assert task.check_trace(question, response) == trace_ok


@pytest.mark.parametrize("response", [
    "3+8=11\\boxed{11}",  # right
    "3+8=12\\boxed{12}",  # wrong
    "7*2=14\\boxed{14}",  # wrong
    "3+8=11\\boxed{011}",  # right value, padded
    "3+8=11\\boxed{11}\\boxed{12}",  # two boxes
])
def test_answer_check_agrees_with_math_verify(response):
    """The fast answer check gives Math-Verify's verdict on the task's boxed integer answers.

    (Without any box Math-Verify falls back to the last number; the miniature requires the box,
    as its traces always end in one, so an unboxed response is wrong here.)
    """
    math_verify = pytest.importorskip("math_verify")
    gold = math_verify.parse("$11$")
    expected = bool(math_verify.verify(gold, math_verify.parse(response)))
    assert task.check_answer("3+4*2", response) == expected


def test_held_out_questions_never_sampled_for_training():
    """d = 1 has only 243 questions, so sampling thousands hits every one except the held-out ones."""
    params = task.TaskParams()
    exclude = task.heldout_questions(params)
    held_d1 = {p["question"] for p in SPLITS["test"] if p["difficulty"] == 1}
    assert len(held_d1) == 16
    rng = random.Random(4)
    seen = {task.draw_question(rng, [1], task.BASE_OPS, exclude) for _ in range(6000)}
    assert len(seen) == 243 - 16  # every other question was drawn, no held-out one
    assert not seen & held_d1


def test_held_out_sets_are_deterministic_and_sized():
    """Same params, same problems; sizes follow the params; unseen problems all use `^`."""
    assert task.problems("test") == SPLITS["test"]
    assert len(SPLITS["test"]) == sum(task.TaskParams().test_per_difficulty)
    assert len({p["question"] for p in SPLITS["test"]}) == len(SPLITS["test"])  # distinct
    assert all("^" in p["skill"] and "^" not in p["answer"] for p in SPLITS["unseen"])
    assert all("^" not in p["question"] for p in SPLITS["test"])
    other = task.problems("test", task.TaskParams(seed=1))
    assert [p["question"] for p in other] != [p["question"] for p in SPLITS["test"]]
    with pytest.raises(ValueError, match="unknown split"):
        task.problems("train")


def test_products_stay_bounded():
    """Every multiplicative run of a generated question is at most max_run."""
    rng = random.Random(5)
    for _ in range(500):
        q = task.expression(rng, 6, "+-*^", max_run=50)
        for run in q.replace("-", "+").split("+"):
            assert task.evaluate(run) <= 50, q


def test_task_params_mirror_the_config_defaults():
    """`problems(split)` without params gives the default experiment's held-out sets."""
    from boundary import config
    from boundary.miniature.build import task_params

    assert task_params(config.Miniature()) == task.TaskParams()
    assert task_params(config.load("miniature").miniature) == task.TaskParams()
