"""pass@k past the sampled n: a zero-inflated scaled beta-binomial fitted to per-problem counts.

Each problem i has a success rate p_i. Following Schaeffer et al. 2025 ("How Do Large Language
Monkeys Get Their Power (Laws)?"), the rates of the problems a model can solve follow a *scaled*
Beta: p = a * X, X ~ Beta(alpha, beta), a in (0, 1] the largest rate; near p = 0 the density goes
like p^(alpha - 1), so the share of solvable problems still unsolved after k samples falls like
k^-alpha (the power law of pass@k). The problems it can never solve are a point mass at p = 0 of
weight `unsolvable` (a zero-inflated fit): the share outside the model's boundary, and
1 - unsolvable is pass@infinity. Counts c_i ~ Binomial(n_i, p_i); the four parameters are fitted by
maximum likelihood over problems.

With a < 1 the marginal likelihood has no closed form (a = 1 is the beta-binomial), so every
integral over X here (likelihood, per-problem posteriors, predicted pass@k, posterior draws) is one
quadrature, written here because scipy's beta-binomial has no scale: the trapezoid rule on the
logit t = log(X / (1 - X)), where the integrand is smooth and decays exponentially at both ends
(relative error ~1e-8 with a step of 2/sqrt(n)), plus the two tails beyond |t| = 40 in closed form.

`extrapolate` predicts the mean pass@k of *these* problems: for each problem the posterior mean of
1 - (1 - p_i)^k given its own counts under the fitted distribution (empirical Bayes), averaged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, logit

from boundary.passk.estimate import _check, pass_at_k

_EDGE = 40.0  # quadrature range in logit(X); beyond it the tails are integrated in closed form
# Box of the optimiser, in its unconstrained coordinates (logit unsolvable, log alpha, log beta, logit scale).
_BOUNDS = [(-12.0, 12.0), (np.log(0.01), np.log(200.0)), (np.log(0.01), np.log(5000.0)), (-6.0, 16.0)]


class Unidentifiable(ValueError):
    """The counts cannot identify a success-rate distribution (one sample per problem)."""


@dataclass(frozen=True)
class Fit:
    """A fitted per-problem success-rate distribution: p = 0 with weight `unsolvable`, else scale * Beta."""

    unsolvable: float  # weight of the point mass at p = 0: the share of problems outside the boundary
    alpha: float  # Beta shape at 0: the power-law exponent of how the unsolved share falls with k
    beta: float  # Beta shape at 1
    scale: float  # the largest success rate a (p = a * X)
    loglik: float  # maximised log-likelihood of the counts (problems' weights included)
    problems: float  # number of problems fitted (sum of weights)
    converged: bool  # did the optimiser report convergence
    solved: bool = True  # was any problem solved; if not, only "pass@k = 0 at every finite k" is identified

    @classmethod
    def none_solved(cls, problems: float) -> "Fit":
        """The fit of counts with no success: the likelihood's supremum (1) is approached by every rate
        going to 0, so pass@k is 0 at every finite k; the unsolvable share, and with it pass@infinity,
        could be anything (all problems unsolvable, or all merely very hard): NaN, never a guess."""
        nan = float("nan")
        return cls(unsolvable=nan, alpha=nan, beta=nan, scale=nan, loglik=0.0, problems=float(problems),
                   converged=True, solved=False)

    @property
    def pass_at_infinity(self) -> float:
        """Share of problems solved by some sample as k grows without bound: 1 - unsolvable."""
        return 1.0 - self.unsolvable

    def pass_at_k(self, ks) -> np.ndarray:
        """pass@k of a new problem drawn from the fitted distribution (the population curve)."""
        zero = np.zeros(1, dtype=np.int64)
        return _predict(self, zero, zero, np.asarray(ks, dtype=np.float64), _grid(1))[0]

    def row(self) -> dict:
        """The record as a flat dict (for tables), pass@infinity included."""
        return {"unsolvable": self.unsolvable, "pass@inf": self.pass_at_infinity, "alpha": self.alpha,
                "beta": self.beta, "scale": self.scale, "loglik": self.loglik, "problems": self.problems}


def _grid(nmax: int) -> np.ndarray:
    """Quadrature nodes in t = logit(X): a step of 2/sqrt(n) (the narrowest posterior's width in t),
    at most 0.25 (the integrand is analytic in a strip of half-width pi: the trapezoid's error
    falls like exp(-2 pi^2 / h))."""
    h = min(0.25, 2.0 / np.sqrt(max(int(nmax), 1)))
    return np.arange(-_EDGE, _EDGE + h / 2, h)


def _nodes(theta: tuple, n: np.ndarray, c: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-weights (pairs, nodes) of the integrand x^(c+alpha-1) (1-x)^(beta-1) (1-ax)^(n-c) dx at
    the nodes, the nodes' X and log(1 - a X); the first and last nodes stand for the tails beyond
    |t| = 40 (X < x0 and X > 1 - x0), integrated in closed form."""
    _, alpha, beta, a = theta
    h = t[1] - t[0]
    lx, l1x = -np.logaddexp(0, -t), -np.logaddexp(0, t)  # log X, log(1 - X), stable at both ends
    la, l1a = np.log(a), np.log1p(-a) if a < 1 else -np.inf
    l1ax = np.logaddexp(l1a, la + l1x)  # 1 - aX = (1 - a) + a(1 - X): no cancellation near X = 1
    x0 = expit(-_EDGE)  # the tails: X < x0 and 1 - X < x0
    ca, m = (c + alpha)[:, None], (n - c)[:, None].astype(np.float64)
    inner = ca * lx + beta * l1x + m * l1ax + np.log(h)  # dx = X (1 - X) dt
    low = ca * np.log(x0) - np.log(ca)  # int_0^x0 x^(c+alpha-1) dx, the other factors ~ 1
    with np.errstate(invalid="ignore"):
        high = beta * np.log(x0) - np.log(beta) + np.where(m > 0, m * l1a, 0.0)  # int near X = 1
    logw = np.concatenate([low, inner, high], axis=1)
    x = np.concatenate([[x0 / 2], np.exp(lx), [1.0]])
    l1ax_all = np.concatenate([[np.log1p(-a * x0 / 2)], l1ax, [l1a]])
    return logw, x, l1ax_all


def _normalise(logw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log of the row sums (pairs, 1) and the rows normalised to probabilities, from one exp
    (scipy's logsumexp, called twice, was 70% of a likelihood pass)."""
    top = logw.max(axis=1, keepdims=True)
    probs = np.exp(logw - top)
    mass = probs.sum(axis=1, keepdims=True)
    return top + np.log(mass), probs / mass


def _theta(u: np.ndarray) -> tuple:
    """Parameters (unsolvable, alpha, beta, scale) from the optimiser's unconstrained coordinates."""
    return float(expit(u[0])), float(np.exp(u[1])), float(np.exp(u[2])), float(expit(u[3]))


def _marginal(theta: tuple, n: np.ndarray, c: np.ndarray, t: np.ndarray):
    """Per pair: log P(c | n) under the fit, log P(c | n, solvable), and the solvable part's
    posterior over the nodes (pairs, nodes) with the nodes' X and log(1 - aX)."""
    pi0, alpha, beta, a = theta
    logw, x, l1ax = _nodes(theta, n, c, t)
    lse, probs = _normalise(logw)
    lognz = (gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1) + c * np.log(a)
             + lse[:, 0] - betaln(alpha, beta))
    with np.errstate(divide="ignore"):
        zero = np.where(c == 0, np.log(pi0), -np.inf)
    return np.logaddexp(zero, np.log1p(-pi0) + lognz), lognz, probs, x, l1ax


def _log_marginal(theta: tuple, n: np.ndarray, c: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: log P(c | n) under the fit, and log P(c | n, the problem is solvable)."""
    return _marginal(theta, n, c, t)[:2]


def _nll(u: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood of the pairs and its gradient in the optimiser's coordinates.

    The gradient is analytic (posterior expectations of the log-integrand's derivatives at the
    nodes), so L-BFGS-B needs one pass per step instead of five finite differences.
    """
    theta = _theta(u)
    pi0, alpha, beta, a = theta
    total, lognz, probs, x, l1ax = _marginal(theta, n, c, t)
    solvable = np.exp(np.log1p(-pi0) + lognz - total)  # posterior weight of the solvable part
    m = (n - c).astype(np.float64)
    x0 = expit(-_EDGE)
    inner = slice(1, -1)
    lx, l1x = np.log(x[inner]), -np.logaddexp(0, t)
    d_alpha = probs[:, inner] @ lx + probs[:, 0] * (np.log(x0) - 1 / (c + alpha)) - (digamma(alpha) - digamma(alpha + beta))
    d_beta = probs[:, inner] @ l1x + probs[:, -1] * (np.log(x0) - 1 / beta) - (digamma(beta) - digamma(alpha + beta))
    d_a = c / a - m * (probs[:, inner] @ (x[inner] / np.exp(l1ax[inner])))
    if a < 1:
        d_a = d_a - probs[:, -1] * m / (1 - a)
    d_pi0 = np.exp(np.where(c == 0, -total, -np.inf)) - np.exp(lognz - total)  # (P(c=0 | unsolvable) - P(c | solvable)) / P(c)
    grad = np.array([w @ d_pi0 * pi0 * (1 - pi0), w @ (solvable * d_alpha) * alpha,
                     w @ (solvable * d_beta) * beta, w @ (solvable * d_a) * a * (1 - a)])
    return -float(w @ total), -grad


def _pairs(n, c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated distinct (n, c) pairs and each problem's pair index."""
    n, c = (a.ravel() for a in np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)))
    _check(n, c)
    pairs, inverse = np.unique(np.stack([n, c], axis=1), axis=0, return_inverse=True)
    return pairs[:, 0], pairs[:, 1], inverse.ravel()


def fit(n, c, weights=None, start: Fit | None = None) -> Fit:
    """Fit the zero-inflated scaled Beta to counts by maximum likelihood (L-BFGS-B, several starts).

    n, c: per-problem samples and correct counts (n may be one number). weights: per-problem
    multiplicities (a bootstrap resample), default 1. start: a previous fit to start from (one
    start instead of three). Counts with no success (a model that solved nothing, or a bootstrap
    resample without its solved problems) give `Fit.none_solved`: pass@k 0 at every finite k, the
    unsolvable share and pass@infinity NaN (an unsolvable share of 1 and "very hard" fit equally
    well). Raises Unidentifiable for a single sample per problem (it identifies only the mean rate).
    """
    un, uc, inverse = _pairs(n, c)
    w = np.bincount(inverse, weights=None if weights is None else np.asarray(weights, float).ravel(),
                    minlength=un.size).astype(np.float64)
    if un.max() < 2:
        raise Unidentifiable("every problem has n = 1 sample: one sample identifies only the mean success "
                         "rate, not its distribution; fit needs n >= 2 on some problems")
    if not np.any((uc > 0) & (w > 0)):
        return Fit.none_solved(w.sum())
    t = _grid(int(un.max()))

    if start is not None:
        starts = [np.array([logit(np.clip(start.unsolvable, 1e-5, 1 - 1e-5)), np.log(start.alpha),
                            np.log(start.beta), logit(np.clip(start.scale, 1e-5, 1 - 1e-7))])]
    else:
        zero = float(w[uc == 0].sum() / w.sum())
        starts = [np.array([logit(np.clip(z, 0.02, 0.98)), np.log(al), np.log(1.0), logit(sc)])
                  for z, al, sc in [(zero / 2, 0.5, 0.95), (zero * 0.9, 1.0, 0.999), (0.02, 0.2, 0.9)]]
    best = None
    for u0 in starts:
        u0 = np.clip(u0, [b[0] for b in _BOUNDS], [b[1] for b in _BOUNDS])
        res = minimize(_nll, u0, args=(un, uc, w, t), jac=True, method="L-BFGS-B", bounds=_BOUNDS)
        if best is None or res.fun < best.fun:
            best = res
    pi0, alpha, beta, a = _theta(best.x)
    return Fit(unsolvable=pi0, alpha=alpha, beta=beta, scale=a, loglik=-float(best.fun),
               problems=float(w.sum()), converged=bool(best.success))


def _params(f: Fit) -> tuple:
    """The fit's parameters in the order the quadrature takes them."""
    return f.unsolvable, f.alpha, f.beta, f.scale


def _posterior(f: Fit, n: np.ndarray, c: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: posterior weight of p = 0, node probabilities of the solvable part, nodes' X, log(1 - aX)."""
    total, _, probs, x, l1ax = _marginal(_params(f), n, c, t)
    with np.errstate(divide="ignore"):
        w0 = np.where(c == 0, np.exp(np.log(f.unsolvable) - total), 0.0) if f.unsolvable > 0 else np.zeros(n.size)
    return np.clip(w0, 0.0, 1.0), probs, x, l1ax


def _predict(f: Fit, n: np.ndarray, c: np.ndarray, ks: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Posterior mean of pass@k per pair (pairs, K): (1 - w0) (1 - E[(1 - aX)^k | n, c]); for a fit
    of counts with no success, 0 at finite k and NaN (unidentified) at k = inf."""
    if not f.solved:
        return np.where(np.isfinite(ks), 0.0, np.nan) * np.ones((n.size, 1))
    w0, probs, _, l1ax = _posterior(f, n, c, t)
    finite = np.isfinite(ks)
    miss = np.zeros((l1ax.size, ks.size))  # (nodes, K); k = inf: 0, every node is a solvable rate
    miss[:, finite] = np.exp(np.multiply.outer(l1ax, ks[finite]))
    return (1.0 - w0)[:, None] * (1.0 - probs @ miss)


def extrapolate(n, c, ks, fitted: Fit | None = None) -> np.ndarray:
    """Predicted mean pass@k over the problems, one float per k in `ks` (any k >= 1, np.inf included).

    n, c: per-problem counts (n may be one number). Each problem's prediction is its posterior
    mean of 1 - (1 - p)^k under the fitted distribution (`fitted`, else `fit(n, c)`); at k = inf
    it is the posterior probability that the problem is solvable. Raises as `fit` does.
    """
    ks = np.asarray(ks, dtype=np.float64).ravel()
    if np.any(~(ks >= 1)):
        raise ValueError(f"k must be >= 1 (np.inf allowed): got {ks[~(ks >= 1)].tolist()}")
    un, uc, inverse = _pairs(n, c)
    f = fitted if fitted is not None else fit(n, c)
    per = _predict(f, un, uc, ks, _grid(int(un.max())))
    return np.bincount(inverse, minlength=un.size) @ per / inverse.size


def posterior_draws(f: Fit, n, c, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Success rates drawn from each problem's posterior under the fit: an array (draws, problems).

    The posterior of a problem never solved keeps the fit's unsolvable mass (p = 0) at its
    posterior weight; the solvable part is drawn from the quadrature nodes, jittered within their
    cell so draws are continuous. A fit of counts with no success (`Fit.none_solved`) draws 0.
    """
    un, uc, inverse = _pairs(n, c)
    if not f.solved:  # no success: every rate at the likelihood's supremum is 0
        return np.zeros((draws, inverse.size))
    t = _grid(int(un.max()))
    w0, probs, x, _ = _posterior(f, un, uc, t)
    h = t[1] - t[0]
    out = np.empty((draws, inverse.size))
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    for j in range(un.size):  # one distinct (n, c) at a time: its problems share a posterior
        cols = np.flatnonzero(inverse == j)
        u = rng.random((draws, cols.size))
        node = np.minimum(np.searchsorted(cum[j], u), x.size - 1)
        tj = np.log(x[node]) - np.log1p(-np.minimum(x[node], 1 - 1e-16))  # the node's logit
        inner = (node > 0) & (node < x.size - 1)
        tj = np.where(inner, tj + (rng.random(tj.shape) - 0.5) * h, tj)
        p = f.scale * np.where(node == x.size - 1, 1.0, expit(tj))
        out[:, cols] = np.where(rng.random((draws, cols.size)) < w0[j], 0.0, p)
    return out


def goodness_of_fit(n, c, fitted: Fit, ks=None) -> pd.DataFrame:
    """Observed mean pass@k (k <= the smallest n) beside the fit's: k, observed, predicted (what
    `extrapolate` returns for these problems), population (a new problem from the fitted
    distribution) and predicted - observed. ks defaults to the powers of two up to min(n) and min(n)."""
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), np.shape(c)).ravel()
    c = np.asarray(c, dtype=np.int64).ravel()
    K = int(n.min())
    ks = np.unique([*(2 ** np.arange(int(np.log2(K)) + 1)), K]) if ks is None else np.asarray(ks, dtype=np.int64)
    if np.any((ks < 1) | (ks > K)):
        raise ValueError(f"goodness of fit compares k <= min(n) = {K} only (observed pass@k is NaN past n)")
    observed = pass_at_k(n[:, None], c[:, None], ks[None, :]).mean(axis=0)
    predicted = extrapolate(n, c, ks, fitted=fitted)
    return pd.DataFrame({"k": ks, "observed": observed, "predicted": predicted,
                         "population": fitted.pass_at_k(ks), "error": predicted - observed})
