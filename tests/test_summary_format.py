"""The summary-data format: validation messages name file, row, column, value and rule; nothing is coerced."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bayes_sacral.data.summary import parse_summary, read_summary
from bayes_sacral.errors import InputError
from bayes_sacral.study import load_study

CARD = load_study().card

HEAD = "# format: bayes-sacral-summary/1\nid,quantity,arm,fracture,time,category,statistic,value,decimals,unit,n,source,label\n"


def problems_of(text, fname="study.csv"):
    with pytest.raises(InputError) as exc:
        parse_summary(text, CARD, fname)
    return exc.value.problems


def test_bad_file_reports_every_problem(data_dir):
    with pytest.raises(InputError) as exc:
        read_summary(data_dir / "summary_bad.csv", CARD)
    msgs = [str(p) for p in exc.value.problems]
    assert all(m.startswith(str(data_dir / "summary_bad.csv")) for m in msgs)
    joined = "\n".join(msgs)
    assert "row 2 (line 5), column 'id': value 'a': duplicate id" in joined
    assert "did you mean 'msts_total'" in joined
    assert "column 'value': value '31.0'" in joined and "0 to 30" in joined
    assert "a count cannot exceed n = 9" in joined
    assert "value '42%'" in joined
    assert "column 'n'" in joined


def test_format_line_required():
    """Without any metadata the file is not a summary file: one problem on its first line (a patient-level CSV read as
    summary data listed every one of its columns as unknown); with other metadata, the missing format line is named as
    before."""
    row = "a,msts_total,psfs,pathological,pre,,mean,7.3,,points,9,T,x\n"
    (p,) = problems_of(HEAD.split("\n", 1)[1] + row)
    assert p.location == "line 1" and "not a summary-data file" in p.rule and "# format: bayes-sacral-summary/1" in p.rule
    probs = problems_of("# study: cox2025\n" + HEAD.split("\n", 1)[1] + row)
    assert any(q.location == "metadata 'format'" for q in probs)


def test_a_card_or_patient_csv_given_as_summary_data_is_one_problem(tmp_path, data_dir):
    card = tmp_path / "card.toml"
    card.write_text("[study]\nname = 'x'\n")
    with pytest.raises(InputError) as exc:
        read_summary(card, CARD)
    (p,) = exc.value.problems
    assert p.location == "file" and "TOML" in p.rule
    with pytest.raises(InputError) as exc:
        read_summary(data_dir / "ipd_valid.csv", CARD)
    (p,) = exc.value.problems
    assert p.location == "line 1" and p.value.startswith("'patient_id,") and "patient-level" in p.rule


def test_decimals_must_agree_with_value_text():
    probs = problems_of(HEAD + "a,msts_total,psfs,pathological,pre,,mean,28.0,0,points,7,T,x\n")
    assert probs[0].location.endswith("column 'decimals'") and "1 decimal" in probs[0].rule


def test_unknown_column_is_rejected_with_suggestion():
    text = "# format: bayes-sacral-summary/1\nid,quantty,arm,fracture,statistic,value,unit,source,label\n"
    probs = problems_of(text)
    assert any("did you mean 'quantity'" in p.rule for p in probs)
    assert any("required column 'quantity' is missing" in p.rule for p in probs)


def test_percent_and_p_value_ranges():
    probs = problems_of(HEAD + "a,secondary_procedure,psfs,pathological,,,percent,101,,percent,9,T,x\n"
                              "b,msts_total,all,pathological,change,,p_value,1.5,,probability,21,T,x\n")
    assert "0-100" in probs[0].rule and "0-1" in probs[1].rule


def test_valid_user_file_round_trip(tmp_path):
    text = HEAD + (
        "n1,patients,psfs,pathological,,,count,10,,patients,,Methods,x\n"
        "m1,msts_total,psfs,pathological,pre,,mean,8.20,,points,10,Table 2,x\n"
    )
    p = tmp_path / "mine.csv"
    p.write_text(text)
    sd = read_summary(p, CARD)
    assert list(sd.frame["id"]) == ["n1", "m1"]
    assert sd.frame.loc[1, "decimals"] == 2 and sd.frame.loc[1, "value_text"] == "8.20"
    assert len(sd.sha256) == 64


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=3))
def test_decimals_derived_from_text(k, d):
    text_value = f"{k / 10:.{d}f}"
    sd = parse_summary(HEAD + f"a,msts_total,psfs,pathological,pre,,mean,{text_value},,points,9,T,x\n", CARD)
    assert sd.frame.loc[0, "decimals"] == d
    assert sd.frame.loc[0, "value_text"] == text_value


def test_sd_bound_of_change_scores():
    # two changes of -30 and +30 have SD 42.43 (= 30 * sqrt(2)): allowed; 42.5 is not.
    ok = HEAD + "a,msts_total,psfs,pathological,change,,sd,42.43,,points,2,T,x\n"
    assert parse_summary(ok, CARD).frame.loc[0, "value"] == 42.43
    probs = problems_of(HEAD + "a,msts_total,psfs,pathological,change,,sd,42.5,,points,2,T,x\n")
    assert "cannot exceed 42.43" in probs[0].rule  # 42.5 stands for >= 42.45 > 42.426
