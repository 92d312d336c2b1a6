"""Importers of per-problem correct counts: CSV, evaluation-harness jsonl, pooling, pairing."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from boundary import ROOT, counts, passk

FIXTURES = ROOT / "tests" / "fixtures"


def test_csv_importer_reads_every_model():
    df = counts.from_csv(FIXTURES / "counts.csv", {"base": "base_correct", "rl": "rl_correct"})
    assert list(df.columns) == counts.COLUMNS
    base = df[df["model"] == "base"]
    assert base["c"].tolist() == [3, 0, 1, 8, 2] and (base["n"] == 8).all()
    assert df[df["model"] == "rl"]["c"].tolist() == [8, 0, 0, 8, 5]


@pytest.mark.parametrize("content,message", [
    ("problem_index,base_correct,n\n0,3,8\n1,x,8\n", "line 3: column 'base_correct' is not an integer"),
    ("problem_index,base_correct,n\n0,3,8\n1,2.5,8\n", "line 3"),  # a fraction is not a count
    ("problem_index,base_correct,n\n0,9,8\n", "need 0 <= c <= n"),  # more correct than samples
    ("problem_index,base,n\n0,3,8\n", "missing column(s) ['base_correct']"),
])
def test_csv_errors_name_the_culprit(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(counts.CountsError, match=re.escape(message)) as e:
        counts.from_csv(path, {"base": "base_correct"})
    assert "bad.csv" in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(counts.CountsError, match="no such file"):
        counts.from_csv(tmp_path / "absent.csv", {"base": "b"})


def test_harness_jsonl_pools_seed_files():
    files = sorted((FIXTURES / "harness").glob("seed*.jsonl"))
    df = counts.from_harness_jsonl(files, "base", "toy")
    assert df["problem"].tolist() == ["0", "1", "10"]  # numeric ids in numeric order
    assert df["n"].tolist() == [5, 5, 5] and df["c"].tolist() == [4, 1, 2]


def test_pooling_equals_concatenation(tmp_path):
    """Pooling two seed files gives the counts, and curves, of one file with the score lists joined."""
    files = sorted((FIXTURES / "harness").glob("seed*.jsonl"))
    recs = [[json.loads(line) for line in f.open()] for f in files]
    joined = tmp_path / "joined.jsonl"
    joined.write_text("".join(json.dumps({"idx": a["idx"], "score": a["score"] + b["score"]}) + "\n"
                              for a, b in zip(*recs)))
    pooled = counts.from_harness_jsonl(files, "m", "toy")
    concat = counts.from_harness_jsonl([joined], "m", "toy")
    pd.testing.assert_frame_equal(pooled, concat)
    # The same through pool(): per-seed tables added up.
    per_seed = pd.concat([counts.from_harness_jsonl([f], "m", "toy") for f in files])
    pd.testing.assert_frame_equal(counts.pool(per_seed), concat)
    np.testing.assert_array_equal(passk.curves(pooled["n"], pooled["c"]), passk.curves(concat["n"], concat["c"]))


@pytest.mark.parametrize("line,message", [
    ('{"idx": 0}', "KeyError"),  # no score
    ('{"idx": 0, "score": [1, 0]}', "list of true/false"),  # ints are not verdicts
    ("not json", "JSONDecodeError"),
])
def test_harness_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "out.jsonl"
    path.write_text('{"idx": 5, "score": [true]}\n' + line + "\n")
    with pytest.raises(counts.CountsError, match=f"out.jsonl: line 2: .*{message}"):
        counts.from_harness_jsonl([path], "m", "toy")


def test_paired_aligns_and_rejects_mismatch():
    df = counts.from_csv(FIXTURES / "counts.csv", {"base": "base_correct", "rl": "rl_correct"})
    problems, pc = passk.paired(df.iloc[::-1], ["base", "rl"])  # order of rows does not matter
    assert pc["base"][1][problems.index("3")] == 8 and pc["rl"][1][problems.index("4")] == 5
    with pytest.raises(passk.Unpaired, match="cover different problems"):
        passk.paired(df.drop(index=0), ["base", "rl"])
    with pytest.raises(passk.Unpaired, match="no counts for model"):
        passk.paired(df, ["base", "distilled"])
