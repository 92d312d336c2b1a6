"""boundary.verify.regrade: the verdict cache re-grades only what changed; the audit lists disagreements."""
import pandas as pd
import pytest

from boundary.verify import math as vmath
from boundary.verify import regrade

SAMPLES = pd.DataFrame({
    "problem": ["a", "a", "b", "b"],
    "sample": [0, 1, 0, 1],
    "text": ["\\boxed{1/2}", "\\boxed{0.5}", "no answer", "\\boxed{3}"],
})
GOLD = {"a": "\\frac12", "b": "3"}


@pytest.fixture
def counting(monkeypatch):
    """Count the responses handed to the math grader."""
    seen = []
    real = vmath.grade_many

    def spy(responses, *a, **kw):
        seen.extend(responses)
        return real(responses, *a, **kw)
    monkeypatch.setattr(vmath, "grade_many", spy)
    return seen


def test_grades_and_caches(tmp_path, counting):
    cache = tmp_path / "s.verdicts.parquet"
    first = regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    assert list(first.columns) == regrade.COLUMNS
    assert list(first["status"]) == ["correct", "correct", "no_answer", "correct"]
    assert len(counting) == 4
    again = regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    assert len(counting) == 4  # nothing re-graded
    pd.testing.assert_frame_equal(first, again)
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, no temp file left


def test_topup_and_changed_inputs_regrade_only_themselves(tmp_path, counting):
    cache = tmp_path / "v.parquet"
    regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    more = pd.concat([SAMPLES, pd.DataFrame({"problem": ["b"], "sample": [2], "text": ["\\boxed{4}"]})])
    out = regrade.grade_samples(more, GOLD, cache=cache)
    assert counting[4:] == ["\\boxed{4}"]  # the top-up sample only
    assert out.set_index(["problem", "sample"]).loc[("b", 2), "status"] == "wrong"
    regrade.grade_samples(more, {**GOLD, "b": "4"}, cache=cache)  # a corrected gold answer for b
    assert sorted(counting[5:]) == sorted(["no answer", "\\boxed{3}", "\\boxed{4}"])


def test_grader_upgrade_regrades_its_verdicts(tmp_path, counting, monkeypatch):
    cache = tmp_path / "v.parquet"
    regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    monkeypatch.setattr(vmath, "VERSION", vmath.VERSION + "-next")
    out = regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    assert len(counting) == 8 and set(out["version"]) == {vmath.VERSION}
    assert set(pd.read_parquet(cache)["version"]) == {vmath.VERSION}


def test_cache_keeps_other_samples(tmp_path):
    cache = tmp_path / "v.parquet"
    regrade.grade_samples(SAMPLES, GOLD, cache=cache)
    regrade.grade_samples(SAMPLES[SAMPLES["problem"] == "a"], GOLD, cache=cache)
    assert len(pd.read_parquet(cache)) == 4


@pytest.mark.parametrize("samples, gold, match", [
    (SAMPLES.drop(columns="text"), GOLD, "lacks columns"),                 # no text column
    (SAMPLES, {"a": "1"}, "no gold answer"),                               # a problem without gold
    (SAMPLES, pd.DataFrame({"problem": ["a", "a"], "gold": ["1", "2"]}), "repeats"),  # duplicated gold
])
def test_bad_input_is_named(samples, gold, match):
    with pytest.raises(ValueError, match=match):
        regrade.grade_samples(samples, gold)


def test_gold_table_with_answer_types():
    gold = pd.DataFrame({"problem": ["a", "b"], "gold": ["1.2", "B"], "answer_type": ["number", "choice"],
                         "choices": [None, ["x", "y"]], "precision": [1, None]})
    samples = pd.DataFrame({"problem": ["a", "b"], "sample": [0, 0], "text": ["\\boxed{1.24}", "(B)"]})
    assert list(regrade.grade_samples(samples, gold)["status"]) == ["correct", "correct"]


def test_beside():
    assert regrade.beside("/x/y/samples.parquet").as_posix() == "/x/y/samples.verdicts.parquet"


@pytest.mark.parametrize("answer, gold, same", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True),       # dfrac
    ("$ 10\\% $", "10", True),                      # dollars, percent, spaces
    ("\\text{(C)}", "(c)", True),                   # text wrapper, case
    ("0.5", "\\frac{1}{2}", False),                 # equivalent, but not the same string
])
def test_normalize(answer, gold, same):
    assert (regrade.normalize(answer) == regrade.normalize(gold)) is same


def test_audit_lists_disagreements():
    responses = ["\\boxed{0.5}", "\\boxed{\\dfrac{1}{2}}", "\\boxed{3}", "\\boxed{2}"]
    out = regrade.audit(responses, ["\\frac{1}{2}", "\\frac12", "3", "3"])
    assert list(out["item"]) == [0, 1]  # Math-Verify accepts both; the string check rejects them
    assert list(out["math_verify"]) == ["correct", "correct"] and not out["string_match"].any()
