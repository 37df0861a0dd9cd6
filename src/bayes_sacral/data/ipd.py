"""Patient-level (IPD) CSV: the documented format and its one-pass validator.

Format
------
A UTF-8 CSV file with a header row, one row per patient. Column order is free; unknown columns are an
error (nothing is silently ignored). Empty cells mean "not recorded" and are allowed only in optional
columns.

===================== ======== ==============================================================
column                required rule
===================== ======== ==============================================================
patient_id            yes      non-empty, unique
arm                   yes      ``psfs`` | ``sacroplasty``
fracture              yes      ``pathological`` | ``impending``
msts_pre, msts_post   yes      whole numbers 0-30 (MSTS 1993 total)
<item>_pre/_post      no       the six MSTS items (pain, emotional_acceptance, use_of_supports,
                               walking_ability, gait, function), whole numbers 0-5; when given,
                               all six of a time point, summing to msts_pre / msts_post
secondary_procedure   no       0 | 1
days_to_secondary     no       whole number >= 0; only when secondary_procedure = 1;
                               not after followup_days
followup_days         no       whole number >= 0
narcotic_change       no       ``decrease`` | ``stable`` | ``increase``
prior_radiotherapy    no       0 | 1
ablation              no       ``none`` | ``radiofrequency`` | ``cryoablation`` | ``microwave`` | ``other``
age                   no       years, 0-120
sex                   no       ``male`` | ``female``
cancer_type           no       free text
date_preop            no       ISO date YYYY-MM-DD of the preoperative MSTS assessment
date_procedure        no       ISO date of the procedure; not before date_preop
date_postop           no       ISO date of the postoperative MSTS assessment; not before
                               date_preop or date_procedure
===================== ======== ==============================================================
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError, Problem
from ..vocabulary import (
    ARMS,
    FRACTURES,
    MSTS_ITEM_MAX,
    MSTS_ITEMS,
    MSTS_MAX_POINTS,
    NARCOTIC_LEVELS,
)
from ._suggest import did_you_mean

__all__ = ["IPD_COLUMNS", "REQUIRED", "IPDData", "read_ipd", "parse_ipd"]

REQUIRED = ("patient_id", "arm", "fracture", "msts_pre", "msts_post")
ITEM_COLUMNS = tuple(f"{item}_{t}" for t in ("pre", "post") for item in MSTS_ITEMS)
OPTIONAL = (
    *ITEM_COLUMNS,
    "secondary_procedure", "days_to_secondary", "followup_days", "narcotic_change",
    "prior_radiotherapy", "ablation", "age", "sex", "cancer_type",
    "date_preop", "date_procedure", "date_postop",
)  # fmt: skip
IPD_COLUMNS = (*REQUIRED, *OPTIONAL)
ABLATION_LEVELS = ("none", "radiofrequency", "cryoablation", "microwave", "other")
SEX_LEVELS = ("male", "female")
_INT_RE = re.compile(r"^[+-]?\d+$")
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class IPDData:
    """A validated patient-level data set.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per patient; ``arm``/``fracture`` are ordered categoricals, integer columns are
        nullable ``Int64``, dates are ``datetime64``. Only the columns present in the file appear.
    path : str
    sha256 : str
        Hash of the file's bytes, recorded in run manifests.
    """

    frame: pd.DataFrame
    path: str
    sha256: str

    @property
    def n_patients(self) -> int:
        return len(self.frame)

    def cell_sizes(self) -> pd.DataFrame:
        """Patients per arm x fracture."""
        return pd.crosstab(self.frame["arm"], self.frame["fracture"], dropna=False)

    @property
    def has_items(self) -> bool:
        return all(c in self.frame.columns for c in ITEM_COLUMNS)


def read_ipd(path: str | Path) -> IPDData:
    """Read and validate a patient-level CSV; every problem is reported at once.

    Raises
    ------
    InputError
        With one :class:`~bayes_sacral.errors.Problem` per bad cell (file, row, column, value, rule).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(path), "file", "", f"cannot be read ({exc.strerror or exc})")]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(str(path), f"byte {exc.start}", "", "the file must be UTF-8 text")]) from exc
    return parse_ipd(text, str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse_ipd(text: str, fname: str = "<ipd>", sha256: str | None = None) -> IPDData:
    """Validate patient-level CSV text (see :func:`read_ipd`)."""
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError([Problem(fname, "line 1", "", "the file is empty; expected a header row")]) from None
    header = [h.strip() for h in header]
    seen = set()
    for h in header:
        if h in seen:
            problems.append(Problem(fname, "line 1 (header)", repr(h), "column named twice"))
        seen.add(h)
        if h not in IPD_COLUMNS:
            problems.append(
                Problem(fname, "line 1 (header)", repr(h), f"unknown column{did_you_mean(h, IPD_COLUMNS)}; allowed columns are documented in `bayes-sacral data validate --help`")
            )
    for req in REQUIRED:
        if req not in header:
            problems.append(Problem(fname, "line 1 (header)", "", f"required column '{req}' is missing"))
    for t in ("pre", "post"):
        present = [f"{i}_{t}" for i in MSTS_ITEMS if f"{i}_{t}" in header]
        if present and len(present) < len(MSTS_ITEMS):
            missing = [f"{i}_{t}" for i in MSTS_ITEMS if f"{i}_{t}" not in header]
            problems.append(
                Problem(fname, "line 1 (header)", "", f"MSTS items at '{t}' are all six or none: missing {', '.join(missing)}")
            )
    if problems:
        raise InputError(problems)

    rows: list[dict] = []
    first_row_of: dict[str, int] = {}
    prev_line = 1
    for rec_no, fields in enumerate(reader, start=1):
        line = prev_line + 1
        prev_line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        loc = f"row {rec_no} (line {line})"
        if len(fields) != len(header):
            problems.append(Problem(fname, loc, "", f"has {len(fields)} fields, the header has {len(header)}"))
            continue
        raw = {h: f.strip() for h, f in zip(header, fields, strict=True)}
        rec = _validate_record(raw, loc, fname, problems)
        pid = raw["patient_id"]
        if pid:
            if pid in first_row_of:
                problems.append(
                    Problem(fname, f"{loc}, column 'patient_id'", repr(pid), f"duplicate patient_id (first in row {first_row_of[pid]})")
                )
            else:
                first_row_of[pid] = rec_no
        rows.append(rec)
    if not rows and not problems:
        problems.append(Problem(fname, "rows", "", "the file has a header but no patients"))
    if problems:
        raise InputError(problems)

    frame = pd.DataFrame.from_records(rows, columns=[c for c in IPD_COLUMNS if c in header])
    for col in frame.columns:
        if col in ("arm",):
            frame[col] = pd.Categorical(frame[col], categories=list(ARMS))
        elif col == "fracture":
            frame[col] = pd.Categorical(frame[col], categories=list(FRACTURES))
        elif col == "narcotic_change":
            frame[col] = pd.Categorical(frame[col], categories=list(NARCOTIC_LEVELS), ordered=True)
        elif col in ("ablation", "sex"):
            frame[col] = pd.Categorical(frame[col], categories=list(ABLATION_LEVELS if col == "ablation" else SEX_LEVELS))
        elif col.startswith("date_"):
            frame[col] = pd.to_datetime(frame[col])
        elif col == "age":
            frame[col] = frame[col].astype("Float64")
        elif col in ("patient_id", "cancer_type"):
            frame[col] = frame[col].astype("string")
        else:
            frame[col] = frame[col].astype("Int64")
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode()).hexdigest()
    return IPDData(frame=frame, path=fname, sha256=sha256)


def _validate_record(raw: dict[str, str], loc: str, fname: str, problems: list[Problem]) -> dict:
    out: dict = {}

    def bad(col: str, rule: str) -> None:
        problems.append(Problem(fname, f"{loc}, column '{col}'", repr(raw[col]), rule))

    def integer(col: str, lo: int | None, hi: int | None, rule: str) -> int | None:
        v = raw.get(col, "")
        if v == "":
            if col in REQUIRED:
                problems.append(Problem(fname, f"{loc}, column '{col}'", "", f"is required and empty ({rule})"))
            return None
        if not _INT_RE.match(v):
            bad(col, f"must be a whole number ({rule})")
            return None
        iv = int(v)
        if (lo is not None and iv < lo) or (hi is not None and iv > hi):
            bad(col, f"out of range ({rule})")
            return None
        return iv

    def category(col: str, levels: tuple[str, ...]) -> str | None:
        v = raw.get(col, "")
        if v == "":
            if col in REQUIRED:
                problems.append(Problem(fname, f"{loc}, column '{col}'", "", f"is required and empty (one of {' | '.join(levels)})"))
            return None
        if v not in levels:
            bad(col, f"unknown category; allowed: {' | '.join(levels)}{did_you_mean(v, levels)}")
            return None
        return v

    def date(col: str) -> _dt.date | None:
        v = raw.get(col, "")
        if v == "":
            return None
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                raise ValueError
            return _dt.date.fromisoformat(v)
        except ValueError:
            bad(col, "must be an ISO date YYYY-MM-DD")
            return None

    pid = raw["patient_id"]
    if pid == "":
        problems.append(Problem(fname, f"{loc}, column 'patient_id'", "", "is required and empty"))
    out["patient_id"] = pid
    out["arm"] = category("arm", ARMS)
    out["fracture"] = category("fracture", FRACTURES)
    total_rule = f"integer MSTS total 0-{MSTS_MAX_POINTS}"
    out["msts_pre"] = integer("msts_pre", 0, MSTS_MAX_POINTS, total_rule)
    out["msts_post"] = integer("msts_post", 0, MSTS_MAX_POINTS, total_rule)

    for t in ("pre", "post"):
        cols = [f"{i}_{t}" for i in MSTS_ITEMS]
        if cols[0] not in raw:
            continue
        vals = [integer(c, 0, MSTS_ITEM_MAX, f"integer MSTS item 0-{MSTS_ITEM_MAX}") for c in cols]
        for c, v in zip(cols, vals, strict=True):
            out[c] = v
        filled = [raw[c] != "" for c in cols]
        if any(filled) and not all(filled):
            empty = [c for c, f in zip(cols, filled, strict=True) if not f]
            problems.append(
                Problem(fname, f"{loc}, columns {', '.join(empty)}", "''", f"MSTS items at '{t}' are all six or none for a patient")
            )
        elif all(v is not None for v in vals) and out[f"msts_{t}"] is not None:
            s = sum(vals)
            if s != out[f"msts_{t}"]:
                problems.append(
                    Problem(fname, f"{loc}, column 'msts_{t}'", repr(raw[f"msts_{t}"]),
                            f"the six items at '{t}' sum to {s}; the total must equal the sum of its items")
                )

    if "secondary_procedure" in raw:
        out["secondary_procedure"] = integer("secondary_procedure", 0, 1, "0 = none, 1 = at least one secondary procedure")
    if "followup_days" in raw:
        out["followup_days"] = integer("followup_days", 0, None, "days >= 0")
    if "days_to_secondary" in raw:
        d = integer("days_to_secondary", 0, None, "days >= 0")
        out["days_to_secondary"] = d
        if d is not None:
            sec = out.get("secondary_procedure")
            if sec == 0 or ("secondary_procedure" in raw and raw["secondary_procedure"] == ""):
                bad("days_to_secondary", "given only when secondary_procedure = 1")
            fu = out.get("followup_days")
            if fu is not None and d > fu:
                bad("days_to_secondary", f"a secondary procedure cannot come after the end of follow-up (followup_days = {fu})")
    if "narcotic_change" in raw:
        out["narcotic_change"] = category("narcotic_change", NARCOTIC_LEVELS)
    if "prior_radiotherapy" in raw:
        out["prior_radiotherapy"] = integer("prior_radiotherapy", 0, 1, "0 | 1")
    if "ablation" in raw:
        out["ablation"] = category("ablation", ABLATION_LEVELS)
    if "sex" in raw:
        out["sex"] = category("sex", SEX_LEVELS)
    if "cancer_type" in raw:
        out["cancer_type"] = raw["cancer_type"] or None
    if "age" in raw:
        v = raw["age"]
        if v == "":
            out["age"] = None
        elif not _NUM_RE.match(v):
            bad("age", "must be a number of years")
            out["age"] = None
        elif not 0 <= float(v) <= 120:
            bad("age", "out of range (years 0-120)")
            out["age"] = None
        else:
            out["age"] = float(v)
    dates = {c: date(c) for c in ("date_preop", "date_procedure", "date_postop") if c in raw}
    out.update({c: (d.isoformat() if d else None) for c, d in dates.items()})
    pre, proc, post = dates.get("date_preop"), dates.get("date_procedure"), dates.get("date_postop")
    if pre and post and post < pre:
        bad("date_postop", f"the postoperative assessment is dated before the preoperative one ({pre.isoformat()})")
    if pre and proc and proc < pre:
        bad("date_procedure", f"the procedure is dated before the preoperative assessment ({pre.isoformat()})")
    if proc and post and post < proc:
        bad("date_postop", f"the postoperative assessment is dated before the procedure ({proc.isoformat()})")
    return out
