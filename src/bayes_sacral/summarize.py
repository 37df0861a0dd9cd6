"""Posterior summaries of a run: one row per estimand element, named like ArviZ (``risk_difference[pathological]``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["summarize_posterior", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ["name", "mean", "sd", "median", "hdi_low", "hdi_high", "eti_low", "eti_high", "prob_gt_0", "r_hat", "ess_bulk", "ess_tail"]


def summarize_posterior(posterior: xr.Dataset, var_names: list[str], prob: float = 0.95,
                        thresholds: dict[str, tuple[float, list[str]]] | None = None,
                        no_moments: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """Summary rows for ``var_names`` of a posterior Dataset with dims (chain, draw, ...).

    Parameters
    ----------
    posterior : xarray.Dataset
    var_names : list of str
    prob : float, default 0.95
        Probability of the HDI and equal-tailed (ETI) intervals.
    thresholds : dict, optional
        name -> (value, variables): adds ``prob_gt_<name>`` = P(x > value) for those variables (None elsewhere).
    no_moments : sequence of str
        Variables whose mean and sd do not exist (e.g. a number needed to treat): reported as NaN.

    Returns
    -------
    list of dict
        Keys :data:`SUMMARY_COLUMNS` then ``prob_gt_<name>`` per threshold.
    """
    import arviz as az

    thresholds = thresholds or {}
    rows = []
    for v in var_names:
        if v not in posterior:
            continue
        da = posterior[v]
        rhat = az.rhat(da) if da.sizes.get("chain", 1) > 1 else xr.full_like(da.isel(chain=0, draw=0), np.nan)
        ess_b = az.ess(da, method="bulk")
        ess_t = az.ess(da, method="tail")
        extra_dims = [d for d in da.dims if d not in ("chain", "draw")]
        stacked = da.stack(sample=("chain", "draw")).transpose(*extra_dims, "sample")
        index = list(np.ndindex(*[da.sizes[d] for d in extra_dims])) if extra_dims else [()]
        for idx in index:
            sel = dict(zip(extra_dims, idx, strict=True))
            x = np.asarray(stacked.isel(sel).values, dtype=float)
            labels = [str(da[d].values[i]) for d, i in zip(extra_dims, idx, strict=True)]
            name = f"{v}[{', '.join(labels)}]" if labels else v
            finite = x[np.isfinite(x)]
            lo_h, hi_h = (float(b) for b in az.hdi(finite, prob=prob)) if finite.size else (np.nan, np.nan)
            lo_e, hi_e = (float(b) for b in az.eti(finite, prob=prob)) if finite.size else (np.nan, np.nan)
            row = {
                "name": name,
                "mean": float(np.mean(finite)) if finite.size and v not in no_moments else np.nan,
                "sd": float(np.std(finite, ddof=1)) if finite.size > 1 and v not in no_moments else np.nan,
                "median": float(np.median(finite)) if finite.size else np.nan,
                "hdi_low": lo_h, "hdi_high": hi_h,
                "eti_low": float(lo_e), "eti_high": float(hi_e),
                "prob_gt_0": float(np.mean(x > 0)),
                "r_hat": float(rhat.isel(sel).values) if extra_dims else float(rhat.values),
                "ess_bulk": float(ess_b.isel(sel).values) if extra_dims else float(ess_b.values),
                "ess_tail": float(ess_t.isel(sel).values) if extra_dims else float(ess_t.values),
            }
            for tname, (value, tvars) in thresholds.items():
                row[f"prob_gt_{tname}"] = float(np.mean(x > value)) if v in tvars else None
            rows.append(row)
    return rows
