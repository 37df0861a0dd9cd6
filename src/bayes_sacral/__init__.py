"""bayes_sacral: Bayesian reanalysis of small clinical studies and design of their follow-up trials."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes-sacral")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
