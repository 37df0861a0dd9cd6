"""Manuscript figures, one function per figure; each returns a matplotlib Figure in the house style.

Effects are drawn with their 95% highest-density interval (thin) and 50% interval (thick) around the median; 0 and
the decision threshold (the card's MCID) are marked on the side of benefit. Units are on every axis: a score's points with
percent of its range on a secondary axis, or probabilities. Labels come from the study card and the model kind.
"""

from __future__ import annotations

import textwrap

import numpy as np
import xarray as xr
from scipy import stats

from ..checks import blocks
from .style import DOUBLE, PALETTE, SINGLE, arm_colours, new_figure

__all__ = ["FIGURE_KINDS", "forest", "effect_density", "prior_posterior", "ppc", "rates", "sensitivity", "rank", "trace",
           "figure_for"]

def _draws(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=float).reshape(-1)


def _hdi(x: np.ndarray, prob: float) -> tuple[float, float]:
    import arviz as az

    lo, hi = az.hdi(x[np.isfinite(x)], prob=prob)
    return float(lo), float(hi)


def _elements(post: xr.Dataset, var: str, card=None) -> list[tuple[str, np.ndarray]]:
    da = post[var]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if not extra:
        return [("", _draws(da))]
    out = []
    for idx in np.ndindex(*[da.sizes[d] for d in extra]):
        sel = dict(zip(extra, idx, strict=True))
        labels = [card.label(d, str(da[d].values[i])) if card is not None else str(da[d].values[i]) for d, i in sel.items()]
        out.append((", ".join(labels), _draws(da.isel(sel))))
    return out


def _primary_threshold(manifest: dict, var: str) -> tuple[str, float] | None:
    """The first threshold that applies to ``var``, placed on the side of benefit (negative when smaller is better)."""
    d = manifest.get("effect_directions", {}).get(var, 1)
    for name, t in manifest.get("decision", {}).get("thresholds", {}).items():
        if var in t["variables"]:
            return name, d * float(t["value"])
    return None


_AGGREGATE_LABEL = {"_average": "average over strata", "_pooled": "pooled over strata", "_mean": "pooled mean"}


def _effect_rows(run) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The headline effect of a run: (label, draws) rows (each stratum, then scalar summaries over strata) and its variable."""
    m = run.manifest
    post = run.idata["posterior"].to_dataset()
    heads = [v for v in m.get("headline", []) if v in post]
    if not heads:
        raise ValueError(f"run {run.name} has no headline effect")
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


def _forest_axes(ax, rows, colour, ypos: dict[str, float], offset=0.0, label=None):
    first = True
    for lab, x in rows:
        y = ypos[lab] - offset
        lo95, hi95 = _hdi(x, 0.95)
        lo50, hi50 = _hdi(x, 0.50)
        ax.plot([lo95, hi95], [y, y], color=colour, lw=0.9, solid_capstyle="butt")
        ax.plot([lo50, hi50], [y, y], color=colour, lw=2.6, solid_capstyle="butt")
        ax.plot([np.median(x)], [y], "o", ms=3.5, color="white", mec=colour, mew=1.0, label=label if first else None)
        first = False


def _points_axis(ax, o):
    """A secondary axis in percent of the score's range; its ticks stay inside the plotted range so no end label overhangs."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    R = o.range
    sec = ax.secondary_xaxis("top", functions=(lambda p: p / R * 100, lambda q: q * R / 100))
    lo, hi = (v / R * 100 for v in ax.get_xlim())
    margin = 0.06 * (hi - lo)
    ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo + margin <= t <= hi - margin]
    sec.xaxis.set_major_locator(FixedLocator(ticks))
    sec.set_xlabel(f"% of the {o.min}-{o.max} range")
    return sec


def _kind_of(run):
    return run.kind, run.spec


def forest(runs: list, labels: list[str] | None = None):
    """Headline effects by fracture stratum (and pooled), for one run or several side by side (rows matched by label)."""
    all_rows = [_effect_rows(r) for r in runs]
    var = all_rows[0][1]
    order: list[str] = []
    for rows, _ in all_rows:
        order += [lab for lab, _ in rows if lab not in order]
    ypos = {lab: -float(i) for i, lab in enumerate(order)}
    n_rows = len(order)
    k = max(1, len(runs))
    longest = max(len(lab) for lab in (labels or [r.name for r in runs]))
    ncols = min(k, 3 if longest <= 30 else 2)
    height = 0.9 + 0.28 * n_rows * k + (0.3 if var in runs[0].kind.points_vars(runs[0].spec) else 0) + (0.25 * int(np.ceil(k / ncols)) if k > 1 else 0)
    fig, ax = new_figure(SINGLE if k == 1 else DOUBLE, height)
    step = 0.8 / k
    for i, (rows, _) in enumerate(all_rows):
        lab = (labels[i] if labels else runs[i].name) if k > 1 else None
        _forest_axes(ax, rows, PALETTE[i % len(PALETTE)], ypos, offset=i * step - 0.4 + step / 2 if k > 1 else 0.0, label=lab)
    ax.set_yticks(list(ypos.values()), list(ypos))
    ax.axvline(0, color="0.4", lw=0.6)
    th = _primary_threshold(runs[0].manifest, var)
    if th:
        ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
        ax.annotate(f"{th[0].upper() if th[0] == 'mcid' else th[0]} = {abs(th[1]):.3g}", (th[1], 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -2), textcoords="offset points", va="top", fontsize=7, color="0.3")
    kind, spec = _kind_of(runs[0])
    ax.set_xlabel(kind.axis_label(spec, var))
    ax.set_ylim(-n_rows + 0.5, 0.5)
    if var in kind.points_vars(spec):
        _points_axis(ax, spec.o)
    if k > 1:
        fig.legend(loc="outside lower center", ncols=ncols, frameon=False, handlelength=1.0)
    return fig


def _kde(x: np.ndarray, lo: float, hi: float, n: int = 400):
    grid = np.linspace(lo, hi, n)
    return grid, stats.gaussian_kde(x)(grid)


def effect_density(run, var: str | None = None):
    """Posterior density of each headline effect with 0 and the threshold marked and P(> threshold) shaded."""
    rows, default = _effect_rows(run)
    var = var or default
    post = run.idata["posterior"].to_dataset()
    elems = [(lab, x) for lab, x in _elements(post, var, run.card) if np.isfinite(x).any()]
    th = _primary_threshold(run.manifest, var)
    d = run.manifest.get("effect_directions", {}).get(var, 1)
    kind, spec = _kind_of(run)
    ncols = min(len(elems), 3)
    nrows = int(np.ceil(len(elems) / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, 1.9 * nrows + 0.3, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(elems):]:
        ax.set_visible(False)
    for ax, (lab, x) in zip(axes.ravel(), elems, strict=False):
        x = x[np.isfinite(x)]
        lo, hi = np.quantile(x, [0.001, 0.999])
        pad = 0.1 * (hi - lo)
        g, dens = _kde(x, lo - pad, hi + pad)
        ax.plot(g, dens, color=PALETTE[0])
        ax.axvline(0, color="0.4", lw=0.6)
        text = f"P(benefit) = {np.mean(d * x > 0):.2f}"
        if th:
            ax.fill_between(g, dens, where=(d * g > d * th[1]), color=PALETTE[0], alpha=0.25, lw=0)
            ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
            text += f"\nP(benefit > {abs(th[1]):.3g}) = {np.mean(d * x > abs(th[1])):.2f}"
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=7)
        ax.set_title(lab or "all patients")
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(kind.axis_label(spec, var))
    if th and th[0].startswith("mcid"):
        fig.supxlabel(f"Shaded: benefit beyond the MCID ({abs(th[1]):.3g}; source in the text)", fontsize=7)
    return fig


def prior_posterior(run, variables: list[str] | None = None):
    """Prior (grey, dashed) against posterior (blue) for the key parameters; shows how much the data moved each."""
    dt = run.idata
    if "prior" not in dt.children:
        raise ValueError(f"run {run.name} has no prior draws (improper prior or prior_draws = 0)")
    prior, post = dt["prior"].to_dataset(), dt["posterior"].to_dataset()
    kind, spec = _kind_of(run)
    if variables is None:
        variables = kind.prior_posterior_vars(spec)
    elems = [(f"{v}[{lab}]" if lab else v, xp, _elements(prior, v)[i][1])
             for v in variables if v in post and v in prior for i, (lab, xp) in enumerate(_elements(post, v, run.card))
             if np.isfinite(xp).any()]
    if not elems:
        raise ValueError(f"run {run.name} has none of {variables} in its prior draws")
    ncols = min(len(elems), 3)
    nrows = int(np.ceil(len(elems) / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, 1.8 * nrows + 0.4, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(elems):]:
        ax.set_visible(False)
    for ax, (name, xp, xq) in zip(axes.ravel(), elems, strict=False):
        xp, xq = xp[np.isfinite(xp)], xq[np.isfinite(xq)]
        lo, hi = np.quantile(np.concatenate([xp, xq]), [0.005, 0.995])
        for x, kw in ((xq, {"color": "0.45", "ls": "--", "label": "prior"}), (xp, {"color": PALETTE[0], "label": "posterior"})):
            g, d = _kde(x, lo, hi)
            ax.plot(g, d, **kw)
        ax.set_title(name)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("\n".join(textwrap.wrap(kind.axis_label(spec, name.split("[")[0]), 34 if ncols > 1 else 60)))
    axes.ravel()[0].legend(frameon=False, loc="upper right")
    return fig


def ppc(run):
    """Posterior predictive check: a patient-level score on its bounded scale (ECDF bands per cell); otherwise the observed
    cell values against their predictive intervals."""
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
                        label="observed")
                outside = float(np.mean((r < o.min - 0.5) | (r > o.max + 0.5)))
                note = f"n = {int(m.sum())}" + (f"; {100 * outside:.0f}% of predictions outside {o.min}-{o.max}" if outside > 0.005 else "")
                cell = card.arm_label(arm) + (f" × {card.stratum_label(lev)}" if card.stratified else "")
                ax.set_title(f"{cell} ({note})")
                ax.set_ylim(0, 1.02)
            axes[0 if K == 1 else ai % K, 0].set_ylabel("cumulative share")
        for ax in axes[-1]:
            ax.set_xlabel(f"{card.outcome_label(run.manifest['outcome'])} after treatment ({o.unit}, {o.min}-{o.max})")
        axes[0, 0].legend(frameon=False, loc="upper left")
        if k != 1 or "reconstruction" in dt["posterior"].coords:
            fig.suptitle("Reconstructed data set 1 (not real patients)", fontsize=8)
        return fig
    obs_ds = dt["observed_data"].to_dataset()
    names = [v for v in pp.data_vars if v in obs_ds]
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
        ax.set_xlabel(f"{v.replace('_', ' ')} (patients)")
    axes.ravel()[0].legend(frameon=False, loc="lower right")
    return fig


def rates(run):
    """Event rates by arm and stratum, with the risk difference (treatment − control)."""
    post = run.idata["posterior"].to_dataset()
    card = run.card
    if "p_event" not in post or "risk_difference" not in post:
        raise ValueError("the rates figure is for the event models that compare the arms")
    levels = card.stratum_levels
    K = len(levels)
    fig, axes = new_figure(DOUBLE, 2.2, 1, K + 1, squeeze=False)
    axes = axes.ravel()
    grid = np.linspace(0, 1, 400)
    colours = arm_colours(card)
    label = card.outcome_label(run.manifest["outcome"])
    sdim = card.stratum_dim
    for ax, lev in zip(axes[:K], levels, strict=True):
        for arm in card.arm_levels:
            x = _draws(post["p_event"].sel({"arm": arm, sdim: lev}))
            if np.isfinite(x).any():
                ax.plot(grid, stats.gaussian_kde(x)(grid), color=colours[arm], label=card.arm_label(arm))
        ax.set_title(card.stratum_label(lev))
        ax.set_xlabel(f"P({label})")
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    axes[0].legend(frameon=False)
    ax = axes[K]
    g = np.linspace(-1, 1, 400)
    d = run.manifest.get("effect_directions", {}).get("risk_difference", 1)
    for i, lev in enumerate(levels):
        x = _draws(post["risk_difference"].sel({sdim: lev}))
        if np.isfinite(x).any():
            ax.plot(g, stats.gaussian_kde(x)(g), color=PALETTE[2 + i % 6], label=f"{card.stratum_label(lev)}: P(benefit) = {np.mean(d * x > 0):.2f}")
    ax.axvline(0, color="0.4", lw=0.6)
    ax.set_xlabel(f"Risk difference, {card.arm_label(card.arm_levels[0])} − {card.arm_label(card.arm_levels[1])}")
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.legend(frameon=False, loc="upper left")
    return fig


def sensitivity(runs: list, labels: list[str], var: str | None = None):
    """The headline effect across the runs of a sweep (prior sets or a sensitivity parameter)."""
    return forest(runs, labels)


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
    "ppc": "posterior predictive check (a patient-level score on its bounded scale; else observed cell values)",
    "rates": "event rates by arm and stratum with the risk difference",
    "rank": "rank plots (MCMC diagnostics)",
    "trace": "trace plots (MCMC diagnostics)",
}


def figure_for(kind: str, run):
    """The figure of ``kind`` for one run (see :data:`FIGURE_KINDS`)."""
    fn = {"forest": lambda r: forest([r]), "density": effect_density, "prior-posterior": prior_posterior, "ppc": ppc,
          "rates": rates, "rank": rank, "trace": trace}[kind]
    return fn(run)
