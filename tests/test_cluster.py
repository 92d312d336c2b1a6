"""Sampling and grading on a Ray cluster (boundary.cluster), against single-process runs of the smoke world.

A local Ray cluster is started by the tests (2 CPUs, separate worker processes); the independent
truth is the store and the verdicts that `runs.sample` / `runs.grade` make in one process.
Checked: the cluster's store equals the single-process store row for row; a worker killed with
SIGKILL in the middle of a unit loses nothing and duplicates nothing; two runs on one store at once
generate every sample once; grading on the cluster equals local grading; bad set-ups fail before
any work with a message naming them; a run without RAY_ADDRESS never imports Ray; leases are
exclusive and lapse.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import torch

from boundary import ROOT, cluster, config, perplexity, runs
from boundary.store import Store, StoreKey

ray = pytest.importorskip("ray") if os.environ.get("CI") != "true" else __import__("ray")  # CI: Ray must be there
SMOKE_MODELS = ROOT / "models" / "smoke"
pytestmark = pytest.mark.skipif(not (SMOKE_MODELS / "base").exists() and os.environ.get("CI") != "true",
                                reason="the smoke models are absent (make models EXPERIMENT=smoke)")
UNIT = 64  # samples per unit in these tests (4 problems of n = 16): several units per store
ENV = {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def smoke(labels=("base", "rl-seed0"), benchmarks=("miniature",), **sampling):
    """The smoke experiment cut down to some models and benchmarks (sampling fields overridden)."""
    cfg = config.load("smoke")
    return cfg.model_copy(update={"models": [m for m in cfg.models if m.label in labels],
                                  "benchmarks": [b for b in cfg.benchmarks if b.name in benchmarks],
                                  "sampling": cfg.sampling.model_copy(update=sampling)})


def raw(outputs) -> pd.DataFrame:
    """Every row of every shard under `outputs` (duplicates kept), with its store folder and the
    writing process's id (from the shard's name)."""
    frames = []
    for p in sorted((outputs / "results").rglob("shard-*.parquet")):
        frames.append(pd.read_parquet(p).assign(store=p.parent.name, pid=int(p.name.split("-")[2])))
    return pd.concat(frames, ignore_index=True)


def stores(outputs) -> dict[str, pd.DataFrame]:
    """Each store under `outputs` (benchmark/key folder), read as the library reads it."""
    out = {}
    for d in sorted({p.parent for p in (outputs / "results").rglob("shard-*.parquet")}):
        s = Store.__new__(Store)  # reading needs only its folder
        s.dir = d
        out[f"{d.parent.name}/{d.name}"] = s.read()
    return out


ALL = smoke(("base", "rl-seed0", "base-vlm"), ("miniature", "miniature-visual"))  # 2 text stores, 1 visual


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process stores of smoke's base and rl-seed0 on `miniature`, and its VLM on the visual set."""
    out = tmp_path_factory.mktemp("single")
    mp = pytest.MonkeyPatch()
    mp.setenv(config.OUTPUTS_ENV, str(out))
    mp.delenv(cluster.ADDRESS_ENV, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker (a reduction split over more threads may round differently)
    try:
        runs.sample(ALL, progress=False)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of 2 CPUs for the module (workers are separate processes); its address."""
    mp = pytest.MonkeyPatch()
    for k, v in ENV.items():  # the workers' environment (make test's own settings kept)
        mp.setenv(k, os.environ.get(k, v))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=cluster.LOCAL_OBJECT_STORE,
             logging_level="WARNING", log_to_driver=False, runtime_env={"env_vars": cluster.forwarded_env()})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    mp.undo()


@pytest.fixture
def on_cluster(local_ray, tmp_path, monkeypatch):
    """Outputs under tmp_path, RAY_ADDRESS pointing at the module's cluster, 2 workers."""
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    monkeypatch.setenv(cluster.ADDRESS_ENV, local_ray)
    monkeypatch.setenv(cluster.WORKERS_ENV, "2")
    return tmp_path


def test_the_cluster_fills_the_same_store_as_one_process(reference, on_cluster, monkeypatch):
    monkeypatch.setenv(cluster.UNIT_ENV, str(UNIT))
    log = runs.sample(ALL, progress=False)  # through runs.sample: RAY_ADDRESS sends it to the cluster
    assert len(log) == 3 * 24 * 16 // UNIT  # one row per unit
    want, got = stores(reference), stores(on_cluster)
    assert want.keys() == got.keys() and len(want) == 3
    for name in want:  # row for row, token ids included
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
    everything = raw(on_cluster)
    assert not everything.duplicated(["store", "problem_id", "sample"]).any()
    logged = pd.read_csv(on_cluster / "results" / "smoke" / "sampling_log.csv", keep_default_na=False)
    assert logged["new_samples"].sum() == len(everything)
    assert all(re.fullmatch(r"[0-9a-f]{8}/[0-9a-f]{8}", w) for w in logged["worker"]), logged["worker"]
    # a worker keeps to the model it holds: 3 models on 2 workers, loaded at most 3 + 1 times in 18 units
    assert (logged["load_seconds"] > 0).sum() <= 4, logged[["model", "worker", "load_seconds"]]


def test_a_worker_killed_mid_unit_loses_and_duplicates_nothing(reference, on_cluster):
    cfg = smoke(batch_size=8)  # batch_size changes memory, not samples: small batches make a unit last
    units = cluster.plan(cfg, unit_samples=128)  # 8 problems a unit, written in shards of 8 samples
    killed = []

    def kill_the_first_writer():
        deadline = time.time() + 600  # the first shard waits for Ray and two model loads: minutes on a loaded machine
        while time.time() < deadline and not killed:
            for p in (on_cluster / "results").rglob("shard-*.parquet"):
                pid = int(p.name.split("-")[2])
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_the_first_writer)
    watcher.start()
    cluster.sample(cfg, progress=False, unit_samples=128, chunk=8)
    watcher.join()
    assert killed, "no worker was killed"
    want, got = stores(reference), stores(on_cluster)
    for name in got:  # nothing lost: the whole store, equal to the single-process one
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
    everything = raw(on_cluster)
    assert not everything.duplicated(["store", "problem_id", "sample"]).any()  # nothing sampled twice
    # the killed worker's shards were kept, and another worker finished its unit: killed mid-unit
    by_killed = everything[everything["pid"] == killed[0]]
    assert len(by_killed) > 0
    unit = next(u for u in units if by_killed["problem_id"].iloc[0] in u.problem_ids
                and u.store.dir.name == by_killed["store"].iloc[0])
    in_unit = everything[everything["problem_id"].isin(unit.problem_ids) & (everything["store"] == unit.store.dir.name)]
    assert len(in_unit) == unit.wanted and in_unit["pid"].nunique() >= 2, in_unit.groupby("pid").size()


DRIVER = """
import json, os, sys, time
from pathlib import Path
from boundary import cluster, config, runs
cfg = config.load("smoke")
cfg = cfg.model_copy(update={"models": [m for m in cfg.models if m.label in ("base", "rl-seed0")],
                             "benchmarks": [b for b in cfg.benchmarks if b.name == "miniature"],
                             "sampling": cfg.sampling.model_copy(update={"batch_size": 8})})  # units that last
cluster.connect()
Path(sys.argv[1], sys.argv[2]).touch()  # ready: start together, so the two runs overlap
while len(list(Path(sys.argv[1]).iterdir())) < 2:
    time.sleep(0.05)
log = cluster.sample(cfg, progress=False, unit_samples=32)
print(json.dumps({"new_samples": int(log["new_samples"].sum()) if len(log) else 0}))
"""


def test_two_runs_on_one_store_sample_everything_once(reference, on_cluster, local_ray, tmp_path_factory):
    env = {**os.environ, **ENV, cluster.WORKERS_ENV: "1"}  # each driver its own worker: 2 CPUs, 2 workers
    ready = tmp_path_factory.mktemp("ready")
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(ready), str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    made = [json.loads(out.strip().splitlines()[-1])["new_samples"] for out, _ in outs]
    everything = raw(on_cluster)
    assert not everything.duplicated(["store", "problem_id", "sample"]).any()
    assert sum(made) == len(everything) == 2 * 24 * 16, made  # every sample generated once, by one of the runs
    assert min(made) > 0, f"the runs did not overlap ({made}): the test proves nothing"
    want, got = stores(reference), stores(on_cluster)
    for name in got:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
    assert not list((on_cluster / "results").rglob("leases/*.lease")), "leases left behind"


def test_grading_on_the_cluster_equals_local_grading(reference, on_cluster, monkeypatch):
    shutil.copytree(reference / "results", on_cluster / "results")  # the same samples, no verdicts yet
    for v in (on_cluster / "results").rglob(runs.VERDICTS):
        v.unlink()
    there = runs.grade(smoke(), progress=False)
    assert len([v for v in (on_cluster / "results").rglob(runs.VERDICTS) if "samples" in v.parts]) == 2  # per store
    monkeypatch.delenv(cluster.ADDRESS_ENV)
    for v in (on_cluster / "results").rglob(runs.VERDICTS):
        v.unlink()
    here = runs.grade(smoke(), progress=False)
    assert len(here) == 2 * 24 * 16
    # A `timeout` is a wall-clock verdict (a Math-Verify check past its budget, killed): on a loaded machine
    # one side may time out where the other answered. Every other verdict must be equal, row for row, and
    # time-outs must stay rare (a grader that timed out everywhere would fail here).
    timed_out = (there["status"] == "timeout") | (here["status"] == "timeout")
    assert timed_out.mean() < 0.02, f"{int(timed_out.sum())} of {len(here)} verdicts timed out"
    pd.testing.assert_frame_equal(there[~timed_out], here[~timed_out])


def test_environment_reaches_the_workers(local_ray):
    code = ("import os, ray; from boundary import cluster; r = cluster.connect(); "
            "print(r.get(r.remote(lambda: os.environ.get('BOUNDARY_OUTPUTS')).remote()))")
    env = {**os.environ, **ENV, cluster.ADDRESS_ENV: local_ray, config.OUTPUTS_ENV: "/somewhere/else"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "/somewhere/else"


def test_a_cluster_without_the_gpus_asked_for_is_refused_before_any_work(on_cluster):
    cfg = smoke(backend="vllm", tensor_parallel_size=2)
    with pytest.raises(RuntimeError, match=r"has 0 GPUs; 2 vLLM workers of sampling.tensor_parallel_size=2 .* need 4"):
        cluster.sample(cfg, progress=False)
    assert not list((on_cluster / "results").rglob("shard-*"))


def test_more_workers_than_the_cluster_has_cpus_is_refused_before_any_work(on_cluster, monkeypatch):
    monkeypatch.setenv(cluster.WORKERS_ENV, "3")  # the cluster has 2 CPUs
    with pytest.raises(RuntimeError, match=r"the cluster has 2 CPUs, 3 workers need one each: set RAY_WORKERS to at most 2"):
        cluster.sample(smoke(), progress=False)
    assert not list((on_cluster / "results").rglob("shard-*"))


def test_a_results_folder_a_node_cannot_read_is_refused(on_cluster, monkeypatch):
    monkeypatch.setattr(cluster, "_read_probe", lambda path: None)  # what a node without the shared folder reads
    with pytest.raises(RuntimeError, match=r"is not shared with every node: .*\(node [0-9a-f]{8}\) cannot read"):
        cluster.sample(smoke(), progress=False)
    assert not list((on_cluster / "results").rglob("shard-*"))


def test_an_address_where_nothing_answers_is_refused_at_once(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.setenv(cluster.ADDRESS_ENV, "127.0.0.1:9")  # the discard port: nothing listens
    t = time.time()
    with pytest.raises(ConnectionError, match=r"RAY_ADDRESS='127.0.0.1:9': nothing answers at 127.0.0.1:9"):
        cluster.connect()
    assert time.time() - t < 10
    monkeypatch.setenv(cluster.ADDRESS_ENV, "head-node")
    with pytest.raises(ValueError, match="expected host:port"):
        cluster.connect()


def test_ray_missing_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    monkeypatch.setenv(cluster.ADDRESS_ENV, "local")
    with pytest.raises(RuntimeError, match=r"Ray is not installed in .*pip install -e '.\[cluster\]'"):
        cluster.connect()


def test_a_run_without_ray_address_never_imports_ray(tmp_path):
    code = ("import sys; from boundary import config, runs; cfg = config.load('smoke'); "
            "cfg = cfg.model_copy(update={'models': cfg.models[:1], 'benchmarks': cfg.benchmarks[:1]}); "
            "runs.sample(cfg, progress=False); runs.grade(cfg, progress=False); print('ray' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != cluster.ADDRESS_ENV}
    out = subprocess.run([sys.executable, "-c", code], env={**env, **ENV, config.OUTPUTS_ENV: str(tmp_path)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert list(tmp_path.rglob("shard-*"))


# ---------------------------------------------------------------- leases (no cluster needed)
def a_store(tmp_path) -> Store:
    key = StoreKey(model="m", model_version="v", template_sha256="t", backend="transformers", sampling=())
    return Store(tmp_path, key)


def test_of_many_threads_asking_at_once_exactly_one_gets_a_lease(tmp_path):
    s = a_store(tmp_path)
    start = threading.Barrier(32)

    def ask(i):
        start.wait()
        return s.lease("unit-1", f"run-{i}")

    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(ask, range(32)))
    assert sum(got) == 1


@pytest.mark.parametrize("age, taken_over", [
    (10.0, False),  # renewed 10 s ago: live, the second run waits
    (200.0, True),  # not renewed for longer than its ttl (120 s): lapsed, taken over
])
def test_a_lease_is_held_until_it_lapses(tmp_path, age, taken_over):
    s = a_store(tmp_path)
    assert s.lease("unit-1", "first")
    assert s.lease("unit-1", "first")  # its owner holds it already
    path = s.dir / "leases" / "unit-1.lease"
    os.utime(path, (time.time() - age, time.time() - age))
    assert s.lease("unit-1", "second") is taken_over
    assert s.lease_owner("unit-1") == ("second" if taken_over else "first")
    assert s.renew("unit-1", "first") is not taken_over  # the first run learns it lost the lease
    s.release("unit-1", "first")  # releasing someone else's lease does nothing
    assert (s.lease_owner("unit-1") is None) is not taken_over


def test_leases_of_units_that_share_a_problem_exclude_each_other(tmp_path):
    s = a_store(tmp_path)  # two runs that cut the store into units differently (another n or unit size)
    assert s.lease("unit-a", "first", covers=["p1", "p2"])
    assert not s.lease("unit-b", "second", covers=["p2", "p3"])  # p2 is the first run's
    assert s.lease("unit-c", "second", covers=["p3", "p4"])  # nothing shared
    s.release("unit-a", "first")
    assert s.lease("unit-b", "second", covers=["p2", "p3"])  # its own unit-c does not stand in its way
    lapsed = s.dir / "leases" / "unit-b.lease"
    os.utime(lapsed, (time.time() - 200, time.time() - 200))
    assert s.lease("unit-d", "third", covers=["p2"])  # unit-b lapsed: removed, not in the way
    assert not lapsed.exists()


def test_lease_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="lease name"):
        a_store(tmp_path).lease("../escape", "me")


def test_an_old_sampling_log_gains_the_worker_column(tmp_path, monkeypatch):
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    cfg = config.load("smoke")
    path = cfg.results_dir / "sampling_log.csv"
    path.parent.mkdir(parents=True)
    path.write_text("model,benchmark,new_samples\nbase,miniature,3\n")  # written before `worker` existed
    runs.log_sampling(cfg, pd.DataFrame([{"model": "rl", "benchmark": "miniature", "new_samples": 5, "worker": "ab/cd"}]))
    runs.log_sampling(cfg, pd.DataFrame([{"model": "rl", "benchmark": "miniature", "new_samples": 0, "worker": "ab/ef"}]))
    log = pd.read_csv(path, keep_default_na=False)
    assert log.to_dict("list") == {"model": ["base", "rl", "rl"], "benchmark": ["miniature"] * 3,
                                   "new_samples": [3, 5, 0], "worker": ["", "ab/cd", "ab/ef"]}


# ---------------------------------------------------------------- the whole pipeline (make test-cluster)
@pytest.mark.cluster
def test_make_on_a_local_cluster_fills_the_same_store_and_verdicts_and_survives_a_killed_worker(tmp_path):
    """`make samples verify EXPERIMENT=smoke RAY_ADDRESS=local RAY_WORKERS=2` (notebooks 01 and 02 by
    papermill, every store of smoke), one worker killed with SIGKILL mid-run, against one process."""
    single, there = tmp_path / "single", tmp_path / "cluster"
    mp = pytest.MonkeyPatch()
    mp.setenv(config.OUTPUTS_ENV, str(single))
    mp.delenv(cluster.ADDRESS_ENV, raising=False)
    try:  # what notebooks 01 and 02 do: every store of the experiment, and notebook 04's RL checkpoints
        cfg = config.load("smoke")
        runs.sample(cfg, progress=False)
        perplexity.sample_checkpoints(cfg, progress=False)
        runs.grade(cfg, progress=False)
        perplexity.grade_checkpoints(cfg, progress=False)
    finally:
        mp.undo()
    killed = []

    def kill_the_first_writer():
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            for p in (there / "results").rglob("shard-*.parquet"):
                os.kill(int(p.name.split("-")[2]), signal.SIGKILL)
                killed.append(p)
                return
            time.sleep(0.002)

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", cluster.ADDRESS_ENV)}
    watcher = threading.Thread(target=kill_the_first_writer, daemon=True)
    watcher.start()
    out = subprocess.run(["make", "--no-print-directory", "samples", "verify", "EXPERIMENT=smoke", "RAY_ADDRESS=local",
                          "RAY_WORKERS=2", f"RUNS={there}/notebooks", f"BOUNDARY_OUTPUTS={there}"],
                         cwd=ROOT, env={**env, **ENV}, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert killed, "no worker was killed"
    want, got = stores(single), stores(there)
    assert want.keys() == got.keys() and len(want) == 11  # 10 of the params' models, 1 checkpoint
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
    assert not raw(there).duplicated(["store", "problem_id", "sample"]).any()
    for v in sorted((single / "results").rglob(runs.VERDICTS)):
        pd.testing.assert_frame_equal(pd.read_parquet(there / v.relative_to(single)), pd.read_parquet(v))
    log = pd.read_csv(there / "results" / "smoke" / "sampling_log.csv", keep_default_na=False)
    assert (log["worker"] != "").all()
