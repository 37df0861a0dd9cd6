"""Model building blocks used by several kinds, each written once: the pooling of an effect across strata,
induced-Dirichlet cutpoints, cumulative-logit category probabilities, and stratum contrasts and averages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..priors import PriorSpec, make_prior
from .base import CONTRAST_DIM, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import pytensor.tensor as pt

__all__ = ["pooled_effect", "pooled_effect_params", "induced_dirichlet_cutpoints", "cumulative_probs", "stratum_contrasts",
           "pooling_of"]


def pooling_of(spec: ModelSpec) -> str:
    """The pooling actually used: with one stratum there is nothing to pool (one effect with the location prior)."""
    pooling = getattr(spec.options, "pooling", "none")
    return "single" if spec.K == 1 else pooling


def pooled_effect_params(prefix: str, spec: ModelSpec) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(name, support, dims, role) of the prior parameters of an effect shared across strata by ``pooling``."""
    pooling = pooling_of(spec)
    if pooling == "partial":
        return [(f"{prefix}_mean", "real", (), "location"), (f"{prefix}_sd", "positive", (), "scale")]
    if pooling == "none":
        return [(prefix, "real", (spec.sdim,), "location")]
    if pooling == "single":
        return [(prefix, "real", (spec.sdim,), "location")]
    return [(f"{prefix}_mean", "real", (), "location")]


def pooled_effect(prefix: str, priors: dict[str, PriorSpec], spec: ModelSpec, coords: dict) -> pt.TensorVariable:
    """The effect per stratum (dims: the strata), partially pooled (non-centred), independent, or complete."""
    import pymc as pm
    import pytensor.tensor as pt

    pooling = pooling_of(spec)
    sdim = spec.sdim
    if pooling == "partial":
        mu = make_prior(f"{prefix}_mean", priors[f"{prefix}_mean"], (), coords)
        tau = make_prior(f"{prefix}_sd", priors[f"{prefix}_sd"], (), coords)
        z = pm.Normal(f"{prefix}_z", 0.0, 1.0, dims=sdim)
        return pm.Deterministic(prefix, mu + tau * z, dims=sdim)
    if pooling in ("none", "single"):
        return make_prior(prefix, priors[prefix], (sdim,), coords)
    mu = make_prior(f"{prefix}_mean", priors[f"{prefix}_mean"], (), coords)
    return pm.Deterministic(prefix, pt.stack([mu] * spec.K), dims=sdim)


def induced_dirichlet_cutpoints(name: str, base_probs: pt.TensorVariable, dims: tuple[str, ...]) -> pt.TensorVariable:
    """Cutpoints as the cumulative logits of category probabilities with a Dirichlet prior (Betancourt 2019): ordered in
    the sampler and in forward (prior predictive) draws alike (PyMC's ``ordered`` transform orders only the former)."""
    import pymc as pm
    import pytensor.tensor as pt

    cum = pt.clip(pt.cumsum(base_probs, axis=-1)[..., :-1], 1e-12, 1 - 1e-12)
    return pm.Deterministic(name, pt.log(cum) - pt.log1p(-cum), dims=dims)


def cumulative_probs(cut: pt.TensorVariable, eta: pt.TensorVariable) -> pt.TensorVariable:
    """Category probabilities of a cumulative-logit model: P(Y <= k) = logistic(cut_k - eta); a larger eta moves mass to
    higher categories. ``cut`` (..., K-1) and ``eta`` broadcast against it; the result has a last axis of K categories."""
    import pymc as pm
    import pytensor.tensor as pt

    le = pm.math.invlogit(cut - eta[..., None])
    return pt.concatenate([le[..., :1], le[..., 1:] - le[..., :-1], 1 - le[..., -1:]], axis=-1)


def stratum_contrasts(name: str, x: pt.TensorVariable, spec: ModelSpec) -> pt.TensorVariable | None:
    """``x[level] − x[reference]`` for every non-reference level (dims: contrast); None with a single stratum."""
    import pymc as pm

    if spec.K < 2:
        return None
    return pm.Deterministic(name, x[1:] - x[0], dims=CONTRAST_DIM)
