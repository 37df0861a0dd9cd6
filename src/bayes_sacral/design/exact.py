"""Exact engines: operating characteristics with no Monte Carlo error (except over design-prior draws, for assurance).

The stratum of each of N patients is random (the prevalences), so the stratum split (n_1, ..., n_K) is multinomial; the
engines sum over it exactly, enumerating the compositions of N into the K strata of positive prevalence (terms whose
total probability is below 1e-12 are dropped). With *stratified* allocation the sequence within each stratum fixes the
arm sizes of the split; with *simple* allocation the sequence over all patients fixes the arm totals and each arm's
split is multinomial on its own (two independent splits are summed over).

Score: given the cell sizes, the success probability is closed-form: a non-central t tail for the reference analysis
(the one-sided t test), a normal tail beyond the decision boundary on the estimate for known-σ analyses (the boundary
found by vectorised bisection: the rule is monotone in the estimate), and a one-dimensional quadrature over the
residual-variance estimate for the dual criterion.

Events: each arm's pooled count is the sum of its per-stratum binomials, so its distribution is their convolution;
all (N_T + 1) × (N_C + 1) pooled outcomes are weighted by it and summed over the stratum split. With simple allocation
the strata of an arm's patients are independent of the arm, so its pooled count is exactly binomial with the
prevalence-weighted rate (no split to sum over).

When the split has too many terms (:data:`COMPOSITION_LIMIT`) the runner falls back to the vectorized engine and says so.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
from scipy import special, stats

from .analysis import binary_tables, normal_posterior_probs
from .context import Context, treatment_count

__all__ = ["exact_success", "success_table", "split_terms", "exact_unavailable", "compositions", "COMPOSITION_LIMIT"]

#: Largest number of stratum-split terms the exact engine sums over (per sample size); beyond it, vectorized.
COMPOSITION_LIMIT = 200_000
#: Total probability of the stratum splits that may be dropped (the smallest terms).
PRUNE_MASS = 1e-12


def _gl_unit(n: int = 64):
    g, w = np.polynomial.legendre.leggauss(n)
    return (g + 1) / 2, w / 2


@lru_cache(maxsize=64)
def compositions(N: int, K: int) -> np.ndarray:
    """Every way of writing N as an ordered sum of K non-negative integers: a (comb(N + K − 1, K − 1), K) array."""
    if K == 1:
        return np.array([[N]], dtype=np.int64)
    parts = []
    for first in range(N + 1):
        sub = compositions(N - first, K - 1)
        parts.append(np.column_stack([np.full(len(sub), first, dtype=np.int64), sub]))
    out = np.vstack(parts)
    out.flags.writeable = False
    return out


def _multinomial(N: int, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits of N patients over the strata (only those of positive prevalence vary) and their probabilities, pruned."""
    K = len(prev)
    pos = np.where(prev > 0)[0]
    comp = compositions(N, len(pos)) if len(pos) else np.zeros((1, 0), dtype=np.int64)
    p = prev[pos]
    logw = special.gammaln(N + 1) - special.gammaln(comp + 1).sum(axis=1) + (comp * np.log(p)[None, :]).sum(axis=1)
    w = np.exp(logw)
    full = np.zeros((len(comp), K), dtype=np.int64)
    full[:, pos] = comp
    return _prune(full, w)


def _prune(n: np.ndarray, w: np.ndarray, mass: float = PRUNE_MASS):
    order = np.argsort(w)
    dropped = np.cumsum(w[order]) <= mass
    keep = np.sort(order[~dropped])
    return n[keep], w[keep]


def _positive(ctx: Context) -> int:
    return int(np.sum(ctx.prevalence > 0))


def split_terms(ctx: Context, N: int) -> int:
    """Number of stratum-split terms the exact engine would sum over at total sample size N (before pruning)."""
    Kp = max(_positive(ctx), 1)
    if ctx.kind == "event" and ctx.scheme == "simple":
        return 1
    if ctx.scheme == "simple":
        n1 = int(treatment_count(N, ctx.q))
        return comb(n1 + Kp - 1, Kp - 1) * comb(N - n1 + Kp - 1, Kp - 1)
    return comb(N + Kp - 1, Kp - 1)


def exact_unavailable(ctx: Context, sizes: list[int]) -> str | None:
    """Why the exact engine cannot run this design (too many stratum splits), or None."""
    for N in sizes:
        c = split_terms(ctx, N)
        if c > COMPOSITION_LIMIT:
            how = ("pairs of stratum splits of the two arms" if ctx.scheme == "simple" else "stratum splits")
            return (f"exact enumeration would sum over {c:,} {how} at N = {N} ({_positive(ctx)} strata; the limit is "
                    f"{COMPOSITION_LIMIT:,}): the vectorized engine was used instead")
    return None


def cell_splits(ctx: Context, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights (C,), treatment cell sizes (C, K), control cell sizes (C, K)) of every stratum split at sample size N."""
    if ctx.scheme == "stratified":
        n, w = _multinomial(N, ctx.prevalence)
        n1 = treatment_count(n, ctx.q)
        return w, n1, n - n1
    N1 = int(treatment_count(N, ctx.q))
    a, wa = _multinomial(N1, ctx.prevalence)
    b, wb = _multinomial(N - N1, ctx.prevalence)
    n1 = np.repeat(a, len(b), axis=0)
    n0 = np.tile(b, (len(a), 1))
    w = np.outer(wa, wb).ravel()
    keep = np.argsort(w)
    drop = np.cumsum(w[keep]) <= PRUNE_MASS
    idx = np.sort(keep[~drop])
    return w[idx], n1[idx], n0[idx]


# ---------------------------------------------------------------------- score
def _boundaries(ctx: Context, v: np.ndarray) -> np.ndarray:
    """Smallest estimate d at which the known-σ analysis declares success, for each v (the rule is monotone in d)."""
    se = ctx.sigma_analysis * np.sqrt(v)

    def bisect(target_t: float, level: float) -> np.ndarray:
        lo = -50 * se - 100 - 10 * abs(target_t)
        hi = 50 * se + 100 + 10 * abs(target_t)
        for _ in range(200):
            mid = (lo + hi) / 2
            p = normal_posterior_probs(mid, v, ctx.sigma_analysis, ctx.normal_prior, (target_t,))[0]
            up = p >= level
            hi = np.where(up, mid, hi)
            lo = np.where(up, lo, mid)
            if np.all(hi - lo <= 1e-12 * np.maximum(1.0, np.abs(hi))):
                break
        return hi

    k = bisect(0.0, ctx.threshold)
    if ctx.rule == "dual":
        k = np.maximum(k, bisect(ctx.mcid, 0.5))
    return k


def _score_given_cells(ctx: Context, N: int, n1: np.ndarray, n0: np.ndarray, benefit: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Success probability for each split (rows of n1, n0) and design draw (benefit, sig): a (C, D) array."""
    need = ctx.weights > 0
    w = ctx.weights
    valid = np.all(n1[:, need] > 0, axis=1) & np.all(n0[:, need] > 0, axis=1)
    s1, s0 = np.maximum(n1, 1), np.maximum(n0, 1)
    v = ((w[None, :] ** 2) * (1 / s1 + 1 / s0))[:, need].sum(axis=1)
    cells = (n1 > 0).sum(axis=1) + (n0 > 0).sum(axis=1)
    nu = N - cells
    out = np.zeros((len(v), len(benefit)))
    if ctx.prior_name == "reference":
        valid &= nu >= 1
        if not valid.any():
            return out
        vv, nn = v[valid], nu[valid].astype(float)
        tc = stats.t.ppf(ctx.threshold, nn)
        lam = benefit[None, :] / (sig[None, :] * np.sqrt(vv)[:, None])
        if ctx.rule == "posterior":
            out[valid] = stats.nct.sf(tc[:, None], nn[:, None], lam)
            return out
        # dual: success iff d >= max(mcid, tc·s·√v), with s² = σ² χ²_ν / ν independent of d
        u, wq = _gl_unit(96)
        res = np.empty((len(vv), len(benefit)))
        for i in range(len(vv)):
            chi = stats.chi2.ppf(u, nn[i])
            s = sig[:, None] * np.sqrt(chi[None, :] / nn[i])
            bound = np.maximum(ctx.mcid, tc[i] * s * np.sqrt(vv[i]))
            res[i] = (stats.norm.sf((bound - benefit[:, None]) / (sig[:, None] * np.sqrt(vv[i]))) * wq[None, :]).sum(axis=1)
        out[valid] = res
        return out
    if not valid.any():
        return out
    vv = v[valid]
    uv, inv = np.unique(vv, return_inverse=True)
    k = _boundaries(ctx, uv)[inv]
    out[valid] = stats.norm.sf((k[:, None] - benefit[None, :]) / (sig[None, :] * np.sqrt(vv)[:, None]))
    return out


def _score_success(ctx: Context, tr: dict, N: int) -> np.ndarray:
    benefit = ctx.benefit(tr["delta"]) @ ctx.weights
    sig = np.broadcast_to(np.asarray(tr["sigma"], float), benefit.shape).copy() if np.ndim(tr["sigma"]) else np.full_like(benefit, float(tr["sigma"]))
    w, n1, n0 = cell_splits(ctx, N)
    out = np.zeros_like(benefit, dtype=float)
    chunk = max(1, 2_000_000 // max(len(benefit), 1))
    for s in range(0, len(w), chunk):
        out += w[s:s + chunk] @ _score_given_cells(ctx, N, n1[s:s + chunk], n0[s:s + chunk], benefit, sig)
    return out


# ---------------------------------------------------------------------- events
def success_table(ctx: Context, n1: int, n2: int) -> np.ndarray:
    """Success indicator over all pooled outcomes (y_T of n1, y_C of n2): an (n1 + 1) × (n2 + 1) boolean array."""
    P, Q = binary_tables(int(n1), int(n2), ctx.binary_prior, ctx.mcid)
    S = P >= ctx.threshold
    if ctx.rule == "dual":
        S &= Q >= 0.5
    return S


def _binom_rows(n: int, p: np.ndarray) -> np.ndarray:
    """Binomial(n, p_d) pmfs, one row per draw: (D, n + 1)."""
    return stats.binom.pmf(np.arange(n + 1)[None, :], n, np.asarray(p, float)[:, None])


def _conv_last(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Convolution along the last axis of two arrays of pmfs with equal leading shapes (direct, exact up to rounding)."""
    if a.shape[-1] < b.shape[-1]:
        a, b = b, a
    out = np.zeros((*a.shape[:-1], a.shape[-1] + b.shape[-1] - 1))
    for j in range(b.shape[-1]):
        out[..., j:j + a.shape[-1]] += a * b[..., j:j + 1]
    return out


def _pooled_pmfs(sizes: np.ndarray, u: np.ndarray, total: int) -> np.ndarray:
    """pmf of an arm's pooled count, the sum of independent Binomial(sizes[c, s], u[d, s]) over strata s, for every split c
    (rows of ``sizes``, all with the same arm total) and draw d: a (C, D, total + 1) array."""
    C, K = sizes.shape
    D = u.shape[0]
    pmf = np.ones((C, D, 1))
    for s in range(K):
        m = int(sizes[:, s].max())
        if m == 0:
            continue
        k = np.arange(m + 1)
        vals, inv = np.unique(sizes[:, s], return_inverse=True)  # each distinct cell size once
        tab = stats.binom.pmf(k[None, None, :], vals[:, None, None], u[None, :, s, None])  # zero beyond each n
        pmf = _conv_last(pmf, tab[inv.ravel()])[..., :total + 1]
    if pmf.shape[-1] < total + 1:
        pmf = np.concatenate([pmf, np.zeros((C, D, total + 1 - pmf.shape[-1]))], axis=-1)
    return pmf


def _event_success(ctx: Context, tr: dict, N: int) -> np.ndarray:
    u_t = np.atleast_2d(tr["u_t"])
    u_c = np.atleast_2d(tr["u_c"])
    D = max(len(u_t), len(u_c))
    u_t = np.broadcast_to(u_t, (D, ctx.K))
    u_c = np.broadcast_to(u_c, (D, ctx.K))
    if ctx.scheme == "simple":
        n1 = int(treatment_count(N, ctx.q))
        S = success_table(ctx, n1, N - n1).astype(float)
        pm1 = _binom_rows(n1, u_t @ ctx.prevalence)
        pm2 = _binom_rows(N - n1, u_c @ ctx.prevalence)
        return np.einsum("di,ij,dj->d", pm1, S, pm2)
    w, c1, c0 = cell_splits(ctx, N)
    arm_total = c1.sum(axis=1)
    out = np.zeros(D)
    step = max(1, 20_000 // D)  # splits per block: bounds the (splits, draws, outcomes) arrays
    for n1 in np.unique(arm_total):
        n1 = int(n1)
        g = np.where(arm_total == n1)[0]
        S = success_table(ctx, n1, N - n1).astype(float)
        for s in range(0, len(g), step):
            idx = g[s:s + step]
            pm1 = _pooled_pmfs(c1[idx], u_t, n1)
            pm2 = _pooled_pmfs(c0[idx], u_c, N - n1)
            out += w[idx] @ ((pm1 @ S) * pm2).sum(axis=-1)
    return out


def exact_success(ctx: Context, scenario: str, N: int) -> np.ndarray:
    """Success probability for each design-prior draw of ``scenario`` at total sample size N (exact given the draw)."""
    tr = ctx.truth[scenario]
    if ctx.kind == "score":
        return _score_success(ctx, tr, N)
    return _event_success(ctx, tr, N)
