"""Display labels of report-level names (prior sets); arms, strata, outcomes and items come from the study card."""

from __future__ import annotations

from ..models.base import GRID_POSITIONS, GRID_STRENGTHS
from ..study.card import words

__all__ = ["prior_label"]


def prior_label(name: str) -> str:
    """A prior set's name in words; the standard grid's as 'neutral, weak (10 patients)'."""
    pos, _, strength = str(name).partition("_")
    if pos in GRID_POSITIONS and strength in GRID_STRENGTHS:
        return f"{pos}, {strength} ({GRID_STRENGTHS[strength]} patients)"
    return words(name)
