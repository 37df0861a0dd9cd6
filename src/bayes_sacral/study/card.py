"""The study card: one TOML file that declares a study's design, read by every other part of the toolkit.

A card names the two arms (as they appear in the data), the optional stratification factor and its levels, the
outcomes (a bounded integer score measured before and after, binary events, ordered categories) with their bounds,
items, direction of benefit and minimal clinically important difference (with its source), optional covariates, and
the mapping from a CSV's own column names to these roles. Nothing in the code names a particular study's arms,
strata or scales: they all come from here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..errors import InputError, Problem
from ..suggest import did_you_mean
from ..validation import (
    Strict,
    check_document_kind,
    parse_toml,
    problems_from_validation,
    read_toml,
)

__all__ = [
    "StudyCard", "ScoreOutcome", "EventOutcome", "OrdinalOutcome", "Mcid", "Covariate", "DeclaredPriorSet", "Alias",
    "parse_card", "load_card", "words", "MODEL_KINDS_FOR", "UNSTRATIFIED_DIM", "UNSTRATIFIED_LEVEL",
]

#: Snake-case names used as column, dim and quantity names.
NAME_RE = r"^[a-z][a-z0-9_]*$"
#: Labels of arms, strata and levels as they appear in the data (no spaces, commas or brackets: they become coords).
LABEL_RE = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
#: The dim and level an unstratified study uses internally (the whole study is one stratum).
UNSTRATIFIED_DIM = "stratum"
UNSTRATIFIED_LEVEL = "all"
#: Names the toolkit uses itself; a stratum or outcome may not take them.
RESERVED = ("patient_id", "patient", "arm", "item", "time", "chain", "draw", "contrast", "level", "cutpoint", "sample", "all",
            "age", "sex", "followup", "followup_days", "date_preop", "date_procedure", "date_postop", "patients", "reconstruction")
#: Which model kinds analyse which outcome kind.
MODEL_KINDS_FOR = {"score": ("score", "items"), "event": ("events", "complications"), "ordinal": ("ordinal",)}

Name = Annotated[str, Field(pattern=NAME_RE, max_length=60)]
Label = Annotated[str, Field(pattern=LABEL_RE, max_length=60)]


def words(name: str) -> str:
    """A snake_case name in words: ``use_of_supports`` -> ``use of supports``."""
    return str(name).replace("_", " ")


class StudySection(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)
    """Short identifier of the study (letters, digits, '.', '_', '-')."""
    title: str = ""
    """Title shown in reports."""
    citation: str = ""
    """Full reference of the publication."""
    summary: str | None = None
    """Summary-data CSV of the published numbers (format bayes-sacral-summary/1), relative to the card."""
    design: str = ""
    """The study design in words (e.g. "retrospective cohort, treatment chosen by the surgeon"), quoted in reports."""
    caveats: list[str] = Field(default_factory=list, max_length=20)
    """Limitations a report's conclusions must carry (one sentence each)."""


class ArmsSection(Strict):
    treatment: Label
    """The experimental arm's label as it appears in the data."""
    control: Label
    """The comparator arm's label as it appears in the data."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Optional display names, keyed by the data labels."""


class StrataSection(Strict):
    name: Name
    """The stratification factor: its column name in the data and its dim name in the results."""
    label: str = ""
    """Display name of the factor (default: the name in words)."""
    levels: list[Label] = Field(min_length=1, max_length=8)
    """The levels as they appear in the data, in order; the first is the reference for interaction contrasts."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Optional display names of the levels."""


class Mcid(Strict):
    value: float = Field(gt=0)
    """Minimal clinically important difference on the outcome's own scale (a positive magnitude)."""
    source: str = Field(min_length=1)
    """Where the value comes from (a reference; say so if it is borrowed from another population)."""
    sensitivity: dict[Name, float] = Field(default_factory=dict)
    """Other values to report beside it, by name (e.g. { mcid_low = 2.4, mcid_high = 5.1 })."""


class DeclaredPriorSet(Strict):
    """A study-specific prior set (e.g. informed by the literature), offered beside the built-in ones."""

    applies_to: str = Field(pattern=r"^[a-z_]+(/[a-z_]+)?$")
    """The model kind it is for, optionally with a variant: 'events/independent', 'score'."""
    description: str = Field(min_length=1)
    """One sentence shown in reports and config defaults."""
    source: str = ""
    """Reference of the information it encodes."""
    priors: dict[str, dict[str, Any]]
    """Parameter -> { dist = "...", <parameters>, justification = "..." }; parameters may be tables keyed by arm or stratum labels."""


class ScoreOutcome(Strict):
    kind: Literal["score"]
    label: str = ""
    """Display name (default: the outcome's name in words)."""
    unit: str = "points"
    """Unit of the score in axis labels and text."""
    min: int
    """Lowest possible total."""
    max: int
    """Highest possible total."""
    higher_is_better: bool = True
    """Direction of benefit."""
    items: list[Name] = Field(default_factory=list)
    """Optional items whose whole-number scores add up to the total."""
    item_labels: dict[str, str] = Field(default_factory=dict)
    item_min: int | None = None
    item_max: int | None = None
    mcid: Mcid | None = None
    prior_sets: dict[Name, DeclaredPriorSet] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounds(self):
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        if self.items:
            if self.item_min is None or self.item_max is None:
                raise ValueError("items need item_min and item_max")
            if self.item_max <= self.item_min:
                raise ValueError(f"item_max ({self.item_max}) must be greater than item_min ({self.item_min})")
            if len(set(self.items)) != len(self.items):
                raise ValueError("each item is named once")
            k = len(self.items)
            if (self.min, self.max) != (k * self.item_min, k * self.item_max):
                raise ValueError(f"the total is the sum of its {k} items, so min/max must be {k * self.item_min}/{k * self.item_max} "
                                 f"(got {self.min}/{self.max})")
        elif self.item_min is not None or self.item_max is not None:
            raise ValueError("item_min / item_max are given but no items")
        return self

    @property
    def range(self) -> int:
        return self.max - self.min

    @property
    def midpoint(self) -> float:
        return (self.min + self.max) / 2

    @property
    def direction(self) -> int:
        return 1 if self.higher_is_better else -1


class EventOutcome(Strict):
    kind: Literal["event"]
    label: str = ""
    """Display name (default: the outcome's name in words)."""
    higher_is_better: bool = False
    """Events are adverse by default (fewer is better); set true for desirable events (e.g. healing)."""
    mcid: Mcid | None = None
    """Minimal important risk difference (absolute, 0-1)."""
    prior_sets: dict[Name, DeclaredPriorSet] = Field(default_factory=dict)

    @property
    def direction(self) -> int:
        return 1 if self.higher_is_better else -1


class OrdinalOutcome(Strict):
    kind: Literal["ordinal"]
    label: str = ""
    levels: list[Label] = Field(min_length=2, max_length=12)
    """Ordered categories, as they appear in the data."""
    level_labels: dict[str, str] = Field(default_factory=dict)
    better: Label
    """The better end of the scale: the first or the last level."""
    prior_sets: dict[Name, DeclaredPriorSet] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _levels(self):
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("each level is named once")
        if self.better not in (self.levels[0], self.levels[-1]):
            raise ValueError(f"better must be the first or the last level ({self.levels[0]!r} or {self.levels[-1]!r})")
        return self

    @property
    def direction(self) -> int:
        """+1 when later levels are better (a positive log odds ratio of a higher level favours treatment)."""
        return 1 if self.better == self.levels[-1] else -1


Outcome = Annotated[ScoreOutcome | EventOutcome | OrdinalOutcome, Field(discriminator="kind")]


class Covariate(Strict):
    type: Literal["binary", "categorical", "integer", "number", "text"]
    """binary (0/1), categorical (levels), integer, number (min/max), or free text."""
    label: str = ""
    levels: list[Label] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    unit: str = ""
    """Unit of summary statistics (years, ...)."""
    partition: bool = False
    """Summary data: the reported categories split each cell's patients (their counts must add up)."""

    @model_validator(mode="after")
    def _levels(self):
        if self.type == "categorical" and not self.levels:
            raise ValueError("a categorical covariate needs levels")
        if self.type != "categorical" and self.levels:
            raise ValueError("levels are for categorical covariates")
        return self


class Alias(Strict):
    """A model kind name of earlier configs, mapped to a generic kind and one of the card's outcomes."""

    kind: Literal["score", "items", "events", "ordinal", "complications"]
    outcome: Name
    variant: str | None = None


#: Covariates every study has without declaring them (a card may redeclare them).
BUILTIN_COVARIATES = {
    "age": Covariate(type="number", min=0, max=120, unit="years"),
    "sex": Covariate(type="categorical", levels=["male", "female"], partition=True),
}


class StudyCard(Strict):
    """A validated study card. Build with :func:`load_card` or :func:`parse_card`."""

    study: StudySection
    arms: ArmsSection
    strata: StrataSection | None = None
    outcomes: dict[Name, Outcome] = Field(min_length=1)
    covariates: dict[Name, Covariate] = Field(default_factory=dict)
    columns: dict[str, str] = Field(default_factory=dict)
    """Optional mapping from the roles (patient_id, arm, the strata name, <score>_pre, ...) to a CSV's own column names."""
    aliases: dict[Name, Alias] = Field(default_factory=dict)

    # set by load_card / parse_card
    _path: Path | None = None
    _text: str = ""

    @model_validator(mode="after")
    def _consistent(self):
        a = self.arms
        if a.treatment == a.control:
            raise ValueError(f"arms.treatment and arms.control must differ (both {a.treatment!r})")
        for k in a.labels:
            if k not in (a.treatment, a.control):
                raise ValueError(f"arms.labels: {k!r} is not an arm{did_you_mean(k, (a.treatment, a.control))}")
        if self.strata is not None:
            s = self.strata
            if s.name in RESERVED:
                raise ValueError(f"strata.name {s.name!r} is a name the toolkit uses itself; choose another")
            if len(set(s.levels)) != len(s.levels):
                raise ValueError("strata.levels: each level is named once")
            if UNSTRATIFIED_LEVEL in s.levels:
                raise ValueError(f"strata.levels: {UNSTRATIFIED_LEVEL!r} means 'all strata' in summary data; name the level otherwise")
            for k in s.labels:
                if k not in s.levels:
                    raise ValueError(f"strata.labels: {k!r} is not a level{did_you_mean(k, s.levels)}")
        for name in self.outcomes:
            if name in RESERVED or (self.strata is not None and name == self.strata.name):
                raise ValueError(f"outcome name {name!r} is a name the toolkit uses itself; choose another")
        for name in self.covariates:
            if name in self.outcomes or (self.strata is not None and name == self.strata.name):
                raise ValueError(f"covariate {name!r} has the name of an outcome or of the strata")
        for name, al in self.aliases.items():
            o = self.outcomes.get(al.outcome)
            if o is None:
                raise ValueError(f"aliases.{name}: no outcome {al.outcome!r}{did_you_mean(al.outcome, self.outcomes)}")
            if al.kind not in MODEL_KINDS_FOR[o.kind]:
                raise ValueError(f"aliases.{name}: model kind {al.kind!r} does not analyse a {o.kind} outcome "
                                 f"(use {' or '.join(MODEL_KINDS_FOR[o.kind])})")
        roles = self.column_roles()
        for role in self.columns:
            if role not in roles:
                raise ValueError(f"columns: {role!r} is not a column role of this study{did_you_mean(role, roles)}; "
                                 f"roles: {', '.join(roles)}")
        mapped = list(self.columns.values())
        if len(set(mapped)) != len(mapped):
            raise ValueError("columns: two roles are mapped to the same CSV column")
        return self

    # ------------------------------------------------------------------ design vocabulary
    @property
    def arm_levels(self) -> list[str]:
        """[treatment, control]: the order of every ``arm`` dim."""
        return [self.arms.treatment, self.arms.control]

    @property
    def stratified(self) -> bool:
        return self.strata is not None

    @property
    def stratum_dim(self) -> str:
        return self.strata.name if self.strata is not None else UNSTRATIFIED_DIM

    @property
    def stratum_levels(self) -> list[str]:
        return list(self.strata.levels) if self.strata is not None else [UNSTRATIFIED_LEVEL]

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def text(self) -> str:
        return self._text

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self._text.encode()).hexdigest()

    def outcome(self, name: str):
        if name not in self.outcomes:
            raise KeyError(name)
        return self.outcomes[name]

    def outcomes_of(self, kind: str) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.kind == kind]

    def covariate_specs(self) -> dict[str, Covariate]:
        return {**BUILTIN_COVARIATES, **self.covariates}

    # ------------------------------------------------------------------ labels (one place for display names)
    def arm_label(self, arm: str) -> str:
        return self.arms.labels.get(arm, arm)

    def stratum_label(self, level: str) -> str:
        if self.strata is None:
            return "all patients"
        return self.strata.labels.get(level, words(level))

    @property
    def strata_label(self) -> str:
        if self.strata is None:
            return ""
        return self.strata.label or words(self.strata.name)

    def outcome_label(self, name: str) -> str:
        o = self.outcomes[name]
        return o.label or words(name)

    def item_label(self, outcome: str, item: str) -> str:
        o = self.outcomes[outcome]
        return getattr(o, "item_labels", {}).get(item, words(item)).capitalize() if item != "total" else "Total"

    def level_label(self, outcome: str, level: str) -> str:
        o = self.outcomes[outcome]
        return getattr(o, "level_labels", {}).get(level, words(level))

    def cell_label(self, arm: str, level: str) -> str:
        """``screws × myeloma``, or just the arm in an unstratified study."""
        return arm if (self.strata is None or level == UNSTRATIFIED_LEVEL) else f"{arm} × {level}"

    def label(self, dim: str, value: str) -> str:
        """Display label of a coordinate value of a named dim (arm, the strata dim, item, an ordinal outcome's levels)."""
        if dim == "arm":
            return self.arm_label(value)
        if dim == self.stratum_dim:
            return self.stratum_label(value)
        if dim == "item":
            for name, o in self.outcomes.items():
                if o.kind == "score" and value in o.items:
                    return self.item_label(name, value)
        if dim in self.outcomes and self.outcomes[dim].kind == "ordinal":
            return self.level_label(dim, value)
        return words(value)

    # ------------------------------------------------------------------ columns
    def column_roles(self) -> list[str]:
        """Every column a patient-level CSV of this study may have (canonical names)."""
        roles = ["patient_id", "arm"]
        if self.strata is not None:
            roles.append(self.strata.name)
        for name, o in self.outcomes.items():
            if o.kind == "score":
                roles += [f"{name}_pre", f"{name}_post"]
                roles += [f"{name}_{item}_{t}" for t in ("pre", "post") for item in o.items]
            elif o.kind == "event":
                roles += [name, f"{name}_days"]
            else:
                roles.append(name)
        roles += list(self.covariate_specs())
        roles += ["followup_days", "date_preop", "date_procedure", "date_postop"]
        return roles

    def required_columns(self) -> list[str]:
        req = ["patient_id", "arm"] + ([self.strata.name] if self.strata is not None else [])
        return req

    # ------------------------------------------------------------------ model kinds
    def resolve_kind(self, kind: str | None, outcome: str | None) -> tuple[str, str | None, str | None]:
        """(generic kind, outcome, default variant) for a config's model.kind and model.outcome (aliases resolved)."""
        if kind in self.aliases:
            al = self.aliases[kind]
            return al.kind, outcome or al.outcome, al.variant
        return kind, outcome, None

    def default_outcome(self, kind: str) -> str | None:
        """The card's only outcome that ``kind`` can analyse, or None when there is none or several."""
        for okind, kinds in MODEL_KINDS_FOR.items():
            if kind in kinds:
                names = self.outcomes_of(okind)
                if kind == "items":
                    names = [n for n in names if self.outcomes[n].items]
                return names[0] if len(names) == 1 else None
        return None


def _card_problems(exc: ValidationError, fname: str) -> list[Problem]:
    def drop(loc: list) -> list:
        # outcomes.<name>.<kind tag>.field -> outcomes.<name>.field
        if len(loc) >= 3 and loc[0] == "outcomes" and loc[2] in ("score", "event", "ordinal"):
            return loc[:2] + loc[3:]
        return loc

    return problems_from_validation(exc, fname, StudyCard, drop)


def parse_card(doc_or_text: dict | str, fname: str = "<study card>", path: Path | None = None) -> StudyCard:
    """Validate a study card given as TOML text or a parsed dict."""
    text = doc_or_text if isinstance(doc_or_text, str) else None
    doc = parse_toml(text, fname) if text is not None else doc_or_text
    if not isinstance(doc, dict):
        raise InputError([Problem(fname, "(top level)", "", "a study card is a TOML table")])
    check_document_kind(doc, fname, "study card")
    # a union tag that is missing or unknown gets one clear message per outcome
    problems = []
    for name, o in (doc.get("outcomes") or {}).items() if isinstance(doc.get("outcomes"), dict) else []:
        if not isinstance(o, dict):
            problems.append(Problem(fname, f"outcomes.{name}", repr(o), "an outcome is a table with kind = score | event | ordinal"))
        elif "kind" not in o:
            problems.append(Problem(fname, f"outcomes.{name}.kind", "", "is required: score | event | ordinal"))
        elif o["kind"] not in ("score", "event", "ordinal"):
            problems.append(Problem(fname, f"outcomes.{name}.kind", repr(o["kind"]),
                                    f"must be score | event | ordinal{did_you_mean(str(o['kind']), ('score', 'event', 'ordinal'))}"))
        else:
            fields = {"score": ScoreOutcome, "event": EventOutcome, "ordinal": OrdinalOutcome}[o["kind"]].model_fields
            for key in o:
                if key not in fields:
                    problems.append(Problem(fname, f"outcomes.{name}.{key}", "", f"unknown key{did_you_mean(key, fields)}; "
                                            f"a {o['kind']} outcome has: {', '.join(fields)}"))
    if problems:
        raise InputError(problems)
    try:
        card = StudyCard.model_validate(doc)
    except ValidationError as exc:
        raise InputError(_card_problems(exc, fname)) from None
    card._path = path
    if text is None:
        import tomli_w

        text = tomli_w.dumps(doc)
    card._text = text
    return card


def load_card(path: str | Path) -> StudyCard:
    """Read and validate a study card file (every problem with its key path, exit code 2 from the CLI)."""
    path = Path(path)
    read_toml(path, "study card")  # missing file, folder, encoding, syntax, nesting
    text = path.read_text(encoding="utf-8")
    return parse_card(text, str(path), path.resolve())

