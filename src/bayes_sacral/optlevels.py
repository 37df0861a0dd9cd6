"""How hard LLVM optimises the numba code behind a compiled model: the code that runs fully, the pieces it is built from
lightly.

A new model structure is compiled by numba as about 700 small functions (one per PyTensor op, and helpers), each
optimised by LLVM and turned into machine code on its own, then linked into PyTensor's graph function, and that into
nutpie's two C callbacks (:mod:`bayes_sacral.callbacks`), which LLVM optimises once more as a whole before their
machine code is made. Only the callbacks' code runs when sampling, and its last optimisation sees every piece. So here
the pieces are optimised at level :data:`LEAN` (1) instead of numba's level (3 unless ``NUMBA_OPT`` says otherwise), and
the callbacks at numba's level, as before. Measured on the per-item model with every cache empty (2-core AMD Zen 3):
compile 75.7 s -> 61.2 s; the log density and gradient then cost the same (33 µs at either setting).

- **Their own machine code.** Each piece is also made into machine code of its own, which runs only where the piece is
  called directly (a model's initial points, a few predictive draws on the numba backend), never when sampling: the
  callbacks' machine code is made from their whole module. So the pieces' libraries belong to a second numba code
  generator whose target machine makes code at LLVM's lowest code-generation level (:data:`LEAN_CODEGEN`, fast
  instruction selection and register allocation): their machine code took 15.6 s of the per-item model's first compile
  at numba's level and takes 8.6 s so; a reanalysis with every cache empty used 19 s less CPU (452.9 s against
  471.7 s, interleaved at 05:41-05:49). Initial points computed by that code can differ from before in the last bit
  (another choice of fused multiply-adds), so two models' draws changed within Monte Carlo error.
- **Which code.** Functions defined in PyTensor's and nutpie's modules and in :mod:`bayes_sacral.callbacks` (PyTensor
  generates its op functions' source in its own modules), except the two callbacks (``logp_numba``, ``expand_numba``,
  nutpie's names, kept by :mod:`~bayes_sacral.callbacks`). Other numba code (yours, or another library's) keeps
  numba's level. PyTensor functions run directly on the numba backend (not through the callbacks; here only rare
  predictive draws) run code optimised at the lighter level.
- **Deterministic.** A function's level depends only on its module and name, never on what the process compiled
  before, so the same structure gives the same machine code, and the same draws, in every process. numba's on-disk
  cache of these functions (PyTensor's op cache) is keyed by the level as well (:func:`install` extends the key), so
  pieces optimised at one level are never linked into code built at another; so is the compile cache
  (:func:`bayes_sacral.compiled.structure_key`).
- **Installed** when ``bayes_sacral`` is imported: at once if numba is loaded, else right after numba is first
  imported, before anything is compiled (so in the command line's processes and its workers, always before). Code that
  numba compiled in a process before ``bayes_sacral`` was imported keeps the level it was built at.
  ``BAYES_SACRAL_NUMBA_LEAN=0`` (set before the process starts) turns it off: every function at numba's level.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading

__all__ = ["LEAN", "LEAN_CODEGEN", "FINAL_NAMES", "install", "level_for", "policy"]

#: LLVM optimisation level of the pieces (PyTensor's op functions, its graph functions, nutpie's and our helpers)
LEAN = 1
#: LLVM's code-generation level (``CodeGenOpt``) for the pieces' own machine code, which runs only where a piece is called
#: directly (the callbacks' machine code is made from their whole optimised module at numba's level)
LEAN_CODEGEN = 0
#: the functions optimised at numba's own level: nutpie's C callbacks (also the names :mod:`.callbacks` uses)
FINAL_NAMES = ("logp_numba", "expand_numba")
_MODULES = ("pytensor.", "nutpie.", "bayes_sacral.callbacks")
_STACK = threading.local()
_INSTALLED = False
_NUMBA_OPT: int | None = None  # numba's own level when the policy was installed
_LEAN_CODEGEN = None  # the code generator of the pieces (see _lean_codegen)


def enabled() -> bool:
    return os.environ.get("BAYES_SACRAL_NUMBA_LEAN", "1").strip() != "0"


def level_for(module: str | None, qualname: str | None) -> int | None:
    """The optimisation level of the function ``module.qualname`` under this policy, or None for numba's own."""
    if not enabled() or not module or not module.startswith(_MODULES):
        return None
    if (qualname or "").rsplit(".", 1)[-1] in FINAL_NAMES:
        return None
    return LEAN


def policy() -> str:
    """What decides the machine code of a compiled model besides its graph: for cache keys."""
    from numba.core import config

    # numba's level as configured, not as a compile in another thread may have set it for a moment (see _at_level)
    opt = _NUMBA_OPT if _NUMBA_OPT is not None else int(config.OPT)
    lean = f"{LEAN},codegen={LEAN_CODEGEN}" if enabled() else "off"
    return f"numba-opt={opt};lean={lean};modules={','.join(_MODULES)};final={','.join(FINAL_NAMES)}"


def _lean_codegen(main):
    """A second numba code generator like ``main`` whose target machine makes machine code at :data:`LEAN_CODEGEN`
    (made once; compiles hold numba's global lock). Its own JIT engine holds the pieces' machine code; other code links
    the pieces' LLVM IR, as numba always does, never their symbols."""
    global _LEAN_CODEGEN
    if _LEAN_CODEGEN is None:
        from numba.core import config

        saved = config.OPT
        config.OPT = config._OptLevel(LEAN_CODEGEN)  # read once, for the target machine, by numba's _init
        try:
            _LEAN_CODEGEN = type(main)("bayes-sacral-lean")
        finally:
            config.OPT = saved
    return _LEAN_CODEGEN


def _patch() -> None:
    global _INSTALLED, _NUMBA_OPT
    if _INSTALLED:
        return
    from numba.core import caching, codegen, compiler, config

    _INSTALLED = True
    _NUMBA_OPT = int(config.OPT)

    compile_core = compiler.CompilerBase._compile_core

    def _compile_core(self):
        fid = self.state.func_id
        f = getattr(fid, "func", None)  # its __module__, as the cache key reads it (numba's modname needs sys.modules)
        stack = _STACK.__dict__.setdefault("levels", [])
        stack.append(level_for(getattr(f, "__module__", None) or getattr(fid, "modname", None), getattr(fid, "func_qualname", None)))
        try:
            return compile_core(self)
        finally:
            stack.pop()

    create_library = codegen.CPUCodegen.create_library

    def _create_library(self, name, **kwargs):
        stack = getattr(_STACK, "levels", None)
        level = stack[-1] if stack else None  # the function whose lowering creates it
        owner = self if level is None or not isinstance(self, codegen.JITCPUCodegen) else _lean_codegen(self)
        lib = create_library(owner, name, **kwargs)
        lib._bayes_sacral_opt = level
        return lib

    def _at_level(method):
        def run(self, *args):
            level = getattr(self, "_bayes_sacral_opt", None)
            if level is None:
                return method(self, *args)
            saved = config.OPT
            config.OPT = config._OptLevel(level)  # read by numba's pass builders; compiles hold numba's global lock
            try:
                return method(self, *args)
            finally:
                config.OPT = saved

        run.__wrapped__ = method
        return run

    index_key = caching.Cache._index_key

    def _index_key(self, sig, codegen_):
        key = index_key(self, sig, codegen_)
        f = self._py_func
        level = level_for(getattr(f, "__module__", None), getattr(f, "__qualname__", None))
        return key if level is None else (*key, ("bayes-sacral-opt", level, "codegen", LEAN_CODEGEN))

    compiler.CompilerBase._compile_core = _compile_core
    codegen.CPUCodegen.create_library = _create_library
    codegen.CPUCodeLibrary._optimize_functions = _at_level(codegen.CPUCodeLibrary._optimize_functions)
    codegen.CPUCodeLibrary._optimize_final_module = _at_level(codegen.CPUCodeLibrary._optimize_final_module)
    caching.Cache._index_key = _index_key


class _AfterNumba(importlib.abc.MetaPathFinder):
    """Patches numba right after its first import (so that nothing is compiled before)."""

    def find_spec(self, name, path=None, target=None):
        if name != "numba":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            _patch()

        spec.loader.exec_module = exec_then_patch
        return spec


def install() -> None:
    """Apply the policy to numba in this process (idempotent): now if numba is imported, else when it is."""
    if _INSTALLED:
        return
    if "numba" in sys.modules:
        _patch()
    elif not any(isinstance(f, _AfterNumba) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterNumba())
