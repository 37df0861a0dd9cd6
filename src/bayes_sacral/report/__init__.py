"""Posterior reports and manuscript figures: tables, figures and text from fitted runs.

``build_report`` and ``SECTIONS`` are loaded on first use, so that a light submodule (``figure_cache``, used by
``bayes-sacral cache info|clear``) is imported without the report builder, which brings in the models and PyMC.
"""

from __future__ import annotations

import importlib

__all__ = ["build_report", "SECTIONS"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".build", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
