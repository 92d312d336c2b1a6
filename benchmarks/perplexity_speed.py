"""Perplexity scoring throughput: batched (boundary.perplexity) against one pair at a time.

Scores the miniature base model's own samples (n per problem, held-out `test` problems) under
the base model, batched at several batch sizes and one at a time, and checks the results agree.
Needs the miniature checkpoints (`make models EXPERIMENT=miniature`).

Run: .venv/bin/python benchmarks/perplexity_speed.py [--pairs 512]
"""
import argparse
import json
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from boundary import ROOT, perplexity
from boundary.sampling import decode

ap = argparse.ArgumentParser()
ap.add_argument("--model", default=str(ROOT / "models" / "miniature" / "base"), help="checkpoint folder")
ap.add_argument("--pairs", type=int, default=512, help="(prompt, response) pairs scored")
args = ap.parse_args()
torch.set_num_threads(2)

tok = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model).eval()
questions = [json.loads(line)["question"]
             for line in (ROOT / "models" / "miniature" / "benchmark" / "test.jsonl").read_text().splitlines()]
texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
         for q in questions]
prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
per = -(-args.pairs // len(prompts))
done = list(decode.generate(model, prompts, list(range(len(prompts))), [range(per)] * len(prompts), seed=0,
                            max_new_tokens=120, stop_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id))
pairs = [(prompts[c.prompt], c.tokens) for c in done if c.tokens][:args.pairs]
P, R = [p for p, _ in pairs], [r for _, r in pairs]
tokens = sum(map(len, R))
print(f"{len(pairs)} pairs, {tokens} response tokens, mean prompt {np.mean(list(map(len, P))):.1f} tokens")

t = time.perf_counter()
one = [perplexity.perplexity(model, [p], [r], batch_size=1)[0] for p, r in zip(P, R)]
t_one = time.perf_counter() - t
print(f"one at a time: {tokens / t_one:9.0f} tokens/s")
for bs in (16, 64, 256):
    t = time.perf_counter()
    batched = perplexity.perplexity(model, P, R, batch_size=bs, pad_token_id=tok.pad_token_id)
    t_b = time.perf_counter() - t
    err = np.max(np.abs(np.log(batched) - np.log(one)))
    print(f"batch {bs:4d}:     {tokens / t_b:9.0f} tokens/s  ({t_one / t_b:.1f}x)  max |log PPL difference| {err:.1e}")
