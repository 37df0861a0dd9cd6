"""Posterior reports and manuscript figures: tables, figures and text from fitted runs."""

from .build import SECTIONS, build_report

__all__ = ["build_report", "SECTIONS"]
