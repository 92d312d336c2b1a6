"""Sampling and grading on a Ray cluster: the same stores and verdicts, made by many workers.

`boundary.runs.sample` and `runs.grade` come here when `RAY_ADDRESS` is set (the Makefile, a
notebook run by papermill and a Python session all pass it through the environment); without it
nothing here is imported, nor is Ray.

- **Work units** (`plan`): a (model, benchmark) pair's problems cut, in benchmark order, into
  shards of about `RAY_UNIT_SAMPLES` samples (default `UNIT_SAMPLES`: minutes of a GPU's work at the
  paper's lengths, one problem at least). Each (problem, sample index) belongs to exactly one unit.
- **Workers** (`Sampler`, a Ray actor per worker): each loads a model once (vLLM on
  `tensor_parallel_size` GPUs, the transformers backend on one CPU thread or one GPU) and runs units
  with the single-machine runner (`boundary.sampling.runner.run`) straight into the store, which
  lies on a filesystem every node shares. The driver hands a free worker a unit of the model it
  already holds before any other, so a model is loaded on as few workers as its units need.
- **Exactly once**: the driver leases each unit in its store before handing it out (`Store.lease`:
  created atomically with O_EXCL, renewed by the driver every third of `LEASE_TTL_S`, lapsing after
  it when the driver is gone). A worker samples only what its unit still lacks (`store.missing`),
  so a unit lost with a killed worker goes to another worker, which keeps the lost one's shards and
  samples the rest; a second run on the same store skips units another live run holds (or that
  share a problem with one, should the two cut the store differently), waits for them, and takes
  over those whose lease lapses. A shard is written whole or not at all.
- **Grading** (`grade_many`): the samples a verdict cache lacks are cut into chunks graded by Ray
  tasks (one CPU each) with `boundary.verify.grade_many`, merged by the caller into the same cache
  (`boundary.verify.regrade`), so verdicts are those of a local run.
- **Checks before any work** (`connect`, `check`): Ray missing, an address where nothing answers, a
  cluster without the GPUs that `workers` x `tensor_parallel_size` need (or a CPU per worker), a
  results folder that a node cannot read; each is an error that names it.

Why Ray Core (tasks and actors) and not Ray Data with its vLLM processor: the unit of work here is
not a row but a resumable (model, benchmark, problem shard) whose results must land in this
project's store, once, under leases that outlive a run; Ray Data would stream rows through its own
batches and write its own outputs, and could not resume from or top up a store, nor serve the
transformers backend and its bit-exact CPU decode. Ray Core gives exactly the pieces needed
(long-lived workers that keep a model loaded, scheduling by GPU count, detection of lost workers),
and the runner stays the one that runs on a laptop.

RAY_ADDRESS=local: `python -m boundary.cluster local -- 'COMMAND'` (what `make` runs) starts one local
cluster, runs COMMAND (a shell command line) with RAY_ADDRESS set to it, and stops the cluster when
COMMAND ends; a Python process that finds RAY_ADDRESS=local starts its own for its lifetime.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from boundary import quiet
from boundary.config import Benchmark, Experiment, Model, Sampling
from boundary.sampling.stops import StopRule
from boundary.store import LEASE_TTL_S, Store

ADDRESS_ENV = "RAY_ADDRESS"  # environment variable: the cluster's address, "local", or unset (no Ray)
WORKERS_ENV = "RAY_WORKERS"  # environment variable: sampling workers (default: one per tensor_parallel_size GPUs, else 2)
UNIT_ENV = "RAY_UNIT_SAMPLES"  # environment variable: samples per work unit (default UNIT_SAMPLES)
UNIT_SAMPLES = 1024  # samples per unit: at the paper's ~2k tokens a sample, a few minutes of one GPU's vLLM
CPU_WORKERS = 2  # workers on a cluster without GPUs, unless RAY_WORKERS says otherwise
RETRIES = 3  # times one unit is handed out again after its worker died, before the run fails
POLL_S = 2.0  # how often the driver looks again at units another run holds
GRADE_CHUNK = 256  # samples per grading task
LOCAL_OBJECT_STORE = 256 * 2**20  # a local cluster's object store (bytes): units and verdicts are small
# The environment every worker gets from the driver: the outputs root above all (BOUNDARY_OUTPUTS),
# replica mode, the hub's and engines' settings, threads, and what makes runs reproducible.
FORWARD = ("BOUNDARY_", "HF_", "TRANSFORMERS_", "VLLM_", "TQDM_", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
           "PYTHONHASHSEED", "PYTHONPATH", "PYTHONUTF8", "TZ", UNIT_ENV)


def address() -> str | None:
    """The cluster's address from the environment, None when the run is not on a cluster."""
    return os.environ.get(ADDRESS_ENV) or None


def forwarded_env() -> dict[str, str]:
    """The driver's environment variables that workers must share (FORWARD)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARD) and k != ADDRESS_ENV}


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise RuntimeError(f"{ADDRESS_ENV}={address()!r} asks for a Ray cluster, but Ray is not installed in "
                           f"{sys.executable}: pip install -e '.[cluster]' (make setup installs it when "
                           f"{ADDRESS_ENV} is set)") from e
    return ray


def _reachable(addr: str) -> None:
    """Fail at once, naming the address, when nothing answers there (ray.init would retry for a minute)."""
    hostport = addr.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{ADDRESS_ENV}={addr!r}: expected host:port (a running head's GCS address), "
                         f"ray://host:port, 'auto' or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConnectionError(f"{ADDRESS_ENV}={addr!r}: nothing answers at {host}:{port} ({e}); start the head "
                              f"with `ray start --head` there, or fix the address") from e


def connect(workers: int | None = None):
    """The `ray` module, connected to the cluster of RAY_ADDRESS (started here for "local"); every
    worker gets `forwarded_env()`. Raises, naming the culprit, when Ray is missing or the address
    answers nothing."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    addr = address()
    env = {"env_vars": forwarded_env()}
    if addr == "local":  # a cluster for this process only
        ray.init(num_cpus=workers or int(os.environ.get(WORKERS_ENV) or CPU_WORKERS), include_dashboard=False,
                 object_store_memory=LOCAL_OBJECT_STORE, runtime_env=env, logging_level="WARNING",
                 log_to_driver=False)
        return ray
    if addr not in (None, "auto"):
        _reachable(addr)
    ray.init(address=addr, runtime_env=env, logging_level="WARNING", log_to_driver=False)
    return ray


def _read_probe(path: str) -> str | None:
    """What a node reads at `path` (None when it cannot): the shared-folder check's probe."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def check(ray, cfg: Experiment, workers: int) -> None:
    """Refuse a cluster that cannot run the experiment, before any work: too few GPUs for `workers`
    vLLM engines of `tensor_parallel_size` GPUs, or a results folder some node cannot read."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < workers:  # each worker takes one CPU: more would wait forever for one
        raise RuntimeError(f"{ADDRESS_ENV}={address()!r}: the cluster has {cpus} CPUs, {workers} workers need one each: "
                           f"set {WORKERS_ENV} to at most {cpus}")
    if cfg.sampling.backend == "vllm":
        need = workers * cfg.sampling.tensor_parallel_size
        if gpus < need:
            raise RuntimeError(f"{ADDRESS_ENV}={address()!r}: the cluster has {gpus} GPUs; {workers} vLLM workers of "
                               f"sampling.tensor_parallel_size={cfg.sampling.tensor_parallel_size} "
                               f"(params/{cfg.name}.yaml) need {need}: set {WORKERS_ENV} or add GPUs")
    folder = cfg.results_dir
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = folder / f".cluster-probe-{token[:8]}"
    probe.write_text(token)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n["Alive"]]
        read = ray.remote(num_cpus=0)(_read_probe)
        seen = ray.get([read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                        .remote(str(probe)) for n in nodes])
    finally:
        probe.unlink(missing_ok=True)
    blind = [f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})" for n, s in zip(nodes, seen) if s != token]
    if blind:
        raise RuntimeError(f"the results folder {folder} is not shared with every node: {', '.join(blind)} cannot "
                           f"read what the driver wrote there; put results/ (or BOUNDARY_OUTPUTS) on a filesystem "
                           f"every node mounts at the same path")


def default_workers(ray, sampling: Sampling) -> int:
    """RAY_WORKERS, else one worker per tensor_parallel_size GPUs of the cluster, else CPU_WORKERS."""
    if os.environ.get(WORKERS_ENV):
        n = int(os.environ[WORKERS_ENV])
        if n < 1:
            raise ValueError(f"{WORKERS_ENV}={n}: at least one worker")
        return n
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return max(1, gpus // sampling.tensor_parallel_size) if gpus else CPU_WORKERS


# ---------------------------------------------------------------- work units
@dataclass(frozen=True)
class Unit:
    """One work unit: some problems of one (model, benchmark) store, sampled by one worker at a time."""

    model: Model  # whose samples
    benchmark: Benchmark  # where the problems come from (its n: samples per problem)
    store: Store  # where they go
    stop: StopRule | None  # what ends a sample (the store key records it)
    problem_ids: tuple[str, ...]  # the unit's problems, in benchmark order
    wanted: int  # samples the store lacked when the unit was planned

    @property
    def name(self) -> str:
        """The lease name: the same problems of the same store are the same unit, in any run."""
        digest = hashlib.sha256("\0".join(self.problem_ids).encode()).hexdigest()[:12]
        return f"unit-{digest}"

    @property
    def engine(self) -> tuple[str, str | None, int | None]:
        """What a worker must have loaded to run the unit (model folder or id, revision, window)."""
        return (str(self.model.path), self.model.revision, self.model.max_model_len)


def plan(cfg: Experiment, models: list[Model] | None = None, n: int | None = None,
         unit_samples: int | None = None) -> list[Unit]:
    """The units that still lack samples, in params order (boundary.runs.runs), each of about
    `unit_samples` samples (RAY_UNIT_SAMPLES, else UNIT_SAMPLES); two models sharing one store (a
    base and its RL version on the same replica) share its units."""
    from boundary import runs

    size = unit_samples or int(os.environ.get(UNIT_ENV) or UNIT_SAMPLES)
    out, seen = [], set()
    for run in runs.runs(cfg, models, n):
        ids = [p.id for p in runs.problems(run.benchmark)]
        per = max(1, size // run.benchmark.n)
        missing = run.store.missing(ids, run.benchmark.n)
        for i in range(0, len(ids), per):
            chunk = tuple(ids[i:i + per])
            wanted = sum(len(missing.get(pid, ())) for pid in chunk)
            unit = Unit(run.model, run.benchmark, run.store, run.stop, chunk, wanted)
            if wanted and (run.store.dir, unit.name) not in seen:
                seen.add((run.store.dir, unit.name))
                out.append(unit)
    return out


class Sampler:
    """A sampling worker (a Ray actor): one model loaded at a time, units run into the store."""

    def __init__(self, sampling: Sampling, threads: int = 1):
        import torch

        torch.set_num_threads(threads)  # one worker per CPU: torch's default, one thread per core, oversubscribes
        self.sampling = sampling  # the experiment's sampling settings
        self.backend = None  # the loaded backend
        self.engine = None  # Unit.engine of what is loaded
        self.benchmarks = {}  # benchmark (name, source) -> its problems, loaded once per worker

    def where(self) -> str:
        """'<node id>/<worker id>' (8 hex digits each) and this process's id, for the sampling log."""
        import ray

        ctx = ray.get_runtime_context()
        return f"{ctx.get_node_id()[:8]}/{ctx.get_worker_id()[:8]}"

    def pid(self) -> int:
        return os.getpid()

    def run(self, unit: Unit, chunk: int) -> dict:
        """Sample what `unit`'s problems lack (boundary.sampling.runner.run); one sampling-log row."""
        from boundary import runs, tasks
        from boundary.sampling import backends, runner

        load_s = 0.0
        if self.engine != unit.engine:
            if self.backend is not None:
                runs.close(self.backend)
                self.backend = None
                runs.collect()
            t = time.time()
            m = unit.model
            self.backend = backends.load(self.sampling.backend, m.path, m.revision, self.sampling,
                                         max_model_len=m.max_model_len)
            self.engine, load_s = unit.engine, time.time() - t
        b = unit.benchmark
        key = b.model_dump_json(exclude={"n"})
        if key not in self.benchmarks:
            self.benchmarks[key] = {p.id: p for p in runs.problems(b)}
        probs = [self.benchmarks[key][pid] for pid in unit.problem_ids]
        renderer = getattr(self.backend, "processor", None) or self.backend.tokenizer
        prompts = [(p.id, tasks.render(unit.model.template, p, renderer), p.image) for p in probs]
        stats = runner.run(self.backend, unit.store, prompts, b.n, self.sampling, chunk=chunk, rule=unit.stop)
        return {"model": unit.model.label, "benchmark": b.name, "problems": len(probs), "n": b.n,
                "new_samples": stats.samples, "new_tokens": stats.completion_tokens, "seconds": round(stats.seconds, 2),
                "load_seconds": round(load_s, 2), "backend": self.backend.name,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "worker": self.where()}

    def close(self) -> None:
        from boundary import runs

        if self.backend is not None:
            runs.close(self.backend)
            self.backend = None


class _Renewer(threading.Thread):
    """Renews the driver's leases every third of LEASE_TTL_S until stopped."""

    def __init__(self, owner: str):
        super().__init__(daemon=True)
        self.owner = owner  # whose leases
        self.held: dict[str, Unit] = {}  # unit name + store -> unit, for every lease held now
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.lost: list[str] = []  # units whose lease was taken over (this run stalled past LEASE_TTL_S)

    def run(self) -> None:
        while not self.stop.wait(LEASE_TTL_S / 3):
            with self.lock:
                for k, u in list(self.held.items()):
                    if not u.store.renew(u.name, self.owner):
                        self.lost.append(f"{u.store.dir.name}/{u.name}")


def _id(unit: Unit) -> str:
    return f"{unit.store.dir}/{unit.name}"


def sample(cfg: Experiment, progress: bool = True, models: list[Model] | None = None, n: int | None = None,
           unit_samples: int | None = None, chunk: int = 64) -> pd.DataFrame:
    """Fill every store of the experiment (as boundary.runs.sample) on the cluster of RAY_ADDRESS;
    one sampling-log row per unit run (with its `worker`). chunk: samples per shard."""
    ray = connect()
    workers = default_workers(ray, cfg.sampling)
    check(ray, cfg, workers)
    todo = collections.deque(plan(cfg, models, n, unit_samples))
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    gpus = cfg.sampling.tensor_parallel_size if cfg.sampling.backend == "vllm" else \
        (1 if ray.cluster_resources().get("GPU", 0) >= workers else 0)
    actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=0)(Sampler)
    pool = [actor.remote(cfg.sampling) for _ in range(min(workers, len(todo)))]
    holds = {w: None for w in pool}  # worker -> Unit.engine it has loaded
    running = {}  # object ref -> (unit, worker)
    waiting = []  # (unit, time to look again): units another run holds
    tries = collections.Counter()  # unit -> times handed out
    renewer = _Renewer(owner)
    renewer.start()
    rows = []
    bar = tqdm(total=sum(u.wanted for u in todo), desc=f"sample {cfg.name} on {len(pool)} Ray workers", unit="sample",
               **quiet(progress))
    try:
        while todo or running or waiting:
            now = time.time()
            for u, when in [w for w in waiting if w[1] <= now]:  # another run's units: done, lapsed or still held
                waiting.remove((u, when))
                ids = list(u.problem_ids)
                if not u.store.missing(ids, u.benchmark.n):
                    bar.update(u.wanted)
                else:
                    todo.append(u)
            for w in [w for w in pool if w not in {x for _, x in running.values()}]:
                u = _pick(todo, holds[w], holds)
                while u is not None and not u.store.lease(u.name, owner, covers=u.problem_ids):
                    waiting.append((u, time.time() + POLL_S))
                    u = _pick(todo, holds[w], holds)
                if u is None:
                    break
                with renewer.lock:
                    renewer.held[_id(u)] = u
                tries[_id(u)] += 1
                holds[w] = u.engine
                running[w.run.remote(u, chunk)] = (u, w)
            if renewer.lost:
                raise RuntimeError(f"this run lost its leases of {renewer.lost} (not renewed for {LEASE_TTL_S} s; "
                                   f"another run took them over)")
            if not running:
                time.sleep(min(POLL_S, max(0.0, min(w[1] for w in waiting) - time.time())) if waiting else 0)
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in done:
                u, w = running.pop(ref)
                try:
                    rows.append(ray.get(ref))
                except ray.exceptions.RayActorError as e:  # the worker died: its unit goes to a new one
                    if tries[_id(u)] > RETRIES:
                        raise RuntimeError(f"unit {u.name} of {u.model.label} on {u.benchmark.name} lost its worker "
                                           f"{tries[_id(u)]} times") from e
                    pool[pool.index(w)] = fresh = actor.remote(cfg.sampling)
                    del holds[w]
                    holds[fresh] = None
                    todo.appendleft(u)
                    continue
                with renewer.lock:
                    renewer.held.pop(_id(u), None)
                u.store.release(u.name, owner)
                bar.update(u.wanted)
    finally:
        renewer.stop.set()
        with renewer.lock:
            for u in renewer.held.values():
                u.store.release(u.name, owner)
        bar.close()
        try:  # each worker ends its engine (vLLM's process) before it goes
            ray.get([w.close.remote() for w in pool], timeout=120)
        except Exception:  # noqa: BLE001 -- a dead worker's engine went with it (engine: the socket broke)
            pass
        for w in pool:
            ray.kill(w)
    from boundary import runs

    return runs.log_sampling(cfg, pd.DataFrame(rows))


def _pick(todo: collections.deque, engine, holds: dict) -> Unit | None:
    """The next unit for a worker holding `engine`: one of that model first, then one of a model no
    worker holds, then any; None when nothing is left."""
    if not todo:
        return None
    held = set(holds.values())
    for ok in (lambda u: u.engine == engine, lambda u: u.engine not in held, lambda u: True):
        for u in todo:
            if ok(u):
                todo.remove(u)
                return u
    return None


# ---------------------------------------------------------------- grading
def _grade_chunk(problems, responses, template, timeout_s):
    from boundary.verify import grading

    return grading.grade_many(problems, responses, template, timeout_s=timeout_s, workers=1)


def grade_many(problems, responses, template, *, timeout_s=None, workers=None, progress=False):
    """boundary.verify.grade_many on the cluster: chunks of GRADE_CHUNK samples, one Ray task (one
    CPU) each; the verdicts in order. `workers` is ignored: the cluster's CPUs are the workers."""
    ray = connect()
    problems, responses = list(problems), list(responses)
    if not problems:
        return []
    task = ray.remote(num_cpus=1, max_retries=RETRIES)(_grade_chunk)
    refs = []
    for i in range(0, len(problems), GRADE_CHUNK):
        names = template if isinstance(template, str) else list(template[i:i + GRADE_CHUNK])
        refs.append(task.remote(problems[i:i + GRADE_CHUNK], responses[i:i + GRADE_CHUNK], names, timeout_s))
    out = {}
    bar = tqdm(total=len(problems), desc="grade on Ray", unit="sample", **quiet(progress))
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        out[done[0]] = ray.get(done[0])
        bar.update(len(out[done[0]]))
    bar.close()
    return [v for ref in refs for v in out[ref]]


# ---------------------------------------------------------------- RAY_ADDRESS=local for a whole command
def main(argv=None) -> int:
    """`python -m boundary.cluster local [--workers N] -- 'COMMAND'`: run COMMAND in one local cluster."""
    ap = argparse.ArgumentParser(description="run a shell command on one local Ray cluster, stopped at its end")
    ap.add_argument("mode", choices=["local"])
    ap.add_argument("--workers", type=int, default=None, help=f"CPUs of the cluster (default {WORKERS_ENV} or {CPU_WORKERS})")
    ap.add_argument("command", help="the shell command line, run with RAY_ADDRESS set to the cluster")
    a = ap.parse_args(argv)
    os.environ[ADDRESS_ENV] = "local"
    ray = connect(a.workers)
    try:
        addr = ray.get_runtime_context().gcs_address
        return subprocess.call(["bash", "-c", a.command], env={**os.environ, ADDRESS_ENV: addr})
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
