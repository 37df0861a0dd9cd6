"""Patient-level data reconstructed from published summaries, in the manner of SPRITE (Heathers et al. 2018).

For every arm × stratum cell of a study, whole-number pre- and post-treatment totals of its score outcome (within the
card's bounds) are generated that reproduce every reported number to its reported precision: the pre and post means
(GRIM-feasible integer sums), the mean change (in points or percent of the range), and the SD of change; then the item
scores per patient, summing to each patient's total and matching the reported item means. The within-cell pre-post
correlation is not reported, so it is an explicit sensitivity parameter that the search targets.

Where the reported numbers admit no integer data at all, only the failing constraint is relaxed, to the nearest
achievable value, and each relaxation is returned in plain words. Event and ordinal outcomes with known cell counts
are assigned to random patients of their cell.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from ..study.card import StudyCard
from .ipd import IPDData, parse_ipd
from .rounding import achievable_sumsq, gap_units, grim_sums, interval
from .summary import SummaryData, event_counts, ordinal_counts

__all__ = ["Relaxation", "CellTargets", "Reconstruction", "cell_targets", "reconstruct", "score_outcome_of"]

_CORR_TOL = 0.05


def score_outcome_of(card: StudyCard, outcome: str | None = None) -> str:
    """The score outcome to reconstruct: ``outcome``, or the card's only score outcome."""
    scores = card.outcomes_of("score")
    if outcome is None:
        if len(scores) != 1:
            raise ValueError(f"study {card.name} has {len(scores)} score outcomes ({', '.join(scores) or 'none'}); name the one to reconstruct")
        return scores[0]
    if outcome not in scores:
        raise ValueError(f"{outcome!r} is not a score outcome of study {card.name} (score outcomes: {', '.join(scores) or 'none'})")
    return outcome


@dataclass
class Relaxation:
    """One reported number that no integer data can reproduce, and what was used instead."""

    cell: str
    constraint: str
    reported: str
    used: str
    reason: str

    def __str__(self) -> str:
        return f"{self.cell}: {self.constraint}: reported {self.reported}, used {self.used} ({self.reason})"


@dataclass
class CellTargets:
    arm: str
    stratum: str
    label: str
    n: int
    lo: int  # score bounds (points)
    hi: int
    pairs: list[tuple[int, int]]  # feasible (pre sum, post sum)
    sd_interval: tuple[float, float] | None  # SD of change, points
    item_lo: int = 0
    item_hi: int = 0
    items: tuple[str, ...] = ()
    item_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # time -> per item (min sum, max sum)
    item_targets: dict[str, list[str]] = field(default_factory=dict)  # time -> reported item means (text)
    item_decimals: dict[str, list[int]] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)
    ordinal: dict[str, list[float]] = field(default_factory=dict)


def _mean_rows(sd: SummaryData, arm: str, frac: str, time: str, quantity: str):
    rows = sd.select(quantity=quantity, arm=arm, stratum=frac, time=time, statistic="mean", unit="points")
    return [r for _, r in rows.iterrows()]


def _feasible_sums(rows, n: int, lo: int, hi: int, label: str, what: str, relax: list[Relaxation]) -> list[int]:
    """Integer sums consistent with every reported mean of one quantity; GRIM-impossible reports are dropped."""
    sets, dropped = [], []
    for r in rows:
        s = grim_sums(r["value_text"], int(r["decimals"]), n, Fraction(1), lo, hi)
        if not s:
            dropped.append(r)
            continue
        sets.append((r, set(s)))
    kept = ", ".join(f"{r['value_text']} ({r['source']})" for r, _ in sets) or "nothing"
    for r in dropped:
        relax.append(Relaxation(label, what, f"{r['value_text']} ({r['source']})", kept,
                                f"no {n} whole numbers have a mean that rounds to {r['value_text']} (GRIM)"))
    if not sets:
        return []
    common = set.intersection(*(s for _, s in sets))
    if not common:
        first, keep = sets[0]
        for r, _s in sets[1:]:
            relax.append(Relaxation(label, what, f"{r['value_text']} ({r['source']})", f"{first['value_text']} ({first['source']})",
                                    "the two reports admit no common integer sum; the canonical (first) one is kept"))
        common = keep
    return sorted(common)


def _sd_feasible(n: int, change_sums: list[int], lo: float, hi: float, span: int) -> tuple[bool, float]:
    """Whether n integer changes in [-span, span] with one of the sums can have an SD in [lo, hi] (points); nearest SD."""
    reach = achievable_sumsq(n, -span, span)
    best, best_gap = float("nan"), float("inf")
    for s in change_sums:
        mask = reach.get(s, 0)
        base = s * s / n
        q_lo = math.ceil(base + (n - 1) * lo * lo - 1e-9)
        q_hi = math.floor(base + (n - 1) * hi * hi + 1e-9)
        if q_hi >= q_lo and (mask >> max(q_lo, 0)) & ((1 << (q_hi - max(q_lo, 0) + 1)) - 1):
            return True, float("nan")
        for q in range(max(q_lo - 400, 0), q_hi + 400):
            if mask >> q & 1:
                sdv = math.sqrt(max(q - base, 0) / (n - 1))
                g = min(abs(sdv - lo), abs(sdv - hi))
                if g < best_gap:
                    best, best_gap = sdv, g
    return False, best


def cell_targets(sd: SummaryData, outcome: str | None = None) -> tuple[dict[tuple[str, str], CellTargets], list[Relaxation]]:
    """What every cell's reconstruction must reproduce, with the relaxations the reported numbers force."""
    card = sd.card
    outcome = score_outcome_of(card, outcome)
    o = card.outcomes[outcome]
    label_o = card.outcome_label(outcome)
    span = o.max - o.min
    cells = sd.cell_sizes()
    inferred: list[str] = []
    events = {name: event_counts(sd, name, inferred) for name in card.outcomes_of("event")}
    ordinals = {name: ordinal_counts(sd, name, inferred) for name in card.outcomes_of("ordinal")}
    relax: list[Relaxation] = []
    targets = {}
    sdim = card.stratum_dim
    for arm in card.arm_levels:
        for frac in card.stratum_levels:
            n_val = cells.sel({"arm": arm, sdim: frac}).item()
            label = card.cell_label(arm, frac)
            if np.isnan(n_val):
                raise ValueError(f"the cell size of {label} is not reported")
            n = int(n_val)
            if n == 0:
                raise ValueError(f"cell {label} has no patients; nothing can be reconstructed in it")
            q = f"{outcome}_total"
            pre = _feasible_sums(_mean_rows(sd, arm, frac, "pre", q), n, o.min, o.max, label, f"mean {label_o} (pre)", relax)
            post = _feasible_sums(_mean_rows(sd, arm, frac, "post", q), n, o.min, o.max, label, f"mean {label_o} (post)", relax)
            if not pre or not post:
                raise ValueError(f"{label}: the pre- and post-treatment means of {label_o} are needed to reconstruct patients")
            pairs = [(a, b) for a in pre for b in post]
            chg = sd.canonical(quantity=q, arm=arm, stratum=frac, time="change", statistic="mean")
            if chg is not None:
                scale = Fraction(100, span) if chg["unit"] == "percent_of_max" else Fraction(1)
                ok = [(a, b) for a, b in pairs if gap_units(scale * Fraction(b - a, n), chg["value_text"], int(chg["decimals"])) == 0]
                if ok:
                    pairs = ok
                else:
                    relax.append(Relaxation(label, "mean change", f"{chg['value_text']} {chg['unit']}", "post − pre of the means",
                                            "no integer pre and post sums reproduce the reported mean change"))
            sdrow = sd.canonical(quantity=q, arm=arm, stratum=frac, time="change", statistic="sd")
            sd_int = None
            if sdrow is not None and n >= 2:
                f = span / 100 if sdrow["unit"] == "percent_of_max" else 1.0
                lo, hi = (float(x) * f for x in interval(sdrow["value_text"], int(sdrow["decimals"])))
                lo = max(lo, 0.0)
                ok, nearest = _sd_feasible(n, sorted({b - a for a, b in pairs}), lo, hi, span)
                if not ok:
                    unit = "%" if sdrow["unit"] == "percent_of_max" else " points"
                    shown = nearest / f if f != 1 else nearest
                    relax.append(Relaxation(label, "SD of change", f"{sdrow['value_text']}{unit}", f"{shown:.3f}{unit}",
                                            f"no {n} integer changes with these means have an SD that rounds to {sdrow['value_text']}; "
                                            f"the nearest achievable SD is used"))
                    lo, hi = min(lo, nearest) - 1e-9, max(hi, nearest) + 1e-9
                sd_int = (lo, hi)
            t = CellTargets(arm, frac, label, n, o.min, o.max, pairs, sd_int, o.item_min or 0, o.item_max or 0, tuple(o.items))
            for time in ("pre", "post"):
                rows = [sd.canonical(quantity=f"{outcome}_{item}", arm=arm, stratum=frac, time=time, statistic="mean", unit="points")
                        for item in o.items]
                if not rows or any(r is None for r in rows):
                    continue
                ranges = []
                for item, r in zip(o.items, rows, strict=True):
                    s = grim_sums(r["value_text"], int(r["decimals"]), n, Fraction(1), o.item_min, o.item_max)
                    if not s:  # GRIM-impossible item mean: nearest sums either side
                        a, _b = interval(r["value_text"], int(r["decimals"]))
                        below = math.floor(a * n)
                        s = [min((below, below + 1), key=lambda v: gap_units(Fraction(v, n), r["value_text"], int(r["decimals"])))]
                        relax.append(Relaxation(label, f"mean {item} ({time})", r["value_text"], f"{s[0]}/{n}", "GRIM-impossible"))
                    ranges.append((s[0], s[-1]))
                t.item_ranges[time] = ranges
                t.item_targets[time] = [r["value_text"] for r in rows]
                t.item_decimals[time] = [int(r["decimals"]) for r in rows]
            for name, arr in events.items():
                ev = arr.sel({"arm": arm, sdim: frac}).item()
                if not np.isnan(ev):
                    t.events[name] = ev
            for name, arr in ordinals.items():
                c = arr.sel({"arm": arm, sdim: frac}).values
                if not np.isnan(c).any():
                    t.ordinal[name] = c.tolist()
            targets[arm, frac] = t
    return targets, relax


# ---------------------------------------------------------------------- search
def _composition(total: int, n: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """A random vector of n integers in [0, hi] summing to total."""
    v = np.full(n, total // n)
    v[: total % n] += 1
    rng.shuffle(v)
    for _ in range(6 * n):
        i, j = rng.integers(n, size=2)
        d = int(rng.integers(1, 4))
        if i != j and v[i] - d >= 0 and v[j] + d <= hi:
            v[i] -= d
            v[j] += d
    return v


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return 0.0
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def _search_totals(t: CellTargets, pair: tuple[int, int], rho: float | None, rng: np.random.Generator,
                   max_iter: int = 60_000) -> tuple[np.ndarray, np.ndarray, bool]:
    """Totals (in points) of n patients with the pair's sums; the search runs on values shifted to start at 0."""
    n = t.n
    top = t.hi - t.lo
    shift = n * t.lo
    target_corr = rho if (rho is not None and n >= 3) else None
    best = None
    for _restart in range(8):
        pre = _composition(pair[0] - shift, n, top, rng)
        post = _composition(pair[1] - shift, n, top, rng)
        lo = hi = sd_target = 0.0
        width = 1.0
        if t.sd_interval is not None:
            lo, hi = t.sd_interval
            sd_target = float(rng.uniform(lo, hi)) if hi > lo else lo
            width = max(hi - lo, 0.02)
        temp = 0.05

        def loss(pre, post, lo=lo, hi=hi, sd_target=sd_target, width=width):
            val = 0.0
            if t.sd_interval is not None and n >= 2:
                s = float(np.std(post - pre, ddof=1))
                if not (lo <= s <= hi):
                    val += ((s - sd_target) / width) ** 2
            if target_corr is not None:
                r = _corr(pre, post)
                if abs(r - target_corr) > _CORR_TOL:
                    val += ((r - target_corr) / _CORR_TOL) ** 2
            return val

        cur = loss(pre, post)
        for _it in range(max_iter):
            if cur == 0.0:
                return pre + t.lo, post + t.lo, True
            vec = pre if rng.random() < 0.5 else post
            i, j = rng.integers(n, size=2)
            if i == j:
                continue
            d = int(rng.integers(1, 4))
            if vec[i] - d < 0 or vec[j] + d > top:
                continue
            vec[i] -= d
            vec[j] += d
            new = loss(pre, post)
            if new <= cur or rng.random() < math.exp(-(new - cur) / temp):
                cur = new
            else:
                vec[i] += d
                vec[j] -= d
        if best is None or cur < best[2]:
            best = (pre.copy(), post.copy(), cur)
    return best[0] + t.lo, best[1] + t.lo, False


def _items_for(totals: np.ndarray, sums: list[int], rng: np.random.Generator, item_max: int = 5) -> np.ndarray | None:
    """n × k integer matrix in 0..item_max with the given row sums (patients) and column sums (items), randomised; None if
    none exists.

    Existence and a first solution come from a maximum flow (source → patient, capacity the total; patient → item,
    capacity item_max; item → sink, capacity the item sum); random moves that keep every row and column sum then spread it.
    """
    n, k = len(totals), len(sums)
    if int(np.sum(totals)) != int(np.sum(sums)):
        return None
    x = np.zeros((n, k), dtype=int)
    row_left = np.asarray(totals, dtype=int).copy()
    col_left = np.asarray(sums, dtype=int).copy()
    while row_left.sum() > 0:
        # breadth-first search for an augmenting path in the residual graph: patient rows i, item columns d
        start = [i for i in rng.permutation(n) if row_left[i] > 0]
        prev: dict = {}
        queue = [("r", i) for i in start]
        for node in queue:
            prev.setdefault(node, None)
        found = None
        while queue and found is None:
            node = queue.pop(0)
            kind, idx = node
            if kind == "r":
                for d in rng.permutation(k):
                    if x[idx, d] < item_max and ("c", d) not in prev:
                        prev[("c", d)] = node
                        if col_left[d] > 0:
                            found = ("c", d)
                            break
                        queue.append(("c", d))
            else:
                for i in rng.permutation(n):
                    if x[i, idx] > 0 and ("r", i) not in prev:
                        prev[("r", i)] = node
                        queue.append(("r", i))
        if found is None:
            return None
        node = found
        while prev[node] is not None:  # alternate +1 (row -> column) and -1 (column -> row) along the path
            p = prev[node]
            if p[0] == "r":
                x[p[1], node[1]] += 1
            else:
                x[node[1], p[1]] -= 1
            node = p
        row_left[node[1]] -= 1
        col_left[found[1]] -= 1
    for _ in range(40 * n):  # randomise with moves that keep every row and column sum
        i, j = rng.integers(n, size=2)
        d, e = rng.integers(k, size=2)
        if i != j and d != e and x[i, d] > 0 and x[i, e] < item_max and x[j, e] > 0 and x[j, d] < item_max:
            x[i, d] -= 1
            x[i, e] += 1
            x[j, e] -= 1
            x[j, d] += 1
    return x


def _choose_item_sums(t: CellTargets, time: str, total: int, rng: np.random.Generator, relax: list[Relaxation]) -> list[int] | None:
    ranges = t.item_ranges.get(time)
    if ranges is None:
        return None
    lo = sum(a for a, _ in ranges)
    hi = sum(b for _, b in ranges)
    sums = [int(rng.integers(a, b + 1)) for a, b in ranges]
    if lo <= total <= hi:
        while sum(sums) != total:  # random walk inside the box to hit the total
            i = int(rng.integers(len(sums)))
            step = 1 if sum(sums) < total else -1
            if ranges[i][0] <= sums[i] + step <= ranges[i][1]:
                sums[i] += step
        return sums
    # no item sums within rounding add up to the total: move the items whose shifted means stay closest
    sums = [b if total > hi else a for a, b in ranges]
    texts, decs = t.item_targets[time], t.item_decimals[time]
    moved = []
    while sum(sums) != total:
        step = 1 if sum(sums) < total else -1
        cost = [gap_units(Fraction(s + step, t.n), txt, dec) if t.item_lo * t.n <= s + step <= t.item_hi * t.n else float("inf")
                for s, txt, dec in zip(sums, texts, decs, strict=True)]
        i = int(np.argmin(cost))
        sums[i] += step
        moved.append(i)
    detail = ", ".join(f"{t.items[i]} {texts[i]} → {sums[i] / t.n:.2f}" for i in sorted(set(moved)))
    relax.append(Relaxation(t.label, f"item means ({time})", f"sum of item means ≠ total ({total}/{t.n} = {total / t.n:.2f})",
                            detail, "the reported item means cannot add up to the reported total; the items nearest to "
                                    "their reported rounding were shifted"))
    return sums


@dataclass
class Reconstruction:
    """K reconstructed patient-level data sets and how they were obtained."""

    datasets: list[IPDData]
    relaxations: list[Relaxation]
    achieved: pd.DataFrame
    correlation: float
    seed: int
    outcome: str = ""

    def relaxations_unique(self) -> list[Relaxation]:
        seen, out = set(), []
        for r in self.relaxations:
            key = (r.cell, r.constraint, r.reported)
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out

    def to_records(self) -> list[dict]:
        return [asdict(r) for r in self.relaxations_unique()]


def reconstruct(sd: SummaryData, k: int = 20, correlation: float = 0.5, seed: int = 1, outcome: str | None = None) -> Reconstruction:
    """Reconstruct ``k`` patient-level data sets consistent with the summaries (see the module docstring).

    Parameters
    ----------
    sd : SummaryData
        The published summaries (read against the study card).
    k : int
        Number of data sets.
    correlation : float
        Target within-cell Pearson correlation of pre- and post-treatment totals (cells with n >= 3), ±0.05.
    seed : int
        Same summaries, k, correlation and seed give the same data sets.
    outcome : str, optional
        The score outcome (default: the card's only one).
    """
    card = sd.card
    outcome = score_outcome_of(card, outcome)
    o = card.outcomes[outcome]
    targets, relax = cell_targets(sd, outcome)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7013]))
    datasets, achieved = [], []
    span = o.max - o.min
    for rep in range(k):
        rows = []
        for (arm, frac), t in targets.items():
            for _attempt in range(30):  # totals for which item scores exist too
                pair = t.pairs[int(rng.integers(len(t.pairs)))]
                pre, post, ok = _search_totals(t, pair, correlation, rng)
                items, arranged = {}, True
                for time, tot in (("pre", pre), ("post", post)):
                    mat = None
                    sums = None
                    for _try in range(30):
                        sums = _choose_item_sums(t, time, int(tot.sum()), rng, relax)
                        if sums is None:
                            break
                        shifted = [s - t.n * t.item_lo for s in sums]
                        mat = _items_for(tot - len(o.items) * t.item_lo, shifted, rng, t.item_hi - t.item_lo)
                        if mat is not None:
                            items[time] = mat + t.item_lo
                            break
                    if sums is not None and mat is None:
                        arranged = False
                if arranged:
                    break
            else:
                raise RuntimeError(f"{t.label}: no item scores fit the reconstructed totals")
            if not ok:
                relax.append(Relaxation(t.label, "pre-post correlation / SD of change", f"r = {correlation}",
                                        f"r = {_corr(pre, post):.2f}, SD = {np.std(post - pre, ddof=1) if t.n > 1 else 0:.2f}",
                                        "the search did not reach the target within its budget; the closest data set found is used"))
            ev = {}
            for name, count in t.events.items():
                v = np.zeros(t.n, dtype=int)
                v[rng.choice(t.n, int(count), replace=False)] = 1
                ev[name] = v
            ordv = {}
            for name, counts in t.ordinal.items():
                lv = np.repeat(np.array(card.outcomes[name].levels), np.array(counts, dtype=int))
                rng.shuffle(lv)
                ordv[name] = lv
            for i in range(t.n):
                row = {"patient_id": f"R{rep + 1:03d}-{arm[:4]}-{frac[:4]}-{i + 1:02d}", "arm": arm}
                if card.stratified:
                    row[card.stratum_dim] = frac
                row[f"{outcome}_pre"] = int(pre[i])
                row[f"{outcome}_post"] = int(post[i])
                for time in ("pre", "post"):
                    if time in items:
                        row.update({f"{outcome}_{item}_{time}": int(items[time][i, d]) for d, item in enumerate(o.items)})
                row.update({name: int(v[i]) for name, v in ev.items()})
                row.update({name: str(v[i]) for name, v in ordv.items()})
                rows.append(row)
            d = post - pre
            achieved.append({"reconstruction": rep + 1, "arm": arm, card.stratum_dim: frac, "n": t.n,
                             "mean_pre": pre.mean(), "mean_post": post.mean(),
                             "mean_change_pct": d.mean() / span * 100,
                             "sd_change_pct": (np.std(d, ddof=1) / span * 100) if t.n > 1 else np.nan,
                             "correlation": _corr(pre, post) if t.n >= 3 else np.nan, "targets_met": ok})
        frame = pd.DataFrame(rows)
        for c in frame.columns:
            if frame[c].dtype.kind == "f":
                frame[c] = frame[c].astype("Int64")
        # every reconstruction goes through the same validator as a user's file
        ipd = parse_ipd(frame.to_csv(index=False, lineterminator="\n"), card, f"<reconstruction {rep + 1}>")
        datasets.append(ipd)
    return Reconstruction(datasets, relax, pd.DataFrame(achieved), correlation, seed, outcome)
