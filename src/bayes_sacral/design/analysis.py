"""Conjugate analyses of simulated trials, vectorised: the posterior quantities every decision rule needs.

A rule needs only P(benefit > 0 | data) and P(benefit > mcid | data): the dual criterion "posterior median >= mcid"
is the same event as P(benefit > mcid | data) >= 1/2 for a continuous posterior. Benefits are positive in the outcome's
direction of benefit (see :mod:`bayes_sacral.design.context`).

Score (normal, stratified): the estimate is d = Σ_s w_s (ȳ_T,s − ȳ_C,s) on the benefit scale, with Var(d) = σ² v,
v = Σ_s w_s² (1/n_T,s + 1/n_C,s); the outcome is the score after treatment adjusted for the score before, so σ is the
residual SD of an ANCOVA.

- ``reference``: flat cell means and Jeffreys' 1/σ: benefit | data ~ d + s·√v·t_ν, so the rule P(benefit > 0) >= c is
  exactly the one-sided t test at level 1 − c.
- known σ (set at its design value) with a normal or robust-mixture prior on the benefit: a mixture of normal posteriors.

Events (binary, pooled over strata): independent (mixture-of-)Beta priors per arm on u, the probability of the
unfavourable result; for every outcome (y_T, y_C) of fixed arm sizes, P(u_C − u_T > t) = ∫ f_T(x) (1 − F_C(x + t)) dx by
Gauss-Legendre quadrature in θ with x = sin²θ, which removes the endpoint singularities of Beta densities with
parameters >= 1/2. With Altham's (1969) priors Beta(1, 0) for the treatment arm and Beta(0, 1) for the control arm,
P(u_C > u_T | y) = 1 − Fisher's one-sided p-value exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special, stats

__all__ = ["NormalPrior", "normal_posterior_probs", "reference_probs", "BetaMixture", "BINARY_PRIORS", "binary_tables", "ppos_binary"]


@dataclass(frozen=True)
class NormalPrior:
    """A mixture of normal priors on the effect: weights, means, SDs (one component = a plain normal prior)."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]


def normal_posterior_probs(d: np.ndarray, v: np.ndarray, sigma: float, prior: NormalPrior, thresholds: tuple[float, ...]) -> list[np.ndarray]:
    """P(effect > t | d) for each threshold t, with d ~ N(effect, σ² v) and a (mixture) normal prior."""
    d = np.asarray(d, float)
    se2 = sigma**2 * np.asarray(v, float)
    comps = []
    logw = []
    for w, m, s in zip(prior.weights, prior.means, prior.sds, strict=True):
        if w <= 0:
            continue
        var = 1.0 / (1.0 / s**2 + 1.0 / se2)
        mean = var * (m / s**2 + d / se2)
        comps.append((mean, np.sqrt(var)))
        logw.append(np.log(w) + stats.norm.logpdf(d, m, np.sqrt(s**2 + se2)))
    logw = np.array(logw)
    wpost = np.exp(logw - special.logsumexp(logw, axis=0))
    return [sum(wk * stats.norm.sf(t, mean, sd) for wk, (mean, sd) in zip(wpost, comps, strict=True)) for t in thresholds]


def reference_probs(d: np.ndarray, v: np.ndarray, s2: np.ndarray, nu: np.ndarray, thresholds: tuple[float, ...]) -> list[np.ndarray]:
    """P(effect > t | data) = T_ν((d − t) / (s √v)) under flat cell means and Jeffreys' prior on σ."""
    scale = np.sqrt(np.asarray(s2, float) * np.asarray(v, float))
    return [stats.t.cdf((np.asarray(d, float) - t) / scale, np.asarray(nu, float)) for t in thresholds]


# ---------------------------------------------------------------------- binary
@dataclass(frozen=True)
class BetaMixture:
    """A mixture of Beta priors for one arm's event probability."""

    weights: tuple[float, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]


BINARY_PRIORS = {
    "uniform": (BetaMixture((1.0,), (1.0,), (1.0,)), BetaMixture((1.0,), (1.0,), (1.0,))),
    "jeffreys": (BetaMixture((1.0,), (0.5,), (0.5,)), BetaMixture((1.0,), (0.5,), (0.5,))),
    # Altham (1969): Beta(1, 0) for the treatment arm, Beta(0, 1) for the control arm -> Fisher's one-sided exact test
    "altham": (BetaMixture((1.0,), (1.0,), (0.0,)), BetaMixture((1.0,), (0.0,), (1.0,))),
}


@lru_cache(maxsize=8)
def _nodes(panels: int = 40, per: int = 16):
    """Composite Gauss-Legendre nodes in θ on [0, π/2], mapped to x = sin²θ, with weights including dx/dθ."""
    g, w = np.polynomial.legendre.leggauss(per)
    edges = np.linspace(0, np.pi / 2, panels + 1)
    th = np.concatenate([(a + b) / 2 + (b - a) / 2 * g for a, b in zip(edges[:-1], edges[1:], strict=True)])
    wt = np.concatenate([(b - a) / 2 * w for a, b in zip(edges[:-1], edges[1:], strict=True)])
    x = np.sin(th) ** 2
    return x, wt * 2 * np.sin(th) * np.cos(th)


def _posterior(mix: BetaMixture, y: np.ndarray, n: int):
    """Component weights (len(y) × K) and parameters of the posterior mixture for counts y of n."""
    a = np.array(mix.a)[None, :] + y[:, None]
    b = np.array(mix.b)[None, :] + (n - y)[:, None]
    a0, b0 = np.array(mix.a)[None, :], np.array(mix.b)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        # marginal likelihood of each component (beta-binomial without the binomial coefficient, which cancels)
        logml = special.betaln(a, b) - np.where((a0 > 0) & (b0 > 0), special.betaln(a0, b0), 0.0)
    logml = np.where(np.isfinite(logml), logml, 0.0) + np.log(np.array(mix.weights))[None, :]
    w = np.exp(logml - special.logsumexp(logml, axis=1, keepdims=True))
    return w, a, b


def _pdf_cdf(w, a, b, x):
    """Mixture density and CDF at nodes x for each outcome row; degenerate Betas (a or b = 0) are point masses."""
    pdf = np.zeros((w.shape[0], len(x)))
    cdf = np.zeros((w.shape[0], len(x)))
    mass0 = np.zeros(w.shape[0])  # point mass at 0
    mass1 = np.zeros(w.shape[0])  # point mass at 1
    for k in range(w.shape[1]):
        ak, bk, wk = a[:, k], b[:, k], w[:, k]
        ok = (ak > 0) & (bk > 0)
        if ok.any():
            pdf[ok] += wk[ok, None] * stats.beta.pdf(x[None, :], ak[ok, None], bk[ok, None])
            cdf[ok] += wk[ok, None] * stats.beta.cdf(x[None, :], ak[ok, None], bk[ok, None])
        z0 = ak <= 0
        mass0[z0] += wk[z0]
        cdf[z0] += wk[z0, None]
        mass1[(bk <= 0) & ~z0] += wk[(bk <= 0) & ~z0]
    return pdf, cdf, mass0, mass1


@lru_cache(maxsize=256)
def binary_tables(n1: int, n2: int, prior: tuple[BetaMixture, BetaMixture], mcid: float) -> tuple[np.ndarray, np.ndarray]:
    """P(u_C − u_T > 0) and P(… > mcid) for every outcome (y_T of n1, y_C of n2): two (n1+1) × (n2+1) arrays."""
    x, wq = _nodes()
    w1, a1, b1 = _posterior(prior[0], np.arange(n1 + 1), n1)
    w2, a2, b2 = _posterior(prior[1], np.arange(n2 + 1), n2)
    pdf1, _cdf1, m0_1, m1_1 = _pdf_cdf(w1, a1, b1, x)
    out = []
    for t in (0.0, mcid):
        xt = np.clip(x + t, 0.0, 1.0)
        _pdf2, cdf2, m0_2, m1_2 = _pdf_cdf(w2, a2, b2, xt)
        # continuous part of the treatment arm against the control arm's CDF at x + t
        p = (pdf1 * wq[None, :]) @ (1.0 - cdf2).T
        # treatment point mass at 0: P(Y > t); at 1: P(Y > 1 + t) = 0
        if m0_1.any():
            _p, c_at_t, *_ = _pdf_cdf(w2, a2, b2, np.array([min(max(t, 0.0), 1.0)]))
            p += m0_1[:, None] * (1.0 - c_at_t[:, 0])[None, :] * (t >= 0)
        out.append(np.clip(p, 0.0, 1.0))
    return out[0], out[1]


def ppos_binary(y1: np.ndarray, y2: np.ndarray, n1: int, n2: int, N1: int, N2: int, prior, success: np.ndarray) -> np.ndarray:
    """Predictive probability that the final analysis (arm sizes N1, N2) succeeds, given interim counts (y1 of n1, y2 of n2).

    Exact: the remaining counts have beta-binomial (mixture) predictive distributions; ``success`` is the final
    analysis' success indicator over all final outcomes, (N1+1) × (N2+1).
    """
    r1, r2 = N1 - n1, N2 - n2
    out = np.empty(len(y1))
    keys = np.stack([y1, y2], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    k1 = np.arange(r1 + 1)
    k2 = np.arange(r2 + 1)
    res = np.empty(len(uniq))
    for u, (a_, b_) in enumerate(uniq):
        w1, a1, b1 = _posterior(prior[0], np.array([a_]), n1)
        w2, a2, b2 = _posterior(prior[1], np.array([b_]), n2)
        p1 = sum(w1[0, k] * stats.betabinom.pmf(k1, r1, max(a1[0, k], 1e-12), max(b1[0, k], 1e-12)) for k in range(w1.shape[1]))
        p2 = sum(w2[0, k] * stats.betabinom.pmf(k2, r2, max(a2[0, k], 1e-12), max(b2[0, k], 1e-12)) for k in range(w2.shape[1]))
        res[u] = p1 @ success[a_:a_ + r1 + 1, b_:b_ + r2 + 1] @ p2
    out[:] = res[inv.ravel()]
    return out
