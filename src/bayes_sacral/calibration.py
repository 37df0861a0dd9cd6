"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788): ranks of true values among posterior draws.

For each of ``n_sims`` simulations a parameter vector is drawn from the prior, data are drawn from the model
given it, and the model is refitted with the same builder (compiled once). If the inference is right, the rank
of each true value among ``L`` thinned posterior draws is uniform on ``0..L``; a chi-square test on the binned
ranks measures departures, with a Bonferroni correction over the checked quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import stats

from .inference import Refitter, child_seeds, quiet_pymc
from .models.base import ModelInput, ModelKind, ModelSpec
from .priors import PriorSpec

__all__ = ["SBCResult", "run_sbc", "rank_uniformity"]


@dataclass
class SBCResult:
    """Ranks per checked quantity element, their uniformity tests and sampler health."""

    ranks: dict[str, np.ndarray]  # element name -> ranks (n_sims,)
    n_ranks: int  # ranks take values 0..n_ranks-1
    bins: int
    divergences: int
    n_sims: int
    alpha: float = 0.01

    def table(self) -> pd.DataFrame:
        rows = []
        for name, r in self.ranks.items():
            chi2, p = rank_uniformity(r, self.n_ranks, self.bins)
            rows.append({"quantity": name, "chi2": chi2, "p_value": p, "mean_rank": float(np.mean(r)) / (self.n_ranks - 1)})
        return pd.DataFrame(rows)

    @property
    def threshold(self) -> float:
        """Bonferroni-corrected significance level over the checked quantities."""
        return self.alpha / max(len(self.ranks), 1)

    @property
    def calibrated(self) -> bool:
        return bool((self.table()["p_value"] > self.threshold).all())


def rank_uniformity(ranks: np.ndarray, n_ranks: int, bins: int) -> tuple[float, float]:
    """Chi-square test that ranks in ``0..n_ranks-1`` are uniform, on ``bins`` equal-width bins."""
    if n_ranks % bins:
        raise ValueError("bins must divide the number of possible ranks")
    counts = np.bincount(np.asarray(ranks, int) * bins // n_ranks, minlength=bins)
    res = stats.chisquare(counts)
    return float(res.statistic), float(res.pvalue)


def _elements(ds: xr.Dataset, names: list[str], sample_dims: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Flatten each variable into named elements: name[label, ...] -> array over sample_dims."""
    out = {}
    for v in names:
        da = ds[v]
        extra = [d for d in da.dims if d not in sample_dims]
        da = da.transpose(*sample_dims, *extra)
        vals = da.values.reshape(*[da.sizes[d] for d in sample_dims], -1)
        labels = list(np.ndindex(*[da.sizes[d] for d in extra])) if extra else [()]
        for k, idx in enumerate(labels):
            lab = ", ".join(str(da[d].values[i]) for d, i in zip(extra, idx, strict=True))
            out[f"{v}[{lab}]" if lab else v] = vals[..., k]
    return out


def run_sbc(kind: ModelKind, spec: ModelSpec, inp: ModelInput, priors: dict[str, PriorSpec], n_sims: int = 200,
            seed: int = 1, quantities: list[str] | None = None, draws: int = 400, tune: int = 400, chains: int = 2,
            n_ranks: int = 100, bins: int = 10, fit_priors: dict[str, PriorSpec] | None = None,
            target_accept: float = 0.9, progress=None) -> SBCResult:
    """Simulation-based calibration of one model kind with its own builder.

    Parameters
    ----------
    kind, spec, inp, priors
        The model as a run would build it (``inp`` fixes the design: cell sizes, covariates).
    n_sims : int
        Number of simulated data sets (>= 200 for a real check).
    quantities : list of str, optional
        Variables whose ranks are checked (default: parameters with priors and the effect variables).
    n_ranks, bins : int
        Posterior draws are thinned to ``n_ranks - 1`` so ranks lie in ``0..n_ranks-1``; ``bins`` for the test.
    fit_priors : dict, optional
        Priors used when refitting (default: the simulation priors). Giving different ones is a negative control:
        the check must then fail.
    """
    s_prior, s_fit, _, _ = child_seeds(seed)
    sim_model = kind.build(inp, priors, spec)
    fit_model = sim_model if fit_priors is None else kind.build(inp, fit_priors, spec)
    quantities = quantities or [*kind.params(spec), *kind.effect_variables(spec)]
    with sim_model, quiet_pymc():
        prior = pm.sample_prior_predictive(draws=n_sims, random_seed=s_prior)
    truth = prior["prior"].to_dataset().isel(chain=0)
    sims = prior["prior_predictive"].to_dataset().isel(chain=0)
    refit = Refitter(fit_model)
    L = n_ranks - 1
    total = chains * draws
    if total < L:
        raise ValueError("need at least n_ranks - 1 posterior draws")
    pick = np.linspace(0, total - 1, L).round().astype(int)
    true_el = _elements(truth, quantities, ("draw",))
    ranks = {k: np.zeros(n_sims, dtype=int) for k in true_el}
    div = 0
    fit_seeds = np.random.SeedSequence(s_fit).generate_state(n_sims, dtype=np.uint32)
    for s in range(n_sims):
        data = {refit.data_for_observed[obs]: sims[obs].isel(draw=s).values for obs in refit.data_for_observed}
        post, d = refit.fit(data, int(fit_seeds[s]), draws=draws, tune=tune, chains=chains, target_accept=target_accept)
        div += d
        post_el = _elements(post, quantities, ("chain", "draw"))
        for k, tv in true_el.items():
            draws_k = post_el[k].reshape(-1)[pick]
            ranks[k][s] = int(np.sum(draws_k < tv[s]))
        if progress is not None:
            progress(s + 1, n_sims)
    return SBCResult(ranks, n_ranks, bins, div, n_sims)
