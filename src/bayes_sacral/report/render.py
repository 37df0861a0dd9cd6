"""Saving report figures in parallel: each figure is drawn in the calling process, pickled, and written (preview PNG,
300-dpi PNG, PDF) by worker processes (:class:`~bayes_sacral.workers.WorkerPool`) under the same house style, so the
bytes are those a serial save gives.

Writing a figure (text layout, rasterising at 300 dpi, subsetting fonts into the PDF) costs more than drawing it, and
a report has dozens. A figure written before, by any process, is copied from the figure cache
(:mod:`~bayes_sacral.report.figure_cache`) instead.
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import Future
from pathlib import Path

__all__ = ["FigureSaver", "PREVIEW_DPI", "render"]

#: Resolution of the PNG embedded in report.html (the files in figures/ are 300 dpi).
PREVIEW_DPI = 110


def render(payload: bytes, stem: str, preview_dpi: int = PREVIEW_DPI, key: str | None = None) -> bytes:
    """Unpickle a figure and write it under the house style (what a worker runs); returns the preview PNG. With a
    figure-cache ``key``, the files written are also kept in the cache."""
    import matplotlib

    matplotlib.use("Agg")
    from .style import house_style, write_figure

    with house_style():
        preview = write_figure(pickle.loads(payload), Path(stem), preview_dpi)
    if key is not None:
        from . import figure_cache

        figure_cache.store(key, preview, Path(stem))
    return preview


def _workers() -> int:
    from ..workers import available_cores

    env = os.environ.get("BAYES_SACRAL_FIGURE_WORKERS")
    if env is not None:
        if not env.strip().isdigit():
            from ..errors import InputError, Problem

            raise InputError([Problem("environment", "BAYES_SACRAL_FIGURE_WORKERS", env, "must be a whole number >= 0 "
                                      "(0 writes the figures in this process)")])
        return int(env)
    cores = available_cores()
    return cores if cores > 1 else 0


class FigureSaver:
    """Queue figures for writing; :meth:`submit` returns a future of the preview PNG's bytes.

    ``workers`` = 0 writes each figure in the calling process (the default on one core;
    ``BAYES_SACRAL_FIGURE_WORKERS`` overrides the count). A figure that cannot be pickled is written in the calling
    process too. With ``cache`` (the default unless ``BAYES_SACRAL_FIGURE_CACHE=0``) a figure found in the figure cache
    (:mod:`~bayes_sacral.report.figure_cache`) is copied from it, and every figure written is added to it. Use as a
    context manager: leaving it waits for every figure and re-raises the first failure.
    """

    def __init__(self, workers: int | None = None, cache: bool | None = None):
        self.workers = _workers() if workers is None else workers
        self.cache = os.environ.get("BAYES_SACRAL_FIGURE_CACHE", "1").strip() != "0" if cache is None else cache
        self.cached = 0  # figures copied from the figure cache
        self._pool = None
        self._futures: list[Future] = []

    def submit(self, fig, stem: Path) -> Future:
        import matplotlib.pyplot as plt

        from . import figure_cache

        key = figure_cache.figure_key(fig) if self.cache else None
        entry = figure_cache.load(key) if key is not None else None
        if entry is not None:
            plt.close(fig)
            fut: Future = Future()
            fut.set_result(figure_cache.write_files(entry, Path(stem)))
            self.cached += 1
            self._futures.append(fut)
            return fut
        payload = None
        if self.workers:
            try:
                payload = pickle.dumps(fig, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, AttributeError, TypeError):
                payload = None  # a figure holding something unpicklable is written here instead
        if payload is None:
            fut = Future()
            from .style import write_figure

            preview = write_figure(fig, Path(stem), PREVIEW_DPI)
            if key is not None:
                figure_cache.store(key, preview, Path(stem))
            fut.set_result(preview)
        else:
            from ..workers import WorkerPool

            plt.close(fig)
            if self._pool is None:
                self._pool = WorkerPool(self.workers)
            fut = self._pool.submit(render, payload, str(stem), PREVIEW_DPI, key, what=f"figure {Path(stem).name}")
        self._futures.append(fut)
        return fut

    def __enter__(self) -> FigureSaver:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for f in self._futures:
                    f.result()
                if self.cache:
                    from . import figure_cache

                    figure_cache.prune()
        finally:
            if self._pool is not None:
                self._pool.close(cancel=exc_type is not None)
                self._pool = None
