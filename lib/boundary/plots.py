"""Figures in one house style (seaborn), saved under `figures/<experiment>/`.

Notebooks hold no `def`, so every figure is built by a function here that takes tables
the analysis modules return and gives back a matplotlib Figure; `save` writes it, shows it in the
notebook's cell (JupyterLab, papermill's executed copy, the HTML report) and closes it, so figures
never pile up in memory. The cell shows the PNG that was written, byte for byte, whatever
matplotlib backend the kernel runs (headless runs use Agg); nbval compares only its text repr.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from boundary import config, files
from boundary.config import Experiment

PALETTE = {"base": "#4C72B0", "rl": "#C44E52", "distilled": "#55A868", "instruct": "#8172B2",
           "teacher": "#937860"}  # fixed colours per model role, the same in every figure


def style() -> None:
    """The house style: seaborn whitegrid, readable fonts, PNG at 150 dpi."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"})


def colour(model: str, i: int = 0) -> str:
    """The model's colour: its role's when the label starts with one, else seaborn's i-th."""
    for role, c in PALETTE.items():
        if model.lower().startswith(role):
            return c
    return sns.color_palette()[i % 10]


def save(fig: plt.Figure, name: str, cfg: Experiment) -> str:
    """Write `figures/<experiment>/<name>.png`, show it in the running notebook (if any), close the
    figure, return the path (from the root)."""
    cfg.figures_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.figures_dir / f"{name}.png"
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), fsync=False)  # never half a figure
    plt.close(fig)
    show(path)
    return str(path.relative_to(config.outputs_root()))


def show(path) -> None:
    """Display a saved PNG in the cell that is running, when an IPython kernel runs it (a script
    or a test shows nothing)."""
    from IPython import get_ipython

    if get_ipython() is not None:
        from IPython.display import Image, display

        display(Image(filename=str(path)))


def passk_curves(table: pd.DataFrame, title: str = "", crossover: int | None = None) -> plt.Figure:
    """pass@k against k on a log2 axis with CI bands, one line per model (paper Fig. 2 style)."""
    style()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (model, t) in enumerate(table.groupby("model", sort=False)):
        ax.plot(t["k"], t["pass_at_k"], color=colour(model, i), label=model, lw=1.8)
        ax.fill_between(t["k"], t["ci_low"], t["ci_high"], color=colour(model, i), alpha=0.2, lw=0)
    if crossover:
        ax.axvline(crossover, color="grey", ls="--", lw=1, label=f"crossover k={crossover}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k", ylabel="pass@k", title=title, ylim=(0, 1.02))
    ax.legend(loc="lower right")
    return fig


def difference_curve(diff: pd.DataFrame, label: str) -> plt.Figure:
    """A paired difference of pass@k (e.g. RL - base) with its pointwise CI band and, where `diff`
    has them (`Curves.difference`), the simultaneous band over all k (lighter, wider); zero marked."""
    style()
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.plot(diff["k"], diff["diff"], color="black", lw=1.5)
    if {"band_low", "band_high"} <= set(diff.columns):
        ax.fill_between(diff["k"], diff["band_low"], diff["band_high"], color="grey", alpha=0.15, lw=0,
                        label="simultaneous band")
    ax.fill_between(diff["k"], diff["ci_low"], diff["ci_high"], color="grey", alpha=0.35, lw=0, label="pointwise")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k", ylabel=label)
    ax.legend(loc="best", fontsize="small")
    return fig


def passk_projection(table: pd.DataFrame, n: int, title: str = "", crossover: float | None = None) -> plt.Figure:
    """pass@k observed and extrapolated past n with bootstrap bands (`Projection.table()`).

    Solid up to the sampled n, dashed past it; pass@infinity (k = inf) is drawn as a point at the
    right edge, labelled infinity. A vertical line marks n, another the predicted crossover.
    """
    style()
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = table[np.isfinite(table["k"])]
    last = float(finite["k"].max())
    edge = last * 4  # where k = inf is drawn
    for i, (model, t) in enumerate(table.groupby("model", sort=False)):
        col = colour(model, i)
        f = t[np.isfinite(t["k"])]
        seen, past = f[f["k"] <= n], f[f["k"] >= n]
        ax.plot(seen["k"], seen["pass_at_k"], color=col, lw=1.8, label=model)
        ax.plot(past["k"], past["pass_at_k"], color=col, lw=1.8, ls="--")
        ax.fill_between(f["k"], f["ci_low"], f["ci_high"], color=col, alpha=0.2, lw=0)
        inf = t[~np.isfinite(t["k"])]
        if len(inf):
            r = inf.iloc[0]
            # The interval as a line of its own: a percentile interval need not contain the estimate.
            x = edge * 1.15 ** i  # models side by side at infinity
            ax.vlines(x, r["ci_low"], r["ci_high"], color=col, lw=1.5)
            ax.plot([x], [r["pass_at_k"]], color=col, marker="o", ms=4)
    ax.axvline(n, color="grey", lw=1, ls=":", label=f"sampled n={n}")
    if crossover is not None and np.isfinite(crossover):
        ax.axvline(crossover, color="grey", ls="--", lw=1, label=f"predicted crossover k={crossover:g}")
    ax.set_xscale("log", base=2)
    ticks = [k for k in ax.get_xticks() if 1 <= k <= last]
    ax.set_xticks(ticks + [edge], [f"{k:g}" for k in ticks] + ["∞"])
    ax.set_xlim(0.8, edge * 1.6)
    ax.set(xlabel="k", ylabel="pass@k", title=title)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def cover_curves(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """cover@tau against tau, one line per model (`passk.cover_table`: index tau, a column per model)."""
    style()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, model in enumerate(table.columns):
        ax.plot(table.index, table[model], color=colour(model, i), lw=1.8, marker="o", ms=3, label=model)
    ax.set(xlabel="tau (success rate at least)", ylabel="share of problems", title=title, ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return fig


def coverage_bars(cov: pd.DataFrame, title: str = "") -> plt.Figure:
    """Counts of problems per coverage category (both / only A / only B / neither)."""
    style()
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.barplot(data=cov, x="category", y="count", ax=ax, color="#4C72B0")
    for p, v in zip(ax.patches, cov["count"]):
        ax.annotate(str(v), (p.get_x() + p.get_width() / 2, p.get_height()), ha="center", va="bottom")
    ax.set(xlabel="", ylabel="problems", title=title)
    return fig


def accuracy_histograms(hist: pd.DataFrame) -> plt.Figure:
    """Problems per accuracy bin, one bar group per model (paper Fig. 5 style).

    `hist` has columns bin, model, problems (long form of `passk.accuracy_histogram`).
    """
    style()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    models = list(dict.fromkeys(hist["model"]))
    sns.barplot(data=hist, x="bin", y="problems", hue="model", ax=ax,
                palette=[colour(m, i) for i, m in enumerate(models)])
    ax.set(xlabel="per-problem accuracy c/n", ylabel="problems")
    ax.tick_params(axis="x", rotation=45)
    return fig



def rl_training(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """RL training curves: training reward and held-out pass@1 over steps, one line per seed.

    `history` has columns seed, step, reward, heldout_pass1 and heldout_pass1_trace (the rows of
    `boundary.miniature.rl.train`, one run per seed); reward is dotted, held-out pass@1 solid and
    its trace-verified version dashed.
    """
    style()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (seed, t) in enumerate(history.groupby("seed", sort=True)):
        c = sns.color_palette("rocket", max(2, history["seed"].nunique()) + 1)[i]
        r = t.dropna(subset=["reward"])
        ax.plot(r["step"], r["reward"], color=c, lw=1, ls=":", label=f"seed {seed}: training reward")
        e = t.dropna(subset=["heldout_pass1"])
        ax.plot(e["step"], e["heldout_pass1"], color=c, lw=1.8, marker="o", ms=3,
                label=f"seed {seed}: held-out pass@1")
        ax.plot(e["step"], e["heldout_pass1_trace"], color=c, lw=1.2, ls="--",
                label=f"seed {seed}: held-out pass@1 (trace-verified)")
    top = float(history[["reward", "heldout_pass1"]].max().max())
    ax.set(xlabel="RL step", ylabel="accuracy", title=title, ylim=(0, min(1.0, 1.3 * top + 0.02)))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never on a curve
    return fig


def rl_run(cfg: Experiment, vision: bool = False) -> str:
    """Notebooks 04 and 05: draw and save the miniature's RL training history (`rl_training`, saved as
    rl_training / vlm_rl_training) and return its path, or say why there is none (RL trained elsewhere)."""
    history = cfg.rl_history(vision=vision)
    if history is None:
        return f"{cfg.name}: its {'vision-language ' if vision else ''}RL models were trained elsewhere; no training history here"
    rl = cfg.miniature.vision.rl if vision else cfg.miniature.rl
    what = "the miniature VLM" if vision else "the miniature base"
    return save(rl_training(pd.read_csv(history), title=f"RLVR of {what} ({rl.algorithm})"),
                "vlm_rl_training" if vision else "rl_training", cfg)


def response_lengths(samples: pd.DataFrame) -> plt.Figure:
    """Distribution of completion tokens per model and benchmark, truncated samples marked."""
    style()
    benches = list(dict.fromkeys(samples["benchmark"]))
    fig, axes = plt.subplots(1, len(benches), figsize=(5.5 * len(benches), 3.5), squeeze=False)
    models = list(dict.fromkeys(samples["model"]))
    for ax, bench in zip(axes[0], benches):
        part = samples[samples["benchmark"] == bench]
        sns.histplot(data=part, x="completion_tokens", hue="model", hue_order=models, element="step", fill=False,
                     stat="density", common_norm=False, ax=ax, palette=[colour(m, i) for i, m in enumerate(models)])
        ax.set(xlabel="completion tokens", title=bench)
    return fig


def verdict_statuses(table: pd.DataFrame) -> plt.Figure:
    """Share of samples per verdict status, one stacked bar per (model, benchmark).

    `table` is wide: index (model, benchmark), one column per status, values shares summing to 1.
    """
    style()
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(table)))
    labels = [f"{m} / {b}" for m, b in table.index]
    left = pd.Series(0.0, index=table.index)
    colours = {"correct": "#55A868", "wrong": "#C44E52", "no_answer": "#8C8C8C", "timeout": "#DD8452",
               "error": "#8172B2"}
    for status in table.columns:
        ax.barh(labels, table[status], left=left, color=colours.get(status), label=status)
        left = left + table[status]
    ax.set(xlabel="share of samples", xlim=(0, 1))
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize="small")
    return fig


def passk_grid(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """pass@k curves with CI bands, one panel per benchmark (the paper's Fig. 2 grid)."""
    style()
    benches = list(dict.fromkeys(table["benchmark"]))
    cols = min(3, len(benches))
    rows = -(-len(benches) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, bench in zip(axes.flat, benches):
        part = table[table["benchmark"] == bench]
        for i, (model, t) in enumerate(part.groupby("model", sort=False)):
            ax.plot(t["k"], t["pass_at_k"], color=colour(model, i), label=model, lw=1.6)
            ax.fill_between(t["k"], t["ci_low"], t["ci_high"], color=colour(model, i), alpha=0.2, lw=0)
        ax.set_xscale("log", base=2)
        ax.set(title=bench, xlabel="k", ylabel="pass@k")
    for ax in list(axes.flat)[len(benches):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def perplexity_boxes(scores: pd.DataFrame, title: str = "") -> plt.Figure:
    """Perplexity of each condition's responses per problem group (paper Fig. 6): box plots on a
    log axis, one box per (group, condition), whiskers at 1.5 IQR and outliers hidden."""
    style()
    groups = list(dict.fromkeys(scores["group"]))
    conditions = list(dict.fromkeys(scores["condition"]))
    fig, ax = plt.subplots(figsize=(max(5.5, 1.4 * len(groups) + 2), 4))
    sns.boxplot(data=scores, x="group", y="ppl", hue="condition", order=groups, hue_order=conditions,
                showfliers=False, ax=ax, palette=sns.color_palette("Set2", len(conditions)))
    ax.set_yscale("log")
    ax.set(xlabel="problem group", ylabel="perplexity", title=title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def perplexity_trend(trend: pd.DataFrame, title: str = "") -> plt.Figure:
    """Median PPL_base of RL responses over RL training steps, one line per run, CI as error bars
    (`trend`: columns run, step, median, ci_low, ci_high; step 0 is the base's own responses)."""
    style()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (run, t) in enumerate(trend.sort_values("step").groupby("run", sort=False)):
        c = sns.color_palette("rocket", max(2, trend["run"].nunique()) + 1)[i]
        ax.errorbar(t["step"], t["median"], yerr=[t["median"] - t["ci_low"], t["ci_high"] - t["median"]],
                    color=c, marker="o", ms=4, lw=1.6, capsize=3, label=run)
    ax.set(xlabel="RL step (0: the base model's own responses)", ylabel="median PPL under base", title=title)
    if len(trend):  # an experiment without RL checkpoints has no trend to label
        ax.legend(fontsize=8)
    return fig


def perplexity_distributions(scored: pd.DataFrame, scorer: str, title: str = "") -> plt.Figure:
    """Distribution of PPL_scorer(Y | x) per source of the responses Y (paper Fig. 6 style).

    `scored` has columns `responses` (whose samples Y are: a model label) and `ppl`; log-scaled x.
    """
    style()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sources = list(dict.fromkeys(scored["responses"]))
    sns.histplot(data=scored, x="ppl", hue="responses", hue_order=sources, element="step", fill=False, stat="density",
                 common_norm=False, log_scale=True, ax=ax, palette=[colour(m, i) for i, m in enumerate(sources)])
    ax.set(xlabel=f"perplexity under {scorer}", title=title)
    return fig
