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
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .workers import available_cores

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = ["SamplerSettings", "Diagnostics", "sample", "sample_exact", "predictive", "thinned", "diagnose", "child_seeds", "THRESHOLDS", "quiet_pymc", "Refitter"]

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
    predictive_draws: int = 1000


def child_seeds(seed: int, n: int = 4) -> list[int]:
    """Independent integer seeds for the stages of one run (posterior, prior, predictive, ...)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


@contextlib.contextmanager
def quiet_pymc():
    loggers = [logging.getLogger(n) for n in ("pymc", "pymc.sampling", "pymc.stats.convergence", "nutpie")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*The number of samples is too small.*")
            # PyTensor's numba backend draws beta-binomial variates in object mode: slower, not wrong
            warnings.filterwarnings("ignore", message=".*Numba will use object mode.*")
            # without a linked BLAS, PyTensor's C backend computes its few small dot products through numpy
            warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def sample(model: pm.Model, settings: SamplerSettings, seed: int, progressbar: bool = False) -> tuple[xr.DataTree, float]:
    """Prior (predictive), posterior, posterior predictive and pointwise log-likelihood of ``model``.

    Returns the DataTree and the wall time (s) of the whole step. Same model, settings and seed give bit-identical draws
    on the same machine and lock (the stages get child seeds of ``seed``). With the nutpie backend the model comes from
    the compile cache (:func:`bayes_sacral.compiled.compiled_model`): compiled once per structure, ever. The posterior
    predictive uses an evenly thinned subset of ``settings.predictive_draws`` posterior draws (enough for checks).
    """
    s_post, s_prior, s_pp, _ = child_seeds(seed)
    t0 = time.perf_counter()
    if settings.backend == "nutpie":
        # NUTS runs in nutpie's threads; the prior groups (their own seed) are computed meanwhile in this one
        idata, prior = _sample_nutpie(model, settings, s_post, progressbar, lambda: _prior_groups(model, settings, s_prior))
    else:
        idata = _sample_pymc(model, settings, s_post, progressbar)
        prior = _prior_groups(model, settings, s_prior)
    idata.update(prior)
    _posterior_groups(model, idata, settings, s_pp)
    return idata, time.perf_counter() - t0


def sample_exact(model: pm.Model, draws: dict[str, np.ndarray], settings: SamplerSettings, seed: int,
                 prior: dict[str, np.ndarray] | None = None) -> tuple[xr.DataTree, float]:
    """A DataTree like :func:`sample`'s from independent draws of every free variable of a conjugate model (drawn from its
    closed-form posterior by the model kind): deterministics, posterior predictive and log-likelihood are computed
    from them exactly as after MCMC. No sample_stats group: there is no sampler to diagnose.

    ``prior``: closed-form draws of the free variables from their prior (leading dims (1, prior draws)); the prior and
    prior predictive groups are then computed from them, vectorised, instead of by PyMC's per-draw loop."""
    import pymc as pm
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        dict_to_dataset,
        find_constants,
        find_observations,
    )

    _s_post, s_prior, s_pp, _ = child_seeds(seed)
    t0 = time.perf_counter()
    free = {rv.name for rv in model.free_RVs}
    if set(draws) != free:
        raise ValueError(f"exact draws give {sorted(draws)}, the model's free variables are {sorted(free)}")
    coords, dims = coords_and_dims_for_inferencedata(model)
    post = _exact_dataset(model, draws)
    idata = xr.DataTree.from_dict({"posterior": post})
    idata["constant_data"] = xr.DataTree(dict_to_dataset(find_constants(model), inference_library=pm, coords=coords, dims=dims,
                                                         sample_dims=[]))
    idata["observed_data"] = xr.DataTree(dict_to_dataset(find_observations(model), inference_library=pm, coords=coords, dims=dims,
                                                         sample_dims=[]))
    idata["posterior"].attrs["sampling_method"] = "exact independent draws from the closed-form posterior"
    predictive(model, idata, settings, s_prior, s_pp, prior=prior)
    return idata, time.perf_counter() - t0


def _exact_dataset(model: pm.Model, draws: dict[str, np.ndarray]) -> xr.Dataset:
    """Draws of the free variables (leading dims chain, draw) with every deterministic of ``model`` added."""
    from pymc.backends.arviz import coords_and_dims_for_inferencedata

    from . import batched

    coords, dims = coords_and_dims_for_inferencedata(model)
    C, D = next(iter(draws.values())).shape[:2]
    post = xr.Dataset({n: (("chain", "draw", *dims.get(n, [f"{n}_dim_{i}" for i in range(a.ndim - 2)])), a) for n, a in draws.items()},
                      coords={"chain": np.arange(C), "draw": np.arange(D), **{k: v for k, v in coords.items()}})
    with model, quiet_pymc():
        post = batched.deterministics(model, post)
    return post.drop_vars([c for c in post.coords if c not in post.dims and c not in ("chain", "draw")], errors="ignore")


def _sample_nutpie(model: pm.Model, settings: SamplerSettings, seed: int, progressbar: bool, meanwhile):
    """NUTS draws of ``model`` (posterior, sample_stats, constant and observed data) and what ``meanwhile()`` returned,
    computed in this thread while nutpie's threads sample."""
    from pymc.backends.arviz import patch_nutpie_idata

    from . import nuts
    from .compiled import compiled_model

    cm = compiled_model(model)
    t = time.perf_counter()
    with quiet_pymc():
        running = nuts.start(cm, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                             cores=min(settings.chains, available_cores()), seed=seed, progress_bar=progressbar,
                             target_accept=settings.target_accept, maxdepth=settings.max_treedepth)
        try:
            other = meanwhile()
        except BaseException:
            running.cancel()
            raise
        idata = running.wait()
    patch_nutpie_idata(idata, model, sampling_time=time.perf_counter() - t)
    return idata, other


def _sample_pymc(model: pm.Model, settings: SamplerSettings, seed: int, progressbar: bool) -> xr.DataTree:
    import pymc as pm

    nuts = {"max_treedepth": settings.max_treedepth}
    if settings.backend == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError as exc:
            from .errors import BayesSacralError

            raise BayesSacralError("sampler.backend = 'numpyro' needs jax and numpyro installed") from exc
        nuts = {"chain_method": "sequential"}
    with model, quiet_pymc():
        return pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains, cores=1 if settings.backend == "pymc" else None,
                         random_seed=seed, nuts_sampler=settings.backend, target_accept=settings.target_accept, nuts=nuts,
                         progressbar=progressbar)


def thinned(post: xr.Dataset, n: int) -> xr.Dataset:
    """At most ``n`` posterior draws, evenly spaced along ``draw`` in every chain."""
    total = post.sizes["chain"] * post.sizes["draw"]
    step = max(1, int(np.ceil(total / max(n, 1))))
    return post.isel(draw=slice(None, None, step))


def _prior_predictive(model: pm.Model, draws: int, seed: int) -> xr.DataTree:
    """Prior and prior predictive draws (inside ``model``): all draws in one vectorised call
    (:func:`~bayes_sacral.batched.prior_predictive`), or PyMC's per-draw loop for a model with a random variable the
    vectorised sampler does not handle."""
    import pymc as pm

    from . import batched

    try:
        prior, pp = batched.prior_predictive(model, draws, seed)
    except NotImplementedError:
        return batched.with_draw_mode(model, lambda mode: pm.sample_prior_predictive(draws=draws, random_seed=seed,
                                                                                   compile_kwargs={"mode": mode}))
    groups = {"prior": prior}
    if pp.data_vars:
        groups["prior_predictive"] = pp
    return xr.DataTree.from_dict(groups)


def predictive(model: pm.Model, idata: xr.DataTree, settings: SamplerSettings, s_prior: int, s_pp: int,
               prior: dict[str, np.ndarray] | None = None) -> None:
    """Add the prior (predictive), posterior predictive (on a thinned subset) and log-likelihood groups to ``idata``;
    the prior from ``prior`` (closed-form draws of the free variables, see :func:`sample_exact`) where given."""
    idata.update(_prior_groups(model, settings, s_prior, prior))
    _posterior_groups(model, idata, settings, s_pp)


def _prior_groups(model: pm.Model, settings: SamplerSettings, s_prior: int,
                  prior: dict[str, np.ndarray] | None = None) -> dict[str, xr.DataTree]:
    """The prior and prior predictive groups (none when ``settings.prior_draws`` is 0)."""
    from . import batched

    with model, quiet_pymc():
        if settings.prior_draws and prior is not None:
            pr = _exact_dataset(model, prior)
            pr.attrs["sampling_method"] = "exact independent draws from the prior"
            return {"prior": xr.DataTree(pr), "prior_predictive": xr.DataTree(batched.posterior_predictive(model, pr, s_prior))}
        if settings.prior_draws:
            return dict(_prior_predictive(model, settings.prior_draws, s_prior).children)
    return {}


def _posterior_groups(model: pm.Model, idata: xr.DataTree, settings: SamplerSettings, s_pp: int) -> None:
    """Add the posterior predictive (on a thinned subset) and log-likelihood groups to ``idata``."""
    from . import batched

    with model, quiet_pymc():
        if model.observed_RVs:
            post = idata["posterior"].to_dataset()
            idata["posterior_predictive"] = xr.DataTree(batched.posterior_predictive(model, thinned(post, settings.predictive_draws), s_pp))
            idata["log_likelihood"] = xr.DataTree(batched.log_likelihood(model, post))


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
    method: str = "NUTS"

    def to_dict(self) -> dict:
        return asdict(self)


def _extreme(values: dict[str, np.ndarray], fn) -> tuple[float, str]:
    """``fn`` (np.max or np.min) over the finite values of every variable, and the variable holding it (on a tie, the
    later one)."""
    best, name = None, ""
    for v, arr in values.items():
        arr = np.asarray(arr, dtype=float)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            continue
        val = fn(arr)
        if best is None or fn(np.array([val, best])) == val:
            best, name = float(val), str(v)
    return (float("nan") if best is None else best), name


def diagnose(idata: xr.DataTree, var_names: list[str] | None = None) -> Diagnostics:
    """Convergence diagnostics of the posterior against :data:`THRESHOLDS` (status ok | warning | failed).

    Every element of every variable is diagnosed in one call
    (:func:`bayes_sacral.convergence.diagnostics_by_variable`): a reconstructed run diagnoses each of its data sets."""
    import arviz_stats as azs

    from .convergence import diagnostics_by_variable

    post = idata["posterior"].to_dataset()
    if var_names:
        post = post[[v for v in var_names if v in post]]
    chains = post.sizes["chain"]
    draws = post.sizes["draw"]
    # variables that are constant across draws (e.g. a fixed zero) have undefined R-hat/ESS; skip them
    keep = [v for v in post.data_vars if float(post[v].std()) > 0]
    per_variable = diagnostics_by_variable(post[keep])
    diags = {k: {v: d[k] for v, d in per_variable.items()} for k in ("rhat", "ess_bulk", "ess_tail")}
    problems = []
    if chains >= 2:
        max_rhat, rhat_var = _extreme(diags["rhat"], np.max)
    else:
        max_rhat, rhat_var = float("nan"), ""
        problems.append("one chain: R-hat cannot be computed")
    ess_b, essb_var = _extreme(diags["ess_bulk"], np.min)
    ess_t, esst_var = _extreme(diags["ess_tail"], np.min)
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else xr.Dataset()
    div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    frac = div / (chains * draws)
    if "energy" in stats:
        min_bfmi = float(np.nanmin(np.asarray(azs.bfmi(idata)["energy"].values, dtype=float)))
    else:
        min_bfmi = float("nan")

    return judge(max_rhat, rhat_var, ess_b, essb_var, ess_t, esst_var, div, frac, min_bfmi, chains, problems)


def judge(max_rhat: float, rhat_var: str, ess_b: float, essb_var: str, ess_t: float, esst_var: str, div: int, frac: float,
          min_bfmi: float, chains: int, problems: list[str] | None = None) -> Diagnostics:
    """Status of diagnostic values against :data:`THRESHOLDS` (ESS thresholds scale with the number of chains)."""
    problems = list(problems or [])
    status = "ok"

    def worse(level: str):
        nonlocal status
        order = {"ok": 0, "warning": 1, "failed": 2}
        if order[level] > order[status]:
            status = level

    if any("cannot be computed" in p for p in problems):
        worse("warning")
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

        from .compiled import compiled_model

        self.model = model
        with quiet_pymc():
            self.compiled = compiled_model(model)
        from pytensor.graph.traversal import ancestors

        data_names = {d.name for d in model.data_vars}
        self.data_for_observed = {}
        for rv in model.observed_RVs:
            # the observed value is the pm.Data container, possibly behind a cast
            found = [a.name for a in ancestors([model.rvs_to_values[rv]]) if a.name in data_names]
            if len(found) != 1:
                raise ValueError(f"observed variable {rv.name} must be backed by exactly one pm.Data container")
            self.data_for_observed[rv.name] = found[0]

    def with_data(self, data: dict[str, np.ndarray]):
        """The compiled model with new values for its pm.Data containers (unused containers are skipped)."""
        # nutpie keys its shared data internally; the pm.Data names are those of its shared variables
        known = {var.name for var in self.compiled.shared_var_keys}
        unknown = [k for k in data if k not in known and k not in self.model.named_vars]
        if unknown:
            raise KeyError(f"no data container(s) {unknown} in the model")
        return self.compiled.with_data(**{k: np.asarray(v, dtype=self.model[k].get_value().dtype) for k, v in data.items() if k in known})

    def fit(self, data: dict[str, np.ndarray], seed: int, draws: int = 500, tune: int = 500, chains: int = 2,
            target_accept: float = 0.9) -> tuple[xr.Dataset, int]:
        """Posterior draws (Dataset with chain, draw dims) and the number of divergences for new ``data``."""
        from . import nuts

        tree = nuts.start(self.with_data(data), draws=draws, tune=tune, chains=chains, cores=1, seed=seed, progress_bar=False,
                          target_accept=target_accept).wait()
        post = tree["posterior"].to_dataset()
        div = int(tree["sample_stats"]["diverging"].sum())
        return post, div


def sample_replicates(model: pm.Model, datasets: list[dict[str, np.ndarray]], settings: SamplerSettings, seed: int,
                      dim: str = "reconstruction", progress=None) -> tuple[xr.DataTree, float, list[Diagnostics]]:
    """Fit one compiled model to several data sets of identical shape and pool the draws.

    The pooled posterior has ``chain`` = replicate × chain, with a ``dim`` coordinate along ``chain`` naming each block's
    data set. Posterior predictive draws and pointwise log-likelihoods are computed per block against that block's own
    data. The prior group uses the model's own (first) data set. Returns the tree, wall time and each block's diagnostics.
    """
    import pymc as pm

    s_post, s_prior, s_pp, _ = child_seeds(seed)
    t0 = time.perf_counter()
    from . import batched, nuts

    refit = Refitter(model)
    seeds = np.random.SeedSequence(s_post).generate_state(len(datasets), dtype=np.uint32)
    pp_seeds = np.random.SeedSequence(s_pp).generate_state(len(datasets), dtype=np.uint32)
    C = settings.chains
    posts, stats, pps, lls, diags = [], [], [], [], []
    obs_names = list(refit.data_for_observed)
    for k, data in enumerate(datasets):
        tree = nuts.start(refit.with_data(data), draws=settings.draws, tune=settings.tune, chains=C, cores=min(C, available_cores()),
                          seed=seeds[k], progress_bar=False, target_accept=settings.target_accept, maxdepth=settings.max_treedepth).wait()
        post = tree["posterior"].to_dataset()
        ss = tree["sample_stats"].to_dataset()[["diverging", "energy"]]
        block = xr.DataTree.from_dict({"posterior": post, "sample_stats": ss})
        diags.append(diagnose(block))
        with model, quiet_pymc():
            pm.set_data({n: np.asarray(v, dtype=model[n].get_value().dtype) for n, v in data.items()})
            # vectorised over draws, compiled once for all data sets (the shared data were just rebound)
            pp = batched.posterior_predictive(model, thinned(post, max(100, settings.predictive_draws // len(datasets))), int(pp_seeds[k]))
            pp = pp[[n for n in obs_names if n in pp]]
            ll = batched.log_likelihood(model, post)
        chain = np.arange(k * C, (k + 1) * C)
        for lst, ds in ((posts, post), (stats, ss), (pps, pp), (lls, ll)):
            lst.append(ds.assign_coords(chain=chain))
        if progress is not None:
            progress(k + 1, len(datasets))
    label = {dim: ("chain", np.repeat(np.arange(1, len(datasets) + 1), C))}
    tree = xr.DataTree.from_dict({
        "posterior": xr.concat(posts, "chain").assign_coords(label),
        "sample_stats": xr.concat(stats, "chain").assign_coords(label),
        "posterior_predictive": xr.concat(pps, "chain").assign_coords(label),
        "log_likelihood": xr.concat(lls, "chain").assign_coords(label),
    })
    with model, quiet_pymc():
        pm.set_data({n: np.asarray(v, dtype=model[n].get_value().dtype) for n, v in datasets[0].items()})
        if settings.prior_draws:
            tree.update(_prior_predictive(model, settings.prior_draws, s_prior))
    return tree, time.perf_counter() - t0, diags


def combine_diagnostics(diags: list[Diagnostics], chains: int) -> Diagnostics:
    """Diagnostics of pooled replicate fits (e.g. reconstructed data sets), each judged as its own posterior.

    R-hat and ESS are computed within each data set and the worst is reported (chains of different data sets are not
    chains of one posterior, so an R-hat across them would measure the spread between data sets, not convergence);
    ``chains`` is the number of chains per data set. Divergences add up; E-BFMI is the smallest of any data set.
    """
    worst = max(diags, key=lambda d: d.max_r_hat)
    bulk = min(diags, key=lambda d: d.min_ess_bulk)
    tail = min(diags, key=lambda d: d.min_ess_tail)
    div = sum(d.divergences for d in diags)
    total_draws = sum(d.divergences / d.divergence_fraction for d in diags if d.divergence_fraction)
    frac = div / total_draws if div and total_draws else 0.0
    return judge(worst.max_r_hat, f"{worst.worst_r_hat_variable} (data set {diags.index(worst) + 1})",
                 bulk.min_ess_bulk, f"{bulk.worst_ess_variable} (data set {diags.index(bulk) + 1})", tail.min_ess_tail,
                 f"data set {diags.index(tail) + 1}", div, frac, float(np.nanmin([d.min_bfmi for d in diags])), chains)
