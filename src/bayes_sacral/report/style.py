"""The house style for manuscript figures: journal widths, fonts of at least 7 pt, a colour-blind-safe palette."""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["SINGLE", "DOUBLE", "PALETTE", "arm_colours", "house_style", "save_figure", "new_figure", "MIN_FONT_PT", "DPI"]

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


@contextlib.contextmanager
def house_style():
    """Matplotlib rc settings of the house style (also applied to arviz-plots figures drawn inside)."""
    with plt.rc_context(_RC):
        yield


def new_figure(width: float = SINGLE, height: float = 2.4, nrows: int = 1, ncols: int = 1, **kw):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kw)
    return fig, axes


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png (300 dpi) and ``stem``.pdf with no timestamps, so the same figure gives the same bytes."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # Run names may contain dots (sweep values such as 0.5): append, never replace a "suffix".
    png = stem.with_name(stem.name + ".png")
    pdf = stem.with_name(stem.name + ".pdf")
    fig.savefig(png, dpi=DPI, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return [png, pdf]
