"""An experiment's runs: every (model, benchmark) pair, sampled into its store and graded.

The glue of the data flow  params -> tasks -> sampling -> store -> verify -> counts. Which pairs
exist follows one rule (`pairs`): text models are sampled on text (math, code) benchmarks, vision-
language models (`models[].modality: vision`) on visual ones; one experiment may hold both families.
- `sample(cfg)` fills one sample store per (model, benchmark) with `n` samples per problem,
  generating only what is missing (resumable, top-up-able; boundary.store);
- `grade(cfg)` writes the verdicts of each store beside it (`verdicts.parquet` in its folder),
  re-grading only what changed (boundary.verify.regrade), and adds the trace-verified verdict for
  benchmarks that have a trace checker (the miniature), and the experiment's verdict table
  `results/<experiment>/verdicts.parquet`, from which `boundary.counts.load` counts (the stages
  flow one way: nothing after grading calls back into it).
Nothing is recomputed that is already stored.
With RAY_ADDRESS set, `sample` and `grade` do the same work on a Ray cluster (boundary.cluster).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from boundary import tasks
from boundary.config import Benchmark, Experiment, Model
from boundary.sampling.stops import StopRule, store_key
from boundary.files import atomic_write
from boundary.store import Store

VERDICTS = "verdicts.parquet"  # the verdict table's file name, in each store's folder


@dataclass(frozen=True)
class Run:
    """One (model, benchmark) pair of an experiment, and where its samples live."""

    model: Model
    benchmark: Benchmark
    store: Store
    stop: StopRule | None = None  # what ends its samples (boundary.sampling.stops), part of the store's key

    @property
    def verdicts_path(self):
        """The verdicts of this run's samples, beside its shards."""
        return self.store.dir / VERDICTS


def problems(bench: Benchmark) -> list[tasks.Problem]:
    """The benchmark's problems as params select them (source, limit, multiple choice)."""
    return tasks.load_benchmark(bench)


def modality(bench: Benchmark) -> str:
    """The model modality a benchmark needs: "vision" for visual benchmarks, "text" otherwise."""
    return "vision" if tasks.kind(bench.name) == "visual" else "text"


def pairs(cfg: Experiment, models: list[Model] | None = None) -> list[tuple[Model, Benchmark]]:
    """The (model, benchmark) pairs of the experiment, in params order: each model with every benchmark of
    its modality. A benchmark no model can answer, or a model with no benchmark, is an error naming both
    sides (a visual benchmark asked of text models only, a vision-language model among text benchmarks).
    `models` (other models than the experiment's, see `runs`) are paired by modality, unchecked."""
    found = [(m, b) for m in (cfg.models if models is None else models) for b in cfg.benchmarks
             if m.modality == modality(b)]
    if models is not None:
        return found
    describe = {"text": "text (math, code)", "vision": "visual"}
    for b in cfg.benchmarks:
        if not any(bb is b for _, bb in found):
            have = ", ".join(f"{m.label} ({m.modality})" for m in cfg.models)
            raise ValueError(f"params/{cfg.name}.yaml: benchmark {b.name!r} is {describe[modality(b)]}, but no model "
                             f"has modality {modality(b)!r} (models: {have}); set models[].modality or drop the benchmark")
    for m in cfg.models:
        if not any(mm is m for mm, _ in found):
            have = ", ".join(f"{b.name} ({describe[modality(b)]})" for b in cfg.benchmarks)
            raise ValueError(f"params/{cfg.name}.yaml: model {m.label!r} has modality {m.modality!r}, but no benchmark "
                             f"is {describe[m.modality]} (benchmarks: {have})")
    return found


def runs(cfg: Experiment, models: list[Model] | None = None, n: int | None = None) -> Iterator[Run]:
    """Every (model, benchmark) pair of the experiment (`pairs`), in params order.

    models: other models than the experiment's (e.g. RL checkpoints for the perplexity study),
    sampled with the experiment's settings; n: samples per problem instead of each benchmark's
    (a store holds sample indices, so a smaller n reads a prefix of a larger run).
    """
    for family in ("text", "vision"):  # a base/RL pair shares its template, in each family
        tasks.same_for_pair([m for m in cfg.models if m.role in ("base", "rl") and m.modality == family])
    keys = {}  # (label, benchmark kind) -> (rule, store key): a local model folder is hashed once, not per benchmark
    for model, bench in pairs(cfg, models):
        kind = tasks.kind(bench.name)
        slot = (model.label, kind, bench.name if kind == "code" else None)  # plain code stops depend on the benchmark
        if slot not in keys:
            keys[slot] = store_key(model.path, model.template, cfg.sampling.backend, cfg.sampling, kind,
                                   model.revision, bench.name, model.max_model_len)
        rule, key = keys[slot]
        bench = bench if n is None else bench.model_copy(update={"n": n})
        yield Run(model, bench, Store(cfg.results_dir / "samples" / bench.name, key), rule)


def sample(cfg: Experiment, progress: bool = True, models: list[Model] | None = None,
           n: int | None = None) -> pd.DataFrame:
    """Fill every store of the experiment (or of `models`, `n`: see `runs`); one row of statistics
    per (model, benchmark).

    One model at a time: a model's backend is closed (vLLM: its engine's process has exited) and
    dropped before the next model loads, also when sampling fails.
    The rows are also appended to `results/<experiment>/sampling_log.csv`, the throughput record
    (a store knows what it holds, not how fast it was made). With RAY_ADDRESS set, the cluster
    samples (boundary.cluster.sample: one row per work unit, its `worker` named; empty here).
    """
    if os.environ.get("RAY_ADDRESS"):
        from boundary import cluster

        return cluster.sample(cfg, progress=progress, models=models, n=n)
    from boundary.sampling import backends, runner

    rows, backend, label = [], None, None
    try:
        for run in runs(cfg, models, n):
            m = run.model
            if m.label != label:
                if backend is not None:  # one model in memory at a time: the previous one is gone first
                    close(backend)
                    backend = None  # the last reference to a transformers model
                    collect()
                t = time.time()
                backend = backends.load(cfg.sampling.backend, m.path, m.revision, cfg.sampling,
                                        max_model_len=m.max_model_len)
                label = m.label
                load_s = time.time() - t
            probs = problems(run.benchmark)
            renderer = getattr(backend, "processor", None) or backend.tokenizer  # a VLM's chat template is its processor's
            prompts = [(p.id, tasks.render(m.template, p, renderer), p.image) for p in probs]
            stats = runner.run(backend, run.store, prompts, run.benchmark.n, cfg.sampling, progress=progress,
                               rule=run.stop)
            rows.append({"model": m.label, "benchmark": run.benchmark.name, "problems": len(probs),
                         "n": run.benchmark.n, "new_samples": stats.samples, "new_tokens": stats.completion_tokens,
                         "seconds": round(stats.seconds, 2), "load_seconds": round(load_s, 2),
                         "backend": backend.name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "worker": ""})
            load_s = 0.0  # the model was loaded once, for its first benchmark
    finally:
        if backend is not None:
            close(backend)
            backend = None
            collect()
    return log_sampling(cfg, pd.DataFrame(rows))


def log_sampling(cfg: Experiment, log: pd.DataFrame) -> pd.DataFrame:
    """Append rows to `results/<experiment>/sampling_log.csv`; a log written before a column existed
    (`worker`) is rewritten once with it, empty, so every row keeps its columns. Returns `log`.
    Runs sharing the log (two drivers on one cluster) each append in one write: the file is created
    with its header by whichever comes first (O_EXCL), and rows are appended whole (O_APPEND)."""
    path = cfg.results_dir / "sampling_log.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if log.empty:
        return log
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        header = True
    except FileExistsError:
        old = pd.read_csv(path, nrows=0).columns
        if list(old) != list(log.columns):
            merged = pd.concat([pd.read_csv(path, keep_default_na=False), log], ignore_index=True)
            atomic_write(path, lambda tmp: merged.to_csv(tmp, index=False))
            return log
        fd, header = os.open(path, os.O_WRONLY | os.O_APPEND), False
    with os.fdopen(fd, "w") as f:
        f.write(log.to_csv(index=False, header=header))
    return log


def close(backend) -> None:
    """End a sampling backend's engine where it has one of its own (vLLM's process: `close`); a
    transformers model is freed when the caller drops its last reference, then `collect`."""
    if hasattr(backend, "close"):
        backend.close()


def collect() -> None:
    """Free what dropped models left: Python's cycles, and the CUDA allocator's cache, so the next
    model finds the memory."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def throughput(cfg: Experiment) -> pd.DataFrame:
    """Tokens per second per model and backend, over every logged sampling call that generated something
    (on a Ray cluster each row is one unit of one worker: tokens per second per worker)."""
    path = cfg.results_dir / "sampling_log.csv"
    if not path.exists():
        return pd.DataFrame(columns=["model", "backend", "samples", "tokens", "seconds", "tokens_per_s"])
    log = pd.read_csv(path)
    log = log[log["new_samples"] > 0]
    out = log.groupby(["model", "backend"], sort=False).agg(samples=("new_samples", "sum"), tokens=("new_tokens", "sum"),
                                                            seconds=("seconds", "sum")).reset_index()
    out["tokens_per_s"] = out["tokens"] / out["seconds"]
    return out


def samples(cfg: Experiment, columns: list[str] | None = None, models: list[Model] | None = None,
            n: int | None = None) -> pd.DataFrame:
    """Every stored sample of the experiment (or of `models`, `n`: see `runs`), with `model` and
    `benchmark` columns, indices < n."""
    frames = []
    for run in runs(cfg, models, n):
        df = run.store.read(columns)
        df = df[df["sample"] < run.benchmark.n]  # a store topped up beyond n serves smaller n too
        frames.append(df.assign(model=run.model.label, benchmark=run.benchmark.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def verdicts(cfg: Experiment, models: list[Model] | None = None, n: int | None = None) -> pd.DataFrame:
    """The cached verdicts of every store (or of `models`, `n`: see `runs`), indices < n, with model and
    benchmark columns, as `grade` left them beside the stores: reading, never grading (an error naming
    the store and the step to run where a store has not been graded)."""
    frames = []
    for run in runs(cfg, models, n):
        if not run.verdicts_path.exists():
            raise RuntimeError(f"{run.model.label} on {run.benchmark.name}: no verdicts at {run.verdicts_path}: "
                               f"grade first (`make verify EXPERIMENT={cfg.name}`, notebook 02)")
        v = pd.read_parquet(run.verdicts_path)
        frames.append(v[v["sample"] < run.benchmark.n].assign(model=run.model.label, benchmark=run.benchmark.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sampling_summary(stored: pd.DataFrame) -> pd.DataFrame:
    """Per (model, benchmark) of `samples(cfg, [problem_id, sample, finish_reason, completion_tokens])`:
    problems, samples, the truncated share (finish_reason "length") and completion lengths (notebook 01)."""
    return stored.groupby(["model", "benchmark"], sort=False).agg(
        problems=("problem_id", "nunique"), samples=("sample", "size"),
        truncated=("finish_reason", lambda s: (s == "length").mean()),
        mean_tokens=("completion_tokens", "mean"), median_tokens=("completion_tokens", "median"),
        max_tokens=("completion_tokens", "max"))


def audit(cfg: Experiment, verdicts: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """Notebook 02's audit of the verifier: every distinct (problem, extracted answer) that Math-Verify
    graded, Math-Verify against a normalized string match (boundary.verify.regrade.audit); returns how
    many pairs were audited and their disagreements."""
    from boundary.verify import regrade

    stored = samples(cfg, ["problem_id", "sample", "text"]).rename(columns={"problem_id": "problem"})
    graded = verdicts[verdicts["verifier"].str.contains("math")].merge(stored, on=["model", "benchmark", "problem", "sample"])
    golds = pd.concat([gold_table(problems(b)) for b in cfg.benchmarks]).drop_duplicates("problem").set_index("problem")["gold"]
    distinct = graded.drop_duplicates(["problem", "extracted"])
    return len(distinct), regrade.audit(list(distinct["text"]), [str(golds[p]) for p in distinct["problem"]])


def gold_table(probs: list[tasks.Problem]) -> pd.DataFrame:
    """What boundary.verify.regrade needs of each problem: gold (or tests), answer type, options."""
    return pd.DataFrame({
        "problem": [p.id for p in probs],
        "gold": [p.tests if p.answer_type == "code" else p.gold for p in probs],
        "answer_type": [p.answer_type for p in probs],
        "choices": [p.choices for p in probs],
        "precision": [p.meta.get("precision") for p in probs],
    })


def grade(cfg: Experiment, progress: bool = True, models: list[Model] | None = None,
          n: int | None = None) -> pd.DataFrame:
    """Grade every store (cached beside it; `models`, `n`: see `runs`); all verdicts with model and
    benchmark columns. Grading the experiment itself (no `models`, no `n`) also writes its verdict
    table, `results/<experiment>/verdicts.parquet`: what every later stage reads (`counts.load`).

    Every sample goes through `boundary.verify.grade` (extract, then compare) with the template
    it was sampled under. Adds `trace_correct` where the benchmark has a trace checker (NA elsewhere), and the sample's
    `finish_reason`, so truncation is reported beside the verdict rather than hidden in a zero.
    """
    from boundary.verify import regrade

    grader = None
    if os.environ.get("RAY_ADDRESS"):  # the samples a cache lacks are graded on the cluster (boundary.cluster)
        from boundary import cluster

        grader = cluster.grade_many
    frames = []
    for run in runs(cfg, models, n):
        probs = problems(run.benchmark)
        stored = run.store.read(["problem_id", "sample", "text", "finish_reason"]).rename(columns={"problem_id": "problem"})
        stored = stored[stored["sample"] < run.benchmark.n]
        if stored.empty:
            raise RuntimeError(f"no samples for {run.model.label} on {run.benchmark.name}: run the sampling step first")
        v = regrade.grade_samples(stored, probs, run.model.template, cache=run.verdicts_path, progress=progress,
                                   grader=grader)
        v = v.merge(stored[["problem", "sample", "finish_reason"]], on=["problem", "sample"])
        checker = tasks.trace_checker(run.benchmark.name)
        if checker is None:
            v["trace_correct"] = pd.NA
        else:
            by_id = {p.id: p for p in probs}
            text = stored.set_index(["problem", "sample"])["text"]
            v["trace_correct"] = [bool(c) and checker(by_id[p], text[(p, s)])
                                  for p, s, c in zip(v["problem"], v["sample"], v["correct"])]
        frames.append(v.assign(model=run.model.label, benchmark=run.benchmark.name))
    verdicts = pd.concat(frames, ignore_index=True)
    if models is None and n is None:
        atomic_write(cfg.verdicts_file, lambda tmp: verdicts.to_parquet(tmp, index=False))
    return verdicts
