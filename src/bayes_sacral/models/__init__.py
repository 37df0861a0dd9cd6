"""Model builders, one module per family; the registry maps a config's ``model.kind`` to its builder."""

from __future__ import annotations

from .base import KindOptions, ModelInput, ModelKind, PriorSet
from .domains import MstsDomains
from .events import Complications, NarcoticChange, SecondaryProcedures
from .msts import Msts

__all__ = ["KINDS", "get_kind", "ModelKind", "ModelInput", "PriorSet", "KindOptions"]

#: model.kind -> builder object
KINDS: dict[str, ModelKind] = {k.name: k for k in (Msts(), MstsDomains(), SecondaryProcedures(), NarcoticChange(), Complications())}


def get_kind(name: str) -> ModelKind:
    return KINDS[name]
