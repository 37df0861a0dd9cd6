"""The summary-data format: every number a paper reports, one CSV row each, with its rounding and provenance.

Format (``bayes-sacral-summary/1``)
-----------------------------------
A UTF-8 CSV file read against a study card. Lines before the header that start with ``#`` carry metadata as
``# key: value``; ``# format: bayes-sacral-summary/1`` is required, ``study``, ``citation``, ``doi``,
``transcription`` and ``note`` are optional. The header names these columns (order free, none other allowed):

============ ======== ==================================================================================
column       required meaning
============ ======== ==================================================================================
id           yes      unique identifier of the number (letters, digits, ``._-``)
quantity     yes      what is measured (see below)
arm          yes      one of the card's arms, or ``all``
<strata>     strata   the card's stratification column (e.g. ``fracture``): a level, or ``all``; absent when the
                      study is unstratified
time         scores   ``pre`` | ``post`` | ``change`` for score quantities; empty otherwise
category     some     level of a categorical quantity
statistic    yes      ``count`` ``percent`` ``mean`` ``sd`` ``median`` ``min`` ``max`` ``value`` ``p_value``
                      ``mentioned`` (named without a number)
relation     no       ``=`` (default) or ``<``, ``>``, ``<=``, ``>=`` (p-values printed as ``>0.05``)
value        yes      the number as reported (after repairing transcription damage); empty for ``mentioned``
decimals     no       decimals reported; derived from ``value`` when empty, must agree when given
unit         yes      see :data:`UNITS`; scores: ``points`` or ``percent_of_max`` (percent of the scale's range)
n            stats    the number of patients (or events) the statistic summarises
source       yes      table or section where it is printed (``Table 2``, ``Results``)
label        yes      row/column label or sentence as printed
printed      no       the text as it appears in the source when it differs from ``value``
comparison   no       for p-values: what was compared, as stated
note         no       anything else (assumptions, inferences)
============ ======== ==================================================================================

Quantities come from the card: ``patients``; for a score outcome ``<name>_total`` and ``<name>_<item>``; for an event
outcome ``<name>`` (categories optional: kinds of event), ``<name>_time`` and ``<name>_kind``; for an ordinal outcome
``<name>`` with its levels as categories; ``age``, ``sex``, ``followup`` and the card's covariates.

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

from ..errors import InputError, Problem, cap_problems
from ..memo import Memo, digest
from ..study.card import UNSTRATIFIED_LEVEL, StudyCard
from ..suggest import did_you_mean
from .files import line_excerpt, read_data_text

__all__ = ["FORMAT_ID", "UNITS", "STATISTICS", "DURATION_UNITS", "QuantitySpec", "quantity_specs", "SummaryData", "read_summary",
           "parse_summary", "score_cells", "event_counts", "ordinal_counts"]

FORMAT_ID = "bayes-sacral-summary/1"
BASE_COLUMNS = ("id", "quantity", "arm", "time", "category", "statistic", "relation", "value", "decimals", "unit", "n", "source",
                "label", "printed", "comparison", "note")
REQUIRED_COLUMNS = ("id", "quantity", "arm", "statistic", "value", "unit", "source", "label")
META_KEYS = ("format", "study", "citation", "doi", "transcription", "note")
UNITS = ("points", "percent_of_max", "percent", "patients", "years", "days", "weeks", "months", "probability", "none")
DURATION_UNITS = ("days", "weeks", "months", "years")
STATISTICS = ("count", "percent", "mean", "sd", "median", "min", "max", "value", "p_value", "mentioned")
TIMES = ("pre", "post")
RELATIONS = ("=", "<", ">", "<=", ">=")
#: statistics that describe a group of n patients, so n is required
#: Design-level datasets of summary files already read, keyed by content (file and card SHA-256); oldest dropped first.
_DATASETS = Memo(8)
_NEEDS_N = ("percent", "mean", "sd", "median", "p_value")
_STAT_UNITS = {"count": ("patients",), "percent": ("percent",), "p_value": ("probability",), "mentioned": ("none",)}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER_RE = re.compile(r"^-?(\d+)(\.\d+)?$")


@dataclass(frozen=True)
class QuantitySpec:
    """What a quantity of a study may be reported as.

    ``categories``: ``"none"`` (must be empty), ``"free"`` (a snake_case category is required), ``"optional"`` (free,
    may be empty) or a tuple of allowed categories. ``score`` = (outcome, item) for score quantities (item ``total``
    for the total); ``bounds`` = (low, high) of one patient's value in points (scores) or the covariate's unit.
    """

    units: tuple[str, ...]
    categories: str | tuple[str, ...] = "none"
    score: tuple[str, str] | None = None
    bounds: tuple[float | None, float | None] = (None, None)
    role: str = "descriptor"  # patients | score | event | ordinal | descriptor
    outcome: str | None = None
    partition: bool = False


def quantity_specs(card: StudyCard) -> dict[str, QuantitySpec]:
    """Every quantity a summary-data file of this study may report, with its rules."""
    out: dict[str, QuantitySpec] = {"patients": QuantitySpec(("patients",), role="patients")}
    for name, o in card.outcomes.items():
        if o.kind == "score":
            units = ("points", "percent_of_max", "probability")
            out[f"{name}_total"] = QuantitySpec(units, score=(name, "total"), bounds=(o.min, o.max), role="score", outcome=name)
            for item in o.items:
                out[f"{name}_{item}"] = QuantitySpec(units, score=(name, item), bounds=(o.item_min, o.item_max), role="score", outcome=name)
        elif o.kind == "event":
            out[name] = QuantitySpec(("patients", "percent"), "optional", role="event", outcome=name)
            out[f"{name}_time"] = QuantitySpec(DURATION_UNITS, "optional", bounds=(0, None), outcome=name)
            out[f"{name}_kind"] = QuantitySpec(("patients", "percent", "none"), "free", outcome=name)
        else:
            out[name] = QuantitySpec(("patients", "percent"), tuple(o.levels), role="ordinal", outcome=name, partition=True)
    out["followup"] = QuantitySpec(DURATION_UNITS, bounds=(0, None))
    for name, c in card.covariate_specs().items():
        if c.type in ("binary",):
            out[name] = QuantitySpec(("patients", "percent"), partition=c.partition)
        elif c.type in ("categorical", "text"):
            out[name] = QuantitySpec(("patients", "percent", "none"), "free", partition=c.partition)
        else:
            units = (c.unit,) if c.unit else tuple(u for u in UNITS if u not in ("percent", "patients", "probability", "none", "percent_of_max"))
            out[name] = QuantitySpec(units, bounds=(c.min, c.max))
    return out


@dataclass(frozen=True)
class SummaryData:
    """A validated summary-data file of one study.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per reported number, in file order. The stratification column has the card's name (``stratum`` with
        the value ``all`` when the study is unstratified). ``value`` is a float (NaN for ``mentioned``),
        ``value_text`` the exact text, ``decimals`` and ``n`` nullable integers, ``line`` the file line.
    meta : dict
        The ``# key: value`` metadata.
    path : str
        Where it was read from (for messages and provenance).
    sha256 : str
        Hash of the file's bytes (recorded in run manifests).
    card : StudyCard
        The study card it was read against.
    """

    frame: pd.DataFrame
    meta: dict[str, str]
    path: str
    sha256: str
    card: StudyCard
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ lookups
    def select(self, **where) -> pd.DataFrame:
        """Rows matching every ``column=value`` given (``time=""`` selects empty; ``stratum=`` is the strata column)."""
        df = self.frame
        cols = self._cache.get("columns")
        if cols is None:  # numpy object arrays: comparisons are ~50x faster than on pandas columns
            # missing values become None, which equals nothing (as pandas' NA comparison filled with False)
            cols = self._cache["columns"] = {c: df[c].astype(object).where(df[c].notna(), None).to_numpy(dtype=object) for c in df.columns}
        mask = np.ones(len(df), dtype=bool)
        for col, val in where.items():
            col = self.card.stratum_dim if col == "stratum" else col
            mask &= (cols[col] == val) if not (val is None or (np.isscalar(val) and pd.isna(val))) else False
        return df[mask]

    def canonical(self, **where) -> pd.Series | None:
        """The canonical (first in file order) row matching ``where``, or None."""
        rows = self.select(**where)
        return None if rows.empty else rows.iloc[0]

    def cell_sizes(self) -> xr.DataArray:
        """Patients per arm x stratum cell, from ``patients`` count rows (NaN where not reported)."""
        card = self.card
        arms, levels = card.arm_levels, card.stratum_levels
        out = xr.DataArray(np.full((len(arms), len(levels)), np.nan), coords={"arm": arms, card.stratum_dim: levels},
                           dims=("arm", card.stratum_dim), name="n")
        for arm in arms:
            for lev in levels:
                row = self.canonical(quantity="patients", arm=arm, stratum=lev, statistic="count")
                if row is not None:
                    out.loc[arm, lev] = row["value"]
        return out

    def inferred(self) -> list[str]:
        """Counts recovered by arithmetic (a percent of a known n, or the remaining category of a full cell)."""
        self.to_dataset()
        return list(self._cache["inferred"])

    def to_dataset(self) -> xr.Dataset:
        """The study's design-level numbers as an :class:`xarray.Dataset` (every outcome, named dims).

        Variables per score outcome ``o``: ``o_mean`` (arm, strata, item, time), ``o_change_mean``, ``o_change_sd``,
        ``o_pre_sd``, ``o_post_sd`` (points); per event outcome: ``o_events``; per ordinal outcome: ``o_counts``; and ``n``.
        NaN where nothing is reported; ``attrs['inferred']`` lists the counts recovered by arithmetic.
        """
        if "dataset" in self._cache:
            return self._cache["dataset"].copy(deep=True)
        # the same file read against the same card gives the same numbers: reuse them across reads (every fit reads it)
        key = digest(self.sha256, self.card.sha256, self.path, sorted(self.meta.items()))
        ds, inferred = _DATASETS.get_or_compute(key, self._build_dataset) if self.sha256 else self._build_dataset()
        self._cache["dataset"], self._cache["inferred"] = ds, list(inferred)
        return ds.copy(deep=True)

    def _build_dataset(self) -> tuple[xr.Dataset, tuple[str, ...]]:
        inferred: list[str] = []
        parts = [self.cell_sizes().to_dataset(name="n")]
        for name, o in self.card.outcomes.items():
            if o.kind == "score":
                sc = score_cells(self, name).drop_vars("n").rename_dims({"item": f"{name}_item"}).rename_vars({"item": f"{name}_item"})
                parts.append(sc.rename({v: f"{name}_{v}" for v in sc.data_vars}))
            elif o.kind == "event":
                parts.append(event_counts(self, name, inferred).to_dataset(name=f"{name}_events"))
            else:
                parts.append(ordinal_counts(self, name, inferred).to_dataset(name=f"{name}_counts"))
        ds = xr.merge(parts, compat="override", join="outer")
        ds.attrs = {"study": self.meta.get("study", self.card.name), "citation": self.meta.get("citation", ""),
                    "source_file": self.path, "source_sha256": self.sha256, "inferred": "\n".join(inferred)}
        return ds, tuple(inferred)


# ---------------------------------------------------------------------- reading
def read_summary(path: str | Path, card: StudyCard) -> SummaryData:
    """Read and validate a summary-data CSV against a study card.

    Raises
    ------
    InputError
        Every problem found, each naming the file, row/line, column, value and rule.
    """
    text, sha256 = read_data_text(path, "summary-data CSV")
    return parse_summary(text, card, str(path), sha256=sha256)


def parse_summary(text: str, card: StudyCard, fname: str = "<summary>", sha256: str | None = None) -> SummaryData:
    """Validate summary-data CSV text against a study card (see :func:`read_summary`)."""
    problems: list[Problem] = []
    lines = text.splitlines()
    meta: dict[str, str] = {}
    header_idx = None
    sdim = card.stratum_dim
    columns = (*BASE_COLUMNS[:3], sdim, *BASE_COLUMNS[3:]) if card.stratified else BASE_COLUMNS
    required = (*REQUIRED_COLUMNS, sdim) if card.stratified else REQUIRED_COLUMNS
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
                problems.append(Problem(fname, f"line {i + 1}", repr(key),
                                        f"unknown metadata key; allowed: {', '.join(META_KEYS)}{did_you_mean(key, META_KEYS)}"))
            meta[key] = val
            continue
        header_idx = i
        break
    if header_idx is not None and not meta and not problems:
        # no metadata at all: not a summary file (the header problems of, say, a patient-level CSV say nothing useful)
        raise InputError([Problem(fname, f"line {header_idx + 1}", line_excerpt(lines[header_idx]),
                                  f"not a summary-data file: it must start with '# format: {FORMAT_ID}' (a patient-level CSV is "
                                  "read as patient-level data, e.g. `reproduce --ipd` or data.source = \"ipd\")")])
    if meta.get("format") != FORMAT_ID:
        problems.append(Problem(fname, "metadata 'format'", repr(meta.get("format", "")), f"the file must start with '# format: {FORMAT_ID}'"))
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
        if h not in columns:
            hint = ("; this study is unstratified (its card has no [strata])" if not card.stratified and h not in BASE_COLUMNS else "")
            problems.append(Problem(fname, f"line {header_idx + 1} (header)", repr(h),
                                    f"unknown column{did_you_mean(h, columns)}; allowed: {', '.join(columns)}{hint}"))
    for req in required:
        if req not in header:
            problems.append(Problem(fname, f"line {header_idx + 1} (header)", "", f"required column '{req}' is missing"))
    if problems:
        raise InputError(problems)

    specs = quantity_specs(card)
    records = []
    ids: dict[str, int] = {}
    for rec_no, fields in enumerate(reader, start=1):
        line_no = header_idx + 1 + rec_no
        if not fields or all(not f.strip() for f in fields):
            continue
        if fields[0].lstrip().startswith("#"):
            continue
        if len(fields) != len(header):
            problems.append(Problem(fname, f"row {rec_no} (line {line_no})", "", f"has {len(fields)} fields, the header has {len(header)}"))
            continue
        row = {c: "" for c in columns}
        row.update({h: f for h, f in zip(header, fields, strict=True)})
        rid = row["id"].strip()
        if rid and rid in ids:
            problems.append(Problem(fname, f"row {rec_no} (line {line_no}), column 'id'", repr(rid), f"duplicate id (first used in row {ids[rid]})"))
        ids.setdefault(rid, rec_no)
        rec = _validate_row(row, rec_no, line_no, fname, problems, card, specs)
        if rec is not None:
            records.append(rec)
    if not records and not problems:
        problems.append(Problem(fname, "rows", "", "the file has a header but no data rows"))
    if problems:
        raise InputError(cap_problems(problems))

    frame = pd.DataFrame.from_records(records)
    if not card.stratified:
        frame.insert(3, sdim, UNSTRATIFIED_LEVEL)
    frame["decimals"] = frame["decimals"].astype("Int64")
    frame["n"] = frame["n"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode()).hexdigest()
    return SummaryData(frame=frame, meta=meta, path=fname, sha256=sha256, card=card)


def _validate_row(row: dict, rec_no: int, line_no: int, fname: str, problems: list[Problem], card: StudyCard,
                  specs: dict[str, QuantitySpec]) -> dict | None:
    n_before = len(problems)
    where = f"row {rec_no} (line {line_no})"

    def bad(col: str, rule: str) -> None:
        problems.append(Problem(fname, f"{where}, column '{col}'", repr(row[col]), rule))

    # one rule for every data file: codes and numbers are taken as written, so surrounding spaces are an error
    # (free-text columns: source, label, printed, comparison, note, are kept as written too)
    coded = ("id", "quantity", "arm", card.stratum_dim, "time", "category", "statistic", "relation", "value", "decimals", "unit", "n")
    for col in coded:
        v = row.get(col)
        if isinstance(v, str) and v != v.strip():
            problems.append(Problem(fname, f"{where}, column '{col}'", repr(v), f"has surrounding spaces; did you mean '{v.strip()}'?",
                                    kind=f"{col}: spaces"))
    r = {k: (v.strip() if isinstance(v, str) and k in coded else v) for k, v in row.items()}  # further rules see the code
    for col in (*REQUIRED_COLUMNS, *((card.stratum_dim,) if card.stratified else ())):
        if col != "value" and r[col] == "":
            problems.append(Problem(fname, f"{where}, column '{col}'", "", "is required and empty"))
    if r["id"] and not _ID_RE.match(r["id"]):
        bad("id", "an id uses letters, digits, '.', '_' and '-' only")
    q = r["quantity"]
    spec = specs.get(q)
    if q and spec is None:
        bad("quantity", f"unknown quantity for study {card.name}{did_you_mean(q, specs)}; allowed: {', '.join(specs)}")
    arms = (*card.arm_levels, "all")
    if r["arm"] and r["arm"] not in arms:
        bad("arm", f"must be one of {', '.join(arms)}{did_you_mean(r['arm'], arms)}")
    if card.stratified:
        sdim = card.stratum_dim
        levels = (*card.stratum_levels, "all")
        if r[sdim] and r[sdim] not in levels:
            bad(sdim, f"must be one of {', '.join(levels)}{did_you_mean(r[sdim], levels)}")
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

    is_score = spec is not None and spec.score is not None
    if is_score:
        if r["time"] not in (*TIMES, "change"):
            bad("time", "score quantities need time = pre | post | change")
    elif r["time"] and spec is not None:
        bad("time", f"time is only used for score quantities; leave it empty for '{q}'")

    if spec is not None:
        if unit in UNITS and unit not in spec.units and stat not in _STAT_UNITS:
            bad("unit", f"quantity '{q}' is reported in {', '.join(spec.units)}")
        cats = spec.categories
        if cats == "none" and r["category"]:
            bad("category", f"quantity '{q}' has no categories; leave it empty")
        elif cats in ("free", "optional"):
            if not r["category"] and cats == "free":
                bad("category", f"quantity '{q}' needs a category (snake_case, e.g. screw_backout)")
            elif r["category"] and not _CATEGORY_RE.match(r["category"]):
                bad("category", "a category is snake_case: lower-case letters, digits and '_'")
        elif isinstance(cats, tuple) and r["category"] not in cats:
            bad("category", f"quantity '{q}' has categories {', '.join(cats)}{did_you_mean(r['category'], cats)}")
    if stat in _STAT_UNITS and unit in UNITS and unit not in _STAT_UNITS[stat]:
        bad("unit", f"statistic '{stat}' is reported in unit {' or '.join(_STAT_UNITS[stat])}")

    value = decimals = None
    if stat == "mentioned":
        if r["value"]:
            bad("value", "statistic 'mentioned' (named without a number) takes no value")
    else:
        m = _NUMBER_RE.match(r["value"])
        if not r["value"]:
            problems.append(Problem(fname, f"{where}, column 'value'", "", "is required and empty"))
        elif not m:
            bad("value", "must be a plain decimal number such as 7.3, 28.0 or 0.005 (no %, <, > or thousands separators)")
        else:
            try:
                value = Decimal(r["value"])
            except InvalidOperation:  # pragma: no cover - the regex already guards
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
            bad("n", "must be a whole number >= 1 (a cell without patients reports no statistics)")
        else:
            n = int(r["n"])
    elif stat in _NEEDS_N or (stat == "count" and q != "patients"):
        problems.append(Problem(fname, f"{where}, column 'n'", "", f"statistic '{stat}' of '{q}' needs n (the patients it summarises)"))

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
        if is_score and unit in ("points", "percent_of_max"):
            lo_pt, hi_pt = spec.bounds
            span_pt = hi_pt - lo_pt
            if unit == "points":
                lo, hi = (lo_pt - hi_pt, hi_pt - lo_pt) if r["time"] == "change" else (lo_pt, hi_pt)
            else:
                lo, hi = (-100.0, 100.0) if r["time"] == "change" else ((lo_pt - lo_pt) / span_pt * 100, 100.0)
            if stat in ("mean", "median", "min", "max", "value") and not lo <= v <= hi:
                bad("value", f"{q} ({r['time'] or 'level'}) in {unit} lies in {lo:g} to {hi:g}")
            if stat == "sd":
                # A sample SD of values in [lo, hi] is at most (hi - lo)/2 * sqrt(n/(n-1)) (largest at n = 2).
                m_ = n if n is not None and n >= 2 else 2
                limit = (hi - lo) / 2 * (m_ / (m_ - 1)) ** 0.5
                if v - 0.5 * 10.0 ** -(decimals or 0) > limit + 1e-12:  # the rounding interval must reach the bound
                    bad("value", f"an SD of {q} ({r['time'] or 'level'}) in {unit} cannot exceed {limit:.4g} for n = {m_} values "
                                 f"spanning {hi - lo:g}")
        if is_score and stat != "p_value" and unit == "probability":
            bad("unit", "unit 'probability' is for p-values")
        if (spec is not None and spec.score is None and stat in ("mean", "median", "min", "max", "value")
                and spec.bounds[0] is not None and v < spec.bounds[0]):
            bad("value", f"{q} cannot be below {spec.bounds[0]:g}")
        if (spec is not None and spec.score is None and stat in ("mean", "median", "min", "max", "value")
                and spec.bounds[1] is not None and v > spec.bounds[1]):
            bad("value", f"{q} cannot be above {spec.bounds[1]:g}")

    if len(problems) > n_before:
        return None
    keep = [c for c in row if c not in ("value", "decimals", "n", "relation")]
    return {**{c: r[c] for c in keep}, "relation": r["relation"] or "=",
            "value": float(value) if value is not None else np.nan, "value_text": r["value"], "decimals": decimals, "n": n,
            "line": line_no}


# ---------------------------------------------------------------------- per-outcome cell views
def _points_factor(sd: SummaryData, outcome: str, unit: str) -> float:
    o = sd.card.outcomes[outcome]
    return o.range / 100.0 if unit == "percent_of_max" else 1.0


def score_cells(sd: SummaryData, outcome: str) -> xr.Dataset:
    """A score outcome's reported cell numbers, in points: dims (arm, strata, item, time).

    Variables: ``n``; ``mean`` and ``mean_decimals`` (-1 where absent) by item (``total`` first) and time; ``p_value``
    (as printed, by item); ``change_mean``, ``change_sd`` (the total's change, converted from percent of the range when
    reported so) with their decimals in the reported unit and the reported unit; ``pre_sd`` and ``post_sd`` of the total
    where reported.
    """
    card = sd.card
    o = card.outcomes[outcome]
    arms, levels, items = card.arm_levels, card.stratum_levels, ["total", *o.items]
    sdim = card.stratum_dim
    shape = (len(arms), len(levels))
    mean = np.full((*shape, len(items), 2), np.nan)
    mean_dec = np.full(mean.shape, -1, dtype=int)
    pval = np.full((*shape, len(items)), np.nan)
    chg = {k: np.full(shape, np.nan) for k in ("change_mean", "change_sd", "pre_sd", "post_sd")}
    chg_dec = {k: np.full(shape, -1, dtype=int) for k in ("change_mean", "change_sd")}
    chg_unit = np.full(shape, "", dtype=object)
    for ia, arm in enumerate(arms):
        for jf, lev in enumerate(levels):
            for kd, item in enumerate(items):
                q = f"{outcome}_{item}"
                for lt, time in enumerate(TIMES):
                    row = sd.canonical(quantity=q, arm=arm, stratum=lev, time=time, statistic="mean", unit="points")
                    if row is not None:
                        mean[ia, jf, kd, lt] = row["value"]
                        mean_dec[ia, jf, kd, lt] = row["decimals"]
                p = sd.canonical(quantity=q, arm=arm, stratum=lev, time="change", statistic="p_value")
                if p is not None:
                    pval[ia, jf, kd] = p["value"]
            for key, stat, time in (("change_mean", "mean", "change"), ("change_sd", "sd", "change"), ("pre_sd", "sd", "pre"),
                                    ("post_sd", "sd", "post")):
                row = sd.canonical(quantity=f"{outcome}_total", arm=arm, stratum=lev, time=time, statistic=stat)
                if row is not None:
                    chg[key][ia, jf] = row["value"] * _points_factor(sd, outcome, row["unit"])
                    if key in chg_dec:
                        chg_dec[key][ia, jf] = row["decimals"]
                        chg_unit[ia, jf] = row["unit"]
    dims2 = ("arm", sdim)
    return xr.Dataset(
        {"n": sd.cell_sizes(),
         "mean": ((*dims2, "item", "time"), mean, {"units": o.unit}),
         "mean_decimals": ((*dims2, "item", "time"), mean_dec, {"long_name": "decimals reported (-1: not reported)"}),
         "p_value": ((*dims2, "item"), pval, {"long_name": "printed P value (comparison as stated in the source)"}),
         **{k: (dims2, v, {"units": o.unit}) for k, v in chg.items()},
         **{f"{k}_decimals": (dims2, v) for k, v in chg_dec.items()},
         "change_reported_unit": (dims2, chg_unit.astype(str))},
        coords={"arm": arms, sdim: levels, "item": items, "time": list(TIMES)},
    )


def _count(sd: SummaryData, quantity: str, arm: str, lev: str, category: str, inferred: list[str] | None) -> float:
    row = sd.canonical(quantity=quantity, arm=arm, stratum=lev, category=category, statistic="count")
    if row is not None:
        return float(row["value"])
    pct = sd.canonical(quantity=quantity, arm=arm, stratum=lev, category=category, statistic="percent")
    if pct is None:
        return np.nan
    n = int(pct["n"])
    half = 0.5 * 10.0 ** (-int(pct["decimals"]))
    candidates = [k for k in range(n + 1) if abs(100.0 * k / n - pct["value"]) <= half + 1e-9]
    if len(candidates) == 1:
        if inferred is not None:
            label = f"{quantity}[{sd.card.cell_label(arm, lev)}{', ' + category if category else ''}]"
            inferred.append(f"{label} = {candidates[0]}: the only count of {n} that rounds to {pct['value_text']}%")
        return float(candidates[0])
    return np.nan


def event_counts(sd: SummaryData, outcome: str, inferred: list[str] | None = None) -> xr.DataArray:
    """Patients with the event per arm × stratum cell (NaN where not reported or not recoverable).

    Counts come from count rows (summed over event kinds, one canonical row each), or from a percent of the cell size
    when only one count rounds to it. A study-wide count that equals the attributed ones implies zero elsewhere.
    """
    card = sd.card
    arms, levels = card.arm_levels, card.stratum_levels
    out = np.full((len(arms), len(levels)), np.nan)
    for ia, arm in enumerate(arms):
        for jf, lev in enumerate(levels):
            rows = sd.select(quantity=outcome, arm=arm, stratum=lev, statistic="count")
            if not rows.empty:
                out[ia, jf] = float(rows.drop_duplicates("category")["value"].sum())
            else:
                out[ia, jf] = _count(sd, outcome, arm, lev, "", inferred)
    if np.isnan(out).any() and not np.isnan(out).all():
        total = sd.select(quantity=outcome, arm="all", stratum="all", statistic="count")
        if not total.empty and np.nansum(out) == total.drop_duplicates("category")["value"].sum():
            for ia, jf in zip(*np.where(np.isnan(out)), strict=True):
                out[ia, jf] = 0
                if inferred is not None:
                    inferred.append(f"{outcome}[{card.cell_label(arms[ia], levels[jf])}] = 0: the study-wide count "
                                    f"{int(total['value'].sum())} is attributed elsewhere")
    return xr.DataArray(out, coords={"arm": arms, card.stratum_dim: levels}, dims=("arm", card.stratum_dim), name=outcome)


def ordinal_counts(sd: SummaryData, outcome: str, inferred: list[str] | None = None) -> xr.DataArray:
    """Patients per ordered category per cell (dims arm, strata, the outcome's levels); a single missing category of
    a cell whose size is known is recovered as the remainder."""
    card = sd.card
    o = card.outcomes[outcome]
    arms, levels = card.arm_levels, card.stratum_levels
    n = sd.cell_sizes().values
    out = np.full((len(arms), len(levels), len(o.levels)), np.nan)
    for ia, arm in enumerate(arms):
        for jf, lev in enumerate(levels):
            counts = [_count(sd, outcome, arm, lev, cat, inferred) for cat in o.levels]
            missing = [i for i, c in enumerate(counts) if np.isnan(c)]
            if len(missing) == 1 and not np.isnan(n[ia, jf]):
                rest = n[ia, jf] - np.nansum(counts)
                if rest >= 0:
                    counts[missing[0]] = rest
                    if inferred is not None:
                        inferred.append(f"{outcome}[{card.cell_label(arm, lev)}, {o.levels[missing[0]]}] = {int(rest)}: the other "
                                        f"categories account for {int(n[ia, jf] - rest)} of n = {int(n[ia, jf])}")
            out[ia, jf] = counts
    return xr.DataArray(out, coords={"arm": arms, card.stratum_dim: levels, outcome: list(o.levels)},
                        dims=("arm", card.stratum_dim, outcome), name=outcome)
