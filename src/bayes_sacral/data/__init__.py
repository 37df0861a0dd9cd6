"""Data: the summary-data format, patient-level input, integrity checks and reconstruction, all read against a study card."""

from .source import StudyData, load_data
from .summary import SummaryData, read_summary

__all__ = ["SummaryData", "read_summary", "StudyData", "load_data"]
