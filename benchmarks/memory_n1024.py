"""Peak RSS of sampling n samples of one problem: bounded by the batch, not by n (streaming to the store).

Runs the sampling command (`python -m boundary.sampling.runner`) in a fresh process for each n,
one problem, batch_size 256, shards of 64 samples, and reads the process's own peak resident set
size (getrusage) when it ends. Streaming holds at most one batch of rows and one unwritten shard,
so n=1024 should need about what n=256 does; the samples' total text size is printed alongside,
and, for scale, the peak of one `model.generate(num_return_sequences=n)` call (all n rows at once).

    .venv/bin/python benchmarks/memory_n1024.py [--model DIR] [--ns 256,1024,4096] [--hf-ns 1024]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

import bench_model

ROOT = bench_model.ROOT
# Run the runner's main, then print this process's peak RSS in KiB (Linux ru_maxrss unit).
CHILD = ("import resource, sys, runpy; sys.argv = ['runner'] + sys.argv[1:]; "
         "runpy.run_module('boundary.sampling.runner', run_name='__main__'); "
         "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
MAX_NEW_TOKENS = 128  # per sample
# For scale: model.generate(num_return_sequences=n) on the same prompt holds all n rows (and their
# KV caches) at once; its peak RSS in KiB.
CHILD_HF = ("import resource, sys, json, torch; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            "torch.set_num_threads(1); path, n, q = sys.argv[1], int(sys.argv[2]), sys.argv[3]; "
            "tok = AutoTokenizer.from_pretrained(path); m = AutoModelForCausalLM.from_pretrained(path).eval(); "
            "ids = tok(tok.apply_chat_template([{'role': 'user', 'content': q}], tokenize=False, add_generation_prompt=True), "
            "add_special_tokens=False, return_tensors='pt').input_ids; "
            "torch.manual_seed(0); m.generate(ids, do_sample=True, top_k=0, top_p=0.95, max_new_tokens=%d, "
            "num_return_sequences=n, pad_token_id=tok.pad_token_id); "
            "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)") % MAX_NEW_TOKENS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the benchmark's trained tiny Llama)")
    ap.add_argument("--ns", default="256,1024,4096", help="comma-separated n to measure")
    ap.add_argument("--hf-ns", default="1024", help="n for the model.generate comparison ('' to skip)")
    a = ap.parse_args()
    model = Path(a.model) if a.model else bench_model.build()
    work = Path(tempfile.mkdtemp(prefix="memory-n1024-"))
    problems = work / "problems.jsonl"
    problems.write_text(json.dumps({"id": "q0", "question": bench_model.questions(1)[0]}) + "\n")
    print(f"{'n':>6} {'peak RSS':>10} {'stored text':>12} {'samples':>8} {'seconds':>8}")
    peaks = {}
    for n in map(int, a.ns.split(",")):
        store = work / f"n{n}"
        args = [sys.executable, "-c", CHILD, "--model", str(model), "--problems", str(problems), "--n", str(n),
                "--store", str(store), "--temperature", "1.0", "--top-p", "0.95", "--max-new-tokens", str(MAX_NEW_TOKENS),
                "--batch-size", "256", "--chunk", "64", "--threads", "1"]
        out = subprocess.run(args, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"n={n}: the run failed: {out.stderr[-3000:]}")
        lines = out.stdout.splitlines()
        peak = int(next(x for x in lines if x.startswith("PEAK_RSS_KIB")).split()[1]) / 1024
        stats = json.loads(next(x for x in lines if x.startswith("{")))
        texts = sum(len(t) for p in Path(stats["store"]).glob("shard-*.parquet")
                    for t in pq.read_table(p, columns=["text"]).column("text").to_pylist())
        peaks[n] = peak
        print(f"{n:6d} {peak:8.0f} MiB {texts / 2**20:9.2f} MiB {stats['samples']:8d} {stats['seconds']:8.1f}", flush=True)
    ns = sorted(peaks)
    growth = peaks[ns[-1]] - peaks[ns[0]]
    print(f"peak RSS grows by {growth:.0f} MiB from n={ns[0]} to n={ns[-1]} ({ns[-1] // ns[0]}x the samples)")
    for n in [int(x) for x in a.hf_ns.split(",") if x]:
        out = subprocess.run([sys.executable, "-c", CHILD_HF, str(model), str(n), bench_model.questions(1)[0]], cwd=ROOT,
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"model.generate n={n} failed: {out.stderr[-3000:]}")
        peak = int(next(x for x in out.stdout.splitlines() if x.startswith("PEAK_RSS_KIB")).split()[1]) / 1024
        print(f"for scale, model.generate(num_return_sequences={n}) in one call, no store: peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
