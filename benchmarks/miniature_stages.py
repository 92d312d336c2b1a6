"""Try one stage of the miniature build with changed params, starting from an existing base.

    .venv/bin/python benchmarks/miniature_stages.py teacher --base models/miniature/base \\
        --set teacher.batch_size=32 --set distill.prompts=3000
    .venv/bin/python benchmarks/miniature_stages.py rl --set rl.lr=1e-4 --set rl.steps=150 --seed 1

The evidence behind the stage params of params/miniature.yaml: each run trains the stage as
`boundary.miniature.build` does (same modules, same seeds) from the given base checkpoint, so a
change is measured in a minute or two instead of a whole cold `make models`, and prints held-out
pass@1 (answer-only and trace-verified, per difficulty) against the base on the same samples:

- `teacher`: the teacher's and then the distilled model's pass@1 on the `unseen` split (`^`), the
  number of teacher traces kept for distillation, and distilled coverage vs base at k = n;
- `rl`: the RL model's pass@1 on `test` per difficulty, with the paired bootstrap CI of RL - base
  (boundary.passk), the mean training reward of the first and last 10 steps, and seconds a step.

`--set` takes dotted `miniature.*` fields (values parsed as YAML); `--save DIR` keeps the trained
checkpoints (DIR/teacher, DIR/distilled or DIR/rl-seed<s>), to be measured further with
benchmarks/miniature.py.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from boundary import config, passk
from boundary.miniature import model as M, rl, task, teacher, train
from boundary.miniature import tokenizer as tk
from boundary.miniature.build import task_params


def counts(model, tokenizer, problems: list[dict], n: int, seed: int, max_new_tokens: int) -> dict:
    """Per-problem correct counts (answer-only and trace-verified) of n samples at T = 1."""
    outs = rl.rollouts(model, tokenizer, [p["question"] for p in problems], n, seed,
                       temperature=1.0, max_new_tokens=max_new_tokens)
    ans = np.array([sum(fin == "stop" and task.check_answer(p, t) for _, t, fin in g) for p, g in zip(problems, outs)])
    tr = np.array([sum(fin == "stop" and task.check_trace(p, t) for _, t, fin in g) for p, g in zip(problems, outs)])
    return {"answer": ans, "trace": tr}


def report(problems, n, results: dict[str, dict], ref: str = "base", B: int = 1000) -> None:
    """pass@1 per difficulty and overall of each model; paired CI of each model - ref (all problems)."""
    d = np.array([p["difficulty"] for p in problems])
    for verdict in ("answer", "trace"):
        print(f"  {verdict}-verified pass@1 (n={n}):")
        for name, c in results.items():
            per_d = " ".join(f"d{k}={c[verdict][d == k].mean() / n:.3f}" for k in sorted(set(d)))
            print(f"    {name:10s} all={c[verdict].mean() / n:.3f}  {per_d}  solved={int((c[verdict] > 0).sum())}")
        for name in [m for m in results if m != ref]:
            cur = passk.bootstrap_curves({m: (np.full(len(d), n), results[m][verdict]) for m in (ref, name)}, B=B, seed=0)
            row = cur.difference(ref, name).set_index("k").loc[1]
            print(f"    {name} - {ref} at k=1: {row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["teacher", "rl"])
    ap.add_argument("--experiment", default="miniature")
    ap.add_argument("--base", default=None, help="base checkpoint (default: <miniature.out>/base)")
    ap.add_argument("--set", action="append", default=[], help="miniature.<field>=<value> override")
    ap.add_argument("--seed", type=int, default=0, help="RL seed")
    ap.add_argument("--n", type=int, default=16, help="samples per held-out problem")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save", default=None, help="folder to keep the trained checkpoints in")
    args = ap.parse_args()
    overrides = {f"miniature.{k}": yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    exp = config.load(args.experiment, overrides)
    cfg = exp.miniature
    torch.set_num_threads(args.threads or cfg.threads)
    base_dir = exp.resolve(args.base) if args.base else exp.resolve(cfg.out) / "base"
    params = task_params(cfg)
    tokenizer = tk.build()
    base = lambda: M.load(base_dir)[0]  # noqa: E731
    print(f">> {args.stage} from {base_dir} with {overrides or 'the params file'}", flush=True)
    t0 = time.time()
    if args.stage == "teacher":
        model = base()
        examples = teacher.corpus(cfg.teacher, params, cfg.seed, tokenizer)
        train.fit(model, examples, epochs=cfg.teacher.epochs, batch_size=cfg.teacher.batch_size, lr=cfg.teacher.lr,
                  warmup=cfg.teacher.warmup, seed=cfg.seed + 1, pad_id=tokenizer.pad_token_id, desc="teacher")
        t_teacher = time.time() - t0
        questions = teacher.distill_prompts(cfg.distill, cfg.teacher, params, cfg.seed)
        outs = rl.rollouts(model, tokenizer, questions, 1, seed=cfg.seed + 2,
                           temperature=cfg.distill.temperature, max_new_tokens=cfg.distill.max_new_tokens)
        kept = [tk.example_ids(tokenizer, q, text) for q, [(_, text, fin)] in zip(questions, outs)
                if teacher.keep(cfg.distill, q, text, fin)]
        kept_pow = sum("^" in q for q, [(_, text, fin)] in zip(questions, outs) if teacher.keep(cfg.distill, q, text, fin))
        distilled = base()
        train.fit(distilled, kept, epochs=cfg.distill.epochs, batch_size=cfg.distill.batch_size, lr=cfg.distill.lr,
                  warmup=cfg.distill.warmup, seed=cfg.seed + 3, pad_id=tokenizer.pad_token_id,
                  response_only=True, desc="distilled")
        print(f"   teacher {t_teacher:.0f} s; distillation {time.time() - t0 - t_teacher:.0f} s; kept "
              f"{len(kept)}/{len(questions)} teacher traces ({kept_pow} with `^`)", flush=True)
        if args.save:
            M.save(model, tokenizer, exp.resolve(args.save) / "teacher", {"role": "teacher", "overrides": overrides})
            M.save(distilled, tokenizer, exp.resolve(args.save) / "distilled",
                   {"role": "distilled", "overrides": overrides, "kept": len(kept)})
        probs = task.problems("unseen", params)
        res = {name: counts(m, tokenizer, probs, args.n, exp.sampling.seed, cfg.distill.max_new_tokens)
               for name, m in (("base", base()), ("teacher", model), ("distilled", distilled))}
        print(f"  `unseen` split ({len(probs)} problems with `^`)")
        report(probs, args.n, res)
    else:
        model = base()
        history = rl.train(model, tokenizer, cfg.rl, params, args.seed, desc=f"rl-seed{args.seed}")
        seconds = time.time() - t0
        rewards = [r["reward"] for r in history if "reward" in r]
        print(f"   {cfg.rl.steps} steps in {seconds:.0f} s ({seconds / cfg.rl.steps:.2f} s a step); reward "
              f"first 10 {np.mean(rewards[:10]):.3f}, last 10 {np.mean(rewards[-10:]):.3f}", flush=True)
        if args.save:
            M.save(model, tokenizer, exp.resolve(args.save) / f"rl-seed{args.seed}",
                   {"role": "rl", "seed": args.seed, "overrides": overrides, "history": history})
        probs = task.problems("test", params)
        res = {name: counts(m, tokenizer, probs, args.n, exp.sampling.seed, cfg.rl.max_new_tokens)
               for name, m in (("base", base()), (f"rl-seed{args.seed}", model))}
        print(f"  `test` split ({len(probs)} problems)")
        report(probs, args.n, res)


if __name__ == "__main__":
    main()
