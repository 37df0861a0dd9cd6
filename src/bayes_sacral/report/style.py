"""The house style for manuscript figures: journal widths, fonts of at least 7 pt, a colour-blind-safe palette."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["SINGLE", "DOUBLE", "PALETTE", "arm_colours", "house_style", "save_figure", "write_figure", "figure_bytes", "fit_axis_labels", "new_figure", "MIN_FONT_PT", "DPI",
           "percent_of_range", "from_percent_of_range"]

#: Column widths in inches: single (3.5 in, 89 mm) and double (7.2 in, 183 mm).
SINGLE = 3.5
DOUBLE = 7.2
DPI = 300
MIN_FONT_PT = 7
#: Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def arm_colours(card) -> dict[str, str]:
    """Treatment blue, control orange (Okabe-Ito), keyed by the card's arm labels."""
    return {card.arm_levels[0]: PALETTE[0], card.arm_levels[1]: PALETTE[1]}

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "savefig.dpi": DPI,
    "figure.dpi": 100,
    "pdf.fonttype": 42,  # editable text in journals' PDF workflows
    "svg.hashsalt": "bayes-sacral",
    "path.simplify": False,
}


def percent_of_range(R, p):
    """``p`` score points as a percentage of a score's range ``R`` (a secondary axis's forward function). Defined here,
    not with the figures: unpickling a figure in a writer process imports the module of its axis functions, and the
    figures module pulls in scipy and arviz_stats (about 1.7 s of each writer process's start)."""
    return p / R * 100


def from_percent_of_range(R, q):
    """The inverse of :func:`percent_of_range`."""
    return q * R / 100


@contextlib.contextmanager
def house_style():
    """Matplotlib rc settings of the house style (also applied to arviz-plots figures drawn inside)."""
    with plt.rc_context(_RC):
        yield


def new_figure(width: float = SINGLE, height: float = 2.4, nrows: int = 1, ncols: int = 1, **kw):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kw)
    return fig, axes


#: Layout rounds of :func:`fit_axis_labels` (each lays the figure out and rewraps the labels still too wide).
LABEL_ROUNDS = 8


def fit_axis_labels(fig, min_width: int = 12, rounds: int = LABEL_ROUNDS) -> None:
    """Rewrap every x-axis label that runs past the edge of the canvas, narrower until it fits. A label is centred under
    its axis, and long tick labels on the left push the axis right: a label wider than the axis then lost its end
    (the per-item forest plot's "Effect on the item score, PSFS − Sacroplasty alone" was cut after "Sacro")."""
    for _ in range(rounds):
        # the layout and text extents of a draw, without rasterising (a full draw cost about a third of writing a
        # report's figures)
        fig.draw_without_rendering()
        if not _rewrap_overflowing(fig, min_width):
            return
    fig.draw_without_rendering()  # the last rewrap laid out too, as when the loop returns early


def _rewrap_overflowing(fig, min_width: int = 12) -> bool:
    """Rewrap the x-axis labels that run past the canvas as last drawn (at the figure's current resolution); returns
    whether any was rewrapped."""
    import textwrap

    right = fig.bbox.width
    moved = False
    for ax in fig.axes:
        label = ax.xaxis.label
        text = label.get_text()
        if not text:
            continue
        box = label.get_window_extent()
        if box.x0 >= -0.5 and box.x1 <= right + 0.5:
            continue
        longest = max(len(line) for line in text.split("\n"))
        width = int(longest * 0.85)
        if width < min_width:
            continue
        label.set_text("\n".join(textwrap.wrap(" ".join(text.split()), width)))
        moved = True
    return moved


def _keep_layout(fig) -> None:
    """Set the layout engine aside, keeping the positions it computed last."""
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    engine = fig.get_layout_engine()
    if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
        fig.set_layout_engine("none")


@contextlib.contextmanager
def _at_dpi(fig, dpi: float):
    old = fig.dpi
    fig.set_dpi(dpi)
    try:
        yield
    finally:
        fig.set_dpi(old)


def _lay_out_for_files(fig) -> None:
    """Rewrap x-axis labels that run past the canvas, measured at 300 dpi (:func:`fit_axis_labels`, whose last draw
    runs the layout engine), and keep that layout (the engine set aside)."""
    with _at_dpi(fig, DPI):
        fit_axis_labels(fig)
    _keep_layout(fig)


def _png_laid_out(fig) -> bytes:
    """The 300-dpi PNG, with the figure laid out as :func:`_lay_out_for_files` lays it out and that layout kept, for
    one draw less: the PNG's own draw is the first layout round, its labels are checked on it, and only a figure with a
    label to rewrap is laid out again (:func:`fit_axis_labels`' remaining rounds) and drawn once more. The draws and
    layouts run in the same order and at the same resolution as before, so the PNG's bytes are the same."""
    buf = io.BytesIO()
    _save(fig, buf, "png")  # the layout engine runs at 300 dpi in this draw
    with _at_dpi(fig, DPI):
        moved = _rewrap_overflowing(fig)
        if moved:
            fit_axis_labels(fig, rounds=LABEL_ROUNDS - 1)
    _keep_layout(fig)
    if moved:
        buf = io.BytesIO()
        _save(fig, buf, "png")
    return buf.getvalue()


def _save(fig, target, fmt: str) -> None:
    if fmt == "png":
        fig.savefig(target, format="png", dpi=DPI, metadata={"Software": None})
    else:
        fig.savefig(target, format="pdf", metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})


def preview_of(png: bytes, preview_dpi: int) -> bytes:
    """A PNG at ``preview_dpi`` made from the 300-dpi PNG's pixels: flattened onto white, resampled (Lanczos), so the
    preview shows exactly the layout of the files at the size matplotlib would give it at that resolution, and stored
    with a palette of 256 colours (flat colours and their anti-aliased edges; in full colour the report's HTML grew
    from 3.3 to 5.1 MB)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("RGB")
    size = tuple(max(1, round(n * preview_dpi / DPI)) for n in flat.size)
    buf = io.BytesIO()
    small = flat.resize(size, Image.Resampling.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, format="png")
    return buf.getvalue()


def write_figure(fig, stem: Path, preview_dpi: int | None = None) -> bytes | None:
    """Write ``stem``.png (300 dpi) and ``stem``.pdf with no timestamps (the same figure gives the same bytes), close
    the figure, and return a PNG preview at ``preview_dpi`` (None without one).

    The figure is laid out at 300 dpi in the PNG's own draw, where x-axis labels that run past the canvas are found and
    rewrapped (:func:`_png_laid_out`), and that layout is kept for the PDF. Positions are fractions
    of the figure, so the 300-dpi layout carries over to the PDF (its text is drawn at true glyph widths, closest to
    those at 300 dpi). The preview is the 300-dpi PNG resampled (:func:`preview_of`), not drawn a fourth time: drawing
    it laid the figure out again at the preview's resolution (where hinting widens small text) and cost about a fifth
    of a report's figure-writing time (11 of 49 CPU-s), and it showed a layout that differed from the files'."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        png = _png_laid_out(fig)
        # Run names may contain dots (sweep values such as 0.5): append, never replace a "suffix".
        stem.with_name(stem.name + ".png").write_bytes(png)
        _save(fig, stem.with_name(stem.name + ".pdf"), "pdf")
        return None if preview_dpi is None else preview_of(png, preview_dpi)
    finally:
        plt.close(fig)


def figure_bytes(fig, fmt: str) -> bytes:
    """One file of ``fig`` as bytes, ``fmt`` "png" (300 dpi) or "pdf", laid out and labelled as :func:`write_figure`
    lays out its files (long x-axis labels rewrapped); closes the figure."""
    try:
        _lay_out_for_files(fig)
        buf = io.BytesIO()
        _save(fig, buf, fmt)
        return buf.getvalue()
    finally:
        plt.close(fig)


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png (300 dpi) and ``stem``.pdf (:func:`write_figure`, long x-axis labels rewrapped) and close
    the figure; returns the two paths."""
    write_figure(fig, stem)
    stem = Path(stem)
    return [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
