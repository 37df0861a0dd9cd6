"""Worker processes: the pool that runs a reanalysis's runs and a report's figures in parallel.

Checked for what a user relies on: answers come back in order with errors of their own type, a worker that dies gives
an error (not a hang), a script without a ``__main__`` guard can use it, parallel figure files are byte-identical to
serial ones, and runs fitted in parallel draw exactly what they draw one after another.
"""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_sacral.workers import WorkerError, WorkerPool


def test_pool_returns_results_and_raises_the_jobs_own_errors():
    with WorkerPool(2) as pool:
        futs = [pool.submit(math.factorial, k) for k in range(8)]
        assert [f.result() for f in futs] == [math.factorial(k) for k in range(8)]
        with pytest.raises(ValueError, match="not defined for negative"):
            pool.submit(math.factorial, -1).result()
        # the pool still works after a failed job
        assert pool.submit(math.gcd, 12, 18).result() == 6


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with WorkerPool(1) as pool:
        with pytest.raises(WorkerError, match="ended without an answer"):
            pool.submit(os._exit, 3, what="the crash test").result(timeout=120)
        assert pool.submit(math.gcd, 4, 6).result(timeout=120) == 2  # a fresh worker replaces it


def test_a_script_without_a_main_guard_can_use_the_pool(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent("""
        import math
        from bayes_sacral.workers import WorkerPool
        with WorkerPool(2) as pool:
            print(sum(f.result() for f in [pool.submit(math.isqrt, k * k) for k in range(10)]))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sum(range(10)))


def _figure():
    from bayes_sacral.report import figures as F
    from bayes_sacral.report.style import new_figure

    class Score:  # a score outcome's range, as _points_axis reads it
        min, max, range = 0, 30, 30

    fig, ax = new_figure()
    x = np.linspace(-10, 10, 200)
    ax.plot(x, np.exp(-x**2 / 20))
    ax.set_title("a test figure")
    F._points_axis(ax, Score)  # a secondary axis: its functions must pickle
    return fig


def test_figures_written_by_workers_are_byte_identical_to_serial_ones(tmp_path):
    from bayes_sacral.report.render import FigureSaver
    from bayes_sacral.report.style import house_style

    outs = {}
    for workers in (0, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        with house_style(), FigureSaver(workers) as saver:
            fut = saver.submit(_figure(), folder / "fig")
        outs[workers] = (fut.result(), (folder / "fig.png").read_bytes(), (folder / "fig.pdf").read_bytes())
    assert outs[0] == outs[2]
    assert outs[0][0][:8] == b"\x89PNG\r\n\x1a\n" and outs[0][2][:5] == b"%PDF-"


def test_runs_fitted_in_parallel_draw_what_they_draw_one_by_one(tmp_path, monkeypatch):
    from bayes_sacral.config import resolve
    from bayes_sacral.reanalysis import fit_runs

    docs = [{"run": {"name": f"r{k}", "seed": 10 + k}, "model": {"kind": "secondary_procedures"},
             "sampler": {"draws": 200, "chains": 2, "prior_draws": 50, "predictive_draws": 100}} for k in range(2)]
    docs.append({"run": {"name": "nuts", "seed": 7}, "model": {"kind": "secondary_procedures", "variant": "hierarchical"},
                 "sampler": {"draws": 100, "tune": 100, "chains": 2, "prior_draws": 20, "predictive_draws": 100}})
    runs = [resolve(d) for d in docs]
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/bayes-sacral", "reanalyze", "--jobs", "2"])
    lines: list[str] = []
    serial = fit_runs(runs, tmp_path / "serial", jobs=1, log=lines.append)
    parallel = fit_runs(runs, tmp_path / "parallel", jobs=2, log=lines.append)
    assert [r.name for r in parallel] == ["r0", "r1", "nuts"]  # the order given, whatever order they finished in
    for a, b in zip(serial, parallel, strict=True):
        for v in a.idata["posterior"].data_vars:
            np.testing.assert_array_equal(a.idata["posterior"][v].values, b.idata["posterior"][v].values)
        assert (tmp_path / "parallel" / b.name / "manifest.json").is_file()
        # the manifest records the caller's command line, not the worker process's
        assert a.manifest["command"] == b.manifest["command"] == "bayes-sacral reanalyze --jobs 2"
    assert any("2 at a time" in line for line in lines)
    # the workers computed each run's diagnostics and checks; this process absorbed them and computes none itself
    from bayes_sacral import checks, summarize

    expected = {a.name: summarize.summarize_run(a) for a in serial}
    for memo in (summarize._DIAGNOSTICS, checks._LOO, checks._PPC):
        memo.clear()
    again = fit_runs(runs, tmp_path / "parallel", reuse=True, jobs=2, log=lines.append)  # reused from the store, read by the workers
    assert sum("reused" in line for line in lines) == 3
    import arviz as az

    def not_here(*a, **k):
        raise AssertionError("diagnostics recomputed in the main process")

    monkeypatch.setattr(az, "ess", not_here)
    monkeypatch.setattr(az, "rhat", not_here)
    for b in again:
        # the same rows, NaN where the expected row has NaN (an MCSE that too few draws cannot give)
        assert pd.DataFrame(summarize.summarize_run(b)).equals(pd.DataFrame(expected[b.name]))
        checks.ppc_table(b)


def test_the_second_run_of_a_structure_waits_for_the_first_while_other_work_is_left():
    """Two workers, runs longest first: a, a (one structure), b, c. The second a would compile the same model again
    beside the first, so b starts; a's second run starts once its first has finished, or when nothing else is left."""
    from bayes_sacral.reanalysis import next_run

    group = ["a", "a", "b", "c"]
    pending, started, finished = [0, 1, 2, 3], set(), set()
    order = []
    for _ in range(2):  # both workers start
        i = next_run(pending, group, started, finished)
        pending.remove(i)
        started.add(group[i])
        order.append(i)
    assert order == [0, 2]
    assert next_run(pending, group, started, finished) == 3  # b finishes first: c, not the second a
    finished.add("a")
    assert next_run(pending, group, started, finished) == 1  # once a has a finished run, the longest again
    assert next_run([1], group, {"a"}, set()) == 1  # nothing else left: no idle worker


def test_sweep_members_and_prior_sets_of_one_config_share_a_structure_group():
    from bayes_sacral.config import load_configs
    from bayes_sacral.reanalysis import structure_group

    configs = Path(__file__).resolve().parents[1] / "configs"
    sweep = load_configs(configs / "msts_reconstructed.toml")
    assert len(sweep) > 1 and len({structure_group(r) for r in sweep}) == 1
    others = load_configs(configs / "msts_reconstructed_normal.toml") + load_configs(configs / "msts_domains.toml")
    assert len({structure_group(r) for r in sweep + others}) == 3


def test_expected_cost_counts_likelihood_terms_per_patient():
    """The per-item model (one ordered-logit term per item and patient) ranks by iterations × data sets × items: with
    the bundled configs it comes before the total-score reconstructions, which have twice its data sets but one term per
    patient (it ran about 4x as long per iteration, and started last when ranked by iterations alone)."""
    from bayes_sacral.config import load_configs
    from bayes_sacral.reanalysis import expected_cost

    configs = Path(__file__).resolve().parents[1] / "configs"
    items = load_configs(configs / "msts_domains.toml")[0]
    score = load_configs(configs / "msts_reconstructed_normal.toml")[0]
    for run, terms in ((items, len(items.spec.o.items)), (score, 1)):
        s = run.config.sampler
        assert expected_cost(run) == s.chains * (s.draws + s.tune) * run.options.reconstructions * terms
    assert len(items.spec.o.items) > 1
    assert expected_cost(items) > expected_cost(score)
