"""The miniature's held-out problem sets, written as a local benchmark folder.

`make models` writes `<miniature.out>/benchmark/test.jsonl` (operations + - *) and `unseen.jsonl`
(with the teacher's `^`), one problem record per line (boundary.miniature.task.problem). The
registry (boundary.tasks) loads them like any local copy of a real benchmark, benchmarks
`miniature` and `miniature-unseen` with `source: <miniature.out>/benchmark`, so sampling,
verification and every notebook treat the miniature exactly like a real benchmark.
"""
from __future__ import annotations

import json
from pathlib import Path

from boundary.files import write_text
from boundary.miniature import task

SPLITS = {"test": "test.jsonl", "unseen": "unseen.jsonl"}  # held-out split -> file name


def write(params: task.TaskParams, folder: Path) -> list[Path]:
    """Write every held-out split under `folder` (atomically: temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, name in SPLITS.items():
        text = "".join(json.dumps(p, sort_keys=True) + "\n" for p in task.problems(split, params))
        paths.append(write_text(folder / name, text))
    return paths
