"""Reports: every section, table and figure present; figures valid, journal-sized, legible; no broken images."""

import html as html_lib
import re
import shutil
import struct
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from scipy import stats

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
    # the lead MSTS run with two cells of the standard prior grid as its sensitivity analyses
    for cfg, extra in (("configs/msts_summary.toml", ['sweep={"priors.set" = ["weakly_informative", "neutral_weak", "pessimistic_strong"]}']),
                       # a dot in the run name (as sweeps over numbers produce) must not truncate file names
                       ("configs/secondary_procedures.toml", ['sweep={"priors.set" = ["uniform"]}',
                                                              "run.name=secondary-0.5"])):
        for run in load_configs(cfg, FAST + extra):
            out.append(Run.load(fit_run(run, store).path))
    return out


IPD_CSV = "tests/data/ipd_valid.csv"
SMALL_SAMPLER = {"draws": 100, "tune": 200, "chains": 2, "prior_draws": 0}


@pytest.fixture(scope="module")
def items_run():
    """The per-item model fitted to the patient-level CSV, briefly (its predictive check's figure and table)."""
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import fit_resolved

    return fit_resolved(resolve({"run": {"name": "items", "seed": 3}, "data": {"source": "ipd", "path": IPD_CSV},
                                 "model": {"kind": "msts_domains"}, "sampler": SMALL_SAMPLER}))


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
    # every subsection is in the table of contents; the appendix's are collapsed <details>
    subsections = re.findall(r'<h3 id="([^"]+)">', html) + re.findall(r'<details class="appendix" id="([^"]+)">', html)
    nav = html.split("</nav>")[0]
    assert len(subsections) >= 10 and all(f'href="#{a}"' in nav for a in subsections)
    assert "<details class=\"appendix\" id=\"appendix--runs\">" in html and "<details open" not in html
    ids = re.findall(r'<table id="table-([^"]+)"', html)
    assert len(ids) >= 15 and "headline" in ids
    for name in ids:
        csv, tex = report / "tables" / f"{name}.csv", report / "tables" / f"{name}.tex"
        assert csv.stat().st_size > 0 and tex.read_text().startswith(r"\begin{table}")
    figs = re.findall(r'<figure id="figure-([^"]+)"', html)
    lead = next(r for r in runs if r.manifest.get("primary"))
    assert "summary" in figs and f"{lead.name}--main" in figs and f"{lead.name}--prior-grid" in figs
    for kind in ("forest", "ppc", "rank", "prior-posterior"):
        assert f"{lead.name}--{kind}" in figs
    assert any(f.endswith("--sensitivity") for f in figs)
    for name in figs:  # every figure the HTML shows also exists as its own PNG and PDF
        assert (report / "figures" / f"{name}.png").is_file() and (report / "figures" / f"{name}.pdf").is_file(), name
    for ref in re.findall(r"\]\((figures/[^)]+)\)", md):  # and the Markdown links resolve
        assert (report / ref).is_file(), ref
    assert any(".5--" in name for name in figs)
    assert "src=\"http" not in html and "<link" not in html  # self-contained: nothing fetched
    assert "posterior probability that PSFS" in html and "Gazendam" in html
    # the summary: question, data, headline table, conclusions carrying the card's caveats
    summary = html.split('<section id="methods">')[0]
    assert "The question" in summary and "Conclusions" in summary and "not randomised" in summary
    # display labels in words: no snake_case prior-set, variable or item names in the main report's tables and captions
    main = html.split('<section id="appendix">')[0].split("</nav>")[1]
    cells = re.findall(r"<t[dh]>([^<]*)</t[dh]>", main) + [c.split(" (<a")[0] for c in re.findall(r"<figcaption>(.*?)</figcaption>", main)]
    assert cells and not [c for c in cells if re.search(r"[a-z]_[a-z]", c)]
    assert "'weakly informative' set" in html_lib.unescape(main)


def _mcse_step_bounds(x2d: np.ndarray) -> float:
    """2 x the larger of the MCSE of the median and of the 95% interval ends, computed here with ArviZ."""
    import arviz as az

    point = float(az.mcse(x2d, method="median"))
    ends = max(float(az.mcse(x2d, method="quantile", prob=q)) for q in (0.025, 0.975))
    return 2 * max(point, ends)


def test_numbers_are_rounded_to_their_monte_carlo_error(report, runs):
    """Each printed median lies within half a printed step of the draws' median, and its last digit is the leading digit of
    about 2 x MCSE: never finer than a tenth of it (spurious digits), never coarser than 10 x 2 x MCSE."""
    lead = next(r for r in runs if r.manifest.get("primary"))
    md = (report / "report.md").read_text()
    post = lead.idata["posterior"]
    for level in ("pathological", "impending"):
        x = post["change_difference"].sel(fracture=level).values
        m = re.search(rf"(−?[0-9.]+) points in {level} \(95% HDI (−?[0-9.]+) to (−?[0-9.]+)", md)
        assert m, level
        printed = float(m.group(1).replace("−", "-"))
        decimals = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
        step = 10.0 ** -decimals
        assert abs(printed - np.median(x)) <= step / 2 + 1e-9
        two_mcse = _mcse_step_bounds(x)
        assert step / 10 < two_mcse * 1.25 and step <= two_mcse * 1.25 * 10, (step, two_mcse)
    # probabilities: at most two decimals, "> 0.99" rather than 1.00
    probs = re.findall(r"P\(benefit\) (?:= )?([<>]? ?[0-9.]+)", md)
    assert probs and all(len(p.split(".")[-1]) <= 2 for p in probs) and "1.00" not in probs


# --------------------------------------------------------------------------- figure layout
def _drawn_texts(fig):
    renderer = fig.canvas.get_renderer()
    all_tick_labels, drawn_tick_labels = set(), set()
    for ax in fig.findobj(matplotlib.axes.Axes):
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                all_tick_labels |= {id(tick.label1), id(tick.label2)}
            for tick in axis._update_ticks():  # the ticks matplotlib actually draws (inside the view limits)
                drawn_tick_labels |= {id(tick.label1), id(tick.label2)}
    hidden = {id(t) for ax in fig.axes if not ax.get_visible() for t in ax.findobj(matplotlib.text.Text)}  # not rendered
    # an axes switched off (ArviZ's unused grid cells) draws no axis, so none of its tick labels
    hidden |= {id(t) for ax in fig.axes if not ax.axison for axis in (ax.xaxis, ax.yaxis)
               for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden
             and (id(t) not in all_tick_labels or id(t) in drawn_tick_labels)]
    return [(t, t.get_window_extent(renderer)) for t in texts]


def layout_problems(fig) -> list[str]:
    """Everything a journal would send back: text below 7 pt, text outside the canvas, overlapping text, and a legend drawn
    over data (lines, filled areas, patches) of any axes."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    boxes = _drawn_texts(fig)
    canvas = fig.bbox
    for t, b in boxes:
        if t.get_fontsize() < MIN_FONT_PT:
            problems.append(f"font {t.get_fontsize()} pt: {t.get_text()!r}")
        if b.x0 < canvas.x0 - 1 or b.x1 > canvas.x1 + 1 or b.y0 < canvas.y0 - 1 or b.y1 > canvas.y1 + 1:
            problems.append(f"clipped at the canvas edge: {t.get_text()!r}")
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                problems.append(f"overlapping text: {ta.get_text()!r} / {tb.get_text()!r}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for leg in legends:
        lb = leg.get_window_extent(renderer)
        lb = Bbox.from_extents(lb.x0 + 1, lb.y0 + 1, lb.x1 - 1, lb.y1 - 1)
        for ax in fig.axes:
            artists = [a for a in ax.lines if a.get_visible()] + [a for a in ax.collections if a.get_visible()] \
                + [a for a in ax.patches if a.get_visible()]
            for art in artists:
                if hasattr(art, "get_path") and not hasattr(art, "get_paths"):
                    paths, tr, filled = [art.get_path()], art.get_transform(), not isinstance(art, matplotlib.lines.Line2D)
                else:
                    paths, tr, filled = art.get_paths(), art.get_transform(), True
                for path in paths:
                    if len(path.vertices) and path.transformed(tr).intersects_bbox(lb, filled=filled):
                        problems.append(f"legend over data: {type(art).__name__} {art.get_label()!r}")
                        break
    return problems


def test_layout_check_detects_what_a_journal_would_reject():
    """The checker itself: a legend on top of a curve, a label pushed off the canvas, overlapping labels."""
    with house_style():
        fig, ax = matplotlib.pyplot.subplots(figsize=(SINGLE, 2.4))
        x = np.linspace(0, 1, 50)
        ax.plot(x, 1 - x, label="falling line")
        ax.axvline(0.02, color="0.4")
        ax.legend(loc="upper left")
        probs = layout_problems(fig)
        assert any("legend over data" in p for p in probs)
        ax.get_legend().remove()
        ax.text(0.98, 0.5, "a long label that runs off the right edge", transform=fig.transFigure)
        ax.text(0.1, 0.1, "overlap A")
        ax.text(0.1, 0.1, "overlap B")
        probs = layout_problems(fig)
        assert any("clipped" in p for p in probs) and any("overlapping" in p for p in probs)
        matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("kind", ["forest", "forest-limited", "density", "prior-posterior", "ppc", "rates", "rank", "trace",
                                  "sensitivity", "prior-grid", "summary"])
def test_figures_are_legible(runs, kind):
    """Fonts of at least 7 pt, no overlapping text, nothing clipped at the canvas edge, no legend over data; checked on
    the figure as its files are written (long x-axis labels rewrapped). "forest-limited": a forest whose axis stops at
    the plausible range, whose note on the arrows once overlapped the axis label."""
    from bayes_sacral.report.style import fit_axis_labels

    lead = next(r for r in runs if r.manifest.get("primary"))
    grid = [r for r in runs if r.manifest["model"]["kind"] == "score"]
    with house_style():
        if kind == "sensitivity":
            fig = F.sensitivity(grid, [r.manifest["prior_set"] for r in grid])
        elif kind == "prior-grid":
            fig = F.prior_grid(grid)
        elif kind == "summary":
            fig = F.summary_forest([lead, runs[-1]])
        elif kind == "forest-limited":
            fig = F.forest([lead], limit=True)
            assert "arrows" in fig.axes[0].get_xlabel()
        else:
            fig = F.figure_for(kind, runs[-1] if kind == "rates" else lead)
        fit_axis_labels(fig)
        problems = layout_problems(fig)
        matplotlib.pyplot.close(fig)
    assert not problems, (kind, problems)


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


def test_conjugate_densities_are_exact(runs):
    """The rates figure of a conjugate run draws the Beta posterior itself: the 0/9 arm's Beta(1, 10) density is largest at 0
    (a KDE of draws would pull it toward zero there)."""
    from scipy import stats

    sec = runs[-1]
    with house_style():
        fig = F.rates(sec)
        ax = fig.axes[0]
        line = next(ln for ln in ax.lines if ln.get_label() == "PSFS")
        x, y = line.get_data()
        np.testing.assert_allclose(y, stats.beta(1, 10).pdf(x), rtol=1e-10)
        assert y[0] == y.max() and x[0] == 0.0
        matplotlib.pyplot.close(fig)


def test_binned_kde_matches_the_direct_gaussian_kde():
    """The binned KDE against scipy's direct sum (Scott's bandwidth), with light, heavy and skewed tails."""
    rng = np.random.default_rng(5)
    for x in (rng.normal(2, 3, 6000), rng.standard_t(2, 20000), rng.gamma(0.5, size=3000), rng.beta(1, 10, 4000)):
        kde = stats.gaussian_kde(x)
        bw = float(np.sqrt(kde.covariance[0, 0]))
        g = np.linspace(x.min() - 2 * bw, x.max() + 2 * bw, 701)
        d = F.gaussian_kde_grid(x, g, bw)
        assert np.abs(d - kde(g)).max() < 2e-4 * kde(g).max()
        g2, d2 = F.density_curve(x)
        np.testing.assert_allclose(d2, kde(g2), rtol=0, atol=2e-4 * d2.max())


def test_reflected_kde_keeps_mass_at_a_bound():
    rng = np.random.default_rng(3)
    x = rng.beta(1, 10, 8000)
    g, d = F.density_curve(x, (0.0, 1.0))
    assert g[0] == 0.0 and abs(np.trapezoid(d, g) - 1) < 0.01
    assert abs(d[0] - 10) < 2.0  # the true density at 0 is 10; an unreflected KDE gives about half


def test_report_is_deterministic(runs, report, tmp_path, monkeypatch):
    # every figure written afresh (the report fixture may have copied some from the figure cache)
    monkeypatch.setenv("BAYES_SACRAL_FIGURE_CACHE", "0")
    again = tmp_path / "again"
    build_report(runs, again, "Test report")
    for rel in ("report.md", "report.html", "tables/msts-summary--set-weakly_informative--posterior.csv", "tables/headline.csv"):
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


def _print_pages(exe: str, html: Path, tmp_path: Path) -> int:
    pdf = tmp_path / "print.pdf"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--no-pdf-header-footer",
             f"--user-data-dir={tmp_path / 'profile-print'}", "--virtual-time-budget=15000", f"--print-to-pdf={pdf}"]
    subprocess.run([exe, *flags, html.as_uri()], capture_output=True, text=True, timeout=180)
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def test_committed_report_prints_on_at_most_12_pages(tmp_path):
    """The main report (summary, methods, results; the appendix collapsed) of the committed reanalysis prints on <= 12 pages."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("Chromium is not installed and `make test` could not install it (Debian packages chromium, chromium-driver)")
    html = Path(__file__).resolve().parents[1] / "reports" / "published-reanalysis" / "report.html"
    pages = _print_pages(exe, html, tmp_path)
    assert 3 <= pages <= 12, pages


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


@pytest.mark.parametrize("writer", ["save_figure", "figure_bytes"])
def test_an_axis_label_wider_than_its_axis_is_rewrapped_inside_the_canvas(tmp_path, writer):
    """Long tick labels push the axis right; a long x label centred under it used to run past the right edge and lose
    its end in the PNG and PDF (and in `bayes-sacral plot`, which wrote the figure without the check). After saving,
    every line of it lies inside the canvas and no word is lost."""
    from bayes_sacral.report.style import SINGLE, figure_bytes, house_style, new_figure, save_figure

    text = "Effect on the item score, PSFS − Sacroplasty alone (0-5)"
    with house_style():
        fig, ax = new_figure(SINGLE, 3.0)
        ax.set_yticks(range(4), [f"pathological, Emotional acceptance {i}" for i in range(4)])
        ax.plot([0, 1], [0, 3])
        ax.set_xlabel(text)
        label = ax.xaxis.label
        if writer == "save_figure":
            save_figure(fig, tmp_path / "f")
        else:
            assert figure_bytes(fig, "png").startswith(b"\x89PNG")
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig).draw()  # save_figure closed it: measure on a fresh canvas
        box = label.get_window_extent()
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width
        assert " ".join(label.get_text().split()) == text


@pytest.mark.parametrize("long_label", [False, True])
def test_the_png_draw_as_first_layout_round_gives_the_same_files(tmp_path, long_label):
    """write_figure checks the labels on the PNG's own draw instead of a draw before it: its PNG and PDF are byte for
    byte those of laying the figure out at 300 dpi first, label rewraps included, and then writing each file
    (figure_bytes)."""
    from bayes_sacral.report.style import (
        SINGLE,
        figure_bytes,
        house_style,
        new_figure,
        write_figure,
    )

    def build():
        fig, ax = new_figure(SINGLE, 3.0)
        ax.set_yticks(range(4), [f"pathological, Emotional acceptance {i}" for i in range(4)])
        ax.plot([0, 1], [0, 3])
        ax.set_xlabel("Effect on the item score, PSFS − Sacroplasty alone (0-5)" if long_label else "Effect")
        return fig

    with house_style():
        write_figure(build(), tmp_path / "f")
        assert (tmp_path / "f.png").read_bytes() == figure_bytes(build(), "png")
        assert (tmp_path / "f.pdf").read_bytes() == figure_bytes(build(), "pdf")


def test_a_figure_is_laid_out_once_and_its_preview_shows_the_files_pixels(tmp_path):
    """write_figure lays the figure out once, at 300 dpi, in the PNG's draw, and keeps that layout for the PDF: the
    300-dpi PNG is byte for byte what matplotlib's own constrained layout gives, and writing the PDF moves no axes. The
    preview has matplotlib's size
    at 110 dpi and shows the PNG's pixels: it matches the 300-dpi image averaged over each preview pixel's area
    (computed here from cumulative sums)."""
    import io

    from PIL import Image

    from bayes_sacral.report.style import DOUBLE, DPI, house_style, new_figure, write_figure

    def build():
        fig, axes = new_figure(DOUBLE, 2.4, 1, 2)
        for ax in axes:
            ax.set_yticks(range(3), ["pathological, Emotional acceptance", "impending", "pooled"])
            ax.plot([0, 1], [0, 2])
            ax.set_xlabel("Effect on the item score")
        fig.suptitle("A title above both panels")
        return fig

    with house_style():
        buf = io.BytesIO()
        build().savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        expected_png = buf.getvalue()
        fig = build()
        moved = []
        real_savefig = fig.savefig

        def savefig(*a, **k):  # the axes' positions after each file is written
            out = real_savefig(*a, **k)
            moved.append(np.array([ax.get_position().bounds for ax in fig.axes]))
            return out

        fig.savefig = savefig
        preview = write_figure(fig, tmp_path / "f", preview_dpi=110)
    assert (tmp_path / "f.png").read_bytes() == expected_png
    assert len(moved) == 2 and np.array_equal(moved[0], moved[1])
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")

    big = np.asarray(Image.open(io.BytesIO(expected_png)).convert("RGBA"), dtype=float)
    big = big[..., :3] * big[..., 3:] / 255 + 255 * (1 - big[..., 3:] / 255)  # on white
    small = np.asarray(Image.open(io.BytesIO(preview)).convert("RGB"), dtype=float)
    assert abs(small.shape[1] - DOUBLE * 110) <= 1 and abs(small.shape[0] - 2.4 * 110) <= 1

    def area_mean(a, n, axis):  # the average of a over n equal parts of its length along axis
        c = np.concatenate([np.zeros_like(np.take(a, [0], axis)), np.cumsum(a, axis)], axis)
        edges = np.linspace(0, a.shape[axis], n + 1)
        at = np.apply_along_axis(lambda v: np.interp(edges, np.arange(len(v)), v), axis, c)
        return np.diff(at, axis=axis) / np.diff(edges).reshape([-1 if i == axis else 1 for i in range(a.ndim)])

    expected = area_mean(area_mean(big, small.shape[0], 0), small.shape[1], 1)
    assert np.abs(small - expected).mean() < 1.5  # of 255 (Lanczos is sharper than an area average at edges)
    ink, want = 255 - small.mean(axis=2), 255 - expected.mean(axis=2)
    assert np.corrcoef(ink.ravel(), want.ravel())[0, 1] > 0.99


def test_the_item_score_check_shows_each_arms_share_of_patients_at_each_score(items_run):
    """The per-item model's posterior predictive check: one panel per item, with each arm's observed share of patients
    at each item score (computed here from the CSV) against a 90% predictive interval of that share. The generic check
    drew one row per patient-item pair (180 overlapping tick labels); the figure passes the legibility check."""
    import pandas as pd

    from bayes_sacral.report.figures import ppc
    from bayes_sacral.report.style import house_style

    run = items_run
    card, o = run.card, run.card.outcomes["msts"]
    frame = pd.read_csv(IPD_CSV)
    frame = frame.dropna(subset=[f"{i}_{t}" for t in ("pre", "post") for i in o.items])  # the model's patients
    scores = np.arange(o.item_min, o.item_max + 1)
    with house_style():
        fig = ppc(run)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [card.label("item", i) for i in o.items]
    for ax, item in zip(panels, o.items, strict=True):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        intervals = {c.get_label(): c for c in ax.collections}
        for arm in card.arm_levels:
            post = frame.loc[frame["arm"] == arm, f"{item}_post"].to_numpy()
            observed = lines[f"observed, {card.arm_label(arm)}"]
            np.testing.assert_allclose(observed.get_ydata(), [(post == s).mean() for s in scores])
            segments = intervals[f"predictive 90%, {card.arm_label(arm)}"].get_segments()
            assert len(segments) == len(scores)
            assert all(0 <= seg[0, 1] <= seg[1, 1] <= 1 for seg in segments)
    with house_style():
        problems = layout_problems(fig)
    matplotlib.pyplot.close(fig)
    assert not problems, problems


def test_the_item_score_check_table_compares_each_data_set_with_its_own_items(items_run):
    """The predictive-check table of the per-item model: per item and arm, the mean, SD and share at the top of the item
    scale. A patient-level run's observed means are the CSV's; a reconstructed run checks each data set against its own
    item scores and averages (the generic table compared every data set with the first one's observations)."""
    import pandas as pd

    from bayes_sacral.checks import ppc_table
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import fit_resolved

    ipd = items_run
    card, o = ipd.card, ipd.card.outcomes["msts"]
    frame = pd.read_csv(IPD_CSV).dropna(subset=[f"{i}_{t}" for t in ("pre", "post") for i in o.items])
    tab = ppc_table(ipd).set_index(["element", "statistic"])
    assert len(tab) == len(o.items) * len(card.arm_levels) * 3
    for item in o.items:
        for arm in card.arm_levels:
            post = frame.loc[frame["arm"] == arm, f"{item}_post"].to_numpy(dtype=float)
            row = f"{card.label('item', item)}, {card.arm_label(arm)}"
            assert tab.loc[(row, "mean"), "observed"] == pytest.approx(post.mean())
            assert tab.loc[(row, "sd"), "observed"] == pytest.approx(post.std(ddof=1))
            assert tab.loc[(row, "at_ceiling"), "observed"] == pytest.approx((post == o.item_max).mean())
            assert tab.loc[(row, "mean"), "predictive_low"] <= tab.loc[(row, "mean"), "predictive_high"]

    rec = fit_resolved(resolve({"run": {"name": "items-rec", "seed": 3},
                                "model": {"kind": "msts_domains", "route": "reconstructed", "reconstructions": 2},
                                "sampler": SMALL_SAMPLER}))
    data = rec.idata["reconstruction_data"].to_dataset()
    got = ppc_table(rec).set_index(["element", "statistic"])
    spread = 0.0
    for item in o.items:
        for a, arm in enumerate(card.arm_levels):
            per_set = []
            for k in data["reconstruction"].values:
                d = data.sel(reconstruction=k)
                y = d["item_post_from_min"].sel(item=item).values[d["arm_idx"].values == a] + o.item_min
                per_set.append({"mean": y.mean(), "sd": y.std(ddof=1), "at_ceiling": (y == o.item_max).mean()})
            for stat in ("mean", "sd", "at_ceiling"):
                values = [v[stat] for v in per_set]
                spread = max(spread, float(np.ptp(values)))
                assert got.loc[(f"{card.label('item', item)}, {card.arm_label(arm)}", stat), "observed"] == pytest.approx(np.mean(values))
    assert spread > 0  # the data sets differ (their item means are the published ones), so checking both against one shows


def test_the_score_check_names_each_arms_observed_line_and_is_legible():
    """The patient-level score check: each arm's observed ECDF is in the legend in its arm's colour (the legend named
    one "observed" line in the first arm's colour), and the two-line panel titles pass the legibility check."""
    from bayes_sacral.config import resolve
    from bayes_sacral.fitting import fit_resolved
    from bayes_sacral.report.style import arm_colours, fit_axis_labels

    run = fit_resolved(resolve({"run": {"name": "score", "seed": 3}, "data": {"source": "ipd", "path": IPD_CSV},
                                "model": {"kind": "msts"}, "sampler": SMALL_SAMPLER}))
    card = run.card
    with house_style():
        fig = F.figure_for("ppc", run)
        legend = fig.legends[0]
        shown = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)}
        for arm, colour in arm_colours(card).items():
            handle = shown[f"observed, {card.arm_label(arm)}"]
            assert matplotlib.colors.same_color(handle.get_color(), colour)
        fit_axis_labels(fig)
        problems = layout_problems(fig)
        matplotlib.pyplot.close(fig)
    assert not problems, problems


def test_meanwhile_runs_once_before_the_report_is_assembled(runs, tmp_path):
    """write_report's ``meanwhile`` (the reanalysis writes its run tables there) is called once, after every figure was
    handed to the saver and before the report waits for them and writes its pages."""
    from bayes_sacral.report.build import write_report

    seen = []
    write_report(runs, tmp_path, "Test report", meanwhile=lambda: seen.append(((tmp_path / "report.html").exists(),
                                                                                (tmp_path / "report.md").exists())))
    assert seen == [(False, False)]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
