"""nutpie's C callbacks built with the generated reading of the shared data (bayes_sacral.callbacks).

Checked against nutpie's own compilation of the same model (the second implementation: its draws must be identical
bit for bit, the variables it expands after sampling equal to rounding) and against PyTensor's log density and
gradient of the model (with new data of another shape too).
"""

import numpy as np
import pymc as pm
import pytest

from bayes_sacral import callbacks
from bayes_sacral.compiled import logp_and_grad


def mixed_model(x, group, scale, y):
    """Shared variables of ranks 0, 1 and 2 and of dtypes float64 and int64, and a deterministic."""
    with pm.Model() as m:
        xd = pm.Data("x", np.asarray(x, float))  # (patient, covariate)
        gd = pm.Data("group", np.asarray(group, "int64"))  # (patient,)
        sd = pm.Data("prior_scale", float(scale))  # ()
        a = pm.Normal("a", 0.0, sd, shape=3)
        b = pm.Normal("b", 0.0, 1.0, shape=2)
        s = pm.HalfNormal("s", 1.0)
        mu = a[gd] + (xd * b).sum(axis=-1)
        pm.Deterministic("a_contrast", a[1:] - a[0])
        pm.Deterministic("mean_covariate_effect", (xd * b).sum(axis=-1).mean())  # reads the data
        pm.Normal("y", mu, s, observed=pm.Data("y_obs", np.asarray(y, float)))
    return m


def data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.integers(0, 3, size=n), 2.5, rng.normal(size=n)


def flat_point(model, x):
    """The flat unconstrained vector split into the model's value variables (free-variable order, as nutpie's)."""
    out, i = {}, 0
    for rv in model.free_RVs:
        v = model.rvs_to_values[rv]
        shape = model.initial_point()[v.name].shape
        k = int(np.prod(shape))
        out[v.name] = x[i:i + k].reshape(shape)
        i += k
    return out


def check_against_pytensor(cm, model, rng):
    logp = model.compile_logp(jacobian=True)
    dlogp = model.compile_dlogp(jacobian=True)
    for _ in range(3):
        x = rng.normal(size=cm._n_dim) * 0.5
        code, lp, grad = logp_and_grad(cm, x)
        assert code == 0
        pt = flat_point(model, x)
        assert lp == pytest.approx(float(logp(pt)), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(grad, dlogp(pt), rtol=1e-10, atol=1e-12)


def test_callbacks_draw_exactly_what_nutpies_own_draw_and_compute_the_models_density():
    import nutpie

    from bayes_sacral import nuts

    model = mixed_model(*data(12, 1))
    ours = callbacks.compile_pymc_model(model)
    theirs = nutpie.compile_pymc_model(model)
    assert ours._n_dim == theirs._n_dim == ours.n_expanded  # ours stores the unconstrained vector, expanded later
    rng = np.random.default_rng(0)
    for x in rng.normal(size=(4, ours._n_dim)):
        assert logp_and_grad(ours, x)[1] == logp_and_grad(theirs, x)[1]
        assert np.array_equal(logp_and_grad(ours, x)[2], logp_and_grad(theirs, x)[2])
    check_against_pytensor(ours, model, rng)
    for extreme in (800.0, -800.0, np.nan):  # a density or gradient that is not finite: nutpie's return codes
        x = np.full(ours._n_dim, extreme)
        assert logp_and_grad(ours, x)[0] == logp_and_grad(theirs, x)[0] != 0
    kw = dict(draws=150, tune=150, chains=2, cores=1, seed=11, progress_bar=False, target_accept=0.8)
    a = nuts.start(ours, **kw).wait()["posterior"].to_dataset()
    b = nutpie.sample(theirs, save_warmup=False, **kw).posterior
    assert list(a.data_vars) == list(b.data_vars) == ["a", "b", "s", "a_contrast", "mean_covariate_effect"]
    for v in ("a", "b"):  # stored as drawn: the same draws bit for bit
        assert np.array_equal(a[v].values, b[v].values), v
    for v in ("s", "a_contrast", "mean_covariate_effect"):  # expanded after sampling (numpy) and by nutpie (numba)
        assert a[v].dims == b[v].dims
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-12, atol=1e-14, err_msg=v)


def test_expansion_after_sampling_reads_the_data_the_draws_were_sampled_with():
    """with_data replaces the data the deterministics read, as nutpie's own expansion would; the model's own data
    containers are left as they were. Expected values from the draws of b and the new data, in numpy."""
    from bayes_sacral import nuts

    model = mixed_model(*data(12, 1))
    cm = callbacks.compile_pymc_model(model)
    x, group, _, y = data(31, 2)
    new = cm.with_data(x=x, group=group, prior_scale=np.array(0.7), y_obs=y)
    post = nuts.start(new, draws=40, tune=40, chains=2, cores=1, seed=5, progress_bar=False, target_accept=0.8).wait()["posterior"]
    b = post["b"].values  # (chain, draw, 2)
    expected = (x[None, None, :, :] * b[:, :, None, :]).sum(axis=-1).mean(axis=-1)
    np.testing.assert_allclose(post["mean_covariate_effect"].values, expected, rtol=1e-12)
    assert model["x"].get_value().shape == (12, 2)
    a = post["a"].values
    np.testing.assert_allclose(post["a_contrast"].values, a[..., 1:] - a[..., :1], rtol=1e-12, atol=1e-15)


def test_new_data_of_another_shape_is_read_through_the_record():
    model = mixed_model(*data(12, 1))
    cm = callbacks.compile_pymc_model(model)
    x, group, _, y = data(31, 2)
    new = cm.with_data(x=x, group=group, prior_scale=np.array(0.7), y_obs=y)
    with model:
        pm.set_data({"x": x, "group": group, "prior_scale": 0.7, "y_obs": y})
    check_against_pytensor(new, model, np.random.default_rng(3))


def test_a_model_without_shared_variables():
    with pm.Model() as model:
        m = pm.Normal("m", 0.0, 3.0)
        pm.Normal("y", m, 1.0, observed=[0.3, -0.2, 1.4])
    cm = callbacks.compile_pymc_model(model)
    assert not cm.shared_var_keys
    check_against_pytensor(cm, model, np.random.default_rng(4))


def test_the_callbacks_are_the_functions_optimised_at_numbas_level():
    """optlevels keeps numba's level for the callbacks by their names: the two compiled here must carry those names
    and be built at numba's level (their pieces are optimised lightly, see test_optlevels)."""
    from bayes_sacral import optlevels

    with pm.Model() as model:
        m = pm.Normal("m", 0.0, 3.0)
        pm.Normal("y", m, 1.0, observed=pm.Data("obs", np.array([0.3, -0.2, 1.4])))
    cm = callbacks.compile_pymc_model(model)
    for fn in (cm.compiled_logp_func, cm.compiled_expand_func):
        assert fn._pyfunc.__name__ in optlevels.FINAL_NAMES
        assert fn._library._bayes_sacral_opt is None


def test_record_words_locate_each_pointer_and_shape_and_refuse_other_layouts():
    import nutpie.compile_pymc as ncp

    arrays = {"k0": np.zeros((4, 5)), "k1": np.arange(7), "k2": np.array(1.5)}
    shared_vars = {type("V", (), {"ndim": v.ndim})(): k for k, v in arrays.items()}
    record = ncp.make_user_data(shared_vars, arrays)
    found = callbacks.record_words(record, list(arrays))
    assert found is not None
    offsets, n_words = found
    words = np.frombuffer(record.tobytes(), dtype=np.uint64)
    assert n_words == words.size
    for (ptr, shape, ndim), arr in zip(offsets, arrays.values(), strict=True):
        assert words[ptr] == arr.ctypes.data
        assert ndim == arr.ndim and tuple(words[shape:shape + ndim]) == arr.shape
    narrow = np.zeros((), dtype=[("shared", [("data", [("k", np.uint32)]), ("size", [("k", np.uint32)]),
                                             ("shape", [("k", np.uint32, (1,))])])])
    assert callbacks.record_words(narrow, ["k"]) is None


def test_callbacks_without_machine_code_until_asked(monkeypatch):
    """``machine_code=False`` stops at the callbacks' final LLVM modules (numba's JIT makes no machine code for them: the
    compile cache makes it once from those modules); ``generate_machine_code`` then gives callbacks that compute the
    model's density, as the default build does."""
    import numba.core.codegen as codegen

    model = mixed_model(*data(9, 5))
    made = []
    finalize = codegen.JITCodeLibrary._finalize_specific
    monkeypatch.setattr(codegen.JITCodeLibrary, "_finalize_specific", lambda self: made.append(self.name) or finalize(self))
    cm = callbacks.compile_pymc_model(model, machine_code=False)
    names = {fn._library.name for fn in (cm.compiled_logp_func, cm.compiled_expand_func)}
    assert cm.compiled_logp_func.address is None and cm.compiled_expand_func.address is None
    assert not names & set(made)
    for fn in (cm.compiled_logp_func, cm.compiled_expand_func):
        assert fn._library._final_module.get_function(fn.native_name)  # the final module holds the callback
    callbacks.generate_machine_code(cm)
    assert names <= set(made) and cm.compiled_logp_func.address and cm.compiled_expand_func.address
    check_against_pytensor(cm, model, np.random.default_rng(6))
    expanded = np.zeros(cm.n_expanded)
    x = np.random.default_rng(7).normal(size=cm._n_dim)
    import ctypes
    sig = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    rc = sig(cm.compiled_expand_func.address)(x.size, expanded.size, x.ctypes.data, expanded.ctypes.data, cm.user_data.ctypes.data)
    assert rc == 0 and np.array_equal(expanded, x)  # the expansion stores the unconstrained vector itself
