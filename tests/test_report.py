"""Reports: every section, table and figure present; figures valid, journal-sized, legible; no broken images."""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from bayes_sacral.config import load_configs
from bayes_sacral.fitting import fit_run
from bayes_sacral.report import SECTIONS, build_report
from bayes_sacral.report import figures as F
from bayes_sacral.report.style import DOUBLE, DPI, MIN_FONT_PT, SINGLE, house_style
from bayes_sacral.run import Run

FAST = ["sampler.draws=300", "sampler.tune=400", "sampler.chains=2", "sampler.prior_draws=200"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    out = []
    for cfg, extra in (("configs/msts_summary.toml", ['sweep={"priors.set" = ["weakly_informative", "skeptical"]}']),
                       # a dot in the run name (as sweeps over numbers produce) must not truncate file names
                       ("configs/secondary_procedures.toml", ['sweep={"priors.set" = ["uniform"]}',
                                                              "run.name=secondary-0.5"])):
        for run in load_configs(cfg, FAST + extra):
            out.append(Run.load(fit_run(run, store).path))
    return out


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    build_report(runs, out, "Test report")
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_sections_tables_and_figures_present(report, runs):
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in html and f"## {title}" in md
    ids = re.findall(r'<table id="table-([^"]+)"', html)
    assert len(ids) >= 15
    for name in ids:
        csv, tex = report / "tables" / f"{name}.csv", report / "tables" / f"{name}.tex"
        assert csv.stat().st_size > 0 and tex.read_text().startswith(r"\begin{table}")
    figs = re.findall(r'<figure id="figure-([^"]+)"', html)
    primary = [r for r in runs if "skeptical" not in r.name]
    for r in primary:
        for kind in ("forest", "density", "ppc", "rank"):
            assert f"{r.name}--{kind}" in figs
    assert any(f.endswith("--sensitivity") for f in figs)
    for name in figs:  # every figure the HTML shows also exists as its own PNG and PDF
        assert (report / "figures" / f"{name}.png").is_file() and (report / "figures" / f"{name}.pdf").is_file(), name
    for ref in re.findall(r"\]\((figures/[^)]+)\)", md):  # and the Markdown links resolve
        assert (report / ref).is_file(), ref
    assert any(".5--" in name for name in figs)
    # summary route: the results text also gives the change difference that the summaries inform directly
    summ = next(r for r in runs if r.manifest["model"].get("route") == "summary" and "skeptical" not in r.name)
    x = summ.idata["posterior"]["change_difference"].sel(fracture="pathological").values.ravel()
    assert f"difference in mean change, which the summaries inform directly (the comparison of a t test on change scores), " \
           f"had posterior median {np.median(x):.2f} points in pathological" in md
    assert "src=\"http" not in html and "<link" not in html  # self-contained: nothing fetched
    assert "posterior probability that PSFS" in html and "Gazendam" in html


def test_figures_are_valid_and_journal_sized(report):
    pngs = sorted((report / "figures").glob("*.png"))
    assert len(pngs) >= 10
    widths = {round(SINGLE * DPI), round(DOUBLE * DPI)}
    for png in pngs:
        w, h = png_size(png)
        assert w in widths, (png.name, w)
        assert h > 100
        pdf = png.with_suffix(".pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 1000
        box = re.search(rb"/MediaBox \[ *0 0 ([0-9.]+) ([0-9.]+) *\]", pdf)
        assert box and round(float(box.group(1)) / 72, 1) in (SINGLE, DOUBLE)


@pytest.mark.parametrize("kind", ["forest", "density", "prior-posterior", "ppc", "rates", "rank"])
def test_figures_are_legible(runs, kind):
    """Fonts of at least 7 pt and no overlapping text, in every figure kind."""
    run = runs[-1] if kind == "rates" else runs[0]
    with house_style():
        fig = F.figure_for(kind, run)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        all_tick_labels, drawn_tick_labels = set(), set()
        for ax in fig.findobj(matplotlib.axes.Axes):
            for axis in (ax.xaxis, ax.yaxis):
                for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                    all_tick_labels |= {id(tick.label1), id(tick.label2)}
                for tick in axis._update_ticks():  # the ticks matplotlib actually draws (inside the view limits)
                    drawn_tick_labels |= {id(tick.label1), id(tick.label2)}
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
                 and (id(t) not in all_tick_labels or id(t) in drawn_tick_labels)]
        assert texts
        for t in texts:
            assert t.get_fontsize() >= MIN_FONT_PT, (kind, t.get_text(), t.get_fontsize())
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        fig_box = fig.bbox
        for i, (ta, a) in enumerate(boxes):
            assert a.x0 >= fig_box.x0 - 1 and a.x1 <= fig_box.x1 + 1 and a.y0 >= fig_box.y0 - 1 and a.y1 <= fig_box.y1 + 1, (kind, ta)
            for tb, b in boxes[i + 1:]:
                overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
                overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert not (overlap_w > 1 and overlap_h > 1), (kind, ta, tb)
        matplotlib.pyplot.close(fig)


def test_report_is_deterministic(runs, report, tmp_path):
    again = tmp_path / "again"
    build_report(runs, again, "Test report")
    for rel in ("report.md", "report.html", "tables/msts-summary--set-weakly_informative--posterior.csv"):
        assert (again / rel).read_bytes() == (report / rel).read_bytes(), rel
    for png in sorted((report / "figures").glob("*.p*"))[:6]:
        assert (again / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


def test_no_broken_images_in_headless_chromium(report, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("Chromium is not installed and `make test` could not install it (Debian packages chromium, chromium-driver)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]
    dom = subprocess.run([exe, *flags, "--dump-dom", (report / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<body[^>]*data-images="(\d+)"[^>]*data-broken-images="(\d+)"', dom)
    assert m, "the page's load script did not run"
    n_images, broken = int(m.group(1)), int(m.group(2))
    assert n_images == (report / "report.html").read_text().count("<img ") and broken == 0


def test_cli_report_and_plot(cli, runs, tmp_path):
    r = cli("report", str(runs[-1].path), "--out", tmp_path / "rep", "--no-figures")
    assert r.code == 0 and (tmp_path / "rep" / "report.html").exists()
    out = tmp_path / "f.pdf"
    assert cli("plot", str(runs[0].path), "forest", "--out", out).code == 0 and out.read_bytes().startswith(b"%PDF")
    out = tmp_path / "f.png"
    assert cli("plot", str(runs[0].path), "density", "--out", out).code == 0 and png_size(out)[0] == round(DOUBLE * DPI)
    bad = cli("plot", str(runs[0].path), "forrest")
    assert bad.code == 2 and "did you mean 'forest'" in bad.err
    assert cli("plot", str(runs[-1].path), "rates", "--out", tmp_path / "x.svg").code == 2
