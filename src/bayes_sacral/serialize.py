"""Plain-JSON conversion of results (NaN -> null, numpy scalars -> Python)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

__all__ = ["to_jsonable", "json_dumps"]


def to_jsonable(obj):
    """Plain JSON types: NaN/NA -> null, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is pd.NA or obj is None:
        return None
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return obj


def json_dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n"
