"""Our own one-shot processes tell xarray ahead that no dask array will occur, so that it does not import dask.array."""

import json
import textwrap


def test_xarray_told_ahead_wraps_arrays_without_importing_dask_array_which_stays_importable(fresh_python):
    code = textwrap.dedent("""
        import json, sys
        import numpy as np, xarray as xr
        from bayes_sacral.oneshot import declare_no_dask_arrays
        out = {"told": declare_no_dask_arrays(), "again": declare_no_dask_arrays(), "dask_imported": "dask" in sys.modules}
        ds = xr.Dataset({"a": (("x",), np.arange(3.0))}, coords={"x": ["p", "q", "r"]})
        out["values"] = ds["a"].values.tolist()
        out["masked"] = np.isnan(xr.Variable("x", np.ma.masked_array([1.0, 2.0], mask=[False, True])).values).tolist()
        out["dask_array_imported"] = "dask.array" in sys.modules
        out["blocked_left"] = sys.modules.get("dask.array", 0) is None
        import dask.array as da
        out["importable_after"] = da.Array.__module__
        print(json.dumps(out, default=str))
        """)
    out = json.loads(fresh_python(code).stdout.strip().splitlines()[-1])
    assert out == {"told": True, "again": False, "dask_imported": False, "values": [0.0, 1.0, 2.0], "masked": [False, True], "dask_array_imported": False,
                   "blocked_left": False, "importable_after": "dask.array.core"}


def test_a_process_that_imported_dask_array_is_left_alone(fresh_python):
    """dask arrays may exist there: xarray keeps recognising them (its repr of a dask-backed array asserts the type)."""
    code = textwrap.dedent("""
        import json
        import dask.array as da, xarray as xr
        from bayes_sacral.oneshot import declare_no_dask_arrays
        told = declare_no_dask_arrays()
        arr = xr.DataArray(da.zeros(4, chunks=2), dims="x")
        print(json.dumps({"told": told, "repr_names_dask": "dask.array" in repr(arr), "sum": float(arr.sum().compute())}))
        """)
    assert json.loads(fresh_python(code).stdout.strip().splitlines()[-1]) == {"told": False, "repr_names_dask": True, "sum": 0.0}


def test_the_console_command_tells_xarray(fresh_python):
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        from bayes_sacral.cli import entry
        sys.argv = ["bayes-sacral", "data", "check"]
        with contextlib.redirect_stdout(io.StringIO()) as text:
            rc = entry()
        print(json.dumps({"rc": rc, "dask_array_imported": "dask.array" in sys.modules, "printed": bool(text.getvalue().strip())}))
        """)
    assert json.loads(fresh_python(code).stdout.strip().splitlines()[-1]) == {"rc": 0, "dask_array_imported": False, "printed": True}
