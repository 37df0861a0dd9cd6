"""The bundled published study (Cox et al., Front. Oncol. 2025) as summary data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .summary import SummaryData, read_summary

__all__ = ["PUBLISHED_STUDY", "published_path", "load_published", "load_dataset"]

#: Identifier of the bundled study.
PUBLISHED_STUDY = "cox2025"


def published_path() -> Path:
    """Path of the bundled summary-data file of the published study."""
    return Path(str(resources.files("bayes_sacral.data") / "studies" / f"{PUBLISHED_STUDY}.csv"))


def load_published() -> SummaryData:
    """The published study, validated, as :class:`SummaryData` (``.frame`` is the tidy DataFrame)."""
    return read_summary(published_path())


def load_dataset(path: str | Path | None = None):
    """Summary data from ``path``, or the published study when ``path`` is None."""
    return load_published() if path is None else read_summary(path)
