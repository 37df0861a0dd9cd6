"""A model's deterministics, pointwise log-likelihood and posterior predictive evaluated over all draws at once.

PyMC's ``compute_deterministics``, ``compute_log_likelihood`` and ``sample_posterior_predictive`` call a compiled
function once per draw (8,000 Python calls for 4 chains × 2,000 draws). Here each graph is vectorised over a leading
batch dimension (``pytensor.graph.replace.vectorize_graph``) and compiled once per model structure in this process: a
later model of the same structure (another prior set, data set or sweep member) reuses the compiled function with its
own shared values (data and prior hyperparameters are named shared variables).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import xarray as xr

__all__ = ["deterministics", "expand_draws", "without_python_loops", "log_likelihood", "posterior_predictive", "prior_predictive", "compiled_for", "rebind"]

_FNS: dict[tuple[str, str], object] = {}  # (structure key, what) -> compiled function(s)
_LOCK = threading.Lock()
_NUMBA_ONLY: set[str] = set()
_EXPAND_LOCK = threading.Lock()  # expand_draws sets its function's shared values, then calls it


@functools.cache
def python_mode():
    """The mode these functions are compiled in: PyTensor's rewrites, then its Python implementations (a numpy call per
    graph node, each over every draw at once). Elementwise fusion is left out (a fused loop runs per element in Python)
    and so are in-place rewrites.

    There is nothing to compile: the C backend ran g++ for each structure's new kernels (the first fit of the per-item
    model took about 125 s instead of 77 s, the MSTS example 37 s instead of 14 s) and evaluated no faster once they
    were built, and the numba backend compiles again in every process (seconds each; the beta-binomial's random draws
    even ran in numba's object mode)."""
    from pytensor.compile.mode import Mode

    return Mode(linker="py", optimizer="fast_run").excluding("fusion", "inplace")


def _mode_name(mode) -> str:
    return "numba" if mode is None else "py"


def with_draw_mode(model, draw):
    """``draw(mode)`` with :func:`python_mode`, or with the default (numba) backend (``mode`` None) for a model whose
    random draws the Python implementations refuse; remembered per structure. (None of this package's models: a
    binomial's float count is cast first, see :func:`_counts_as_integers`, and a beta-binomial is drawn without scipy,
    see :func:`_beta_then_binomial`.)"""
    from .compiled import structure_key

    key = structure_key(model)
    if key in _NUMBA_ONLY:
        return draw(None)
    try:
        return draw(python_mode())
    except (TypeError, ValueError):
        _NUMBA_ONLY.add(key)
        return draw(None)


def compiled_for(model, what: str, build):
    """``build()`` (compiled functions of ``model``'s graph) built once per model structure and ``what`` in this process.

    The functions read the shared variables of the model they were built from: call :func:`rebind` with the model at
    hand before evaluating them."""
    from .compiled import cached_function, structure_key

    key = (structure_key(model), what)
    with _LOCK:
        fn = _FNS.get(key)
        if fn is None:
            # built once per structure ever: later processes unpickle it from the compile cache
            fn = _FNS[key] = cached_function(key[0], what, build)
    return fn


def _compiled(model, what: str, build):
    fn = compiled_for(model, what, build)
    rebind(fn, model)
    return fn


def rebind(fn, model) -> None:
    """Point a compiled function's shared inputs at ``model``'s values (same names, same structure)."""
    from .compiled import shared_by_name

    mine = shared_by_name(model)
    for sv in fn.get_shared():
        if sv.name in mine and mine[sv.name] is not sv and not _is_rng(sv):
            sv.set_value(mine[sv.name].get_value(borrow=True), borrow=True)


def _is_rng(sv) -> bool:
    return "Generator" in type(sv.get_value(borrow=True)).__name__


def _batched_inputs(model):
    import pytensor.tensor as pt

    return {rv: pt.tensor(dtype=rv.dtype, shape=(None, *rv.type.shape), name=f"{rv.name}_batch") for rv in model.free_RVs}


def _register_view_vectorisation() -> None:
    """Teach ``vectorize_graph`` that a deterministic's identity wrapper (``ViewOp``) stays an identity on a batched
    input. Without this, PyTensor falls back to a ``Blockwise`` that calls the wrapper in a Python loop over the
    draws: the same numbers, 100× slower. (A registration in PyTensor's own dispatch table, for this one op type.)"""
    from pytensor.compile.ops import ViewOp
    from pytensor.graph.op import Op
    from pytensor.graph.replace import _vectorize_node
    from pytensor.tensor.blockwise import vectorize_node_fallback

    if _vectorize_node.dispatch(ViewOp) is not _vectorize_node.dispatch(Op):
        return  # registered already (by us, or by PyTensor itself in a later version)

    @_vectorize_node.register(ViewOp)
    def _vectorize_view(op, node, *batched_inputs):
        if type(op) is not ViewOp:  # a subclass may do more than pass its input through
            return vectorize_node_fallback(op, node, *batched_inputs)
        return op.make_node(*batched_inputs)


def without_python_loops(outputs: list) -> list:
    """``outputs`` (vectorised graphs) with two constructs that PyTensor's Python implementations run element by element
    or draw by draw replaced by whole-array ones that give the same values bit for bit:

    - an elementwise ``clip`` (its scalar op has no numpy function, so numpy called it once per element through
      ``frompyfunc``: 120,000 calls for 4,000 draws of the per-item model) becomes the two comparisons its Python
      implementation makes (``switch(x < lo, lo, switch(x > hi, hi, x))``);
    - a join of batched and unbatched inputs, which ``vectorize_graph`` leaves to a ``Blockwise`` that loops over the
      draws in Python, becomes a join along the shifted axis of the inputs broadcast to the batch shape.

    The per-item model's expansion of 4,000 draws (:func:`expand_draws`, whose cumulative probabilities are clipped)
    went from 0.30 and 0.31 s to 0.26 and 0.20 s (interleaved, 18:11-18:13 on 2026-11-28); the rest is numpy's work on
    whole arrays. A replacement is built on the replacements made before it (the nodes are visited in order)."""
    import pytensor.scalar as ps
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import graph_inputs, io_toposort
    from pytensor.tensor.basic import Join
    from pytensor.tensor.blockwise import Blockwise
    from pytensor.tensor.elemwise import Elemwise

    reps = {}
    for node in io_toposort(list(graph_inputs(outputs)), list(outputs)):
        op = node.op
        ins = [reps.get(i, i) for i in node.inputs]  # a replacement is built on the replacements before it
        if isinstance(op, Elemwise) and isinstance(op.scalar_op, ps.Clip):
            x, lo, hi = ins
            out = pt.switch(pt.lt(x, lo), lo, pt.switch(pt.gt(x, hi), hi, x))
        elif isinstance(op, Blockwise) and isinstance(op.core_op, Join):
            core_nd = len(op.outputs_sig[0])
            batch_nd = node.outputs[0].type.ndim - core_nd
            full = [x for x in ins if x.type.ndim - core_nd == batch_nd and not any(x.type.broadcastable[:batch_nd])]
            if not full or op.core_op.axis < 0:
                continue
            batch_shape = tuple(full[0].shape[:batch_nd])
            xs = []
            for x in ins:
                pad = batch_nd - (x.type.ndim - core_nd)
                x = pt.shape_padleft(x, pad) if pad else x
                xs.append(pt.broadcast_to(x, (*batch_shape, *tuple(x.shape[batch_nd:]))))
            out = Join(op.core_op.axis + batch_nd)(*xs)
        else:
            continue
        if out.type.dtype == node.outputs[0].type.dtype and out.type.ndim == node.outputs[0].type.ndim:
            reps[node.outputs[0]] = out
    return graph_replace(list(outputs), reps, strict=False) if reps else list(outputs)


def _flat(post: xr.Dataset, names: list[str]) -> tuple[list[np.ndarray], tuple[int, int]]:
    C, D = post.sizes["chain"], post.sizes["draw"]
    return [np.ascontiguousarray(post[n].transpose("chain", "draw", ...).values).reshape(C * D, *post[n].shape[2:]) for n in names], (C, D)


def _dataset(model, names: list[str], values: list[np.ndarray], shape: tuple[int, int], post: xr.Dataset) -> xr.Dataset:
    dims = model.named_vars_to_dims
    out = {}
    for n, v in zip(names, values, strict=True):
        v = np.asarray(v).reshape(*shape, *np.shape(v)[1:])
        own = list(dims.get(n) or [f"{n}_dim_{i}" for i in range(v.ndim - 2)])
        # a multivariate observation's log-likelihood has no event dim (one value per cell, not per category)
        out[n] = (("chain", "draw", *own[: v.ndim - 2]), v)
    coords = {k: list(v) for k, v in model.coords.items()}
    ds = xr.Dataset(out, coords={"chain": post["chain"].values, "draw": post["draw"].values})
    return ds.assign_coords({k: v for k, v in coords.items() if k in ds.dims})


def deterministics(model, post: xr.Dataset) -> xr.Dataset:
    """``post`` (free variables over chain × draw) with every deterministic of ``model`` added."""
    import pytensor
    from pytensor.graph.replace import vectorize_graph

    names = [d.name for d in model.deterministics]
    if not names:
        return post
    free = [rv for rv in model.free_RVs]

    def build():
        _register_view_vectorisation()
        inputs = _batched_inputs(model)
        outs = without_python_loops(vectorize_graph(list(model.deterministics), replace=inputs))
        return pytensor.function([inputs[rv] for rv in free], outs, on_unused_input="ignore", mode=python_mode())

    fn = _compiled(model, "deterministics", build)
    args, shape = _flat(post, [rv.name for rv in free])
    return xr.merge([post, _dataset(model, names, fn(*args), shape, post)], compat="override", join="left")


def expand_draws(model, values: dict[str, np.ndarray], shared: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What nutpie's expansion stores besides the free variables' unconstrained values, for many draws at once: every
    free variable in its own space and every deterministic (``model.unobserved_value_vars``, in that order).

    ``values``: each free variable's value variable by name (unconstrained where transformed), with a leading draw
    axis; ``shared``: the shared values (data, prior hyperparameters) by name that the draws were sampled with (those
    not given keep ``model``'s). Evaluated by PyTensor's Python implementations (:func:`python_mode`), built once per
    structure ever like the other functions here."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph

    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    names = {v.name for v in value_vars}
    outs = [v for v in model.unobserved_value_vars if v.name not in names]
    if not outs:
        return {}

    def build():
        _register_view_vectorisation()
        inputs = {v: pt.tensor(dtype=v.dtype, shape=(None, *v.type.shape), name=f"{v.name}_batch") for v in value_vars}
        return pytensor.function([inputs[v] for v in value_vars], without_python_loops(vectorize_graph(outs, replace=inputs)),
                                 on_unused_input="ignore", mode=python_mode())

    fn = compiled_for(model, "expand", build)
    args = [np.asarray(values[v.name], dtype=v.dtype) for v in value_vars]
    with _EXPAND_LOCK:
        rebind(fn, model)
        for sv in fn.get_shared():
            if sv.name in shared and not _is_rng(sv):
                sv.set_value(shared[sv.name], borrow=True)
        res = fn(*args)
    return {v.name: np.asarray(r) for v, r in zip(outs, res, strict=True)}


def log_likelihood(model, post: xr.Dataset) -> xr.Dataset:
    """Pointwise log-likelihood of each observed variable at every draw (dims chain, draw, then the observation's dims)."""
    import pymc as pm
    import pytensor
    from pytensor.graph.replace import vectorize_graph

    obs = list(model.observed_RVs)
    if not obs:
        return xr.Dataset()
    free = [rv for rv in model.free_RVs]

    def build():
        _register_view_vectorisation()
        inputs = _batched_inputs(model)
        graphs = [pm.logp(rv, model.rvs_to_values[rv]) for rv in obs]
        outs = without_python_loops(vectorize_graph(graphs, replace=inputs))
        return pytensor.function([inputs[rv] for rv in free], outs, on_unused_input="ignore", mode=python_mode())

    fn = _compiled(model, "log_likelihood", build)
    args, shape = _flat(post, [rv.name for rv in free])
    return _dataset(model, [rv.name for rv in obs], fn(*args), shape, post)


def _redraw(rv, replace: dict, batch, tag: str):
    """``rv``'s distribution redrawn once per batch element: its parameters evaluated at the batched variables in
    ``replace``, the batch prepended to its size, from a fresh generator (named ``<rv>_<tag>_rng``, seeded per call)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import vectorize_graph
    from pytensor.tensor.random.basic import BetaBinomialRV
    from pytensor.tensor.type_other import NoneTypeT

    _rng, size, *params = rv.owner.inputs
    vparams = without_python_loops(vectorize_graph(params, replace=replace)) if replace else list(params)
    if not isinstance(size.type, NoneTypeT):
        new_size = pt.concatenate([pt.stack([batch]), size])
    elif any(vp is not p for vp, p in zip(vparams, params, strict=True)):
        new_size = None  # the batch comes with the parameters
    else:
        new_size = pt.concatenate([pt.stack([batch]), pt.as_tensor(rv.shape, dtype="int64")])
    vparams = _counts_as_integers(rv.owner.op, vparams)
    rng = pytensor.shared(np.random.default_rng(0), name=f"{rv.name}_{tag}_rng")
    if isinstance(rv.owner.op, BetaBinomialRV):
        return _beta_then_binomial(rng, new_size, *vparams)
    return rv.owner.op.make_node(rng, new_size, *vparams).outputs[1]


def _beta_then_binomial(rng, size, n, a, b):
    """Beta-binomial draws as scipy makes them, a probability from Beta(a, b) per element and then a binomial count, in
    two numpy draws from one generator. PyTensor's Python implementation calls scipy, which refuses a parameter that is
    a view of a read-only array (a graph constant such as the 30 of a 0-30 score, once another compile has frozen it):
    the draw then fell back to the numba backend from the second call of a process on (in a process that had built the
    function; one that loaded it from the compile cache never did), and numba compiled it in every first-ever run only
    to run scipy's draw in object mode, the same draws. Without a size, the parameters are broadcast first, so that
    every element has its own probability."""
    import pytensor.tensor as pt
    from pytensor.tensor.random.basic import beta, binomial

    if size is None:
        n, a, b = pt.broadcast_arrays(n, a, b)
    nxt, p = beta.make_node(rng, size, a, b).outputs
    return binomial.make_node(nxt, size, n, p).outputs[1]


def _counts_as_integers(op, params: list) -> list:
    """The number of trials of a binomial, beta-binomial or multinomial as integers: models hold counts as floating-point
    data (shared variables the design engines overwrite with simulated trials), which numpy's samplers refuse ("Cannot
    cast array data from float64 to int64"), so these models' predictive draws fell back to the numba backend and
    compiled them in every process. The counts are whole numbers, so the cast is exact."""
    import pytensor.tensor as pt
    from pytensor.tensor.random.basic import BetaBinomialRV, BinomialRV, MultinomialRV

    if not isinstance(op, (BinomialRV, BetaBinomialRV, MultinomialRV)) or params[0].dtype.startswith("int"):
        return params
    return [pt.cast(pt.round(params[0]), "int64"), *params[1:]]


def posterior_predictive(model, post: xr.Dataset, seed: int) -> xr.Dataset:
    """One replicate of each observed variable per draw of ``post``, all draws in one vectorised call."""
    import pytensor

    obs = list(model.observed_RVs)
    if not obs:
        return xr.Dataset()
    free = [rv for rv in model.free_RVs]

    def build(mode):
        from pytensor.tensor.random.op import RandomVariable

        _register_view_vectorisation()
        inputs = _batched_inputs(model)
        batch = inputs[free[0]].shape[0]
        outs = []
        for rv in obs:
            # the observed variable's distribution with its parameters evaluated at every draw and the batch prepended to
            # its size; a fresh generator (seeded per call)
            if not isinstance(rv.owner.op, RandomVariable):
                raise NotImplementedError(f"{rv.name}: {type(rv.owner.op).__name__} is not a plain random variable")
            outs.append(_redraw(rv, inputs, batch, "pp"))
        return pytensor.function([inputs[rv] for rv in free], outs, on_unused_input="ignore", mode=mode)

    args, shape = _flat(post, [rv.name for rv in free])

    def draw(mode):
        fn = _compiled(model, f"posterior_predictive:{_mode_name(mode)}", lambda: build(mode))
        _seed(fn, seed)
        return fn(*args)

    vals = with_draw_mode(model, draw)
    vals = vals if isinstance(vals, list) else [vals]
    return _dataset(model, [rv.name for rv in obs], vals, shape, post)


def prior_predictive(model, draws: int, seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """``draws`` draws from the prior (free variables and deterministics) and the prior predictive (observed
    variables), in one vectorised call instead of PyMC's loop of one call per draw.

    Every random variable is redrawn in the model's order with the batch prepended to its size and its parameters
    evaluated at the batched draws of the variables it depends on. Raises NotImplementedError for a model with a
    random variable that is not a plain ``RandomVariable`` (callers fall back to PyMC's loop).
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.random.op import RandomVariable

    rvs = list(model.basic_RVs)  # free and observed, in the order they were defined (parents first)
    for rv in rvs:
        if not isinstance(rv.owner.op, RandomVariable):
            raise NotImplementedError(f"{rv.name}: {type(rv.owner.op).__name__} is not a plain random variable")
    free = list(model.free_RVs)
    obs = list(model.observed_RVs)

    def build(mode):
        _register_view_vectorisation()
        batch = pt.scalar("n_draws", dtype="int64")
        replace = {}
        for rv in rvs:
            replace[rv] = _redraw(rv, replace, batch, "prior")
        return pytensor.function([batch], [replace[rv] for rv in free + obs], mode=mode)

    def draw(mode):
        fn = _compiled(model, f"prior_predictive:{_mode_name(mode)}", lambda: build(mode))
        _seed(fn, seed)
        return fn(draws)

    vals = with_draw_mode(model, draw)
    vals = vals if isinstance(vals, list) else [vals]
    frame = xr.Dataset(coords={"chain": [0], "draw": np.arange(draws)})
    shape = (1, draws)
    prior = _dataset(model, [rv.name for rv in free], vals[: len(free)], shape, frame)
    with model:
        prior = deterministics(model, prior) if model.deterministics else prior
    pp = _dataset(model, [rv.name for rv in obs], vals[len(free):], shape, frame) if obs else xr.Dataset()
    return prior, pp


def _seed(fn, seed: int) -> None:
    """Reset every random generator the function uses from ``seed`` (reproducible and independent of call history)."""
    rngs = [sv for sv in fn.get_shared() if _is_rng(sv)]
    for sv, ss in zip(rngs, np.random.SeedSequence(seed).spawn(len(rngs)), strict=True):
        sv.set_value(np.random.default_rng(ss), borrow=True)
