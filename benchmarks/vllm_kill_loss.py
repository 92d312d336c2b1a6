"""Samples lost when a vllm sampling run is killed at a random moment: before and after streaming.

A worker process samples `--problems` x `--n` into a store through the runner (shards every
`--chunk` samples or `--flush-s` seconds) with the vllm backend, in one of two modes:
- `before`: the engine's samples reach the runner only when all of them are done, as
  `LLM.generate` over one chunk of requests did before streaming (its default chunk, 4,096
  requests, exceeds this run, so one call);
- `after`: each sample reaches the runner as the engine finishes it (the vllm backend now).
The worker logs every sample the engine has finished (a line, flushed) in both modes. The parent
first times one whole run per mode, then `--trials` times SIGKILLs a fresh worker at a uniform
random moment of that sampling time and counts lost = samples the engine had finished - samples
in the store. (A kill loses queued, unfinished work in both modes; that is regenerated on resume
and is not counted.)

The model is `--model`, else vllm_throughput's tiny random Llama.

    PYTHONPATH=lib VLLM_ENABLE_V1_MULTIPROCESSING=0 /work/main/.venv-vllm/bin/python benchmarks/vllm_kill_loss.py \
        [--model DIR] [--problems 16] [--n 32] [--trials 3] [--chunk 16] [--flush-s 30]
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "lib"))


def params(a):
    from boundary.config import Sampling

    return Sampling(backend="vllm", temperature=0.6, top_p=0.95, max_new_tokens=a.max_new_tokens, seed=0, stop=[])


def store_of(a, folder: Path):
    from boundary.store import Store, make_key

    return Store(a.store, make_key(str(folder), "chat", "vllm", params(a)))


def worker(a) -> None:
    """Sample into `a.store`, logging each sample the engine finishes to `a.log`."""
    from vllm_throughput import KV_BYTES, checkpoint, questions

    from boundary.sampling import runner
    from boundary import tasks
    from boundary.sampling.backends import VLLMBackend

    folder = checkpoint(a.model)
    log = open(a.log, "a", buffering=1)
    backend = VLLMBackend(folder, dtype="float32", max_model_len=512, max_num_seqs=64, kv_cache_bytes=KV_BYTES)
    streaming = backend.sample

    def logged(requests, p):
        held = []
        for s in streaming(requests, p):
            log.write(f"{s.problem_id}#{s.sample}\n")
            if a.mode == "after":
                yield s
            else:
                held.append(s)
        yield from held  # before streaming: everything at once, when the last sample is done

    backend.sample = logged
    problems = [(f"q{i}", tasks.render("chat-question", tasks.Problem.bare(f"q{i}", q), backend.tokenizer))
                for i, q in enumerate(questions(a.problems))]
    log.write("started\n")
    runner.run(backend, store_of(a, folder), problems, a.n, params(a), chunk=a.chunk, flush_s=a.flush_s)
    log.write("finished\n")
    backend.close()


def launch(a, mode: str, store: Path, log: Path) -> subprocess.Popen:
    argv = [sys.executable, __file__, "--worker", "--mode", mode, "--store", str(store), "--log", str(log),
            "--problems", str(a.problems), "--n", str(a.n), "--chunk", str(a.chunk), "--flush-s", str(a.flush_s),
            "--max-new-tokens", str(a.max_new_tokens)] + (["--model", a.model] if a.model else [])
    return subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(log: Path, word: str, proc: subprocess.Popen) -> float:
    """The moment the worker's log holds the line `word` (polled every 10 ms)."""
    while not (log.exists() and word in log.read_text().splitlines()):
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} before {word!r}")
        time.sleep(0.01)
    return time.time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["before", "after"], help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: a tiny random Llama)")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--trials", type=int, default=3, help="kills per mode")
    ap.add_argument("--chunk", type=int, default=16, help="runner: samples per shard")
    ap.add_argument("--flush-s", type=float, default=30.0, help="runner: seconds before a shorter shard")
    ap.add_argument("--seed", type=int, default=0, help="the kill moments")
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    from vllm_throughput import checkpoint

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers' engines: one thread each (see vllm_throughput)
    folder = checkpoint(a.model)
    rng = random.Random(a.seed)
    out = {"problems": a.problems, "n": a.n, "chunk": a.chunk, "flush_s": a.flush_s, "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("before", "after"):
            store, log = Path(tmp) / f"{mode}-ref", Path(tmp) / f"{mode}-ref.log"
            proc = launch(a, mode, store, log)
            t0 = wait_for(log, "started", proc)
            total = wait_for(log, "finished", proc) - t0  # the sampling phase (engine start-up and close excluded)
            proc.wait()
            trials = []
            for k in range(a.trials):
                store, log = Path(tmp) / f"{mode}-{k}", Path(tmp) / f"{mode}-{k}.log"
                proc = launch(a, mode, store, log)
                wait_for(log, "started", proc)
                at = rng.uniform(0, total)
                time.sleep(at)
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and its engine process
                proc.wait()
                finished = sum(1 for line in log.read_text().splitlines() if "#" in line)
                a.store = store
                stored = len(store_of(a, folder).read(["problem_id", "sample"]))
                trials.append({"kill_at_s": round(at, 2), "finished": finished, "stored": stored,
                               "lost": finished - stored})
            out[mode] = {"sampling_s": round(total, 2), "trials": trials,
                         "mean_lost": sum(t["lost"] for t in trials) / len(trials),
                         "max_lost": max(t["lost"] for t in trials)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
