"""Model checking of fitted runs: posterior predictive checks and PSIS-LOO (ArviZ), aware of reconstruction blocks.

A run fitted to K reconstructed data sets stores its pooled draws as K blocks of chains (a ``reconstruction``
coordinate along ``chain``); each block's posterior predictive draws and log-likelihood refer to that block's own data.
Checks are therefore computed block by block and averaged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .memo import Memo, digest

__all__ = ["blocks", "has_loo", "loo_table", "compare_runs", "ppc_table", "spread_table", "item_scores", "is_item_scores", "LOO_NOTE"]

LOO_NOTE = ("Continuous likelihoods (normal, Student-t) give densities at integer scores; with a spacing of 1 point these equal "
            "probability masses to a good approximation, so their elpd is compared with the beta-binomial's probability masses.")


def ceiling_of(o) -> int:
    """The top of a score's scale for "at the ceiling" shares: within a fifteenth of the range of the maximum (28-30 on 0-30)."""
    return int(o.max - o.range // 15)


#: blocks() of the trees seen lately, by object (a run's tree is read-only once loaded, see Run.idata); an entry goes
#: when its tree is garbage-collected.
_BLOCKS: dict[int, list] = {}


def blocks(dt: xr.DataTree) -> list[tuple[int, xr.DataTree, xr.Dataset | None]]:
    """(block number, sub-tree with posterior / log_likelihood / posterior_predictive / sample_stats, that block's data).

    Split once per tree (LOO, predictive checks, comparisons and figures all read the blocks); the list is shared, so
    treat it as read-only."""
    import weakref

    got = _BLOCKS.get(id(dt))
    if got is not None:
        return got
    out = _split_blocks(dt)
    _BLOCKS[id(dt)] = out
    weakref.finalize(dt, _BLOCKS.pop, id(dt), None)
    return out


def _split_blocks(dt: xr.DataTree) -> list[tuple[int, xr.DataTree, xr.Dataset | None]]:
    post = dt["posterior"].to_dataset()
    if "reconstruction" not in post.coords:
        data = dt["constant_data"].to_dataset() if "constant_data" in dt.children else None
        if data is not None and "observed_data" in dt.children:
            data = data.merge(dt["observed_data"].to_dataset(), compat="override")
        return [(1, dt, data)]
    labels = post["reconstruction"].values
    out = []
    recon = dt["reconstruction_data"].to_dataset() if "reconstruction_data" in dt.children else None
    for k in np.unique(labels):
        chains = post["chain"].values[labels == k]
        groups = {}
        for g in ("posterior", "log_likelihood", "posterior_predictive", "sample_stats"):
            if g in dt.children:
                groups[g] = dt[g].to_dataset().sel(chain=chains).assign_coords(chain=np.arange(len(chains)))
        data = recon.sel(reconstruction=k) if recon is not None else None
        out.append((int(k), xr.DataTree.from_dict(groups), data))
    return out


#: PSIS-LOO results and predictive-check tables already computed, keyed by their inputs' content (:mod:`bayes_sacral.memo`):
#: the reanalysis' model checks and its report read the same ones.
_LOO = Memo(512, "bayes_sacral.checks:loo", persist=True)
_PPC = Memo(128, "bayes_sacral.checks:ppc", persist=True)


def _loo(sub: xr.DataTree):
    ll = sub["log_likelihood"].to_dataset()
    return _LOO.get_or_compute(digest(ll), lambda: _compute_loo(sub))


def _compute_loo(sub: xr.DataTree):
    import warnings

    import arviz_stats as azs

    ll = sub["log_likelihood"].to_dataset()
    var = list(ll.data_vars)
    if len(var) > 1:
        # several observed variables (summary route): sum them per observation unit
        total = sum(ll[v] for v in var)
        sub = sub.copy()
        sub["log_likelihood"] = xr.DataTree(xr.Dataset({"total": total}))
    with warnings.catch_warnings():  # high Pareto k is reported in the table, not as a warning
        warnings.filterwarnings("ignore", message=".*Pareto distribution.*")
        return azs.loo(sub)


def has_loo(run) -> bool:
    """PSIS-LOO applies to this run: a patient-level score or per-item model with one log-likelihood variable."""
    dt = run.idata
    return (run.manifest["model"]["kind"] in ("score", "items") and "log_likelihood" in dt.children
            and len(dt["log_likelihood"].data_vars) == 1)


def loo_table(dt: xr.DataTree) -> dict:
    """PSIS-LOO of one run (averaged over reconstruction blocks): elpd, se, p_loo, Pareto k > 0.7 count."""
    rows = []
    for k, sub, _ in blocks(dt):
        res = _loo(sub)
        k_vals = np.asarray(res.pareto_k.values).ravel()
        rows.append({"block": k, "elpd_loo": float(res.elpd), "se": float(res.se), "p_loo": float(res.p),
                     "n_points": int(res.n_data_points), "pareto_k_gt_0.7": int((k_vals > 0.7).sum())})
    df = pd.DataFrame(rows)
    return {"elpd_loo": float(df["elpd_loo"].mean()), "se": float(df["se"].mean()), "p_loo": float(df["p_loo"].mean()),
            "n_points": int(df["n_points"].iloc[0]), "pareto_k_gt_0.7": int(df["pareto_k_gt_0.7"].max()), "blocks": len(df),
            "elpd_loo_between_blocks_sd": float(df["elpd_loo"].std(ddof=1)) if len(df) > 1 else 0.0}


def compare_runs(runs: dict[str, xr.DataTree]) -> pd.DataFrame:
    """Compare runs by PSIS-LOO (ArviZ ``compare``), block by block when they share reconstructions; mean over blocks."""
    import arviz_stats as azs

    per_run = {name: blocks(dt) for name, dt in runs.items()}
    counts = {len(b) for b in per_run.values()}
    if len(counts) != 1:
        raise ValueError("runs to compare must have the same number of reconstruction blocks")
    n_blocks = counts.pop()
    tables = []
    for i in range(n_blocks):
        subs = {}
        for name, b in per_run.items():
            sub = b[i][1]
            ll = sub["log_likelihood"].to_dataset()
            if len(ll.data_vars) != 1:
                raise ValueError(f"run {name} has {len(ll.data_vars)} observed variables; LOO comparison needs patient-level runs")
            subs[name] = sub
        sizes = {name: int(next(iter(s["log_likelihood"].to_dataset().data_vars.values())).size
                           / (s["log_likelihood"].to_dataset().sizes["chain"] * s["log_likelihood"].to_dataset().sizes["draw"]))
                 for name, s in subs.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"runs have different numbers of observations {sizes}: they were not fitted to the same data")
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Pareto distribution.*")
            # each run's PSIS-LOO (remembered from loo_table where computed before): the same numbers as azs.compare(subs)
            tables.append(azs.compare({name: _loo(sub) for name, sub in subs.items()}))
    cols = ["elpd", "p", "elpd_diff", "dse", "weight"]
    mean = sum(t[cols] for t in tables) / len(tables)
    mean = mean.sort_values("elpd", ascending=False)
    mean["rank"] = np.arange(len(mean))
    mean["blocks"] = n_blocks
    return mean.reset_index(names="run")[["run", "rank", "elpd", "p", "elpd_diff", "dse", "weight", "blocks"]]


def _score_stats(y: np.ndarray, ceiling: int) -> dict[str, np.ndarray]:
    """Mean, SD and share at or above ``ceiling`` of scores y (..., patient); the SD of one patient is 0."""
    return {"mean": y.mean(-1), "sd": y.std(-1, ddof=1) if y.shape[-1] > 1 else np.zeros(y.shape[:-1]),
            "at_ceiling": (y >= ceiling).mean(-1)}


def _cell_stats(y: np.ndarray, arm_idx: np.ndarray, s_idx: np.ndarray, card, ceiling: int) -> dict[str, dict[str, np.ndarray]]:
    """Cell mean, SD and fraction at the ceiling of y (..., patient), by the card's cell labels."""
    out = {}
    for a, arm in enumerate(card.arm_levels):
        for f, lev in enumerate(card.stratum_levels):
            m = (arm_idx == a) & (s_idx == f)
            if m.any():
                out[card.cell_label(arm, lev)] = _score_stats(y[..., m], ceiling)
    return out


def _check_row(block: int, var: str, element: str, statistic: str, observed: float, rep: np.ndarray) -> dict:
    """One row of the predictive-check table: the observed statistic against its replicated draws ``rep``."""
    return {"block": block, "variable": var, "element": element, "statistic": statistic, "observed": float(observed),
            "predictive_mean": float(rep.mean()), "predictive_low": float(np.quantile(rep, 0.05)),
            "predictive_high": float(np.quantile(rep, 0.95)), "p_value": float((rep >= observed).mean())}


def is_item_scores(da: xr.DataArray, o) -> bool:
    """Whether ``da`` holds the item scores of a score outcome ``o`` (dims patient and item): checked by category, per
    item and arm, in the predictive-check table and figure."""
    return "item" in da.dims and "patient" in da.dims and o is not None and bool(getattr(o, "items", None))


def item_scores(data: xr.Dataset, var: str, item_min: int) -> tuple[np.ndarray, np.ndarray]:
    """One block's item scores after treatment on the items' scale (patient, item) and each patient's arm index (the
    card's arm order). A reconstructed block carries them (``item_post_from_min``, ``arm_idx``); a patient-level run's
    data hold the observed ``var`` as the likelihood saw it (counted from the scale's minimum) and the indicator of the
    card's first arm (``treatment``)."""
    obs = data["item_post_from_min"] if "item_post_from_min" in data else data[var]
    arm = data["arm_idx"].values if "arm_idx" in data else np.where(np.asarray(data["treatment"].values) == 1, 0, 1)
    return np.asarray(obs.transpose("patient", "item").values) + item_min, np.asarray(arm)


def ppc_table(run) -> pd.DataFrame:
    """Posterior predictive checks: observed statistic, predictive mean and 90% interval, P(replicated ≥ observed).

    Patient-level score runs: per arm × stratum cell, the mean, SD and share at the ceiling of the post-treatment score (in
    points). Item scores: per item and arm, their mean, SD and share at the top of the item scale. Other runs: every
    observed value. Reconstructed runs: each block against its own data, averaged.
    """
    dt = run.idata
    parts = [dt[g].to_dataset() for g in ("posterior_predictive", "observed_data", "constant_data", "reconstruction_data")
             if g in dt.children]
    key = digest(*parts, run.card_text, run.manifest.get("outcome"), sorted(run.manifest.get("model", {}).items()))
    return _PPC.get_or_compute(key, lambda: _compute_ppc_table(run)).copy()


def _compute_ppc_table(run) -> pd.DataFrame:
    dt = run.idata
    card = run.card
    outcome = run.manifest.get("outcome")
    o = card.outcomes.get(outcome)
    rows = []
    for k, sub, data in blocks(dt):
        pp = sub["posterior_predictive"].to_dataset()
        for var in pp.data_vars:
            rep = pp[var].stack(sample=("chain", "draw")).transpose("sample", ...).values
            if var == "post" and o is not None and o.kind == "score" and data is not None and "arm_idx" in data and "stratum_idx" in data:
                shift = o.min if run.manifest["model"].get("likelihood") == "beta_binomial" else 0
                # replicate data hold the raw score; a run's observed_data hold what the likelihood saw (shifted for beta-binomial)
                obs = np.asarray(data["post"].values, dtype=float) + (0 if "post_from_min" in data else shift)
                ceiling = ceiling_of(o)
                obs_s = _cell_stats(obs, data["arm_idx"].values, data["stratum_idx"].values, card, ceiling)
                rep_s = _cell_stats(rep.astype(float) + shift, data["arm_idx"].values, data["stratum_idx"].values, card, ceiling)
                rows += [_check_row(k, var, cell, stat, ob, rep_s[cell][stat]) for cell, stats in obs_s.items() for stat, ob in stats.items()]
                continue
            if is_item_scores(pp[var], o) and data is not None:
                obs_items, arm_idx = item_scores(data, var, o.item_min)
                rep_items = rep.astype(float) + o.item_min
                for j, item in enumerate(pp[var]["item"].values):
                    for a, arm in enumerate(card.arm_levels):
                        m = arm_idx == a
                        if not m.any():
                            continue
                        obs_s, rep_s = _score_stats(obs_items[m, j], o.item_max), _score_stats(rep_items[:, m, j], o.item_max)
                        element = f"{card.label('item', str(item))}, {card.arm_label(arm)}"
                        rows += [_check_row(k, var, element, stat, ob, rep_s[stat]) for stat, ob in obs_s.items()]
                continue
            obs_ds = dt["observed_data"].to_dataset() if "observed_data" in dt.children else None
            if obs_ds is None or var not in obs_ds:
                continue
            if "reconstruction" in dt["posterior"].coords:
                continue  # the tree's observed data are one reconstruction's: no other block may be checked against them
            obs = obs_ds[var]
            flat_obs = np.asarray(obs.values, dtype=float).reshape(-1)
            flat_rep = rep.reshape(rep.shape[0], -1).astype(float)
            labels = list(np.ndindex(*obs.shape)) if obs.ndim else [()]
            for j, idx in enumerate(labels):
                name = ", ".join(str(obs[d].values[i]) for d, i in zip(obs.dims, idx, strict=True)) if obs.ndim else ""
                rows.append(_check_row(k, var, name, "value", flat_obs[j], flat_rep[:, j]))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    keys = ["variable", "element", "statistic"]
    agg = df.groupby(keys, sort=False).agg(observed=("observed", "mean"), predictive_mean=("predictive_mean", "mean"),
                                           predictive_low=("predictive_low", "mean"), predictive_high=("predictive_high", "mean"),
                                           p_value=("p_value", "mean"), blocks=("block", "nunique")).reset_index()
    return agg


def spread_table(dt: xr.DataTree, dim: str = "reconstruction") -> pd.DataFrame:
    """Between-reconstruction spread per estimand element: SD of the blocks' posterior means vs the mean posterior SD.

    ``fraction_between`` = B / (B + W) with B the variance of the block means and W the mean block variance: the share of
    posterior variance that comes from not knowing the patient data (as in multiple imputation).
    """
    group = f"{dim}_spread"
    if group not in dt.children:
        raise ValueError("this run was not fitted to reconstructed data sets")
    ds = dt[group].to_dataset()
    rows = []
    for name in ds.data_vars:
        if not name.endswith("__mean"):
            continue
        var = name[: -len("__mean")]
        means, sds = ds[name], ds[f"{var}__sd"]
        extra = [d for d in means.dims if d != dim]
        for idx in (np.ndindex(*[means.sizes[d] for d in extra]) if extra else [()]):
            sel = dict(zip(extra, idx, strict=True))
            m = means.isel(sel).values
            s = sds.isel(sel).values
            label = ", ".join(str(means[d].values[i]) for d, i in sel.items())
            between = float(np.var(m, ddof=1)) if len(m) > 1 else 0.0
            within = float(np.mean(s**2))
            rows.append({"name": f"{var}[{label}]" if label else var, "pooled_mean": float(np.mean(m)), "between_sd": float(np.sqrt(between)),
                         "within_sd": float(np.sqrt(within)), "fraction_between": between / (between + within) if between + within > 0 else 0.0,
                         "min_block_mean": float(np.min(m)), "max_block_mean": float(np.max(m))})
    return pd.DataFrame(rows)

