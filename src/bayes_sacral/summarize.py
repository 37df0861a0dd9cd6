"""Posterior summaries of a run: one row per estimand element, named like ArviZ (``risk_difference[myeloma]``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .memo import Memo, digest

__all__ = ["summarize_posterior", "summarize_run", "SUMMARY_COLUMNS", "element_name", "parse_element", "hdi_end_mcse"]

SUMMARY_COLUMNS = ["name", "mean", "sd", "median", "hdi_low", "hdi_high", "eti_low", "eti_high", "prob_gt_0", "prob_benefit",
                   "r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_interval", "mcse_hdi"]
#: Added for draws pooled over several data sets (reconstructions): the share of the posterior variance between them.
BETWEEN_COLUMN = "between_share"


def _split_by_block(da: xr.DataArray, blocks: np.ndarray) -> list[xr.DataArray]:
    """The draws with ``chain`` split into (``block``, ``chain``), one block of chains per data set, so that ArviZ computes
    every block's diagnostics in one vectorised call: one array when the data sets have equally many chains, else one
    array per data set."""
    labels, counts = np.unique(blocks, return_counts=True)
    x = da.drop_vars([c for c in da.coords if "chain" in da[c].dims])
    if len(set(counts.tolist())) == 1:
        groups = [(x.isel(chain=np.argsort(blocks, kind="stable")), len(labels))]
    else:
        groups = [(x.isel(chain=np.flatnonzero(blocks == k)), 1) for k in labels]
    out = []
    for g, K in groups:
        g = g.transpose("chain", ...)
        values = g.values.reshape((K, g.sizes["chain"] // K) + g.shape[1:])
        out.append(xr.DataArray(values, dims=("block",) + g.dims, coords={c: g[c] for c in g.coords if "chain" not in g[c].dims}))
    return out


def _within_blocks(split: xr.DataArray, prob: float) -> tuple:
    """R-hat, bulk and tail ESS, MCSE of the mean and of the interval, mean and variance of each block of ``split``."""
    from .convergence import diagnostics_of

    d = diagnostics_of(split, prob)
    return (d["rhat"], d["ess_bulk"], d["ess_tail"], d["mcse_mean"], d["mcse_interval"], split.mean(("chain", "draw")),
            split.var(("chain", "draw")))


def _block_diagnostics(da: xr.DataArray, blocks: np.ndarray, prob: float = 0.95):
    """R-hat, bulk and tail ESS and MCSE of the mean computed within each block of chains (one data set each): the worst
    R-hat and ESS over blocks, the MCSE of the pooled mean, and the between-block share of the variance."""
    parts = [_within_blocks(split, prob) for split in _split_by_block(da, blocks)]
    rh, eb, et, mc, mq, means, variances = (xr.concat(p, "block") if len(p) > 1 else p[0] for p in zip(*parts, strict=True))
    K = means.sizes["block"]
    between = means.var("block", ddof=1) if K > 1 else xr.zeros_like(means.isel(block=0))
    within = variances.mean("block")
    share = between / (between + within)
    return (rh.max("block"), eb.min("block"), et.min("block"), np.sqrt((mc ** 2).sum("block")) / K, share,
            np.sqrt((mq ** 2).sum("block")) / K)


#: Diagnostics of recently summarised variables, keyed by their draws' content (see :mod:`bayes_sacral.memo`).
_DIAGNOSTICS = Memo(4096, "bayes_sacral.summarize:diagnostics", persist=True)


def _diagnostics(da: xr.DataArray, blocks: np.ndarray | None, prob: float, has_chains: bool, finite_all: bool) -> tuple:
    """(R-hat, bulk ESS, tail ESS, MCSE of the mean, between-block share, interval MCSE) of one variable; see
    :func:`summarize_posterior`. Memoised on the draws' content."""
    from .convergence import diagnostics_of

    def compute():
        if not finite_all:
            return None, None, None, None, None, None
        if blocks is not None:
            return _block_diagnostics(da, blocks, prob)
        d = diagnostics_of(da, prob)
        return (d["rhat"] if has_chains else None), d["ess_bulk"], d["ess_tail"], d["mcse_mean"], None, d["mcse_interval"]

    return _DIAGNOSTICS.get_or_compute(digest(da, blocks, float(prob)), compute)


#: Batches for the Monte Carlo standard error of the HDI's ends (see :func:`hdi_end_mcse`).
HDI_BATCHES = 8


def hdi_end_mcse(x: np.ndarray, prob: float = 0.95, batches: int = HDI_BATCHES) -> float:
    """Monte Carlo standard error of the ends of the ``prob`` highest-density interval (the larger of the two) from draws
    ``x`` of shape (chain, draw).

    The ends of a shortest interval converge at the cube-root rate, not the square-root rate of a mean or a quantile:
    where the interval slides, its width changes only to second order (the shorth of Rousseeuw & Leroy; Kim & Pollard
    1990, "Cube root asymptotics"). So the equal-tailed interval's MCSE (``mcse_interval``) understates how much HDI ends
    vary between runs. Here batch ``j`` holds segment ``j`` of every chain (for pooled reconstructions, of every data
    set's chains, so each batch is the same mixture). The spread of the batches' HDI ends is scaled to the whole sample
    by that rate: SD over batches x batches^(-1/3). Against the spread of 30 independently seeded refits of two MSTS
    models it was within 16% for 11 of 12 ends. Where the ends move more like quantiles (a skewed posterior) they settle
    faster than that rate, and the estimate runs high: by 15-35% in the simulations of tests/test_precision.py. It is
    conservative, never far short. NaN when a batch would hold fewer than 40 draws or a draw is not finite.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or not np.isfinite(x).all():
        return float("nan")
    length = x.shape[1] // batches
    if length * x.shape[0] < 40:
        return float("nan")
    import arviz_stats as azs

    segments = x[:, : length * batches].reshape(x.shape[0], batches, length).transpose(1, 0, 2).reshape(batches, -1)
    ends = np.asarray(azs.hdi(segments, prob=prob, axis=-1))  # the reported HDI's own definition, per batch
    return float(np.max(ends.std(axis=0, ddof=1)) * batches ** (-1 / 3))


def element_name(var: str, labels: list[str]) -> str:
    return f"{var}[{', '.join(labels)}]" if labels else var


def parse_element(name: str) -> tuple[str, list[str]]:
    """``risk_difference[myeloma]`` -> ("risk_difference", ["myeloma"]); labels may contain " vs "."""
    var, _, rest = name.partition("[")
    return var, ([x.strip() for x in rest.rstrip("]").split(",")] if rest else [])


#: Summary rows of recently summarised variables, keyed by their draws' content and everything else that sets a row.
_ROWS = Memo(4096, "bayes_sacral.summarize:rows", persist=True)


def _variable_rows(v: str, da: xr.DataArray, prob: float, thresholds: dict, no_mom: bool, direction: int | None,
                   not_estimable: dict | None) -> list[dict]:
    """The summary rows of variable ``v``'s elements (see :func:`summarize_posterior`). ``thresholds``: name ->
    (magnitude, variables) with the variables narrowed to ``v`` or none (a None column), so that a row's memo key holds
    only what sets it."""
    import arviz_stats as azs

    rows = []
    extra_dims = [d for d in da.dims if d not in ("chain", "draw")]
    has_chains = da.sizes.get("chain", 1) > 1
    finite_all = bool(np.isfinite(da.values).all())
    blocks = da["reconstruction"].values if "reconstruction" in da.coords else None
    rhat, ess_b, ess_t, mcse, share, mcse_q = _diagnostics(da, blocks, prob, has_chains, finite_all)
    stacked = da.stack(sample=("chain", "draw")).transpose(*extra_dims, "sample")
    index = list(np.ndindex(*[da.sizes[d] for d in extra_dims])) if extra_dims else [()]
    d = direction
    for idx in index:
        sel = dict(zip(extra_dims, idx, strict=True))
        x = np.asarray(stacked.isel(sel).values, dtype=float)
        labels = [str(da[dim].values[i]) for dim, i in zip(extra_dims, idx, strict=True)]
        finite = x[np.isfinite(x)]

        def diag(arr, sel=sel, extra_dims=extra_dims):
            if arr is None:
                return np.nan
            val = arr.isel(sel).values if extra_dims else arr.values
            return float(val)

        if finite.size == 0:
            row = {c: np.nan for c in SUMMARY_COLUMNS}
            row["name"] = element_name(v, labels)
            reasons = [r for lev, r in (not_estimable or {}).items() if lev in labels] or list((not_estimable or {}).values())
            row["note"] = "not estimable" + (f": {'; '.join(dict.fromkeys(reasons))}" if reasons else "")
            for tname in thresholds:
                row[f"prob_beyond_{tname}"] = None
            rows.append(row)
            continue
        lo_h, hi_h = (float(b) for b in azs.hdi(finite, prob=prob))
        lo_e, hi_e = (float(b) for b in azs.eti(finite, prob=prob))
        row = {
            "name": element_name(v, labels),
            "mean": float(np.mean(finite)) if not no_mom else np.nan,
            "sd": float(np.std(finite, ddof=1)) if finite.size > 1 and not no_mom else np.nan,
            "median": float(np.median(finite)),
            "hdi_low": lo_h, "hdi_high": hi_h,
            "eti_low": lo_e, "eti_high": hi_e,
            "prob_gt_0": float(np.mean(x > 0)),
            "prob_benefit": (float(np.mean(d * x > 0)) if d else None),
            "r_hat": diag(rhat), "ess_bulk": diag(ess_b), "ess_tail": diag(ess_t),
            "mcse_mean": diag(mcse) if not no_mom else np.nan,
            "mcse_interval": diag(mcse_q),
            "mcse_hdi": hdi_end_mcse(x.reshape(da.sizes.get("chain", 1), -1), prob),
        }
        if blocks is not None:
            row[BETWEEN_COLUMN] = diag(share)
        for tname, (value, tvars) in thresholds.items():
            if v not in tvars:
                row[f"prob_beyond_{tname}"] = None
            else:
                row[f"prob_beyond_{tname}"] = float(np.mean((d or 1) * x > value))
        rows.append(row)
    return rows


def summarize_posterior(posterior: xr.Dataset, var_names: list[str], prob: float = 0.95,
                        thresholds: dict[str, tuple[float, list[str]]] | None = None,
                        no_moments: list[str] | tuple[str, ...] = (), directions: dict[str, int] | None = None,
                        not_estimable: dict[str, str] | None = None) -> list[dict]:
    """Summary rows for ``var_names`` of a posterior Dataset with dims (chain, draw, ...).

    Parameters
    ----------
    posterior : xarray.Dataset
    var_names : list of str
    prob : float, default 0.95
        Probability of the HDI and equal-tailed (ETI) intervals.
    thresholds : dict, optional
        name -> (magnitude, variables): adds ``prob_beyond_<name>``: for a comparative effect, the probability that its
        benefit exceeds the magnitude (P(x > v) when larger is better, P(x < −v) when smaller is); for other variables
        P(x > v); None for variables the threshold does not apply to.
    no_moments : sequence of str
        Variables whose mean and sd do not exist (e.g. a number needed to treat): reported as NaN.
    directions : dict, optional
        Comparative effects -> +1 (larger favours the treatment) or -1; gives ``prob_benefit``.
    not_estimable : dict, optional
        Stratum level -> reason: elements that are all-NaN get a ``note`` saying why.

    Returns
    -------
    list of dict
        Keys :data:`SUMMARY_COLUMNS`, then ``prob_beyond_<name>`` per threshold, then ``note`` when any element is not
        estimable. For draws pooled over data sets (a ``reconstruction`` coordinate on ``chain``), R-hat and ESS are the
        worst over the data sets, each computed within its own chains, ``mcse_mean`` is the Monte Carlo error of the
        pooled mean, and ``between_share`` is the share of the posterior variance between the data sets.
    """
    thresholds = thresholds or {}
    directions = directions or {}
    rows = []
    for v in var_names:
        if v not in posterior:
            continue
        da = posterior[v]
        own = {t: (value, [v] if v in tvars else []) for t, (value, tvars) in thresholds.items()}
        labels = [(d, [str(x) for x in da[d].values]) for d in da.dims if d not in ("chain", "draw")]
        key = digest(v, labels, da, da["reconstruction"] if "reconstruction" in da.coords else None, float(prob), own,
                     v in no_moments, directions.get(v), not_estimable)
        computed = _ROWS.get_or_compute(key, lambda v=v, da=da, own=own: _variable_rows(
            v, da, prob, own, v in no_moments, directions.get(v), not_estimable))
        rows.extend(dict(r) for r in computed)  # copies: callers may add to a row, the memo's stay as computed
    if any("note" in r for r in rows):
        for r in rows:
            r.setdefault("note", "")
    return rows


def summarize_run(run, prob: float | None = None, var_names: list[str] | None = None, all_vars: bool = False) -> list[dict]:
    """Summary rows of a :class:`~bayes_sacral.run.Run` with its thresholds, directions and notes (see :func:`summarize_posterior`)."""
    from .errors import BayesSacralError

    m = run.manifest
    post = run.idata["posterior"].to_dataset()
    p = prob if prob is not None else m.get("decision", {}).get("prob", 0.95)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 < p < 1:
        raise BayesSacralError(f"an interval probability is a number strictly between 0 and 1 (got {p!r})")
    names = list(post.data_vars) if all_vars else (var_names or m.get("estimands") or list(post.data_vars))
    unknown = [v for v in names if v not in post]
    if unknown:
        raise BayesSacralError(f"run {run.name} has no posterior variable(s) {', '.join(unknown)}; available: {', '.join(post.data_vars)}")
    thresholds = {k: (t["value"], t["variables"]) for k, t in m.get("decision", {}).get("thresholds", {}).items()}
    return summarize_posterior(post, names, p, thresholds, list(m.get("no_moment_variables", {})), m.get("effect_directions", {}),
                               m.get("not_estimable", {}))
