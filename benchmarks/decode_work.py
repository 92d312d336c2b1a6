"""Where the decode engine's time goes: rows computed per token (ours vs model.generate) and a profile.

Wall-clock speed-ups depend on the machine and its load; the work each sampler does does not.
For each configuration (n samples per problem : few-shot examples) this counts, on the same
problems and rows as benchmarks/sampling_throughput.py:

- ours: forward calls (steps) and rows computed over them (slots: one per distinct sample state,
  idle slots included), per generated token;
- model.generate: its rows computed, n per step until the longest sample of the problem ends
  (finished rows keep decoding), per generated token, taken from our samples' lengths;

then profiles one run of ours (cProfile, the functions with the most own time), so the share of
matrix products, attention, KV copies and Python bookkeeping can be read off.

    .venv/bin/python benchmarks/decode_work.py [--model DIR] [--configs 64:0,256:0,64:3] [--threads 1]
"""
import argparse
import cProfile
import io
import pstats
from collections import defaultdict
from pathlib import Path

import torch

from boundary.sampling import lean
from boundary.sampling.decode import generate, problem_key
from sampling_throughput import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the benchmark's trained tiny Llama)")
    ap.add_argument("--configs", default="64:0,256:0,64:3", help="comma-separated n:shots")
    ap.add_argument("--problems", type=int, default=4, help="problems sampled")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--profile", default="256:0", help="the n:shots configuration profiled")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    path, tok, model, kind, qs = load(a)
    if lean.unsupported(model):
        raise SystemExit(f"{path}: the lean step does not cover this model ({lean.unsupported(model)})")

    work = {"steps": 0, "slots": 0}  # forward calls and rows computed
    step = lean.LeanStep.__call__

    def counting(self, tokens, *args):
        work["steps"] += 1
        work["slots"] += len(tokens)
        return step(self, tokens, *args)

    lean.LeanStep.__call__ = counting

    def run(n: int, shots: int) -> list:
        prompts = [tok(tok.apply_chat_template(kind.messages(q, shots), tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"] for q in qs]
        return list(generate(model, prompts, [problem_key(q) for q in qs], [range(n)] * len(qs), seed=0,
                             temperature=1.0, top_p=0.95, max_new_tokens=a.max_new_tokens,
                             stop_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id, batch_size=n))

    print(f"model {path}, {a.problems} problems ({kind.__name__.lower()}), T=1.0, top_p=0.95")
    print(f"{'n':>4} {'shots':>5} | {'tokens':>7} {'steps':>6} {'rows/token ours':>15} {'rows/token generate':>19} {'ratio':>6}")
    for cfg in a.configs.split(","):
        n, shots = map(int, cfg.split(":"))
        work.update(steps=0, slots=0)
        out = run(n, shots)
        tokens = sum(len(c.tokens) + (c.finish_reason == "stop") for c in out)
        longest = defaultdict(int)
        for c in out:
            longest[c.prompt] = max(longest[c.prompt], len(c.tokens) + (c.finish_reason == "stop"))
        hf_rows = sum(n * m for m in longest.values())  # generate: n rows per step until its longest sample ends
        print(f"{n:4d} {shots:5d} | {tokens:7d} {work['steps']:6d} {work['slots'] / tokens:15.2f} "
              f"{hf_rows / tokens:19.2f} {hf_rows / work['slots']:5.1f}x", flush=True)

    lean.LeanStep.__call__ = step
    n, shots = map(int, a.profile.split(":"))
    run(n, shots)  # warm-up
    prof = cProfile.Profile()
    prof.runcall(run, n, shots)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats("tottime")
    total = stats.total_tt
    print(f"\nprofile of ours, n={n} shots={shots}: {total:.2f} s; functions by own time")
    for (file, line, name), (_, calls, own, _, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
        print(f"  {own:6.3f} s {100 * own / total:5.1f}%  {calls:6d} calls  {name} ({Path(file).name}:{line})")


if __name__ == "__main__":
    main()
