"""Measure the miniature VLM pair: checkpoint sizes, build times, multimodal sampling tokens/s, and
vlm-base vs vlm-rl pass@k on the held-out visual benchmark (answer-only and trace-verified).

    .venv/bin/python benchmarks/miniature_visual.py [--experiment miniature] [--n 256] [--limit P]

For each VLM, n samples per problem of `<miniature.out>/benchmark/visual/test.parquet` (its PNG images
through the checkpoint's processor, the prompt through its chat template; T, top_p, max_new_tokens
and batch size from the experiment's `sampling` section), decoded by boundary.sampling.decode with
the image as the prefill's `pixel_values` and each sample graded against the drawn expression by
boundary.miniature.task (answer-only and trace-verified; a truncated sample is counted and graded
wrong). Per-problem counts are cached under `results/<experiment>/miniature-visual-bench/`, named by
the checkpoint's fingerprint. Prints pass@1/64/256 per difficulty and the paired bootstrap
difference vlm-rl - vlm-base (boundary.passk.bootstrap_curves, via benchmarks/miniature.py).
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from PIL import Image

from boundary import config
from boundary.miniature import task, vision
from boundary.sampling.decode import generate, problem_key
from miniature import KS, differences, table  # benchmarks/miniature.py: the text family's tables


def counts(folder: Path, rows: list[dict], n: int, exp, cache: Path) -> pd.DataFrame:
    """Per problem: id, difficulty, n, c_answer, c_trace, truncated (cached in `cache`)."""
    if cache.is_file():
        df = pd.read_csv(cache)
        if list(df["id"]) == [r["id"] for r in rows] and (df["n"] == n).all():
            return df
    model, proc = vision.load(folder)
    tok = proc.tokenizer
    prompts, extra = [], []
    for r in rows:  # exactly what a user of the interface does: chat template, then the processor
        enc = proc(text=vision.prompt_text(proc, r["question"]), images=[Image.open(io.BytesIO(r["image"]))],
                   return_tensors="pt")
        prompts.append(enc["input_ids"][0].tolist())
        extra.append({"pixel_values": enc["pixel_values"]})
    out = {i: {"id": r["id"], "difficulty": r["difficulty"], "n": n, "c_answer": 0, "c_trace": 0, "truncated": 0}
           for i, r in enumerate(rows)}
    s = exp.sampling
    t0, tokens = time.time(), 0
    for c in generate(model, prompts, [problem_key(r["id"]) for r in rows], [range(n)] * len(rows), s.seed,
                      temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                      stop_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id, batch_size=s.batch_size,
                      extra=extra, progress=True):
        text, row, expression = tok.decode(c.tokens), out[c.prompt], rows[c.prompt]["expression"]
        tokens += len(c.tokens) + (c.finish_reason == "stop")
        if c.finish_reason != "stop":
            row["truncated"] += 1
            continue
        row["c_answer"] += task.check_answer(expression, text)
        row["c_trace"] += task.check_trace(expression, text)
    seconds = time.time() - t0
    print(f"   sampled {folder.name}: {len(rows)} x {n} in {seconds:.0f} s ({tokens / seconds:.0f} tokens/s, "
          f"{torch.get_num_threads()} threads)", flush=True)
    df = pd.DataFrame(out.values())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(cache)
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="miniature")
    ap.add_argument("--n", type=int, default=256, help="samples per problem")
    ap.add_argument("--limit", type=int, default=None, help="every (P/limit)-th problem only, spread over d")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: miniature.threads)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    exp = config.load(args.experiment)
    cfg = exp.miniature
    if cfg is None or cfg.vision is None:
        raise SystemExit(f"params/{args.experiment}.yaml has no miniature.vision section: no VLM pair to measure")
    torch.set_num_threads(args.threads or cfg.threads)
    out = exp.resolve(cfg.out)
    rows = pq.read_table(out / "benchmark" / "visual" / "test.parquet").to_pylist()
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    names = ["vlm-base", *[f"vlm-rl-seed{s}" for s in cfg.vision.rl.seeds]]

    print("## checkpoints")
    for name in names:
        folder = out / name
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        seconds = json.loads((folder / "miniature.json").read_text()).get("seconds")
        print(f"  {name:16s} {size / 1e6:6.2f} MB   built in {seconds} s")

    bench = exp.results_dir / "miniature-visual-bench"
    dfs = {}
    for m in names:
        fp = json.loads((out / m / "miniature.json").read_text())["fingerprint"]
        dfs[m] = counts(out / m, rows, args.n, exp, bench / f"{m}-{fp}-p{len(rows)}-n{args.n}.csv")
    ks = tuple(k for k in KS if k <= args.n)
    d = dfs["vlm-base"]["difficulty"].to_numpy()
    groups = {f"d={k}": d == k for k in sorted(set(d))} | {"d>=4": d >= 4, "all": np.ones_like(d, bool)}
    groups = {g: m for g, m in groups.items() if m.any()}
    pd.set_option("display.width", 200)
    for verdict in ("answer", "trace"):
        print(f"\n## visual held-out `test` ({len(rows)} problems), {verdict}-verified pass@k (n={args.n})")
        t = table(dfs, verdict, groups, ks)
        print(t.pivot(index="group", columns="model", values=[f"pass@{k}" for k in ks])
              .reindex(list(groups)).round(3).to_string())
        for rl_name in names[1:]:
            print(f"\n### {rl_name} - vlm-base, {verdict}-verified, paired bootstrap 95% CI (B={args.bootstrap})")
            print(differences(dfs, verdict, groups, "vlm-base", rl_name, args.bootstrap, exp.seed, ks)
                  .to_string(index=False))
    print(f"\ntruncated samples (graded wrong): { {m: int(df['truncated'].sum()) for m, df in dfs.items()} }")


if __name__ == "__main__":
    main()
