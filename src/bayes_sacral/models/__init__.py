"""Model builders, one module per family; the registry maps a config's ``model.kind`` to its builder."""

from __future__ import annotations

# ArviZ's base package is imported here, before PyMC, SciPy and numba, only for speed. When the optional JAX and NumPyro
# are absent, its import calls lazy_loader, which calls inspect.stack(); that resolves the source file of every module
# loaded so far. Measured in a fresh fit process: 0.31 s once PyMC, SciPy and numba are loaded, 0.07 s before them.
import arviz_base  # noqa: F401

from .base import KindOptions, ModelInput, ModelKind, ModelSpec, PriorSet
from .events import ComplicationsModel, EventsModel
from .items import ItemsModel
from .ordinal import OrdinalModel
from .score import ScoreModel

__all__ = ["KINDS", "get_kind", "ModelKind", "ModelInput", "ModelSpec", "PriorSet", "KindOptions"]

#: model.kind -> builder object
KINDS: dict[str, ModelKind] = {k.name: k for k in (ScoreModel(), ItemsModel(), EventsModel(), OrdinalModel(), ComplicationsModel())}


def get_kind(name: str) -> ModelKind:
    return KINDS[name]
