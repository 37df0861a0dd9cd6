"""Compile once, ever: nutpie's compiled PyMC models kept in memory and on disk, keyed by the model's structure.

nutpie's log density and gradient are numba C callbacks (built by :mod:`bayes_sacral.callbacks`); compiling them takes
3-25 s per model per process (over a minute where PyTensor's op cache is empty) and numba cannot cache them ("uses dynamic globals"). This module caches them itself:

- **Key.** A SHA-256 of the model's structure: the printed graph of its log density and deterministics (ops, types,
  variable names), the bytes of every constant in it, the name, dtype and rank of every shared variable (data and prior
  hyperparameters are shared variables, so their *values* are not part of the structure: one compiled model serves every
  data set, prior set, reconstruction, simulated trial and sweep member of that structure), the order of the free
  variables, the versions of Python, nutpie, numba, llvmlite, PyTensor and PyMC, the host CPU (its name and
  instruction-set features, as numba's own cache does: machine code made for one CPU is never run on another), and the
  optimisation levels the code is built at (:func:`bayes_sacral.optlevels.policy`).
- **Entry.** The two compiled callbacks as machine code (numba's object-code serialisation, made from LLVM bitcode in
  which every definition except the entry points is private and the entry points carry the key in their name, so
  loading never clashes with code already in the process), the numba environments they need, and the layout of nutpie's
  shared-data record. A header holds the format, the key and a SHA-256 of the body. The key includes the host CPU, so
  machine code is only ever loaded on the kind of CPU it was generated for.
- **Use.** On a hit the machine code is linked into the process (tens of milliseconds) and bound to the model at hand:
  its shared data, coordinates and initial-point function. A freshly compiled model is written and then loaded the same way, so a
  run's draws are the same whether its structure came from the cache or not.
- **Prebuilt.** The bundled configs' structures ship compiled for any x86-64 CPU (:mod:`bayes_sacral.prebuilt`,
  :func:`prebuilt_dir`): a structure's prebuilt entry, keyed as above with numba's ``generic`` CPU, is tried before
  the cache's, read only, and checked like any entry.
- **Trust.** Every bind checks the compiled log density at two points against PyTensor's own Python implementation of
  the same model and the gradient against finite differences; a corrupt, truncated, stale or colliding entry fails the
  header or this check and is deleted and rebuilt, never used.

The cache lives in ``$BAYES_SACRAL_CACHE`` (default ``$XDG_CACHE_HOME/bayes-sacral`` or ``~/.cache/bayes-sacral``); it is
safe to delete at any time (``bayes-sacral cache clear``) and kept within :data:`MAX_BYTES` (after each write the least
recently used entries go, so entries of old package versions or retired structures do not pile up). PyTensor keeps its
own compiled kernels in its compiledir and the machine code of each op in its numba cache (see :func:`pytensor_caches`;
both shown by ``bayes-sacral cache info`` and cleared by ``bayes-sacral cache clear --pytensor``).
"""

from __future__ import annotations

import copyreg
import ctypes
import dataclasses
import functools
import hashlib
import importlib
import io
import os
import pickle
import platform
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from .cachefile import cache_dir, lookup, write_entry
from .cachefile import prune as cachefile_prune
from .callbacks import DrawExpansion, compile_pymc_model, generate_machine_code

__all__ = ["cache_dir", "compiled_model", "entry_path", "prebuilt_dir", "target_cpu", "versions", "PORTABLE_CPU", "PREBUILT_DIR", "cached_function", "pin_compiler_flags", "structure_key", "shared_by_name", "logp_and_grad", "cache_info", "pytensor_caches",
           "clear_cache", "prune", "CacheStats", "STATS", "MAX_BYTES"]

FORMAT = 5  # 2: machine code (numba object code) instead of bitcode; 3: callbacks of .callbacks (same ABI and results);
# 4: pieces optimised at optlevels.LEAN; 5: the expansion stores the unconstrained vector only (callbacks.DrawExpansion)
_MAGIC = b"BSCM"
_ENV_PREFIX = "_ZN08NumbaEnv"
_PTR_SLOT = "_ptr_cache_"  # PyTensor's per-process cache of a scipy Cython function's address (link/numba/cache.py)
_LOCK = threading.Lock()
MAX_BYTES = 1024 * 2**20  # compiled models (about 0.5 MB each) and functions kept, least recently used deleted first


@dataclasses.dataclass
class CacheStats:
    """What this process did: structures compiled, loaded from disk, reused from memory, entries rejected."""

    compiled: int = 0
    loaded: int = 0
    reused: int = 0
    rejected: int = 0
    compile_s: float = 0.0
    load_s: float = 0.0
    functions_built: int = 0
    functions_loaded: int = 0
    prebuilt: int = 0  # of ``loaded``: from the package's prebuilt models (:func:`prebuilt_dir`)


STATS = CacheStats()


def _models_dir() -> Path:
    return cache_dir() / "models"


def entry_path(key: str) -> Path:
    """Where the compile cache keeps the compiled model of structure ``key`` (see :func:`structure_key`)."""
    return _models_dir() / f"{key}.bscm"


@functools.cache
def _code_fingerprint() -> str:
    from .store import source_fingerprint

    return source_fingerprint()


def _functions_dir() -> Path:
    return cache_dir() / "functions"


def cached_function(key: str, what: str, build):
    """A compiled PyTensor function (``what``: deterministics, log-likelihood, predictive draws) of the model structure
    ``key``: unpickled from the cache when an intact entry exists (no graph rewriting, the C kernels come from
    PyTensor's compiledir), else ``build()`` and stored. A corrupt or foreign entry is deleted and rebuilt; a function
    that cannot be pickled, or a cache that cannot be written, is simply not stored. Its shared inputs hold the values of
    the model it was built from: callers rebind them (:func:`bayes_sacral.batched.rebind`)."""
    pin_compiler_flags()
    entry = f"{key}|{what}|{_code_fingerprint()}"  # the code that builds the function is part of what it is
    path = _functions_dir() / (hashlib.sha256(entry.encode()).hexdigest()[:40] + ".bsfn")
    if path.is_file():
        found, body = lookup(path, _MAGIC, FORMAT, entry)
        if found:
            STATS.functions_loaded += 1
            return body["function"]
        STATS.rejected += 1  # corrupt, truncated or stale: deleted by lookup, rebuilt below
    fn = build()
    STATS.functions_built += 1
    try:
        write_entry(path, _MAGIC, FORMAT, entry, {"function": fn}, pickler=_FunctionPickler)
    except Exception:  # noqa: BLE001 - unpicklable or read-only cache: kept in memory only
        pass
    else:
        prune()
    return fn


class _FunctionPickler(pickle.Pickler):
    """Pickles a compiled PyTensor function without what PyTensor caches on its nodes at link time and cannot pickle:
    a Blockwise node keeps its vectorised ``perform`` (a closure) in ``node.tag.gufunc``, also on nodes that rewriting
    replaced but the graph's features still reference. Blockwise recreates it on its next call and on unpickling, so
    leaving it out changes nothing but lets the function be stored (the per-item model's functions were rebuilt in
    every process). The live function is not touched."""

    def reducer_override(self, obj):
        from pytensor.graph.utils import Scratchpad

        if isinstance(obj, Scratchpad) and "gufunc" in obj.__dict__:
            return copyreg.__newobj__, (type(obj),), {k: v for k, v in obj.__dict__.items() if k != "gufunc"}
        return NotImplemented


_GCC_MAGIC = b"BSGF"


def _compiler_dir() -> Path:
    return cache_dir() / "compiler"


@functools.cache
def pin_compiler_flags() -> bool:
    """PyTensor's ``-march=native`` equivalent flags for its C kernels, remembered across processes.

    PyTensor works the flags out once per process, the first time it compiles or links a C kernel (unpickling a cached
    function does): two ``g++ -E -v`` runs and a test program compiled and run, 0.37 s. The list depends only on the
    compiler, the CPU and PyTensor, so it is stored under a key of exactly those (compiler path, size and time, CPU
    name and features, host name, PyTensor version, the user's ``gcc__cxxflags``) and set before PyTensor would probe.
    The kernels' cache keys include the flags, so the same flags find the same compiled kernels. Returns whether the
    stored flags were used. An entry that is damaged or of another key is deleted and the probe runs as before."""
    import os
    import shutil

    import llvmlite.binding as ll
    import pytensor
    from pytensor.link.c.cmodule import GCC_compiler

    cxx = pytensor.config.cxx
    exe = shutil.which(cxx) if cxx else None
    if not exe:
        return False  # no C compiler: PyTensor uses its Python implementations and probes nothing
    real = os.path.realpath(exe)
    st = os.stat(real)
    key = "|".join([cxx, real, str(st.st_size), str(st.st_mtime_ns), ll.get_host_cpu_name(),
                    ll.get_host_cpu_features().flatten(), platform.node(), pytensor.__version__, pytensor.config.gcc__cxxflags])
    path = _compiler_dir() / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".bsgf")
    if GCC_compiler.march_flags is None:
        found, flags = lookup(path, _GCC_MAGIC, 1, key)
        if found and isinstance(flags, list) and all(isinstance(f, str) for f in flags):
            GCC_compiler.march_flags = list(flags)
            return True
        GCC_compiler.compile_args()  # PyTensor's own probe, once
    elif path.is_file():
        return False
    try:
        write_entry(path, _GCC_MAGIC, 1, key, list(GCC_compiler.march_flags or []))
    except OSError:
        pass
    return False


def target_cpu() -> tuple[str, str]:
    """The CPU (name, instruction-set features) numba makes machine code for in this process: the host's, unless
    ``NUMBA_CPU_NAME`` (and ``NUMBA_CPU_FEATURES``) name another, as :mod:`bayes_sacral.prebuilt` does to make code
    for every x86-64 CPU (numba's ``generic`` target, whose features default to none)."""
    import llvmlite.binding as ll
    from numba.core import config

    name = config.CPU_NAME or ll.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else ll.get_host_cpu_features().flatten()
    return name, features


PREBUILT_DIR = Path(__file__).with_name("prebuilt_models")  # the package's prebuilt models (bayes_sacral.prebuilt)
PORTABLE_CPU = ("generic", "")  # numba's baseline x86-64 target: the prebuilt models' machine code runs on any x86-64


def versions(cpu: tuple[str, str]) -> str:
    """What besides the structure a compiled model depends on: Python, the platform, the CPU the code is for, the
    sampling stack's versions, this package's version, the entry format and the optimisation policy."""
    import llvmlite
    import numba
    import pymc
    import pytensor

    from . import __version__, optlevels
    from .nuts import import_nutpie

    nutpie = import_nutpie()

    return "|".join([sys.version, platform.machine(), cpu[0], cpu[1], nutpie.__version__, numba.__version__, llvmlite.__version__,
                     pytensor.__version__, pymc.__version__, __version__, str(FORMAT), optlevels.policy()])


_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOGP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _logp(model):
    """``model.logp()``, built once per model object (the structure key and the shared-variable lookup both walk it)."""
    out = _LOGP.get(model)
    if out is None:
        out = _LOGP[model] = model.logp()
    return out


def structure_key(model, cpu: tuple[str, str] | None = None) -> str:
    """SHA-256 of what a compiled model depends on (see the module docstring); values of shared variables excluded.
    ``cpu``: the (name, features) the machine code is for; default this process's :func:`target_cpu`. Computed once
    per model object and CPU (a model's structure does not change once built)."""
    cpu = cpu or target_cpu()
    keys = _KEYS.setdefault(model, {})
    key = keys.get(cpu)
    if key is None:
        text = _TEXTS.get(model)
        if text is None:
            text = _TEXTS[model] = _structure_text(model)
        key = keys[cpu] = hashlib.sha256(versions(cpu).encode() + text).hexdigest()
    return key


def _structure_text(model) -> bytes:
    """The structure's graph, variable names and constants as bytes (what the key hashes after the versions)."""
    import pytensor
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    outputs = [_logp(model), *model.deterministics]
    buf = io.StringIO()
    pytensor.dprint(outputs, file=buf, print_type=True, id_type="")
    parts = [buf.getvalue().encode(), repr([model.rvs_to_values[v].name for v in model.free_RVs]).encode(),
             repr([d.name for d in model.deterministics]).encode()]
    for a in ancestors(outputs):
        if isinstance(a, SharedVariable):
            val = a.get_value(borrow=True)
            parts.append(f"shared:{a.name}:{np.asarray(val).dtype}:{np.ndim(val)}".encode())
        elif isinstance(a, Constant):
            data = np.asarray(a.data)
            parts.append(f"const:{data.dtype}:{data.shape}".encode())
            if data.dtype == object:  # a Python object (None, a slice): its bytes are a pointer, different in every process
                parts.append(repr(a.data).encode())
            else:
                parts.append(np.ascontiguousarray(data).tobytes())
    return b"".join(parts)


# ---------------------------------------------------------------------- serialising nutpie's compiled callbacks
def _isolated_bitcode(lib, entry: str, suffix: str) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """Bitcode of a finalised numba library with every definition private except ``entry`` (renamed ``entry + suffix``),
    the environment globals and PyTensor's cached function-pointer slots (both renamed with ``suffix``): it can be
    loaded beside anything else in the process. Returns the bitcode, the environments (old name -> new name) and the
    pointer slots (new name -> ``module.function`` of the scipy Cython function whose address the slot holds)."""
    import llvmlite.binding as ll

    mod = ll.parse_bitcode(lib._final_module.as_bitcode())
    envs, slots = {}, {}
    for f in mod.functions:
        if f.is_declaration:
            continue
        if f.name == entry:
            f.name = entry + suffix
        else:
            f.linkage = "internal"
    for gv in mod.global_variables:
        if gv.is_declaration:
            continue
        if gv.name.startswith(_ENV_PREFIX):
            old = gv.name
            gv.name = old + suffix
            envs[old] = gv.name
        elif gv.name.startswith(_PTR_SLOT):
            # filled by the compiled code on its first call through an object-mode block that numba compiles (half a
            # second, in every process); visible, the loader fills it instead (see _fill_slots)
            target = gv.name[len(_PTR_SLOT):]
            gv.name = gv.name + suffix
            gv.linkage = "external"
            slots[gv.name] = target
        else:
            gv.linkage = "internal"
    return mod.as_bitcode(), envs, slots


def _dump(cm, key: str) -> dict:
    from numba.core import serialize
    from numba.core.environment import lookup_environment

    suffix = "_bs" + key[:16]
    payload: dict = {"key": key}
    envs, slots = [], {}
    for name, fn in (("logp", cm.compiled_logp_func), ("expand", cm.compiled_expand_func)):
        bc, renamed, found = _isolated_bitcode(fn._library, fn.native_name, suffix + name)
        slots.update(found)
        payload[name] = (_object_code(bc, fn.native_name + suffix + name, name), fn.native_name + suffix + name)
        for old, new in renamed.items():
            env = lookup_environment(old)
            if env is not None:
                envs.append((new, env.globals.get("__name__"), list(env.consts)))
    payload["envs"] = serialize.dumps(envs)
    payload["slots"] = slots
    payload["shared_names"] = [(v.name, k) for v, k in cm.shared_var_keys.items()]
    payload["n_dim"] = cm._n_dim
    payload["n_expanded"] = cm.n_expanded
    payload["shape_info"] = cm.shape_info
    payload["shapes"] = cm._shapes
    payload["reparam"] = cm.reparameterized_names
    return payload


@dataclasses.dataclass
class _Loaded:
    """Machine code of one structure in this process."""

    payload: dict
    libs: dict
    logp_address: int
    expand_address: int
    envs: list


class _Fn:
    """What nutpie reads from a compiled callback: its address (and a reference that keeps the code alive)."""

    def __init__(self, owner, address: int):
        self.owner = owner
        self.address = address


def _codegen():
    """numba's CPU code generator, with the runtime (NRT) whose symbols compiled models link against initialised (what
    numba does before its first compilation; far cheaper than compiling something to get it)."""
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    ctx = cpu_target.target_context
    rtsys.initialize(ctx)
    return ctx.codegen()


def _fill_slots(codegen, slots: dict[str, str]) -> None:
    """Write into each function-pointer slot of loaded code the address its compiled code would look up on first use:
    the scipy Cython function ``module.function`` (what PyTensor's ``get_ptr_func`` returns)."""
    from numba.core.extending import get_cython_function_address

    for name, target in slots.items():
        module, function = target.rsplit(".", 1)
        address = codegen._engine.get_global_value_address(name)
        if not address:
            raise ValueError(f"loaded code has no pointer slot {name}")
        ctypes.c_void_p.from_address(address).value = get_cython_function_address(module, function)


def _object_code(bitcode: bytes, entry: str, name: str) -> tuple:
    """numba's object-code serialisation of ``bitcode`` (machine code plus the declarations other code links against):
    loading it is a link step, about 15x faster than generating machine code from bitcode again."""
    import llvmlite.binding as ll

    lib = _codegen().create_library(f"bayes-sacral-{name}")
    lib.enable_object_caching()
    lib._final_module = ll.parse_bitcode(bitcode)
    lib._finalize_final_module()
    lib.get_pointer_to_function(entry)  # generates the machine code, which numba's object cache hook keeps on the library
    return lib.serialize_using_object_code()


def _load(payload: dict) -> _Loaded:
    from numba.core.environment import Environment, lookup_environment

    codegen = _codegen()
    libs = {k: codegen.unserialize_library(payload[k][0]) for k in ("logp", "expand")}
    keep = []
    for name, modname, consts in pickle.loads(payload["envs"]):
        env = lookup_environment(name)
        if env is None:
            env = Environment(importlib.import_module(modname).__dict__ if modname else {})
            env.consts[:] = consts
            env.env_name = name
            Environment._memo[name] = env
        keep.append(env)
        codegen.set_env(name, env)
    _fill_slots(codegen, payload["slots"])
    return _Loaded(payload, libs, libs["logp"].get_pointer_to_function(payload["logp"][1]),
                   libs["expand"].get_pointer_to_function(payload["expand"][1]), keep)


def shared_by_name(model) -> dict:
    """The shared variables (data, prior hyperparameters) of a model's log density, deterministics and observed
    variables, by name (names are unique in models built here)."""
    out = _SHARED.get(model)
    if out is not None:
        return out
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    out = {}
    for a in ancestors([_logp(model), *model.deterministics, *model.observed_RVs]):
        if isinstance(a, SharedVariable) and a.name and "Generator" not in type(a.get_value(borrow=True)).__name__:
            if a.name in out and out[a.name] is not a:
                raise ValueError(f"two shared variables are named {a.name!r}")
            out[a.name] = a
    _SHARED[model] = out
    return out


def _bind(loaded: _Loaded, model):
    """A nutpie CompiledPyMCModel running ``loaded``'s code on ``model``'s shared data, coordinates and initial points."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
        make_user_data,
    )
    from pymc.initial_point import make_initial_point_fn

    p = loaded.payload
    shared = shared_by_name(model)
    missing = [n for n, _k in p["shared_names"] if n not in shared]
    if missing:
        raise ValueError(f"the model has no shared variable(s) {missing}")
    shared_var_keys = {shared[n]: k for n, k in p["shared_names"]}
    shared_data = {k: np.array(shared[n].get_value(), order="C", copy=True) for n, k in p["shared_names"]}
    for v in shared_data.values():
        v.flags.writeable = False
    user_data = make_user_data(shared_var_keys, shared_data)
    # nutpie's own initial points: support points jittered by U(-1, 1) in the unconstrained space
    ipf = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    names = [model.rvs_to_values[v].name for v in model.free_RVs]
    p0 = ipf(0)
    init = _rv_dict_to_flat_array_wrapper(ipf, names=names, shapes=[np.shape(p0[n]) for n in names])
    dims, coords = _prepare_dims_and_coords(model, p["shape_info"], p["reparam"])
    return CompiledPyMCModel(
        dims=dims, _coords=coords, _shapes=p["shapes"], compiled_logp_func=_Fn(loaded, loaded.logp_address),
        compiled_expand_func=_Fn(loaded, loaded.expand_address), initial_point_func=_wrap_with_lock(init), shared_data=shared_data,
        shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=p["n_expanded"], shape_info=p["shape_info"], logp_func=None,
        expand_func=DrawExpansion(model), _n_dim=p["n_dim"], reparameterized_names=p["reparam"])


_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def logp_and_grad(cm, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    """Call a compiled model's log density (return code, logp, gradient) at the unconstrained point ``x``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    lp = np.zeros(())
    rc = _CFUNC(cm.compiled_logp_func.address)(x.size, x.ctypes.data, grad.ctypes.data, lp.ctypes.data, cm.user_data.ctypes.data)
    return int(rc), float(lp), grad


#: structure key -> [(log density graph, its inputs, PyTensor's Python implementation of it)] (see :func:`_reference_logp`)
_REFERENCE: dict[str, list[tuple]] = {}


def _reference_logp(model, key: str):
    """PyTensor's Python implementation of ``model``'s log density (``model.logp()``, Jacobian included: the graph the
    structure key hashed), pointed at ``model``'s shared values; its inputs are the free variables' values in
    ``model.free_RVs`` order.

    Built once per graph in this process: a later model is given an earlier function only when PyTensor finds the two
    graphs computing the same thing (``equal_computations``, matching the value and shared variables by name), never on
    the strength of the key alone, so that the check stays independent of the key it guards. Building it took
    0.15-0.2 s for a small model, at every run of a sweep.

    No C compiler is offered while it links: FAST_COMPILE's VM linker builds C kernels for every op that has them, and
    ops with an inner graph, such as softmax and LogSumExp, would link theirs with C (g++ ran for 13 kernels of the
    per-item model's LogSumExp, 7 s in a first-ever run); their Python implementations are what is wanted."""
    import pytensor
    from pytensor.compile.mode import Mode
    from pytensor.graph.basic import equal_computations

    from .batched import rebind

    values = [model.rvs_to_values[v] for v in model.free_RVs]
    shared = shared_by_name(model)
    out = _logp(model)
    inputs = values + [shared[n] for n in sorted(shared)]
    names = [v.name for v in values] + sorted(shared)
    found = [fn for graph, graph_inputs, graph_names, fn in _REFERENCE.get(key, [])
             if graph_names == names and equal_computations([out], [graph], in_xs=inputs, in_ys=graph_inputs)]
    if found:
        fn = found[0]
    else:
        # its own copies of the shared variables, so that pointing it at a later model never touches this model's data
        own = [(sv, pytensor.shared(sv.get_value(), name=sv.name)) for sv in shared.values()]
        with pytensor.config.change_flags(cxx=""):
            fn = pytensor.function(values, out, mode=Mode(linker="py", optimizer="fast_compile"), givens=own, on_unused_input="ignore")
        _REFERENCE.setdefault(key, []).append((out, inputs, names, fn))
    rebind(fn, model)
    return fn


def _verify(cm, model) -> None:
    """The compiled log density equals PyTensor's Python implementation of ``model``'s at two points, and its gradient
    matches central finite differences; raises ValueError otherwise."""
    names = [model.rvs_to_values[v].name for v in model.free_RVs]
    logp_py = _reference_logp(model, structure_key(model))
    shapes = {n: np.shape(v) for n, v in model.initial_point().items()}
    for seed in (11, 12):
        x = np.asarray(cm.initial_point_func(seed), dtype=float)
        rc, lp, grad = logp_and_grad(cm, x)
        if rc != 0:
            raise ValueError(f"compiled log density failed at a test point (code {rc})")
        point, start = {}, 0
        for n in names:
            shape = shapes[n]
            size = int(np.prod(shape))
            point[n] = x[start:start + size].reshape(shape)
            start += size
        ref = float(logp_py(*(point[n] for n in names)))
        if not np.isclose(lp, ref, rtol=1e-8, atol=1e-8):
            raise ValueError(f"compiled log density {lp!r} differs from the model's {ref!r}")
        h = 1e-6
        for i in range(min(x.size, 6)):
            e = np.zeros_like(x)
            e[i] = h
            fd = (logp_and_grad(cm, x + e)[1] - logp_and_grad(cm, x - e)[1]) / (2 * h)
            if not np.isclose(grad[i], fd, rtol=1e-4, atol=1e-4 * max(1.0, abs(lp))):
                raise ValueError(f"compiled gradient {grad[i]!r} differs from finite differences {fd!r} (coordinate {i})")


# ---------------------------------------------------------------------- the cache
_LOADED: dict[str, _Loaded] = {}


def _write(path: Path, key: str, payload: dict) -> None:
    write_entry(path, _MAGIC, FORMAT, key, payload)


def compiled_model(model, log=None):
    """A nutpie-compiled ``model``, compiled at most once per structure ever (see the module docstring).

    A structure not in the cache is compiled by :func:`bayes_sacral.callbacks.compile_pymc_model` (nutpie's callbacks,
    typed faster). Falls back to that compilation uncached when an entry cannot be written, e.g. a read-only cache folder.
    Sample it with :func:`bayes_sacral.nuts.start`, which expands the stored unconstrained draws into every variable
    (:class:`~bayes_sacral.callbacks.DrawExpansion`); ``nutpie.sample`` alone would keep the unconstrained values only.
    """
    from .nuts import import_nutpie

    import_nutpie()  # nutpie's modules (read by the cache) without ArviZ's import

    log = log or (lambda m: None)
    key = structure_key(model)
    with _LOCK:
        # the prebuilt entry first, so that a bundled structure runs the same code on every machine and in every process
        for k, path, own in _candidates(model, key):
            if k in _LOADED:
                try:
                    cm = _bind(_LOADED[k], model)
                    _verify(cm, model)
                except Exception as exc:  # noqa: BLE001 - code that does not compute this model's density is never used
                    STATS.rejected += 1
                    log(f"compile cache: loaded model {k[:12]} rejected ({exc}); rebuilding")
                    del _LOADED[k]
                else:
                    STATS.reused += 1
                    return cm
            if not path.is_file():
                continue
            t0 = time.perf_counter()
            # an intact cache entry is marked as used (for prune), a damaged, stale or foreign one is already deleted;
            # a prebuilt entry is only read
            found, payload = lookup(path, _MAGIC, FORMAT, k, read_only=not own)
            try:
                if not found:
                    raise ValueError("damaged, stale or foreign entry")
                loaded = _load(payload)
                cm = _bind(loaded, model)
                _verify(cm, model)
            except Exception as exc:  # noqa: BLE001 - any unreadable or wrong entry is rebuilt, never used
                STATS.rejected += 1
                log(f"compile cache: {'entry' if own else 'prebuilt entry'} {path.name[:12]} rejected ({exc}); "
                    f"{'rebuilding' if own else 'not used'}")
                if own:
                    path.unlink(missing_ok=True)
            else:
                _LOADED[k] = loaded
                STATS.loaded += 1
                STATS.prebuilt += not own
                STATS.load_s += time.perf_counter() - t0
                return cm
        path = entry_path(key)
        t0 = time.perf_counter()
        from .inference import quiet_pymc

        with quiet_pymc():
            # the callbacks' final LLVM modules: their machine code is made once, by _dump
            fresh = compile_pymc_model(model, machine_code=False)
        try:
            payload = _dump(fresh, key)
            loaded = _load(payload)
            cm = _bind(loaded, model)
            _verify(cm, model)
        except Exception as exc:  # noqa: BLE001 - a model the cache cannot hold still samples
            log(f"compile cache: this model cannot be cached ({exc}); using it uncached")
            generate_machine_code(fresh)
            STATS.compiled += 1
            STATS.compile_s += time.perf_counter() - t0
            return fresh
        try:
            _write(path, key, payload)
        except OSError as exc:
            log(f"compile cache: could not write {path} ({exc})")
        else:
            prune()
        _LOADED[key] = loaded
        STATS.compiled += 1
        STATS.compile_s += time.perf_counter() - t0
        return cm


def prebuilt_dir() -> Path | None:
    """The package's prebuilt models (machine code for any x86-64 CPU of the bundled configs' structures, made by
    ``make prebuilt``, see :mod:`bayes_sacral.prebuilt`), or None where ``BAYES_SACRAL_PREBUILT=0`` turns them off.
    An entry is used only where its key matches: same structure, same versions of Python and the sampling stack, same
    package version and code format; it is read, never written or deleted, and checked like every cache entry.
    ``BAYES_SACRAL_PREBUILT`` set to a folder reads that folder instead."""
    where = os.environ.get("BAYES_SACRAL_PREBUILT", "")
    if where == "0":
        return None
    return Path(where) if where and where != "1" else PREBUILT_DIR


def _candidates(model, key: str) -> list[tuple[str, Path, bool]]:
    """(key, entry path, whether the entry is the user's cache's) to try in order: the prebuilt entry of this
    structure for the portable CPU, where there is one, then the cache's entry for this process's CPU."""
    own = (key, entry_path(key), True)
    d = prebuilt_dir()
    if d is None or not d.is_dir() or platform.machine() not in ("x86_64", "AMD64"):
        return [own]
    portable = structure_key(model, PORTABLE_CPU)
    if portable == key:  # this process makes portable code itself (make prebuilt)
        return [own]
    return [(portable, d / f"{portable}.bscm", False), own]


def _entries() -> list[Path]:
    out = []
    for d, pattern in ((_models_dir(), "*.bscm"), (_functions_dir(), "*.bsfn")):
        if d.is_dir():
            out += d.glob(pattern)
    return out


def prune(max_bytes: int = MAX_BYTES) -> int:
    """Delete the least recently used compiled models and functions until the rest fit in ``max_bytes`` (run after
    every write: entries of structures, package versions or CPUs no longer in use do not pile up). Returns how many."""
    return cachefile_prune(_entries(), max_bytes)


def pytensor_caches() -> dict[str, Path]:
    """PyTensor's own caches, which outlive ours: its compiledir (C code of every graph) and its numba cache (machine
    code of every op, keyed by the op; a structure compiled for the first time reuses the ops that earlier structures
    compiled: the MSTS example's first compile 26 s with it empty, 18 s with it filled by other structures). The numba
    cache's place mirrors ``pytensor.link.numba.cache.NUMBA_CACHE_PATH`` (tested), without importing numba."""
    import pytensor

    return {"compiledir": Path(pytensor.config.compiledir), "numba": Path(pytensor.config.base_compiledir) / "numba"}


def _tree_files(d: Path) -> list[Path]:
    return [f for f in d.rglob("*") if f.is_file()] if d.is_dir() else []


def cache_info() -> dict:
    """Location, entries and size of the compile cache, and of PyTensor's compiledir and numba cache."""
    entries = _entries()
    pt = pytensor_caches()
    comp, numba_files = _tree_files(pt["compiledir"]), _tree_files(pt["numba"])
    return {"location": str(cache_dir()), "entries": len(entries), "bytes": sum(e.stat().st_size for e in entries),
            "pytensor_compiledir": str(pt["compiledir"]), "pytensor_bytes": sum(f.stat().st_size for f in comp),
            "pytensor_numba": str(pt["numba"]), "pytensor_numba_entries": sum(1 for f in numba_files if f.suffix == ".nbi"),
            "pytensor_numba_bytes": sum(f.stat().st_size for f in numba_files),
            "env": "BAYES_SACRAL_CACHE", **_prebuilt_info()}


def _prebuilt_info() -> dict:
    """The prebuilt models' folder, entries and size (whether they fit this environment is known only when a model's
    key is computed, which needs PyMC: ``cache info`` starts without it)."""
    d = prebuilt_dir()
    files = sorted(d.glob("*.bscm")) if d is not None and d.is_dir() else []
    return {"prebuilt": "off (BAYES_SACRAL_PREBUILT=0)" if d is None else str(d), "prebuilt_entries": len(files),
            "prebuilt_bytes": sum(f.stat().st_size for f in files)}


def clear_cache(pytensor_too: bool = False) -> int:
    """Delete every compiled model (and PyTensor's compiledir and numba cache with ``pytensor_too``); returns the number
    of files removed. The numba cache's folder itself is kept: PyTensor creates it only when it is imported."""
    import shutil

    n = 0
    for d in (_models_dir(), _functions_dir(), _compiler_dir()):
        if d.is_dir():
            for f in d.iterdir():
                if f.is_file():
                    f.unlink(missing_ok=True)
                    n += 1
    _LOADED.clear()
    if pytensor_too:
        pt = pytensor_caches()
        n += len(_tree_files(pt["compiledir"])) + len(_tree_files(pt["numba"]))
        shutil.rmtree(pt["compiledir"], ignore_errors=True)
        for child in pt["numba"].iterdir() if pt["numba"].is_dir() else ():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    return n
