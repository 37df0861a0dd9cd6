"""What every model kind provides: options, prior parameters and named prior sets, data, builder, estimands, presentation.

A kind is a plain object. :meth:`ModelKind.prepare` turns study data into an :class:`xarray.Dataset` with named dims,
:meth:`ModelKind.build` turns that plus priors into a ``pm.Model`` whose observed values live in ``pm.Data`` (so one
compiled model can be refitted to new data: calibration and trial simulation use the same builder). Every method
receives a :class:`ModelSpec`: the study card, the outcome analysed and the kind's options, so names, bounds,
directions of benefit and strata come from the card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr
from pydantic import Field

from ..errors import InputError, Problem
from ..priors import PriorParam, PriorSpec
from ..study.card import DeclaredPriorSet, StudyCard
from ..validation import Strict

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

    from ..data.source import StudyData

__all__ = ["PriorSet", "ModelInput", "ModelKind", "KindOptions", "ModelSpec", "reconstructed_input", "declared_prior_sets",
           "check_cells", "CONTRAST_DIM", "grid_prior_sets", "grid_names", "GRID_POSITIONS", "GRID_STRENGTHS"]

#: Dim of contrasts between a stratum level and the reference (first) level: labels "<level> vs <reference>".
CONTRAST_DIM = "contrast"


class KindOptions(Strict):
    """Base of each kind's ``[model]`` table (unknown keys rejected)."""

    outcome: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    """The card's outcome to analyse (default: the card's only outcome this kind can analyse)."""
    allow_empty_cells: bool = False
    """An arm × stratum cell without patients is an error; with true, its estimands are reported as not estimable."""


@dataclass(frozen=True)
class ModelSpec:
    """A model kind applied to one outcome of one study, with its options."""

    card: StudyCard
    outcome: str
    options: KindOptions

    @property
    def o(self):
        return self.card.outcomes[self.outcome]

    @property
    def sdim(self) -> str:
        return self.card.stratum_dim

    @property
    def levels(self) -> list[str]:
        return self.card.stratum_levels

    @property
    def K(self) -> int:
        return len(self.card.stratum_levels)

    @property
    def arms(self) -> list[str]:
        return self.card.arm_levels

    @property
    def contrasts(self) -> list[str]:
        """Labels of the interaction contrasts: each non-reference level against the first."""
        ref = self.levels[0]
        return [f"{lev} vs {ref}" for lev in self.levels[1:]]

    def coords(self) -> dict[str, list[str]]:
        c = {"arm": list(self.arms), self.sdim: list(self.levels)}
        if self.K > 1:
            c[CONTRAST_DIM] = self.contrasts
        return c


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
    replicates : list of xarray.Dataset, optional
        Several data sets of identical shape (e.g. reconstructions) fitted with one compiled model and pooled.
    not_estimable : dict
        Stratum level -> why its estimands cannot be estimated (an empty arm × stratum cell).
    """

    data: xr.Dataset
    assumptions: list[str] = field(default_factory=list)
    replicates: list[xr.Dataset] | None = None
    replicate_dim: str = "reconstruction"
    not_estimable: dict[str, str] = field(default_factory=dict)

    @property
    def coords(self) -> dict[str, list]:
        return {str(k): [str(v) if isinstance(v, str) else v for v in self.data[k].values.tolist()] for k in self.data.dims}


def check_cells(spec: ModelSpec, counts: np.ndarray, where: str, arms: list[str] | None = None) -> dict[str, str]:
    """Empty arm × stratum cells: an error, or (with ``allow_empty_cells``) the strata whose estimands are not estimable.

    ``counts`` has shape (arm, stratum) in the card's order (or ``arms`` when a kind models a subset of arms).
    """
    arms = arms or spec.arms
    empty = [(a, lev) for i, a in enumerate(arms) for j, lev in enumerate(spec.levels) if counts[i, j] == 0]
    if not empty:
        return {}
    cells = ", ".join(spec.card.cell_label(a, lev) for a, lev in empty)
    if not spec.options.allow_empty_cells:
        raise InputError([Problem(where, f"cell{'s' if len(empty) > 1 else ''} {cells}", "0 patients",
                                  "every arm × stratum cell needs at least one patient; set model.allow_empty_cells = true to fit "
                                  "anyway and report that stratum's estimands as not estimable")])
    return {lev: f"no {spec.card.arm_label(a)} patients in {spec.card.stratum_label(lev) if spec.card.stratified else 'the study'}"
            for a, lev in empty}


def reconstructed_input(study: StudyData, spec: ModelSpec, to_dataset, description: str) -> ModelInput:
    """Reconstructed route: ``options.reconstructions`` patient-level data sets rebuilt from the study's summaries, each
    shaped by ``to_dataset(frame)``, to be fitted with one compiled model and pooled; ``description`` and every reported
    number the reconstruction had to relax become the run's assumptions."""
    from ..data.reconstruct import reconstruct

    options = spec.options
    sd = study.require_summary("the reconstructed route")
    try:
        rec = reconstruct(sd, k=options.reconstructions, correlation=options.pre_post_correlation, seed=options.reconstruction_seed,
                          outcome=spec.outcome)
    except ValueError as exc:
        raise InputError([Problem(study.path or study.label(), "reconstruction", "", str(exc))]) from None
    reps = [to_dataset(d.frame) for d in rec.datasets]
    notes = [description] + [f"reconstruction relaxed a reported number: {r}" for r in rec.relaxations_unique()]
    return ModelInput(reps[0], notes, replicates=reps, replicate_dim="reconstruction")


#: The standard sensitivity grid (e.g. Zampieri et al., AJRCCM 2021): where the treatment-effect prior is centred...
GRID_POSITIONS = ("neutral", "optimistic", "pessimistic")
#: ...and how strongly, as the number of patients (randomised 1:1) whose data the prior is worth.
GRID_STRENGTHS = {"weak": 10, "moderate": 30, "strong": 100}


def grid_names(has_mcid: bool) -> list[str]:
    """Names of the grid's prior sets: position_strength (only the neutral row without an MCID to centre the others on)."""
    positions = GRID_POSITIONS if has_mcid else GRID_POSITIONS[:1]
    return [f"{p}_{s}" for p in positions for s in GRID_STRENGTHS]


def grid_prior_sets(spec: ModelSpec, base: PriorSet, location_params: list[str], sd_per_patient: float, mcid: float | None,
                    unit: str) -> dict[str, PriorSet]:
    """The standard prior grid: ``base`` with the treatment effect's location prior replaced by Normal(centre, sd).

    centre: 0 (neutral), one MCID of benefit (optimistic) or of harm (pessimistic), in the direction of benefit;
    sd: ``sd_per_patient`` · sqrt(4 / n0), the standard error of a difference between two arms of n0/2 patients each, with
    n0 = 10 (weak), 30 (moderate) or 100 (strong).
    """
    d = spec.o.direction
    out = {}
    for name in grid_names(mcid is not None):
        pos, strength = name.split("_")
        n0 = GRID_STRENGTHS[strength]
        sd = sd_per_patient * (4 / n0) ** 0.5
        centre = {"neutral": 0.0, "optimistic": d * (mcid or 0.0), "pessimistic": -d * (mcid or 0.0)}[pos]
        why = (f"{pos} ({'no effect' if pos == 'neutral' else f'{centre:+.3g} {unit}: one MCID of ' + ('benefit' if pos == 'optimistic' else 'harm')}), "
               f"{strength}: worth {n0} patients (sd {sd:.3g} {unit})")
        pri = dict(base.priors)
        for p in location_params:
            pri[p] = PriorSpec("Normal", {"mu": float(centre), "sigma": float(sd)}, why)
        out[name] = PriorSet(name, f"Standard grid: treatment effect {why}; other priors as {base.name}.", pri,
                             source="grid of neutral/optimistic/pessimistic priors at weak/moderate/strong strength (Zampieri et al., "
                                    "Am J Respir Crit Care Med 2021)")
    return out


def declared_prior_sets(spec: ModelSpec, kind: str, variant: str | None = None) -> dict[str, PriorSet]:
    """Study-specific prior sets the card declares for this outcome and kind (and variant)."""
    out = {}
    decl: dict[str, DeclaredPriorSet] = getattr(spec.o, "prior_sets", {}) or {}
    for name, d in decl.items():
        k, _, v = d.applies_to.partition("/")
        if k != kind or (v and v != variant):
            continue
        priors = {}
        for pname, table in d.priors.items():
            t = dict(table)
            dist = t.pop("dist", None)
            just = t.pop("justification", "")
            priors[pname] = PriorSpec(str(dist), t, str(just))
        out[name] = PriorSet(name, d.description, priors, d.source)
    return out


class ModelKind:
    """Interface of a model kind (subclasses fill it in)."""

    name: ClassVar[str]
    title: ClassVar[str]
    options_class: ClassVar[type[KindOptions]]
    #: the outcome kind (score | event | ordinal) this model analyses
    outcome_kind: ClassVar[str]

    def params(self, spec: ModelSpec) -> dict[str, PriorParam]:
        raise NotImplementedError

    def prior_sets(self, spec: ModelSpec) -> dict[str, PriorSet]:
        raise NotImplementedError

    def default_prior_set(self, spec: ModelSpec) -> str:
        return next(iter(self.prior_sets(spec)))

    def grid(self, spec: ModelSpec) -> list[str]:
        """Names of this model's standard-grid prior sets (empty when it has no treatment-effect location prior)."""
        from .base import GRID_STRENGTHS

        return [n for n in self.prior_sets(spec) if n.rsplit("_", 1)[-1] in GRID_STRENGTHS and n.split("_")[0] in GRID_POSITIONS]

    def prepare(self, study: StudyData, spec: ModelSpec) -> ModelInput:
        raise NotImplementedError

    def build(self, inp: ModelInput, priors: dict[str, PriorSpec], spec: ModelSpec) -> pm.Model:
        raise NotImplementedError

    def estimands(self, spec: ModelSpec) -> list[str]:
        """Posterior variables reported by ``summarize`` by default."""
        raise NotImplementedError

    def effects(self, spec: ModelSpec) -> dict[str, int]:
        """Comparative effects (treatment vs control) and their direction of benefit: +1 when larger values favour the
        treatment, -1 when smaller values do. P(benefit) and benefit thresholds apply to these."""
        raise NotImplementedError

    def effect_variables(self, spec: ModelSpec) -> list[str]:
        return list(self.effects(spec))

    def threshold_variables(self, spec: ModelSpec) -> list[str]:
        """Effects on the outcome's own scale, to which the card's MCID (in that scale's units) applies."""
        return self.effect_variables(spec)

    def stratum_aggregates(self, spec: ModelSpec) -> list[str]:
        """Variables that combine every stratum (averages, pooled rates): not estimable when any stratum is not."""
        return []

    def headline(self, spec: ModelSpec) -> list[str]:
        """The effects a report leads with, most important first."""
        return self.effect_variables(spec)

    def check_options(self, spec: ModelSpec, data_source: str) -> list[tuple[str, str, str]]:
        """Cross-section problems (key path, value, message), e.g. an option the data source cannot support."""
        return []

    def default_thresholds(self, spec: ModelSpec) -> dict[str, tuple[float, str]]:
        """Benefit thresholds used when a config names none: name -> (magnitude on the effect variables, note). The card's
        MCID of the outcome and its sensitivity values."""
        mcid = getattr(spec.o, "mcid", None)
        if mcid is None:
            return {}
        out = {"mcid": (mcid.value, f"MCID {mcid.value:g}: {mcid.source}")}
        for name, v in mcid.sensitivity.items():
            out[name] = (v, f"MCID sensitivity value {v:g} ({mcid.source})")
        return out

    def check_priors(self, priors: dict[str, PriorSpec], spec: ModelSpec) -> list[tuple[str, str]]:
        """Model-specific prior problems: (parameter, message) pairs."""
        return []

    def no_moment_variables(self, spec: ModelSpec) -> dict[str, str]:
        """Variables whose posterior mean/sd do not exist (reported as null), with the reason."""
        return {}

    def likelihood_terms_per_unit(self, spec: ModelSpec) -> int:
        """Likelihood terms each patient (or cell) adds to the log density: a rough relative cost of one sampler
        iteration, for scheduling the longest fits first (a model of several outcomes per patient costs more)."""
        return 1

    def observed_names(self) -> list[str]:
        """Names of the ``pm.Data`` containers holding observed values (swapped by calibration/simulation)."""
        raise NotImplementedError

    def describe(self, spec: ModelSpec) -> str:
        """The model in words and formulae, for reports."""
        return self.title

    def outcome_phrase(self, spec: ModelSpec) -> str:
        """What a benefit of the treatment means, for results text ("improved MSTS more than ...")."""
        return f"was better on {spec.card.outcome_label(spec.outcome)} than {spec.card.arm_label(spec.card.arms.control)}"

    # ------------------------------------------------------------------ presentation (used by reports and figures)
    def axis_label(self, spec: ModelSpec, var: str) -> str:
        """Axis label of a variable, in words with its unit."""
        return var.replace("_", " ")

    def unit(self, spec: ModelSpec, var: str) -> str:
        """Unit of a variable for text ("points", "" for probabilities and ratios)."""
        return ""

    def points_vars(self, spec: ModelSpec) -> set[str]:
        """Variables on a score's points scale (figures add a percent-of-range axis)."""
        return set()

    def support(self, spec: ModelSpec, var: str) -> tuple[float, float]:
        """Where a variable's density lives (for boundary-corrected densities): probabilities on [0, 1], their differences
        on [-1, 1], scales on [0, inf); override for other bounded quantities."""
        if var.startswith(("risk_difference", "difference_p_", "category_difference")):
            return (-1.0, 1.0)
        if var.startswith("p_") or var in ("p_event", "p_best", "p_worst"):
            return (0.0, 1.0)
        if var.endswith("_sd") or var in ("sigma", "tau", "pre_sd", "phi", "nu", "concentration"):
            return (0.0, np.inf)
        return (-np.inf, np.inf)

    def plausible_range(self, spec: ModelSpec, var: str) -> tuple[float, float] | None:
        """The range a sensitivity forest shows (intervals beyond it end in an arrow): +/- half a score's range for effects
        in points, the support for probabilities and their differences, +/- 5 for log odds ratios; None = no limit."""
        if var in self.points_vars(spec) and spec.o.kind == "score":
            half = (spec.o.max - spec.o.min) / 2
            return (-half, half)
        lo, hi = self.support(spec, var)
        if np.isfinite(lo) and np.isfinite(hi):
            return (lo, hi)
        if "log_odds_ratio" in var or var.startswith("domain_effect"):
            return (-5.0, 5.0)
        return None

    def exact_marginals(self, inp: ModelInput, priors: dict, spec: ModelSpec, prior: bool = False):
        """Closed-form marginal posteriors (or priors, ``prior=True``) of a conjugate model as a
        :class:`~bayes_sacral.models.conjugate.ExactPosterior`; None for models without one."""
        return None

    def exact_draws(self, inp: ModelInput, priors: dict, spec: ModelSpec, rng: np.random.Generator, size: tuple[int, int],
                    prior: bool = False):
        """Independent draws of every free variable from a conjugate model's closed-form posterior (its prior with
        ``prior=True``), each with leading dims ``size`` = (chains, draws) then the variable's own dims; None for models
        without one."""
        return None

    def exact_available(self, priors: dict, spec: ModelSpec) -> bool:
        """Whether :meth:`exact_draws` applies to this model with these priors."""
        return False

    def exact_summary(self, inp: ModelInput, priors: dict, spec: ModelSpec, prob: float) -> list[dict] | None:
        """Exact summary rows (mean, sd, median, equal-tailed interval, P(> 0)) of a conjugate model; None otherwise."""
        ex = self.exact_marginals(inp, priors, spec)
        return None if ex is None else ex.rows(prob)

    def diagnostic_params(self, spec: ModelSpec) -> list[str]:
        """Key parameters for rank and trace plots."""
        return list(self.params(spec))

    def prior_posterior_vars(self, spec: ModelSpec) -> list[str]:
        """Variables whose prior and posterior a report compares."""
        return self.headline(spec)[:1]

    def contrast_phrase(self, spec: ModelSpec) -> str:
        """'PSFS − Sacroplasty alone' in display labels."""
        return f"{spec.card.arm_label(spec.arms[0])} − {spec.card.arm_label(spec.arms[1])}"
