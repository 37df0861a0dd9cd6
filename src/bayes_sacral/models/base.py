"""What every model kind provides: options, prior parameters and named prior sets, data, builder, estimands.

A kind is a plain object: :meth:`prepare` turns study data into an :class:`xarray.Dataset` with named dims,
:meth:`build` turns that plus priors into a ``pm.Model`` whose observed values live in ``pm.Data`` (so one
compiled model can be refitted to new data: calibration and trial simulation use the same builder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import xarray as xr
from pydantic import BaseModel, ConfigDict

from ..priors import PriorParam, PriorSpec

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

    from ..data.source import StudyData

__all__ = ["PriorSet", "ModelInput", "ModelKind", "KindOptions", "reconstructed_input"]


class KindOptions(BaseModel):
    """Base of each kind's ``[model]`` table (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass(frozen=True)
class PriorSet:
    """A named, documented set of priors for one model kind."""

    name: str
    description: str
    priors: dict[str, PriorSpec]
    source: str = ""


@dataclass
class ModelInput:
    """Data for a builder.

    Attributes
    ----------
    data : xarray.Dataset
        Observed values and constants with named dims.
    assumptions : list of str
        Labels a reader must see with the results (reconstructed data, counts recovered by arithmetic, ...).
    """

    data: xr.Dataset
    assumptions: list[str] = field(default_factory=list)
    replicates: list[xr.Dataset] | None = None
    """Several data sets of identical shape (e.g. reconstructions) fitted with one compiled model and pooled."""
    replicate_dim: str = "reconstruction"

    @property
    def coords(self) -> dict[str, list]:
        return {str(k): [str(v) if isinstance(v, str) else v for v in self.data[k].values.tolist()] for k in self.data.dims}


def reconstructed_input(study: StudyData, options, to_dataset, description: str) -> ModelInput:
    """Reconstructed route: ``options.reconstructions`` patient-level data sets rebuilt from the study's summaries,
    each shaped by ``to_dataset(frame)``, to be fitted with one compiled model and pooled; ``description`` and every
    reported number the reconstruction had to relax become the run's assumptions."""
    from ..data.reconstruct import reconstruct

    rec = reconstruct(study.require_summary("the reconstructed route"), k=options.reconstructions,
                      correlation=options.pre_post_correlation, seed=options.reconstruction_seed)
    reps = [to_dataset(d.frame) for d in rec.datasets]
    notes = [description] + [f"reconstruction relaxed a reported number: {r}" for r in rec.relaxations_unique()]
    return ModelInput(reps[0], notes, replicates=reps, replicate_dim="reconstruction")


class ModelKind:
    """Interface of a model kind (subclasses fill it in)."""

    name: ClassVar[str]
    title: ClassVar[str]
    options_class: ClassVar[type[KindOptions]]

    def params(self, options: KindOptions) -> dict[str, PriorParam]:
        raise NotImplementedError

    def prior_sets(self, options: KindOptions) -> dict[str, PriorSet]:
        raise NotImplementedError

    def default_prior_set(self, options: KindOptions) -> str:
        return next(iter(self.prior_sets(options)))

    def prepare(self, study: StudyData, options: KindOptions) -> ModelInput:
        raise NotImplementedError

    def build(self, inp: ModelInput, priors: dict[str, PriorSpec], options: KindOptions) -> pm.Model:
        raise NotImplementedError

    def estimands(self, options: KindOptions) -> list[str]:
        """Posterior variables reported by ``summarize`` by default."""
        raise NotImplementedError

    def effect_variables(self, options: KindOptions) -> list[str]:
        """Variables a bare decision threshold applies to (all oriented so that > 0 favours PSFS, unless documented)."""
        raise NotImplementedError

    def check_options(self, options: KindOptions, data_source: str) -> list[tuple[str, str, str]]:
        """Cross-section problems (key path, value, message), e.g. an option the data source cannot support."""
        return []

    def default_thresholds(self, options: KindOptions) -> dict[str, tuple[float, str]]:
        """Decision thresholds used when a config names none: name -> (value on the effect variables, note)."""
        return {}

    def check_priors(self, priors: dict[str, PriorSpec], options: KindOptions) -> list[tuple[str, str]]:
        """Model-specific prior problems: (parameter, message) pairs."""
        return []

    def exact_summary(self, inp: ModelInput, priors: dict[str, PriorSpec], options: KindOptions, prob: float) -> list[dict] | None:
        """Closed-form posterior summaries (conjugate models only; None otherwise)."""
        return None

    def no_moment_variables(self, options: KindOptions) -> dict[str, str]:
        """Variables whose posterior mean/sd do not exist (reported as null), with the reason."""
        return {}

    def observed_names(self) -> list[str]:
        """Names of the ``pm.Data`` containers holding observed values (swapped by calibration/simulation)."""
        raise NotImplementedError

    def describe(self, options: KindOptions) -> str:
        """The model in words and formulae, for reports."""
        return self.title
