"""Run configs (TOML): schema, validation with key-path messages, ``--set`` overrides, sweeps, defaults.

One schema serves every run::

    [run]      name, seed
    [data]     study = "card.toml" (default: the bundled study), source = "published" | "summary" | "ipd", path
    [model]    kind (score | items | events | ordinal | complications, or an alias the card declares), outcome,
               and the kind's options
    [priors]   set = "<named set>", plus per-parameter overrides { dist = ..., <params> }
    [sampler]  draws, tune, chains, target_accept, backend
    [decision] prob (interval probability), thresholds (benefit magnitudes)
    [sweep]    "key.path" = [values ...]  (one run per combination)

Every problem (unknown key, wrong type, out-of-range value, unknown prior parameter, an outcome the card does not
have) is reported with its full key path, the bad value and what is allowed, with a did-you-mean for misspelled keys.
Nothing is coerced: ``draws = "2000"`` and ``draws = 200.0`` are errors.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError, Problem
from .models import KINDS, KindOptions, ModelKind, ModelSpec
from .priors import FAMILIES, PriorSpec, check_prior, prior_text
from .study import Study, load_study
from .suggest import did_you_mean
from .validation import (
    Strict,
    check_document_kind,
    field_docs,
    parse_toml,
    problems_from_validation,
    read_toml,
)

__all__ = [
    "RunConfig",
    "ResolvedRun",
    "load_config",
    "load_configs",
    "parse_set",
    "resolve",
    "config_to_toml",
    "defaults_toml",
    "read_with_overrides",
    "study_of",
]

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
BACKENDS = ("nutpie", "pymc", "numpyro")


class RunSection(Strict):
    name: str = Field(pattern=_NAME_RE, max_length=120)
    """Run name; the run folder is <out>/<name> (letters, digits, '.', '_', '-')."""
    seed: int = Field(ge=0, le=2**32 - 1)
    """Random seed: the same config and seed give bit-identical draws on the same machine and stack."""
    description: str = ""
    """Free text shown in run listings and reports."""
    primary: bool = False
    """The lead analysis of its outcome: a report's summary table, main figure and conclusions use it (with a sweep, the
    member fitted at the config's own settings); other runs of the outcome are sensitivity analyses."""


class DataSection(Strict):
    study: str | None = None
    """The study card (TOML) whose arms, strata and outcomes the data follow; default: the bundled study. Relative to the
    working directory, else to the config's folder."""
    source: Literal["published", "summary", "ipd"] = "published"
    """published: the study card's own summary file; summary: a summary-data CSV; ipd: a patient-level CSV."""
    path: str | None = None
    """The data file, for source = summary | ipd (relative to the working directory, else to the config's folder)."""

    @field_validator("path")
    @classmethod
    def _path_matches_source(cls, v, info):
        source = info.data.get("source")
        if source == "published" and v is not None:
            raise ValueError("path is only used with source = summary | ipd")
        return v


class SamplerSection(Strict):
    draws: int = Field(2000, ge=10, le=200_000)
    """Posterior draws per chain (after tuning)."""
    tune: int = Field(1000, ge=10, le=200_000)
    """Tuning (warm-up) iterations per chain, discarded."""
    chains: int = Field(4, ge=1, le=32)
    """Number of chains (at least 2 to compute R-hat)."""
    target_accept: float = Field(0.9, gt=0.5, lt=1.0)
    """NUTS target acceptance rate; raise it (0.95-0.99) if there are divergences."""
    backend: Literal["auto", "exact", "nutpie", "pymc", "numpyro"] = "auto"
    """auto (default): exact for a conjugate model (independent draws from its closed-form posterior), else nutpie;
    exact; nutpie (NUTS, compiled once per model structure); pymc; numpyro (needs jax and numpyro installed)."""
    prior_draws: int = Field(1000, ge=0, le=100_000)
    """Draws from the prior and prior predictive (for prior-vs-posterior plots and checks)."""
    predictive_draws: int = Field(1000, ge=100, le=1_000_000)
    """Posterior draws (evenly thinned) from which the posterior predictive is simulated."""
    max_treedepth: int = Field(10, ge=4, le=15)
    """Maximum NUTS tree depth."""


class ThresholdSpec(Strict):
    value: float
    """A magnitude of benefit: P(the benefit exceeds value) is reported as prob_beyond_<name> (for a variable that is not a
    comparative effect, P(variable > value))."""
    variables: list[str] | None = None
    """Variables it applies to (default: the model's effect variables)."""
    unit: Literal["native", "percent_of_max"] = "native"
    """native: the variable's own unit; percent_of_max: percent of the score's range, converted to points."""
    note: str = ""
    """Where the threshold comes from (shown in reports)."""


class DecisionSection(Strict):
    prob: float = Field(0.95, gt=0.0, lt=1.0)
    """Probability of the reported intervals (HDI and equal-tailed)."""
    thresholds: dict[str, float | ThresholdSpec] = Field(default_factory=dict)
    """name = value (a benefit magnitude on the effect variables) or name = { value, variables, unit, note }; default: the
    card's MCID of the outcome and its sensitivity values."""

    @field_validator("thresholds")
    @classmethod
    def _names(cls, v):
        for k in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", k):
                raise ValueError(f"threshold name {k!r} must be snake_case (it becomes the column prob_beyond_{k})")
        return v


class PriorsSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    set: str | None = None
    """Named prior set (the model's default when omitted)."""


def _model_union():
    classes = tuple(k.options_class for k in KINDS.values())
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


class RunConfig(Strict):
    run: RunSection
    data: DataSection = Field(default_factory=DataSection)
    model: _model_union()  # type: ignore[valid-type]
    priors: PriorsSection = Field(default_factory=PriorsSection)
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    decision: DecisionSection = Field(default_factory=DecisionSection)
    sweep: dict[str, Any] = Field(default_factory=dict)
    """key.path = [values]: one run per combination (names get a suffix)."""


@dataclass
class ResolvedRun:
    """A validated config with its study, model spec and priors resolved to explicit specs."""

    config: RunConfig
    kind: ModelKind
    priors: dict[str, PriorSpec]
    prior_set: str
    study: Study
    spec: ModelSpec
    overridden: list[str] = field(default_factory=list)
    source_file: str = "<config>"
    base_dir: Path | None = None

    @property
    def options(self) -> KindOptions:
        return self.spec.options

    @property
    def card(self):
        return self.study.card

    def thresholds(self) -> dict[str, tuple[float, list[str], str]]:
        """name -> (magnitude in the variables' own unit, variables, note); the card's MCID when the config names none."""
        out = {}
        effects = self.kind.effect_variables(self.spec)
        if not self.config.decision.thresholds:
            on_scale = self.kind.threshold_variables(self.spec)
            for name, (value, note) in self.kind.default_thresholds(self.spec).items():
                out[name] = (float(value), on_scale, note)
            return out
        for name, t in self.config.decision.thresholds.items():
            if isinstance(t, (int, float)):
                out[name] = (float(t), effects, "")
            else:
                rng = getattr(self.spec.o, "range", None)
                value = t.value * rng / 100 if (t.unit == "percent_of_max" and rng) else t.value
                out[name] = (float(value), t.variables or effects, t.note)
        return out


# ---------------------------------------------------------------------- reading
def parse_set(items: list[str]) -> list[tuple[list[str], Any, str]]:
    """``key.path=value`` strings to (path, value, origin); values are TOML (``7``, ``0.95``, ``{dist = "Beta", ...}``)
    or, when not valid TOML, a bare string (``priors.set=jeffreys``). The origin names the option: ``--set key=value``."""
    out = []
    problems = []
    for item in items:
        origin = f"--set {item}"
        if "=" not in item:
            problems.append(Problem(origin, "--set", repr(item), "expected key.path=value"))
            continue
        key, raw = item.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            problems.append(Problem(origin, key, repr(raw), "a key path is dot-separated names, e.g. sampler.draws"))
            continue
        try:
            value = parse_toml(f"v = {raw}", origin)["v"]
        except InputError:
            value = raw.strip()
        out.append((key.split("."), value, origin))
    if problems:
        raise InputError(problems)
    return out


def _set_path(doc: dict, path: list[str], value: Any, origin: str) -> None:
    node = doc
    for i, k in enumerate(path[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise InputError([Problem(origin, ".".join(path[: i + 1]), repr(nxt), f"is not a table, so {'.'.join(path)} cannot be set")])
        node = nxt
    node[path[-1]] = value


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_with_overrides(path: Path, overrides: list[str] | None, expected: str = "run config") -> tuple[dict, dict[str, str]]:
    """A TOML config as a dict with ``--set key.path=value`` overrides applied, and {overridden key path: origin}.

    An override of a key that a ``[sweep]`` varies replaces that sweep axis (the key takes the one value given).
    ``expected`` ("run config" or "design config"): a study card or the other kind of config is refused as such."""
    raw = read_toml(path, "config")
    check_document_kind(raw, str(path), expected)
    over = parse_set(overrides or [])
    sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else None
    for keys, value, origin in over:
        dotted = ".".join(keys)
        if sweep is not None:
            flat = _flatten(sweep)
            if dotted in flat:
                _drop_sweep_key(sweep, dotted)
        _set_path(raw, keys, value, origin)
    return raw, {".".join(k): origin for k, _, origin in over}


def _drop_sweep_key(sweep: dict, dotted: str) -> None:
    if dotted in sweep:
        del sweep[dotted]
        return
    parts = dotted.split(".")
    node = sweep
    for p_ in parts[:-1]:
        node = node.get(p_, {})
    node.pop(parts[-1], None)


def load_configs(path: str | Path, overrides: list[str] | None = None, study: Study | None = None) -> list[ResolvedRun]:
    """Read a config, apply ``--set`` overrides, expand ``[sweep]`` and validate each run against its study card.

    Raises
    ------
    InputError
        Every problem of every expanded run, each with its key path.
    """
    path = Path(path)
    raw, over_paths = read_with_overrides(path, overrides)
    return expand(raw, str(path), over_paths, base_dir=path.parent, study=study)


def _get_path(doc: dict, path: list[str]):
    """The value at a key path of a config document, or None."""
    cur = doc
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def expand(raw: dict, fname: str, over_paths: dict[str, str] | None = None, base_dir: Path | None = None,
           study: Study | None = None, data_in_memory: bool = False) -> list[ResolvedRun]:
    """Expand a config document's ``[sweep]`` and resolve each run (see :func:`load_configs`)."""
    over_paths = over_paths or {}
    raw = copy.deepcopy(raw)
    sweep = raw.pop("sweep", {}) or {}
    problems: list[Problem] = []
    if not isinstance(sweep, dict):
        raise InputError([Problem(fname, "sweep", repr(sweep), "must be a table of key.path = [values]")])
    flat = _flatten(sweep)
    sets = flat.get("priors.set")
    if sets == "grid" or (isinstance(sets, list) and "grid" in sets):
        # the standard grid of this model ("grid" alone or as one element of a list): a probe resolution with its default
        # priors says which sets it has
        probe = copy.deepcopy(raw)
        if isinstance(probe.get("priors"), dict):
            probe["priors"].pop("set", None)
        run = resolve(probe, fname, over_paths, base_dir=base_dir, study=study, data_in_memory=True)
        names = run.kind.grid(run.spec)
        if not names:
            raise InputError([Problem(fname, "sweep.priors.set", "'grid'", f"model {run.kind.name} has no treatment-effect location "
                                      "prior for the standard grid (it has: " + ", ".join(run.kind.prior_sets(run.spec)) + ")")])
        if sets == "grid":
            flat["priors.set"] = names
        else:
            expanded = []
            for v in sets:
                expanded += [n for n in names if n not in expanded] if v == "grid" else ([v] if v not in expanded else [])
            flat["priors.set"] = expanded
    for k, v in flat.items():
        if not isinstance(v, list) or not v:
            problems.append(Problem(fname, f"sweep.{k}", repr(v), "a sweep key takes a non-empty list of values (or \"grid\" for "
                                                                  "priors.set: the standard prior grid)"))
    if problems:
        raise InputError(problems)
    combos = list(itertools.product(*flat.values())) if flat else [()]
    # a primary config ([run] primary = true) leads its outcome's report with the sweep member fitted at its own settings
    # (the first member where the config does not set a swept key); the other members are its sensitivity analyses
    base_values = [_get_path(raw, k.split(".")) for k in flat]
    lead = next((c for c in combos if all(b is None or b == v for b, v in zip(base_values, c, strict=True))), combos[0])
    runs: list[ResolvedRun] = []
    for combo in combos:
        doc = copy.deepcopy(raw)
        if combo != lead and isinstance(doc.get("run"), dict) and doc["run"].get("primary"):
            doc["run"]["primary"] = False
        suffix = []
        for k, v in zip(flat, combo, strict=True):
            _set_path(doc, k.split("."), v, f"{fname} [sweep]")
            suffix.append(f"{k.split('.')[-1]}-{re.sub(r'[^A-Za-z0-9._-]', '_', str(v))}")
        if suffix and isinstance(doc.get("run"), dict) and isinstance(doc["run"].get("name"), str):
            doc["run"]["name"] = doc["run"]["name"] + "--" + "--".join(suffix)
        try:
            runs.append(resolve(doc, fname, over_paths, base_dir=base_dir, study=study, data_in_memory=data_in_memory))
        except InputError as exc:
            where = f" (sweep: {', '.join(f'{k} = {v!r}' for k, v in zip(flat, combo, strict=True))})" if flat else ""
            problems.extend(Problem(p.file, p.location + where, p.value, p.rule) for p in exc.problems)
    if problems:
        # the same problem from several sweep combinations is reported once
        seen, unique = set(), []
        for p in problems:
            key = (p.file, p.location.split(" (sweep:")[0] if "sweep." not in p.location else p.location, p.value, p.rule)
            if key not in seen:
                seen.add(key)
                unique.append(p)
        raise InputError(unique)
    return runs


def load_config(path: str | Path, overrides: list[str] | None = None, study: Study | None = None) -> ResolvedRun:
    """A config without a sweep (see :func:`load_configs`)."""
    runs = load_configs(path, overrides, study)
    if len(runs) != 1:
        raise InputError([Problem(str(path), "sweep", "", f"expands to {len(runs)} runs; use load_configs")])
    return runs[0]


# ---------------------------------------------------------------------- validation
def _origin(path: str, key: str, over_paths: dict[str, str]) -> str:
    for p, origin in over_paths.items():
        if key == p or key.startswith(p + "."):
            return origin
    return path


def study_of(doc: dict, fname: str = "<config>", over_paths: dict[str, str] | None = None, base_dir: Path | None = None) -> Study:
    """The study card a config names in ``data.study`` (the bundled one when it names none), loaded and validated."""
    from .data.source import resolve_path

    over_paths = over_paths or {}
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    ref = data.get("study")
    if ref is None:
        return load_study()
    origin = _origin(fname, "data.study", over_paths)
    if not isinstance(ref, str) or not ref:
        raise InputError([Problem(origin, "data.study", repr(ref), "a path to a study card (TOML)")])
    p = resolve_path(ref, base_dir)
    if not p.exists():
        raise InputError([Problem(origin, "data.study", repr(ref), "no such study card file")])
    return load_study(p)


def _model_problem(e: dict) -> bool:
    return bool(e["loc"]) and e["loc"][0] == "model"


def resolve(doc: dict, fname: str = "<config>", over_paths: dict[str, str] | None = None, base_dir: Path | None = None,
            study: Study | None = None, data_in_memory: bool = False) -> ResolvedRun:
    """Validate a config document (no sweep) against its study card and resolve its priors.

    Parameters
    ----------
    doc : dict
        The config as parsed TOML (or built in Python).
    fname : str
        Named in error messages.
    over_paths : dict, optional
        Key paths set by ``--set`` -> the option text (errors in them are blamed on it).
    base_dir : Path, optional
        Folder relative data paths and study cards are resolved against when they do not exist from the working directory.
    study : Study, optional
        Use this study instead of the one the config names (the API passes in-memory studies this way).
    data_in_memory : bool
        The data are passed in memory (the API): no data file is required or checked.
    """
    over_paths = over_paths or {}
    if not isinstance(doc, dict):
        raise InputError([Problem(fname, "(top level)", "", "a run config is a table")])
    doc = copy.deepcopy(doc)
    doc.pop("sweep", None)
    study = study or study_of(doc, fname, over_paths, base_dir)
    card = study.card
    model = doc.get("model")
    if isinstance(model, dict):
        kind, outcome, variant = card.resolve_kind(model.get("kind"), model.get("outcome"))
        if kind is not None and model.get("kind") in card.aliases:
            model["kind"] = kind
            if outcome is not None:
                model["outcome"] = outcome
            if variant is not None and "variant" not in model:
                model["variant"] = variant
    try:
        cfg = RunConfig.model_validate(doc)
    except ValidationError as exc:
        raise InputError(_config_problems(exc, doc, fname, over_paths, card)) from None
    kind = KINDS[cfg.model.kind]
    problems: list[Problem] = []
    # the outcome, read from the card
    outcome = cfg.model.outcome or card.default_outcome(kind.name)
    okey = "model.outcome"
    fitting = [n for n, o in card.outcomes.items() if o.kind == kind.outcome_kind]
    if outcome is None:
        problems.append(Problem(_origin(fname, okey, over_paths), okey, "", (
            f"study {card.name} has no {kind.outcome_kind} outcome for model kind {kind.name}" if not fitting else
            f"name the outcome to analyse: study {card.name} has several {kind.outcome_kind} outcomes ({', '.join(fitting)})")))
        raise InputError(problems)
    if outcome not in card.outcomes:
        problems.append(Problem(_origin(fname, okey, over_paths), okey, repr(outcome),
                                f"no such outcome in study {card.name}{did_you_mean(outcome, card.outcomes)}; outcomes: {', '.join(card.outcomes)}"))
        raise InputError(problems)
    if card.outcomes[outcome].kind != kind.outcome_kind:
        problems.append(Problem(_origin(fname, okey, over_paths), okey, repr(outcome),
                                f"{outcome} is a {card.outcomes[outcome].kind} outcome; model kind {kind.name} analyses {kind.outcome_kind} "
                                f"outcomes ({', '.join(fitting) or 'none in this study'})"))
        raise InputError(problems)
    options = cfg.model.model_copy(update={"outcome": outcome})
    if getattr(options, "route", None) == "auto" and kind.name == "score":
        options = options.model_copy(update={"route": "ipd" if cfg.data.source == "ipd" else "summary"})
    cfg = cfg.model_copy(update={"model": options})
    spec = ModelSpec(card, outcome, options)
    params = kind.params(spec)
    sets = kind.prior_sets(spec)
    set_name = cfg.priors.set or kind.default_prior_set(spec)
    if set_name not in sets:
        variant = getattr(options, "variant", None) or getattr(options, "likelihood", None)
        problems.append(Problem(_origin(fname, "priors.set", over_paths), "priors.set", repr(set_name),
                                f"unknown prior set for {kind.name}{'/' + variant if variant else ''} on {outcome}"
                                f"{did_you_mean(set_name, sets)}; allowed: {', '.join(sets)}"))
        raise InputError(problems)
    priors = dict(sets[set_name].priors)
    overridden = []
    coords = spec.coords() | {"item": list(getattr(spec.o, "items", []) or [])}
    for pname, pspec in (cfg.priors.model_extra or {}).items():
        key = f"priors.{pname}"
        origin = _origin(fname, key, over_paths)
        if pname not in params:
            problems.append(Problem(origin, key, "", f"{kind.name} has no parameter '{pname}'{did_you_mean(pname, params)}; "
                                    f"parameters with priors: {', '.join(params)}"))
            continue
        if not isinstance(pspec, dict) or "dist" not in pspec:
            problems.append(Problem(origin, key, repr(pspec), 'a prior override is a table: { dist = "Normal", mu = 0, sigma = 5 }'))
            continue
        pspec = dict(pspec)
        dist = pspec.pop("dist")
        note = pspec.pop("note", "set in the run config")
        if not isinstance(dist, str):
            problems.append(Problem(origin, key + ".dist", repr(dist), f"a distribution name: {', '.join(FAMILIES)}"))
            continue
        ps = PriorSpec(dist, pspec, str(note))
        for msg in check_prior(ps, params[pname], coords):
            problems.append(Problem(origin, key, prior_text(ps) if dist in FAMILIES else repr(dist), msg))
        priors[pname] = ps
        overridden.append(pname)
    for pname, ps in priors.items():  # priors from card-declared sets are checked like overrides
        if pname in params and pname not in overridden:
            for msg in check_prior(ps, params[pname], coords):
                problems.append(Problem(str(card.path or card.name), f"prior set {set_name}: {pname}", prior_text(ps), msg))
    missing = [p for p in params if p not in priors]
    if missing:
        problems.append(Problem(_origin(fname, "priors.set", over_paths), "priors.set", repr(set_name),
                                f"the set has no prior for {', '.join(missing)}"))
    for key, value, msg in kind.check_options(spec, cfg.data.source):
        problems.append(Problem(_origin(fname, key, over_paths), key, value, msg))
    for pname, msg in kind.check_priors(priors, spec):
        key = f"priors.{pname}"
        problems.append(Problem(_origin(fname, key, over_paths), key, prior_text(priors[pname]), msg))
    known = set(kind.estimands(spec)) | set(params) | set(kind.effect_variables(spec))
    for tname, t in cfg.decision.thresholds.items():
        if isinstance(t, ThresholdSpec) and t.variables:
            for v in t.variables:
                if v not in known:
                    key = f"decision.thresholds.{tname}.variables"
                    problems.append(Problem(_origin(fname, key, over_paths), key, repr(v),
                                            f"no such variable{did_you_mean(v, known)}; allowed: {', '.join(sorted(known))}"))
    problems += _check_environment(cfg, fname, over_paths, base_dir, study, data_in_memory)
    if problems:
        raise InputError(problems)
    exact = kind.exact_available(priors, spec)
    if cfg.sampler.backend == "exact" and not exact:
        key = "sampler.backend"
        raise InputError([Problem(_origin(fname, key, over_paths), key, "'exact'", f"needs a conjugate model with a closed-form posterior "
                                  f"(events independent with Beta priors, ordinal dirichlet_multinomial, complications); {kind.name} "
                                  "here is not: use auto or nutpie")])
    if cfg.sampler.backend == "auto":  # the resolved config names what was used
        cfg = cfg.model_copy(update={"sampler": cfg.sampler.model_copy(update={"backend": "exact" if exact else "nutpie"})})
    run = ResolvedRun(cfg, kind, priors, set_name, study, spec, overridden, fname, base_dir)
    return run


def _check_environment(cfg: RunConfig, fname: str, over_paths: dict[str, str], base_dir: Path | None, study: Study,
                       data_in_memory: bool = False) -> list[Problem]:
    """What fit would find only later: the data file exists and is a file, the published summaries exist, the backend imports."""
    from .data.source import resolve_path

    out = []
    d = cfg.data
    if d.source in ("summary", "ipd") and not d.path and not data_in_memory:
        out.append(Problem(_origin(fname, "data.path", over_paths), "data.path", "", f"source = {d.source!r} needs a path to the data file"))
    if d.path is not None and not data_in_memory:
        p = resolve_path(d.path, base_dir)
        origin = _origin(fname, "data.path", over_paths)
        if not p.exists():
            out.append(Problem(origin, "data.path", repr(d.path), "no such file"))
        elif p.is_dir():
            out.append(Problem(origin, "data.path", repr(d.path), "is a folder; a CSV file is expected"))
    if d.source == "published" and study.summary_path is None and not data_in_memory:
        out.append(Problem(_origin(fname, "data.source", over_paths), "data.source", "'published'",
                           f"study {study.name} has no published summaries (its card names no summary file); use source = summary | ipd"))
    b = cfg.sampler.backend
    need = {"numpyro": ("jax", "numpyro")}.get(b, ())
    absent = [m for m in need if importlib.util.find_spec(m) is None]
    if absent:
        out.append(Problem(_origin(fname, "sampler.backend", over_paths), "sampler.backend", repr(b),
                           f"needs {' and '.join(absent)} installed (pip install {' '.join(absent)}); or use nutpie"))
    return out


def _config_problems(exc: ValidationError, doc: dict, fname: str, over_paths: dict[str, str], card) -> list[Problem]:
    kinds = list(KINDS) + [a for a in card.aliases]

    def drop(loc: list) -> list:
        if len(loc) >= 2 and loc[0] == "model" and loc[1] in KINDS:
            return [loc[0], *loc[2:]]
        return loc

    def union(loc: tuple):
        if loc == ("model",):
            kind = doc.get("model", {}).get("kind") if isinstance(doc.get("model"), dict) else None
            return KINDS[kind].options_class if kind in KINDS else None
        return None

    out = []
    tag_done = False
    for e in exc.errors():
        if e["type"] in ("union_tag_invalid", "union_tag_not_found") and not tag_done:
            tag_done = True
            value = doc.get("model", {}).get("kind") if isinstance(doc.get("model"), dict) else None
            origin = _origin(fname, "model.kind", over_paths)
            if e["type"] == "union_tag_not_found":
                out.append(Problem(origin, "model.kind", "", f"is required; allowed: {', '.join(kinds)}"))
            else:
                out.append(Problem(origin, "model.kind", repr(value), f"unknown model kind{did_you_mean(str(value), kinds)}; allowed: {', '.join(kinds)}"))
    rest = [e for e in exc.errors() if e["type"] not in ("union_tag_invalid", "union_tag_not_found")]
    if rest:
        sub = ValidationError.from_exception_data(exc.title, rest)
        out += problems_from_validation(sub, lambda key: _origin(fname, key, over_paths), RunConfig, drop, union)
    return out


# ---------------------------------------------------------------------- writing
def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def config_to_toml(run: ResolvedRun) -> str:
    """The resolved config: every default filled in (the outcome and route included) and every prior written out."""
    doc = run.config.model_dump(mode="json", exclude={"priors", "sweep"})
    doc = _clean(doc)
    priors: dict[str, Any] = {"set": run.prior_set}
    for pname, spec in run.priors.items():
        priors[pname] = {"dist": spec.dist, **spec.params}
    doc["priors"] = priors
    header = (f"# Resolved config of run '{run.config.run.name}' (bayes-sacral). Priors are written out in full,\n"
              f"# so this file refits the same model even if a named prior set changes in a later version.\n")
    ordered = {k: doc[k] for k in ("run", "data", "model", "priors", "sampler", "decision") if k in doc}
    return header + tomli_w.dumps(ordered)


def _toml_value(v) -> str:
    """A value as inline TOML (lists and tables on one line)."""
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()


def defaults_toml(kind_name: str, study: Study | None = None) -> str:
    """A complete, commented config for ``kind_name`` (a generic kind or an alias of the study's card), every key with its default."""
    study = study or load_study()
    card = study.card
    kind_g, outcome, variant = card.resolve_kind(kind_name, None)
    allowed = list(KINDS) + list(card.aliases)
    if kind_g not in KINDS:
        raise InputError([Problem("<command line>", "KIND", repr(kind_name), f"unknown model kind{did_you_mean(kind_name, allowed)}; "
                                  f"allowed: {', '.join(allowed)}")])
    kind = KINDS[kind_g]
    outcome = outcome or card.default_outcome(kind_g)
    if outcome is None:
        fitting = [n for n, o in card.outcomes.items() if o.kind == kind.outcome_kind]
        if not fitting:
            raise InputError([Problem("<command line>", "KIND", repr(kind_name), f"study {card.name} has no {kind.outcome_kind} outcome")])
        outcome = fitting[0]
    options = kind.options_class(outcome=outcome, **({"variant": variant} if variant else {}))
    spec = ModelSpec(card, outcome, options)
    lines = [f"# bayes-sacral run config for model kind '{kind_g}' on outcome '{outcome}' of study {card.name}: {kind.title}",
             "# Every key is shown with its default. Validate with: bayes-sacral config validate FILE", ""]

    def section(title: str, cls: type[BaseModel], values: dict, skip=()):
        lines.append(f"[{title}]")
        for name, fld in cls.model_fields.items():
            if name in skip:
                continue
            doc = fld.description or field_docs(cls).get(name)
            if doc:
                for ln in doc.strip().splitlines():
                    lines.append(f"# {ln.strip()}")
            v = values.get(name)
            if v is None:
                lines.append(f'# {name} = "..."')
            elif isinstance(v, dict) and not v:
                lines.append(f"# {name} = {{}}")
            else:
                lines.append(f"{name} = {_toml_value(v)}")
        lines.append("")

    section("run", RunSection, {"name": kind_name.replace("_", "-"), "seed": 20250101, "description": ""})
    section("data", DataSection, {"source": "published" if study.summary_path is not None else "ipd",
                                  "study": None if card.path is None or study.card.name == load_study().name else str(card.path)})
    section("model", kind.options_class, options.model_dump(mode="json"))
    sets = kind.prior_sets(spec)
    default_set = kind.default_prior_set(spec)
    lines.append("[priors]")
    lines.append(f"# Named prior set; for this model: {', '.join(sets)}.")
    for s_ in sets.values():
        lines.append(f"#   {s_.name}: {s_.description}")
    lines.append(f'set = "{default_set}"')
    lines.append("# Per-parameter overrides (family + parameters). The default set's priors:")
    for pname, ps in sets[default_set].priors.items():
        inline = ", ".join(f"{k} = {_toml_value(v)}" for k, v in ps.params.items())
        lines.append(f'# {pname} = {{ dist = "{ps.dist}"{", " + inline if inline else ""} }}   # {ps.justification}')
    lines.append("")
    section("sampler", SamplerSection, SamplerSection().model_dump(mode="json"))
    lines.append("[decision]")
    lines.append(f"# {field_docs(DecisionSection)['prob']}")
    lines.append("prob = 0.95")
    lines.append("# Thresholds: benefit magnitudes; P(benefit beyond value) is reported as prob_beyond_<name>. A bare number applies")
    lines.append(f"# to the effect variables ({', '.join(kind.effect_variables(spec)) or 'none'}); a table names its variables.")
    lines.append("# Default: the card's MCID of the outcome and its sensitivity values.")
    lines.append("[decision.thresholds]")
    lines.append("")
    lines.append("# [sweep]")
    lines.append(f'# "priors.set" = {_toml_value(list(sets))}   # one run per prior set')
    return "\n".join(lines) + "\n"
