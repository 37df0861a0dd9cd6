"""The optimisation policy for compiled models' numba code (bayes_sacral.optlevels): which functions are optimised
lightly, that the level follows the function and not the process's history, and that numba's cache keys carry it."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import bayes_sacral  # noqa: F401 - installs the policy
from bayes_sacral import optlevels


def _function(module: str, name: str, body: str = "return x * 2.0 + 1.0"):
    """A plain Python function defined as if in ``module`` (numba reads a function's module from its globals)."""
    ns = {"__name__": module}
    exec(f"def {name}(x):\n    {body}\n", ns)  # noqa: S102 - test source
    return ns[name]


@pytest.mark.parametrize(("module", "name", "expected"), [
    ("pytensor.link.numba.dispatch.elemwise", "elemwise_wrapper", optlevels.LEAN),
    ("pytensor.link.numba.dispatch.basic", "numba_funcified_fgraph", optlevels.LEAN),
    ("nutpie.compile_pymc", "_compile_pymc_model_numba.<locals>.extract_shared", optlevels.LEAN),
    ("bayes_sacral.callbacks", "read_shared", optlevels.LEAN),
    ("nutpie.compile_pymc", "_make_c_logp_func.<locals>.logp_numba", None),
    ("bayes_sacral.callbacks", "_callbacks.<locals>.expand_numba", None),
    ("mypackage.kernels", "fast_sum", None),
    ("bayes_sacral.design.exact", "anything", None),
    (None, "f", None),
])
def test_level_follows_module_and_name(module, name, expected):
    assert optlevels.level_for(module, name) == expected


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("BAYES_SACRAL_NUMBA_LEAN", "0")
    assert optlevels.level_for("pytensor.tensor", "f") is None
    assert "lean=off" in optlevels.policy()
    monkeypatch.setenv("BAYES_SACRAL_NUMBA_LEAN", "1")
    assert f"lean={optlevels.LEAN}" in optlevels.policy()


def test_libraries_are_built_at_their_level():
    """Compiled through numba: a PyTensor-module function's library is optimised at LEAN, a callback's and a user
    function's at numba's level; each computes what Python computes. Its caller, compiled later, does not change it."""
    import numba

    piece = numba.njit(_function("pytensor.bs_test_module", "piece"))
    final = numba.njit(_function("pytensor.bs_test_module", "logp_numba"))
    mine = numba.njit(_function("user_code_here", "mine"))
    x = np.linspace(-1.0, 1.0, 7)
    for f in (piece, final, mine):
        np.testing.assert_array_equal(f(x), x * 2.0 + 1.0)
    levels = {f.py_func.__name__: next(iter(f.overloads.values())).library._bayes_sacral_opt for f in (piece, final, mine)}
    assert levels == {"piece": optlevels.LEAN, "logp_numba": None, "mine": None}

    ns = {"__name__": "user_code_here", "piece": piece}
    exec("def caller(x):\n    return piece(x) - 1.0\n", ns)  # noqa: S102 - test source
    caller = numba.njit(ns["caller"])
    np.testing.assert_array_equal(caller(x), x * 2.0)
    assert next(iter(caller.overloads.values())).library._bayes_sacral_opt is None
    assert next(iter(piece.overloads.values())).library._bayes_sacral_opt == optlevels.LEAN
    # the piece's own machine code comes from the second code generator (light code generation), the caller's from
    # numba's, which made the caller's code from its module with the piece's IR linked in
    from numba.core.registry import cpu_target

    main = cpu_target.target_context.codegen()
    assert next(iter(piece.overloads.values())).library.codegen is optlevels._lean_codegen(main) is not main
    assert next(iter(caller.overloads.values())).library.codegen is main


def test_cache_key_carries_the_level():
    """numba's on-disk index key (PyTensor's op cache) gets the level for the functions it applies to, so pieces
    optimised at one level are never loaded where another applies; other functions keep numba's own key."""
    from numba.core import caching
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    sig = (types.SimpleNamespace(),)
    lean = caching.Cache._index_key(types.SimpleNamespace(_py_func=_function("pytensor.x", "op")), sig, codegen)
    own = caching.Cache._index_key(types.SimpleNamespace(_py_func=_function("elsewhere", "op")), sig, codegen)
    assert lean[-1] == ("bayes-sacral-opt", optlevels.LEAN, "codegen", optlevels.LEAN_CODEGEN)
    assert lean[:-1] == own
    assert own[1] == codegen.magic_tuple()


def test_installed_before_numba_is_first_imported():
    """Importing bayes_sacral before numba patches numba as soon as it is imported, before anything compiles."""
    code = ("import sys\nimport bayes_sacral\nassert 'numba' not in sys.modules\nimport numba\n"
            "from numba.core import codegen\n"
            "assert hasattr(codegen.CPUCodeLibrary._optimize_final_module, '__wrapped__')\n"
            "ns = {'__name__': 'pytensor.t'}\nexec('def f(x):\\n    return x + 1', ns)\n"
            "f = numba.njit(ns['f'])\nassert f(1) == 2\n"
            "assert next(iter(f.overloads.values())).library._bayes_sacral_opt == 1\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_policy_names_numbas_configured_level_even_during_a_lean_compile(monkeypatch):
    """The compile-cache key's policy string gives numba's configured level, not the level a compile of a piece sets
    for a moment (a key computed in one thread while another compiles must not change)."""
    from numba.core import config

    configured = int(config.OPT)
    before = optlevels.policy()
    assert f"numba-opt={configured};" in before
    monkeypatch.setattr(config, "OPT", config._OptLevel(optlevels.LEAN))
    assert optlevels.policy() == before
