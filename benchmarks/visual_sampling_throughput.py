"""Multimodal sampling throughput: the transformers backend on a miniature vision-language model.

Samples n answers per problem of the miniature visual benchmark (images through the processor,
each image prefilled once per prompt by boundary.sampling.decode) into a temporary store, at a few
batch sizes, and reports completion tokens per second (wall time, prefill and image encoding
included). The samples must be identical across batch sizes (checked and printed).
Needs the checkpoints: `make models EXPERIMENT=smoke` (or miniature).

Run: .venv/bin/python benchmarks/visual_sampling_throughput.py [--family models/smoke] [--n 16]
"""
import argparse
import json
import tempfile
import time

import torch

from boundary import ROOT, tasks
from boundary.config import Sampling
from boundary.sampling import runner
from boundary.sampling.backends import TransformersBackend
from boundary.store import Store, make_key

ap = argparse.ArgumentParser()
ap.add_argument("--family", default="models/smoke", help="miniature family folder (vlm-base, benchmark/visual)")
ap.add_argument("--model", default="vlm-base", help="checkpoint inside the family")
ap.add_argument("--n", type=int, default=16, help="samples per problem")
ap.add_argument("--problems", type=int, default=24, help="visual problems sampled")
ap.add_argument("--max-new-tokens", type=int, default=48, help="completion cap")
ap.add_argument("--batch-sizes", default="64,256", help="decode batch sizes compared")
ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
args = ap.parse_args()
torch.set_num_threads(args.threads)

family = ROOT / args.family
probs = tasks.load("miniature-visual", source=family / "benchmark" / "visual", limit=args.problems)
backend = TransformersBackend(family / args.model, device="cpu")
prompts = [(p.id, tasks.render("chat-image", p, backend.processor), p.image) for p in probs]
results, texts = [], []
for bs in [int(b) for b in args.batch_sizes.split(",")]:
    params = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0, batch_size=bs)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp, make_key(family / args.model, "chat-image", backend.name, params))
        t0 = time.perf_counter()
        stats = runner.run(backend, store, prompts, args.n, params)
        seconds = time.perf_counter() - t0
        df = store.read()
    texts.append(df["text"].tolist())
    results.append({"batch_size": bs, "problems": len(probs), "samples": stats.samples,
                    "completion_tokens": stats.completion_tokens, "seconds": round(seconds, 2),
                    "tokens_per_s": round(stats.completion_tokens / seconds, 1),
                    "prompt_tokens": int(df["prompt_tokens"].iloc[0]),
                    "stopped": float((df["finish_reason"] == "stop").mean())})
    print(json.dumps(results[-1]))
print(json.dumps({"same_samples_across_batch_sizes": all(t == texts[0] for t in texts)}))
