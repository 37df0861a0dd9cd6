"""Vectorised Monte Carlo engine: a whole batch of simulated trials at once, as arrays, with interim looks.

Each trial enrols N patients in sequence: the fracture stratum of each is random (the prevalence), the arm follows the
allocation sequence within the stratum (MSTS) or overall (secondary procedures, analysed pooled). Interim analyses
use the first n_k patients. The analyses are the conjugate ones of :mod:`bayes_sacral.design.analysis`.
"""

from __future__ import annotations

import numpy as np

from .analysis import normal_posterior_probs, ppos_binary, reference_probs
from .context import Context, psfs_count
from .exact import binary_success_table

__all__ = ["vectorized_batch", "looks_for", "BATCH_FIELDS"]

BATCH_FIELDS = ("success", "stop_look", "stop_reason", "n_used", "prob_benefit")
PPOS_SIMS = 64


def looks_for(fractions: list[float], N: int) -> list[int]:
    looks = sorted({max(4, int(round(f * N))) for f in fractions if round(f * N) < N})
    return [*looks, N]


def _draw_index(offset: int, T: int, D: int) -> np.ndarray:
    """Trials cycle through the design-prior draws in order, so a trial's draw does not depend on batching."""
    return (offset + np.arange(T)) % D


# ---------------------------------------------------------------------- MSTS
def _msts_arrays(ctx: Context, rng: np.random.Generator, T: int, N: int, delta: np.ndarray, sig: np.ndarray):
    frac = (rng.random((T, N)) >= ctx.prevalence[0]).astype(np.int8)  # 0 pathological, 1 impending
    m = np.zeros((T, N), dtype=np.int32)
    for f in (0, 1):
        is_f = frac == f
        m = np.where(is_f, np.cumsum(is_f, axis=1), m)
    psfs = (psfs_count(m, ctx.q) - psfs_count(m - 1, ctx.q)).astype(np.int8)
    y = delta[np.arange(T)[:, None], frac] * psfs + sig[:, None] * rng.standard_normal((T, N))
    return frac, psfs, y


def _cell_stats(frac, psfs, y, n: int):
    """Counts, means and pooled within-cell sum of squares over the first n patients: cells (arm, fracture)."""
    fr, ps, yy = frac[:, :n], psfs[:, :n], y[:, :n]
    cnt = np.zeros((y.shape[0], 2, 2))
    mean = np.zeros((y.shape[0], 2, 2))
    ss = np.zeros(y.shape[0])
    for a in (0, 1):  # 0 = PSFS, 1 = sacroplasty
        for f in (0, 1):
            mask = (ps == (1 - a)) & (fr == f)
            c = mask.sum(axis=1)
            s = np.where(mask, yy, 0.0).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mu = np.where(c > 0, s / np.maximum(c, 1), 0.0)
            ss += np.where(mask, (yy - mu[:, None]) ** 2, 0.0).sum(axis=1)
            cnt[:, a, f], mean[:, a, f] = c, mu
    return cnt, mean, ss


def _msts_probs(ctx: Context, cnt, mean, ss, N_used):
    w = ctx.weights
    need = w > 0
    valid = np.all(cnt[:, :, need] > 0, axis=(1, 2))
    safe = np.maximum(cnt, 1)
    d = ((mean[:, 0, :] - mean[:, 1, :]) * w[None, :]).sum(axis=1)
    v = ((w[None, :] ** 2) * (1 / safe[:, 0, :] + 1 / safe[:, 1, :]))[:, need].sum(axis=1)
    nu = N_used - (cnt > 0).sum(axis=(1, 2))
    if ctx.prior_name == "reference":
        valid &= nu >= 1
        s2 = ss / np.maximum(nu, 1)
        p0, pm = reference_probs(d, v, np.maximum(s2, 1e-12), np.maximum(nu, 1), (0.0, ctx.mcid))
    else:
        p0, pm = normal_posterior_probs(d, v, ctx.sigma_analysis, ctx.normal_prior, (0.0, ctx.mcid))
    return np.where(valid, p0, 0.0), np.where(valid, pm, 0.0), valid


def _final_rule(ctx: Context, p0, pm, valid):
    ok = valid & (p0 >= ctx.threshold)
    if ctx.rule == "dual":
        ok &= pm >= 0.5
    return ok


def _msts_ppos(ctx, rng, cnt, mean, ss, n_now, N, frac_now_counts, sig_plug):
    """Predictive probability of final success by simulating M continuations of each trial from its posterior predictive."""
    T = cnt.shape[0]
    M = PPOS_SIMS
    R = N - n_now
    s_plug = np.broadcast_to(sig_plug, (T,))
    # cell means: flat-prior posterior N(mean, σ²/n), σ at its plug-in value
    mu = mean[:, None] + s_plug[:, None, None, None] / np.sqrt(np.maximum(cnt[:, None], 1)) * rng.standard_normal((T, M, 2, 2))
    fr = (rng.random((T, M, R)) >= ctx.prevalence[0]).astype(np.int8)
    start = np.stack([frac_now_counts[:, 0], frac_now_counts[:, 1]], axis=1)  # patients per stratum so far
    m = np.zeros((T, M, R), dtype=np.int32)
    for f in (0, 1):
        is_f = fr == f
        m = np.where(is_f, start[:, None, None, f] + np.cumsum(is_f, axis=2), m)
    ps = psfs_count(m, ctx.q) - psfs_count(m - 1, ctx.q)
    arm = 1 - ps  # 0 = PSFS
    idxT = np.arange(T)[:, None, None]
    idxM = np.arange(M)[None, :, None]
    yf = mu[idxT, idxM, arm, fr] + s_plug[:, None, None] * rng.standard_normal((T, M, R))
    cnt_f = np.zeros((T, M, 2, 2))
    sum_f = np.zeros((T, M, 2, 2))
    sq_f = np.zeros((T, M, 2, 2))
    for a in (0, 1):
        for f in (0, 1):
            mask = (arm == a) & (fr == f)
            cnt_f[..., a, f] = mask.sum(axis=2)
            sum_f[..., a, f] = np.where(mask, yf, 0.0).sum(axis=2)
            sq_f[..., a, f] = np.where(mask, yf**2, 0.0).sum(axis=2)
    c0 = cnt[:, None]
    tot = c0 + cnt_f
    mean_fin = np.where(tot > 0, (c0 * mean[:, None] + sum_f) / np.maximum(tot, 1), 0.0)
    # pooled within-cell SS of the final data: current SS + future SS about the final cell means
    ss_old_shift = (c0 * (mean[:, None] - mean_fin) ** 2).sum(axis=(2, 3))
    ss_new = (sq_f - 2 * mean_fin * sum_f + cnt_f * mean_fin**2).sum(axis=(2, 3))
    ss_fin = ss[:, None] + ss_old_shift + ss_new
    p0, pm, valid = _msts_probs(ctx, tot.reshape(T * M, 2, 2), mean_fin.reshape(T * M, 2, 2), ss_fin.reshape(-1), np.full(T * M, N))
    ok = _final_rule(ctx, p0, pm, valid).reshape(T, M)
    return ok.mean(axis=1)


def _apply_looks(ctx, looks, interims, probs_at, ppos_at, T):
    """Interim stopping then the final rule; probs_at(k) -> (p0, pm, valid) at look k."""
    alive = np.ones(T, dtype=bool)
    success = np.zeros(T, dtype=bool)
    stop_look = np.full(T, len(looks) - 1)
    stop_reason = np.zeros(T, dtype=np.int8)  # 0 final analysis, 1 efficacy stop, 2 futility stop
    prob_final = np.zeros(T)
    for k in range(len(looks)):
        p0, pm, valid = probs_at(k)
        if k < len(looks) - 1:
            spec = interims[k]
            eff = alive & valid & (p0 >= spec.efficacy) if spec.efficacy is not None else np.zeros(T, dtype=bool)
            fut = np.zeros(T, dtype=bool)
            if spec.futility is not None:
                q = ppos_at(k, alive & ~eff) if spec.futility_rule == "predictive" else pm
                fut = alive & ~eff & valid & (q < spec.futility)
            success |= eff
            for mask, reason in ((eff, 1), (fut, 2)):
                stop_look[mask] = k
                stop_reason[mask] = reason
                prob_final[mask] = p0[mask]
            alive &= ~(eff | fut)
        else:
            ok = _final_rule(ctx, p0, pm, valid)
            success |= alive & ok
            prob_final[alive] = p0[alive]
    n_used = np.asarray(looks)[stop_look]
    return {"success": success, "stop_look": stop_look, "stop_reason": stop_reason, "n_used": n_used, "prob_benefit": prob_final}


def vectorized_batch(ctx: Context, scenario: str, N: int, fractions: list[float], interims: list, T: int, seed, offset: int) -> dict:
    """Simulate and analyse T trials of N patients; returns per-trial arrays (see :data:`BATCH_FIELDS`)."""
    rng = np.random.default_rng(seed)
    tr = ctx.truth[scenario]
    looks = looks_for(fractions, N)
    if ctx.endpoint == "msts":
        D = len(tr["delta"])
        idx = _draw_index(offset, T, D)
        delta = tr["delta"][idx]
        sig = np.broadcast_to(tr["sigma"], (D,))[idx] if np.ndim(tr["sigma"]) else np.full(T, float(tr["sigma"]))
        frac, psfs, y = _msts_arrays(ctx, rng, T, N, delta, sig)
        stats_at = {}

        def probs_at(k):
            n = looks[k]
            cnt, mean, ss = _cell_stats(frac, psfs, y, n)
            stats_at[k] = (cnt, mean, ss)
            return _msts_probs(ctx, cnt, mean, ss, np.full(T, n))

        def ppos_at(k, mask):
            out = np.ones(T)
            if not mask.any():
                return out
            cnt, mean, ss = stats_at[k]
            n = looks[k]
            fcount = np.stack([(frac[:, :n] == 0).sum(axis=1), (frac[:, :n] == 1).sum(axis=1)], axis=1)
            if ctx.prior_name == "reference":
                nu = np.maximum(n - (cnt > 0).sum(axis=(1, 2)), 1)
                plug = np.sqrt(ss / nu)
            else:
                plug = np.full(T, ctx.sigma_analysis)
            sel = np.where(mask)[0]
            out[sel] = _msts_ppos(ctx, rng, cnt[sel], mean[sel], ss[sel], n, N, fcount[sel], plug[sel])
            return out

        return _apply_looks(ctx, looks, interims, probs_at, ppos_at, T)
    # secondary procedures: pooled over strata, allocation sequence over all patients
    D = len(np.atleast_1d(tr["p_psfs"]))
    idx = _draw_index(offset, T, D)
    p1 = np.atleast_1d(tr["p_psfs"])[idx]
    p2 = np.atleast_1d(tr["p_sacro"])[idx]
    k = np.arange(1, N + 1)
    psfs = (psfs_count(k, ctx.q) - psfs_count(k - 1, ctx.q)).astype(bool)
    ev = rng.random((T, N)) < np.where(psfs[None, :], p1[:, None], p2[:, None])
    y1c = np.cumsum(ev & psfs[None, :], axis=1)
    y2c = np.cumsum(ev & ~psfs[None, :], axis=1)
    S_final, N1, N2 = binary_success_table(ctx, N)
    from .analysis import binary_tables

    def probs_at(kk):
        n = looks[kk]
        n1 = int(psfs_count(n, ctx.q))
        P, Q = binary_tables(n1, n - n1, ctx.binary_prior, ctx.mcid)
        y1, y2 = y1c[:, n - 1], y2c[:, n - 1]
        return P[y1, y2], Q[y1, y2], np.ones(T, dtype=bool)

    def ppos_at(kk, mask):
        n = looks[kk]
        n1 = int(psfs_count(n, ctx.q))
        out = np.ones(T)
        if mask.any():
            sel = np.where(mask)[0]
            out[sel] = ppos_binary(y1c[sel, n - 1], y2c[sel, n - 1], n1, n - n1, N1, N2, ctx.binary_prior, S_final)
        return out

    return _apply_looks(ctx, looks, interims, probs_at, ppos_at, T)
