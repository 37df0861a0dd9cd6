"""A fitted run: posterior draws, manifest, resolved config and study card, in memory or in a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import xarray as xr

__all__ = ["Run"]


class Run:
    """A fitted run.

    Made by :func:`bayes_sacral.fit` (in memory) or :meth:`Run.load` (from a run folder). ``idata`` is the ArviZ
    DataTree; ``summary()`` a DataFrame with one row per estimand element; ``plot(kind)`` a matplotlib Figure;
    ``save(path)`` writes the same run folder the command line writes.

    Examples
    --------
    >>> import bayes_sacral as bs
    >>> run = bs.fit({"run": {"name": "x", "seed": 1}, "model": {"kind": "events", "outcome": "secondary_procedure"},
    ...               "sampler": {"draws": 200, "tune": 200, "chains": 2, "prior_draws": 0}})
    >>> {"posterior", "log_likelihood", "observed_data"} <= set(run.idata.children)
    True
    >>> f"risk_difference[{run.card.stratum_levels[0]}]" in set(run.summary()["name"])
    True
    """

    def __init__(self, manifest: dict, idata: xr.DataTree | None, config_text: str, card_text: str, path: Path | None = None,
                 resolved=None):
        self.manifest = manifest
        self._idata = idata
        self.config_text = config_text
        self.card_text = card_text
        self.path = Path(path) if path is not None else None
        self._resolved = resolved
        self._card = None

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "in memory"
        return f"Run({self.name!r}, {self.manifest.get('model', {}).get('kind')} on {self.manifest.get('outcome')}, {where})"

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> Run:
        """A run folder (manifest.json, idata.nc, config.toml, study.toml); the draws are read on first use.

        Raises :class:`~bayes_sacral.errors.InputError` when ``path`` is not a finished run folder."""
        path = Path(path)
        missing = [f for f in ("manifest.json", "idata.nc", "config.toml") if not (path / f).is_file()]
        if missing:
            from .errors import InputError, Problem

            what = "no such folder" if not path.exists() else "not a folder" if not path.is_dir() else f"has no {', '.join(missing)}"
            raise InputError([Problem(str(path), "run folder", "", f"{what}: a finished run folder holds manifest.json, idata.nc and "
                                      "config.toml (written by bs.fit(..., out=...), Run.save or bayes-sacral fit)")])
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        config_text = (path / "config.toml").read_text(encoding="utf-8")
        card_file = path / "study.toml"
        if card_file.is_file():
            card_text = card_file.read_text(encoding="utf-8")
        else:  # written before runs stored their card: the bundled card
            from .study import bundled_card_path

            card_text = bundled_card_path().read_text(encoding="utf-8")
        return cls(manifest, None, config_text, card_text, path)

    @property
    def name(self) -> str:
        return self.manifest["run"]

    @property
    def idata(self) -> xr.DataTree:
        """The DataTree (posterior, prior, prior_predictive, posterior_predictive, log_likelihood, observed_data,
        sample_stats), loaded into memory once; treat it as read-only."""
        if self._idata is None:
            from .store import netcdf_engine

            with xr.open_datatree(self.path / "idata.nc", engine=netcdf_engine()) as dt:
                self._idata = dt.load()
        return self._idata

    @property
    def card(self):
        """The study card the run was fitted with."""
        if self._card is None:
            from .study.card import parse_card

            original = self.manifest.get("study", {}).get("card")
            # relative paths in the card (its summary file) resolve against where the card was when the run was fitted
            where = Path(original) if original and Path(original).is_file() else None
            self._card = parse_card(self.card_text, f"{self.path or self.name}/study.toml", where)
        return self._card

    @property
    def kind(self):
        """The model kind (its presentation methods label figures and tables)."""
        return self.resolved.kind

    @property
    def spec(self):
        return self.resolved.spec

    @property
    def resolved(self):
        """The resolved config (re-validated from the stored config and card when the run was loaded from a folder)."""
        if self._resolved is None:
            from .config import resolve
            from .study import Study
            from .validation import parse_toml

            doc = parse_toml(self.config_text, f"{self.path or self.name}/config.toml")
            self._resolved = resolve(doc, f"{self.path or self.name}/config.toml", study=Study(self.card), data_in_memory=True)
        return self._resolved

    def exact(self, prior: bool = False):
        """Closed-form marginals of a conjugate run (:class:`~bayes_sacral.models.conjugate.ExactPosterior`) rebuilt from its
        data, or of its prior with ``prior=True``; None for other models or when the data can no longer be loaded."""
        key = "_exact_prior" if prior else "_exact_post"
        if key not in self.__dict__:
            from .errors import BayesSacralError
            from .fitting import prepare_run

            try:
                r = self.resolved
                if not r.kind.exact_available(r.priors, r.spec):
                    # not conjugate: no closed form, and no reason to rebuild (or reconstruct) its data
                    self.__dict__[key] = None
                    return None
                inp, _ = prepare_run(r)
                self.__dict__[key] = r.kind.exact_marginals(inp, r.priors, r.spec, prior=prior)
            except (BayesSacralError, OSError, ValueError, KeyError):
                self.__dict__[key] = None
        return self.__dict__[key]

    # ------------------------------------------------------------------ results
    def summary(self, prob: float | None = None, var_names: list[str] | None = None, all_vars: bool = False) -> pd.DataFrame:
        """Posterior summary: one row per estimand element (mean, sd, median, HDI, ETI, P(> 0), P(benefit), P(benefit beyond
        each threshold), R-hat, ESS, and the MCSEs of the mean, the equal-tailed ends and the HDI ends).

        Parameters
        ----------
        prob : float, optional
            Interval probability (default: the run's ``decision.prob``).
        var_names : list of str, optional
            Variables (default: the model's estimands).
        all_vars : bool
            Every posterior variable, nuisance parameters included.
        """
        from .summarize import summarize_run

        return pd.DataFrame(summarize_run(self, prob, var_names, all_vars))

    def plot(self, kind: str = "forest"):
        """A figure of this run in the house style (see :data:`bayes_sacral.report.figures.FIGURE_KINDS`); returns a matplotlib Figure."""
        from .report.figures import FIGURE_KINDS, figure_for
        from .report.style import house_style

        if kind not in FIGURE_KINDS:
            from .errors import BayesSacralError
            from .suggest import did_you_mean

            raise BayesSacralError(f"unknown figure kind {kind!r}{did_you_mean(kind, FIGURE_KINDS)}; allowed: {', '.join(FIGURE_KINDS)}")
        with house_style():
            return figure_for(kind, self)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the run folder (atomically; an existing run is replaced only with ``overwrite``). Returns its path."""
        from .store import check_free, write_run

        check_free(Path(path), overwrite, flag="overwrite=True")
        target = write_run(Path(path), self.idata, self.config_text, self.manifest, self.card_text, overwrite=overwrite)
        self.path = target
        return target
