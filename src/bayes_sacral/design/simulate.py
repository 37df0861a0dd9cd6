"""Vectorised Monte Carlo engine: a whole batch of simulated trials at once, as arrays, with interim looks.

Each trial enrols N patients in sequence: the stratum of each is random (the prevalences); the arm follows the
allocation sequence within the patient's stratum (``stratified``) or over all patients (``simple``). A score endpoint is
simulated per patient on the benefit scale (normal, the residual SD of the truth) and analysed by stratum; an event
endpoint is simulated per patient with the rate of its arm and stratum, and analysed on the arms' pooled counts.
Interim analyses use the first n_k patients. The analyses are the conjugate ones of :mod:`bayes_sacral.design.analysis`.
"""

from __future__ import annotations

import numpy as np

from .analysis import binary_tables, normal_posterior_probs, ppos_binary, reference_probs
from .context import Context, treatment_count
from .exact import success_table

__all__ = ["vectorized_batch", "looks_for", "BATCH_FIELDS", "FIT_FIELDS", "fit_defaults", "draw_strata", "allocate", "score_looks",
           "split_treated", "apply_looks", "draw_index"]

BATCH_FIELDS = ("success", "stop_look", "stop_reason", "n_used", "prob_benefit")
#: Per-trial fit diagnostics of the full-model engine (the conjugate engines have none: see :func:`fit_defaults`):
#: escalated (a fast-tier fit of the trial was refitted by NUTS), flagged (a fit that decided the trial failed its
#: diagnostics), khat (largest Pareto k̂ of its fast-tier fits), ref_success / ref_prob (the NUTS reference of the
#: validation subsample: -1 / nan outside it).
FIT_FIELDS = ("escalated", "flagged", "khat", "ref_success", "ref_prob")


def fit_defaults(T: int) -> dict:
    """Fit-diagnostic fields of T trials analysed in closed form (nothing escalated, flagged or validated)."""
    return {"escalated": np.zeros(T, dtype=bool), "flagged": np.zeros(T, dtype=bool), "khat": np.full(T, np.nan),
            "ref_success": np.full(T, -1, dtype=np.int8), "ref_prob": np.full(T, np.nan)}
PPOS_SIMS = 64


def looks_for(fractions: list[float], N: int) -> list[int]:
    looks = sorted({max(4, int(round(f * N))) for f in fractions if round(f * N) < N})
    return [*looks, N]


def draw_index(offset: int, T: int, D: int) -> np.ndarray:
    """Trials cycle through the design-prior draws in order, so a trial's draw does not depend on batching."""
    return (offset + np.arange(T)) % D


def draw_strata(ctx: Context, rng: np.random.Generator, shape) -> np.ndarray:
    """Random stratum index of each patient (one uniform per patient: with two strata, index 1 iff u >= prevalence[0])."""
    u = rng.random(shape)
    out = np.zeros(np.shape(u), dtype=np.int8)
    for c in np.cumsum(ctx.prevalence)[:-1]:
        out += u >= c
    return out


def allocate(ctx: Context, strata: np.ndarray, start_counts: np.ndarray | None = None, start_pos: int = 0) -> np.ndarray:
    """Treatment indicator of each patient (last axis = enrolment order) under the allocation sequence.

    stratified: the sequence runs within each stratum (``start_counts``: patients of each stratum enrolled before, shape
    strata.shape[:-1] + (K,)); simple: one sequence over all patients (``start_pos`` patients enrolled before).
    """
    if ctx.scheme == "simple":
        k = start_pos + np.arange(1, strata.shape[-1] + 1)
        t = (treatment_count(k, ctx.q) - treatment_count(k - 1, ctx.q)).astype(np.int8)
        return np.broadcast_to(t, strata.shape).copy()
    m = np.zeros(strata.shape, dtype=np.int32)
    for f in range(ctx.K):
        is_f = strata == f
        base = 0 if start_counts is None else start_counts[..., f][..., None]
        m = np.where(is_f, base + np.cumsum(is_f, axis=-1), m)
    return (treatment_count(m, ctx.q) - treatment_count(m - 1, ctx.q)).astype(np.int8)


# ---------------------------------------------------------------------- score
def split_treated(rng: np.random.Generator, counts: np.ndarray, treated: np.ndarray | int) -> np.ndarray:
    """Treated patients per stratum among newly enrolled ones, under simple allocation: which positions of the sequence
    are treated is fixed, the strata are exchangeable, so the split of ``treated`` over strata holding ``counts``
    (trials × strata) is multivariate hypergeometric (drawn as one hypergeometric per stratum, conditionally)."""
    counts = np.asarray(counts, dtype=np.int64)
    left = np.broadcast_to(np.asarray(treated, dtype=np.int64), counts.shape[:-1]).copy()
    remaining = counts.sum(axis=-1)
    out = np.zeros_like(counts)
    for f in range(counts.shape[-1] - 1):
        rest = remaining - counts[..., f]
        out[..., f] = rng.hypergeometric(counts[..., f], rest, left)
        left -= out[..., f]
        remaining = rest
    out[..., -1] = left
    return out


def score_looks(ctx: Context, rng: np.random.Generator, T: int, looks: list[int], benefit: np.ndarray, sig: np.ndarray) -> list[tuple]:
    """Sufficient statistics of T simulated trials at each look, drawn from their exact sampling distributions instead
    of patient by patient (cost O(trials × cells) per look, not O(trials × patients)).

    Between looks: the new patients' strata are multinomial; their arms follow from the allocation sequence (stratified:
    the within-stratum sequence, deterministic given the stratum counts; simple: hypergeometric over strata); each
    cell's new patients have mean ~ N(μ, σ²/n) and within-cell sum of squares ~ σ² χ²(n − 1), independent; the cell's
    running mean and sum of squares are updated exactly (Chan et al.'s pairwise formula). Arm 0 is the treatment, whose
    cell mean is the stratum's benefit; the control's is 0 (the analyses use differences only).

    Returns per look (counts (T, 2, K), means (T, 2, K), pooled within-cell SS (T,), stratum counts (T, K)).
    """
    K = ctx.K
    cnt = np.zeros((T, 2, K))
    mean = np.zeros((T, 2, K))
    ss = np.zeros((T, 2, K))
    strata = np.zeros((T, K), dtype=np.int64)
    mu = np.stack([benefit, np.zeros_like(benefit)], axis=1)  # (T, 2, K)
    s = np.asarray(sig, dtype=float)[:, None, None]
    out, prev = [], 0
    for n in looks:
        new = rng.multinomial(n - prev, ctx.prevalence, size=T)
        if ctx.scheme == "stratified":
            treated = treatment_count(strata + new, ctx.q) - treatment_count(strata, ctx.q)
        else:
            treated = split_treated(rng, new, int(treatment_count(n, ctx.q) - treatment_count(prev, ctx.q)))
        strata = strata + new
        add = np.stack([treated, new - treated], axis=1).astype(float)
        m_new = mu + s * rng.standard_normal((T, 2, K)) / np.sqrt(np.maximum(add, 1))
        ss_new = np.where(add > 1, s**2 * rng.chisquare(np.maximum(add - 1, 1)), 0.0)
        tot = cnt + add
        delta = np.where(add > 0, m_new - mean, 0.0)
        w = add / np.maximum(tot, 1)
        ss = ss + ss_new + cnt * w * delta**2
        mean = mean + w * delta
        cnt = tot
        out.append((cnt.copy(), np.where(cnt > 0, mean, 0.0), ss.sum(axis=(1, 2)), strata.copy()))
        prev = n
    return out


def _score_probs(ctx: Context, cnt, mean, ss, N_used):
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


def _score_ppos(ctx, rng, cnt, mean, ss, n_now, N, strata_counts, sig_plug):
    """Predictive probability of final success by simulating M continuations of each trial from its posterior predictive."""
    T = cnt.shape[0]
    M = PPOS_SIMS
    R = N - n_now
    K = ctx.K
    s_plug = np.broadcast_to(sig_plug, (T,))
    # cell means: flat-prior posterior N(mean, σ²/n), σ at its plug-in value
    mu = mean[:, None] + s_plug[:, None, None, None] / np.sqrt(np.maximum(cnt[:, None], 1)) * rng.standard_normal((T, M, 2, K))
    # the R patients still to come, by their sufficient statistics (see score_looks): strata multinomial, arms from the
    # allocation sequence, each cell's sum and sum of squares from its mean ~ N(μ, σ²/n) and SS ~ σ² χ²(n − 1)
    new = rng.multinomial(R, ctx.prevalence, size=(T, M))
    start = np.asarray(strata_counts, dtype=np.int64)[:, None, :]
    if ctx.scheme == "stratified":
        treated = treatment_count(start + new, ctx.q) - treatment_count(start, ctx.q)
    else:
        treated = split_treated(rng, new, int(treatment_count(N, ctx.q) - treatment_count(n_now, ctx.q)))
    cnt_f = np.stack([treated, new - treated], axis=2).astype(float)  # (T, M, arm, K), arm 0 = treatment
    s4 = s_plug[:, None, None, None]
    m_new = mu + s4 * rng.standard_normal((T, M, 2, K)) / np.sqrt(np.maximum(cnt_f, 1))
    ss_within = np.where(cnt_f > 1, s4**2 * rng.chisquare(np.maximum(cnt_f - 1, 1)), 0.0)
    sum_f = np.where(cnt_f > 0, cnt_f * m_new, 0.0)
    sq_f = np.where(cnt_f > 0, ss_within + cnt_f * m_new**2, 0.0)
    c0 = cnt[:, None]
    tot = c0 + cnt_f
    mean_fin = np.where(tot > 0, (c0 * mean[:, None] + sum_f) / np.maximum(tot, 1), 0.0)
    # pooled within-cell SS of the final data: current SS + future SS about the final cell means
    ss_old_shift = (c0 * (mean[:, None] - mean_fin) ** 2).sum(axis=(2, 3))
    ss_new = (sq_f - 2 * mean_fin * sum_f + cnt_f * mean_fin**2).sum(axis=(2, 3))
    ss_fin = ss[:, None] + ss_old_shift + ss_new
    p0, pm, valid = _score_probs(ctx, tot.reshape(T * M, 2, K), mean_fin.reshape(T * M, 2, K), ss_fin.reshape(-1), np.full(T * M, N))
    ok = _final_rule(ctx, p0, pm, valid).reshape(T, M)
    return ok.mean(axis=1)


def apply_looks(ctx, looks, interims, probs_at, ppos_at, T):
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


def _score_batch(ctx, rng, tr, T, N, looks, interims, offset):
    D = len(tr["delta"])
    idx = draw_index(offset, T, D)
    benefit = ctx.benefit(tr["delta"])[idx]
    sig = np.broadcast_to(tr["sigma"], (D,))[idx] if np.ndim(tr["sigma"]) else np.full(T, float(tr["sigma"]))
    stats_at = score_looks(ctx, rng, T, looks, benefit, sig)

    def probs_at(k):
        cnt, mean, ss, _ = stats_at[k]
        return _score_probs(ctx, cnt, mean, ss, np.full(T, looks[k]))

    def ppos_at(k, mask):
        out = np.ones(T)
        if not mask.any():
            return out
        cnt, mean, ss, scount = stats_at[k]
        n = looks[k]
        if ctx.prior_name == "reference":
            nu = np.maximum(n - (cnt > 0).sum(axis=(1, 2)), 1)
            plug = np.sqrt(ss / nu)
        else:
            plug = np.full(T, ctx.sigma_analysis)
        sel = np.where(mask)[0]
        out[sel] = _score_ppos(ctx, rng, cnt[sel], mean[sel], ss[sel], n, N, scount[sel], plug[sel])
        return out

    return apply_looks(ctx, looks, interims, probs_at, ppos_at, T)


# ---------------------------------------------------------------------- events
def _event_batch(ctx, rng, tr, T, N, looks, interims, offset):
    u_t_all = np.atleast_2d(tr["u_t"])
    u_c_all = np.atleast_2d(tr["u_c"])
    D = max(len(u_t_all), len(u_c_all))
    idx = draw_index(offset, T, D)
    u_t = np.broadcast_to(u_t_all, (D, ctx.K))[idx]
    u_c = np.broadcast_to(u_c_all, (D, ctx.K))[idx]
    frac = draw_strata(ctx, rng, (T, N))
    treat = allocate(ctx, frac).astype(bool)
    rows = np.arange(T)[:, None]
    rate = np.where(treat, u_t[rows, frac], u_c[rows, frac])
    ev = rng.random((T, N)) < rate
    y1c = np.cumsum(ev & treat, axis=1)
    y2c = np.cumsum(ev & ~treat, axis=1)
    n1c = np.cumsum(treat, axis=1)

    def probs_at(k):
        n = looks[k]
        n1 = n1c[:, n - 1]
        y1, y2 = y1c[:, n - 1], y2c[:, n - 1]
        p0 = np.zeros(T)
        pm = np.zeros(T)
        for v in np.unique(n1):
            sel = n1 == v
            P, Q = binary_tables(int(v), int(n - v), ctx.binary_prior, ctx.mcid)
            p0[sel] = P[y1[sel], y2[sel]]
            pm[sel] = Q[y1[sel], y2[sel]]
        return p0, pm, np.ones(T, dtype=bool)

    def ppos_at(k, mask):
        n = looks[k]
        out = np.ones(T)
        if not mask.any():
            return out
        sel = np.where(mask)[0]
        n1 = n1c[sel, n - 1]
        y1, y2 = y1c[sel, n - 1], y2c[sel, n - 1]
        if ctx.scheme == "simple":
            finals = np.full((len(sel), 1), int(treatment_count(N, ctx.q)))
        else:
            # the final arm sizes depend on the strata of the patients still to come: M draws of their split
            counts = np.stack([(frac[sel, :n] == f).sum(axis=1) for f in range(ctx.K)], axis=1)
            future = rng.multinomial(N - n, ctx.prevalence, size=(len(sel), PPOS_SIMS))
            finals = treatment_count(counts[:, None, :] + future, ctx.q).sum(axis=2)
        res = np.zeros(len(sel))
        for n1v in np.unique(n1):
            rows_ = np.where(n1 == n1v)[0]
            for N1 in np.unique(finals[rows_]):
                share = (finals[rows_] == N1).mean(axis=1)
                use = rows_[share > 0]
                S = success_table(ctx, int(N1), int(N - N1))
                res[use] += share[share > 0] * ppos_binary(y1[use], y2[use], int(n1v), int(n - n1v), int(N1), int(N - N1),
                                                            ctx.binary_prior, S)
        out[sel] = res
        return out

    return apply_looks(ctx, looks, interims, probs_at, ppos_at, T)


def vectorized_batch(ctx: Context, scenario: str, N: int, fractions: list[float], interims: list, T: int, seed, offset: int) -> dict:
    """Simulate and analyse T trials of N patients; returns per-trial arrays (see :data:`BATCH_FIELDS`)."""
    rng = np.random.default_rng(seed)
    tr = ctx.truth[scenario]
    looks = looks_for(fractions, N)
    if ctx.kind == "score":
        return _score_batch(ctx, rng, tr, T, N, looks, interims, offset)
    return _event_batch(ctx, rng, tr, T, N, looks, interims, offset)
