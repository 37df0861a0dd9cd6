"""Data: the summary-data format, the published study, patient-level input and integrity checks."""

from .published import load_published, published_path
from .summary import SummaryData, read_summary

__all__ = ["SummaryData", "read_summary", "load_published", "published_path"]
