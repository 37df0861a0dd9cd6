"""Model builders, one module per family; the registry maps a config's ``model.kind`` to its builder."""

from __future__ import annotations

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
