"""nutpie as this package runs it: imported without ArviZ's plotting stack, sampling in background threads while the
caller goes on, and its trace turned into a DataTree with arviz-base.

nutpie's sampling module imports the ``arviz`` meta-package, which imports arviz-plots and with it matplotlib.pyplot:
about 0.45 s of a 4 s ``bayes-sacral fit``, spent only to reach arviz-base's ``from_dict``. :func:`import_nutpie`
therefore puts a stand-in for ``arviz`` in its place when nothing has imported it yet (the real module is imported
in full on the first name read from it, by whoever reads it), and :func:`start` asks nutpie for
its raw Arrow trace, which :meth:`Sampling.wait` converts with arviz-base: the same DataTree as nutpie's own conversion
(``tests/test_nuts.py`` compares them draw for draw), with the variables that the package's compiled models leave to
after sampling (:mod:`bayes_sacral.callbacks`) added.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types

import numpy as np
import xarray as xr

from .callbacks import DrawExpansion

__all__ = ["import_nutpie", "start", "Sampling"]

# nutpie settings that, when off, leave these trace columns out of its DataTree (as nutpie's own conversion does)
_STORED_ONLY_WITH = {
    ("store_gradient",): ("gradient",),
    ("store_unconstrained",): ("unconstrained_draw",),
    ("adapt_options", "mass_matrix_options", "store_mass_matrix"): ("mass_matrix_inv", "mass_matrix_eigvals", "mass_matrix_stds"),
    ("store_divergences",): ("divergence_start", "divergence_end", "divergence_momentum", "divergence_start_gradient"),
    ("store_transformed",): ("transformed_position", "transformed_gradient", "transformation_mu"),
}


def import_nutpie():
    """The ``nutpie`` module, imported with a :class:`_Deferred` ``arviz`` when nothing has imported ArviZ yet."""
    if "nutpie" not in sys.modules and "arviz" not in sys.modules:
        spec = importlib.util.find_spec("arviz")
        if spec is not None:
            stand_in = importlib.util.module_from_spec(spec)  # __file__, __path__, __spec__, ... as the real module's
            stand_in.__class__ = _Deferred
            sys.modules["arviz"] = stand_in
    import nutpie

    return nutpie


class _Deferred(types.ModuleType):
    """A stand-in for the ``arviz`` module until something reads a name from it, which imports the real module in full
    (it then replaces the stand-in in ``sys.modules``, and the stand-in forwards to it).

    The standard library's ``importlib.util.LazyLoader`` would do this, but in Python 3.12 an ``import`` statement
    that finds a lazy module already loads it (it reads the module's ``__spec__``). The stand-in has the real module's
    import attributes (``__spec__``, ``__file__``, ...) as ordinary ones, and answers other special names that
    tools probe every module for (``inspect.getmodule``: ``__file__``; pytest, doctest) without loading; only the
    package's ``__version__`` and ``__all__`` and its public names load it."""

    def __getattr__(self, name: str):
        if not _loads(name):
            raise AttributeError(name)
        return getattr(self._real(), name)

    def __dir__(self):
        return dir(self._real())

    def _real(self):
        mod = sys.modules.get(self.__name__)
        if mod is self or mod is None:
            sys.modules.pop(self.__name__, None)
            try:
                mod = importlib.import_module(self.__name__)
            except BaseException:
                sys.modules[self.__name__] = self
                raise
            self.__dict__.update({k: v for k, v in mod.__dict__.items() if _loads(k)})
        return mod


def _loads(name: str) -> bool:
    """Whether reading ``name`` from the stand-in loads the real module: its public names, ``__version__`` and
    ``__all__``; not the special names tools probe every module for."""
    return not (name.startswith("__") and name.endswith("__")) or name in ("__version__", "__all__")


class Sampling:
    """NUTS running in nutpie's threads; :meth:`wait` returns the posterior and sample_stats groups."""

    def __init__(self, sampler, compiled):
        self._sampler = sampler
        self._compiled = compiled

    def wait(self) -> xr.DataTree:
        try:
            raw = self._sampler.wait()
        except BaseException:
            self._sampler.cancel()
            raise
        # the settings nutpie sampled with (it keeps them as _settings, which its own conversion reads too; nutpie is
        # pinned in requirements.lock, and tests/test_nuts.py compares this conversion with nutpie's)
        return _trace_tree(raw, self._compiled, self._sampler._settings.as_dict())

    def cancel(self) -> None:
        self._sampler.cancel()


def start(compiled, *, draws: int, tune: int, chains: int, cores: int, seed: int, target_accept: float, maxdepth: int = 10,
          progress_bar: bool = False) -> Sampling:
    """Start NUTS on a nutpie-compiled model (warm-up draws not kept) and return at once."""
    nutpie = import_nutpie()
    sampler = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=int(seed), save_warmup=False,
                            progress_bar=progress_bar, target_accept=target_accept, maxdepth=maxdepth, blocking=False,
                            return_raw_trace=True)
    return Sampling(sampler, compiled)


def _skipped(settings: dict) -> set[str]:
    out = set()
    for path, names in _STORED_ONLY_WITH.items():
        node = settings["settings"]
        for part in path:
            node = node.get(part, False) if isinstance(node, dict) else False
        if not node:
            out.update(names)
    return out


def _columns(batches, skip: set[str], n_draws: int, dims: dict) -> dict[str, np.ndarray]:
    """Arrays (chain, draw, *item shape) of every column of per-chain Arrow record batches, posterior draws only."""
    import pyarrow

    out: dict[str, np.ndarray] = {}
    for c, batch in enumerate(batches):
        for name in batch.column_names:
            if name in skip:
                continue
            col = batch.column(name)
            meta = col.field.metadata or {}
            col = pyarrow.array(col)  # nutpie's batches are arro3 arrays: into pyarrow through the Arrow C interface
            item_dims = meta[b"dims"].decode().split(",") if meta.get(b"dims") else []
            shape = tuple(int(s) for s in meta[b"shape"].decode().split(",")) if meta.get(b"shape") else ()
            null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            flat = col.flatten() if hasattr(col, "flatten") else col
            dtype = np.dtype(flat.type.to_pandas_dtype())
            if name not in out:
                fill = np.nan if dtype.kind == "f" else (None if dtype.kind == "O" else 0)
                out[name] = np.full((len(batches), n_draws, *shape), fill, dtype=dtype)
                dims[name] = item_dims
            values = flat.to_numpy(zero_copy_only=False)
            rows = len(col)
            if not null.any():
                out[name][c, :rows] = values.reshape((rows, *shape))
            else:
                if values.shape[0] == rows:
                    values = values[~null]
                out[name][c, :rows][~null] = values.reshape((int((~null).sum()), *shape))
    return out


def _trace_tree(raw, compiled, settings: dict) -> xr.DataTree:
    """nutpie's raw Arrow trace as a DataTree with posterior and sample_stats (warm-up draws dropped). A model whose
    expansion stores the unconstrained vector only (:class:`~bayes_sacral.callbacks.DrawExpansion`) has its other
    variables computed here, for all draws at once."""
    import arviz_base
    import pandas as pd

    nutpie = import_nutpie()
    draw_batches, stat_batches = raw.get_arrow_trace()
    post_draws, post_stats = [], []
    for draw, stat in zip(draw_batches, stat_batches, strict=True):
        n_tune = int(np.asarray(stat.column("tuning").to_numpy()).sum())
        post_draws.append(draw.slice(n_tune, draw.num_rows - n_tune))
        post_stats.append(stat.slice(n_tune, stat.num_rows - n_tune))
    n_draws = max((b.num_rows for b in post_draws), default=0)
    dims: dict[str, list[str]] = {}
    posterior = _columns(post_draws, set(), n_draws, dims)
    stats = _columns(post_stats, _skipped(settings), n_draws, dims)
    if isinstance(compiled.expand_func, DrawExpansion):
        # the callbacks stored the unconstrained values only: the free variables and deterministics, for all draws at once
        values = {name: posterior[name].reshape(-1, *posterior[name].shape[2:]) for name in compiled.shape_info[0]}
        for name, arr in compiled.expand_func(compiled, values).items():
            posterior[name] = arr.reshape(len(post_draws), n_draws, *arr.shape[1:])
            dims[name] = list(compiled.dims.get(name) or [])
    for name in compiled.reparameterized_names:
        posterior.pop(name, None)
    attrs = {"inference_library": "nutpie", "inference_library_version": nutpie.__version__,
             "inference_library_settings": json.dumps(settings)}
    return arviz_base.from_dict({"posterior": posterior, "sample_stats": stats}, dims=dims,
                                coords={k: pd.Index(v) for k, v in compiled.coords.items()}, save_warmup=False,
                                attrs={"sample_stats": attrs})
