"""kill -9 at 10 random moments of a sampling run, resume each: complete, no duplicates, identical.

A reference run of the sampling command (`python -m boundary.sampling.runner`) fills a store
uninterrupted. Then, 10 times: a fresh run is SIGKILLed at a random moment of its sampling phase
(uniform between one second before its first shard and the reference run's end), then resumed by
the same command to completion. Each trial passes when the store holds every (problem, index)
exactly once, no shard holds a duplicate (checked on the raw shards, before the read-time dedup),
and the samples equal the reference run's (pandas equality of every column).

    .venv/bin/python benchmarks/resume_kill9.py [--model DIR] [--trials 10] [--problems 12] [--n 48]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import bench_model

ROOT = bench_model.ROOT


def command(model: Path, problems: Path, store: Path, n: int) -> list[str]:
    """The sampling command of every run of this benchmark (one thread: the machine is shared)."""
    return [sys.executable, "-m", "boundary.sampling.runner", "--model", str(model), "--problems", str(problems),
            "--n", str(n), "--store", str(store), "--temperature", "1.0", "--top-p", "0.95",
            "--max-new-tokens", "128", "--batch-size", "32", "--chunk", "16", "--threads", "1"]


def shards(store: Path) -> list[Path]:
    return sorted(store.glob("*/shard-*.parquet"))


def raw(store: Path) -> pd.DataFrame:
    """Every row of every shard, duplicates included."""
    return pd.concat([pq.read_table(p).to_pandas() for p in shards(store)], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the benchmark's trained tiny Llama)")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--problems", type=int, default=12)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    a = ap.parse_args()
    model = Path(a.model) if a.model else bench_model.build()
    work = Path(tempfile.mkdtemp(prefix="resume-kill9-"))
    problems = work / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n"
                                for i, q in enumerate(bench_model.questions(a.problems))))
    env = {**os.environ, "TQDM_DISABLE": "1"}

    t0 = time.time()
    ref_store = work / "reference"
    proc = subprocess.Popen(command(model, problems, ref_store, a.n), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if first is None and shards(ref_store):
            first = time.time() - t0
        time.sleep(0.02)
    if proc.returncode:
        sys.exit(f"reference run failed: {proc.stderr.read().decode()[-3000:]}")
    total = time.time() - t0
    reference = raw(ref_store).sort_values(["problem_id", "sample"]).reset_index(drop=True)
    want = a.problems * a.n
    print(f"reference run: {want} samples ({a.problems} problems x n={a.n}) in {total:.1f} s; first shard at {first:.1f} s")

    rng = random.Random(a.seed)
    passed = 0
    for trial in range(a.trials):
        store = work / f"trial-{trial}"
        at = rng.uniform(max(0.0, first - 1.0), total)
        proc = subprocess.Popen(command(model, problems, store, a.n), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(max(0.0, at - 0.0))
        finished_first = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = len(raw(store)) if shards(store) else 0
        tmp_left = len(list(store.glob("*/.tmp-*")))
        resumed = subprocess.run(command(model, problems, store, a.n), cwd=ROOT, env=env, capture_output=True, text=True)
        rows = raw(store)
        complete = len(rows.drop_duplicates(["problem_id", "sample"])) == want
        no_dups = not rows.duplicated(["problem_id", "sample"]).any()
        identical = rows.sort_values(["problem_id", "sample"]).reset_index(drop=True).equals(reference)
        ok = resumed.returncode == 0 and complete and no_dups and identical
        passed += ok
        print(f"trial {trial}: killed at {at:5.1f} s{' (had already finished)' if finished_first else ''} with "
              f"{before:4d}/{want} samples stored, {tmp_left} temp file(s) left; resumed: complete={complete} "
              f"no_duplicates={no_dups} identical={identical}" + ("" if resumed.returncode == 0 else
                                                                 f" RESUME FAILED: {resumed.stderr[-500:]}"), flush=True)
    shutil.rmtree(work)
    print(f"{passed}/{a.trials} trials complete, without duplicates, identical to the uninterrupted run")
    sys.exit(0 if passed == a.trials else 1)


if __name__ == "__main__":
    main()
