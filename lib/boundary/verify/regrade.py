"""Re-grading: verdicts for a table of samples, kept in a Parquet cache beside it, without regenerating anything.

`grade_samples` takes any samples DataFrame (columns `problem`, `sample`, `text`; the sample store
is one source of them), the problems they answer and the template they were sampled under, and
returns one verdict row per sample, graded by `boundary.verify.grade_many` (the one entry point).
With a `cache` path it reuses every stored verdict whose inputs (response text, gold, answer type)
template, gold) and grader version are unchanged, grades only the rest, and rewrites the cache atomically. So a
grader upgrade (a new `boundary.verify.math.VERSION` or `code.VERSION`) re-grades exactly the
verdicts that version produced, and new samples (a top-up from n to a larger n) only themselves.

`audit` compares Math-Verify with a plain normalized-string check and returns the disagreements,
for notebook 02's audit of the verifier.
"""
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from boundary.files import atomic_write
from boundary.tasks.problem import Problem
from boundary.verify import code, grading, math

# The columns of a verdict table, in order.
COLUMNS = ["problem", "sample", "status", "correct", "extracted", "verifier", "version", "detail", "provenance",
           "input_hash"]


def beside(samples_path: str | Path) -> Path:
    """Where the verdicts of a samples file live: `<name>.verdicts.parquet` in the same folder."""
    p = Path(samples_path)
    return p.with_name(p.name.split(".")[0] + ".verdicts.parquet")


def problems_from_golds(gold: Mapping | pd.DataFrame) -> dict[str, Problem]:
    """Problems from a gold table: {problem: gold answer} (math), or a DataFrame with columns problem,
    gold and optionally answer_type ("math", "number", "choice", "code": then gold is the `tests`
    dict), choices, precision. For grading samples of problems one has no loader for."""
    if isinstance(gold, pd.DataFrame):
        if not {"problem", "gold"} <= set(gold.columns):
            raise ValueError(f"the gold table needs columns 'problem' and 'gold', has {list(gold.columns)}")
        g = gold.set_index("problem")
    else:
        g = pd.DataFrame({"gold": pd.Series(dict(gold), dtype=object)})
    if g.index.duplicated().any():
        raise ValueError(f"the gold table repeats problems: {list(g.index[g.index.duplicated()][:5])}")
    out = {}
    for pid, row in g.iterrows():
        kind = row.get("answer_type", "math") or "math"
        choices = row.get("choices")
        choices = list(choices) if isinstance(choices, (list, tuple)) or hasattr(choices, "tolist") else None
        precision = row.get("precision")
        code_task = kind == "code"
        out[pid] = Problem(id=str(pid), benchmark=str(pid).split("/")[0], question="",
                           gold=None if code_task else str(row["gold"]), answer_type=kind,
                           tests=row["gold"] if code_task else None, choices=choices,
                           meta={"precision": None if precision is None or pd.isna(precision) else int(precision)})
    return out


def _plain(x):
    """JSON for what json.dumps cannot write: sets sorted (their order varies between runs), the rest as str."""
    return sorted(map(repr, x)) if isinstance(x, (set, frozenset)) else str(x)


def _hash(*parts) -> str:
    """A short stable hash of a verdict's inputs (text, gold, answer type, options, template, prompt)."""
    blob = json.dumps(parts, sort_keys=True, default=_plain).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _version(answer_type: str) -> str:
    return code.VERSION if answer_type == "code" else math.VERSION


def _inputs(p: Problem, text: str, template: str) -> str:
    """The hash of everything a verdict depends on: the response, the template it was sampled under,
    and the problem's gold (code: its tests and prompt, which a completion continues)."""
    gold = (p.tests, p.question) if p.answer_type == "code" else p.gold
    return _hash(text, gold, p.answer_type, p.choices, p.meta.get("precision"), template)


def grade_samples(samples: pd.DataFrame, problems: Sequence[Problem] | Mapping | pd.DataFrame,
                  template: str = "plain", *, cache: str | Path | None = None, timeout_s: float | None = None,
                  workers: int | None = None, progress: bool = False, grader=None) -> pd.DataFrame:
    """One verdict row per sample (columns `COLUMNS`), graded by `boundary.verify.grade_many`,
    reusing and updating the Parquet `cache` if given.

    problems: the `Problem`s the samples answer (a list, or {id: Problem}), or a gold table (see
    `problems_from_golds`); template: the prompt template the samples were sampled under; grader:
    what grades the samples not cached, with grade_many's signature and verdicts (default grade_many
    itself; boundary.cluster.grade_many spreads them over a Ray cluster).
    """
    missing = {"problem", "sample", "text"} - set(samples.columns)
    if missing:
        raise ValueError(f"the samples table lacks columns {sorted(missing)}")
    if isinstance(problems, pd.DataFrame) or (isinstance(problems, Mapping) and
                                              not all(isinstance(v, Problem) for v in problems.values())):
        by_id = problems_from_golds(problems)
    else:
        by_id = dict(problems) if isinstance(problems, Mapping) else {p.id: p for p in problems}
    unknown = sorted(set(samples["problem"]) - set(by_id))
    if unknown:
        raise ValueError(f"{len(unknown)} problems have samples but no gold answer, e.g. {unknown[:3]}")
    df = samples[["problem", "sample", "text"]].reset_index(drop=True)
    df["input_hash"] = [_inputs(by_id[p], t, template) for p, t in zip(df["problem"], df["text"])]
    df["version"] = [_version(by_id[p].answer_type) for p in df["problem"]]

    old = pd.read_parquet(cache) if cache is not None and Path(cache).exists() else None
    if old is not None and not set(COLUMNS) <= set(old.columns):
        old = None  # a cache from before a column was added: its grader versions are older, all regraded
    key = ["problem", "sample", "input_hash", "version"]
    if old is None or old.empty:
        old = pd.DataFrame({c: pd.Series(dtype=df[c].dtype if c in df else object) for c in COLUMNS})
    reused = df[key].merge(old[COLUMNS], on=key, how="inner")
    todo = df.merge(reused[key], on=key, how="left", indicator=True)
    todo = todo[todo["_merge"] == "left_only"].drop(columns="_merge")

    verdicts = (grader or grading.grade_many)([by_id[p] for p in todo["problem"]], list(todo["text"]), template,
                                  timeout_s=timeout_s, workers=workers, progress=progress)
    rows = pd.DataFrame([{"problem": p, "sample": s, "status": v.status, "correct": v.correct,
                          "extracted": v.extracted, "verifier": v.verifier, "version": v.version,
                          "detail": v.detail, "provenance": v.provenance, "input_hash": h}
                         for p, s, h, v in zip(todo["problem"], todo["sample"], todo["input_hash"], verdicts)],
                        columns=COLUMNS)
    parts = [x for x in (reused[COLUMNS], rows) if len(x)]
    out = pd.concat(parts, ignore_index=True) if parts else rows
    out["sample"] = out["sample"].astype(samples["sample"].dtype)
    text = {c: object for c in COLUMNS if c not in ("sample", "correct")}  # one dtype, cached or fresh
    out = out.astype({"correct": bool, **text}).sort_values(["problem", "sample"], kind="stable").reset_index(drop=True)
    out["extracted"] = out["extracted"].where(out["extracted"].notna(), None)
    if cache is not None:
        _write(out, Path(cache), keep=old)
    return out


def _write(verdicts: pd.DataFrame, path: Path, keep: pd.DataFrame) -> None:
    """Merge into the cache (other samples' verdicts kept) and write it atomically (temp file, rename)."""
    key = ["problem", "sample"]
    others = keep.merge(verdicts[key], on=key, how="left", indicator=True)
    others = others[others["_merge"] == "left_only"].drop(columns="_merge")[COLUMNS]
    table = pd.concat([others, verdicts], ignore_index=True) if len(others) else verdicts
    table = table.sort_values(key, kind="stable").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


# ---------------------------------------------------------------- the audit of the verifier

def normalize(answer: str) -> str:
    """A plain string normalization (the check many evaluation scripts use): no $, spaces, \\left/\\right,
    \\text{} wrappers, thin spaces, degree or percent signs, trailing full stop; dfrac/tfrac as frac."""
    s = str(answer)
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("$", ""),
                     ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("\\%", ""), ("%", "")):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s.lower()


def audit(responses, golds) -> pd.DataFrame:
    """Math-Verify against a normalized-string comparison of the extracted answer, sample by sample.

    Returns the disagreements only: columns item, gold, extracted, math_verify (status), string_match,
    detail; sorted by item. An empty frame means the two checks agree everywhere.
    """
    responses, golds = list(responses), [str(g) for g in golds]
    verdicts = math.grade_many(responses, golds)
    rows = []
    for i, (v, gold) in enumerate(zip(verdicts, golds)):
        plain = v.extracted is not None and normalize(v.extracted) == normalize(gold)
        if plain != v.correct:
            rows.append({"item": i, "gold": gold, "extracted": v.extracted, "math_verify": v.status,
                         "string_match": plain, "detail": v.detail})
    return pd.DataFrame(rows, columns=["item", "gold", "extracted", "math_verify", "string_match", "detail"])
