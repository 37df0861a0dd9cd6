"""The cumulative-logit distribution of the per-item model, checked against its definition computed here with numpy,
against PyMC's Categorical on the same probabilities, and its draws against the probabilities."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import expit

from bayes_sacral.models.cumulative_logit import CumulativeLogit


def _case(seed=0, P=7, I=3, L=6):  # noqa: E741 - patients, items, levels
    rng = np.random.default_rng(seed)
    cut = np.sort(rng.normal(0, 1.5, size=(I, L - 1)), axis=1)
    eta = rng.normal(size=(P, I))
    y = rng.integers(0, L, size=(P, I))
    return cut, eta, y


def _probs(cut, eta):
    """P(Y = k) from the definition P(Y <= k) = logistic(cut_k - eta)."""
    le = expit(cut - eta[..., None])
    return np.concatenate([le[..., :1], np.diff(le, axis=-1), 1 - le[..., -1:]], axis=-1)


def test_log_density_is_the_difference_of_logistic_cdfs():
    cut, eta, y = _case()
    lp = pm.logp(CumulativeLogit.dist(cut[None], eta), y).eval()
    expected = np.log(np.take_along_axis(_probs(cut[None], eta), y[..., None], -1)[..., 0])
    np.testing.assert_allclose(lp, expected, rtol=1e-12)
    # the end categories use one cutpoint each; values outside 0 … K-1 have no probability
    lo = pm.logp(CumulativeLogit.dist(cut[None], eta), np.zeros_like(y)).eval()
    np.testing.assert_allclose(lo, np.log(expit(cut[None, :, 0] - eta)), rtol=1e-12)
    hi = pm.logp(CumulativeLogit.dist(cut[None], eta), np.full_like(y, cut.shape[1])).eval()
    np.testing.assert_allclose(hi, np.log(1 - expit(cut[None, :, -1] - eta)), rtol=1e-12)
    for bad in (-1, cut.shape[1] + 1):
        assert np.all(pm.logp(CumulativeLogit.dist(cut[None], eta), np.full_like(y, bad)).eval() == -np.inf)


def test_same_density_as_pymcs_categorical_on_the_cumulative_probabilities():
    from bayes_sacral.models.blocks import cumulative_probs

    cut, eta, y = _case(seed=1)
    ours = pm.logp(CumulativeLogit.dist(cut[None], eta), y).eval()
    theirs = pm.logp(pm.Categorical.dist(p=cumulative_probs(pt.as_tensor(cut[None]), pt.as_tensor(eta))), y).eval()
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)


def test_gradient_matches_finite_differences():
    cut, eta, y = _case(seed=2, P=4, I=2, L=5)
    c, e = pt.matrix("c"), pt.matrix("e")
    total = pm.logp(CumulativeLogit.dist(c[None], e), y).sum()
    f = pytensor.function([c, e], [total, *pytensor.grad(total, [c, e])])
    _, gc, ge = f(cut, eta)
    h = 1e-6
    for arr, grad, which in ((cut, gc, 0), (eta, ge, 1)):
        for idx in np.ndindex(arr.shape):
            up, down = arr.copy(), arr.copy()
            up[idx] += h
            down[idx] -= h
            args_up = (up, eta) if which == 0 else (cut, up)
            args_down = (down, eta) if which == 0 else (cut, down)
            fd = (f(*args_up)[0] - f(*args_down)[0]) / (2 * h)
            assert grad[idx] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_draws_follow_the_category_probabilities():
    cut, eta, _ = _case(seed=3, P=2, I=2, L=6)
    n = 20000
    draws = pm.draw(CumulativeLogit.dist(cut[None], eta, size=(n, 2, 2)), random_seed=7)
    assert draws.dtype.kind == "i" and draws.min() >= 0 and draws.max() <= 5
    p = _probs(cut[None], eta)
    for i, j in np.ndindex(2, 2):
        counts = np.bincount(draws[:, i, j], minlength=6)
        keep = p[i, j] * n >= 5
        chi2 = ((counts[keep] - n * p[i, j][keep]) ** 2 / (n * p[i, j][keep])).sum()
        assert stats.chi2(keep.sum() - 1).sf(chi2) > 1e-4, (i, j, counts, p[i, j] * n)
