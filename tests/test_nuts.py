"""nutpie as the package runs it (bayes_sacral.nuts): the raw trace converted with arviz-base equals nutpie's own
conversion, and a fit leaves ArviZ's plotting stack unimported while ``import arviz`` still gives the whole package."""

import json
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr

from bayes_sacral import compiled, nuts


def _model():
    with pm.Model(coords={"site": ["a", "b", "c"]}) as m:
        mu = pm.Normal("mu", 0.0, 1.0, dims="site")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Deterministic("twice", 2 * mu, dims="site")
        pm.Normal("y", mu[[0, 1, 2, 0, 1]], sigma, observed=np.array([0.1, 0.5, -0.3, 0.2, 0.4]))
    return m


def test_trace_equals_nutpies_own_conversion():
    """On nutpie's own compiled model (whose expansion stores every variable): the conversion alone."""
    import nutpie

    cm = nutpie.compile_pymc_model(_model())
    kw = {"draws": 60, "tune": 40, "chains": 2, "cores": 2, "seed": 3, "target_accept": 0.8, "maxdepth": 10}
    ours = nuts.start(cm, progress_bar=False, **kw).wait()
    theirs = nutpie.sample(cm, save_warmup=False, progress_bar=False, **kw)
    assert set(ours.children) == set(theirs.children) == {"posterior", "sample_stats"}
    for group in ("posterior", "sample_stats"):
        a, b = ours[group].to_dataset(), theirs[group].to_dataset()
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
        assert list(a.data_vars) == list(b.data_vars)
        assert {k: v for k, v in a.attrs.items() if k != "created_at"} == {k: v for k, v in b.attrs.items() if k != "created_at"}
    assert ours["posterior"]["mu"].dims == ("chain", "draw", "site")
    assert ours["posterior"].sizes["draw"] == 60


def test_compiled_models_trace_has_nutpies_variables_dims_and_coordinates():
    """The compile cache's model expands its draws after sampling (bayes_sacral.callbacks): the posterior has the
    variables, dims and coordinates of nutpie's own model's, the same draws of ``mu`` (stored as drawn) and the
    transformed ``sigma`` and the deterministic equal to rounding."""
    import nutpie

    kw = {"draws": 50, "tune": 50, "chains": 2, "cores": 1, "seed": 8, "target_accept": 0.8, "maxdepth": 10}
    a = nuts.start(compiled.compiled_model(_model()), progress_bar=False, **kw).wait()["posterior"].to_dataset()
    b = nuts.start(nutpie.compile_pymc_model(_model()), progress_bar=False, **kw).wait()["posterior"].to_dataset()
    assert list(a.data_vars) == list(b.data_vars) == ["mu", "sigma", "twice"]
    assert {k: v.dims for k, v in a.data_vars.items()} == {k: v.dims for k, v in b.data_vars.items()}
    for c in b.coords:
        assert np.array_equal(a[c].values, b[c].values), c
    assert np.array_equal(a["mu"].values, b["mu"].values)
    xr.testing.assert_allclose(a.drop_attrs(), b.drop_attrs(), rtol=1e-13)
    np.testing.assert_allclose(a["twice"].values, 2 * a["mu"].values, rtol=1e-15)


def test_a_fit_leaves_arviz_plotting_unimported_and_arviz_still_whole(fresh_python):
    code = ("import json, sys, numpy as np\n"
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from test_nuts import _model\n"
            "from bayes_sacral import inference\n"
            "s = inference.SamplerSettings(draws=100, tune=100, chains=2, prior_draws=50, predictive_draws=50)\n"
            "idata, _ = inference.sample(_model(), s, seed=1)\n"
            "d = inference.diagnose(idata)\n"
            "after_fit = {m: m in sys.modules for m in ('arviz_plots', 'matplotlib.pyplot')}\n"
            "import arviz\n"
            "from arviz import summary\n"
            "import arviz_base, arviz_plots\n"
            "print(json.dumps({'after_fit': after_fit, 'groups': sorted(idata.children), 'status': d.status,\n"
            "                  'whole': type(sys.modules['arviz']).__name__ == 'module' and arviz.plot_forest is arviz_plots.plot_forest,\n"
            "                  'base': arviz.from_dict is arviz_base.from_dict, 'summary': callable(summary)}))\n")
    out = json.loads(fresh_python(code, own_cache=False).stdout.strip().splitlines()[-1])  # _model compiled by the test above
    assert out["after_fit"] == {"arviz_plots": False, "matplotlib.pyplot": False}
    assert out["groups"] == ["constant_data", "log_likelihood", "observed_data", "posterior", "posterior_predictive", "prior",
                             "prior_predictive", "sample_stats"]
    assert out["whole"] and out["base"] and out["summary"]
