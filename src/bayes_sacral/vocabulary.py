"""The controlled vocabulary of the study design: arms, fracture strata, MSTS domains, units."""

from __future__ import annotations

__all__ = [
    "ARMS",
    "FRACTURES",
    "MSTS_DOMAINS",
    "MSTS_ITEMS",
    "MSTS_MAX_POINTS",
    "MSTS_ITEM_MAX",
    "NARCOTIC_LEVELS",
    "TIMES",
    "points_to_percent",
    "percent_to_points",
]

#: Treatment arms; "psfs" = percutaneous screw fixation + sacroplasty.
ARMS: tuple[str, ...] = ("psfs", "sacroplasty")
#: Fracture strata, in the order used for every ``fracture`` dim.
FRACTURES: tuple[str, ...] = ("pathological", "impending")
#: The six MSTS (1993) items, each scored 0-5.
MSTS_ITEMS: tuple[str, ...] = (
    "pain",
    "emotional_acceptance",
    "use_of_supports",
    "walking_ability",
    "gait",
    "function",
)
#: The ``domain`` dim: the total first, then the six items.
MSTS_DOMAINS: tuple[str, ...] = ("total", *MSTS_ITEMS)
MSTS_MAX_POINTS = 30
MSTS_ITEM_MAX = 5
TIMES: tuple[str, ...] = ("pre", "post")
#: Ordered categories of the change in narcotic use.
NARCOTIC_LEVELS: tuple[str, ...] = ("decrease", "stable", "increase")


def points_to_percent(points):
    """MSTS points (0-30) to the paper's percent of the maximum (0-100)."""
    return points / MSTS_MAX_POINTS * 100.0


def percent_to_points(percent):
    """The paper's percent of the maximum MSTS (0-100) to points (0-30)."""
    return percent * MSTS_MAX_POINTS / 100.0
