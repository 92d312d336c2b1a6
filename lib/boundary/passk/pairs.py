"""Per-problem counts of several models aligned on their common problems: the input of every paired
comparison here, taken from a counts table (boundary.counts columns: model, benchmark, problem, n, c).
"""
from __future__ import annotations

import pandas as pd


class Unpaired(ValueError):
    """Models whose counts cannot be paired problem by problem."""


def paired(df: pd.DataFrame, models: list[str], benchmark: str | None = None) -> tuple[list[str], dict]:
    """Align models on their common problems: (problem ids, {model: (n, c)}) for passk.

    Different problem sets are an error (a paired comparison over mismatched problems is
    not paired), naming the model and a few of the problems it lacks.
    """
    if benchmark is not None:
        df = df[df["benchmark"] == benchmark]
    present = set(df["model"])
    absent = [m for m in models if m not in present]
    if absent:
        raise Unpaired(f"no counts for model(s) {absent}; have {sorted(present)}")
    tables = {m: df[df["model"] == m].set_index("problem") for m in models}
    problems = list(tables[models[0]].index)
    for m, t in tables.items():
        diff = set(problems) ^ set(t.index)
        if diff:
            raise Unpaired(f"model {m!r} and {models[0]!r} cover different problems, e.g. {sorted(diff)[:5]}")
    return problems, {m: (t.loc[problems, "n"].to_numpy(), t.loc[problems, "c"].to_numpy()) for m, t in tables.items()}
