"""Integrity checks of published summary numbers: GRIM, GRIMMER-style SD feasibility, and arithmetic consistency.

Every check works from the reported numbers and their reported rounding only, with exact rational
arithmetic (:mod:`bayes_sacral.data.rounding`). Each finding says which numbers it used, whether they are
consistent (``pass``), consistent only under one intermediate rounding step (``borderline``), or impossible
(``fail``), and, in one sentence, why: which integer sums would be needed.

References: Brown & Heathers (2017) GRIM, Soc Psychol Personal Sci 8:363; Anaya (2016) GRIMMER, PeerJ Preprints
4:e2400; Heathers et al. (2018) SPRITE, PeerJ Preprints 6:e26968v1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from .rounding import (
    BORDERLINE_UNITS,
    achievable_sumsq,
    double_rounds_to,
    gap_units,
    grim_sums,
    interval,
)
from .summary import SummaryData, quantity_specs

__all__ = ["Finding", "STATUSES", "run_checks", "findings_frame"]

STATUSES = ("pass", "borderline", "fail")
#: Days per unit, for comparing durations reported in different units (a month is 365.25/12 days).
DAYS_PER = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12, "years": 365.25}


@dataclass
class Finding:
    """One integrity finding (the JSON object of ``bayes-sacral data check``)."""

    check: str
    subject: str
    status: str
    explanation: str
    numbers: dict = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _status_from_gap(gap: float) -> str:
    if gap == 0:
        return "pass"
    return "borderline" if gap <= float(BORDERLINE_UNITS) else "fail"


def _fmt(x: Fraction | float, nd: int = 3) -> str:
    return f"{float(x):.{nd}f}".rstrip("0").rstrip(".") if isinstance(x, (Fraction, float)) else str(x)


def _cell(sd: SummaryData, row: pd.Series) -> str:
    return sd.card.cell_label(row["arm"], row[sd.card.stratum_dim])


def _score_bounds(sd: SummaryData, quantity: str, time: str) -> tuple[int, int, Fraction, str]:
    """(lower, upper bound of one patient's value in points, points -> percent-of-range scale, label) of a score quantity."""
    spec = quantity_specs(sd.card)[quantity]
    outcome, item = spec.score
    lo, hi = spec.bounds
    span = hi - lo
    label = sd.card.outcome_label(outcome) + ("" if item == "total" else f" {sd.card.item_label(outcome, item).lower()}")
    if time == "change":
        return -span, span, Fraction(100, span), label
    return lo, hi, Fraction(100, span), label


def _integer_structure(sd: SummaryData, row: pd.Series) -> tuple[int | None, int | None, Fraction, str] | None:
    """(item lower bound, upper bound, scale to reported unit, description) for means of whole numbers."""
    q, unit = row["quantity"], row["unit"]
    spec = quantity_specs(sd.card).get(q)
    if spec is None:
        return None
    if spec.score is not None:
        lo, hi, pct, label = _score_bounds(sd, q, row["time"])
        what = "changes" if row["time"] == "change" else "scores"
        if unit == "points":
            return lo, hi, Fraction(1), f"whole-number {label} {what} in {lo}..{hi} points"
        if unit == "percent_of_max":
            if row["time"] != "change":  # percent of the range counts from the scale's minimum
                lo, hi = 0, hi - lo
            return lo, hi, pct, f"whole-number {label} {what} in {lo}..{hi} points, reported as percent of the range"
        return None
    if q == "age" and unit == "years":
        return 0, 120, Fraction(1), "ages in whole years (an assumption: the source does not say)"
    cov = sd.card.covariate_specs().get(q)
    if cov is not None and cov.type == "integer" and (not cov.unit or cov.unit == unit):
        lo = None if cov.min is None else int(cov.min)
        hi = None if cov.max is None else int(cov.max)
        return lo, hi, Fraction(1), f"whole-number {q}"
    if unit == "days" and (q == "followup" or q.endswith("_time")):
        return 0, None, Fraction(1), "whole days"
    return None


# ---------------------------------------------------------------------- GRIM
def check_grim(sd: SummaryData) -> list[Finding]:
    out = []
    for _, row in sd.frame[sd.frame["statistic"] == "mean"].iterrows():
        struct = _integer_structure(sd, row)
        if struct is None or pd.isna(row["n"]):
            continue
        lo, hi, scale, desc = struct
        n, d, v = int(row["n"]), int(row["decimals"]), row["value_text"]
        sums = grim_sums(v, d, n, scale, lo, hi)
        subject = f"{row['quantity']} {row['time'] or ''} mean, {_cell(sd, row)} ({row['id']})".replace("  ", " ")
        nums = {"mean": v, "decimals": d, "n": n, "unit": row["unit"]}
        if sums:
            s = sums[0]
            expl = f"n = {n} {desc} can have this mean: sum {s} gives {_fmt(scale * Fraction(s, n))}"
            if len(sums) > 1:
                expl += f" (sums {sums[0]}..{sums[-1]} all round to {v})"
            out.append(Finding("grim", subject, "pass", expl + ".", {**nums, "sums": sums}, [row["id"]]))
            continue
        # nearest achievable means on either side
        a, _b = interval(v, d)
        s_below = math.floor(a * n / scale)
        cands = [s for s in (s_below, s_below + 1) if (lo is None or s >= n * lo) and (hi is None or s <= n * hi)]
        best = min(cands, key=lambda s: gap_units(scale * Fraction(s, n), v, d))
        gap = gap_units(scale * Fraction(best, n), v, d)
        status = _status_from_gap(gap)
        near = ", ".join(f"{s}/{n}{'' if scale == 1 else f'×{_fmt(scale)}'} = {_fmt(scale * Fraction(s, n))}" for s in cands)
        expl = f"no sum of {n} {desc} gives a mean that rounds to {v}: the nearest are {near}"
        if status == "borderline":
            expl += "; only an intermediate rounding to one more decimal would reach it"
        out.append(Finding("grim", subject, status, expl + ".", {**nums, "nearest_sums": cands, "gap_units": round(gap, 4)}, [row["id"]]))
    return out


# ---------------------------------------------------------------------- GRIMMER
def _change_sums_from_means(sd: SummaryData, row: pd.Series) -> tuple[list[int] | None, list[str]]:
    """Change sums implied by the cell's pre/post means in points (None when either is missing or GRIM-infeasible)."""
    ids = []
    sets = []
    for t in ("pre", "post"):
        r = sd.canonical(quantity=row["quantity"], arm=row["arm"], stratum=row[sd.card.stratum_dim], time=t, statistic="mean", unit="points")
        if r is None or pd.isna(r["n"]) or int(r["n"]) != int(row["n"]):
            return None, []
        lo, hi, _, _ = _score_bounds(sd, row["quantity"], t)
        s = grim_sums(r["value_text"], int(r["decimals"]), int(r["n"]), Fraction(1), lo, hi)
        if not s:
            return None, []
        sets.append(s)
        ids.append(r["id"])
    pre, post = sets
    return list(range(post[0] - pre[-1], post[-1] - pre[0] + 1)), ids


def check_grimmer(sd: SummaryData) -> list[Finding]:
    out = []
    for _, row in sd.frame[sd.frame["statistic"] == "sd"].iterrows():
        if pd.isna(row["n"]):
            continue
        n = int(row["n"])
        subject = f"{row['quantity']} {row['time'] or ''} SD, {_cell(sd, row)} ({row['id']})".replace("  ", " ")
        mean = sd.canonical(quantity=row["quantity"], arm=row["arm"], stratum=row[sd.card.stratum_dim], time=row["time"],
                            category=row["category"], statistic="mean", unit=row["unit"])
        struct = _integer_structure(sd, row)
        if struct is None or mean is None or int(mean["n"]) != n:
            continue
        if n < 2:
            out.append(Finding("grimmer", subject, "borderline", "an SD of a single value is undefined; the reported SD cannot be checked.",
                               {"sd": row["value_text"], "n": n}, [row["id"]]))
            continue
        lo, hi, scale, desc = struct
        ids = [row["id"], mean["id"]]
        sums = grim_sums(mean["value_text"], int(mean["decimals"]), n, scale, lo, hi)
        note = ""
        if quantity_specs(sd.card)[row["quantity"]].score is not None and row["time"] == "change":
            implied, extra = _change_sums_from_means(sd, row)
            if implied is not None:
                both = sorted(set(sums) & set(implied))
                if both:
                    sums = both
                    ids += extra
                    note = " (change sums also constrained by the cell's pre and post means)"
        if not sums:
            out.append(Finding("grimmer", subject, "fail", f"the mean {mean['value_text']} itself is impossible for n = {n} (see GRIM), so no SD is.",
                               {"sd": row["value_text"], "mean": mean["value_text"], "n": n}, ids))
            continue
        if hi is None or lo is None or n > 60:
            continue  # exact enumeration needs bounded items and small n
        reach = achievable_sumsq(n, lo, hi)
        a, b = interval(row["value_text"], int(row["decimals"]))
        a, b = max(a, Fraction(0)) / scale, b / scale
        found = None
        nearest: tuple[float, int, int] | None = None
        for s in sums:
            mask = reach.get(s, 0)
            base = Fraction(s * s, n)
            q_lo = math.ceil(base + (n - 1) * a * a)
            q_hi = math.floor(base + (n - 1) * b * b)
            if q_hi >= q_lo and (mask >> q_lo) & ((1 << (q_hi - q_lo + 1)) - 1):
                window = (mask >> q_lo) & ((1 << (q_hi - q_lo + 1)) - 1)
                q = q_lo + ((window & -window).bit_length() - 1)
                found = (s, q)
                break
            below = mask & ((1 << max(q_lo, 0)) - 1)
            above = mask >> (q_hi + 1) if q_hi >= 0 else mask
            for q in ([below.bit_length() - 1] if below else []) + ([q_hi + 1 + (above & -above).bit_length() - 1] if above else []):
                sdv = float(scale) * math.sqrt(max(float(q - base), 0.0) / (n - 1))
                g = gap_units(Fraction(sdv), row["value_text"], int(row["decimals"]))
                if nearest is None or g < nearest[0]:
                    nearest = (g, s, q)
        nums = {"sd": row["value_text"], "mean": mean["value_text"], "n": n, "unit": row["unit"], "item_range": [lo, hi]}
        if found:
            s, q = found
            sdv = float(scale) * math.sqrt((q - s * s / n) / (n - 1))
            out.append(Finding("grimmer", subject, "pass",
                               f"n = {n} {desc} can have mean {mean['value_text']} and SD {row['value_text']}{note}: "
                               f"e.g. sum {s} and sum of squares {q} give SD {sdv:.3f}.",
                               {**nums, "sum": s, "sum_of_squares": q}, ids))
            continue
        g, s, q = nearest if nearest else (float("inf"), sums[0], 0)
        sdv = float(scale) * math.sqrt(max(q - s * s / n, 0) / (n - 1)) if nearest else float("nan")
        status = _status_from_gap(g)
        expl = (f"no {n} {desc} with mean {mean['value_text']}{note} have an SD that rounds to {row['value_text']}: "
                f"the nearest achievable SD is {sdv:.4f} (sum {s}, sum of squares {q})")
        if status == "borderline":
            expl += f"; it rounds to {row['value_text']} only if first rounded to one more decimal ({sdv:.4f} → {sdv:.{int(row['decimals']) + 1}f})"
        out.append(Finding("grimmer", subject, status, expl + ".", {**nums, "nearest_sd": round(sdv, 6), "gap_units": round(g, 4)}, ids))
    return out


# ---------------------------------------------------------------------- domain sums
def check_item_sums(sd: SummaryData) -> list[Finding]:
    """Item means of a score against its total: the item sums must include a total the reported total allows."""
    out = []
    card = sd.card
    for oname, o in card.outcomes.items():
        if o.kind != "score" or not o.items:
            continue
        for arm, frac, t in ((a, f, t) for a in card.arm_levels for f in card.stratum_levels for t in ("pre", "post")):
            if True:
                total = sd.canonical(quantity=f"{oname}_total", arm=arm, stratum=frac, time=t, statistic="mean", unit="points")
                items = [sd.canonical(quantity=f"{oname}_{i}", arm=arm, stratum=frac, time=t, statistic="mean", unit="points") for i in o.items]
                if total is None or any(r is None for r in items):
                    continue
                n = int(total["n"])
                ids = [total["id"], *(r["id"] for r in items)]
                subject = f"{card.outcome_label(oname)} items vs total, {card.cell_label(arm, frac)}, {t}"
                item_sets = [grim_sums(r["value_text"], int(r["decimals"]), int(r["n"]), Fraction(1), o.item_min, o.item_max) for r in items]
                tot_set = grim_sums(total["value_text"], int(total["decimals"]), n, Fraction(1), o.min, o.max)
                printed_sum = sum(Fraction(r["value_text"]) for r in items)
                nums = {"total": total["value_text"], "items": [r["value_text"] for r in items], "sum_of_item_means": _fmt(printed_sum, 2), "n": n}
                if all(item_sets) and tot_set and all(int(r["n"]) == n for r in items):
                    lo_s = sum(s[0] for s in item_sets)
                    hi_s = sum(s[-1] for s in item_sets)
                    overlap = max(lo_s, tot_set[0]) <= min(hi_s, tot_set[-1])
                    sums_txt = " + ".join(str(s[0]) if len(s) == 1 else f"[{s[0]}..{s[-1]}]" for s in item_sets)
                    if overlap:
                        out.append(Finding("item_sum", subject, "pass",
                                           f"the item sums ({sums_txt} = {lo_s}{'' if lo_s == hi_s else f'..{hi_s}'}) include a total the reported {total['value_text']} allows ({tot_set[0]}{'' if len(tot_set) == 1 else f'..{tot_set[-1]}'} over n = {n}).",
                                           {**nums, "item_sums": [[s[0], s[-1]] for s in item_sets], "total_sums": [tot_set[0], tot_set[-1]]}, ids))
                        continue
                    near = lo_s if lo_s > tot_set[-1] else hi_s
                    gap = gap_units(Fraction(near, n), total["value_text"], int(total["decimals"]))
                    status = _status_from_gap(gap)
                    out.append(Finding("item_sum", subject, status,
                                       f"the item means need item sums {sums_txt} = {lo_s}{'' if lo_s == hi_s else f'..{hi_s}'} "
                                       f"(mean total {_fmt(Fraction(lo_s, n), 2)}{'' if lo_s == hi_s else f'..{_fmt(Fraction(hi_s, n), 2)}'}), "
                                       f"but the reported total {total['value_text']} needs a sum of {tot_set[0]}{'' if len(tot_set) == 1 else f'..{tot_set[-1]}'} over n = {n}.",
                                       {**nums, "item_sums": [[s[0], s[-1]] for s in item_sets], "total_sums": [tot_set[0], tot_set[-1]], "gap_units": round(gap, 4)}, ids))
                    continue
                # interval arithmetic when an item or the total is itself GRIM-infeasible
                lo_i = sum(interval(r["value_text"], int(r["decimals"]))[0] for r in items)
                hi_i = sum(interval(r["value_text"], int(r["decimals"]))[1] for r in items)
                t_lo, t_hi = interval(total["value_text"], int(total["decimals"]))
                ok = max(lo_i, t_lo) <= min(hi_i, t_hi)
                near = lo_i if lo_i > t_hi else hi_i
                gap = 0.0 if ok else gap_units(near, total["value_text"], int(total["decimals"]))
                out.append(Finding("item_sum", subject, _status_from_gap(gap),
                                   f"(by rounding intervals, as a mean here fails GRIM) the item means sum to {_fmt(lo_i, 3)}..{_fmt(hi_i, 3)}; "
                                   f"the total {total['value_text']} stands for {_fmt(t_lo, 3)}..{_fmt(t_hi, 3)}.", nums, ids))
    return out


# ---------------------------------------------------------------------- change vs pre/post
def check_change_vs_means(sd: SummaryData) -> list[Finding]:
    out = []
    rows = sd.frame[(sd.frame["time"] == "change") & (sd.frame["statistic"] == "mean")]
    for _, row in rows.iterrows():
        strat = row[sd.card.stratum_dim]
        pre = sd.canonical(quantity=row["quantity"], arm=row["arm"], stratum=strat, time="pre", statistic="mean", unit="points")
        post = sd.canonical(quantity=row["quantity"], arm=row["arm"], stratum=strat, time="post", statistic="mean", unit="points")
        if pre is None or post is None:
            continue
        n = int(row["n"])
        lo, hi, pct, _ = _score_bounds(sd, row["quantity"], "pre")
        scale = pct if row["unit"] == "percent_of_max" else Fraction(1)
        subject = f"mean change vs pre/post means, {_cell(sd, row)} ({row['id']})"
        ids = [row["id"], pre["id"], post["id"]]
        v, d = row["value_text"], int(row["decimals"])
        nums = {"change": v, "unit": row["unit"], "pre": pre["value_text"], "post": post["value_text"], "n": n}
        pre_s = grim_sums(pre["value_text"], int(pre["decimals"]), n, Fraction(1), lo, hi)
        post_s = grim_sums(post["value_text"], int(post["decimals"]), n, Fraction(1), lo, hi)
        if pre_s and post_s and int(pre["n"]) == n == int(post["n"]):
            diffs = range(post_s[0] - pre_s[-1], post_s[-1] - pre_s[0] + 1)
            ok = [s for s in diffs if gap_units(scale * Fraction(s, n), v, d) == 0]
            if ok:
                out.append(Finding("change_vs_means", subject, "pass",
                                   f"post sum {post_s[0]}{'' if len(post_s) == 1 else '..' + str(post_s[-1])} minus pre sum "
                                   f"{pre_s[0]}{'' if len(pre_s) == 1 else '..' + str(pre_s[-1])} gives a change of {ok[0]} points over n = {n}, "
                                   f"i.e. {_fmt(scale * Fraction(ok[0], n), 2)}{'%' if scale != 1 else ' points'}, which rounds to {v}.",
                                   {**nums, "change_sums": ok}, ids))
                continue
            best = min(diffs, key=lambda s: gap_units(scale * Fraction(s, n), v, d))
            gap = gap_units(scale * Fraction(best, n), v, d)
            out.append(Finding("change_vs_means", subject, _status_from_gap(gap),
                               f"the pre and post means allow change sums {diffs.start}..{diffs.stop - 1} over n = {n}; the closest, {best}, "
                               f"gives {_fmt(scale * Fraction(best, n), 3)}, which does not round to the reported {v}.",
                               {**nums, "gap_units": round(gap, 4)}, ids))
            continue
        a_lo, a_hi = interval(pre["value_text"], int(pre["decimals"]))
        b_lo, b_hi = interval(post["value_text"], int(post["decimals"]))
        c_lo, c_hi = (b_lo - a_hi) * scale, (b_hi - a_lo) * scale
        r_lo, r_hi = interval(v, d)
        ok = max(c_lo, r_lo) <= min(c_hi, r_hi)
        gap = 0.0 if ok else gap_units(c_lo if c_lo > r_hi else c_hi, v, d)
        out.append(Finding("change_vs_means", subject, _status_from_gap(gap),
                           f"(by rounding intervals, as a mean here fails GRIM) post − pre lies in {_fmt(c_lo, 3)}..{_fmt(c_hi, 3)}; the reported change {v} stands for {_fmt(r_lo, 3)}..{_fmt(r_hi, 3)}.",
                           nums, ids))
    return out


# ---------------------------------------------------------------------- counts vs percents
def check_count_percent(sd: SummaryData) -> list[Finding]:
    out = []
    for _, row in sd.frame[sd.frame["statistic"] == "percent"].iterrows():
        n = int(row["n"])
        v, d = row["value_text"], int(row["decimals"])
        count = sd.canonical(quantity=row["quantity"], arm=row["arm"], stratum=row[sd.card.stratum_dim], category=row["category"],
                             statistic="count", n=n)
        subject = f"{row['quantity']}{'[' + row['category'] + ']' if row['category'] else ''} percent, {_cell(sd, row)} ({row['id']})"
        if count is not None:
            k = int(count["value"])
            x = Fraction(100 * k, n)
            gap = gap_units(x, v, d)
            status = _status_from_gap(gap)
            if status == "pass":
                expl = f"{k} of {n} is {_fmt(x, 2)}%, which rounds to {v}%."
            elif double_rounds_to(x, v, d):
                expl = f"{k} of {n} is {_fmt(x, 3)}%, which rounds to {round(float(x))}%, not {v}%; it gives {v}% only by double rounding ({_fmt(x, 3)} → {_fmt(x, 1)} → {v})."
            else:
                expl = f"{k} of {n} is {_fmt(x, 3)}%, which does not round to {v}%."
            out.append(Finding("count_percent", subject, status, expl, {"count": k, "n": n, "percent": v, "exact_percent": round(float(x), 4)}, [row["id"], count["id"]]))
            continue
        ks = [k for k in range(n + 1) if gap_units(Fraction(100 * k, n), v, d) == 0]
        if ks:
            out.append(Finding("count_percent", subject, "pass",
                               f"no count is printed; {v}% of n = {n} is consistent with {' or '.join(str(k) for k in ks)} patient(s).",
                               {"n": n, "percent": v, "consistent_counts": ks}, [row["id"]]))
        else:
            best = min(range(n + 1), key=lambda k: gap_units(Fraction(100 * k, n), v, d))
            gap = gap_units(Fraction(100 * best, n), v, d)
            out.append(Finding("count_percent", subject, _status_from_gap(gap),
                               f"no count of n = {n} gives {v}%; the nearest is {best} ({_fmt(Fraction(100 * best, n), 3)}%).",
                               {"n": n, "percent": v, "gap_units": round(gap, 4)}, [row["id"]]))
    return out


# ---------------------------------------------------------------------- partitions, composites, cell sizes
def check_partitions(sd: SummaryData) -> list[Finding]:
    """Category counts of a cell: composites equal the sum of their parts (``a_b`` = a + b, ``any`` = the rest), and
    the categories of a partitioning quantity (ordinal outcomes, sex, declared covariates) account for the cell."""
    out = []
    card = sd.card
    specs = quantity_specs(card)
    sdim = card.stratum_dim
    categorical = [q for q, sp in specs.items() if sp.categories not in ("none",)]
    counts = sd.frame[(sd.frame["statistic"] == "count") & (sd.frame["quantity"].isin(categorical))]
    for (q, arm, frac), grp in counts.groupby(["quantity", "arm", sdim], sort=False):
        grp = grp.drop_duplicates("category")
        grp = grp[grp["category"] != ""]
        cats = list(grp["category"])
        composites = {c: c.split("_") for c in cats if "_" in c and all(p in cats for p in c.split("_"))}
        partition = specs[q].partition
        if not partition and "any" in cats:
            composites["any"] = [c for c in cats if c != "any" and c not in composites]
        cell = card.cell_label(arm, frac) if arm != "all" else ("all patients" if frac == "all" else frac)
        for comp, parts in composites.items():
            whole = grp[grp["category"] == comp].iloc[0]
            part_rows = grp[grp["category"].isin(parts)]
            s = int(part_rows["value"].sum())
            status = "pass" if s == int(whole["value"]) else "fail"
            out.append(Finding("category_sum", f"{q}[{comp}] = sum of {', '.join(parts)}, {cell}", status,
                               f"{' + '.join(str(int(x)) for x in part_rows['value'])} = {s} {'equals' if status == 'pass' else 'differs from'} the reported {int(whole['value'])}.",
                               {"whole": int(whole["value"]), "parts": dict(zip(part_rows["category"], part_rows["value"].astype(int).tolist(), strict=True))},
                               [whole["id"], *part_rows["id"]]))
        if not partition:
            continue
        components = {p for parts in composites.values() for p in parts}
        top = grp[~grp["category"].isin(components)]
        ns = set(top["n"].dropna().astype(int))
        if len(ns) != 1:
            continue
        n = ns.pop()
        s = int(top["value"].sum())
        levels = specs[q].categories
        complete = isinstance(levels, tuple) and len(top) == len(levels)
        cov = card.covariate_specs().get(q)
        if cov is not None and cov.type == "categorical":
            complete = len(top) == len(cov.levels)
        if s == n:
            status, expl = "pass", f"the categories {', '.join(top['category'])} account for {s} of n = {n}."
        elif s > n:
            status, expl = "fail", f"the categories {', '.join(top['category'])} add up to {s}, more than n = {n}."
        elif complete:
            status, expl = "fail", f"all categories are reported but add up to {s}, not n = {n}."
        else:
            status, expl = "pass", f"the reported categories account for {s} of n = {n}; the other {n - s} are in categories not reported."
        out.append(Finding("category_sum", f"{q} categories, {cell}", status, expl,
                           {"n": n, "counts": dict(zip(top["category"], top["value"].astype(int).tolist(), strict=True))}, list(top["id"])))
    return out


def check_cell_sizes(sd: SummaryData) -> list[Finding]:
    """Cell sizes against the reported arm, stratum and study totals; the n of every cell-level statistic against its cell."""
    out = []
    card = sd.card
    sdim = card.stratum_dim
    cells = sd.cell_sizes()
    pat = sd.frame[(sd.frame["quantity"] == "patients") & (sd.frame["statistic"] == "count")]

    def total(arm: str, frac: str):
        return pat[(pat["arm"] == arm) & (pat[sdim] == frac)]

    margins = []
    if card.stratified:
        # margins: each arm's stratum cells against the arm total, each stratum's arm cells against the stratum total
        margins += [(f"{arm} total", total(arm, "all"), cells.sel(arm=arm).values, f"{card.strata_label} cells", "arm total")
                    for arm in card.arm_levels]
        margins += [(f"{frac} total", total("all", frac), cells.sel({sdim: frac}).values, "arm cells", "stratum total")
                    for frac in card.stratum_levels]
    for subject, rows, parts, what, whole in margins:
        if np.isnan(parts).any():
            continue
        s = int(parts.sum())
        for _, r in rows.iterrows():
            ok = s == int(r["value"])
            out.append(Finding("cell_sizes", f"{subject} ({r['id']})", "pass" if ok else "fail",
                               f"the {what} {' + '.join(str(int(x)) for x in parts)} = {s} {'equal' if ok else 'differ from'} the {whole} {int(r['value'])}.",
                               {"cells": parts.astype(int).tolist(), "total": int(r["value"])}, [r["id"]]))
    for _, r in total("all", "all").iterrows():
        if np.isnan(cells.values).any():
            continue
        s = int(cells.values.sum())
        out.append(Finding("cell_sizes", f"study total ({r['id']})", "pass" if s == int(r["value"]) else "fail",
                           f"the {cells.size} cells add up to {s}, {'equal to' if s == int(r['value']) else 'not'} the study total {int(r['value'])}.",
                           {"cells": cells.values.astype(int).tolist(), "total": int(r["value"])}, [r["id"]]))
    # n of cell-level statistics vs the cell size
    specs = quantity_specs(card)
    cell_level = [q for q, sp in specs.items() if sp.role in ("score", "event", "ordinal")]
    cell_rows = sd.frame[sd.frame["quantity"].isin(cell_level) & sd.frame["arm"].isin(card.arm_levels)
                         & sd.frame[sdim].isin(card.stratum_levels) & sd.frame["n"].notna()]
    for (arm, frac), grp in cell_rows.groupby(["arm", sdim], sort=False):
        size = cells.sel({"arm": arm, sdim: frac}).item()
        if np.isnan(size):
            continue
        cell = card.cell_label(arm, frac)
        bad = grp[grp["n"].astype(int) != int(size)]
        if bad.empty:
            out.append(Finding("cell_sizes", f"n of every cell-level statistic, {cell}", "pass",
                               f"all {len(grp)} statistics reported for this cell use n = {int(size)}, the cell size.",
                               {"cell_size": int(size), "statistics": len(grp)}, []))
        else:
            out.append(Finding("cell_sizes", f"n of every cell-level statistic, {cell}", "fail",
                               f"{len(bad)} statistic(s) use an n other than the cell size {int(size)}: {', '.join(f'{i} (n = {int(v)})' for i, v in zip(bad['id'], bad['n'], strict=True))}.",
                               {"cell_size": int(size)}, list(bad["id"])))
    zero = [(a, f) for a in card.arm_levels for f in card.stratum_levels if cells.sel({"arm": a, sdim: f}).item() == 0]
    for a, f in zero:
        out.append(Finding("cell_sizes", f"empty cell {card.cell_label(a, f)}", "fail",
                           "the cell has no patients: nothing can be estimated in it (models refuse it unless allow_empty_cells = true).",
                           {"cell_size": 0}, []))
    return out


# ---------------------------------------------------------------------- duplicates
def check_duplicates(sd: SummaryData) -> list[Finding]:
    out = []
    key = ["quantity", "arm", sd.card.stratum_dim, "time", "category", "statistic", "unit", "relation"]
    df = sd.frame[sd.frame["statistic"] != "mentioned"]
    for _, grp in df.groupby(key, sort=False):
        if len(grp) < 2:
            continue
        first = grp.iloc[0]
        f_lo, f_hi = interval(first["value_text"], int(first["decimals"]))
        for _, other in grp.iloc[1:].iterrows():
            o_lo, o_hi = interval(other["value_text"], int(other["decimals"]))
            ok = max(f_lo, o_lo) <= min(f_hi, o_hi)
            subject = f"{first['quantity']} {first['statistic']} reported twice, {_cell(sd, first)}"
            expl = (f"{first['source']} gives {first['value_text']} and {other['source']} gives {other['value_text']}: "
                    + ("they agree within rounding." if ok else "they cannot be the same number rounded."))
            out.append(Finding("duplicate_agreement", subject, "pass" if ok else "fail", expl,
                               {"values": [first["value_text"], other["value_text"]], "sources": [first["source"], other["source"]]},
                               [first["id"], other["id"]]))
    return out


# ---------------------------------------------------------------------- mean/median/range
def check_summary_ranges(sd: SummaryData) -> list[Finding]:
    out = []
    stats = sd.frame[sd.frame["statistic"].isin(["mean", "median", "min", "max"]) & sd.frame["unit"].isin(list(DAYS_PER))]
    for (q, arm, frac, _cat), grp in stats.groupby(["quantity", "arm", sd.card.stratum_dim, "category"], sort=False):
        grp = grp.drop_duplicates("statistic")
        by = {r["statistic"]: r for _, r in grp.iterrows()}
        if "min" not in by or "max" not in by or len(by) < 3:
            continue
        n = int(grp["n"].dropna().iloc[0])

        def iv(stat, by=by):
            r = by[stat]
            lo, hi = interval(r["value_text"], int(r["decimals"]))
            f = DAYS_PER[r["unit"]]
            return float(lo) * f, float(hi) * f

        m_lo, _ = iv("min")
        _, x_hi = iv("max")
        lo_sum = hi_sum = None
        if "median" in by and n % 2 == 1 and n >= 3:
            md_lo, md_hi = iv("median")
            k = (n - 1) // 2 - 1
            lo_sum = m_lo + k * m_lo + md_lo + k * md_lo + iv("max")[0]
            hi_sum = iv("min")[1] + k * md_hi + md_hi + k * x_hi + x_hi
        else:
            lo_sum = m_lo * (n - 1) + iv("max")[0]
            hi_sum = iv("min")[1] + x_hi * (n - 1)
        problems = []
        order = [s for s in ("min", "median", "max") if s in by]
        for a, b in zip(order, order[1:], strict=False):
            if iv(a)[0] > iv(b)[1]:
                problems.append(f"{a} > {b}")
        if "mean" in by:
            me_lo, me_hi = iv("mean")
            if me_hi < lo_sum / n or me_lo > hi_sum / n:
                problems.append(f"the mean must lie in {lo_sum / n:.1f}..{hi_sum / n:.1f} days for n = {n} values with this minimum, maximum{' and median' if 'median' in by and n % 2 else ''}")
        desc = ", ".join(f"{s} {by[s]['value_text']} {by[s]['unit']}" for s in ("mean", "median", "min", "max") if s in by)
        status = "fail" if problems else "pass"
        expl = (f"{desc} (n = {n}) are mutually possible" + (f": the mean can lie in {lo_sum / n:.1f}..{hi_sum / n:.1f} days." if "mean" in by else ".")
                if not problems else f"{desc} (n = {n}) are impossible together: " + "; ".join(problems) + ".")
        if any(by[s]["unit"] == "months" for s in by):
            expl += " Months are taken as 365.25/12 days."
        out.append(Finding("summary_range", f"{q}, {sd.card.cell_label(arm, frac) if arm != 'all' else 'all patients'}", status, expl,
                           {s: f"{by[s]['value_text']} {by[s]['unit']}" for s in by} | {"n": n}, list(grp["id"])))
    return out


CHECKS = {
    "cell_sizes": check_cell_sizes,
    "grim": check_grim,
    "grimmer": check_grimmer,
    "item_sum": check_item_sums,
    "change_vs_means": check_change_vs_means,
    "count_percent": check_count_percent,
    "category_sum": check_partitions,
    "duplicate_agreement": check_duplicates,
    "summary_range": check_summary_ranges,
}


def run_checks(sd: SummaryData, checks: list[str] | None = None) -> list[Finding]:
    """Run every integrity check (or those named) on summary data; findings in check order."""
    names = list(CHECKS) if checks is None else checks
    findings: list[Finding] = []
    for name in names:
        findings.extend(CHECKS[name](sd))
    return findings


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame (one row each; ``numbers`` and ``ids`` kept as objects)."""
    return pd.DataFrame([f.to_dict() for f in findings], columns=["check", "subject", "status", "explanation", "numbers", "ids"])
