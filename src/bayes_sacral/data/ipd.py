"""Patient-level (IPD) CSV of a study: the format its card implies, and a one-pass, vectorised validator.

Format
------
A UTF-8 CSV file with a header row, one row per patient. Column order is free; unknown columns are an error (nothing
is silently ignored). Empty cells mean "not recorded" and are allowed only in optional columns. Nothing is coerced or
stripped: ``7.0`` is not a whole-number score and ``'screws '`` (with a space) is not the arm ``screws``.

======================== ======== =================================================================================
column                   required rule
======================== ======== =================================================================================
patient_id               yes      non-empty, unique
arm                      yes      the card's treatment or control label
<strata name>            strata   one of the card's levels (absent when the study is unstratified)
<score>_pre, _post       no       whole numbers in the score's range (both or neither)
<score>_<item>_pre/post  no       whole numbers in the item range; all items of a time point or none, summing to the
                                  total (``<item>_pre`` may be used when only one score has that item)
<event>                  no       0 | 1
<event>_days             no       whole days >= 0 to the event; only when <event> = 1; not after followup_days
<ordinal outcome>        no       one of its levels
followup_days            no       whole number >= 0
age, sex                 no       years 0-120; ``male`` | ``female`` (a card may redeclare them)
<covariate>              no       as the card declares: binary 0 | 1, categorical levels, integer/number in range, text
date_preop               no       ISO date YYYY-MM-DD of the preoperative assessment
date_procedure           no       ISO date of the procedure; not before date_preop
date_postop              no       ISO date of the postoperative assessment; not before date_preop or date_procedure
======================== ======== =================================================================================

A card's ``[columns]`` table maps these names to a CSV's own (``arm = "Group"``); messages then name the CSV's column.
At least one outcome column is required.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, Problem, cap_problems
from ..study.card import UNSTRATIFIED_LEVEL, StudyCard
from ..suggest import did_you_mean
from .files import line_excerpt, read_data_text

__all__ = ["IPDData", "read_ipd", "parse_ipd", "ipd_from_frame", "column_names", "column_rules", "write_ipd"]

_INT = r"[+-]?\d+"
_NUM = r"[+-]?(\d+(\.\d*)?|\.\d+)"
_DATE = r"\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class IPDData:
    """A validated patient-level data set of one study.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per patient, with canonical column names; ``arm`` and the strata column are categoricals in the
        card's order (an unstratified study gets a ``stratum`` column of ``all``), integer columns are nullable
        ``Int64``, dates ``datetime64``. Only the columns present in the file appear.
    path : str
    sha256 : str
        Hash of the file's bytes, recorded in run manifests.
    card : StudyCard
    """

    frame: pd.DataFrame
    path: str
    sha256: str
    card: StudyCard

    @property
    def n_patients(self) -> int:
        return len(self.frame)

    def cell_sizes(self) -> pd.DataFrame:
        """Patients per arm x stratum (every cell of the card, zeros included)."""
        return pd.crosstab(self.frame["arm"], self.frame[self.card.stratum_dim], dropna=False)

    def has_items(self, outcome: str) -> bool:
        o = self.card.outcomes[outcome]
        return bool(o.items) and all(f"{outcome}_{i}_{t}" in self.frame.columns for t in ("pre", "post") for i in o.items)

    def has_score(self, outcome: str) -> bool:
        return f"{outcome}_pre" in self.frame.columns and f"{outcome}_post" in self.frame.columns


# ---------------------------------------------------------------------- column roles
@dataclass(frozen=True)
class _Col:
    role: str  # canonical name
    type: str  # id | arm | stratum | score | item | event | event_days | ordinal | binary | categorical | integer | number | text | date
    lo: float | None = None
    hi: float | None = None
    levels: tuple[str, ...] = ()
    rule: str = ""
    outcome: str | None = None


def _columns(card: StudyCard) -> dict[str, _Col]:
    cols = {"patient_id": _Col("patient_id", "id"),
            "arm": _Col("arm", "arm", levels=tuple(card.arm_levels))}
    if card.stratified:
        cols[card.strata.name] = _Col(card.strata.name, "stratum", levels=tuple(card.stratum_levels))
    for name, o in card.outcomes.items():
        if o.kind == "score":
            label = card.outcome_label(name)
            for t in ("pre", "post"):
                cols[f"{name}_{t}"] = _Col(f"{name}_{t}", "score", o.min, o.max, rule=f"whole-number {label} total {o.min}-{o.max}", outcome=name)
                for item in o.items:
                    cols[f"{name}_{item}_{t}"] = _Col(f"{name}_{item}_{t}", "item", o.item_min, o.item_max,
                                                      rule=f"whole-number {label} item {o.item_min}-{o.item_max}", outcome=name)
        elif o.kind == "event":
            cols[name] = _Col(name, "event", 0, 1, rule=f"0 = no {card.outcome_label(name)}, 1 = at least one", outcome=name)
            cols[f"{name}_days"] = _Col(f"{name}_days", "event_days", 0, None, rule="whole days >= 0", outcome=name)
        else:
            cols[name] = _Col(name, "ordinal", levels=tuple(o.levels), outcome=name)
    cols["followup_days"] = _Col("followup_days", "integer", 0, None, rule="days >= 0")
    for name, c in card.covariate_specs().items():
        if c.type == "binary":
            cols[name] = _Col(name, "binary", 0, 1, rule="0 | 1")
        elif c.type == "categorical":
            cols[name] = _Col(name, "categorical", levels=tuple(c.levels))
        elif c.type in ("integer", "number"):
            rng = f"{'' if c.min is None else f'{c.min:g}'}-{'' if c.max is None else f'{c.max:g}'}"
            cols[name] = _Col(name, c.type, c.min, c.max, rule=f"{c.unit or 'value'} {rng}".strip())
        else:
            cols[name] = _Col(name, "text")
    for d in ("date_preop", "date_procedure", "date_postop"):
        cols[d] = _Col(d, "date")
    return cols


def column_names(card: StudyCard) -> dict[str, str]:
    """Canonical column -> the name a CSV of this study uses for it (the card's [columns] mapping applied)."""
    return {role: card.columns.get(role, role) for role in _columns(card)}


def column_rules(card: StudyCard) -> list[dict]:
    """One row per column a patient-level CSV of this study may have: its CSV name, canonical role, whether required, rule."""
    out = []
    for role, c in _columns(card).items():
        if c.type in ("arm", "stratum", "ordinal", "categorical"):
            rule = " | ".join(c.levels)
        elif c.type == "id":
            rule = "non-empty, unique"
        elif c.type == "date":
            rule = "ISO date YYYY-MM-DD"
        elif c.type == "text":
            rule = "free text"
        elif c.type == "event_days":
            rule = f"whole days >= 0; only when {role[:-5]} = 1"
        else:
            rule = c.rule
        out.append({"column": card.columns.get(role, role), "role": role, "required": role in card.required_columns(), "rule": rule})
    return out


def _header_roles(header: list[str], card: StudyCard, cols: dict[str, _Col], fname: str, problems: list[Problem]) -> dict[int, str]:
    """Map header positions to canonical roles (mapping, canonical names, and short item names)."""
    mapped = {v: k for k, v in card.columns.items()}
    short: dict[str, list[str]] = {}
    for name, o in card.outcomes.items():
        if o.kind == "score":
            for item in o.items:
                for t in ("pre", "post"):
                    short.setdefault(f"{item}_{t}", []).append(f"{name}_{item}_{t}")
    names_for_hint = [card.columns.get(r, r) for r in cols]
    out: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        role = mapped.get(h) or (h if h in cols else None)
        if role is None and h in short and len(short[h]) == 1 and short[h][0] not in header:
            role = short[h][0]
        if role is None:
            hint = ""
            if h.strip() != h and (h.strip() in cols or h.strip() in mapped):
                hint = f"; the name has surrounding spaces (did you mean '{h.strip()}'?)"
            problems.append(Problem(fname, "line 1 (header)", repr(h), f"unknown column{hint or did_you_mean(h, names_for_hint)}; "
                                    f"the columns of study {card.name} are listed by `bayes-sacral data columns`"))
            continue
        if role in seen:
            problems.append(Problem(fname, "line 1 (header)", repr(h), f"column named twice (as '{header[seen[role]]}' too)"))
            continue
        seen[role] = i
        out[i] = role
    return out


def _row_key(p: Problem) -> int:
    """Problems in row order (header and column-wide problems first)."""
    import re

    m = re.search(r"\brows? (\d+)", p.location)
    return int(m.group(1)) if m else 0


def _loc(rows: np.ndarray, lines: np.ndarray, idx: int) -> str:
    return f"row {rows[idx]} (line {lines[idx]})"


def _row_list(rows: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return f"rows {shown}{', ...' if len(rows) > limit else ''}" if len(rows) > 1 else f"row {rows[0]}"


# ---------------------------------------------------------------------- reading
def read_ipd(path: str | Path, card: StudyCard) -> IPDData:
    """Read and validate a patient-level CSV against a study card; every problem is reported at once.

    Raises
    ------
    InputError
        One :class:`~bayes_sacral.errors.Problem` per bad cell (file, row, column, value, rule); bad categories are
        reported once per value with the rows they occur in; at most 20 problems of one kind are listed.
    """
    text, sha256 = read_data_text(path, "patient-level CSV")
    return parse_ipd(text, card, str(path), sha256=sha256)


def ipd_from_frame(df: pd.DataFrame, card: StudyCard, name: str = "<DataFrame>") -> IPDData:
    """Validate a pandas DataFrame as patient-level data (its values written as CSV text and checked like a file)."""
    if not isinstance(df, pd.DataFrame):
        raise InputError([Problem(name, "data", type(df).__name__, "patient-level data are a pandas DataFrame or a CSV path")])
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_float_dtype(out[c]) and out[c].dropna().map(float.is_integer).all():
            out[c] = out[c].astype("Int64")
    text = out.to_csv(index=False, lineterminator="\n")
    return parse_ipd(text, card, name, sha256=hashlib.sha256(text.encode()).hexdigest())


def parse_ipd(text: str, card: StudyCard, fname: str = "<ipd>", sha256: str | None = None) -> IPDData:
    """Validate patient-level CSV text against a study card (see :func:`read_ipd`)."""
    problems: list[Problem] = []
    cols = _columns(card)
    reader = csv.reader(text.splitlines(keepends=True))  # not StringIO: its buffer holds 4 bytes per character
    try:
        header = next(reader)
    except StopIteration:
        raise InputError([Problem(fname, "line 1", "", "the file is empty; expected a header row")]) from None
    except csv.Error as exc:
        raise InputError([Problem(fname, "line 1", "", f"not a readable CSV header ({exc})")]) from None
    roles = _header_roles(header, card, cols, fname, problems)
    if header and 0 not in roles and header[0].lstrip().startswith("#"):
        # the header problems of a comment line say nothing useful
        line = ",".join(header)
        raise InputError([Problem(fname, "line 1", line_excerpt(line),
                                  "a patient-level CSV starts with its header row, not a '#' comment line (summary data start "
                                  "with '# format: bayes-sacral-summary/1')")])
    present = set(roles.values())
    name_of = {r: header[i] for i, r in roles.items()}
    for req in card.required_columns():
        if req not in present:
            problems.append(Problem(fname, "line 1 (header)", "", f"required column '{card.columns.get(req, req)}' is missing"
                                    + (f" ({req})" if req in card.columns else "")))
    outcome_cols = [r for r in present if cols[r].type in ("score", "event", "ordinal", "item")]
    if not outcome_cols:
        outs = ", ".join(card.outcomes)
        problems.append(Problem(fname, "line 1 (header)", "", f"no outcome column: the data need at least one of the outcomes {outs} "
                                f"(a score as <name>_pre and <name>_post)"))
    for name, o in card.outcomes.items():
        if o.kind != "score":
            continue
        pp = [f"{name}_{t}" for t in ("pre", "post")]
        if any(c in present for c in pp) and not all(c in present for c in pp):
            missing = [card.columns.get(c, c) for c in pp if c not in present]
            problems.append(Problem(fname, "line 1 (header)", "", f"{card.outcome_label(name)} needs both {pp[0]} and {pp[1]}: missing {', '.join(missing)}"))
        for t in ("pre", "post"):
            items = [f"{name}_{i}_{t}" for i in o.items]
            have = [c for c in items if c in present]
            if have and len(have) < len(items):
                missing = [card.columns.get(c, c) for c in items if c not in present]
                problems.append(Problem(fname, "line 1 (header)", "", f"{card.outcome_label(name)} items at '{t}' are all {len(items)} or none: "
                                        f"missing {', '.join(missing)}"))
            if have and f"{name}_{t}" not in present:
                problems.append(Problem(fname, "line 1 (header)", "", f"items at '{t}' need the total {name}_{t} too"))
    if problems:
        raise InputError(cap_problems(problems))

    raw_rows, rec_nos, line_nos = [], [], []
    prev_line = 1
    width = len(header)
    # one string object per distinct value: arms, strata, scores and categories repeat, so a 200,000-row file holds a
    # few thousand strings instead of 1.6 million (about 100 MB less at its peak)
    seen: dict[str, str] = {}
    try:
        for rec_no, fields in enumerate(reader, start=1):
            fields = [seen.setdefault(f, f) for f in fields]
            line = prev_line + 1
            prev_line = reader.line_num
            if not fields or all(f == "" for f in fields):
                continue
            if len(fields) != width:
                problems.append(Problem(fname, f"row {rec_no} (line {line})", "", f"has {len(fields)} fields, the header has {width}",
                                        kind="field count"))
                continue
            raw_rows.append(fields)
            rec_nos.append(rec_no)
            line_nos.append(line)
    except csv.Error as exc:
        problems.append(Problem(fname, f"line {reader.line_num}", "", f"not readable as CSV ({exc})"))
    if not raw_rows and not problems:
        problems.append(Problem(fname, "rows", "", "the file has a header but no patients"))
    if not raw_rows:
        raise InputError(cap_problems(problems))
    data = pd.DataFrame(raw_rows, columns=range(width), dtype=object)
    del raw_rows, seen
    rows = np.asarray(rec_nos)
    lines = np.asarray(line_nos)
    S = {role: data[i].astype(str) for i, role in roles.items()}
    out: dict[str, pd.Series] = {}

    def add(mask: np.ndarray, role: str, rule: str, kind: str | None = None) -> None:
        col = name_of[role]
        for idx in np.flatnonzero(mask):
            problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{col}'", repr(S[role].iat[idx]), rule, kind=kind or f"{col}: {rule}"))

    def categorical(role: str, levels: tuple[str, ...], required: bool) -> None:
        s = S[role]
        empty = (s == "").to_numpy()
        if required:
            add(empty, role, f"is required and empty (one of {' | '.join(levels)})")
        bad = ~s.isin(levels).to_numpy() & ~empty
        col = name_of[role]
        for value in pd.unique(s[bad]):
            where = rows[(s == value).to_numpy()]
            hint = (f"; it has surrounding spaces (did you mean '{value.strip()}'?)" if value.strip() in levels
                    else did_you_mean(value, levels))
            problems.append(Problem(fname, f"column '{col}', {len(where)} row{'s' if len(where) != 1 else ''} ({_row_list(where)})",
                                    repr(value), f"unknown category; allowed: {' | '.join(levels)}{hint}", kind=f"{col}: category"))
        out[role] = s.where(~empty & ~bad, None)

    def integer(role: str, lo, hi, rule: str, required: bool = False) -> pd.Series:
        s = S[role]
        empty = (s == "").to_numpy()
        if required:
            add(empty, role, f"is required and empty ({rule})")
        ok = s.str.fullmatch(_INT).to_numpy(dtype=bool)
        add(~ok & ~empty, role, f"must be a whole number ({rule})")
        vals = pd.to_numeric(s.where(ok, None), errors="coerce")
        bad = np.zeros(len(s), dtype=bool)
        if lo is not None:
            bad |= (vals < lo).to_numpy(dtype=bool)
        if hi is not None:
            bad |= (vals > hi).to_numpy(dtype=bool)
        add(bad, role, f"out of range ({rule})")
        res = vals.where(~bad).astype("Int64")
        out[role] = res
        return res

    # identifiers and design columns
    pid = S["patient_id"]
    empty = (pid == "").to_numpy()
    add(empty, "patient_id", "is required and empty")
    dup = pid.duplicated(keep="first").to_numpy() & ~empty
    if dup.any():
        first = pd.Series(np.arange(len(pid)), index=pid.index).groupby(pid).transform("first").to_numpy()
        for idx in np.flatnonzero(dup):
            problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of['patient_id']}'", repr(pid.iat[idx]),
                                    f"duplicate patient_id (first in row {rows[first[idx]]})", kind="duplicate patient_id"))
    out["patient_id"] = pid
    for role in present:
        c = cols[role]
        if c.type in ("arm", "stratum"):
            categorical(role, c.levels, True)
        elif c.type == "ordinal" or c.type == "categorical":
            categorical(role, c.levels, False)
    # scores and items
    for name, o in card.outcomes.items():
        if o.kind != "score":
            continue
        for t in ("pre", "post"):
            tot_role = f"{name}_{t}"
            if tot_role not in present:
                continue
            tot = integer(tot_role, o.min, o.max, cols[tot_role].rule)
            observed = pd.to_numeric(S[tot_role].where(S[tot_role].str.fullmatch(_INT), None), errors="coerce")
            above = int((observed > o.max).sum())
            if o.max < 100 and observed.max() <= 100 and (observed.max() > 2 * o.max or above >= 3):
                problems.append(Problem(fname, f"column '{name_of[tot_role]}'", "",
                                        f"{above} values above {o.max} (up to {int(observed.max())}) look like a 0-100 scale, but the card "
                                        f"declares {card.outcome_label(name)} on {o.min}-{o.max}: convert the scores or declare the scale "
                                        "in the card", kind=f"{tot_role}: scale hint"))
            items = [f"{name}_{i}_{t}" for i in o.items]
            if not all(r in present for r in items):
                continue
            vals = [integer(r, o.item_min, o.item_max, cols[r].rule) for r in items]
            filled = np.column_stack([(S[r] != "").to_numpy() for r in items])
            partial = filled.any(axis=1) & ~filled.all(axis=1)
            for idx in np.flatnonzero(partial):
                empties = [name_of[r] for r, f in zip(items, filled[idx], strict=True) if not f]
                problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, columns {', '.join(empties)}", "''",
                                        f"the {len(items)} items at '{t}' are all given or none for a patient", kind=f"{name} items partial"))
            mat = pd.concat(vals, axis=1)
            complete = mat.notna().all(axis=1).to_numpy() & tot.notna().to_numpy()
            sums = mat.sum(axis=1, min_count=1)
            mismatch = complete & (sums.to_numpy(dtype=float, na_value=np.nan) != tot.to_numpy(dtype=float, na_value=np.nan))
            for idx in np.flatnonzero(mismatch):
                problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of[tot_role]}'", repr(S[tot_role].iat[idx]),
                                        f"the {len(items)} items at '{t}' sum to {int(sums.iat[idx])}; the total must equal the sum of its items",
                                        kind=f"{tot_role}: item sum"))
    # events, follow-up, covariates
    fu = integer("followup_days", 0, None, "days >= 0") if "followup_days" in present else None
    for name, o in card.outcomes.items():
        if o.kind != "event":
            continue
        ev = integer(name, 0, 1, cols[name].rule) if name in present else None
        days_role = f"{name}_days"
        if days_role in present:
            d = integer(days_role, 0, None, "days >= 0")
            given = d.notna().to_numpy()
            if ev is not None:
                no_event = (ev != 1).fillna(True).to_numpy(dtype=bool)
                add(given & no_event, days_role, f"given only when {name_of.get(name, name)} = 1")
            if fu is not None:
                after = (d > fu).fillna(False).to_numpy(dtype=bool)
                for idx in np.flatnonzero(after):
                    problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of[days_role]}'", repr(S[days_role].iat[idx]),
                                            f"the event cannot come after the end of follow-up (followup_days = {fu.iat[idx]})",
                                            kind=f"{days_role}: after follow-up"))
    for role in present:
        c = cols[role]
        if c.type == "binary":
            integer(role, 0, 1, c.rule)
        elif c.type == "integer":
            integer(role, c.lo, c.hi, c.rule)
        elif c.type == "number":
            s = S[role]
            empty = (s == "").to_numpy()
            ok = s.str.fullmatch(_NUM).to_numpy(dtype=bool)
            add(~ok & ~empty, role, f"must be a number ({c.rule})")
            vals = pd.to_numeric(s.where(ok, None), errors="coerce")
            bad = np.zeros(len(s), dtype=bool)
            if c.lo is not None:
                bad |= (vals < c.lo).to_numpy(dtype=bool)
            if c.hi is not None:
                bad |= (vals > c.hi).to_numpy(dtype=bool)
            add(bad, role, f"out of range ({c.rule})")
            out[role] = vals.where(~bad).astype("Float64")
        elif c.type == "text":
            out[role] = S[role].where(S[role] != "", None).astype("string")
    dates = {}
    for role in ("date_preop", "date_procedure", "date_postop"):
        if role not in present:
            continue
        s = S[role]
        empty = (s == "").to_numpy()
        parsed = pd.to_datetime(s.where(s.str.fullmatch(_DATE), None), format="%Y-%m-%d", errors="coerce")
        add(parsed.isna().to_numpy() & ~empty, role, "must be an ISO date YYYY-MM-DD")
        dates[role] = parsed
        out[role] = parsed
    pre, proc, post = dates.get("date_preop"), dates.get("date_procedure"), dates.get("date_postop")
    if pre is not None and post is not None:
        m = (post < pre).to_numpy(dtype=bool)
        for idx in np.flatnonzero(m):
            problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of['date_postop']}'", repr(S["date_postop"].iat[idx]),
                                    f"the postoperative assessment is dated before the preoperative one ({pre.iat[idx]:%Y-%m-%d})", kind="date order"))
    if pre is not None and proc is not None:
        m = (proc < pre).to_numpy(dtype=bool)
        for idx in np.flatnonzero(m):
            problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of['date_procedure']}'", repr(S["date_procedure"].iat[idx]),
                                    f"the procedure is dated before the preoperative assessment ({pre.iat[idx]:%Y-%m-%d})", kind="date order"))
    if proc is not None and post is not None:
        m = (post < proc).to_numpy(dtype=bool)
        for idx in np.flatnonzero(m):
            problems.append(Problem(fname, f"{_loc(rows, lines, idx)}, column '{name_of['date_postop']}'", repr(S["date_postop"].iat[idx]),
                                    f"the postoperative assessment is dated before the procedure ({proc.iat[idx]:%Y-%m-%d})", kind="date order"))
    if problems:
        raise InputError(cap_problems(sorted(problems, key=_row_key)))

    order = [r for r in cols if r in out]
    frame = pd.DataFrame({r: out[r].reset_index(drop=True) for r in order})
    frame["arm"] = pd.Categorical(frame["arm"], categories=card.arm_levels)
    sdim = card.stratum_dim
    if card.stratified:
        frame[sdim] = pd.Categorical(frame[sdim], categories=card.stratum_levels)
    else:
        frame.insert(2, sdim, pd.Categorical([UNSTRATIFIED_LEVEL] * len(frame), categories=[UNSTRATIFIED_LEVEL]))
    for role in order:
        c = cols[role]
        if c.type == "ordinal":
            frame[role] = pd.Categorical(frame[role], categories=list(c.levels), ordered=True)
        elif c.type == "categorical":
            frame[role] = pd.Categorical(frame[role], categories=list(c.levels))
    frame["patient_id"] = frame["patient_id"].astype("string")
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode()).hexdigest()
    return IPDData(frame=frame, path=fname, sha256=sha256, card=card)


def write_ipd(ipd_frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a patient-level frame as CSV (canonical names; an unstratified study's ``stratum`` column is left out)."""
    ipd_frame.to_csv(path, index=False, lineterminator="\n", date_format="%Y-%m-%d")
