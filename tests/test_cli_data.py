"""The data/reproduce/reanalyze commands: formats, exit codes, atomic outputs."""

import csv
import json

from bayes_sacral.study import load_study


def test_help_everywhere(cli):
    for args in ([], ["data"], ["data", "show"], ["data", "validate"], ["data", "check"], ["reproduce"], ["reanalyze"]):
        r = cli(*args, "--help")
        assert r.code == 0 and "Usage" in r.out, args


def test_data_show_json_has_every_row(cli):
    with open(load_study().summary_path, encoding="utf-8") as fh:
        n_rows = sum(1 for _ in csv.DictReader(ln for ln in fh if not ln.startswith("#")))
    r = cli("data", "show", "--format", "json")
    assert r.code == 0 and len(r.json()) == n_rows
    assert {"id", "quantity", "value", "value_text", "decimals", "unit", "n", "source", "label"} <= set(r.json()[0])


def test_data_show_table_and_csv(cli):
    assert "msts_total" in cli("data", "show", "-q", "msts_total").out
    out = cli("data", "show", "--format", "csv").out
    assert out.splitlines()[0].startswith("id,quantity")


def test_data_check_json_and_strict(cli):
    r = cli("data", "check", "--format", "json")
    assert r.code == 0
    doc = r.json()
    assert all(set(d) == {"check", "subject", "status", "explanation", "numbers", "ids"} for d in doc)
    assert {"grim", "grimmer", "item_sum", "count_percent", "cell_sizes", "change_vs_means"} <= {d["check"] for d in doc}
    assert any(d["status"] == "fail" for d in doc)
    assert cli("data", "check", "--strict").code == 1


def test_data_check_unreadable_input(cli, tmp_path):
    r = cli("data", "check", "--dataset", tmp_path / "missing.csv")
    assert r.code == 2 and "missing.csv" in r.err


def test_reproduce_json_rows(cli):
    rows = cli("reproduce", "--format", "json").json()
    assert all({"outcome", "stratum", "test", "statistic", "p_value", "published_p_value"} <= set(r) for r in rows)
    assert {r["test"] for r in rows} >= {"welch_t", "pooled_t", "fisher_exact", "boschloo_exact"}


def test_output_file_written_atomically(cli, tmp_path):
    out = tmp_path / "sub" / "check.json"
    r = cli("data", "check", "--format", "json", "--output", out)
    assert r.code == 0 and out.exists()
    assert isinstance(json.loads(out.read_text()), list)
    assert [p.name for p in out.parent.iterdir()] == ["check.json"]  # no temp file left behind


def test_reanalyze_writes_report_folder(cli, tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "c.toml").write_text(
        '[run]\nname = "compl"\nseed = 1\n[model]\nkind = "complications"\n[sampler]\ndraws = 200\ntune = 200\nchains = 2\n')
    out = tmp_path / "rep"
    r = cli("reanalyze", "--out", out, "--configs", configs, "--store", tmp_path / "models")
    assert r.code == 0
    assert {"integrity.json", "integrity.csv", "reproduction.json", "reproduction.csv", "runs.json", "summaries"} <= {p.name for p in out.iterdir()}
    assert (out / "summaries" / "compl.csv").exists() and (tmp_path / "models" / "compl" / "manifest.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bs-tmp-")]
    quick = cli("reanalyze", "--out", tmp_path / "rep2", "--no-fit")
    assert quick.code == 0 and not (tmp_path / "rep2" / "summaries").exists()
    assert "reused" not in r.out  # nothing stored yet: fitted
    # by default (--reuse) a later reanalysis takes the stored run (same config, seed, data, code): the same summary
    again = cli("reanalyze", "--out", tmp_path / "rep3", "--configs", configs, "--store", tmp_path / "models")
    assert again.code == 0 and "reused" in again.out
    assert (tmp_path / "rep3" / "summaries" / "compl.csv").read_bytes() == (out / "summaries" / "compl.csv").read_bytes()
    # --refit fits it again, into the same draws
    refit = cli("reanalyze", "--out", tmp_path / "rep5", "--configs", configs, "--store", tmp_path / "models", "--refit")
    assert refit.code == 0 and "reused" not in refit.out
    assert (tmp_path / "rep5" / "summaries" / "compl.csv").read_bytes() == (out / "summaries" / "compl.csv").read_bytes()
    # a missing or empty configs folder is an error, not a reanalysis with nothing fitted
    for bad, rule in ((tmp_path / "nowhere", "no such folder"), (tmp_path / "rep2", "no run configs")):
        r = cli("reanalyze", "--out", tmp_path / "rep4", "--configs", bad, "--store", tmp_path / "models")
        assert r.code == 2 and str(bad) in r.err and rule in r.err
        assert not (tmp_path / "rep4").exists()
