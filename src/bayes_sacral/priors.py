"""Prior specifications: a family and its parameters, checked against each model parameter's support.

A :class:`PriorSpec` is what a config writes (``{ dist = "Normal", mu = 0, sigma = 5 }``) and what a named
prior set holds; :func:`make_prior` turns it into a PyMC random variable with named dims. A parameter value
may be a number or a table keyed by the labels of one of the variable's dims
(``alpha = { screws = 1.5, cement = 1 }``, keyed by the card's arm labels), so priors can differ by arm without positional arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FAMILIES", "IMPROPER", "PriorSpec", "PriorParam", "check_prior", "make_prior", "prior_text", "prior_pdf"]


@dataclass(frozen=True)
class Family:
    params: tuple[str, ...]
    positive: tuple[str, ...]
    support: str  # real | positive | unit | simplex | interval


FAMILIES: dict[str, Family] = {
    "Normal": Family(("mu", "sigma"), ("sigma",), "real"),
    "StudentT": Family(("nu", "mu", "sigma"), ("nu", "sigma"), "real"),
    "Cauchy": Family(("alpha", "beta"), ("beta",), "real"),
    "Logistic": Family(("mu", "s"), ("s",), "real"),
    "HalfNormal": Family(("sigma",), ("sigma",), "positive"),
    "HalfStudentT": Family(("nu", "sigma"), ("nu", "sigma"), "positive"),
    "HalfCauchy": Family(("beta",), ("beta",), "positive"),
    "Exponential": Family(("lam",), ("lam",), "positive"),
    "Gamma": Family(("alpha", "beta"), ("alpha", "beta"), "positive"),
    "InverseGamma": Family(("alpha", "beta"), ("alpha", "beta"), "positive"),
    "LogNormal": Family(("mu", "sigma"), ("sigma",), "positive"),
    "Beta": Family(("alpha", "beta"), ("alpha", "beta"), "unit"),
    "Uniform": Family(("lower", "upper"), (), "interval"),
    "Dirichlet": Family(("a",), ("a",), "simplex"),
    # improper reference priors: flat on the real line, and Jeffreys' p(x) ∝ 1/x for a scale (flat in log x)
    "Flat": Family((), (), "real"),
    "Jeffreys": Family((), (), "positive"),
}
#: families with no proper density: no prior predictive draws exist for them
IMPROPER = ("Flat", "Jeffreys")

#: which family supports fit a parameter's support
_COMPATIBLE = {
    "real": ("real", "interval"),
    "positive": ("positive", "interval"),
    "unit": ("unit", "interval"),
    "simplex": ("simplex",),
}


@dataclass(frozen=True)
class PriorParam:
    """A model parameter that takes a prior: its support and dims (declared by each model)."""

    name: str
    support: str
    dims: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class PriorSpec:
    """A prior: family name, parameter values and why it was chosen."""

    dist: str
    params: dict = field(default_factory=dict)
    justification: str = ""

    def to_dict(self) -> dict:
        return {"dist": self.dist, **self.params}


def check_prior(spec: PriorSpec, param: PriorParam, coords: dict[str, list[str]] | None = None) -> list[str]:
    """Problems with ``spec`` as a prior for ``param`` (empty list when fine)."""
    out: list[str] = []
    fam = FAMILIES.get(spec.dist)
    if fam is None:
        from .suggest import did_you_mean

        return [f"unknown distribution {spec.dist!r}; allowed: {', '.join(FAMILIES)}{did_you_mean(spec.dist, FAMILIES)}"]
    if fam.support not in _COMPATIBLE[param.support]:
        allowed = [k for k, f in FAMILIES.items() if f.support in _COMPATIBLE[param.support]]
        out.append(f"{param.name} lives on the {param.support} scale; a {spec.dist} prior does not fit (allowed: {', '.join(allowed)})")
    missing = [p for p in fam.params if p not in spec.params]
    extra = [p for p in spec.params if p not in fam.params]
    if missing:
        out.append(f"{spec.dist} needs parameter(s) {', '.join(missing)}")
    if extra:
        out.append(f"{spec.dist} takes parameters {', '.join(fam.params)}; not {', '.join(extra)}")
    for p, v in spec.params.items():
        if p not in fam.params:
            continue
        values = list(v.values()) if isinstance(v, dict) else (v if isinstance(v, list) else [v])
        if isinstance(v, dict):
            dims_labels = {d: set(coords.get(d, [])) for d in param.dims} if coords else {}
            if coords is not None and not any(set(v) == labels for labels in dims_labels.values()):
                out.append(f"{p}: a table must name every label of one of {param.name}'s dims {param.dims} exactly once (got {sorted(v)})")
        for x in values:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x):
                out.append(f"{p} must be a finite number (got {x!r})")
            elif p in fam.positive and x <= 0:
                out.append(f"{p} must be > 0 (got {x!r})")
    if spec.dist == "Uniform" and not out:
        lo, hi = spec.params["lower"], spec.params["upper"]
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi):
            out.append("Uniform needs lower < upper")
        elif param.support == "positive" and lo < 0:
            out.append(f"{param.name} is positive; Uniform lower must be >= 0")
        elif param.support == "unit" and (lo < 0 or hi > 1):
            out.append(f"{param.name} is a probability; Uniform bounds must lie in [0, 1]")
    return out


def _param_array(value, dims: tuple[str, ...], coords: dict[str, list[str]]):
    """A parameter value as a scalar or an array over ``dims`` (tables keyed by one dim's labels)."""
    if not isinstance(value, dict):
        return value
    shape = tuple(len(coords[d]) for d in dims)
    for axis, d in enumerate(dims):
        if set(value) == set(coords[d]):
            vec = np.array([value[label] for label in coords[d]], dtype=float)
            idx = [None] * len(dims)
            idx[axis] = slice(None)
            return np.broadcast_to(vec[tuple(idx)], shape).copy()
    raise ValueError(f"labels {sorted(value)} match none of the dims {dims}")


def _hyper(name: str, param: str, value):
    """A prior hyperparameter as a named shared variable (``<rv>_prior_<param>``): its value is data, not structure, so
    one compiled model serves every prior set of the same families (see :mod:`bayes_sacral.compiled`)."""
    import pytensor

    return pytensor.shared(np.asarray(value, dtype=np.float64), name=f"{name}_prior_{param}")


def make_prior(name: str, spec: PriorSpec, dims: tuple[str, ...], coords: dict[str, list[str]], **kwargs):
    """Create the PyMC random variable ``name`` with prior ``spec`` (inside a model context). Hyperparameters enter as
    shared variables named ``<name>_prior_<param>``."""
    import pymc as pm

    params = {p: _param_array(v, dims, coords) for p, v in spec.params.items()}
    if spec.dist == "Flat":
        return pm.Flat(name, dims=dims or None, **kwargs)
    if spec.dist == "Jeffreys":
        log_x = pm.Flat(f"{name}_log_jeffreys", dims=dims or None)
        return pm.Deterministic(name, pm.math.exp(log_x), dims=dims or None)
    dist = getattr(pm, spec.dist)
    if spec.dist == "Dirichlet":
        a = np.asarray(params["a"], dtype=float)
        shape = tuple(len(coords[d]) for d in dims)
        return dist(name, a=_hyper(name, "a", np.broadcast_to(a, shape).copy()), dims=dims or None, **kwargs)
    if dims:
        shape = tuple(len(coords[d]) for d in dims)
        params = {p: (np.broadcast_to(np.asarray(v, dtype=float), shape).copy() if np.ndim(v) else v) for p, v in params.items()}
    return dist(name, **{p: _hyper(name, p, v) for p, v in params.items()}, dims=dims or None, **kwargs)


def prior_text(spec: PriorSpec) -> str:
    """Human-readable form: ``Normal(mu=0, sigma=5)``; tables as ``alpha={screws: 1.5, cement: 1}``."""

    def fmt(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return f"{spec.dist}(" + ", ".join(f"{k}={fmt(v)}" for k, v in spec.params.items()) + ")"


def prior_pdf(dist: str, params: dict, labels: tuple[str, ...] = ()):
    """The density of a proper prior as a vectorised function of x (``None`` for improper or multivariate priors).

    Table-valued parameters (``{screws: 1.5, cement: 1}``) are read at the element's ``labels``; a table that none of
    the labels selects gives ``None`` (the caller falls back to the prior draws).
    """
    from scipy import stats

    vals = {}
    for k, v in params.items():
        if isinstance(v, dict):
            hit = [v[lab] for lab in labels if lab in v]
            if not hit:
                return None
            v = hit[0]
        if np.ndim(v):
            return None
        vals[k] = float(v)
    g = vals.get
    try:
        frozen = {
            "Normal": lambda: stats.norm(g("mu", 0.0), g("sigma")),
            "StudentT": lambda: stats.t(g("nu"), g("mu", 0.0), g("sigma")),
            "Cauchy": lambda: stats.cauchy(g("alpha", 0.0), g("beta")),
            "Logistic": lambda: stats.logistic(g("mu", 0.0), g("s")),
            "HalfNormal": lambda: stats.halfnorm(0.0, g("sigma")),
            "HalfCauchy": lambda: stats.halfcauchy(0.0, g("beta")),
            "Exponential": lambda: stats.expon(scale=1.0 / g("lam")),
            "Gamma": lambda: stats.gamma(g("alpha"), scale=1.0 / g("beta")),
            "InverseGamma": lambda: stats.invgamma(g("alpha"), scale=g("beta")),
            "LogNormal": lambda: stats.lognorm(g("sigma"), scale=float(np.exp(g("mu", 0.0)))),
            "Beta": lambda: stats.beta(g("alpha"), g("beta")),
            "Uniform": lambda: stats.uniform(g("lower"), g("upper") - g("lower")),
        }
        if dist == "HalfStudentT":
            t = stats.t(g("nu"), 0.0, g("sigma"))
            return lambda x: np.where(np.asarray(x) >= 0, 2 * t.pdf(x), 0.0)
        if dist not in frozen:
            return None
        return frozen[dist]().pdf
    except (TypeError, ValueError):
        return None
