"""The library API: fit a run config to a study's data in memory, and design a follow-up trial."""

from __future__ import annotations

import copy
from pathlib import Path

__all__ = ["fit", "design"]


def _data_and_study(data, study):
    """(StudyData or None, Study or None, source) from what the caller passed."""
    import pandas as pd

    from .data.ipd import IPDData
    from .data.source import StudyData
    from .data.summary import SummaryData
    from .errors import InputError, Problem
    from .study import Study, load_study

    if study is not None:
        study = load_study(study)
    if data is None:
        return None, study, None
    if isinstance(data, Study):
        return StudyData.from_summary(data, data.require_summary("fitting a study's published summaries"), published=True), data, "published"
    if isinstance(data, StudyData):
        return data, data.study, data.source
    if isinstance(data, IPDData):
        st = study or Study(data.card)
        return StudyData.from_ipd(st, data), st, "ipd"
    if isinstance(data, SummaryData):
        st = study or Study(data.card)
        return StudyData.from_summary(st, data), st, "summary"
    if isinstance(data, pd.DataFrame):
        st = study or load_study()
        return StudyData.from_ipd(st, st.read_ipd(data)), st, "ipd"
    raise InputError([Problem("<data>", "data", type(data).__name__, "pass a Study (its published summaries), validated patient-level "
                              "data (study.read_ipd), summary data (study.read_summary), a pandas DataFrame, or nothing")])


def fit(config, data=None, *, study=None, out: str | Path | None = None, overwrite: bool = False, log=None):
    """Fit a run config to a study's data; in memory unless ``out`` is given.

    Parameters
    ----------
    config : dict, str or Path
        A run config as a dict (the TOML tables as nested dicts) or a TOML file. ``[sweep]`` expands to several runs.
    data : Study, IPDData, SummaryData, pandas.DataFrame or None
        A :class:`~bayes_sacral.study.Study` (its published summaries), validated patient-level data
        (``study.read_ipd(...)``), summary data (``study.read_summary(...)``), a DataFrame (validated against ``study``),
        or None to use the config's own ``[data]``.
    study : str, Path or Study, optional
        The study card, when ``data`` does not carry one (a DataFrame) or the config names none.
    out : str or Path, optional
        A run store folder: each run is also written to ``out/<run.name>`` (as ``bayes-sacral fit --out`` does).
    overwrite : bool
        Replace existing run folders in ``out``.
    log : callable, optional
        Called with short progress messages.

    Returns
    -------
    Run or list of Run
        One :class:`~bayes_sacral.run.Run` per run (a list when the config has a sweep).

    Raises
    ------
    InputError
        Every problem of the config or the data (key path / row, column, value, rule).

    Examples
    --------
    >>> import bayes_sacral as bs
    >>> run = bs.fit({"run": {"name": "demo", "seed": 1}, "model": {"kind": "events", "outcome": "secondary_procedure"},
    ...               "sampler": {"draws": 200, "tune": 200, "chains": 2, "prior_draws": 0}}, data=bs.load_study())
    >>> first = run.card.stratum_levels[0]
    >>> bool(0 <= run.summary().set_index("name").loc[f"risk_difference[{first}]", "prob_benefit"] <= 1)
    True
    """
    from .gcpause import paused

    with paused():  # imports and graph building allocate millions of long-lived objects (see gcpause)
        return _fit(config, data, study, out, overwrite, log)


def _fit(config, data, study, out, overwrite, log):
    from .config import ResolvedRun, expand, read_with_overrides
    from .fitting import fit_resolved, fit_run

    sdata, st, source = _data_and_study(data, study)
    if isinstance(config, ResolvedRun):
        runs = [config]
    else:
        if isinstance(config, dict):
            doc, fname, base, over = copy.deepcopy(config), "<config>", None, {}
        else:
            path = Path(config)
            doc, over = read_with_overrides(path, [])
            fname, base = str(path), path.parent
        if source is not None:
            d = doc.setdefault("data", {})
            if isinstance(d, dict):
                d["source"] = source
                d.pop("path", None)
        runs = expand(doc, fname, over, base_dir=base, study=st, data_in_memory=sdata is not None)
    if out is not None:
        from .store import check_targets

        check_targets(Path(out), [r.config.run.name for r in runs], overwrite, "out")
    results = []
    for r in runs:
        if out is not None:
            results.append(fit_run(r, Path(out), overwrite=overwrite, log=log, data=sdata))
        else:
            results.append(fit_resolved(r, sdata, log))
    return results[0] if len(results) == 1 else results


def design(config, *, study=None, out: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
           resume: bool = False, log=None):
    """Operating characteristics of a follow-up trial: P(success) by sample size and scenario, as an xarray Dataset.

    Parameters
    ----------
    config : dict, str or Path
        A design config (see ``bayes-sacral design --help``).
    study : str, Path or Study, optional
        The study card whose arms, strata and outcomes the design uses (default: the one the config names, else the
        bundled study).
    out : str or Path, optional
        Also write the design's outputs (design.nc, design.csv, figures, protocol.md) to this folder.
    workers, scheduler, resume
        Local worker processes, a Dask scheduler address (or "local"), and resuming an interrupted run in ``out``.

    Returns
    -------
    xarray.Dataset
        ``success_probability`` and its ``mcse`` by scenario and sample size, with expected sample sizes and stopping
        probabilities per interim look.

    Examples
    --------
    >>> import bayes_sacral as bs
    >>> effects = {level: 4.0 for level in bs.load_study().card.stratum_levels}
    >>> ds = bs.design({"design": {"name": "d", "seed": 1, "endpoint": "msts", "sample_sizes": [60, 100]},
    ...                 "truth": {"msts": {"treatment_effect": effects, "sigma": 5.0}}})
    >>> bool(ds["success_probability"].sel(scenario="design").diff("sample_size").item() > 0)
    True
    """
    from .design.config import design_from_doc, load_design
    from .design.runner import run_design

    st = None
    if study is not None:
        from .study import load_study

        st = load_study(study)
    cfg = design_from_doc(copy.deepcopy(config), "<design config>", study=st) if isinstance(config, dict) else load_design(config, study=st)
    return run_design(cfg, Path(out) if out is not None else None, scheduler=scheduler, resume=resume, workers=workers, log=log)
