"""The reanalysis of a published study, end to end: what `make reanalysis` runs for the bundled study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .serialize import to_jsonable
from .store import DEFAULT_STORE

__all__ = ["DEFAULT_REPORT_DIR", "DEFAULT_CONFIG_DIR", "run_reanalysis"]

DEFAULT_REPORT_DIR = Path("reports/published-reanalysis")
DEFAULT_CONFIG_DIR = Path("configs")


def _write_table(folder: Path, stem: str, records: list[dict]) -> None:
    (folder / f"{stem}.json").write_text(json.dumps(to_jsonable(records), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    df = pd.DataFrame(records)
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, (list, dict))).any():
            df[c] = df[c].map(lambda v: json.dumps(to_jsonable(v), ensure_ascii=False) if isinstance(v, (list, dict)) else v)
    df.to_csv(folder / f"{stem}.csv", index=False, lineterminator="\n")


def run_reanalysis(out_dir: Path = DEFAULT_REPORT_DIR, configs_dir: Path = DEFAULT_CONFIG_DIR, store: Path = DEFAULT_STORE,
                   fit: bool = True, log=print, reuse: bool = False, study=None) -> Path:
    """Data check, frequentist reproduction and every config in ``configs_dir`` fitted, written atomically to ``out_dir``.

    ``study``: the study whose published summaries are checked and reproduced (default: the bundled study); each config
    is fitted with the study its ``[data] study`` names.

    Run folders go to ``store`` (replaced: the reanalysis regenerates them from configs and seeds); the report
    folder holds only deterministic numbers (no timings), so re-running it reproduces the committed copy. With
    ``reuse``, a stored run that this code would reproduce exactly (same resolved config, seed, data hash and
    versions, see :func:`~bayes_sacral.fitting.reusable_run`) is taken as it is instead of being refitted.
    """
    from .atomic import atomic_directory
    from .config import load_configs
    from .data.integrity import findings_frame, run_checks
    from .fitting import diagnostics_line, fit_run, reusable_run
    from .stats.frequentist import reproduce_from_summary, results_frame
    from .study import load_study
    from .summarize import summarize_run

    study = study or load_study()
    sd = study.require_summary("the reanalysis")
    findings = run_checks(sd)
    repro = reproduce_from_summary(sd)
    runs = []
    if fit:
        cfgs = sorted(Path(configs_dir).glob("*.toml"))
        if not cfgs:
            from .errors import InputError, Problem

            rule = "no run configs (*.toml) in this folder" if Path(configs_dir).is_dir() else "no such folder"
            raise InputError([Problem(str(configs_dir), "--configs", str(configs_dir), rule + " (pass --no-fit to skip fitting)")])
        for cfg in cfgs:
            runs.extend(load_configs(cfg))
    fitted = []
    for run in runs:
        res = reusable_run(run, store) if reuse else None
        if res is not None:
            log(f"reused {res.path} (same config, seed, data and code)")
        else:
            res = fit_run(run, store, overwrite=True, log=log)
        log(diagnostics_line(res.manifest))
        fitted.append(res)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        ff = findings_frame(findings)
        _write_table(tmp, "integrity", ff.to_dict(orient="records"))
        _write_table(tmp, "reproduction", results_frame(repro).to_dict(orient="records"))
        if fitted:
            sums = tmp / "summaries"
            sums.mkdir()
            index = []
            for res in fitted:
                m = res.manifest
                rows = summarize_run(res)
                _write_table(sums, m["run"], rows)
                d = m["diagnostics"]
                index.append({"run": m["run"], "study": m["study"]["name"], "outcome": m["outcome"], "kind": m["model"]["kind"],
                              "options": m["model"], "prior_set": m["prior_set"],
                              "data": m["data"]["source"], "data_sha256": m["data"]["sha256"], "seed": m["seed"],
                              "draws": m["sampler"]["draws"], "chains": m["sampler"]["chains"], "status": d["status"],
                              "max_r_hat": d["max_r_hat"], "min_ess_bulk": d["min_ess_bulk"], "min_ess_tail": d["min_ess_tail"],
                              "divergences": d["divergences"], "assumptions": m["data"]["assumptions"]})
            _write_table(tmp, "runs", index)
            _write_model_checks(tmp / "model_checks", fitted, log)
            from .report.build import write_report

            card = study.card
            title = (f"Bayesian reanalysis of {card.study.title or card.name}: {card.arm_label(card.arms.treatment)} vs "
                     f"{card.arm_label(card.arms.control)}")
            write_report(fitted, tmp, title, log=log)
    counts = {s: sum(f.status == s for f in findings) for s in ("pass", "borderline", "fail")}
    log(f"integrity: {len(findings)} findings ({counts['pass']} pass, {counts['borderline']} borderline, {counts['fail']} fail)")
    log(f"reproduction: {len(repro)} tests; runs fitted: {len(fitted)}")
    log(f"wrote {out_dir}")
    return out_dir


def _write_model_checks(folder: Path, fitted, log) -> None:
    """PSIS-LOO and posterior predictive checks per patient-level run, reconstruction spread, likelihood comparisons."""
    from .checks import compare_runs, loo_table, ppc_table, spread_table

    folder.mkdir()
    loo_rows = []
    groups: dict[tuple, dict] = {}
    for res in fitted:
        m = res.manifest
        name = m["run"]
        dt = res.idata
        _write_table(folder, f"ppc--{name}", ppc_table(res).to_dict(orient="records"))
        if m.get("replicates"):
            _write_table(folder, f"spread--{name}", spread_table(dt).to_dict(orient="records"))
        ll = dt["log_likelihood"].to_dataset() if "log_likelihood" in dt.children else None
        if m["model"]["kind"] in ("score", "items") and ll is not None and len(ll.data_vars) == 1:
            loo_rows.append({"run": name, **loo_table(dt)})
            key = (m["model"]["kind"], m["data"]["sha256"], m["model"].get("route"), m["model"].get("reconstructions"),
                   m["model"].get("pre_post_correlation"), m["model"].get("reconstruction_seed"))
            groups.setdefault(key, {})[name] = dt
    if loo_rows:
        _write_table(folder, "loo", loo_rows)
    comps = []
    for runs in groups.values():
        if len(runs) > 1:
            table = compare_runs(runs)
            table.insert(0, "comparison", " vs ".join(runs))
            comps.extend(table.to_dict(orient="records"))
    if comps:
        _write_table(folder, "loo_compare", comps)
        log(f"LOO comparisons: {len(comps)} rows")
