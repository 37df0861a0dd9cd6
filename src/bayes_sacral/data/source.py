"""Where a run's data come from: the published study, a summary-data file, or a patient-level CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, Problem
from .ipd import IPDData, read_ipd
from .published import load_published
from .summary import SummaryData, read_summary

__all__ = ["StudyData", "load_study"]


@dataclass
class StudyData:
    """Study data of one of three kinds; exactly one of ``summary`` / ``ipd`` is set.

    Attributes
    ----------
    source : {"published", "summary", "ipd"}
    path : str or None
    sha256 : str
        Hash of the data file's bytes (the data hash recorded in manifests).
    """

    source: str
    path: str | None
    sha256: str
    summary: SummaryData | None = None
    ipd: IPDData | None = None

    def label(self) -> str:
        if self.source == "published":
            return "published study (bundled summary data, cox2025)"
        return f"{self.source} file {self.path}"

    def require_summary(self, what: str) -> SummaryData:
        if self.summary is None:
            raise InputError([Problem(self.path or "<data>", "data.source", repr(self.source), f"{what} needs summary data (source = published | summary)")])
        return self.summary


def load_study(source: str, path: str | None = None, base_dir: Path | None = None) -> StudyData:
    """Load and validate study data. Relative ``path`` is resolved against ``base_dir`` (the config's folder)."""
    if source == "published":
        sd = load_published()
        return StudyData("published", None, sd.sha256, summary=sd)
    if path is None:
        raise InputError([Problem("<config>", "data.path", "", f"source = {source!r} needs a path")])
    p = Path(path)
    if not p.is_absolute() and base_dir is not None and not p.exists():
        p = base_dir / p
    if source == "summary":
        sd = read_summary(p)
        return StudyData("summary", str(p), sd.sha256, summary=sd)
    if source == "ipd":
        ipd = read_ipd(p)
        return StudyData("ipd", str(p), ipd.sha256, ipd=ipd)
    raise InputError([Problem("<config>", "data.source", repr(source), "must be published | summary | ipd")])
