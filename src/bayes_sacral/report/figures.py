"""Manuscript figures, one function per figure; each returns a matplotlib Figure in the house style.

Effects are drawn with their 95% highest-density interval (thin) and 50% interval (thick) around the median; 0 and
the decision threshold (the card's MCID) are marked on the side of benefit. Units are on every axis: a score's points with
percent of its range on a secondary axis, or probabilities. Labels come from the study card and the model kind.

Densities: conjugate posteriors (and priors) are drawn from their closed forms (Beta marginals, the exact density of a
difference of two Betas); other draws through a Gaussian KDE reflected at the bounds of the quantity's support, so a
rate's density near 0 is not pulled to zero. Priors with a closed-form density are drawn from it on a dense grid.
Legends sit outside the data area (below the panels).
"""

from __future__ import annotations

import functools
import textwrap

import numpy as np
import xarray as xr
from scipy import stats

from ..checks import blocks, is_item_scores, item_scores
from ..precision import format_probability, probability_mcse
from ..priors import prior_pdf
from ..summarize import element_name
from .style import (
    DOUBLE,
    PALETTE,
    SINGLE,
    arm_colours,
    from_percent_of_range,
    new_figure,
    percent_of_range,
)

__all__ = ["FIGURE_KINDS", "forest", "effect_density", "prior_posterior", "ppc", "rates", "sensitivity", "prior_grid",
           "summary_forest", "grid_cells", "rank", "trace", "figure_for", "density_curve", "gaussian_kde_grid"]

def _draws(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=float).reshape(-1)


def _hdi(x: np.ndarray, prob: float) -> tuple[float, float]:
    import arviz_stats as azs

    lo, hi = azs.hdi(x[np.isfinite(x)], prob=prob)
    return float(lo), float(hi)


def _elements(post: xr.Dataset, var: str, card=None) -> list[tuple[str, np.ndarray]]:
    return [(lab, x) for lab, _raw, x in _elements_raw(post, var, card)]


def _elements_raw(post: xr.Dataset, var: str, card=None) -> list[tuple[str, list[str], np.ndarray]]:
    """(display label, raw coordinate labels, draws) per element of ``var``."""
    da = post[var]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if not extra:
        return [("", [], _draws(da))]
    out = []
    for idx in np.ndindex(*[da.sizes[d] for d in extra]):
        sel = dict(zip(extra, idx, strict=True))
        raw = [str(da[d].values[i]) for d, i in sel.items()]
        labels = [card.label(d, r) if card is not None else r for d, r in zip(sel, raw, strict=True)]
        out.append((", ".join(labels), raw, _draws(da.isel(sel))))
    return out


def gaussian_kde_grid(x: np.ndarray, points: np.ndarray, bw: float) -> np.ndarray:
    """The Gaussian kernel density estimate of the draws ``x`` with bandwidth ``bw`` at ``points``, computed by linear
    binning onto a grid of spacing ``bw``/40 and a discrete convolution (as ArviZ and KernSmooth do): cost linear in the
    number of draws instead of draws × points; within about 1e-4 of the direct sum, relative to the peak."""
    delta = bw / 40
    half = int(np.ceil(6 * bw / delta))
    a = float(x.min()) - half * delta
    t = (x - a) / delta
    i = np.floor(t).astype(np.int64)
    f = t - i
    m = int(i.max()) + half + 2
    w = np.bincount(i, 1 - f, minlength=m) + np.bincount(i + 1, f, minlength=m)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * delta / bw) ** 2) / (np.sqrt(2 * np.pi) * bw * len(x))
    dens = np.convolve(w[:m], k, mode="same")
    return np.interp(points, a + delta * np.arange(m), dens, left=0.0, right=0.0)


def density_curve(x: np.ndarray, support: tuple[float, float] = (-np.inf, np.inf), n: int = 512,
                  lim: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian KDE (Scott's bandwidth) reflected at the finite ends of ``support``, on a grid that stays inside it."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    L, H = support
    bw = float(np.std(x, ddof=1)) * len(x) ** (-1 / 5)  # Scott's rule in one dimension, as scipy.stats.gaussian_kde
    lo, hi = lim if lim is not None else (np.quantile(x, 0.001) - 3 * bw, np.quantile(x, 0.999) + 3 * bw)
    lo, hi = max(lo, L), min(hi, H)
    g = np.linspace(lo, hi, n)
    if not bw > 0:  # every draw the same: a spike the grid cannot show
        return g, np.zeros_like(g)
    d = gaussian_kde_grid(x, g, bw)
    if np.isfinite(L):
        d = d + gaussian_kde_grid(x, 2 * L - g, bw)
    if np.isfinite(H):
        d = d + gaussian_kde_grid(x, 2 * H - g, bw)
    return g, d


def _support(run, var: str) -> tuple[float, float]:
    return run.kind.support(run.spec, var)


def _curve(run, var: str, raw: list[str], x: np.ndarray, prior: bool = False, lim=None, n: int = 400):
    """(grid, density, exact?) of one element: closed form when the run has one, else the reflected KDE of ``x``."""
    ex = run.exact(prior=prior)
    name = element_name(var, raw)
    if ex is not None and ex.has(name):
        if lim is None:
            lo, hi = (float(v) for v in ex.quantiles(name, [0.0005, 0.9995]))
            pad = 0.08 * (hi - lo)
            L, H = _support(run, var)
            lim = (max(L, lo - pad), min(H, hi + pad))
        g = np.linspace(*lim, 201 if name in ex.differences else n)
        return g, ex.pdf(name, g), True
    if prior:
        pdf = _prior_density(run, var, raw)
        if pdf is not None:
            L, H = _support(run, var)
            if lim is None:
                q = x[np.isfinite(x)]
                lim = (np.quantile(q, 0.0005), np.quantile(q, 0.9995))
            g = np.linspace(max(lim[0], L), min(lim[1], H), n)
            return g, pdf(g), True
    g, d = density_curve(x, _support(run, var), n, lim)
    return g, d, False


def _prior_density(run, var: str, raw: list[str]):
    """The prior density of ``var`` (an element given by ``raw``) in closed form or by one-dimensional quadrature: a
    parameter with its own prior, or an effect pooled across strata (``var = var_mean + var_sd · z``, z ~ Normal(0, 1),
    Normal location: a Normal scale mixture over the scale's prior). None when neither applies."""
    priors = run.manifest.get("priors", {})
    own = priors.get(var)
    if own is not None:
        return prior_pdf(own["dist"], own.get("params", {}), tuple(raw))
    loc, scale = priors.get(f"{var}_mean"), priors.get(f"{var}_sd")
    if loc is None:
        return None
    if scale is None:  # complete pooling: every stratum shares the mean
        return prior_pdf(loc["dist"], loc.get("params", {}), ())
    p_scale = prior_pdf(scale["dist"], scale.get("params", {}), ())
    if loc["dist"] != "Normal" or p_scale is None or "prior" not in run.idata.children:
        return None
    m, s = float(loc["params"]["mu"]), float(loc["params"]["sigma"])
    tau_draws = _draws(run.idata["prior"][f"{var}_sd"]) if f"{var}_sd" in run.idata["prior"] else None
    top = 3 * float(np.quantile(tau_draws, 0.999)) if tau_draws is not None and tau_draws.size else 10 * s
    tau = np.linspace(0.0, top, 3001)
    w = p_scale(tau)
    w = w / np.trapezoid(w, tau)

    def pdf(x):
        sd = np.sqrt(s ** 2 + tau[None, :] ** 2)
        return np.trapezoid(stats.norm.pdf(np.asarray(x, dtype=float)[:, None], m, sd) * w[None, :], tau, axis=1)

    return pdf


def _ess(x: np.ndarray, chains: int) -> float:
    import arviz_stats as azs

    try:
        return float(azs.ess(x.reshape(chains, -1), method="bulk"))
    except Exception:  # noqa: BLE001 - a constant or too-short series: count the draws
        return float(x.size)


def _prob_text(p: float, x: np.ndarray | None = None, chains: int = 1, exact: bool = False) -> str:
    """A probability to the precision its Monte Carlo error supports ("> 0.99" at the ends)."""
    if exact or x is None:
        return format_probability(p)
    return format_probability(p, probability_mcse(p, _ess(x, chains)))


def _primary_threshold(manifest: dict, var: str) -> tuple[str, float] | None:
    """The first threshold that applies to ``var``, placed on the side of benefit (negative when smaller is better)."""
    d = manifest.get("effect_directions", {}).get(var, 1)
    for name, t in manifest.get("decision", {}).get("thresholds", {}).items():
        if var in t["variables"]:
            return name, d * float(t["value"])
    return None


def _threshold_name(name: str) -> str:
    return "MCID" if name == "mcid" else name.replace("_", " ")


_AGGREGATE_LABEL = {"_average": "average over strata", "_pooled": "pooled over strata", "_mean": "pooled mean"}


def _effect_rows(run, var: str | None = None) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The headline effect of a run (or ``var``): (label, draws) rows (each stratum, then scalar summaries over strata) and
    its variable."""
    m = run.manifest
    post = run.idata["posterior"].to_dataset()
    heads = [v for v in m.get("headline", []) if v in post]
    if not heads:
        raise ValueError(f"run {run.name} has no headline effect")
    if var is not None:
        heads = [var] + [v for v in heads if v != var]
    var = heads[0]
    rows = [(lab or "all patients", d) for lab, d in _elements(post, var, run.card)]
    if np.isnan(np.concatenate([r[1] for r in rows])).all():
        raise ValueError(f"{var} is not estimable in run {run.name}")
    for v in heads[1:]:
        if post[v].ndim == 2 and any(v.endswith(sfx) for sfx in _AGGREGATE_LABEL):
            if run.manifest["model"].get("likelihood") == "beta_binomial" and v == "treatment_effect_mean":
                continue
            label = next(lab for sfx, lab in _AGGREGATE_LABEL.items() if v.endswith(sfx))
            rows.append((label, _draws(post[v])))
    if "treatment_effect_mean" in post and var == "treatment_effect" and m["model"].get("likelihood") != "beta_binomial" \
            and not any(lab == "pooled mean" for lab, _ in rows) and run.card.stratified:
        rows.insert(len(rows) - 1 if rows[-1][0] == "average over strata" else len(rows), ("pooled mean", _draws(post["treatment_effect_mean"])))
    rows = [(lab, x) for lab, x in rows if np.isfinite(x).any()]
    return rows, var


def _forest_axes(ax, rows, colour, ypos: dict[str, float], offset=0.0, label=None, limits=None):
    """Median (open circle), 50% (thick) and 95% (thin) HDI per row; an interval running past ``limits`` ends in an arrow
    at the limit."""
    first = True
    for lab, x in rows:
        y = ypos[lab] - offset
        lo95, hi95 = _hdi(x, 0.95)
        lo50, hi50 = _hdi(x, 0.50)
        med = float(np.median(x))
        if limits is not None:
            L, H = limits
            def clip(v, L=L, H=H):
                return min(max(v, L), H)

            for end, marker in ((lo95, "<"), (hi95, ">")):
                if (marker == "<" and end < L) or (marker == ">" and end > H):
                    ax.plot([L if marker == "<" else H], [y], marker=marker, ms=4, color=colour, clip_on=False, zorder=4)
            lo95, hi95, lo50, hi50 = clip(lo95), clip(hi95), clip(lo50), clip(hi50)
            med_in = L <= med <= H
        else:
            med_in = True
        ax.plot([lo95, hi95], [y, y], color=colour, lw=0.9, solid_capstyle="butt")
        ax.plot([lo50, hi50], [y, y], color=colour, lw=2.6, solid_capstyle="butt")
        if med_in:
            ax.plot([med], [y], "o", ms=3.5, color="white", mec=colour, mew=1.0, label=label if first else None)
        elif first and label:
            ax.plot([], [], "o", ms=3.5, color="white", mec=colour, mew=1.0, label=label)
        first = False


def _points_axis(ax, o):
    """A secondary axis in percent of the score's range; its ticks stay inside the plotted range so no end label overhangs."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    R = o.range
    # module-level functions (not lambdas) so that the figure pickles for the report's writer processes
    sec = ax.secondary_xaxis("top", functions=(functools.partial(percent_of_range, R), functools.partial(from_percent_of_range, R)))
    lo, hi = (v / R * 100 for v in ax.get_xlim())
    margin = 0.06 * (hi - lo)
    ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo + margin <= t <= hi - margin]
    sec.xaxis.set_major_locator(FixedLocator(ticks))
    sec.set_xlabel(f"% of the {o.min}-{o.max} range")
    return sec


def _kind_of(run):
    return run.kind, run.spec


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) if len(text) > width else text


def _legend_below(fig, ax=None, ncols: int = 3, handles=None, labels=None):
    """A legend under the panels, outside every data area."""
    if handles is None:
        handles, labels = (ax or fig.axes[0]).get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(handles)), frameon=False, handlelength=1.4)


def forest(runs: list, labels: list[str] | None = None, limit: bool = False):
    """Headline effects by stratum (and pooled), for one run or several side by side (rows matched by label).

    ``limit``: restrict the axis to the outcome's plausible range (see ``ModelKind.plausible_range``); intervals that run
    past it end in an arrow. Applied automatically when some interval runs past it.
    """
    all_rows = [_effect_rows(r) for r in runs]
    var = all_rows[0][1]
    kind, spec = _kind_of(runs[0])
    order: list[str] = []
    for rows, _ in all_rows:
        order += [lab for lab, _ in rows if lab not in order]
    ypos = {lab: -float(i) for i, lab in enumerate(order)}
    n_rows = len(order)
    k = max(1, len(runs))
    plausible = kind.plausible_range(spec, var)
    limits = None
    if plausible is not None:
        ends = [e for rows, _ in all_rows for _, x in rows for e in _hdi(x, 0.95)]
        if limit or min(ends) < plausible[0] or max(ends) > plausible[1]:
            limits = plausible
    longest = max(len(lab) for lab in (labels or [r.name for r in runs]))
    ncols = min(k, 3 if longest <= 30 else 2)
    height = 0.9 + 0.28 * n_rows * k + (0.3 if var in kind.points_vars(spec) else 0) + (0.25 * int(np.ceil(k / ncols)) if k > 1 else 0)
    fig, ax = new_figure(SINGLE if k == 1 else DOUBLE, height)
    step = 0.8 / k
    for i, (rows, _) in enumerate(all_rows):
        lab = (labels[i] if labels else runs[i].name) if k > 1 else None
        _forest_axes(ax, rows, PALETTE[i % len(PALETTE)], ypos, offset=i * step - 0.4 + step / 2 if k > 1 else 0.0, label=lab,
                     limits=limits)
    ax.set_yticks(list(ypos.values()), list(ypos))
    ax.axvline(0, color="0.4", lw=0.6)
    th = _primary_threshold(runs[0].manifest, var)
    if th:
        ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
        ax.annotate(f"{_threshold_name(th[0])} = {abs(th[1]):.3g}", (th[1], 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -2), textcoords="offset points", va="top", fontsize=7, color="0.3")
    if limits is not None:
        pad = 0.03 * (limits[1] - limits[0])
        ax.set_xlim(limits[0] - pad, limits[1] + pad)
    # the note on arrows is part of the axis label, so the layout makes room for it (as a loose text it overlapped the label)
    ax.set_xlabel(_wrap(kind.axis_label(spec, var) + ("; arrows: the interval continues beyond the axis" if limits is not None else ""),
                        60 if k > 1 else 48))
    ax.set_ylim(-n_rows + 0.5, 0.5)
    if var in kind.points_vars(spec):
        _points_axis(ax, spec.o)
    if k > 1:
        fig.legend(loc="outside lower center", ncols=ncols, frameon=False, handlelength=1.0)
    return fig


def effect_density(run, var: str | None = None):
    """Posterior density of each headline effect with 0 and the threshold marked and P(> threshold) shaded; closed form
    for conjugate runs, else a KDE reflected at the support's bounds. The probabilities are in each panel's title."""
    rows, default = _effect_rows(run)
    var = var or default
    post = run.idata["posterior"].to_dataset()
    chains = post.sizes.get("chain", 1)
    elems = [(lab, raw, x) for lab, raw, x in _elements_raw(post, var, run.card) if np.isfinite(x).any()]
    th = _primary_threshold(run.manifest, var)
    d = run.manifest.get("effect_directions", {}).get(var, 1)
    kind, spec = _kind_of(run)
    ncols = min(len(elems), 3)
    nrows = int(np.ceil(len(elems) / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, 2.0 * nrows + 0.45, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(elems):]:
        ax.set_visible(False)
    for i, (ax, (lab, raw, x)) in enumerate(zip(axes.ravel(), elems, strict=False)):
        x = x[np.isfinite(x)]
        g, dens, exact = _curve(run, var, raw, x)
        ax.plot(g, dens, color=PALETTE[0], label="posterior density (exact)" if exact else "posterior density")
        ax.axvline(0, color="0.4", lw=0.6)
        text = f"P(benefit) {_rel(_benefit_text(run, var, raw, x, chains, d, 0.0))}"
        if th:
            ax.fill_between(g, dens, where=(d * g > d * th[1]), color=PALETTE[0], alpha=0.25, lw=0,
                            label=f"benefit beyond the {_threshold_name(th[0])}")
            ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
            text += f"; P(> {_threshold_name(th[0])}) {_rel(_benefit_text(run, var, raw, x, chains, d, abs(th[1])))}"
        ax.set_title(f"{lab or 'all patients'}\n{text}")
        ax.set_ylim(bottom=0)
        if i % ncols == 0:
            ax.set_ylabel("posterior density")
        ax.set_xlabel(_wrap(kind.axis_label(spec, var), 40 if ncols > 1 else 56))
    _legend_below(fig, axes.ravel()[0], ncols=2)
    return fig


def _benefit_text(run, var: str, raw: list[str], x: np.ndarray, chains: int, d: int, margin: float) -> str:
    """P(benefit beyond ``margin``) of one element: exact for conjugate runs, else from the draws with its MCSE."""
    ex = run.exact()
    name = element_name(var, raw)
    if ex is not None and name in ex.differences:
        from ..models.conjugate import difference_cdf_grid

        xx, yy = ex.differences[name]
        p = 1 - difference_cdf_grid([margin], xx, yy)[0] if d > 0 else difference_cdf_grid([-margin], xx, yy)[0]
        return _prob_text(float(p), exact=True)
    return _prob_text(float(np.mean(d * x > margin)), x, chains)


def _rel(text: str) -> str:
    """'= 0.97' or '> 0.99' (no '= > 0.99')."""
    return text if text[:1] in "<>" else f"= {text}"


def prior_posterior(run, variables: list[str] | None = None):
    """Prior (grey, dashed) against posterior (blue) for the key parameters; shows how much the data moved each. Priors
    with a closed form are drawn from their density on a dense grid, others from a reflected KDE of the prior draws."""
    dt = run.idata
    if "prior" not in dt.children:
        raise ValueError(f"run {run.name} has no prior draws (improper prior or prior_draws = 0)")
    prior, post = dt["prior"].to_dataset(), dt["posterior"].to_dataset()
    kind, spec = _kind_of(run)
    if variables is None:
        variables = kind.prior_posterior_vars(spec)
    elems = []
    for v in variables:
        if v not in post or v not in prior:
            continue
        pri = _elements_raw(prior, v)
        for i, (lab, raw, xp) in enumerate(_elements_raw(post, v, run.card)):
            if np.isfinite(xp).any():
                elems.append((v, lab, raw, xp, pri[i][2]))
    if not elems:
        raise ValueError(f"run {run.name} has none of {variables} in its prior draws")
    ncols = min(len(elems), 3)
    nrows = int(np.ceil(len(elems) / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, 1.9 * nrows + 0.55, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(elems):]:
        ax.set_visible(False)
    for i, (ax, (v, lab, raw, xp, xq)) in enumerate(zip(axes.ravel(), elems, strict=False)):
        xp, xq = xp[np.isfinite(xp)], xq[np.isfinite(xq)]
        lo = min(np.quantile(xp, 0.0005), np.quantile(xq, 0.005))
        hi = max(np.quantile(xp, 0.9995), np.quantile(xq, 0.995))
        L, H = _support(run, v)
        if np.isfinite(L) and np.isfinite(H):  # a bounded quantity: show its whole support
            lo, hi = L, H
        elif np.isfinite(L):
            lo = L
        gq, dq, exact_q = _curve(run, v, raw, xq, prior=True, lim=(lo, hi), n=600)
        gp, dp, exact_p = _curve(run, v, raw, xp, lim=(lo, hi), n=600)
        ax.plot(gq, dq, color="0.45", ls="--", label="prior")
        ax.plot(gp, dp, color=PALETTE[0], label="posterior")
        ax.set_ylim(bottom=0)
        ax.set_title(lab)
        if i % ncols == 0:
            ax.set_ylabel("density")
        ax.set_xlabel(_wrap(kind.axis_label(spec, v), 34 if ncols > 1 else 60))
    _legend_below(fig, axes.ravel()[0], ncols=2)
    return fig


def ppc(run):
    """Posterior predictive check: a patient-level score on its bounded scale (ECDF bands per cell); item scores by
    category, per item and arm; otherwise the observed cell values against their predictive intervals."""
    dt = run.idata
    card = run.card
    k, sub, data = blocks(dt)[0]
    pp = sub["posterior_predictive"].to_dataset()
    o = card.outcomes.get(run.manifest.get("outcome"))
    if "post" in pp and o is not None and o.kind == "score" and data is not None and "arm_idx" in data:
        shift = o.min if run.manifest["model"].get("likelihood") == "beta_binomial" else 0
        rep = np.asarray(pp["post"].stack(s=("chain", "draw")).transpose("s", ...).values, dtype=float) + shift
        obs = np.asarray(data["post"].values, dtype=float) + (0 if "post_from_min" in data else shift)
        a_idx, s_idx = np.asarray(data["arm_idx"].values), np.asarray(data["stratum_idx"].values)
        K = len(card.stratum_levels)
        fig, axes = new_figure(DOUBLE, 1.9 * K + 0.4, K, 2, sharex=True, sharey=True, squeeze=False)
        grid = np.arange(o.min, o.max + 1)
        colours = arm_colours(card)
        for ai, arm in enumerate(card.arm_levels):
            for fi, lev in enumerate(card.stratum_levels):
                ax = axes[fi, ai]
                m = (a_idx == ai) & (s_idx == fi)
                if not m.any():
                    ax.set_title(f"{card.cell_label(card.arm_label(arm), card.stratum_label(lev) if card.stratified else lev)} (no patients)")
                    continue
                r = rep[:, m]
                # ECDF of each predictive draw on the scale's grid, then its 90% band; the observed ECDF as a step line
                ecdf = (r[:, :, None] <= grid[None, None, :] + 0.5).mean(axis=1)
                lo, med, hi = np.quantile(ecdf, [0.05, 0.5, 0.95], axis=0)
                ax.fill_between(grid, lo, hi, step="post", color="0.8", lw=0, label="predictive 90% band")
                ax.step(grid, med, where="post", color="0.45", lw=0.8, ls="--", label="predictive median")
                ax.step(grid, (obs[m][:, None] <= grid[None, :] + 0.5).mean(axis=0), where="post", color=colours[arm], lw=1.4,
                        label=f"observed, {card.arm_label(arm)}")
                outside = float(np.mean((r < o.min - 0.5) | (r > o.max + 0.5)))
                note = f"n = {int(m.sum())}" + (f"; {100 * outside:.0f}% of predictions outside {o.min}-{o.max}" if outside > 0.005 else "")
                cell = card.arm_label(arm) + (f" × {card.stratum_label(lev)}" if card.stratified else "")
                ax.set_title(f"{cell}\n{note}")  # on one line, long cell names ran into the next panel's title
                ax.set_ylim(0, 1.02)
            axes[0 if K == 1 else ai % K, 0].set_ylabel("cumulative share")
        for ax in axes[-1]:
            ax.set_xlabel(f"{card.outcome_label(run.manifest['outcome'])} after treatment ({o.unit}, {o.min}-{o.max})")
        # every arm's observed line in the legend, each in its arm's colour (one panel's handles named only one)
        found = {lab: h for ax in axes.ravel() for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
        _legend_below(fig, ncols=4, handles=list(found.values()), labels=list(found))
        if k != 1 or "reconstruction" in dt["posterior"].coords:
            fig.suptitle("Reconstructed data set 1 (not real patients)", fontsize=8)
        return fig
    obs_ds = dt["observed_data"].to_dataset()
    names = [v for v in pp.data_vars if v in obs_ds]
    items = [v for v in names if is_item_scores(pp[v], o)]
    if items and data is not None:
        return _ppc_item_categories(run, pp[items[0]], data, o, reconstructed=k != 1 or "reconstruction" in dt["posterior"].coords)
    fig, axes = new_figure(DOUBLE, 1.0 + 0.9 * max(1, len(names)), len(names), 1, squeeze=False)
    for ax, v in zip(axes.ravel(), names, strict=True):
        ob = obs_ds[v]
        r = pp[v].stack(s=("chain", "draw")).transpose("s", ...)
        flat_o = np.asarray(ob.values, dtype=float).reshape(-1)
        flat_r = np.asarray(r.values, dtype=float).reshape(r.shape[0], -1)
        labels = [", ".join(card.label(d, str(ob[d].values[i])) for d, i in zip(ob.dims, idx, strict=True)) for idx in np.ndindex(*ob.shape)]
        lo, med, hi = np.quantile(flat_r, [0.05, 0.5, 0.95], axis=0)
        y = np.arange(len(flat_o))
        ax.errorbar(med, y, xerr=[med - lo, hi - med], fmt="o", ms=3, color="0.3", elinewidth=0.8, label="predictive 90%")
        ax.plot(flat_o, y, "D", ms=3.5, color=PALETTE[1], label="observed")
        ax.set_yticks(y, labels)
        counts = bool(np.all(np.isfinite(flat_o)) and np.allclose(flat_o, np.round(flat_o)))
        ax.set_xlabel(f"{card.outcome_label(run.manifest['outcome'])}: {v.replace('_', ' ')}" + (" (patients)" if counts else ""))
    _legend_below(fig, axes.ravel()[0], ncols=2)
    return fig


def _ppc_item_categories(run, rep_da: xr.DataArray, data: xr.Dataset, o, reconstructed: bool):
    """Posterior predictive check of item scores (dims patient, item): per item, the share of each arm's patients at each
    score after treatment, observed (diamonds) against the 90% predictive interval of that share (strata together).
    One row per patient-item pair, as the generic check draws, is unreadable at 6 items × 30 patients."""
    card = run.card
    cats = np.arange(o.item_min, o.item_max + 1)
    obs, arm_idx = item_scores(data, str(rep_da.name), o.item_min)
    # the likelihood's categories count from the scale's minimum
    rep = np.asarray(rep_da.stack(s=("chain", "draw")).transpose("s", "patient", "item").values) + o.item_min
    names = [str(i) for i in rep_da["item"].values]
    ncols = min(3, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = new_figure(DOUBLE, 1.45 * nrows + 0.75, nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colours = arm_colours(card)
    for j, (ax, item) in enumerate(zip(axes.ravel(), names, strict=False)):
        for ai, arm in enumerate(card.arm_levels):
            m = arm_idx == ai
            if not m.any():
                continue
            x = cats + (ai - (len(card.arm_levels) - 1) / 2) * 0.28
            share = (rep[:, m, j][:, :, None] == cats).mean(axis=1)  # (draw, category)
            lo, med, hi = np.quantile(share, [0.05, 0.5, 0.95], axis=0)
            c = colours[arm]
            ax.vlines(x, lo, hi, color=c, lw=1.6, alpha=0.45, label=f"predictive 90%, {card.arm_label(arm)}")
            ax.plot(x, med, "o", ms=2.2, color=c, alpha=0.7)
            ax.plot(x, (obs[m, j][:, None] == cats).mean(axis=0), "D", ms=3.2, color=c, mec="black", mew=0.4,
                    label=f"observed, {card.arm_label(arm)}")
        ax.set_title(card.label("item", item))
        ax.set_xticks(cats)
        ax.set_ylim(0, 1.02)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of patients")
    for ax in axes[-1]:
        ax.set_xlabel(f"item score after treatment ({o.item_min}-{o.item_max})")
    _legend_below(fig, axes[0, 0], ncols=4)
    title = f"{card.outcome_label(run.manifest['outcome'])} items after treatment, by arm (strata combined)"
    fig.suptitle(title + ("; reconstructed data set 1 (not real patients)" if reconstructed else ""), fontsize=8)
    return fig


def rates(run):
    """Event rates by arm and stratum, with the risk difference (treatment − control); closed-form densities for conjugate
    runs, KDEs reflected at 0 and 1 (or −1 and 1) otherwise."""
    post = run.idata["posterior"].to_dataset()
    card = run.card
    if "p_event" not in post or "risk_difference" not in post:
        raise ValueError("the rates figure is for the event models that compare the arms")
    levels = card.stratum_levels
    K = len(levels)
    chains = post.sizes.get("chain", 1)
    fig, axes = new_figure(DOUBLE, 2.5, 1, K + 1, squeeze=False)
    axes = axes.ravel()
    colours = arm_colours(card)
    label = card.outcome_label(run.manifest["outcome"])
    sdim = card.stratum_dim
    for i, (ax, lev) in enumerate(zip(axes[:K], levels, strict=True)):
        for arm in card.arm_levels:
            x = _draws(post["p_event"].sel({"arm": arm, sdim: lev}))
            if np.isfinite(x).any():
                g, dens, _ = _curve(run, "p_event", [arm, lev], x[np.isfinite(x)], lim=(0.0, 1.0))
                ax.plot(g, dens, color=colours[arm], label=card.arm_label(arm))
        ax.set_title(card.stratum_label(lev) if card.stratified else "all patients")
        ax.set_xlabel(_wrap(f"P({label})", 28))
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        if i == 0:
            ax.set_ylabel("posterior density")
    ax = axes[K]
    d = run.manifest.get("effect_directions", {}).get("risk_difference", 1)
    for i, lev in enumerate(levels):
        x = _draws(post["risk_difference"].sel({sdim: lev}))
        if np.isfinite(x).any():
            x = x[np.isfinite(x)]
            g, dens, exact = _curve(run, "risk_difference", [lev], x, lim=(-1.0, 1.0))
            who = card.stratum_label(lev) if card.stratified else "all patients"
            ptext = _rel(_benefit_text(run, "risk_difference", [lev], x, chains, d, 0.0))
            ax.plot(g, dens, color=PALETTE[2 + i % 6], label=f"risk difference, {who}: P(benefit) {ptext}")
    ax.axvline(0, color="0.4", lw=0.6)
    ax.set_xlim(-1, 1)
    ax.set_ylim(bottom=0)
    ax.set_title("Risk difference")
    ax.set_xlabel(_wrap(f"{card.arm_label(card.arm_levels[0])} − {card.arm_label(card.arm_levels[1])}", 28))
    h1, l1 = axes[0].get_legend_handles_labels()
    h2, l2 = ax.get_legend_handles_labels()
    _legend_below(fig, ncols=2, handles=h1 + h2, labels=l1 + l2)
    return fig


def sensitivity(runs: list, labels: list[str], var: str | None = None):
    """The headline effect across the runs of a sweep (prior sets or a sensitivity parameter), on the outcome's plausible
    range (intervals running past it end in an arrow)."""
    return forest(runs, labels, limit=True)


def grid_cells(runs: list) -> dict:
    """{(position, strength): run} for runs fitted with the standard grid's prior sets."""
    from ..models.base import GRID_POSITIONS, GRID_STRENGTHS

    out = {}
    for r in runs:
        pos, _, strength = str(r.manifest.get("prior_set", "")).partition("_")
        if pos in GRID_POSITIONS and strength in GRID_STRENGTHS:
            out[pos, strength] = r
    return out


def prior_grid(runs: list):
    """The standard prior grid at a glance: P(benefit) (colour and first number) and P(benefit beyond the MCID) (second
    number) of the headline effect in each stratum, for priors that are pessimistic / neutral / optimistic (rows) and weak /
    moderate / strong (columns)."""
    from matplotlib.colors import Normalize

    from ..models.base import GRID_POSITIONS, GRID_STRENGTHS

    cells = grid_cells(runs)
    if not cells:
        raise ValueError("none of these runs uses a prior set of the standard grid")
    ref = next(iter(cells.values()))
    rows_ref, var = _effect_rows(ref)
    labels = [lab for lab, _ in rows_ref if lab != "pooled mean"]  # each stratum and the average over strata
    positions = [p for p in reversed(GRID_POSITIONS) if any(k[0] == p for k in cells)]  # pessimistic at the bottom
    positions = [p for p in ("optimistic", "neutral", "pessimistic") if p in positions]
    strengths = list(GRID_STRENGTHS)
    th = _primary_threshold(ref.manifest, var)
    d = ref.manifest.get("effect_directions", {}).get(var, 1)
    n = len(labels)
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, (0.45 * len(positions) + 0.9) * nrows + 0.5, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    norm = Normalize(0, 1)
    cmap = __import__("matplotlib").colormaps["cividis"]
    im = None
    for ax, lab in zip(axes.ravel(), labels, strict=False):
        val = np.full((len(positions), len(strengths)), np.nan)
        for (pos, st), r in cells.items():
            rows, _ = _effect_rows(r)
            x = dict(rows).get(lab)
            if x is None or pos not in positions:
                continue
            i, j = positions.index(pos), strengths.index(st)
            chains = r.idata["posterior"].sizes.get("chain", 1)
            val[i, j] = float(np.mean(d * x > 0))
            text = _prob_text(val[i, j], x, chains)
            if th:
                text += "\n" + _prob_text(float(np.mean(d * x > abs(th[1]))), x, chains)
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if val[i, j] < 0.6 else "black")
        im = ax.imshow(val, cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(strengths)), [f"{s}\n({GRID_STRENGTHS[s]} pts)" for s in strengths])
        ax.set_yticks(range(len(positions)), positions)
        ax.set_title(lab)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), location="bottom", shrink=0.5, aspect=30)
    cb.set_label("P(benefit)" + (f"; second number: P(benefit > {_threshold_name(th[0])} = {abs(th[1]):.3g})" if th else ""))
    return fig


def summary_forest(runs: list, titles: list[str] | None = None, variables: list[str] | None = None):
    """The main figure: one panel per outcome (its lead run's headline effect, or ``variables[i]``, by stratum), each on
    its own scale."""
    n = len(runs)
    variables = variables or [None] * n
    heights = [max(1, len(_effect_rows(r, v)[0])) for r, v in zip(runs, variables, strict=True)]
    fig, axes = new_figure(DOUBLE, 0.55 * n + 0.32 * sum(heights) + 0.5, n, 1, squeeze=False,
                           gridspec_kw={"height_ratios": [h + 1.4 for h in heights]})
    for i, (ax, r) in enumerate(zip(axes.ravel(), runs, strict=True)):
        rows, var = _effect_rows(r, variables[i])
        kind, spec = _kind_of(r)
        ypos = {lab: -float(k) for k, (lab, _) in enumerate(rows)}
        plausible = kind.plausible_range(spec, var)
        ends = [e for _, x in rows for e in _hdi(x, 0.95)]
        limits = plausible if plausible is not None and (min(ends) < plausible[0] or max(ends) > plausible[1]) else None
        _forest_axes(ax, rows, PALETTE[i % len(PALETTE)], ypos, limits=limits)
        ax.set_yticks(list(ypos.values()), list(ypos))
        ax.set_ylim(-len(rows) + 0.5, 0.5)
        ax.axvline(0, color="0.4", lw=0.6)
        th = _primary_threshold(r.manifest, var)
        if th:
            ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
        if limits is not None:
            pad = 0.03 * (limits[1] - limits[0])
            ax.set_xlim(limits[0] - pad, limits[1] + pad)
        ax.set_title((titles[i] if titles else r.card.outcome_label(r.manifest["outcome"])), loc="left")
        side = ("right of 0 favours " if r.manifest.get("effect_directions", {}).get(var, 1) > 0 else "left of 0 favours ") \
            + r.card.arm_label(r.card.arms.treatment) if var in r.manifest.get("effect_directions", {}) else ""
        ax.set_xlabel(_wrap(kind.axis_label(spec, var) + (f"; {side}" if side else "")
                            + (f"; dashed: {_threshold_name(th[0])}" if th else ""), 90))
    return fig


def _arviz_plot(fn, run, variables, width, height_per, max_draws: int = 500, **kw):
    """An arviz-plots diagnostic on the first reconstruction block (or the whole run), thinned to ``max_draws`` per chain."""
    import arviz as az

    k, sub, _ = blocks(run.idata)[0]
    post = sub["posterior"].to_dataset()
    thin = max(1, post.sizes["draw"] // max_draws)
    groups = {"posterior": post.isel(draw=slice(None, None, thin))}
    if "sample_stats" in sub.children:
        groups["sample_stats"] = sub["sample_stats"].to_dataset().isel(draw=slice(None, None, thin))
    dt = xr.DataTree.from_dict(groups)
    variables = [v for v in variables if v in post]
    n = sum(int(np.prod([post[v].sizes[d] for d in post[v].dims if d not in ("chain", "draw")])) for v in variables)
    pc = getattr(az, fn)(dt, var_names=variables, figure_kwargs={"figsize": (width, height_per * max(n, 1) / 2 + 0.8),
                                                                   "layout": "constrained"}, **kw)
    fig = pc.get_viz("figure")
    if "reconstruction" in run.idata["posterior"].coords:
        fig.suptitle("Reconstructed data set 1", fontsize=8)
    return fig


def _key_params(run) -> list[str]:
    return run.kind.diagnostic_params(run.spec)


def rank(run):
    """Rank plots (ECDF differences with simultaneous bands) of the key parameters: chains should overlap."""
    return _arviz_plot("plot_rank", run, _key_params(run), DOUBLE, 1.2)


def trace(run):
    """Trace plots of the key parameters."""
    return _arviz_plot("plot_trace", run, _key_params(run), DOUBLE, 1.0)


FIGURE_KINDS = {
    "forest": "headline effects by stratum with the pooled estimate",
    "density": "posterior density of each headline effect, 0 and the threshold marked, P(> threshold) shaded",
    "prior-posterior": "prior against posterior for key parameters",
    "ppc": "posterior predictive check (a patient-level score on its bounded scale; item scores by category; else observed cell values)",
    "rates": "event rates by arm and stratum with the risk difference",
    "rank": "rank plots (MCMC diagnostics)",
    "trace": "trace plots (MCMC diagnostics)",
}


def figure_for(kind: str, run):
    """The figure of ``kind`` for one run (see :data:`FIGURE_KINDS`)."""
    fn = {"forest": lambda r: forest([r]), "density": effect_density, "prior-posterior": prior_posterior, "ppc": ppc,
          "rates": rates, "rank": rank, "trace": trace}[kind]
    return fn(run)
