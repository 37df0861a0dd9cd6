"""nutpie's two C callbacks for a PyMC model (log density with gradient, and the expansion of a draw into the stored
variables), built with a generated reading of the shared data.

nutpie compiles the same two callbacks in ``compile_pymc_model``. There, the shared variables (the data and the prior
hyperparameters) are read from nutpie's record of pointers and shapes by a loop that numba unrolls
(``literal_unroll``), typing a new tuple for every variable. For a model with 14 shared variables that took about
7 s of each new structure's compile, in every process, and more the more shared variables a model has.

Here that reading is generated as straight-line Python source, one line per shared variable: the pointer and shape
are read from the same record as plain 64-bit words at offsets taken from its dtype, and an array of the variable's
dtype is made on the pointer. numba types that in a fraction of the time. Everything else is nutpie's: the PyTensor
functions (``_make_functions``), the record (``make_user_data``, so ``CompiledPyMCModel.with_data`` and nutpie's
sampler work unchanged), the C signatures and the return codes. The callbacks compute exactly what nutpie's compute
(the same compiled PyTensor functions on the same memory), so the draws are bit-identical; a test compares the two.

**Expansion after sampling.** nutpie's expansion callback turns each draw's unconstrained vector into every stored
variable (each free variable in its own space and every deterministic), compiled through numba like the log density:
7.4-8.3 s of the per-item model's first compile, 2.6-6.6 s for each other model of the reanalysis. Here that callback
only copies the unconstrained vector, and the rest is computed once per sampling call, for all draws at once, by
:func:`bayes_sacral.batched.expand_draws` (PyTensor's Python implementations: nothing to compile), from the shared
values the draws were sampled with (:class:`DrawExpansion`). The per-item model's first compile, every cache empty,
took 45.4 and 48.0 s so against 56.5 and 59.9 s before (interleaved, 2-core AMD Zen 3, 17:38-17:42 on 2026-11-28).
The stored variables, their order, dims and coordinates are nutpie's; the draws are the same bit for bit, the values
computed from them equal to rounding (numpy's and LLVM's elementary functions may round the last bit differently).

A record whose fields are not all 64-bit unsigned words (not the case on any 64-bit platform that nutpie supports) is
left to nutpie's own compilation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DrawExpansion", "compile_pymc_model", "generate_machine_code", "record_words"]


class DrawExpansion:
    """What a compiled model's ``expand_func`` holds here (nutpie keeps that field for reference and never calls it):
    the model, to compute every stored variable other than the unconstrained values after sampling
    (:func:`bayes_sacral.batched.expand_draws`). Call it with the compiled model the draws came from (its shared
    values: ``with_data`` keeps this object and replaces them) and the unconstrained draws by value-variable name."""

    def __init__(self, model):
        self.model = model

    def __call__(self, compiled, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .batched import expand_draws

        shared = {var.name: compiled.shared_data[k] for var, k in compiled.shared_var_keys.items()}
        return expand_draws(self.model, values, shared)


def _is_word(dt: np.dtype) -> bool:
    return dt.itemsize == 8 and dt.kind == "u"


def record_words(user_data: np.ndarray, keys: list[str]) -> tuple[list[tuple[int, int, int]], int] | None:
    """Where each shared variable's data pointer and shape lie in nutpie's record, as indices of 64-bit words:
    ``[(pointer word, first shape word, ndim), ...]`` in the order of ``keys``, and the record's length in words.
    None when the record is not made of 64-bit unsigned words."""
    dt = user_data.dtype
    if dt.itemsize % 8:
        return None
    shared, base = dt.fields["shared"]
    (data_t, data_off), (shape_t, shape_off) = shared.fields["data"], shared.fields["shape"]
    out = []
    for k in keys:
        ptr_t, ptr_off = data_t.fields[k]
        dims_t, dims_off = shape_t.fields[k]  # a subarray (uint, (ndim,)), as make_user_data declares it
        elem, (ndim,) = dims_t.subdtype
        offsets = (base + data_off + ptr_off, base + shape_off + dims_off)
        if not _is_word(ptr_t) or (ndim and not _is_word(elem)) or any(o % 8 for o in offsets):
            return None
        out.append((offsets[0] // 8, offsets[1] // 8, ndim))
    return out, dt.itemsize // 8


def _reader(inner, keys: list[str], words: dict[str, tuple[int, int, int]], n_words: int, shared_data: dict):
    """An inlined numba function ``(x, user_data pointer) -> inner(x, *shared arrays)``; ``words``: each key's place in
    the record (see :func:`record_words`)."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    ns = {"__name__": __name__, "inner": inner, "carray": numba.carray, "as_pointer": address_as_void_pointer, "word": np.uint64, "intp": np.intp}
    lines = ["def read_shared(x, user_data_):"]
    if keys:
        lines.append(f"    w = carray(user_data_, ({n_words},), word)")
    for i, key in enumerate(keys):
        ptr, shape, ndim = words[key]
        ns[f"dtype{i}"] = np.dtype(shared_data[key].dtype)
        dims = "".join(f"intp(w[{shape + j}]), " for j in range(ndim))
        lines.append(f"    a{i} = carray(as_pointer(w[{ptr}]), ({dims}), dtype{i})")
    lines.append("    return inner(x" + "".join(f", a{i}" for i in range(len(keys))) + ")")
    exec(compile("\n".join(lines), "<bayes_sacral.callbacks.read_shared>", "exec"), ns)  # noqa: S102 - our own source
    return numba.njit(inline="always")(ns["read_shared"])


def _callbacks(n_dim: int, read_logp, machine_code: bool = True):
    """The two C callbacks, with nutpie's signatures and return codes (the results are copied out element by element,
    after a length check, where nutpie assigns the whole array: numba's message for a mismatched assignment took 1.6 s
    of numba's compiler in every process); the expansion copies the unconstrained vector (see the module docstring).
    Without ``machine_code`` see :func:`_cfunc`."""
    import numba

    ptr = numba.types.CPointer(numba.types.double)
    logp_sig = numba.types.int64(numba.types.uint64, ptr, ptr, ptr, numba.types.voidptr)
    expand_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, ptr, ptr, numba.types.voidptr)

    # the two names are optlevels.FINAL_NAMES (nutpie's): these functions are optimised at numba's level, their pieces lightly
    def logp_numba(dim, x_, out_, logp_, user_data_):
        if dim != n_dim:
            return -1
        try:
            x = numba.carray(x_, (n_dim,))
            out = numba.carray(out_, (n_dim,))
            logp = numba.carray(logp_, ())
            logp_val, grad = read_logp(x, user_data_)
            logp[()] = logp_val
            if grad.shape[0] != n_dim:
                return 1
            finite = True
            for i in range(n_dim):
                out[i] = grad[i]
                finite = finite and np.isfinite(grad[i])
            if not finite:
                return 3
            if not np.isfinite(logp_val):
                return 4
        except Exception:  # noqa: BLE001 - nutpie's code for a failed evaluation
            return 1
        return 0

    def expand_numba(dim, expanded, x_, out_, user_data_):
        # the unconstrained vector itself: the other stored variables are computed after sampling (DrawExpansion)
        if dim != n_dim:
            return -1
        if expanded != n_dim:
            return -1
        x = numba.carray(x_, (n_dim,))
        out = numba.carray(out_, (n_dim,))
        for i in range(n_dim):
            out[i] = x[i]
        return 0

    return _cfunc(logp_sig, logp_numba, machine_code), _cfunc(expand_sig, expand_numba, machine_code)


def _cfunc(sig, fn, machine_code: bool):
    """``numba.cfunc(sig)(fn)``. Without ``machine_code``: compiled, linked and optimised into its final LLVM module,
    which is not handed to numba's JIT, so no machine code is made (its ``address`` is None until
    :func:`generate_machine_code`). The compile cache makes machine code from that module itself, once, where it was
    made twice before: 1.2 s per callback for the per-item model, 0.1-0.2 s for a small one."""
    import numba

    if machine_code:
        return numba.cfunc(sig)(fn)
    from numba.core import sigutils
    from numba.core.ccallback import CFunc
    from numba.core.compiler_lock import global_compiler_lock

    cf = CFunc(fn, sigutils.normalize_signature(sig), locals={}, options={})  # what numba.cfunc makes
    with global_compiler_lock:
        cres = cf._compile_uncached()
        lib = cres.library
        lib._finalize_final_module = lambda: _final_module_only(lib)  # this library only; see generate_machine_code
        lib.finalize()
    cf._library = lib
    cf._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
    return cf


def _final_module_only(lib) -> None:
    """numba's ``_finalize_final_module`` without adding the module to the JIT engine (which makes its machine code)."""
    lib._finalize_dynamic_globals()
    lib._verify_declare_only_symbols()
    lib._finalized = True


def generate_machine_code(cm) -> None:
    """Make the machine code of a :func:`compile_pymc_model` result built with ``machine_code=False`` (what numba
    would have made), so that nutpie can call its callbacks."""
    from numba.core.compiler_lock import global_compiler_lock

    for cf in (cm.compiled_logp_func, cm.compiled_expand_func):
        if cf.address is not None:
            continue
        lib = cf._library
        with global_compiler_lock:
            del lib._finalize_final_module  # numba's own again
            lib._dynamic_globals = []
            type(lib)._finalize_final_module(lib)
            cf._wrapper_address = lib.get_pointer_to_function(cf._wrapper_name)


def compile_pymc_model(model, machine_code: bool = True):
    """What ``nutpie.compile_pymc_model(model)`` returns (numba backend, every variable stored), built as described in the
    module docstring. ``machine_code=False``: the callbacks' final LLVM modules only (see :func:`_cfunc`)."""
    from uuid import uuid4

    from pymc.initial_point import make_initial_point_fn

    from .compiled import shared_by_name
    from .nuts import import_nutpie

    nutpie = import_nutpie()
    import nutpie.compile_pymc as ncp

    ipf = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    # var_names=[]: nutpie's expansion would store the free variables' unconstrained values only (n_expanded == n_dim),
    # which the expansion callback copies; its PyTensor function is left uncompiled by numba
    n_dim, n_expanded, logp_pt, expand_pt, init, shape_info, reparam = ncp._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=ncp._wrap_with_lock(ipf), var_names=[])
    shared_data, keys = {}, {}
    # every shared variable of the model, the deterministics' own too, so that with_data replaces them as nutpie's
    # expansion would read them
    for var in [*logp_pt.get_shared(), *shared_by_name(model).values()]:
        if var not in keys:
            keys[var] = uuid4().hex
            shared_data[keys[var]] = np.array(var.get_value(), order="C", copy=True)
            shared_data[keys[var]].flags.writeable = False
    user_data = ncp.make_user_data(keys, shared_data)
    found = record_words(user_data, list(keys.values()))
    if found is None:
        return nutpie.compile_pymc_model(model)
    words, n_words = dict(zip(keys.values(), found[0], strict=True)), found[1]
    read_logp = _reader(logp_pt.vm.jit_fn, [keys[v] for v in logp_pt.get_shared()], words, n_words, shared_data)
    logp_fn, expand_fn = _callbacks(n_dim, read_logp, machine_code)
    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparam)
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_fn, compiled_expand_func=expand_fn, initial_point_func=init, shared_data=shared_data,
        shared_var_keys=keys, user_data=user_data, n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_pt,
        expand_func=DrawExpansion(model), reparameterized_names=reparam)
