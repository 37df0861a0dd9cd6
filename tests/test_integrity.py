"""Integrity checks: primitives agree with brute-force enumeration; the paper's numbers get honest verdicts."""

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_sacral.data.integrity import run_checks
from bayes_sacral.data.rounding import achievable_sumsq, grim_sums, interval
from bayes_sacral.data.summary import parse_summary
from bayes_sacral.study import load_study

CARD = load_study().card


def rounds_to(x: Fraction, text: str) -> bool:
    lo, hi = interval(text)
    return lo <= x <= hi


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(0, 3000), d=st.integers(0, 2))
def test_grim_sums_equal_brute_force(n, k, d):
    text = f"{k / 100:.{d}f}"
    want = [s for s in range(0, 30 * n + 1) if rounds_to(Fraction(s, n), text)]
    assert grim_sums(text, d, n, Fraction(1), 0, 30) == want


@pytest.mark.parametrize("n,lo,hi", [(1, 0, 5), (2, -3, 4), (3, 0, 5), (4, -2, 3)])
def test_achievable_sumsq_equals_enumeration(n, lo, hi):
    brute: dict[int, set[int]] = {}
    for xs in itertools.product(range(lo, hi + 1), repeat=n):
        brute.setdefault(sum(xs), set()).add(sum(x * x for x in xs))
    got = achievable_sumsq(n, lo, hi)
    assert set(got) == set(brute)
    for s, qs in brute.items():
        mask = got[s]
        assert {q for q in range(mask.bit_length()) if mask >> q & 1} == qs


def _cell_file(n, mean_text, sd_text, unit="points", time="change"):
    return parse_summary(
        "# format: bayes-sacral-summary/1\n"
        "id,quantity,arm,fracture,time,statistic,value,unit,n,source,label\n"
        f"m,msts_total,psfs,pathological,{time},mean,{mean_text},{unit},{n},T,x\n"
        f"s,msts_total,psfs,pathological,{time},sd,{sd_text},{unit},{n},T,x\n",
        CARD,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-30, 30), min_size=2, max_size=9))
def test_grimmer_never_rejects_real_data(xs):
    """Means and SDs computed from actual integer samples, rounded to 2 decimals, always pass."""
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    sd_file = _cell_file(n, f"{mean:.2f}", f"{sd:.2f}")
    statuses = {f.check: f.status for f in run_checks(sd_file, ["grim", "grimmer"])}
    assert statuses == {"grim": "pass", "grimmer": "pass"}


def test_grimmer_rejects_impossible_sd():
    # n = 3 integers with mean 1.00: sums of squares 3, 5, 9, 11, ... SD 0.50 needs sum of squares 3.5: impossible.
    f = run_checks(_cell_file(3, "1.00", "0.50"), ["grimmer"])[0]
    assert f.status == "fail"


# ---- the published study: expected verdicts derived here by enumeration, not copied from the tool ----

def finding(findings, check, id_):
    return next(f for f in findings if f.check == check and id_ in f.ids)


def test_paper_18_14_fails_grim(published):
    assert not any(rounds_to(Fraction(s, 12), "18.14") for s in range(0, 361))
    f = finding(run_checks(published, ["grim"]), "grim", "res.total.pathological.sacroplasty.post")
    assert f.status == "fail" and "18.14" in f.explanation


def test_paper_table_means_pass_grim(published):
    findings = [f for f in run_checks(published, ["grim"]) if f.ids[0].startswith(("t2.", "t3."))]
    assert findings and all(f.status == "pass" for f in findings)


def test_paper_impending_psfs_sd_is_borderline(published):
    # two integer changes with mean 38% of 30 (sum 23) and SD rounding to 17%:
    exact = [(a, b) for a in range(-30, 31) for b in range(-30, 31)
             if rounds_to(Fraction(100 * (a + b), 60), "38") and 16.5 <= 100 / 30 * abs(a - b) / math.sqrt(2) <= 17.5]
    assert exact == []
    nearest = min(abs(100 / 30 * abs(a - b) / math.sqrt(2) - 16.5) for a in range(-30, 31) for b in range(-30, 31) if a + b == 23)
    assert nearest < 0.05  # within a twentieth of a percentage point: double rounding
    f = finding(run_checks(published, ["grimmer"]), "grimmer", "res.change.impending.psfs.sd")
    assert f.status == "borderline"


def test_paper_item_sums(published):
    # sacroplasty impending post: each item mean of n = 7 pins one integer sum; they add up to 200, the total 28.0 needs 196.
    items = ["4.9", "4.9", "5.0", "4.7", "4.7", "4.4"]
    sums = [[s for s in range(36) if rounds_to(Fraction(s, 7), t)] for t in items]
    assert all(len(s) == 1 for s in sums) and sum(s[0] for s in sums) == 200
    assert [s for s in range(211) if rounds_to(Fraction(s, 7), "28.0")] == [196]
    findings = run_checks(published, ["item_sum"])
    status = {f.subject: f.status for f in findings}
    assert status["MSTS items vs total, sacroplasty × impending, post"] == "fail"
    # PSFS pathological pre: item sums 2+4+8+14+25+12 = 65 (7.22), the total 7.3 needs 66
    items = ["0.2", "0.4", "0.9", "1.6", "2.8", "1.3"]
    assert sum([s for s in range(46) if rounds_to(Fraction(s, 9), t)][0] for t in items) == 65
    assert status["MSTS items vs total, psfs × pathological, pre"] == "fail"
    assert status["MSTS items vs total, psfs × pathological, post"] == "pass"


def test_paper_double_rounded_percent(published):
    assert round(100 * 5 / 11) == 45 and round(round(100 * 5 / 11, 1)) == 46
    f = finding(run_checks(published, ["count_percent"]), "count_percent", "t1.rt.psfs.pct")
    assert f.status == "borderline" and "double rounding" in f.explanation


def test_paper_change_consistent_with_means(published):
    findings = run_checks(published, ["change_vs_means"])
    assert len(findings) == 4 and all(f.status == "pass" for f in findings)


def test_every_finding_is_well_formed(published):
    for f in run_checks(published):
        assert f.status in ("pass", "borderline", "fail")
        assert f.explanation.endswith(".") and f.subject and f.check
