"""Samples/s of sampling on a local Ray cluster (1 and 2 workers) against the single-process runner,
and Ray's overhead per work unit.

The world: the smoke experiment's base and rl-seed0 models on its `miniature` benchmark with n raised
to `--n` (the miniature experiment is the issue's choice; smoke is what is built on a machine that
runs tests, and the two differ only in model size and problem count). Every run fills fresh stores
under a temporary BOUNDARY_OUTPUTS, one torch thread per process (the single-process runner too):

- `single`: boundary.runs.sample, one process (models loaded one after the other);
- `ray-W`: boundary.cluster.sample on a local cluster of W CPUs and W workers, end to end (the
  workers' start, model loads, leases, sampling, shards), units of `--unit` samples;
- `ray-1-small`: one worker again with units of `--small-unit` samples: Ray's overhead per unit is
  the extra wall time over `ray-1` divided by the extra units (dispatch, lease, store reads, the
  result's round trip), the same samples being drawn.

Wall seconds are end to end; `sampling s` sums what the runner reports (the decode and shard writes).
On a shared 2-core machine (the project's development machines) 2 workers compete with each other
and with other users: note the load when reading the numbers.

    .venv/bin/python benchmarks/cluster_throughput.py [--n 256] [--unit 1024] [--small-unit 128]
"""
import argparse
import os
import tempfile
import time

import pandas as pd

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from boundary import cluster, config, runs  # noqa: E402


def world(n: int):
    """smoke's base and rl-seed0 on `miniature`, n samples per problem."""
    cfg = config.load("smoke")
    return cfg.model_copy(update={"models": [m for m in cfg.models if m.label in ("base", "rl-seed0")],
                                  "benchmarks": [b.model_copy(update={"n": n}) for b in cfg.benchmarks
                                                 if b.name == "miniature"]})


def single(n: int) -> dict:
    os.environ.pop(cluster.ADDRESS_ENV, None)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        os.environ[config.OUTPUTS_ENV] = out
        t = time.time()
        log = runs.sample(world(n), progress=False)
        wall = time.time() - t
    return {"run": "single", "workers": 1, "units": len(log), "samples": int(log["new_samples"].sum()),
            "wall s": wall, "sampling s": log["seconds"].sum(), "load s": log["load_seconds"].sum()}


def on_ray(n: int, workers: int, unit: int, name: str) -> dict:
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=cluster.LOCAL_OBJECT_STORE,
             logging_level="WARNING", log_to_driver=False, runtime_env={"env_vars": cluster.forwarded_env()})
    try:
        os.environ[cluster.ADDRESS_ENV] = ray.get_runtime_context().gcs_address
        os.environ[cluster.WORKERS_ENV] = str(workers)
        with tempfile.TemporaryDirectory() as out:
            os.environ[config.OUTPUTS_ENV] = out
            t = time.time()
            log = cluster.sample(world(n), progress=False, unit_samples=unit)
            wall = time.time() - t
    finally:
        ray.shutdown()
        os.environ.pop(cluster.ADDRESS_ENV, None)
    return {"run": name, "workers": workers, "units": len(log), "samples": int(log["new_samples"].sum()),
            "wall s": wall, "sampling s": log["seconds"].sum(), "load s": log["load_seconds"].sum()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="samples per problem (24 problems, 2 models)")
    ap.add_argument("--unit", type=int, default=1024, help="samples per unit on the cluster")
    ap.add_argument("--small-unit", type=int, default=128, help="samples per unit of the overhead run")
    a = ap.parse_args()
    rows = [single(a.n), on_ray(a.n, 1, a.unit, "ray-1"), on_ray(a.n, 2, a.unit, "ray-2"),
            on_ray(a.n, 1, a.small_unit, "ray-1-small")]
    df = pd.DataFrame(rows)
    df["samples/s"] = df["samples"] / df["wall s"]
    df["sampling samples/s"] = df["samples"] / df["sampling s"]
    print(df.round(2).to_string(index=False))
    big, small = df.set_index("run").loc["ray-1"], df.set_index("run").loc["ray-1-small"]
    per_unit = (small["wall s"] - big["wall s"]) / (small["units"] - big["units"])
    print(f"Ray overhead per unit: {per_unit:.3f} s ({int(small['units'])} units of "
          f"{small['samples'] / small['units']:.0f} samples against {int(big['units'])} of "
          f"{big['samples'] / big['units']:.0f}, one worker)")


if __name__ == "__main__":
    main()
