"""The RL study's analyses (notebook 07): algorithms, training length, KL, rollouts, temperature and entropy.

Every comparison is paired against the base on the same problems (boundary.passk.bootstrap_curves: the
same resampled problems for both models), at k = 1 and at the largest k = n, with the sampling-efficiency
gap ΔSE = base pass@n - model pass@1 (the paper's Table 2). The study's models are the checkpoints that
`miniature.rl_study` trains (boundary.config.study_models names them `<variant>-seed<s>[-step<t>]`).

Entropy (the paper's Fig. 17): the mean per-token entropy of a model's own outputs at temperature T,
H = -sum_v p_T(v) log p_T(v) averaged over the tokens it sampled at T, on the first `entropy_problems`
problems with `entropy_samples` samples each (fresh rollouts through the training sampler,
boundary.miniature.rl.rollouts, seeded). `matched_temperature` raises the RL model's T until its entropy
reaches the base's at the experiment's temperature, by linear interpolation on the `temperatures` grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from boundary import counts, passk, plots, runs, tasks
from boundary.config import Experiment, Model


def study_models(cfg: Experiment) -> pd.DataFrame:
    """One row per study checkpoint: label, variant, seed, step, final (the variant's last step), and the
    settings that make it (algorithm, kl, reset_every, samples, steps)."""
    mini = cfg.miniature
    rows = []
    for v in mini.rl_study.variants:
        rl = mini.study_rl(v)
        for seed in rl.seeds:
            for step in [*rl.checkpoints, rl.steps]:
                label = f"{v.label}-seed{seed}" + ("" if step == rl.steps else f"-step{step}")
                rows.append({"label": label, "variant": v.label, "seed": seed, "step": step, "final": step == rl.steps,
                             "algorithm": rl.algorithm, "kl": rl.kl, "reset_every": rl.reset_every,
                             "rollouts": rl.samples, "steps": rl.steps})
    return pd.DataFrame(rows)


def base_label(cfg: Experiment) -> str:
    """The label of the experiment's base model (the study's reference)."""
    return next(m.label for m in cfg.models if m.role == "base" and m.modality == "text")


def compare(table: pd.DataFrame, base: str, models: list[str], benchmark: str, B: int, ci: float,
            seed: int) -> pd.DataFrame:
    """Per model: pass@1 and pass@K (K = n) with their paired differences to the base and intervals, and ΔSE."""
    rows = []
    for m in models:
        _, pc = passk.paired(table, [base, m], benchmark=benchmark)
        cur = passk.bootstrap_curves(pc, B=B, ci=ci, seed=seed)
        d = cur.difference(base, m)
        se = passk.sampling_efficiency_gap(cur, base, m)
        K = int(cur.k[-1])
        rows.append({"model": m, "pass@1": cur.mean[m][0], "diff@1": d["diff"].iloc[0],
                     "diff@1 low": d["ci_low"].iloc[0], "diff@1 high": d["ci_high"].iloc[0],
                     f"pass@{K}": cur.mean[m][-1], f"diff@{K}": d["diff"].iloc[-1],
                     f"diff@{K} low": d["ci_low"].iloc[-1], f"diff@{K} high": d["ci_high"].iloc[-1],
                     "ΔSE": se["delta_se"], "ΔSE low": se["ci_low"], "ΔSE high": se["ci_high"],
                     "base pass@1": cur.mean[base][0], f"base pass@{K}": cur.mean[base][-1]})
    return pd.DataFrame(rows)


def summary(cfg: Experiment, table: pd.DataFrame, benchmark: str, B: int, ci: float, seed: int) -> pd.DataFrame:
    """`compare` for every study checkpoint on `benchmark`, joined with its variant, seed and step."""
    models = study_models(cfg)
    out = compare(table, base_label(cfg), list(models["label"]), benchmark, B, ci, seed)
    return models.merge(out, left_on="label", right_on="model").drop(columns="model")


def by_variant(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of each variant's final checkpoints (the table's rows), with the seeds' range."""
    final = rows[rows["final"]]
    value = [c for c in final.columns if c.startswith(("pass@", "diff@", "ΔSE")) and not c.endswith(("low", "high"))]
    g = final.groupby("variant", sort=False)
    out = g[value].mean()
    out.insert(0, "seeds", g.size())
    for c in value:
        if c.startswith(("diff@", "ΔSE")):
            out[f"{c} seeds"] = g[c].agg(lambda s: f"[{s.min():+.3f}, {s.max():+.3f}]")
    return out


def length_curve(rows: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """pass@1 and pass@K over training steps of `variants` (step 0 = the base), one row per (variant, seed, step)."""
    K = [c for c in rows.columns if c.startswith("pass@") and c != "pass@1"][0]
    part = rows[rows["variant"].isin(variants)][["variant", "seed", "step", "pass@1", K]]
    start = part.drop_duplicates(["variant", "seed"]).assign(step=0, **{"pass@1": rows["base pass@1"].iloc[0],
                                                                      K: rows[f"base {K}"].iloc[0]})
    return pd.concat([start, part], ignore_index=True).sort_values(["variant", "seed", "step"], ignore_index=True)


def interval_plot(rows: pd.DataFrame, columns: list[str], title: str = "") -> plt.Figure:
    """Each model's paired differences to the base (point and interval), one panel per column (diff@1, diff@K, ΔSE)."""
    plots.style()
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 0.35 * len(rows) + 1.2), sharey=True)
    for ax, c in zip(np.atleast_1d(axes), columns):
        y = np.arange(len(rows))
        ax.errorbar(rows[c], y, xerr=[rows[c] - rows[f"{c} low"], rows[f"{c} high"] - rows[c]], fmt="o", ms=3,
                    color=sns.color_palette("rocket", 3)[1], lw=1)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set(yticks=y, yticklabels=rows["label"], xlabel=f"{c} vs base")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def length_plot(curve: pd.DataFrame, title: str = "") -> plt.Figure:
    """pass@1 and pass@K over RL steps, one line per variant and seed (the paper's 150/300/450 steps)."""
    plots.style()
    K = [c for c in curve.columns if c.startswith("pass@") and c != "pass@1"][0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, c in zip(axes, ["pass@1", K]):
        sns.lineplot(curve, x="step", y=c, hue="variant", style="seed", marker="o", ax=ax)
        ax.set(xlabel="RL step", ylabel=c)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def entropy(model, tokenizer, questions: list[str], samples: int, temperature: float, max_new_tokens: int,
            seed: int) -> float:
    """Mean per-token entropy of `model`'s own samples at `temperature` (the stop token included)."""
    from boundary.miniature import rl
    outs = rl.rollouts(model, tokenizer, questions, samples, seed, temperature=temperature,
                       max_new_tokens=max_new_tokens)
    prompts, comps = [], []
    for q, group in zip(questions, outs):
        for toks, _, fin in group:
            prompts.append(rl.text_encoder(tokenizer)(q)[0])
            comps.append(toks + ([tokenizer.eos_token_id] if fin == "stop" else []))
    width = max(1, max(map(len, comps)))
    _, ent = rl.token_logprobs(model, prompts, comps, width, tokenizer.pad_token_id, temperature=temperature)
    return float(ent.sum() / rl.completion_mask(comps, width).sum())


def entropies(cfg: Experiment, labels: list[str], benchmark: str) -> pd.DataFrame:
    """Entropy of each model at every temperature of `rl_study.temperatures`: model, temperature, entropy."""
    from boundary.miniature import model as M
    study = cfg.miniature.rl_study
    bench = next(b for b in cfg.benchmarks if b.name == benchmark)
    questions = [p.question for p in runs.problems(bench)[: study.entropy_problems]]
    rows = []
    for m in [mm for mm in cfg.models if mm.label in labels]:
        model, tok = M.load(cfg.resolve(m.path))
        for t in study.temperatures:
            rows.append({"model": m.label, "temperature": t,
                         "entropy": entropy(model, tok, questions, study.entropy_samples, t,
                                            cfg.sampling.max_new_tokens, seed=cfg.sampling.seed)})
    return pd.DataFrame(rows)


def matched_temperature(ent: pd.DataFrame, model: str, target: float) -> float:
    """The temperature at which `model`'s entropy reaches `target`, interpolated linearly on the grid and
    rounded to 0.05 (a stable store key); the grid's largest temperature if it never does."""
    e = ent[ent["model"] == model].sort_values("temperature")
    t, h = e["temperature"].to_numpy(), e["entropy"].to_numpy()
    if h[0] >= target:
        return float(t[0])
    above = np.flatnonzero(h >= target)
    if above.size == 0:
        return float(t[-1])
    i = above[0]
    x = t[i - 1] + (target - h[i - 1]) * (t[i] - t[i - 1]) / (h[i] - h[i - 1])
    return float(np.round(x / 0.05) * 0.05)


@dataclass(frozen=True)
class EntropyMatch:
    """The temperature at which an RL model's output entropy reaches the base's at T = 1 (paper Fig. 17)."""

    model: str  # the RL model heated
    base: str  # whose entropy at T = 1 is the target
    target: float  # the base's per-token entropy at T = 1
    temperature: float  # where `model` reaches it (interpolated, 0.05 steps), or the grid's top if it never does
    reached: bool  # whether `model` reaches the target on the grid at all

    def __str__(self) -> str:
        how = (f"reached at T = {self.temperature:g}" if self.reached
               else f"not reached on the grid: sampled at its top, T = {self.temperature:g}")
        return f"{self.model}: the base's entropy at T = 1, {self.target:.3f}, {how}"


def entropy_match(ent: pd.DataFrame, base: str, model: str) -> EntropyMatch:
    """`matched_temperature` of `model` against `base`'s entropy at T = 1, in `entropies`' table."""
    at_one = ent[(ent["model"] == base) & (ent["temperature"] == 1.0)]
    if at_one.empty:
        raise ValueError(f"no entropy of {base!r} at T = 1: the study's temperature grid must hold 1.0")
    target = float(at_one["entropy"].iloc[0])
    return EntropyMatch(model=model, base=base, target=target, temperature=matched_temperature(ent, model, target),
                        reached=bool(ent.loc[ent["model"] == model, "entropy"].max() >= target))


def at_temperature(cfg: Experiment, model: str, temperature: float) -> tuple[Experiment, Model]:
    """The experiment sampling at `temperature` (its own store key), and the model relabelled `<model>@T<t>`."""
    m = next(mm for mm in cfg.models if mm.label == model)
    hot = cfg.model_copy(update={"sampling": cfg.sampling.model_copy(update={"temperature": temperature})})
    return hot, m.model_copy(update={"label": f"{model}@T{temperature:g}"})


def hot_counts(cfg: Experiment, model: str, temperature: float, verdict: str = "answer") -> pd.DataFrame:
    """Sample (resumably) and grade `model` at `temperature` on the experiment's benchmarks; its counts table."""
    hot, m = at_temperature(cfg, model, temperature)
    runs.sample(hot, progress=False, models=[m])
    return counts.from_verdicts(runs.grade(hot, progress=False, models=[m]), verdict)


def checkable(cfg: Experiment) -> list[str]:
    """The benchmarks whose traces can be checked step by step (the miniature's)."""
    return [b.name for b in cfg.benchmarks if tasks.trace_checker(b.name) is not None]


def sections(cfg: Experiment) -> dict[str, list[str]]:
    """The study's variants by the question they answer: "algorithms" (variants that set `algorithm`),
    "length" (variants with intermediate checkpoints), "settings" (the others: KL, rollouts per prompt)."""
    out = {"algorithms": [], "length": [], "settings": []}
    for v in cfg.miniature.rl_study.variants:
        key = "algorithms" if "algorithm" in v.model_fields_set else \
            "length" if cfg.miniature.study_rl(v).checkpoints else "settings"
        out[key].append(v.label)
    return out


def entropy_plot(ent: pd.DataFrame, target: float, matched: float, title: str = "") -> plt.Figure:
    """Entropy of each model's own samples over temperature, the base's at T = 1 as a line, the matched T marked."""
    plots.style()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    sns.lineplot(ent, x="temperature", y="entropy", hue="model", marker="o", ax=ax)
    ax.axhline(target, color="grey", lw=0.8, ls="--", label="base at T = 1")
    ax.axvline(matched, color="grey", lw=0.8, ls=":", label=f"matched T = {matched:g}")
    ax.set(xlabel="sampling temperature", ylabel="mean per-token entropy (nats)", title=title)
    ax.legend(fontsize=7)
    return fig


def _standing(low: float, high: float) -> str:
    return "above" if low > 0 else "below" if high < 0 else "indistinguishable from"


def finding(rows: pd.DataFrame, parts: dict[str, list[str]], hot: pd.DataFrame | None = None) -> str:
    """The study's finding in sentences, read from the paired intervals (whichever way they fall)."""
    K = [c for c in rows.columns if c.startswith("pass@") and c != "pass@1"][0]
    dK = f"diff@{K[5:]}"
    said = []
    algos = rows[rows["final"] & rows["variant"].isin(parts["algorithms"])]
    if len(algos):
        n = len(algos)
        up1 = int((algos["diff@1 low"] > 0).sum())
        down1 = int((algos["diff@1 high"] < 0).sum())
        upK, downK = int((algos[f"{dK} low"] > 0).sum()), int((algos[f"{dK} high"] < 0).sum())
        said.append(f"Algorithms: of {n} trained models ({algos['variant'].nunique()} algorithms), pass@1 is above the "
                    f"base's in {up1} and below in {down1}; at k = {K[5:]} {upK} are above the base (a wider boundary), "
                    f"{downK} below (a narrower one) and {n - upK - downK} indistinguishable. ΔSE ranges from "
                    f"{algos['ΔSE'].min():+.3f} to {algos['ΔSE'].max():+.3f} (0 would mean one RL sample matches "
                    f"the base's {K[5:]}).")
    for v in parts["length"]:
        part = rows[rows["variant"] == v].sort_values(["seed", "step"])
        last = part[part["final"]]
        trend = ", ".join(f"step {int(r['step'])}: {r[dK]:+.3f} [{r[f'{dK} low']:+.3f}, {r[f'{dK} high']:+.3f}]"
                          for _, r in part[part["seed"] == part["seed"].min()].iterrows())
        widened = int((last[f"{dK} low"] > 0).sum())
        said.append(f"Training length ({v}, pass@{K[5:]} minus the base, seed {part['seed'].min()}): {trend}. "
                    f"At the last step {widened} of {len(last)} seeds is above the base at k = {K[5:]}: the boundary "
                    f"{'widened' if widened else 'did not widen'} here.")
    for v in parts["settings"]:
        r = rows[rows["final"] & (rows["variant"] == v)]
        said.append(f"{v}: diff@1 {r['diff@1'].mean():+.3f}, {dK} {r[dK].mean():+.3f} (mean of {len(r)} seeds; "
                    f"pass@{K[5:]} {_standing(r[f'{dK} low'].max(), r[f'{dK} high'].min())} the base's in every seed's "
                    f"interval)" if len(r) else f"{v}: not trained")
    if hot is not None and len(hot) == 2:
        cold, warm = hot.iloc[0], hot.iloc[1]
        said.append(f"Entropy: at the base's entropy ({warm['model']}), the RL model's pass@{K[5:]} minus the base's is "
                    f"{warm[dK]:+.3f} [{warm[f'{dK} low']:+.3f}, {warm[f'{dK} high']:+.3f}] (at T = 1: {cold[dK]:+.3f}); "
                    f"pass@1 {warm['diff@1']:+.3f}. "
                    + ("Raising its temperature closes the gap at large k: the base's lead there is its entropy."
                       if cold[f"{dK} high"] < 0 and warm[f"{dK} high"] >= 0 else
                       "Raising its temperature does not close the gap at large k." if warm[f"{dK} high"] < 0 else
                       "At T = 1 there was no resolved gap at large k to explain."))
    return "\n".join(said)
