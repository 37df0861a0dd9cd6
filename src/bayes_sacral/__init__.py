"""bayes_sacral: Bayesian reanalysis of small clinical studies and design of their follow-up trials.

The Python API (the command line is a thin layer over it)::

    import bayes_sacral as bs
    study = bs.load_study("my_study.toml")      # or bs.load_study() for the bundled study
    data = study.read_ipd(df_or_path)           # validated; InputError lists every problem
    run = bs.fit(config, data=data)             # config: dict or TOML path; in memory unless out= is given
    run.idata, run.summary(), run.plot("forest"), run.save("models/my-run")
    bs.design(design_config)                    # xarray.Dataset of operating characteristics
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes-sacral")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from .gcpause import paused as _paused
from .optlevels import install as _install_optlevels

# before anything imports numba: how hard LLVM optimises the pieces of a compiled model (see optlevels)
_install_optlevels()

# Importing pandas, xarray and pydantic creates hundreds of thousands of long-lived objects; the cyclic collector is
# held off meanwhile instead of walking them again and again (see gcpause), and left as it was found.
with _paused():
    # the ``design`` subpackage is imported first so that the name ``bayes_sacral.design`` is then bound to the
    # function (later imports of its submodules go through sys.modules and leave this attribute alone)
    from . import design as _design_package  # noqa: F401
    from .api import design, fit
    from .errors import BayesSacralError, InputError, Problem
    from .run import Run
    from .study import Study, load_study

__all__ = ["__version__", "load_study", "Study", "fit", "Run", "design", "InputError", "BayesSacralError", "Problem"]
