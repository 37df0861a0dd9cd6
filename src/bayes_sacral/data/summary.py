"""The summary-data format: every number a paper reports, one CSV row each, with its rounding and provenance.

Format (``bayes-sacral-summary/1``)
-----------------------------------
A UTF-8 CSV file. Lines before the header that start with ``#`` carry metadata as ``# key: value``;
``# format: bayes-sacral-summary/1`` is required, ``study``, ``citation``, ``doi``, ``transcription``
and ``note`` are optional. The header names these columns (order free, none other allowed):

========== ======== ====================================================================================
column     required meaning
========== ======== ====================================================================================
id         yes      unique identifier of the number (letters, digits, ``._-``)
quantity   yes      what is measured (see :data:`QUANTITIES`)
arm        yes      ``psfs`` | ``sacroplasty`` | ``all``
fracture   yes      ``pathological`` | ``impending`` | ``all``
time       MSTS     ``pre`` | ``post`` | ``change`` for ``msts_*`` quantities; empty otherwise
category   some     level of a categorical quantity (``decrease``, ``male``, ...)
statistic  yes      ``count`` ``percent`` ``mean`` ``sd`` ``median`` ``min`` ``max`` ``value`` ``p_value``
                    ``mentioned`` (named without a number)
relation   no       ``=`` (default) or ``<``, ``>``, ``<=``, ``>=`` (p-values printed as ``>0.05``)
value      yes      the number as reported (after repairing transcription damage); empty for ``mentioned``
decimals   no       decimals reported; derived from ``value`` when empty, must agree when given
unit       yes      see :data:`UNITS`; MSTS: ``points`` (0-30 total, 0-5 item) or ``percent_of_max`` (0-100)
n          stats    the number of patients (or events) the statistic summarises
source     yes      table or section where it is printed (``Table 2``, ``Results``)
label      yes      row/column label or sentence as printed
printed    no       the text as it appears in the source when it differs from ``value``
comparison no       for p-values: what was compared, as stated
note       no       anything else (assumptions, inferences)
========== ======== ====================================================================================

A number reported twice (a table and the text) is two rows; the first in file order is canonical and
``bayes-sacral data check`` tests that the others agree with it within rounding.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError, Problem
from ..vocabulary import (
    ARMS,
    FRACTURES,
    MSTS_DOMAINS,
    MSTS_ITEM_MAX,
    MSTS_MAX_POINTS,
    NARCOTIC_LEVELS,
    TIMES,
)
from ._suggest import did_you_mean

__all__ = [
    "FORMAT_ID",
    "COLUMNS",
    "QUANTITIES",
    "UNITS",
    "STATISTICS",
    "SummaryData",
    "read_summary",
]

FORMAT_ID = "bayes-sacral-summary/1"
COLUMNS = (
    "id", "quantity", "arm", "fracture", "time", "category", "statistic", "relation", "value",
    "decimals", "unit", "n", "source", "label", "printed", "comparison", "note",
)  # fmt: skip
REQUIRED_COLUMNS = ("id", "quantity", "arm", "fracture", "statistic", "value", "unit", "source", "label")
META_KEYS = ("format", "study", "citation", "doi", "transcription", "note")

_MSTS_QUANTITIES = tuple(f"msts_{d}" for d in MSTS_DOMAINS)
#: quantity -> (allowed units, categories (None = free snake_case, () = must be empty))
QUANTITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "patients": (("patients",), ()),
    **{q: (("points", "percent_of_max", "probability"), ()) for q in _MSTS_QUANTITIES},
    "secondary_procedure": (("patients", "percent"), ()),
    "secondary_procedure_days": (("days", "weeks", "months"), ()),
    "secondary_procedure_kind": (("patients", "percent", "none"), None),
    "narcotic_change": (("patients", "percent"), NARCOTIC_LEVELS),
    "complication": (("patients", "percent"), None),
    "complication_time": (("days", "weeks", "months"), None),
    "followup": (("days", "weeks", "months"), ()),
    "age": (("years",), ()),
    "sex": (("patients", "percent"), ("male", "female")),
    "cancer_type": (("patients", "percent"), None),
    "prior_radiotherapy": (("patients", "percent"), ()),
    "ablation": (("patients", "percent"), None),
}
UNITS = ("points", "percent_of_max", "percent", "patients", "years", "days", "weeks", "months", "probability", "none")
STATISTICS = ("count", "percent", "mean", "sd", "median", "min", "max", "value", "p_value", "mentioned")
RELATIONS = ("=", "<", ">", "<=", ">=")
#: statistics that describe a group of n patients, so n is required
_NEEDS_N = ("percent", "mean", "sd", "median", "p_value")
_STAT_UNITS = {
    "count": ("patients",),
    "percent": ("percent",),
    "p_value": ("probability",),
    "mentioned": ("none",),
}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER_RE = re.compile(r"^-?(\d+)(\.\d+)?$")


@dataclass(frozen=True)
class SummaryData:
    """A validated summary-data file.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per reported number, in file order. ``value`` is a float (NaN for ``mentioned``),
        ``value_text`` the exact text, ``decimals`` and ``n`` nullable integers, ``line`` the file line.
    meta : dict
        The ``# key: value`` metadata.
    path : str
        Where it was read from (for messages and provenance).
    sha256 : str
        Hash of the file's bytes (recorded in run manifests).
    """

    frame: pd.DataFrame
    meta: dict[str, str]
    path: str
    sha256: str
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ lookups
    def select(self, **where) -> pd.DataFrame:
        """Rows matching every ``column=value`` given (``time=""`` selects empty)."""
        df = self.frame
        mask = np.ones(len(df), dtype=bool)
        for col, val in where.items():
            mask &= (df[col] == val).fillna(False).to_numpy(dtype=bool)
        return df[mask]

    def canonical(self, **where) -> pd.Series | None:
        """The canonical (first in file order) row matching ``where``, or None."""
        rows = self.select(**where)
        return None if rows.empty else rows.iloc[0]

    def cell_sizes(self) -> xr.DataArray:
        """Patients per arm x fracture cell, from ``patients`` count rows (NaN where not reported)."""
        out = xr.DataArray(
            np.full((len(ARMS), len(FRACTURES)), np.nan),
            coords={"arm": list(ARMS), "fracture": list(FRACTURES)},
            dims=("arm", "fracture"),
            name="n",
        )
        for arm in ARMS:
            for frac in FRACTURES:
                row = self.canonical(quantity="patients", arm=arm, fracture=frac, statistic="count")
                if row is not None:
                    out.loc[arm, frac] = row["value"]
        return out

    def to_dataset(self) -> xr.Dataset:
        """The study's design-level numbers as an :class:`xarray.Dataset`.

        Dims: ``arm``, ``fracture``, ``domain`` (total + the six MSTS items), ``time`` (pre, post),
        ``narcotic_change``. Variables carry NaN where the source reports nothing; each reported value's
        decimals sit in a ``*_decimals`` variable (-1 where absent). Counts not printed are recovered
        only where the arithmetic is unique (a percent of a known n, or the remaining category of a
        fully accounted cell); ``attrs['inferred']`` lists each such step.
        """
        if "dataset" in self._cache:
            return self._cache["dataset"].copy(deep=True)
        ds = _build_dataset(self)
        self._cache["dataset"] = ds
        return ds.copy(deep=True)


# ---------------------------------------------------------------------- reading
def read_summary(path: str | Path) -> SummaryData:
    """Read and validate a summary-data CSV.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    SummaryData

    Raises
    ------
    InputError
        Every problem found, each naming the file, row/line, column, value and rule.
    """
    path = Path(path)
    fname = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(fname, "file", "", f"cannot be read ({exc.strerror or exc})")]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(fname, f"byte {exc.start}", "", "the file must be UTF-8 text")]) from exc
    return parse_summary(text, fname, sha256=hashlib.sha256(raw).hexdigest())


def parse_summary(text: str, fname: str = "<summary>", sha256: str | None = None) -> SummaryData:
    """Validate summary-data CSV text (see :func:`read_summary`)."""
    problems: list[Problem] = []
    lines = text.splitlines()
    meta: dict[str, str] = {}
    header_idx = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if ":" not in body:
                problems.append(Problem(fname, f"line {i + 1}", repr(line), "a metadata line reads '# key: value'"))
                continue
            key, val = (s.strip() for s in body.split(":", 1))
            if key not in META_KEYS:
                problems.append(
                    Problem(fname, f"line {i + 1}", repr(key), f"unknown metadata key; allowed: {', '.join(META_KEYS)}{did_you_mean(key, META_KEYS)}")
                )
            meta[key] = val
            continue
        header_idx = i
        break
    if meta.get("format") != FORMAT_ID:
        problems.append(
            Problem(fname, "metadata 'format'", repr(meta.get("format", "")), f"the file must start with '# format: {FORMAT_ID}'")
        )
    if header_idx is None:
        problems.append(Problem(fname, "header", "", "no header row found (expected the column names)"))
        raise InputError(problems)

    reader = csv.reader(lines[header_idx:])
    header = [h.strip() for h in next(reader)]
    seen: set[str] = set()
    for h in header:
        if h in seen:
            problems.append(Problem(fname, f"line {header_idx + 1} (header)", repr(h), "column named twice"))
        seen.add(h)
        if h not in COLUMNS:
            problems.append(
                Problem(fname, f"line {header_idx + 1} (header)", repr(h), f"unknown column; allowed: {', '.join(COLUMNS)}{did_you_mean(h, COLUMNS)}")
            )
    for req in REQUIRED_COLUMNS:
        if req not in header:
            problems.append(Problem(fname, f"line {header_idx + 1} (header)", "", f"required column '{req}' is missing"))
    if problems:
        raise InputError(problems)

    records = []
    ids: dict[str, int] = {}
    for rec_no, fields in enumerate(reader, start=1):
        line_no = header_idx + 1 + rec_no
        if not fields or all(not f.strip() for f in fields):
            continue
        if fields[0].lstrip().startswith("#"):
            continue
        if len(fields) != len(header):
            problems.append(
                Problem(fname, f"row {rec_no} (line {line_no})", "", f"has {len(fields)} fields, the header has {len(header)}")
            )
            continue
        row = {c: "" for c in COLUMNS}
        row.update({h: f for h, f in zip(header, fields, strict=True)})
        rid = row["id"].strip()
        if rid and rid in ids:
            problems.append(
                Problem(fname, f"row {rec_no} (line {line_no}), column 'id'", repr(rid), f"duplicate id (first used in row {ids[rid]})")
            )
        ids.setdefault(rid, rec_no)
        rec = _validate_row(row, rec_no, line_no, fname, problems)
        if rec is not None:
            records.append(rec)
    if not records and not problems:
        problems.append(Problem(fname, "rows", "", "the file has a header but no data rows"))
    if problems:
        raise InputError(problems)

    frame = pd.DataFrame.from_records(records)
    frame["decimals"] = frame["decimals"].astype("Int64")
    frame["n"] = frame["n"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode()).hexdigest()
    return SummaryData(frame=frame, meta=meta, path=fname, sha256=sha256)


def _validate_row(row: dict, rec_no: int, line_no: int, fname: str, problems: list[Problem]) -> dict | None:
    n_before = len(problems)

    def bad(col: str, rule: str) -> None:
        problems.append(Problem(fname, f"row {rec_no} (line {line_no}), column '{col}'", repr(row[col]), rule))

    r = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
    for col in REQUIRED_COLUMNS:
        if col != "value" and r[col] == "":
            problems.append(Problem(fname, f"row {rec_no} (line {line_no}), column '{col}'", "", "is required and empty"))
    if r["id"] and not _ID_RE.match(r["id"]):
        bad("id", "an id uses letters, digits, '.', '_' and '-' only")
    q = r["quantity"]
    if q and q not in QUANTITIES:
        bad("quantity", f"unknown quantity; allowed: {', '.join(QUANTITIES)}{did_you_mean(q, QUANTITIES)}")
    if r["arm"] and r["arm"] not in (*ARMS, "all"):
        bad("arm", f"must be one of {', '.join((*ARMS, 'all'))}{did_you_mean(r['arm'], (*ARMS, 'all'))}")
    if r["fracture"] and r["fracture"] not in (*FRACTURES, "all"):
        bad("fracture", f"must be one of {', '.join((*FRACTURES, 'all'))}{did_you_mean(r['fracture'], (*FRACTURES, 'all'))}")
    stat = r["statistic"]
    if stat and stat not in STATISTICS:
        bad("statistic", f"must be one of {', '.join(STATISTICS)}{did_you_mean(stat, STATISTICS)}")
    unit = r["unit"]
    if unit and unit not in UNITS:
        bad("unit", f"must be one of {', '.join(UNITS)}{did_you_mean(unit, UNITS)}")
    if r["relation"] and r["relation"] not in RELATIONS:
        bad("relation", f"must be empty or one of {' '.join(RELATIONS)}")
    if r["relation"] not in ("", "=") and stat != "p_value":
        bad("relation", "only p-values may be reported as a bound ('>0.05'); use '=' or leave empty")

    is_msts = q in _MSTS_QUANTITIES
    if is_msts:
        if r["time"] not in (*TIMES, "change"):
            bad("time", "MSTS quantities need time = pre | post | change")
    elif r["time"] and q in QUANTITIES:
        bad("time", f"time is only used for MSTS quantities; leave it empty for '{q}'")

    if q in QUANTITIES:
        units, cats = QUANTITIES[q]
        if unit in UNITS and unit not in units and stat not in _STAT_UNITS:
            bad("unit", f"quantity '{q}' is reported in {', '.join(units)}")
        if cats == () and r["category"]:
            bad("category", f"quantity '{q}' has no categories; leave it empty")
        elif cats is None:
            if not r["category"]:
                bad("category", f"quantity '{q}' needs a category (snake_case, e.g. screw_backout)")
            elif not _CATEGORY_RE.match(r["category"]):
                bad("category", "a category is snake_case: lower-case letters, digits and '_'")
        elif cats and r["category"] not in cats:
            bad("category", f"quantity '{q}' has categories {', '.join(cats)}{did_you_mean(r['category'], cats)}")
    if stat in _STAT_UNITS and unit in UNITS and unit not in _STAT_UNITS[stat]:
        bad("unit", f"statistic '{stat}' is reported in unit {' or '.join(_STAT_UNITS[stat])}")

    # value and decimals
    value = None
    decimals = None
    if stat == "mentioned":
        if r["value"]:
            bad("value", "statistic 'mentioned' (named without a number) takes no value")
    else:
        m = _NUMBER_RE.match(r["value"])
        if not r["value"]:
            problems.append(Problem(fname, f"row {rec_no} (line {line_no}), column 'value'", "", "is required and empty"))
        elif not m:
            bad("value", "must be a plain decimal number such as 7.3, 28.0 or 0.005 (no %, <, > or thousands separators)")
        else:
            try:
                value = Decimal(r["value"])
            except InvalidOperation:  # pragma: no cover - regex already guards
                bad("value", "must be a decimal number")
            decimals = len(m.group(2)) - 1 if m.group(2) else 0
    if r["decimals"]:
        if not re.fullmatch(r"\d+", r["decimals"]):
            bad("decimals", "must be a whole number >= 0")
        elif decimals is not None and int(r["decimals"]) != decimals:
            bad("decimals", f"disagrees with value {r['value']!r}, which has {decimals} decimal(s)")

    n = None
    if r["n"]:
        if not re.fullmatch(r"\d+", r["n"]) or int(r["n"]) < 1:
            bad("n", "must be a whole number >= 1")
        else:
            n = int(r["n"])
    elif stat in _NEEDS_N or (stat == "count" and q != "patients"):
        problems.append(
            Problem(fname, f"row {rec_no} (line {line_no}), column 'n'", "", f"statistic '{stat}' of '{q}' needs n (the patients it summarises)")
        )

    if value is not None:
        v = float(value)
        if stat == "count":
            if decimals != 0:
                bad("value", "a count is a whole number")
            elif v < 0:
                bad("value", "a count cannot be negative")
            elif n is not None and v > n:
                bad("value", f"a count cannot exceed n = {n}")
        if stat == "percent" and not 0 <= v <= 100:
            bad("value", "a percent lies in 0-100")
        if stat == "p_value" and not 0 <= v <= 1:
            bad("value", "a p-value lies in 0-1")
        if stat == "sd" and v < 0:
            bad("value", "an SD cannot be negative")
        if is_msts and stat in ("mean", "median", "min", "max", "value") and unit in ("points", "percent_of_max"):
            top = (MSTS_MAX_POINTS if q == "msts_total" else MSTS_ITEM_MAX) if unit == "points" else 100
            lo = -top if r["time"] == "change" else 0
            if not lo <= v <= top:
                bad("value", f"{q} ({r['time'] or 'level'}) in {unit} lies in {lo}-{top}")
        if is_msts and stat == "sd" and unit in ("points", "percent_of_max"):
            # A sample SD of values in [lo, hi] is at most (hi - lo)/2 * sqrt(n/(n-1)) (largest at n = 2).
            top = (MSTS_MAX_POINTS if q == "msts_total" else MSTS_ITEM_MAX) if unit == "points" else 100
            span = 2 * top if r["time"] == "change" else top
            m = n if n is not None and n >= 2 else 2
            limit = span / 2 * (m / (m - 1)) ** 0.5
            if v - 0.5 * 10.0 ** -(decimals or 0) > limit + 1e-12:  # the rounding interval must reach the bound
                bad("value", f"an SD of {q} ({r['time'] or 'level'}) in {unit} cannot exceed {limit:.4g} for n = {m} values spanning {span}")
        if is_msts and stat not in ("p_value",) and unit == "probability":
            bad("unit", "unit 'probability' is for p-values")
        if stat in ("mean", "median", "min", "max", "value") and q in ("age", "followup", "secondary_procedure_days", "complication_time") and v < 0:
            bad("value", f"{q} cannot be negative")

    if len(problems) > n_before:
        return None
    return {
        **{c: r[c] for c in COLUMNS if c not in ("value", "decimals", "n", "relation")},
        "relation": r["relation"] or "=",
        "value": float(value) if value is not None else np.nan,
        "value_text": r["value"],
        "decimals": decimals,
        "n": n,
        "line": line_no,
    }


# ---------------------------------------------------------------------- dataset
def _build_dataset(sd: SummaryData) -> xr.Dataset:
    arms, fracs, doms = list(ARMS), list(FRACTURES), list(MSTS_DOMAINS)
    shape_c = (len(arms), len(fracs))
    inferred: list[str] = []

    def grid(shape, fill=np.nan, dtype=float):
        return np.full(shape, fill, dtype=dtype)

    n = sd.cell_sizes().values
    msts = grid((*shape_c, len(doms), len(TIMES)))
    msts_dec = grid(msts.shape, -1, int)
    msts_p = grid((*shape_c, len(doms)))
    chg_mean = grid(shape_c)
    chg_sd = grid(shape_c)
    chg_mean_dec = grid(shape_c, -1, int)
    chg_sd_dec = grid(shape_c, -1, int)
    chg_unit = grid(shape_c, "", object)
    secondary = grid(shape_c)
    narc = grid((*shape_c, len(NARCOTIC_LEVELS)))
    compl = grid(shape_c)

    for ia, arm in enumerate(arms):
        for jf, frac in enumerate(fracs):
            for kd, dom in enumerate(doms):
                q = f"msts_{dom}"
                for lt, time in enumerate(TIMES):
                    row = sd.canonical(quantity=q, arm=arm, fracture=frac, time=time, statistic="mean", unit="points")
                    if row is not None:
                        msts[ia, jf, kd, lt] = row["value"]
                        msts_dec[ia, jf, kd, lt] = row["decimals"]
                p = sd.canonical(quantity=q, arm=arm, fracture=frac, time="change", statistic="p_value")
                if p is not None:
                    msts_p[ia, jf, kd] = p["value"]
            for stat, target, dec in (("mean", chg_mean, chg_mean_dec), ("sd", chg_sd, chg_sd_dec)):
                row = sd.canonical(quantity="msts_total", arm=arm, fracture=frac, time="change", statistic=stat)
                if row is not None:
                    factor = MSTS_MAX_POINTS / 100.0 if row["unit"] == "percent_of_max" else 1.0
                    target[ia, jf] = row["value"] * factor
                    dec[ia, jf] = row["decimals"]
                    chg_unit[ia, jf] = row["unit"]
            cell_n = n[ia, jf]
            secondary[ia, jf] = _count(sd, "secondary_procedure", arm, frac, "", cell_n, inferred)
            compl[ia, jf] = _count_any_category(sd, "complication", arm, frac, cell_n)
            counts = [_count(sd, "narcotic_change", arm, frac, lev, cell_n, inferred) for lev in NARCOTIC_LEVELS]
            missing = [i for i, c in enumerate(counts) if np.isnan(c)]
            if len(missing) == 1 and not np.isnan(cell_n):
                rest = cell_n - np.nansum(counts)
                if rest >= 0:
                    counts[missing[0]] = rest
                    inferred.append(
                        f"narcotic_change[{arm}, {frac}, {NARCOTIC_LEVELS[missing[0]]}] = {int(rest)}: "
                        f"the other categories account for {int(cell_n - rest)} of n = {int(cell_n)}"
                    )
            narc[ia, jf] = counts
    if not np.isnan(compl).all():
        # a study-wide complication count that equals the attributed ones implies zero elsewhere
        total = sd.canonical(quantity="complication", arm="all", fracture="all", statistic="count")
        if total is not None and np.nansum(compl) == total["value"]:
            for ia, jf in zip(*np.where(np.isnan(compl)), strict=True):
                compl[ia, jf] = 0
                inferred.append(
                    f"complications[{arms[ia]}, {fracs[jf]}] = 0: the study-wide count {int(total['value'])} is attributed elsewhere"
                )

    ds = xr.Dataset(
        {
            "n": (("arm", "fracture"), n, {"long_name": "patients per cell"}),
            "msts_mean": (("arm", "fracture", "domain", "time"), msts, {"units": "MSTS points", "long_name": "mean MSTS score"}),
            "msts_mean_decimals": (("arm", "fracture", "domain", "time"), msts_dec, {"long_name": "decimals reported (-1: not reported)"}),
            "msts_p_value": (("arm", "fracture", "domain"), msts_p, {"long_name": "printed P value (comparison as stated in the source)"}),
            "msts_change_mean": (("arm", "fracture"), chg_mean, {"units": "MSTS points", "long_name": "mean change in the MSTS total"}),
            "msts_change_sd": (("arm", "fracture"), chg_sd, {"units": "MSTS points", "long_name": "SD of the change in the MSTS total"}),
            "msts_change_mean_decimals": (("arm", "fracture"), chg_mean_dec, {"long_name": "decimals reported, in the reported unit"}),
            "msts_change_sd_decimals": (("arm", "fracture"), chg_sd_dec, {"long_name": "decimals reported, in the reported unit"}),
            "msts_change_reported_unit": (("arm", "fracture"), chg_unit.astype(str)),
            "secondary_procedures": (("arm", "fracture"), secondary, {"long_name": "patients with a secondary procedure"}),
            "complications": (("arm", "fracture"), compl, {"long_name": "patients with a procedural complication"}),
            "narcotic_counts": (("arm", "fracture", "narcotic_change"), narc, {"long_name": "patients by change in narcotic use"}),
        },
        coords={"arm": arms, "fracture": fracs, "domain": doms, "time": list(TIMES), "narcotic_change": list(NARCOTIC_LEVELS)},
        attrs={
            "study": sd.meta.get("study", ""),
            "citation": sd.meta.get("citation", ""),
            "source_file": sd.path,
            "source_sha256": sd.sha256,
            "inferred": "\n".join(inferred),
        },
    )
    return ds


def _count(sd: SummaryData, quantity: str, arm: str, frac: str, category: str, cell_n: float, inferred: list[str]) -> float:
    row = sd.canonical(quantity=quantity, arm=arm, fracture=frac, category=category, statistic="count")
    if row is not None:
        return float(row["value"])
    pct = sd.canonical(quantity=quantity, arm=arm, fracture=frac, category=category, statistic="percent")
    if pct is None:
        return np.nan
    n = int(pct["n"])
    half = 0.5 * 10.0 ** (-int(pct["decimals"]))
    candidates = [k for k in range(n + 1) if abs(100.0 * k / n - pct["value"]) <= half + 1e-9]
    if len(candidates) == 1:
        label = f"{quantity}[{arm}, {frac}{', ' + category if category else ''}]"
        inferred.append(f"{label} = {candidates[0]}: the only count of {n} that rounds to {pct['value_text']}%")
        return float(candidates[0])
    return np.nan


def _count_any_category(sd: SummaryData, quantity: str, arm: str, frac: str, cell_n: float) -> float:
    rows = sd.select(quantity=quantity, arm=arm, fracture=frac, statistic="count")
    if rows.empty:
        return np.nan
    # one canonical (first) row per category: a number reported twice is not two events
    return float(rows.drop_duplicates("category")["value"].sum())
