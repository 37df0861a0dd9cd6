"""The reanalysis of the published study, end to end: what `make reanalysis` runs."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_directory
from .data.integrity import findings_frame, run_checks
from .data.published import load_published
from .serialize import to_jsonable
from .stats.frequentist import reproduce_from_summary, results_frame

__all__ = ["DEFAULT_REPORT_DIR", "run_reanalysis"]

DEFAULT_REPORT_DIR = Path("reports/published-reanalysis")


def run_reanalysis(out_dir: Path = DEFAULT_REPORT_DIR, log=print) -> Path:
    """Data check and frequentist reproduction of the published study, written atomically to ``out_dir``."""
    sd = load_published()
    findings = run_checks(sd)
    repro = reproduce_from_summary(sd)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        ff = findings_frame(findings)
        (tmp / "integrity.json").write_text(json.dumps(to_jsonable([f.to_dict() for f in findings]), indent=2, ensure_ascii=False) + "\n")
        ff.assign(numbers=ff["numbers"].map(lambda d: json.dumps(to_jsonable(d))), ids=ff["ids"].map(" ".join)).to_csv(
            tmp / "integrity.csv", index=False, lineterminator="\n")
        rf = results_frame(repro)
        (tmp / "reproduction.json").write_text(json.dumps(to_jsonable(rf.to_dict(orient="records")), indent=2, ensure_ascii=False) + "\n")
        rf.to_csv(tmp / "reproduction.csv", index=False, lineterminator="\n")
    counts = {s: sum(f.status == s for f in findings) for s in ("pass", "borderline", "fail")}
    log(f"integrity: {len(findings)} findings ({counts['pass']} pass, {counts['borderline']} borderline, {counts['fail']} fail)")
    log(f"reproduction: {len(repro)} tests")
    log(f"wrote {out_dir}")
    return out_dir
