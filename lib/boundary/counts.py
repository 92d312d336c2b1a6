"""Per-problem correct counts: the one table every pass@k analysis starts from.

A counts table is long and tidy, one row per (model, benchmark, problem):
    model: str, benchmark: str, problem: str, n: int (samples), c: int (correct ones).
It comes from our own verdicts (the table grading writes, `results/<experiment>/verdicts.parquet`:
this module reads it and never grades), or from published results through the importers here:
- a per-problem counts CSV (one correct-count column per model, an n column);
- the jsonl outputs of the official limit-of-RLVR / SimpleRL-Zoo / Qwen2.5-Math evaluation
  harness (`math_eval.py`): one line per problem with `idx` and a `score` list of booleans,
  one file per seed; files of several seeds are pooled by adding their counts.
Malformed input is an error naming the file and the line or row.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd

from boundary.config import Experiment

COLUMNS = ["model", "benchmark", "problem", "n", "c"]


class CountsError(ValueError):
    """A counts source that cannot be read as per-problem correct counts."""


def _validate(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check integer counts with 0 <= c <= n and n >= 1; name the first bad row."""
    bad = (df["n"] < 1) | (df["c"] < 0) | (df["c"] > df["n"])
    if bad.any():
        row = df[bad].iloc[0]
        raise CountsError(f"{source}: problem {row['problem']} of {row['model']}: "
                          f"need 0 <= c <= n and n >= 1, got c={row['c']}, n={row['n']}")
    return df[COLUMNS].reset_index(drop=True)


def from_csv(path: Path, models: dict[str, str], problem_column: str = "problem_index",
             n_column: str | None = "n", n: int | None = None, benchmark: str = "replay") -> pd.DataFrame:
    """Counts from a CSV with one correct-count column per model (`models`: label -> column)."""
    if not path.is_file():
        raise CountsError(f"{path}: no such file (is ../shared beside the project?)")
    raw = pd.read_csv(path)
    needed = [problem_column, *models.values(), *([n_column] if n_column else [])]
    missing = [col for col in needed if col not in raw.columns]
    if missing:
        raise CountsError(f"{path}: missing column(s) {missing}; it has {list(raw.columns)}")
    if n_column is None and n is None:
        raise CountsError(f"{path}: no n column given and no fixed n: say how many samples per problem")
    frames = []
    for label, column in models.items():
        for col in [column, *([n_column] if n_column else [])]:
            values = pd.to_numeric(raw[col], errors="coerce")
            if values.isna().any() or (values != values.round()).any():
                line = int(values.isna().idxmax() if values.isna().any() else (values != values.round()).idxmax())
                raise CountsError(f"{path}: line {line + 2}: column {col!r} is not an integer: {raw[col][line]!r}")
        frames.append(pd.DataFrame({
            "model": label, "benchmark": benchmark, "problem": raw[problem_column].astype(str),
            "n": (raw[n_column] if n_column else pd.Series(n, index=raw.index)).astype(np.int64),
            "c": raw[column].astype(np.int64),
        }))
    return _validate(pd.concat(frames, ignore_index=True), str(path))


def from_harness_jsonl(paths: list[Path], model: str, benchmark: str) -> pd.DataFrame:
    """Counts from evaluation-harness jsonl files (one per seed), pooled per problem `idx`.

    Each line needs `idx` and `score` (a list of booleans, one per sample). A problem's
    n is the total length of its score lists across files, c the number of true entries.
    """
    if not paths:
        raise CountsError(f"{model}: no harness jsonl files given")
    n: dict[str, int] = {}
    c: dict[str, int] = {}
    for path in paths:
        with open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    idx, score = str(rec["idx"]), rec["score"]
                    if not isinstance(score, list) or not all(isinstance(s, bool) for s in score):
                        raise TypeError("'score' must be a list of true/false")
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise CountsError(f"{path}: line {lineno}: {type(e).__name__}: {e}") from None
                n[idx] = n.get(idx, 0) + len(score)
                c[idx] = c.get(idx, 0) + sum(score)
    problems = sorted(n, key=lambda p: (len(p), p))  # numeric ids in numeric order
    df = pd.DataFrame({"model": model, "benchmark": benchmark, "problem": problems,
                       "n": [n[p] for p in problems], "c": [c[p] for p in problems]})
    return _validate(df, ", ".join(map(str, paths)))


def pool(df: pd.DataFrame) -> pd.DataFrame:
    """Add up counts of the same (model, benchmark, problem): pooled seeds or top-up runs."""
    out = df.groupby(["model", "benchmark", "problem"], sort=False, as_index=False)[["n", "c"]].sum()
    return out[COLUMNS]


def read_verdicts(cfg: Experiment) -> pd.DataFrame:
    """The experiment's verdict table as grading wrote it; an error naming the step to run when it is
    absent or does not cover every model and benchmark of the params (written before one was added)."""
    path = cfg.verdicts_file
    if not path.exists():
        raise CountsError(f"{cfg.name}: no verdicts at {path}: grade first (`make verify EXPERIMENT={cfg.name}`, "
                          "notebook 02)")
    v = pd.read_parquet(path)
    missing = sorted({m.label for m in cfg.models} - set(v["model"])) + sorted({b.name for b in cfg.benchmarks} - set(v["benchmark"]))
    if missing:
        raise CountsError(f"{cfg.name}: {path} has no verdicts for {missing}: grade again "
                          f"(`make verify EXPERIMENT={cfg.name}`)")
    return v


def from_verdicts(verdicts: pd.DataFrame, verdict: str = "answer") -> pd.DataFrame:
    """Per-problem correct counts (COLUMNS) from a verdict table: 'answer' (answer-only) or 'trace'
    (right answer by valid steps: only benchmarks with a trace checker have these)."""
    col = {"answer": "correct", "trace": "trace_correct"}[verdict]
    if verdicts[col].isna().any():
        missing = sorted(verdicts.loc[verdicts[col].isna(), "benchmark"].unique())
        raise CountsError(f"no trace-verified verdicts for {missing}: only the miniature's traces can be checked")
    g = verdicts.assign(c=verdicts[col].astype(bool)).groupby(["model", "benchmark", "problem"], sort=False)
    return g.agg(n=("sample", "size"), c=("c", "sum")).reset_index()[COLUMNS]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (model, benchmark) of a counts table: problems, the smallest and largest n, correct samples."""
    return table.groupby(["model", "benchmark"], sort=False).agg(
        problems=("problem", "nunique"), n_min=("n", "min"), n_max=("n", "max"), correct=("c", "sum"))


def verdict_rates(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per (model, benchmark): samples, and the shares correct, truncated (finish_reason "length"),
    without an answer (status "no_answer") and lucky (a right answer whose trace fails the trace
    checker, among right answers; NaN where the benchmark has no trace checker). Notebooks 02 and 05."""
    keys = ["model", "benchmark"]
    rates = verdicts.groupby(keys, sort=False).agg(
        samples=("sample", "size"), correct=("correct", "mean"),
        truncated=("finish_reason", lambda s: (s == "length").mean()),
        no_answer=("status", lambda s: (s == "no_answer").mean()))
    right = verdicts[verdicts["correct"].astype(bool)]
    lucky = right.groupby(keys, sort=False)["trace_correct"].agg(
        lambda s: float("nan") if s.isna().all() else 1 - s.astype(bool).mean())
    return rates.assign(lucky=lucky.reindex(rates.index))


def statuses(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The share of each verdict status per (model, benchmark) (rows sum to 1)."""
    return pd.crosstab([verdicts["model"], verdicts["benchmark"]], verdicts["status"], normalize="index")


def load(cfg: Experiment, verdict: str = "answer") -> pd.DataFrame:
    """The experiment's counts table: replayed published counts, or counted from our verdicts.

    verdict: "answer" (answer-only, as on real benchmarks) or "trace" (right answer by valid
    steps; only benchmarks with a trace checker, i.e. the miniature, have these verdicts).
    """
    r = cfg.replay
    if r is None:
        return from_verdicts(read_verdicts(cfg), verdict)
    if verdict != "answer":
        raise CountsError(f"{cfg.name}: a replay of published counts has answer-only verdicts, not {verdict!r}")
    path = cfg.resolve(r.path)
    if r.format == "counts-csv":
        df = from_csv(path, r.models, r.problem_column, r.n_column, r.n, r.benchmark)
    else:
        frames = []
        for label, pattern in r.models.items():
            files = sorted(Path(p) for p in glob.glob(str(cfg.resolve(Path(r.path) / pattern))))
            if not files:
                raise CountsError(f"{cfg.name}: no harness files match {r.path}/{pattern} for model {label!r}")
            frames.append(from_harness_jsonl(files, label, r.benchmark))
        df = pd.concat(frames, ignore_index=True)
    if r.limit is not None:
        keep = df.drop_duplicates("problem")["problem"].head(r.limit)
        df = df[df["problem"].isin(keep)].reset_index(drop=True)
    return pool(df)
