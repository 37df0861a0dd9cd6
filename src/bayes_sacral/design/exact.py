"""Exact engines: operating characteristics with no Monte Carlo error (except over design-prior draws, for assurance).

MSTS: the number of pathological fractures among N patients is Binomial(N, prevalence) and is summed over exactly;
within each stratum the allocation sequence fixes the arm sizes. Given the cell sizes, the success probability is
closed-form: a non-central t tail for the reference analysis (the one-sided t test), a normal tail beyond the
decision boundary on the estimate for known-σ analyses (found by root finding when the prior is a mixture), and a
one-dimensional quadrature over the residual-variance estimate for the dual criterion.

Secondary procedures: all (N_PSFS + 1) × (N_sacro + 1) outcomes are enumerated with their binomial probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from .analysis import binary_tables, normal_posterior_probs
from .context import Context, psfs_count

__all__ = ["exact_success", "binary_success_table"]


def _gl_unit(n: int = 64):
    g, w = np.polynomial.legendre.leggauss(n)
    return (g + 1) / 2, w / 2


def _boundary(ctx: Context, v: float) -> float:
    """Smallest estimate d at which the known-σ analysis declares success (the rule is monotone in d)."""
    def ok(d, target_fn):
        return target_fn(d)

    se = ctx.sigma_analysis * np.sqrt(v)
    lo, hi = -50 * se - 100, 50 * se + 100

    def f_benefit(d):
        return float(normal_posterior_probs(np.array([d]), np.array([v]), ctx.sigma_analysis, ctx.normal_prior, (0.0,))[0][0]) - ctx.threshold

    k = optimize.brentq(f_benefit, lo, hi, xtol=1e-10)
    if ctx.rule == "dual":
        def f_mcid(d):
            return float(normal_posterior_probs(np.array([d]), np.array([v]), ctx.sigma_analysis, ctx.normal_prior, (ctx.mcid,))[0][0]) - 0.5

        k = max(k, optimize.brentq(f_mcid, lo, hi, xtol=1e-10))
    return k


def _msts_given_cells(ctx: Context, N: int, n1: np.ndarray, n0: np.ndarray, dbar: np.ndarray, sig: np.ndarray) -> np.ndarray:
    need = ctx.weights > 0
    if (n1[need] == 0).any() or (n0[need] == 0).any():
        return np.zeros_like(dbar)
    v = float(np.sum((ctx.weights[need] ** 2) * (1 / n1[need] + 1 / n0[need])))
    cells = int(np.sum(n1 > 0) + np.sum(n0 > 0))
    nu = N - cells
    if ctx.prior_name == "reference":
        if nu < 1:
            return np.zeros_like(dbar)
        tc = stats.t.ppf(ctx.threshold, nu)
        lam = dbar / (sig * np.sqrt(v))
        if ctx.rule == "posterior":
            return stats.nct.sf(tc, nu, lam)
        # dual: success iff d >= max(mcid, tc·s·√v), with s² = σ² χ²_ν / ν independent of d
        u, w = _gl_unit(96)
        chi = stats.chi2.ppf(u, nu)
        s = sig[:, None] * np.sqrt(chi[None, :] / nu)
        bound = np.maximum(ctx.mcid, tc * s * np.sqrt(v))
        return (stats.norm.sf((bound - dbar[:, None]) / (sig[:, None] * np.sqrt(v))) * w[None, :]).sum(axis=1)
    k = _boundary(ctx, v)
    return stats.norm.sf((k - dbar) / (sig * np.sqrt(v)))


def exact_success(ctx: Context, scenario: str, N: int) -> np.ndarray:
    """Success probability for each design-prior draw of ``scenario`` at total sample size N (exact given the draw)."""
    tr = ctx.truth[scenario]
    if ctx.endpoint == "msts":
        dbar = tr["delta"] @ ctx.weights
        sig = tr["sigma"] * np.ones_like(dbar)
        out = np.zeros_like(dbar, dtype=float)
        npath = np.arange(N + 1)
        pmf = stats.binom.pmf(npath, N, ctx.prevalence[0])
        for n_p, w in zip(npath, pmf, strict=True):
            if w < 1e-13:
                continue
            nf = np.array([n_p, N - n_p])
            n1 = psfs_count(nf, ctx.q)
            out += w * _msts_given_cells(ctx, N, n1, nf - n1, dbar, sig)
        return out
    S, n1, n2 = binary_success_table(ctx, N)
    p1 = np.atleast_1d(tr["p_psfs"])
    p2 = np.atleast_1d(tr["p_sacro"])
    pmf1 = stats.binom.pmf(np.arange(n1 + 1)[None, :], n1, p1[:, None])
    pmf2 = stats.binom.pmf(np.arange(n2 + 1)[None, :], n2, p2[:, None])
    return np.einsum("di,ij,dj->d", pmf1, S.astype(float), pmf2)


def binary_success_table(ctx: Context, N: int) -> tuple[np.ndarray, int, int]:
    """Success indicator over all outcomes (y_PSFS, y_sacro) of a trial of N patients, and the arm sizes."""
    n1 = int(psfs_count(N, ctx.q))
    n2 = N - n1
    P, Q = binary_tables(n1, n2, ctx.binary_prior, ctx.mcid)
    S = P >= ctx.threshold
    if ctx.rule == "dual":
        S &= Q >= 0.5
    return S, n1, n2
