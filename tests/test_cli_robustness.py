"""The command line under bad input, races and faults: one line and an exit code, never a traceback, never a silent
wrong run, nothing written outside the output asked for."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).parents[1]
TINY = ('[run]\nname = "{name}"\nseed = {seed}\n[model]\nkind = "complications"\n'
        "[sampler]\ndraws = 100\ntune = 100\nchains = 2\nprior_draws = 0\n")


def one_line_error(r, code=2):
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err and "Traceback" not in r.out
    assert r.err.startswith("error:") or r.err.startswith("invalid:"), r.err
    return r.err


# ---- 1. usage errors: one line naming the option or argument, exit 2
@pytest.mark.parametrize("args,fragment", [
    (["data", "validate", "{tmp}"], "is a folder"),
    (["fit", "{tmp}"], "is a folder"),
    (["reproduce", "--ipd", "{tmp}"], "is a folder"),
    (["nosuchcommand"], "No such command"),
    (["fit"], "Missing argument 'config'"),
    (["data", "check", "-f", "xml"], "'--format'"),
    (["summarize", "x", "--prob", "1.5"], "'--prob'"),
    (["calibrate", "x.toml", "--sims", "5"], "'--sims'"),
    (["data", "reconstruct", "--out", "{tmp}/r", "-k", "0"], "'-k'"),
    (["data", "check", "-o", "{tmp}"], "is a folder"),
    (["data", "show", "--view", "foo"], "'--view'"),
])
def test_usage_errors_are_one_line(cli, tmp_path, args, fragment):
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    err = one_line_error(r)
    assert fragment in err
    assert "Value error" not in err and "Input should" not in err


@pytest.mark.parametrize("group", [[], ["cache"], ["data"], ["config"], ["runs"]])
def test_a_group_without_a_command_prints_its_help_as_help_lays_it_out(cli, group):
    """`bayes-sacral` or `bayes-sacral cache` alone: the group's help on stderr, line for line what --help prints on
    stdout (it was once squashed into one line), and exit 2 (no command is a usage error)."""
    r = cli(*group)
    helped = cli(*group, "--help")
    assert r.code == 2 and helped.code == 0 and "Traceback" not in r.err
    assert r.err.strip().splitlines() == helped.out.strip().splitlines() and len(r.err.splitlines()) > 5


def test_unexpected_errors_name_debug(cli, monkeypatch):
    import bayes_sacral.data.integrity as integ

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(integ, "run_checks", boom)
    r = cli("data", "check")
    assert r.code == 1 and "unexpected ZeroDivisionError" in r.err and "--debug" in r.err and "Traceback" not in r.err
    with pytest.raises(ZeroDivisionError):
        cli("--debug", "data", "check")


# ---- 2. user text is printed literally
def test_user_text_is_not_markup(cli, tmp_path):
    (tmp_path / "odd[").mkdir()
    p = tmp_path / "odd[" / "]name.csv"  # the path contains "[/]"
    p.write_text("patient_id,arm,fracture,msts_pre,msts_post\n[/]x,[red]jeff,:x:,1,2\n")
    r = cli("data", "validate", p)
    assert r.code == 2 and "Traceback" not in r.err
    assert "odd[/]name.csv" in r.err and "'[red]jeff'" in r.err and "':x:'" in r.err
    assert "[sweep]" in cli("fit", "--help").out


# ---- 3. tables readable at 80 columns, plain text when piped
def test_tables_keep_their_name_column_at_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("reproduce").out
    assert "\x1b[" not in out
    assert all(len(line) <= 80 for line in out.splitlines() if not line.startswith("Note:"))
    assert "msts_change" in out and "welch_t" in out  # the first (name) column is always shown
    checks = cli("data", "check", "--problems").out
    assert "grim" in checks and "item_sum" in checks


# ---- 4. two fits of one run name: the later one does not replace the first
def test_a_run_finished_meanwhile_is_not_replaced(tmp_path):
    from bayes_sacral.atomic import TargetExists, atomic_directory
    from bayes_sacral.store import RunExistsError, write_run

    target = tmp_path / "run"
    with pytest.raises(TargetExists):
        with atomic_directory(target) as tmp:
            (tmp / "a").write_text("second writer")
            target.mkdir()  # another process finishes first, between our start and our rename
            (target / "manifest.json").write_text('{"seed": 11}')
    assert (target / "manifest.json").read_text() == '{"seed": 11}'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bs-tmp-")]
    with pytest.raises(RunExistsError) as exc:
        write_run(target, None, "", {"seed": 12}, "")
    assert exc.value.exit_code == 2 and "seed: 11" in str(exc.value) and "not saved" in str(exc.value)


def test_race_through_the_cli(cli, tmp_path, monkeypatch):
    """The first fit's run survives; the second exits 2 naming the run and the first one's seed."""
    import bayes_sacral.fitting as fitting

    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(name="race", seed=5))
    real = fitting.fit_resolved

    def and_meanwhile(run, *a, **k):
        res = real(run, *a, **k)
        out = tmp_path / "m" / "race"  # another process writes the same run while this one samples
        out.mkdir(parents=True)
        (out / "manifest.json").write_text('{"seed": 99}')
        return res

    monkeypatch.setattr(fitting, "fit_resolved", and_meanwhile)
    r = cli("fit", cfg, "--out", tmp_path / "m", "--quiet")
    err = one_line_error(r)
    assert "race" in err and "seed: 99" in err and "not saved" in err
    assert (tmp_path / "m" / "race" / "manifest.json").read_text() == '{"seed": 99}'


def test_an_output_folder_replaces_only_an_earlier_output(tmp_path):
    """atomic_directory with overwrite: an earlier output (its marker file present) or an empty folder is replaced; a
    file, or a folder of someone's files, is refused and left as it was, at the start and at the final swap."""
    from bayes_sacral.atomic import NotReplaceable, atomic_directory, output_folder_problem

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "report.md").write_text("old")
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (earlier, empty):
        assert output_folder_problem(target, "report.md") is None
        with atomic_directory(target, overwrite=True, marker="report.md") as tmp:
            (tmp / "report.md").write_text("new")
        assert (target / "report.md").read_text() == "new"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep")
    for target, what in ((mine, "no report.md"), (afile, "not a folder")):
        assert what in output_folder_problem(target, "report.md")
        with pytest.raises(NotReplaceable):
            with atomic_directory(target, overwrite=True, marker="report.md") as tmp:
                (tmp / "report.md").write_text("new")
    later = tmp_path / "later"
    with pytest.raises(NotReplaceable):
        with atomic_directory(later, overwrite=True, marker="report.md") as tmp:
            (tmp / "report.md").write_text("new")
            later.mkdir()  # someone's folder appears while the output is written
            (later / "data.csv").write_text("keep")
    assert (mine / "thesis.tex").read_text() == afile.read_text() == (later / "data.csv").read_text() == "keep"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"] and sorted(p.name for p in later.iterdir()) == ["data.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bs-tmp-")]
    assert "is a file, not a folder" in output_folder_problem(afile / "sub", "report.md")


@pytest.mark.parametrize("args,option,fragment", [
    (["reanalyze", "--out", "{file}", "--no-fit"], "--out", "not a folder"),
    (["reanalyze", "--out", "{mine}", "--no-fit"], "--out", "no integrity.json"),
    (["reanalyze", "--out", "{file}/report", "--no-fit"], "--out", "is a file, not a folder"),
    (["reanalyze", "--store", "{file}", "--configs", "{tmp}/configs"], "--store", "not a folder"),
    (["report", "r", "--store", "{tmp}/m", "--out", "{mine}"], "--out", "no report.md"),
    (["fit", "{tmp}/c.toml", "--out", "{file}"], "--out", "not a folder"),
])
def test_bad_output_locations_fail_before_any_work_and_touch_nothing(cli, tmp_path, args, option, fragment):
    """A mistyped --out or --store (a file, a folder of the user's own files, a path through a file) is one line naming
    the option, exit 2, before anything is fitted; what is there is left as it was (reanalyze --out used to replace a
    file with the report folder)."""
    afile = tmp_path / "notes.txt"
    afile.write_text("keep")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.toml").write_text(TINY.format(name="r", seed=1))
    (tmp_path / "c.toml").write_text(TINY.format(name="r", seed=1))
    if args[0] == "report":
        assert cli("fit", tmp_path / "c.toml", "--out", tmp_path / "m", "--quiet").code == 0
    r = cli(*[a.replace("{tmp}", str(tmp_path)).replace("{file}", str(afile)).replace("{mine}", str(mine)) for a in args])
    err = one_line_error(r)
    assert option in err and fragment in err, err
    assert afile.read_text() == "keep" and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "configs" / "r").exists() and not [p for p in tmp_path.rglob(".bs-tmp-*")]


def test_an_output_path_through_a_file_is_one_line(cli, tmp_path):
    """Every command that writes a file or folder: an output path that cannot be written (here: under a file) is one
    line naming the path and why, exit 2, never an unexpected OSError; nothing is left behind."""
    afile = tmp_path / "notes.txt"
    afile.write_text("keep")
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(name="r", seed=1))
    assert cli("fit", cfg, "--out", tmp_path / "m", "--quiet").code == 0
    design = tmp_path / "d.toml"
    design.write_text('[design]\nname = "d"\nseed = 1\nendpoint = "msts"\nsample_sizes = [40]\n'
                      "[truth.msts]\ntreatment_effect = 4.0\nsigma = 5.0\n")
    bad = afile / "x"
    for args in (["data", "check", "-o", f"{bad}.csv"], ["summarize", "r", "--store", tmp_path / "m", "-o", f"{bad}.csv"],
                 ["plot", "r", "forest", "--store", tmp_path / "m", "--out", f"{bad}.png"],
                 ["data", "reconstruct", "--out", bad, "-k", "2"], ["design", design, "--out", bad]):
        err = one_line_error(cli(*args))
        assert str(afile) in err and "is a file, not a folder" in err, (args, err)
    assert afile.read_text() == "keep" and not [p for p in tmp_path.rglob(".bs-tmp-*")]


def test_overwrite_replaces_run_folders_only(cli, tmp_path):
    """fit --overwrite replaces an earlier run folder of the same name, never a folder that is not a run (no
    manifest.json), in the command line and in bs.fit(out=..., overwrite=True)."""
    import bayes_sacral as bs
    from bayes_sacral.errors import BayesSacralError

    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(name="r", seed=1))
    store = tmp_path / "m"
    assert cli("fit", cfg, "--out", store, "--quiet").code == 0
    assert cli("fit", cfg, "--out", store, "--quiet", "--overwrite").code == 0  # an earlier run: replaced
    cfg.write_text(TINY.format(name="mine", seed=1))
    (store / "mine").mkdir()
    (store / "mine" / "thesis.tex").write_text("keep")
    err = one_line_error(cli("fit", cfg, "--out", store, "--quiet", "--overwrite"))
    assert "no manifest.json" in err
    with pytest.raises(BayesSacralError, match="no manifest.json"):
        bs.fit(cfg, out=store, overwrite=True)
    assert sorted(p.name for p in (store / "mine").iterdir()) == ["thesis.tex"]


# ---- 5. design: an unreachable scheduler fails fast and writes nothing; no orphan workers after SIGKILL
def test_unreachable_scheduler(cli, tmp_path):
    cfg = tmp_path / "d.toml"
    cfg.write_text('[design]\nname = "d"\nseed = 1\nengine = "vectorized"\nsample_sizes = [40]\nn_trials = 100\n'
                   '[truth.msts]\ntreatment_effect = { pathological = 4.0, impending = 1.0 }\n')
    t0 = time.perf_counter()
    r = cli("design", cfg, "--out", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:1", "--quiet")
    assert time.perf_counter() - t0 < 10
    assert "--scheduler" in one_line_error(r)
    assert not (tmp_path / "out").exists()


def test_workers_die_with_a_killed_design(tmp_path):
    psutil = pytest.importorskip("psutil")
    cfg = tmp_path / "d.toml"
    cfg.write_text('[design]\nname = "d"\nseed = 1\nengine = "vectorized"\nsample_sizes = [200, 240]\nn_trials = 400000\n'
                   "batch_size = 20000\n[truth.msts]\ntreatment_effect = { pathological = 4.0, impending = 1.0 }\n")
    proc = subprocess.Popen([sys.executable, "-m", "bayes_sacral", "design", str(cfg), "--out", str(tmp_path / "out"), "--quiet",
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)

    def command_line(p):
        # a short-lived child may exit (or be a zombie awaiting its parent) between listing and reading it
        try:
            return " ".join(p.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            return None

    deadline = time.time() + 120
    kids = []
    while time.time() < deadline and len(kids) < 2:
        time.sleep(0.5)
        kids = [k for k in parent.children(recursive=True) if (c := command_line(k)) is not None and "resource_tracker" not in c]
    assert len(kids) >= 2, "the design started its workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(kids, timeout=15)
    assert not alive, [command_line(p) for p in alive]


# ---- 6. zero cells and pathological TOML
def test_zero_cell_is_an_input_error_everywhere(cli, tmp_path, study):
    text = study.summary_path.read_text().replace("m.n.psfs.imp,patients,psfs,impending,,,count,,2,", "m.n.psfs.imp,patients,psfs,impending,,,count,,0,")
    p = tmp_path / "zero.csv"
    p.write_text(text)
    assert "psfs × impending" in one_line_error(cli("data", "validate", p))
    assert "psfs × impending" in one_line_error(cli("reproduce", "--dataset", p))


def test_deeply_nested_toml(cli, tmp_path):
    p = tmp_path / "deep.toml"
    p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested" in one_line_error(cli("config", "validate", p))


# ---- 7. config validate runs the checks fit runs
@pytest.mark.parametrize("data,fragment", [
    ('source = "ipd"\npath = "/etc/passwd"', "unknown column"),
    ('source = "ipd"\npath = "{tmp}"', "is a folder"),
    ('source = "ipd"\npath = "{tmp}/none.csv"', "no such file"),
])
def test_config_validate_checks_the_data(cli, tmp_path, data, fragment):
    p = tmp_path / "c.toml"
    p.write_text(f'[run]\nname = "x"\nseed = 1\n[data]\n{data.replace("{tmp}", str(tmp_path))}\n[model]\nkind = "msts"\n')
    assert fragment in one_line_error(cli("config", "validate", p))


def test_backend_must_be_installed(cli, tmp_path):
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed here")
    p = tmp_path / "c.toml"
    p.write_text(TINY.format(name="x", seed=1) + 'backend = "numpyro"\n')
    assert "needs jax" in one_line_error(cli("config", "validate", p))


# ---- 8. --set: errors name the option, in plain words
def test_set_errors_name_the_option(cli):
    err = one_line_error(cli("config", "validate", ROOT / "configs" / "complications.toml", "--set", "run.name=bad name!"))
    assert "--set run.name=bad name!" in err and "letters, digits" in err and "String should" not in err


# ---- 9. no coercion, one whitespace rule
def test_categories_with_spaces_are_errors(cli, tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("patient_id,arm,fracture,msts_pre,msts_post\nP1,psfs ,pathological,7,20\n")
    assert "did you mean 'psfs'" in one_line_error(cli("data", "validate", p))


# ---- 10. reproduce --ipd: no published p-values beside another study's patients
def test_reproduce_ipd_has_no_borrowed_published_column(cli, data_dir):
    rows = cli("reproduce", "--ipd", data_dir / "ipd_valid.csv", "--format", "json").json()
    anc = [r for r in rows if r["test"] == "ancova"]
    assert anc and all(r["published_p_value"] is None for r in anc)
    same = cli("reproduce", "--ipd", data_dir / "ipd_valid.csv", "--same-patients", "--format", "json").json()
    assert any(r["published_p_value"] == "0.005" for r in same if r["test"] == "ancova")


# ---- 11. killed writes are listed and cleaned; folders are 0755
def test_stale_temporaries_and_permissions(cli, tmp_path):
    store = tmp_path / "m"
    store.mkdir()
    code = ("import os, sys\nfrom bayes_sacral.atomic import atomic_directory\n"
            f"with atomic_directory({str(store / 'run')!r}) as t:\n    (t / 'x').write_text('half')\n    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    stale = cli("runs", "list", "--stale", "--store", store, "--format", "json").json()
    assert len(stale) == 1 and ".bs-tmp-run." in stale[0]["path"]
    assert cli("runs", "list", "--store", store, "--format", "json").json() == []
    r = cli("runs", "clean", "--store", store)
    assert r.code == 0 and "1 unfinished" in r.out and not list(store.iterdir())
    from bayes_sacral.atomic import atomic_directory

    with atomic_directory(store / "ok") as t:
        (t / "f").write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((store / "ok").stat().st_mode) == 0o777 & ~umask


# ---- 12. long problem lists are capped
def test_problem_lists_are_capped(cli, tmp_path):
    rows = "\n".join(f"P{i},psfs,pathological,{40 + i},20" for i in range(500))
    p = tmp_path / "many.csv"
    p.write_text("patient_id,arm,fracture,msts_pre,msts_post\n" + rows + "\n")
    r = cli("data", "validate", p)
    assert r.code == 2
    lines = r.err.splitlines()
    assert len(lines) < 30 and "and 480 more problems of this kind" in r.err


# ---- fuzz: random argument vectors and random files never give a traceback, and write only under --out
COMMANDS = [["data", "validate"], ["data", "check"], ["data", "show"], ["data", "columns"], ["config", "validate"],
            ["config", "defaults"], ["reproduce"], ["runs", "list"], ["summarize"], ["plot"], ["report"]]
TOKENS = st.sampled_from(["--format", "json", "csv", "xml", "--study", "--dataset", "--ipd", "--set", "a=1", "run.seed=-1",
                          "--prob", "2", "0.5", "-k", "0", "--out", "--store", "--problems", "--strict", "[/]", ":x:", "", "-",
                          "--view", "cells", "msts", "score", "FILE", "DIR", "\u00e9", "--", "-q"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from(COMMANDS), args=st.lists(TOKENS, max_size=6), blob=st.binary(max_size=300))
def test_fuzz_never_a_traceback(cli, tmp_path_factory, cmd, args, blob):
    work = tmp_path_factory.mktemp("fuzz")
    f = work / "in.csv"
    f.write_bytes(blob)
    out = work / "out"
    before = set(Path.cwd().iterdir())
    argv = cmd + [str(f) if a == "FILE" else str(work) if a == "DIR" else str(out) if a == "--out-path" else a for a in args]
    if "--out" in argv:
        i = argv.index("--out")
        argv = argv[: i + 1] + [str(out)] + argv[i + 1:]
    r = cli(*argv)
    assert r.code in (0, 1, 2), (argv, r.code, r.err)
    assert "Traceback" not in r.err + r.out
    assert set(Path.cwd().iterdir()) == before  # nothing written outside the work folder
    assert all(p == f or p == out or out in p.parents or p.name.startswith("fuzz") for p in work.rglob("*"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=400))
def test_fuzz_toml_configs(cli, tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("toml") / "c.toml"
    p.write_bytes(blob)
    r = cli("config", "validate", p)
    assert r.code in (0, 2) and "Traceback" not in r.err


def test_summaries_of_random_numbers_never_crash():
    # sanity: the table renderer copes with NaN, inf and huge numbers at any width
    from bayes_sacral.cli.output import render_table

    recs = [{"name": "x[a, b]", "v": v} for v in (np.nan, np.inf, 1e300, -0.0, None)]
    for w in (20, 80, 200):
        assert "x[a, b]" in render_table(recs, ["name", "v"], w)


def test_a_cache_location_that_is_a_file_names_the_variable(cli, tmp_path, monkeypatch):
    """BAYES_SACRAL_CACHE pointing at a file: one line naming the variable, exit 2, wherever the cache is used (a fit
    that reached the disk cache stopped with an unexpected NotADirectoryError); the file is left as it was."""
    from bayes_sacral.cachefile import cache_dir
    from bayes_sacral.errors import InputError

    afile = tmp_path / "notes.txt"
    afile.write_text("keep")
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(afile))
    with pytest.raises(InputError, match="BAYES_SACRAL_CACHE"):
        cache_dir()
    for args in (["cache", "info"], ["cache", "clear"]):
        err = one_line_error(cli(*args))
        assert "BAYES_SACRAL_CACHE" in err and "is a file" in err, err
    assert afile.read_text() == "keep"
