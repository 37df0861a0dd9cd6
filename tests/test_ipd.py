"""Patient-level CSV validation: one pass, every problem with file, row, column, value and rule; exit code 2."""

import pandas as pd
import pytest

from bayes_sacral.data.ipd import parse_ipd, read_ipd
from bayes_sacral.errors import InputError
from bayes_sacral.study import load_study

CARD = load_study().card


def problems(path):
    with pytest.raises(InputError) as exc:
        read_ipd(path, CARD)
    return exc.value.problems


def test_valid_file_types(data_dir):
    ipd = read_ipd(data_dir / "ipd_valid.csv", CARD)
    f = ipd.frame
    assert len(f) == 30 and ipd.has_items("msts")
    assert list(f["arm"].cat.categories) == ["psfs", "sacroplasty"]
    assert str(f["msts_pre"].dtype) == "Int64"
    assert pd.api.types.is_datetime64_any_dtype(f["date_postop"])
    items_pre = f[[c for c in f.columns if c.startswith("msts_") and c.endswith("_pre") and c != "msts_pre"]].sum(axis=1)
    assert (items_pre == f["msts_pre"]).all()


def test_out_of_range(data_dir):
    p = problems(data_dir / "ipd_out_of_range.csv")
    assert [(q.location, q.value) for q in p] == [
        ("row 1 (line 2), column 'msts_post'", "'31'"),
        ("row 2 (line 3), column 'msts_pre'", "'-1'"),
    ]
    assert all("0-30" in q.rule for q in p)
    assert not any("0-100" in q.rule for q in p)  # two stray values are not a different scale
    assert all(q.file.endswith("ipd_out_of_range.csv") for q in p)


def test_unknown_categories_all_reported(data_dir):
    p = problems(data_dir / "ipd_unknown_category.csv")
    assert {q.location.split("column ")[1].split(",")[0] for q in p} == {"'arm'", "'fracture'", "'narcotic_change'"}
    arm = next(q for q in p if "'arm'" in q.location)
    assert arm.value == "'PSFS'" and "did you mean 'psfs'" in arm.rule and "1 row (row 1)" in arm.location


def test_missing_required_column(data_dir):
    p = problems(data_dir / "ipd_missing_column.csv")
    assert len(p) == 1 and "needs both msts_pre and msts_post: missing msts_post" in p[0].rule


def test_duplicate_id(data_dir):
    p = problems(data_dir / "ipd_duplicate_id.csv")
    assert p[0].location.startswith("row 3 (line 4)") and "first in row 1" in p[0].rule


def test_items_must_sum_to_total(data_dir):
    p = problems(data_dir / "ipd_items_sum.csv")
    assert len(p) == 1
    assert p[0].location == "row 2 (line 3), column 'msts_pre'" and "sum to 11" in p[0].rule


def test_dates_in_order(data_dir):
    p = problems(data_dir / "ipd_dates.csv")
    rules = [q.rule for q in p]
    assert any("before the preoperative one" in r for r in rules)
    assert any("before the procedure" in r for r in rules)
    assert any("ISO date" in r for r in rules)


def test_nothing_coerced(data_dir):
    p = problems(data_dir / "ipd_not_integer.csv")
    by = {(q.location, q.value) for q in p}
    assert ("row 1 (line 2), column 'msts_pre'", "'7.0'") in by  # 7.0 is not silently read as 7
    assert ("row 2 (line 3), column 'secondary_procedure'", "'yes'") in by
    assert not any("msts_post" in q.location for q in p)  # an empty score is "not recorded": models leave the patient out
    assert any("only when secondary_procedure = 1" in q.rule for q in p)
    assert any("after the end of follow-up" in q.rule for q in p)


def test_unknown_column(data_dir):
    p = problems(data_dir / "ipd_unknown_column.csv")
    assert "did you mean 'msts_post'" in p[0].rule


@pytest.mark.parametrize("name,rule", [("ipd_empty.csv", "empty"), ("ipd_header_only.csv", "no patients")])
def test_empty_files(data_dir, name, rule):
    assert rule in problems(data_dir / name)[0].rule


def test_a_card_or_a_commented_file_is_one_clear_problem(tmp_path, data_dir):
    """A study card passed as data, or a CSV that opens with a comment line, gives one problem that says so, not a list
    of unknown and missing header columns; a column whose name starts with '#' is still a column."""
    card = tmp_path / "card.toml"
    card.write_text("# my study\n[study]\nname = \"x\"\n")
    (p,) = problems(card)
    assert p.location == "file" and "TOML" in p.rule and "--study" in p.rule
    valid = (data_dir / "ipd_valid.csv").read_text()
    for text in ("# exported from REDCap, 2026-01-02\n" + valid, "# my study\n[study]\nname = \"x\"\n"):
        f = tmp_path / "data.csv"
        f.write_text(text)
        (p,) = problems(f)
        assert p.location == "line 1" and p.value.startswith("'#") and "header row" in p.rule
    # '#' as the name of a column the card maps is a header like any other
    header, rest = valid.split("\n", 1)
    mapped = load_study().card.model_copy(deep=True)
    mapped.columns = {**mapped.columns, "patient_id": "#"}
    f.write_text(header.replace("patient_id", "#", 1) + "\n" + rest)
    assert len(read_ipd(f, mapped).frame) == 30


def test_partial_item_set_in_header():
    text = "patient_id,arm,fracture,msts_pre,msts_post,pain_pre\nP1,psfs,pathological,7,22,1\n"
    with pytest.raises(InputError) as exc:
        parse_ipd(text, CARD, "x.csv")
    assert "are all 6 or none" in exc.value.problems[0].rule


@pytest.mark.parametrize("name", ["ipd_out_of_range.csv", "ipd_unknown_category.csv", "ipd_missing_column.csv",
                                  "ipd_duplicate_id.csv", "ipd_items_sum.csv", "ipd_dates.csv", "ipd_not_integer.csv"])
def test_cli_validate_exit_2(cli, data_dir, name):
    r = cli("data", "validate", data_dir / name)
    assert r.code == 2
    assert name in r.err


def test_cli_validate_json(cli, data_dir):
    r = cli("data", "validate", data_dir / "ipd_out_of_range.csv", "--format", "json")
    assert r.code == 2
    doc = r.json()
    assert doc["valid"] is False
    assert {"file", "location", "value", "rule"} <= set(doc["problems"][0])
    ok = cli("data", "validate", data_dir / "ipd_valid.csv", "--format", "json")
    assert ok.code == 0 and ok.json()["patients"] == 30


def test_reproduce_reads_through_the_validator(cli, data_dir):
    r = cli("reproduce", "--ipd", data_dir / "ipd_out_of_range.csv")
    assert r.code == 2 and "ipd_out_of_range.csv: row 1 (line 2)" in r.err.replace("\n", "")
