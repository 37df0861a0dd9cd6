"""The rendered-figure cache: a hit writes exactly the bytes a fresh write gives, a changed figure misses, keys agree
across processes, and a damaged entry is never used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bayes_sacral.report import figure_cache
from bayes_sacral.report.render import FigureSaver
from bayes_sacral.report.style import house_style

FIGURE = textwrap.dedent("""
    import numpy as np
    from bayes_sacral.report.style import house_style, new_figure

    def make(shift=0.0):
        with house_style():
            fig, axes = new_figure(nrows=1, ncols=2)
            x = np.linspace(0, 1, 50)
            axes.flat[0].plot(x, np.sin(6 * x) + shift, label="a")
            axes.flat[0].legend()
            axes.flat[1].hist(np.random.default_rng(1).normal(size=300), bins=20)
            axes.flat[1].set_title("draws")
            fig.suptitle("test figure")
        return fig
""")
namespace: dict = {}
exec(FIGURE, namespace)
make = namespace["make"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_SACRAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BAYES_SACRAL_FIGURE_CACHE", raising=False)
    return tmp_path / "cache" / "figures"


def write(stem, fig, workers=0, cache=None):
    with house_style(), FigureSaver(workers=workers, cache=cache) as saver:
        preview = saver.submit(fig, stem).result()
    return preview, saver.cached


def files(stem):
    return [stem.with_name(stem.name + ext).read_bytes() for ext in (".png", ".pdf")]


def test_a_hit_writes_the_bytes_a_fresh_write_gives(cache, tmp_path):
    fresh_preview, hits = write(tmp_path / "fresh", make(), cache=False)
    assert hits == 0 and not cache.exists()
    first_preview, hits = write(tmp_path / "first", make())
    assert hits == 0 and len(list(cache.glob("*.bsfg"))) == 1
    again_preview, hits = write(tmp_path / "again", make())
    assert hits == 1
    assert files(tmp_path / "again") == files(tmp_path / "first") == files(tmp_path / "fresh")
    assert again_preview == first_preview == fresh_preview
    assert fresh_preview[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_changed_figure_is_written_afresh(cache, tmp_path):
    write(tmp_path / "a", make())
    _, hits = write(tmp_path / "b", make(shift=1e-9))  # a change far below what a pixel shows is still another figure
    assert hits == 0 and len(list(cache.glob("*.bsfg"))) == 2
    assert figure_cache.figure_key(make()) != figure_cache.figure_key(make(shift=1e-9))
    # the same figure saved under other settings (here the PDF font type) is another entry too
    import matplotlib

    fig = make()
    key = figure_cache.figure_key(fig)
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        assert figure_cache.figure_key(fig) != key


def test_worker_processes_fill_the_cache(cache, tmp_path):
    preview, hits = write(tmp_path / "w", make(), workers=1)
    assert hits == 0
    again, hits = write(tmp_path / "again", make())
    assert hits == 1 and again == preview and files(tmp_path / "again") == files(tmp_path / "w")


def test_keys_agree_across_processes():
    # matplotlib pickles transform back references keyed by id(), which differs in every process
    # and a figure's pyplot number depends on how many were drawn before it (this process has drawn others)
    code = FIGURE + "\nfrom bayes_sacral.report.figure_cache import figure_key\nprint(figure_key(make()))\n"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    make()
    here = figure_cache.figure_key(make())
    assert len(here) == 40 and other == here


@pytest.mark.parametrize("damage", ["flip", "truncate", "other key"])
def test_a_damaged_entry_is_deleted_and_never_used(cache, tmp_path, damage):
    write(tmp_path / "a", make())
    entry = next(cache.glob("*.bsfg"))
    raw = bytearray(entry.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:  # a well-formed entry stored under another figure's name
        write(tmp_path / "b", make(shift=1.0))
        other = next(p for p in cache.glob("*.bsfg") if p != entry)
        raw = bytearray(other.read_bytes())
    entry.write_bytes(bytes(raw))
    assert figure_cache.load(entry.stem) is None and not entry.exists()
    _, hits = write(tmp_path / "c", make())
    assert hits == 0 and files(tmp_path / "c") == files(tmp_path / "a")


def test_figures_that_cannot_be_pickled_are_written_uncached(cache, tmp_path):
    fig = make()
    fig.axes[0].unpicklable = lambda: None  # a lambda cannot be pickled
    assert figure_cache.figure_key(fig) is None
    _, hits = write(tmp_path / "u", fig)
    assert hits == 0 and not list(cache.glob("*.bsfg")) and (tmp_path / "u.png").is_file()


def test_prune_deletes_least_recently_used_first(cache):

    cache.mkdir(parents=True)
    sizes = [300, 200, 100]
    for i, size in enumerate(sizes):
        p = cache / f"{i}.bsfg"
        p.write_bytes(b"x" * size)
        os.utime(p, (1000 + i, 1000 + i))  # 0 is the oldest
    assert figure_cache.prune(max_bytes=350) == 1
    assert sorted(p.name for p in cache.glob("*.bsfg")) == ["1.bsfg", "2.bsfg"]
    assert figure_cache.prune(max_bytes=0) == 2


def test_switched_off_by_the_environment(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_SACRAL_FIGURE_CACHE", "0")
    write(tmp_path / "a", make())
    _, hits = write(tmp_path / "b", make())
    assert hits == 0 and not cache.exists()


def test_cli_cache_info_and_clear(cli, cache, tmp_path):
    write(tmp_path / "a", make())
    write(tmp_path / "b", make(shift=np.pi))
    rows = {r["item"]: r for r in cli("cache", "info", "--format", "json").json()}
    assert rows["rendered report figures"]["entries"] == "2"
    assert rows["rendered report figures"]["location"] == str(cache)
    r = cli("cache", "clear")
    assert r.code == 0 and not list(cache.glob("*.bsfg"))
    assert cli("cache", "info", "--format", "json").json()[1]["entries"] == "0"


def test_cache_info_and_clear_reach_pytensors_numba_cache(fresh_python, tmp_path):
    """PyTensor keeps the machine code of every op in a numba cache beside its compiledir, which a first compile of a
    new structure reuses: `cache info` shows it where PyTensor keeps it, and `cache clear --pytensor` empties it (and
    leaves the folder, which PyTensor creates only at import); a plain `cache clear` leaves it alone."""
    base = tmp_path / "pytensor"
    code = textwrap.dedent(f"""
        import io, json, contextlib, pathlib
        from bayes_sacral.cli import main
        numba_dir = pathlib.Path({str(base)!r}) / "numba"
        numba_dir.mkdir(parents=True, exist_ok=True)
        for name in ("op_a.nbi", "op_a.0.nbc", "op_b.nbi"):
            (numba_dir / name).write_bytes(b"x" * 100)
        def info():
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main(["cache", "info", "--format", "json"]) == 0
            return {{r["item"]: r for r in json.loads(buf.getvalue())}}
        before = info()["PyTensor numba cache (compiled ops)"]
        assert main(["cache", "clear"]) == 0
        kept = sorted(p.name for p in numba_dir.iterdir())
        assert main(["cache", "clear", "--pytensor"]) == 0
        after = info()["PyTensor numba cache (compiled ops)"]
        from pytensor.link.numba.cache import NUMBA_CACHE_PATH
        print(json.dumps({{"before": before, "kept": kept, "after": after, "left": sorted(p.name for p in numba_dir.iterdir()),
                          "folder": numba_dir.is_dir(), "pytensor_says": str(NUMBA_CACHE_PATH)}}))
        """)
    out = json.loads(fresh_python(code, env={"PYTENSOR_FLAGS": f"base_compiledir={base}"}).stdout.strip().splitlines()[-1])
    assert out["before"]["location"] == str(base / "numba") == out["pytensor_says"]
    assert out["before"]["entries"] == "2" and out["before"]["MiB"] == f"{300 / 2**20:.1f}"
    assert out["kept"] == ["op_a.0.nbc", "op_a.nbi", "op_b.nbi"]
    assert out["after"]["entries"] == "0" and out["left"] == [] and out["folder"]


def test_cache_commands_do_not_load_the_models(fresh_python):
    """`cache info` and `cache clear` reach the figure cache without the report builder, so they start without the
    models and PyMC (a fresh process; 2.2 s -> 0.8 s when they were imported); `bayes_sacral.report.build_report` is
    still there on first use."""
    code = ("import sys\nfrom bayes_sacral.cli import main\n"
            "for args in (['cache', 'info'], ['cache', 'clear']):\n    assert main(args) == 0\n"
            "assert not {'pymc', 'bayes_sacral.models', 'matplotlib'} & set(sys.modules), sorted(sys.modules)\n"
            "from bayes_sacral.report import SECTIONS, build_report\nassert callable(build_report) and SECTIONS\n")
    fresh_python(code)
