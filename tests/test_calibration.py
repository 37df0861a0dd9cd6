"""Simulation-based calibration of the event models (reduced here; full >= 200 simulations under `make validate`)."""

import pytest

from bayes_sacral.calibration import rank_uniformity, run_sbc
from bayes_sacral.config import resolve
from bayes_sacral.fitting import prepare_run
from bayes_sacral.priors import PriorSpec

MODELS = {
    "beta_binomial": {"model": {"kind": "secondary_procedures"}, "priors": {"set": "uniform"}},
    "beta_binomial_hierarchical": {"model": {"kind": "secondary_procedures", "variant": "hierarchical"}, "priors": {"set": "weakly_informative"}},
    "ordered_logit": {"model": {"kind": "narcotic_change", "variant": "ordered_logit"}, "priors": {"set": "weakly_informative"}},
    "msts_ipd_normal": {"data": {"source": "ipd", "path": "tests/data/ipd_valid.csv"}, "model": {"kind": "msts"}},
    "msts_ipd_beta_binomial": {"data": {"source": "ipd", "path": "tests/data/ipd_valid.csv"}, "model": {"kind": "msts", "likelihood": "beta_binomial"}},
    "msts_summary": {"model": {"kind": "msts", "route": "summary"}},
}


def sbc(name, n_sims, bins, **kw):
    run = resolve({"run": {"name": "sbc", "seed": 1}, **MODELS[name]})
    inp, _ = prepare_run(run)
    return run, run_sbc(run.kind, run.spec, inp, run.priors, n_sims=n_sims, seed=2024, bins=bins, target_accept=0.95, **kw)


def test_rank_uniformity_detects_non_uniform_ranks():
    assert rank_uniformity([0] * 50 + [99] * 50, 100, 10)[1] < 1e-10
    assert rank_uniformity(list(range(100)) * 2, 100, 10)[1] > 0.99


@pytest.mark.parametrize("name", ["beta_binomial", "ordered_logit", "msts_ipd_normal", "msts_ipd_beta_binomial", "msts_summary"])
def test_sbc_reduced(name):
    _, res = sbc(name, n_sims=60, bins=5)
    table = res.table()
    assert res.calibrated, table
    assert len(table) >= 5


def test_sbc_negative_control_fails():
    """A refit with the wrong prior must be flagged: the check can fail."""
    run = resolve({"run": {"name": "sbc", "seed": 1}, **MODELS["beta_binomial"]})
    inp, _ = prepare_run(run)
    wrong = {"p_event": PriorSpec("Beta", {"alpha": 8.0, "beta": 2.0})}
    res = run_sbc(run.kind, run.spec, inp, run.priors, n_sims=60, seed=2024, bins=5, fit_priors=wrong)
    assert not res.calibrated


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_sbc_full(name):
    _, res = sbc(name, n_sims=250, bins=10)
    assert res.n_sims >= 200
    assert res.calibrated, res.table()
    assert res.divergences <= 0.01 * res.n_sims * 800


def test_refits_see_their_data():
    """Regression: a refit must use the data it is given (nutpie keys shared data internally)."""
    import numpy as np

    from bayes_sacral.inference import Refitter

    run = resolve({"run": {"name": "r", "seed": 1}, **MODELS["beta_binomial"]})
    inp, _ = prepare_run(run)
    refit = Refitter(run.kind.build(inp, run.priors, run.spec))
    low, _ = refit.fit({"events_obs": np.zeros((2, 2))}, seed=1)
    high, _ = refit.fit({"events_obs": inp.data["trials"].values}, seed=1)
    assert float(low["p_event"].mean()) < 0.15 < 0.85 < float(high["p_event"].mean())
