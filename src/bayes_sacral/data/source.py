"""Where a run's data come from: the study's published summaries, a summary-data file, or patient-level data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, Problem
from .ipd import IPDData
from .summary import SummaryData

__all__ = ["StudyData", "load_data", "resolve_path", "empty_cell_problems"]


@dataclass
class StudyData:
    """Data of one study, of one of three kinds; exactly one of ``summary`` / ``ipd`` is set.

    Attributes
    ----------
    study : bayes_sacral.study.Study
    source : {"published", "summary", "ipd"}
    path : str or None
    sha256 : str
        Hash of the data file's bytes (the data hash recorded in manifests).
    """

    study: object
    source: str
    path: str | None
    sha256: str
    summary: SummaryData | None = None
    ipd: IPDData | None = None

    @property
    def card(self):
        return self.study.card

    def label(self) -> str:
        if self.source == "published":
            return f"published summaries of {self.card.name}"
        if self.path is None:
            return f"{self.source} data in memory"
        return f"{self.source} file {self.path}"

    def require_summary(self, what: str) -> SummaryData:
        if self.summary is None:
            raise InputError([Problem(self.path or "<data>", "data.source", repr(self.source),
                                      f"{what} needs summary data (source = published | summary)")])
        return self.summary

    @classmethod
    def from_ipd(cls, study, ipd: IPDData) -> StudyData:
        return cls(study, "ipd", None if ipd.path.startswith("<") else ipd.path, ipd.sha256, ipd=ipd)

    @classmethod
    def from_summary(cls, study, sd: SummaryData, published: bool = False) -> StudyData:
        return cls(study, "published" if published else "summary", None if published else sd.path, sd.sha256, summary=sd)


def resolve_path(path: str | Path, base_dir: Path | None) -> Path:
    """A relative path as given when it exists from the working directory, else relative to ``base_dir`` (a config's folder)."""
    p = Path(path)
    if not p.is_absolute() and base_dir is not None and not p.exists():
        return base_dir / p
    return p


def load_data(study, source: str, path: str | None = None, base_dir: Path | None = None) -> StudyData:
    """Load and validate a study's data. A relative ``path`` is resolved against ``base_dir`` (the config's folder)."""
    if source == "published":
        return StudyData.from_summary(study, study.require_summary("data.source = published"), published=True)
    if path is None:
        raise InputError([Problem("<config>", "data.path", "", f"source = {source!r} needs a path")])
    p = resolve_path(path, base_dir)
    if source == "summary":
        return StudyData.from_summary(study, study.read_summary(p))
    if source == "ipd":
        return StudyData.from_ipd(study, study.read_ipd(p))
    raise InputError([Problem("<config>", "data.source", repr(source), "must be published | summary | ipd")])


def empty_cell_problems(card, counts, where: str) -> list[Problem]:
    """Arm × stratum cells without patients, as problems (the same rule ``data validate``, ``reproduce`` and ``fit`` apply).

    ``counts``: a DataArray with dims (arm, the strata) or a crosstab DataFrame with arms as rows; NaN (not reported) is
    not empty.
    """
    import numpy as np

    out = []
    for a in card.arm_levels:
        for lev in card.stratum_levels:
            try:
                n = counts.sel({"arm": a, card.stratum_dim: lev}).item() if hasattr(counts, "sel") else counts.loc[a, lev]
            except KeyError:
                n = 0
            if n is not None and not (isinstance(n, float) and np.isnan(n)) and int(n) == 0:
                out.append(Problem(where, f"cell {card.cell_label(a, lev)}", "0 patients",
                                   "every arm × stratum cell needs patients; models refuse an empty cell unless model.allow_empty_cells = true, "
                                   "and then report its estimands as not estimable"))
    return out
