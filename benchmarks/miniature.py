"""Measure the miniature family: checkpoint sizes, build times, and pass@k on the held-out problems.

    .venv/bin/python benchmarks/miniature.py [--experiment miniature] [--n 256] [--models ...] [--out DIR]

For each model, n samples per held-out problem (T and max_new_tokens from the experiment's
`sampling` section, through boundary.sampling.decode), each graded twice: answer-only and
trace-verified (boundary.miniature.task). Per-problem correct counts are cached under
`results/<experiment>/miniature-bench/` (one CSV per model and split, written whole), so a rerun
only samples what is missing. Prints, per difficulty d and overall, pass@1 / pass@64 / pass@256
of every model, the paired bootstrap difference RL - base (boundary.passk) at those k, and on the
`unseen` split (the teacher's `^`) base vs distilled (and teacher), with coverage at k = n.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from boundary import config, passk
from boundary.miniature import model as M, task, tokenizer as tk
from boundary.miniature.build import task_params
from boundary.sampling.decode import generate, problem_key

KS = (1, 64, 256)  # the k reported


def cache_of(bench: Path, folder: Path, split: str, n: int) -> Path:
    """The counts file of a checkpoint, named by its build fingerprint (a rebuild never reuses it)."""
    fp = json.loads((folder / "miniature.json").read_text())["fingerprint"]
    return bench / f"{folder.name}-{fp}-{split}-n{n}.csv"


def counts(folder: Path, problems: list[dict], n: int, cfg, cache: Path) -> pd.DataFrame:
    """Per problem: id, difficulty, n, c_answer, c_trace, truncated (cached in `cache`)."""
    if cache.is_file():
        df = pd.read_csv(cache)
        if len(df) == len(problems) and (df["n"] == n).all() and list(df["id"]) == [p["id"] for p in problems]:
            return df
    model, tokenizer = M.load(folder)
    prompts = [tk.prompt_ids(tokenizer, p["question"]) for p in problems]
    rows = {i: {"id": p["id"], "difficulty": p["difficulty"], "n": n, "c_answer": 0, "c_trace": 0, "truncated": 0}
            for i, p in enumerate(problems)}
    t0, tokens = time.time(), 0
    for c in generate(model, prompts, [problem_key(p["id"]) for p in problems], [range(n)] * len(problems),
                      cfg.sampling.seed, temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                      max_new_tokens=cfg.sampling.max_new_tokens, stop_token_ids=[tokenizer.eos_token_id],
                      pad_token_id=tokenizer.pad_token_id, batch_size=cfg.sampling.batch_size, progress=True):
        text, row, p = tokenizer.decode(c.tokens), rows[c.prompt], problems[c.prompt]
        tokens += len(c.tokens) + 1
        if c.finish_reason != "stop":
            row["truncated"] += 1  # counted, and graded wrong: an unfinished trace is no answer
            continue
        row["c_answer"] += task.check_answer(p, text)
        row["c_trace"] += task.check_trace(p, text)
    seconds = time.time() - t0
    print(f"   sampled {folder.name}: {len(problems)} x {n} in {seconds:.0f} s ({tokens / seconds:.0f} tokens/s)",
          flush=True)
    df = pd.DataFrame(rows.values())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(cache)
    return df


def store_counts(exp, label: str, benchmark: str, problems: list[dict], n: int) -> pd.DataFrame:
    """The same per-problem counts from the experiment's sample store and verdicts (`make all`'s
    samples, graded by boundary.verify: answer-only through Math-Verify, trace through the checker)."""
    from boundary import runs

    model = next((m for m in exp.models if m.label == label), None)
    if model is None:
        raise SystemExit(f"params/{exp.name}.yaml has no model {label!r} (its labels: {[m.label for m in exp.models]})")
    v = runs.grade(exp.only(benchmark), progress=False, models=[model], n=n)
    g = v.assign(stop=v["finish_reason"] == "stop").groupby("problem")
    got = pd.DataFrame({"n": g.size(), "c_answer": g["correct"].sum(), "c_trace": g["trace_correct"].sum(),
                        "truncated": g.size() - g["stop"].sum()})
    ids = [f"{benchmark}/{p['id']}" for p in problems]
    missing = [i for i in ids if i not in got.index]
    if missing or (got["n"] < n).any():
        raise SystemExit(f"{label} on {benchmark}: the store lacks samples (e.g. {(missing or list(got.index))[0]}): run make samples")
    got = got.loc[ids].astype(int).reset_index(drop=True)
    return pd.concat([pd.DataFrame({"id": [p["id"] for p in problems],
                                    "difficulty": [p["difficulty"] for p in problems]}), got], axis=1)


def table(dfs: dict[str, pd.DataFrame], verdict: str, groups: dict[str, np.ndarray], ks=KS) -> pd.DataFrame:
    """pass@k per group of problems and model: rows (group, model), columns pass@k."""
    rows = []
    for g, mask in groups.items():
        for m, df in dfs.items():
            n, c = df["n"].to_numpy()[mask], df[f"c_{verdict}"].to_numpy()[mask]
            rows.append({"group": g, "model": m, "problems": int(mask.sum()),
                         **{f"pass@{k}": float(np.mean(passk.pass_at_k(n, c, k))) for k in ks}})
    return pd.DataFrame(rows)


def differences(dfs, verdict, groups, ref, treated, B, seed, ks=KS) -> pd.DataFrame:
    """Paired bootstrap treated - ref at each k, per group: diff [ci_low, ci_high]."""
    rows = []
    for g, mask in groups.items():
        cur = passk.bootstrap_curves({m: (dfs[m]["n"].to_numpy()[mask], dfs[m][f"c_{verdict}"].to_numpy()[mask])
                                      for m in (ref, treated)}, B=B, seed=seed)
        d = cur.difference(ref, treated).set_index("k")
        rows.append({"group": g, **{f"k={k}": f"{d.loc[k, 'diff']:+.3f} [{d.loc[k, 'ci_low']:+.3f}, "
                                             f"{d.loc[k, 'ci_high']:+.3f}]" for k in ks}})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="miniature")
    ap.add_argument("--n", type=int, default=256, help="samples per problem")
    ap.add_argument("--models", nargs="*", default=None, help="checkpoint names (default: base, rl-seed*, distilled)")
    ap.add_argument("--unseen-models", nargs="*", default=None,
                    help="checkpoint names on the `unseen` split (default: base, distilled, teacher)")
    ap.add_argument("--sample-only", action="store_true",
                    help="only sample and cache the counts of --models on --splits (e.g. while others still build)")
    ap.add_argument("--splits", nargs="*", default=["test", "unseen"], help="with --sample-only")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", default=None, help="checkpoint folder (default: the experiment's miniature.out)")
    ap.add_argument("--from-store", action="store_true",
                    help="count the experiment's stored, graded samples (make all) instead of sampling here")
    args = ap.parse_args()
    exp = config.load(args.experiment, {"miniature.out": args.out})
    cfg = exp.miniature
    torch.set_num_threads(cfg.threads)
    out = exp.resolve(cfg.out)
    bench = exp.results_dir / "miniature-bench"
    names = args.models or ["base", *[f"rl-seed{s}" for s in cfg.rl.seeds], "distilled"]
    ks = tuple(k for k in KS if k <= args.n)
    params = task_params(cfg)
    test, unseen = task.problems("test", params), task.problems("unseen", params)
    if args.sample_only:
        for split, probs in (("test", test), ("unseen", unseen)):
            if split in args.splits:
                for m in names:
                    counts(out / m, probs, args.n, exp, cache_of(bench, out / m, split, args.n))
        return

    print("## checkpoints")
    manifest = json.loads((out / "manifest.json").read_text())
    for name in manifest["checkpoints"]:
        folder = out / name
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        seconds = json.loads((folder / "miniature.json").read_text()).get("seconds")
        print(f"  {name:22s} {size / 1e6:6.2f} MB" + (f"   built in {seconds} s" if seconds else ""))

    def get(m: str, split: str, probs: list[dict]) -> pd.DataFrame:
        if args.from_store:
            return store_counts(exp, m, {"test": "miniature", "unseen": "miniature-unseen"}[split], probs, args.n)
        return counts(out / m, probs, args.n, exp, cache_of(bench, out / m, split, args.n))

    dfs = {m: get(m, "test", test) for m in names}
    d = dfs[names[0]]["difficulty"].to_numpy()
    groups = {f"d={k}": d == k for k in sorted(set(d))} | {"d>=4": d >= 4, "all": np.ones_like(d, bool)}
    groups = {g: m for g, m in groups.items() if m.any()}
    pd.set_option("display.width", 200)
    for verdict in ("answer", "trace"):
        print(f"\n## held-out `test`, {verdict}-verified pass@k (n={args.n})")
        t = table(dfs, verdict, groups, ks)
        print(t.pivot(index="group", columns="model", values=[f"pass@{k}" for k in ks])
              .reindex(list(groups)).round(3).to_string())
        for rl_name in [m for m in names if m.startswith("rl")]:
            print(f"\n### {rl_name} - base, {verdict}-verified, paired bootstrap 95% CI (B={args.bootstrap})")
            print(differences(dfs, verdict, groups, "base", rl_name, args.bootstrap, exp.seed, ks).to_string(index=False))
    trunc = {m: int(df["truncated"].sum()) for m, df in dfs.items()}
    print(f"\ntruncated samples (graded wrong) on `test`: {trunc}")

    uns_names = args.unseen_models or ["base", "distilled", "teacher"]
    udfs = {m: get(m, "unseen", unseen) for m in uns_names}
    ud = udfs["base"]["difficulty"].to_numpy()
    ugroups = {f"d={k}": ud == k for k in sorted(set(ud))} | {"all": np.ones_like(ud, bool)}
    for verdict in ("answer", "trace"):
        print(f"\n## held-out `unseen` (`^`, never in the base's corpus), {verdict}-verified pass@k (n={args.n})")
        t = table(udfs, verdict, ugroups, ks)
        print(t.pivot(index="group", columns="model", values=[f"pass@{k}" for k in ks])
              .reindex(list(ugroups)).round(3).to_string())
        solved = {m: df[f"c_{verdict}"].to_numpy() > 0 for m, df in udfs.items()}
        cov = passk.coverage([p["id"] for p in unseen], solved["base"], solved["distilled"], "base", "distilled")
        print(f"coverage at k={args.n}: " + ", ".join(f"{r.category}: {r.count}" for r in cov.itertuples()))


if __name__ == "__main__":
    main()
