"""Manuscript figures, one function per figure; each returns a matplotlib Figure in the house style.

Effects are drawn with their 95% highest-density interval (thin) and 50% interval (thick) around the median; 0 and
the decision threshold (the MCID for MSTS) are marked. Units are on every axis: MSTS points with percent of 30 on a
secondary axis, or probabilities.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from ..checks import blocks
from ..vocabulary import ARMS, FRACTURES, MSTS_MAX_POINTS
from .style import ARM_COLOURS, DOUBLE, PALETTE, SINGLE, new_figure

__all__ = ["FIGURE_KINDS", "forest", "effect_density", "prior_posterior", "ppc", "rates", "sensitivity", "rank", "trace",
           "figure_for"]

LABELS = {
    "treatment_effect": "PSFS − sacroplasty (MSTS points)",
    "change_difference": "Difference in mean change (MSTS points)",
    "risk_difference": "Risk difference, sacroplasty − PSFS",
    "difference_p_decrease": "Difference in P(decrease), PSFS − sacroplasty",
    "ordinal_log_odds_ratio": "Ordinal log odds ratio (> 0 favours PSFS)",
    "p_complication": "P(screw back-out)",
    "domain_effect_points": "Effect on the item score, PSFS − sacroplasty (points of 5)",
}
POINTS_VARS = ("treatment_effect", "change_difference", "treatment_effect_mean", "treatment_effect_average", "interaction")


def _draws(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=float).reshape(-1)


def _hdi(x: np.ndarray, prob: float) -> tuple[float, float]:
    import arviz as az

    lo, hi = az.hdi(x[np.isfinite(x)], prob=prob)
    return float(lo), float(hi)


def _elements(post: xr.Dataset, var: str) -> list[tuple[str, np.ndarray]]:
    da = post[var]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if not extra:
        return [("", _draws(da))]
    out = []
    for idx in np.ndindex(*[da.sizes[d] for d in extra]):
        sel = dict(zip(extra, idx, strict=True))
        out.append((", ".join(str(da[d].values[i]) for d, i in sel.items()), _draws(da.isel(sel))))
    return out


def _primary_threshold(manifest: dict, var: str) -> tuple[str, float] | None:
    for name, t in manifest.get("decision", {}).get("thresholds", {}).items():
        if var in t["variables"]:
            return name, float(t["value"])
    return None


def _effect_rows(run) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The headline effect of a run: (label, draws) rows and the variable name."""
    m = run.manifest
    post = run.idata()["posterior"].to_dataset()
    kind = m["model"]["kind"]
    if kind == "msts":
        rows = [(lab, d) for lab, d in _elements(post, "treatment_effect")]
        if "treatment_effect_mean" in post and m["model"].get("likelihood") != "beta_binomial":
            rows.append(("pooled mean", _draws(post["treatment_effect_mean"])))
        rows.append(("average over strata", _draws(post["treatment_effect_average"])))
        return rows, "treatment_effect"
    if kind == "secondary_procedures":
        return [*_elements(post, "risk_difference"), ("pooled over strata", _draws(post["risk_difference_pooled"]))], "risk_difference"
    if kind == "narcotic_change":
        var = "ordinal_log_odds_ratio" if "ordinal_log_odds_ratio" in post else "difference_p_decrease"
        return _elements(post, var), var
    if kind == "complications":
        return _elements(post, "p_complication"), "p_complication"
    if kind == "msts_domains":
        return _elements(post, "domain_effect_points"), "domain_effect_points"
    raise ValueError(f"no headline effect for kind {kind}")


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


def _points_axis(ax):
    """A secondary axis in percent of 30; its ticks stay inside the plotted range so no end label overhangs the figure."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    sec = ax.secondary_xaxis("top", functions=(lambda p: p / MSTS_MAX_POINTS * 100, lambda q: q * MSTS_MAX_POINTS / 100))
    lo, hi = (v / MSTS_MAX_POINTS * 100 for v in ax.get_xlim())
    margin = 0.06 * (hi - lo)
    ticks = [t for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo + margin <= t <= hi - margin]
    sec.xaxis.set_major_locator(FixedLocator(ticks))
    sec.set_xlabel("% of the maximum MSTS (30)")
    return sec


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
    height = 0.9 + 0.28 * n_rows * k + (0.3 if var in POINTS_VARS else 0) + (0.25 * int(np.ceil(k / ncols)) if k > 1 else 0)
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
        ax.annotate(f"{th[0].upper() if th[0] == 'mcid' else th[0]} = {th[1]:.3g}", (th[1], 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -2), textcoords="offset points", va="top", fontsize=7, color="0.3")
    ax.set_xlabel(LABELS.get(var, var))
    ax.set_ylim(-n_rows + 0.5, 0.5)
    if var in POINTS_VARS:
        _points_axis(ax)
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
    post = run.idata()["posterior"].to_dataset()
    elems = _elements(post, var)
    th = _primary_threshold(run.manifest, var)
    ncols = min(len(elems), 3)
    nrows = int(np.ceil(len(elems) / ncols))
    fig, axes = new_figure(SINGLE if ncols == 1 else DOUBLE, 1.9 * nrows + 0.3, nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(elems):]:
        ax.set_visible(False)
    for ax, (lab, x) in zip(axes.ravel(), elems, strict=False):
        x = x[np.isfinite(x)]
        lo, hi = np.quantile(x, [0.001, 0.999])
        pad = 0.1 * (hi - lo)
        g, d = _kde(x, lo - pad, hi + pad)
        ax.plot(g, d, color=PALETTE[0])
        ax.axvline(0, color="0.4", lw=0.6)
        text = f"P(> 0) = {np.mean(x > 0):.2f}"
        if th:
            ax.fill_between(g, d, where=g > th[1], color=PALETTE[0], alpha=0.25, lw=0)
            ax.axvline(th[1], color="0.4", lw=0.6, ls="--")
            text += f"\nP(> {th[1]:.3g}) = {np.mean(x > th[1]):.2f}"
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=7)
        ax.set_title(lab or var)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel("MSTS points" if var in POINTS_VARS else LABELS.get(var, var).split(",")[0])
    if th and th[0].startswith("mcid"):
        fig.supxlabel("Shaded: above the MCID (3.6 points, borrowed; see text)", fontsize=7)
    return fig


def prior_posterior(run, variables: list[str] | None = None):
    """Prior (grey, dashed) against posterior (blue) for the key parameters; shows how much the data moved each."""
    dt = run.idata()
    if "prior" not in dt.children:
        raise ValueError(f"run {run.name} has no prior draws (improper prior or prior_draws = 0)")
    prior, post = dt["prior"].to_dataset(), dt["posterior"].to_dataset()
    kind = run.manifest["model"]["kind"]
    if variables is None:
        variables = {"msts": ["treatment_effect", "preop_slope"], "secondary_procedures": ["risk_difference"],
                     "narcotic_change": ["difference_p_decrease"], "complications": ["p_complication"],
                     "msts_domains": ["domain_effect_mean"]}.get(kind, [])
    elems = [(f"{v}[{lab}]" if lab else v, xp, _elements(prior, v)[i][1])
             for v in variables if v in post and v in prior for i, (lab, xp) in enumerate(_elements(post, v))]
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
        ax.set_xlabel("MSTS points" if name.split("[")[0] in POINTS_VARS else "value")
    axes.ravel()[0].legend(frameon=False, loc="upper right")
    return fig


def ppc(run):
    """Posterior predictive check: patient-level MSTS on its bounded 0-30 scale; otherwise the observed cell values."""
    dt = run.idata()
    k, sub, data = blocks(dt)[0]
    pp = sub["posterior_predictive"].to_dataset()
    if "msts_post" in pp and data is not None and "arm_idx" in data:
        rep = np.asarray(pp["msts_post"].stack(s=("chain", "draw")).transpose("s", ...).values, dtype=float)
        obs = np.asarray(data["msts_post"].values, dtype=float)
        a_idx, f_idx = np.asarray(data["arm_idx"].values), np.asarray(data["fracture_idx"].values)
        fig, axes = new_figure(DOUBLE, 3.8, 2, 2, sharex=True, sharey=True, squeeze=False)
        grid = np.arange(0, MSTS_MAX_POINTS + 1)
        for ai, arm in enumerate(ARMS):
            for fi, frac in enumerate(FRACTURES):
                ax = axes[fi, ai]
                m = (a_idx == ai) & (f_idx == fi)
                r = rep[:, m]
                # ECDF of each predictive draw on the 0-30 grid, then its 90% band; the observed ECDF as a step line
                ecdf = (r[:, :, None] <= grid[None, None, :] + 0.5).mean(axis=1)
                lo, med, hi = np.quantile(ecdf, [0.05, 0.5, 0.95], axis=0)
                ax.fill_between(grid, lo, hi, step="post", color="0.8", lw=0, label="predictive 90% band")
                ax.step(grid, med, where="post", color="0.45", lw=0.8, ls="--", label="predictive median")
                ax.step(grid, (obs[m][:, None] <= grid[None, :] + 0.5).mean(axis=0), where="post", color=ARM_COLOURS[arm], lw=1.4,
                        label="observed")
                outside = float(np.mean((r < -0.5) | (r > MSTS_MAX_POINTS + 0.5)))
                note = f"n = {int(m.sum())}" + (f"; {100 * outside:.0f}% of predictions outside 0-30" if outside > 0.005 else "")
                ax.set_title(f"{arm} × {frac} ({note})")
                ax.set_ylim(0, 1.02)
            axes[ai, 0].set_ylabel("cumulative share")
        for ax in axes[-1]:
            ax.set_xlabel("Postoperative MSTS (points, 0-30)")
        axes[0, 0].legend(frameon=False, loc="upper left")
        if k != 1 or "reconstruction" in dt["posterior"].coords:
            fig.suptitle("Reconstructed data set 1 (not real patients)", fontsize=8)
        return fig
    obs_ds = dt["observed_data"].to_dataset()
    names = [v for v in pp.data_vars if v in obs_ds]
    fig, axes = new_figure(DOUBLE, 1.0 + 0.9 * max(1, len(names)), len(names), 1, squeeze=False)
    for ax, v in zip(axes.ravel(), names, strict=True):
        o = obs_ds[v]
        r = pp[v].stack(s=("chain", "draw")).transpose("s", ...)
        flat_o = np.asarray(o.values, dtype=float).reshape(-1)
        flat_r = np.asarray(r.values, dtype=float).reshape(r.shape[0], -1)
        labels = [", ".join(str(o[d].values[i]) for d, i in zip(o.dims, idx, strict=True)) for idx in np.ndindex(*o.shape)]
        lo, med, hi = np.quantile(flat_r, [0.05, 0.5, 0.95], axis=0)
        y = np.arange(len(flat_o))
        ax.errorbar(med, y, xerr=[med - lo, hi - med], fmt="o", ms=3, color="0.3", elinewidth=0.8, label="predictive 90%")
        ax.plot(flat_o, y, "D", ms=3.5, color=PALETTE[1], label="observed")
        ax.set_yticks(y, labels)
        ax.set_xlabel(v.replace("_", " "))
    axes.ravel()[0].legend(frameon=False, loc="lower right")
    return fig


def rates(run):
    """Secondary-procedure (or complication) rates by arm and stratum, with the risk difference."""
    post = run.idata()["posterior"].to_dataset()
    if "p_secondary" not in post:
        raise ValueError("the rates figure is for the secondary-procedure model")
    fig, axes = new_figure(DOUBLE, 2.2, 1, 3, squeeze=False)
    axes = axes.ravel()
    grid = np.linspace(0, 1, 400)
    for ax, frac in zip(axes[:2], FRACTURES, strict=True):
        for arm in ARMS:
            x = _draws(post["p_secondary"].sel(arm=arm, fracture=frac))
            ax.plot(grid, stats.gaussian_kde(x)(grid), color=ARM_COLOURS[arm], label=arm)
        ax.set_title(frac)
        ax.set_xlabel("P(secondary procedure)")
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    axes[0].legend(frameon=False)
    ax = axes[2]
    g = np.linspace(-1, 1, 400)
    for i, frac in enumerate(FRACTURES):
        x = _draws(post["risk_difference"].sel(fracture=frac))
        ax.plot(g, stats.gaussian_kde(x)(g), color=PALETTE[2 + i], label=f"{frac}: P(> 0) = {np.mean(x > 0):.2f}")
    ax.axvline(0, color="0.4", lw=0.6)
    ax.set_xlabel("Risk difference, sacroplasty − PSFS")
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

    k, sub, _ = blocks(run.idata())[0]
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
    if "reconstruction" in run.idata()["posterior"].coords:
        fig.suptitle("Reconstructed data set 1", fontsize=8)
    return fig


def _key_params(run) -> list[str]:
    kind = run.manifest["model"]["kind"]
    return {"msts": ["treatment_effect", "preop_slope", "sigma", "phi", "treatment_effect_sd", "treatment_effect_logit_sd"],
            "secondary_procedures": ["p_secondary", "log_odds_ratio_sd"], "narcotic_change": ["p_decrease", "ordinal_log_odds_ratio"],
            "complications": ["p_complication"], "msts_domains": ["domain_effect_mean", "domain_effect_sd"]}.get(kind, [])


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
    "ppc": "posterior predictive check (bounded 0-30 outcome for patient-level MSTS runs)",
    "rates": "secondary-procedure rates by arm and stratum with the risk difference",
    "rank": "rank plots (MCMC diagnostics)",
    "trace": "trace plots (MCMC diagnostics)",
}


def figure_for(kind: str, run):
    """The figure of ``kind`` for one run (see :data:`FIGURE_KINDS`)."""
    fn = {"forest": lambda r: forest([r]), "density": effect_density, "prior-posterior": prior_posterior, "ppc": ppc,
          "rates": rates, "rank": rank, "trace": trace}[kind]
    return fn(run)
