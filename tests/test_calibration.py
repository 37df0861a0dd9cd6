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
}


def sbc(name, n_sims, bins, **kw):
    run = resolve({"run": {"name": "sbc", "seed": 1}, **MODELS[name]})
    inp, _ = prepare_run(run)
    return run, run_sbc(run.kind, run.options, inp, run.priors, n_sims=n_sims, seed=2024, bins=bins, target_accept=0.95, **kw)


def test_rank_uniformity_detects_non_uniform_ranks():
    assert rank_uniformity([0] * 50 + [99] * 50, 100, 10)[1] < 1e-10
    assert rank_uniformity(list(range(100)) * 2, 100, 10)[1] > 0.99


@pytest.mark.parametrize("name", ["beta_binomial", "ordered_logit"])
def test_sbc_reduced(name):
    _, res = sbc(name, n_sims=60, bins=5)
    table = res.table()
    assert res.calibrated, table
    assert len(table) >= 5


def test_sbc_negative_control_fails():
    """A refit with the wrong prior must be flagged: the check can fail."""
    run = resolve({"run": {"name": "sbc", "seed": 1}, **MODELS["beta_binomial"]})
    inp, _ = prepare_run(run)
    wrong = {"p_secondary": PriorSpec("Beta", {"alpha": 8.0, "beta": 2.0})}
    res = run_sbc(run.kind, run.options, inp, run.priors, n_sims=60, seed=2024, bins=5, fit_priors=wrong)
    assert not res.calibrated


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_sbc_full(name):
    _, res = sbc(name, n_sims=250, bins=10)
    assert res.n_sims >= 200
    assert res.calibrated, res.table()
    assert res.divergences <= 0.01 * res.n_sims * 800
