"""Studies: a study card (the declared design every module reads) and, when the card names them, its published summaries."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import InputError, Problem
from .card import StudyCard, load_card, parse_card, words

__all__ = ["Study", "StudyCard", "load_study", "bundled_card_path", "BUNDLED_STUDY", "load_card", "parse_card", "words"]

#: The study bundled with the package (Cox et al., Front. Oncol. 2025).
BUNDLED_STUDY = "cox2025"


def bundled_card_path(name: str = BUNDLED_STUDY) -> Path:
    """Path of a bundled study card."""
    return Path(str(resources.files("bayes_sacral.data") / "studies" / f"{name}.toml"))


class Study:
    """A study: its card and, when the card names a summary-data file, the published summaries.

    Parameters
    ----------
    card : StudyCard

    Examples
    --------
    >>> import bayes_sacral as bs
    >>> study = bs.load_study()
    >>> study.card.arm_levels == [study.card.arms.treatment, study.card.arms.control]
    True
    >>> int(study.summary.cell_sizes().sum())
    30
    """

    def __init__(self, card: StudyCard):
        self.card = card
        self._summary = None

    def __repr__(self) -> str:
        strata = f"{self.card.stratum_dim} {'/'.join(self.card.stratum_levels)}" if self.card.stratified else "unstratified"
        return (f"Study({self.card.name!r}: {self.card.arms.treatment} vs {self.card.arms.control}, {strata}, "
                f"outcomes {', '.join(self.card.outcomes)})")

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def summary_path(self) -> Path | None:
        """The card's summary-data file (None when the card names none)."""
        rel = self.card.study.summary
        if rel is None:
            return None
        p = Path(rel)
        if not p.is_absolute() and self.card.path is not None:
            p = self.card.path.parent / p
        return p

    @property
    def summary(self):
        """The published summaries (:class:`~bayes_sacral.data.summary.SummaryData`), validated against the card; None
        when the card names no summary file."""
        if self._summary is None and self.summary_path is not None:
            from ..data.summary import read_summary

            self._summary = read_summary(self.summary_path, self.card)
        return self._summary

    def require_summary(self, what: str):
        sd = self.summary
        if sd is None:
            raise InputError([Problem(str(self.card.path or self.name), "study.summary", "",
                                      f"{what} needs the study's published summaries, and this card names no summary file "
                                      "(set [study] summary = \"file.csv\", or give data.source = summary with a path)")])
        return sd

    def read_summary(self, path: str | Path):
        """Read and validate a summary-data CSV of this study."""
        from ..data.summary import read_summary

        return read_summary(path, self.card)

    def read_ipd(self, data):
        """Patient-level data of this study, validated: a CSV path or a pandas DataFrame (canonical or mapped column names).

        Raises
        ------
        InputError
            Every problem at once (file, row, column, value, rule).

        Examples
        --------
        >>> import pandas as pd, bayes_sacral as bs
        >>> study = bs.load_study()
        >>> card = study.card
        >>> df = pd.DataFrame({"patient_id": ["a", "b"], "arm": card.arm_levels, card.stratum_dim: card.stratum_levels[:1] * 2,
        ...                    "msts_pre": [10, 12], "msts_post": [22, 18]})
        >>> study.read_ipd(df).n_patients
        2
        """
        from ..data.ipd import ipd_from_frame, read_ipd

        try:
            import pandas as pd

            if isinstance(data, pd.DataFrame):
                return ipd_from_frame(data, self.card)
        except ImportError:  # pragma: no cover
            pass
        return read_ipd(data, self.card)

    def check(self, summary=None):
        """Integrity checks of the published numbers (GRIM, GRIMMER, sums, percents, cell sizes) as a DataFrame."""
        from ..data.integrity import findings_frame, run_checks

        return findings_frame(run_checks(summary or self.require_summary("data check")))


def load_study(card: str | Path | StudyCard | Study | None = None) -> Study:
    """A study from its card: a path to a card file, the name of a bundled study, or None for the bundled one.

    Examples
    --------
    >>> import bayes_sacral as bs
    >>> bs.load_study().name
    'cox2025'
    """
    if isinstance(card, Study):
        return card
    if isinstance(card, StudyCard):
        return Study(card)
    if card is None:
        card = bundled_card_path()
    elif isinstance(card, str) and not card.endswith(".toml") and bundled_card_path(card).is_file():
        card = bundled_card_path(card)
    return Study(load_card(card))
