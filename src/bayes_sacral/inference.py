"""Sampling a built model into a complete DataTree, and MCMC diagnostics against documented thresholds.

Diagnostic thresholds (Vehtari et al. 2021, *Rank-normalization, folding, and localization: an improved R-hat*,
Bayesian Analysis 16:667; Betancourt 2016 for E-BFMI):

============  ==================  ==========================  =====================
diagnostic    ok                  warning                     failed
============  ==================  ==========================  =====================
R-hat         max <= 1.01         max <= 1.05                 max > 1.05
ESS           min >= 100·chains   min >= 25·chains            below (bulk or tail)
divergences   0                   <= 1% of draws              > 1% of draws
E-BFMI        min >= 0.3          min >= 0.2                  < 0.2
============  ==================  ==========================  =====================

The run status is the worst of the four.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pymc as pm
import xarray as xr

__all__ = ["SamplerSettings", "Diagnostics", "sample", "diagnose", "child_seeds", "THRESHOLDS"]

THRESHOLDS = {
    "r_hat": {"ok": 1.01, "warning": 1.05},
    "ess_per_chain": {"ok": 100, "warning": 25},
    "divergence_fraction": {"warning": 0.01},
    "bfmi": {"ok": 0.3, "warning": 0.2},
}


@dataclass(frozen=True)
class SamplerSettings:
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    backend: str = "nutpie"
    prior_draws: int = 1000
    max_treedepth: int = 10


def child_seeds(seed: int, n: int = 4) -> list[int]:
    """Independent integer seeds for the stages of one run (posterior, prior, predictive, ...)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


@contextlib.contextmanager
def _quiet_pymc():
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling", "pymc.stats.convergence", "nutpie")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*The number of samples is too small.*")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def sample(model: pm.Model, settings: SamplerSettings, seed: int, progressbar: bool = False) -> tuple[xr.DataTree, float]:
    """Prior (predictive), posterior, posterior predictive and pointwise log-likelihood of ``model``.

    Returns the DataTree and the wall time (s) of the whole step. Same model, settings and seed give
    bit-identical draws (the four stages get child seeds of ``seed``).
    """
    s_post, s_prior, s_pp, _ = child_seeds(seed)
    t0 = time.perf_counter()
    nuts = {"max_treedepth": settings.max_treedepth}
    if settings.backend == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError as exc:
            from .errors import BayesSacralError

            raise BayesSacralError("sampler.backend = 'numpyro' needs jax and numpyro installed") from exc
        nuts = {"chain_method": "sequential"}
    with model, _quiet_pymc():
        idata = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=1 if settings.backend == "pymc" else None,
            random_seed=s_post,
            nuts_sampler=settings.backend,
            target_accept=settings.target_accept,
            nuts=nuts,
            progressbar=progressbar,
        )
        if settings.prior_draws:
            idata.update(pm.sample_prior_predictive(draws=settings.prior_draws, random_seed=s_prior))
        pm.sample_posterior_predictive(idata, extend_inferencedata=True, random_seed=s_pp, progressbar=False)
        pm.compute_log_likelihood(idata, progressbar=False)
    return idata, time.perf_counter() - t0


@dataclass
class Diagnostics:
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    divergence_fraction: float
    min_bfmi: float
    status: str
    problems: list[str]
    worst_r_hat_variable: str = ""
    worst_ess_variable: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _extreme(node, fn) -> tuple[float, str]:
    best, name = None, ""
    for v in node.data_vars:
        arr = np.asarray(node[v].values, dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            continue
        val = fn(arr)
        if best is None or fn(np.array([val, best])) == val:
            best, name = float(val), str(v)
    return (float("nan") if best is None else best), name


def diagnose(idata: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """Convergence diagnostics of the posterior against :data:`THRESHOLDS` (status ok | warning | failed)."""
    import arviz as az

    post = idata["posterior"].to_dataset()
    if var_names:
        post = post[[v for v in var_names if v in post]]
    chains = post.sizes["chain"]
    draws = post.sizes["draw"]
    # variables that are constant across draws (e.g. a fixed zero) have undefined R-hat/ESS; skip them
    keep = [v for v in post.data_vars if float(post[v].std()) > 0]
    post = post[keep]
    problems = []
    status = "ok"

    def worse(level: str):
        nonlocal status
        order = {"ok": 0, "warning": 1, "failed": 2}
        if order[level] > order[status]:
            status = level

    if chains >= 2:
        rhat = az.rhat(post)
        max_rhat, rhat_var = _extreme(rhat, np.max)
    else:
        max_rhat, rhat_var = float("nan"), ""
        problems.append("one chain: R-hat cannot be computed")
        worse("warning")
    ess_b, essb_var = _extreme(az.ess(post, method="bulk"), np.min)
    ess_t, esst_var = _extreme(az.ess(post, method="tail"), np.min)
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else xr.Dataset()
    div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    frac = div / (chains * draws)
    if "energy" in stats:
        min_bfmi = float(np.nanmin(np.asarray(az.bfmi(idata)["energy"].values, dtype=float)))
    else:
        min_bfmi = float("nan")

    th = THRESHOLDS
    if np.isfinite(max_rhat):
        if max_rhat > th["r_hat"]["warning"]:
            worse("failed")
            problems.append(f"R-hat {max_rhat:.3f} for {rhat_var} > {th['r_hat']['warning']}")
        elif max_rhat > th["r_hat"]["ok"]:
            worse("warning")
            problems.append(f"R-hat {max_rhat:.3f} for {rhat_var} > {th['r_hat']['ok']}")
    for label, val, var in (("bulk", ess_b, essb_var), ("tail", ess_t, esst_var)):
        if not np.isfinite(val):
            continue
        if val < th["ess_per_chain"]["warning"] * chains:
            worse("failed")
            problems.append(f"{label} ESS {val:.0f} for {var} < {th['ess_per_chain']['warning'] * chains}")
        elif val < th["ess_per_chain"]["ok"] * chains:
            worse("warning")
            problems.append(f"{label} ESS {val:.0f} for {var} < {th['ess_per_chain']['ok'] * chains}")
    if div:
        level = "failed" if frac > th["divergence_fraction"]["warning"] else "warning"
        worse(level)
        problems.append(f"{div} divergent transitions ({100 * frac:.2f}% of draws)")
    if np.isfinite(min_bfmi):
        if min_bfmi < th["bfmi"]["warning"]:
            worse("failed")
            problems.append(f"E-BFMI {min_bfmi:.2f} < {th['bfmi']['warning']}")
        elif min_bfmi < th["bfmi"]["ok"]:
            worse("warning")
            problems.append(f"E-BFMI {min_bfmi:.2f} < {th['bfmi']['ok']}")
    return Diagnostics(max_rhat, ess_b, ess_t, div, frac, min_bfmi, status, problems, rhat_var, essb_var if ess_b <= ess_t else esst_var)


class Refitter:
    """A model compiled once (nutpie) and refitted to new observed data without recompiling.

    This is what makes simulation-based calibration and trial simulation affordable: compiling costs seconds,
    a refit of a small model tens of milliseconds. The model's observed values must live in ``pm.Data``.

    Parameters
    ----------
    model : pm.Model
        Built by a model kind's builder.
    """

    def __init__(self, model: pm.Model):
        import nutpie

        self.model = model
        with _quiet_pymc():
            self.compiled = nutpie.compile_pymc_model(model)
        from pytensor.graph.traversal import ancestors

        data_names = {d.name for d in model.data_vars}
        self.data_for_observed = {}
        for rv in model.observed_RVs:
            # the observed value is the pm.Data container, possibly behind a cast
            found = [a.name for a in ancestors([model.rvs_to_values[rv]]) if a.name in data_names]
            if len(found) != 1:
                raise ValueError(f"observed variable {rv.name} must be backed by exactly one pm.Data container")
            self.data_for_observed[rv.name] = found[0]

    def fit(self, data: dict[str, np.ndarray], seed: int, draws: int = 500, tune: int = 500, chains: int = 2,
            target_accept: float = 0.9) -> tuple[xr.Dataset, int]:
        """Posterior draws (Dataset with chain, draw dims) and the number of divergences for new ``data``."""
        import nutpie

        cm = self.compiled.with_data(**{k: np.asarray(v, dtype=float) for k, v in data.items()})
        tree = nutpie.sample(cm, draws=draws, tune=tune, chains=chains, cores=1, seed=int(seed), progress_bar=False,
                             save_warmup=False, target_accept=target_accept)
        post = tree["posterior"].to_dataset()
        div = int(tree["sample_stats"]["diverging"].sum())
        return post, div
