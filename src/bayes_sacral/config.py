"""Run configs (TOML): schema, validation with key-path messages, ``--set`` overrides, sweeps, defaults.

One schema serves every run::

    [run]      name, seed
    [data]     source = "published" | "summary" | "ipd", path
    [model]    kind and the kind's options
    [priors]   set = "<named set>", plus per-parameter overrides { dist = ..., <params> }
    [sampler]  draws, tune, chains, target_accept, backend
    [decision] prob (interval probability), thresholds
    [sweep]    "key.path" = [values ...]  (one run per combination)

Every problem (unknown key, wrong type, out-of-range value, unknown prior parameter) is reported with its
full key path, the bad value and what is allowed, with a did-you-mean for misspelled keys.
"""

from __future__ import annotations

import copy
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .data._suggest import did_you_mean
from .errors import InputError, Problem
from .models import KINDS, KindOptions, ModelKind
from .priors import FAMILIES, PriorSpec, check_prior, prior_text

__all__ = [
    "RunConfig",
    "ResolvedRun",
    "load_config",
    "load_configs",
    "parse_set",
    "resolve",
    "config_to_toml",
    "defaults_toml",
]

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class RunSection(_Strict):
    name: str = Field(pattern=_NAME_RE, max_length=120)
    """Run name; the run folder is <out>/<name> (letters, digits, '.', '_', '-')."""
    seed: int = Field(ge=0, le=2**32 - 1)
    """Random seed: the same config and seed give bit-identical draws."""
    description: str = ""
    """Free text shown in run listings and reports."""


class DataSection(_Strict):
    source: Literal["published", "summary", "ipd"] = "published"
    """published: the bundled study; summary: a summary-data CSV; ipd: a patient-level CSV."""
    path: str | None = None
    """The data file, for source = summary | ipd (relative to the working directory, else to the config's folder)."""

    @field_validator("path")
    @classmethod
    def _path_matches_source(cls, v, info):
        source = info.data.get("source")
        if source == "published" and v is not None:
            raise ValueError("path is only used with source = summary | ipd")
        if source in ("summary", "ipd") and not v:
            raise ValueError(f"source = {source!r} needs a path to the data file")
        return v


class SamplerSection(_Strict):
    draws: int = Field(2000, ge=10, le=200_000)
    """Posterior draws per chain (after tuning)."""
    tune: int = Field(1000, ge=10, le=200_000)
    """Tuning (warm-up) iterations per chain, discarded."""
    chains: int = Field(4, ge=1, le=32)
    """Number of chains (at least 2 to compute R-hat)."""
    target_accept: float = Field(0.9, gt=0.5, lt=1.0)
    """NUTS target acceptance rate; raise it (0.95-0.99) if there are divergences."""
    backend: Literal["nutpie", "pymc", "numpyro"] = "nutpie"
    """NUTS implementation: nutpie (default), pymc, numpyro (needs jax)."""
    prior_draws: int = Field(1000, ge=0, le=100_000)
    """Draws from the prior and prior predictive (for prior-vs-posterior plots and checks)."""
    max_treedepth: int = Field(10, ge=4, le=15)
    """Maximum NUTS tree depth."""


class ThresholdSpec(_Strict):
    value: float
    """Posterior probability P(variable > value) is reported as prob_gt_<name>."""
    variables: list[str] | None = None
    """Variables it applies to (default: the model's effect variables)."""
    unit: Literal["native", "percent_of_max"] = "native"
    """native: the variable's own unit; percent_of_max: MSTS percent of 30, converted to points."""
    note: str = ""
    """Where the threshold comes from (shown in reports)."""


class DecisionSection(_Strict):
    prob: float = Field(0.95, gt=0.0, lt=1.0)
    """Probability of the reported intervals (HDI and equal-tailed)."""
    thresholds: dict[str, float | ThresholdSpec] = Field(default_factory=dict)
    """name = value (applies to the effect variables) or name = { value, variables, unit, note }."""

    @field_validator("thresholds")
    @classmethod
    def _names(cls, v):
        for k in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", k):
                raise ValueError(f"threshold name {k!r} must be snake_case (it becomes the column prob_gt_{k})")
        return v


class PriorsSection(BaseModel):
    model_config = ConfigDict(extra="allow")
    set: str | None = None
    """Named prior set (the model's default when omitted)."""


def _model_union():
    classes = tuple(k.options_class for k in KINDS.values())
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


class RunConfig(_Strict):
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
    """A validated config with its priors resolved to explicit specs."""

    config: RunConfig
    kind: ModelKind
    priors: dict[str, PriorSpec]
    prior_set: str
    overridden: list[str] = field(default_factory=list)
    source_file: str = "<config>"
    base_dir: Path | None = None

    @property
    def options(self) -> KindOptions:
        return self.config.model

    def thresholds(self) -> dict[str, tuple[float, list[str], str]]:
        """name -> (value in the variables' own unit, variables, note); the model's defaults when the config names none."""
        out = {}
        if not self.config.decision.thresholds:
            for name, (value, note) in self.kind.default_thresholds(self.options).items():
                out[name] = (float(value), self.kind.effect_variables(self.options), note)
            return out
        for name, t in self.config.decision.thresholds.items():
            if isinstance(t, (int, float)):
                out[name] = (float(t), self.kind.effect_variables(self.options), "")
            else:
                value = t.value * 30 / 100 if t.unit == "percent_of_max" else t.value
                out[name] = (float(value), t.variables or self.kind.effect_variables(self.options), t.note)
        return out


# ---------------------------------------------------------------------- reading
def _read_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([Problem(str(path), "file", "", f"cannot be read ({exc.strerror or exc})")]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(str(path), "TOML syntax", "", str(exc))]) from exc


def parse_set(items: list[str]) -> list[tuple[list[str], Any]]:
    """``key.path=value`` strings to (path, value); values are TOML (``7``, ``0.95``, ``{dist = "Beta", ...}``)
    or, when not valid TOML, a bare string (``priors.set=jeffreys``)."""
    out = []
    problems = []
    for item in items:
        if "=" not in item:
            problems.append(Problem("--set", item, "", "expected key.path=value"))
            continue
        key, raw = item.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            problems.append(Problem("--set", key, repr(raw), "a key path is dot-separated names, e.g. sampler.draws"))
            continue
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out.append((key.split("."), value))
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


def read_with_overrides(path: Path, overrides: list[str] | None) -> tuple[dict, set[str]]:
    """A TOML config as a dict with ``--set key.path=value`` overrides applied, and the set of overridden key paths."""
    raw = _read_toml(path)
    over = parse_set(overrides or [])
    for keys, value in over:
        _set_path(raw, keys, value, "--set")
    return raw, {".".join(k) for k, _ in over}


def load_configs(path: str | Path, overrides: list[str] | None = None) -> list[ResolvedRun]:
    """Read a config, apply ``--set`` overrides, expand ``[sweep]`` and validate each run.

    Raises
    ------
    InputError
        Every problem of every expanded run, each with its key path.
    """
    path = Path(path)
    raw, over_paths = read_with_overrides(path, overrides)
    sweep = raw.pop("sweep", {}) or {}
    problems: list[Problem] = []
    if not isinstance(sweep, dict):
        raise InputError([Problem(str(path), "sweep", repr(sweep), "must be a table of key.path = [values]")])
    flat = _flatten(sweep)
    for k, v in flat.items():
        if not isinstance(v, list) or not v:
            problems.append(Problem(str(path), f"sweep.{k}", repr(v), "a sweep key takes a non-empty list of values"))
    if problems:
        raise InputError(problems)
    combos = list(itertools.product(*flat.values())) if flat else [()]
    runs: list[ResolvedRun] = []
    for combo in combos:
        doc = copy.deepcopy(raw)
        suffix = []
        for k, v in zip(flat, combo, strict=True):
            _set_path(doc, k.split("."), v, f"{path} [sweep]")
            suffix.append(f"{k.split('.')[-1]}-{re.sub(r'[^A-Za-z0-9._-]', '_', str(v))}")
        if suffix and isinstance(doc.get("run"), dict) and isinstance(doc["run"].get("name"), str):
            doc["run"]["name"] = doc["run"]["name"] + "--" + "--".join(suffix)
        try:
            run = resolve(doc, str(path), over_paths)
            run.base_dir = path.parent
            runs.append(run)
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


def load_config(path: str | Path, overrides: list[str] | None = None) -> ResolvedRun:
    """A config without a sweep (see :func:`load_configs`)."""
    runs = load_configs(path, overrides)
    if len(runs) != 1:
        raise InputError([Problem(str(path), "sweep", "", f"expands to {len(runs)} runs; use load_configs")])
    return runs[0]


# ---------------------------------------------------------------------- validation
def _allowed_keys(loc: tuple, doc: dict, root: Any = None) -> list[str]:
    """Field names of the table at ``loc`` (for unknown-key messages)."""
    cls: Any = root or RunConfig
    for part in loc:
        if cls is RunConfig and part == "model":
            kind = doc.get("model", {}).get("kind") if isinstance(doc.get("model"), dict) else None
            cls = KINDS[kind].options_class if kind in KINDS else None
            continue
        if isinstance(part, int):
            continue
        if cls is None or not hasattr(cls, "model_fields"):
            return []
        fld = cls.model_fields.get(part)
        if fld is None:
            return []
        ann = fld.annotation
        if getattr(ann, "__origin__", None) is list and ann.__args__:
            ann = ann.__args__[0]
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(cls.model_fields) if cls is not None and hasattr(cls, "model_fields") else []


def _origin(path: str, key: str, over_paths: set[str]) -> str:
    return "--set" if any(key == p or key.startswith(p + ".") for p in over_paths) else path


def _pydantic_problems(exc: ValidationError, doc: dict, fname: str, over_paths: set[str], root: Any = None) -> list[Problem]:
    out = []
    for e in exc.errors():
        loc = list(e["loc"])
        if len(loc) >= 2 and loc[0] == "model" and loc[1] in KINDS:
            loc.pop(1)
        loc = [str(x) for x in loc if not (isinstance(x, str) and x in ("float", "ThresholdSpec", "function-after[_names(), dict[str,union[float,ThresholdSpec]]]"))]
        key = ".".join(loc) or "(top level)"
        value = e.get("input")
        etype = e["type"]
        if etype == "extra_forbidden":
            allowed = _allowed_keys(tuple(e["loc"][:-1]) if e["loc"][:1] != ("model",) else ("model",), doc, root)
            rule = f"unknown key{did_you_mean(loc[-1], allowed)}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
            shown = ""
        elif etype == "missing":
            rule, shown = "is required", ""
        elif etype == "union_tag_invalid":
            rule = f"unknown model kind{did_you_mean(str(value), KINDS)}; allowed: {', '.join(KINDS)}"
            key, shown = "model.kind", repr(value.get("kind") if isinstance(value, dict) else value)
            value = None
        elif etype == "union_tag_not_found":
            key, rule, shown = "model.kind", f"is required; allowed: {', '.join(KINDS)}", ""
        else:
            rule = e["msg"].replace("Value error, ", "")
            shown = repr(value) if value is not None and not isinstance(value, dict) else ""
        out.append(Problem(_origin(fname, key, over_paths), key, shown if etype not in ("union_tag_invalid",) else shown, rule))
    return out


def resolve(doc: dict, fname: str = "<config>", over_paths: set[str] | None = None) -> ResolvedRun:
    """Validate a config document (no sweep) and resolve its priors."""
    over_paths = over_paths or set()
    doc = copy.deepcopy(doc)
    doc.pop("sweep", None)
    try:
        cfg = RunConfig.model_validate(doc)
    except ValidationError as exc:
        raise InputError(_pydantic_problems(exc, doc, fname, over_paths)) from None
    kind = KINDS[cfg.model.kind]
    options = cfg.model
    params = kind.params(options)
    sets = kind.prior_sets(options)
    problems: list[Problem] = []
    set_name = cfg.priors.set or kind.default_prior_set(options)
    if set_name not in sets:
        problems.append(Problem(_origin(fname, "priors.set", over_paths), "priors.set", repr(set_name),
                                f"unknown prior set for {kind.name}{'/' + getattr(options, 'variant', '') if hasattr(options, 'variant') else ''}"
                                f"{did_you_mean(set_name, sets)}; allowed: {', '.join(sets)}"))
        raise InputError(problems)
    priors = dict(sets[set_name].priors)
    overridden = []
    coords = _prior_coords(kind, options)
    for pname, spec in (cfg.priors.model_extra or {}).items():
        key = f"priors.{pname}"
        origin = _origin(fname, key, over_paths)
        if pname not in params:
            problems.append(Problem(origin, key, "", f"{kind.name} has no parameter '{pname}'{did_you_mean(pname, params)}; "
                                    f"parameters with priors: {', '.join(params)}"))
            continue
        if not isinstance(spec, dict) or "dist" not in spec:
            problems.append(Problem(origin, key, repr(spec), 'a prior override is a table: { dist = "Normal", mu = 0, sigma = 5 }'))
            continue
        spec = dict(spec)
        dist = spec.pop("dist")
        note = spec.pop("note", "set in the run config")
        if not isinstance(dist, str):
            problems.append(Problem(origin, key + ".dist", repr(dist), f"a distribution name: {', '.join(FAMILIES)}"))
            continue
        ps = PriorSpec(dist, spec, str(note))
        for msg in check_prior(ps, params[pname], coords):
            problems.append(Problem(origin, key, prior_text(ps) if dist in FAMILIES else repr(dist), msg))
        priors[pname] = ps
        overridden.append(pname)
    for key, value, msg in kind.check_options(options, cfg.data.source):
        problems.append(Problem(_origin(fname, key, over_paths), key, value, msg))
    for pname, msg in kind.check_priors(priors, options):
        key = f"priors.{pname}"
        problems.append(Problem(_origin(fname, key, over_paths), key, prior_text(priors[pname]), msg))
    known = set(kind.estimands(options)) | set(params) | set(kind.effect_variables(options))
    for tname, t in cfg.decision.thresholds.items():
        if isinstance(t, ThresholdSpec) and t.variables:
            for v in t.variables:
                if v not in known:
                    key = f"decision.thresholds.{tname}.variables"
                    problems.append(Problem(_origin(fname, key, over_paths), key, repr(v), f"no such variable{did_you_mean(v, known)}; allowed: {', '.join(sorted(known))}"))
    if problems:
        raise InputError(problems)
    return ResolvedRun(cfg, kind, priors, set_name, overridden, fname)


def _prior_coords(kind: ModelKind, options) -> dict[str, list[str]]:
    from .vocabulary import ARMS, FRACTURES, MSTS_ITEMS, NARCOTIC_LEVELS

    coords = {"arm": list(ARMS), "fracture": list(FRACTURES), "narcotic_change": list(NARCOTIC_LEVELS),
              "cutpoint": ["decrease|stable", "stable|increase"], "domain": list(MSTS_ITEMS)}
    if getattr(options, "arms", None):
        coords["arm"] = list(options.arms)
    return coords


# ---------------------------------------------------------------------- writing
def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def config_to_toml(run: ResolvedRun) -> str:
    """The resolved config: every default filled in and every prior written out explicitly."""
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


def defaults_toml(kind_name: str) -> str:
    """A complete, commented config for ``kind_name`` (every key with its default)."""
    if kind_name not in KINDS:
        raise InputError([Problem("<command line>", "KIND", repr(kind_name), f"unknown model kind{did_you_mean(kind_name, KINDS)}; allowed: {', '.join(KINDS)}")])
    kind = KINDS[kind_name]
    options = kind.options_class()
    lines = [f"# bayes-sacral run config for model kind '{kind_name}': {kind.title}",
             "# Every key is shown with its default. Validate with: bayes-sacral config validate FILE", ""]

    def section(title: str, cls: type[BaseModel], values: dict, skip=()):
        lines.append(f"[{title}]")
        for name, fld in cls.model_fields.items():
            if name in skip:
                continue
            if fld.description:
                for ln in fld.description.strip().splitlines():
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
    section("data", DataSection, {"source": "published"})
    section("model", kind.options_class, options.model_dump(mode="json"))
    sets = kind.prior_sets(options)
    default_set = kind.default_prior_set(options)
    lines.append("[priors]")
    lines.append(f"# Named prior set; for this model: {', '.join(sets)}.")
    for s in sets.values():
        lines.append(f"#   {s.name}: {s.description}")
    lines.append(f'set = "{default_set}"')
    lines.append("# Per-parameter overrides (family + parameters). The default set's priors:")
    for pname, spec in sets[default_set].priors.items():
        inline = ", ".join(f"{k} = {_toml_value(v)}" for k, v in spec.params.items())
        lines.append(f'# {pname} = {{ dist = "{spec.dist}", {inline} }}   # {spec.justification}')
    lines.append("")
    section("sampler", SamplerSection, SamplerSection().model_dump(mode="json"))
    lines.append("[decision]")
    lines.append(f"# {DecisionSection.model_fields['prob'].description}")
    lines.append("prob = 0.95")
    lines.append("# Thresholds: P(variable > value) is reported as prob_gt_<name>. A bare number applies to the effect")
    lines.append(f"# variables ({', '.join(kind.effect_variables(options))}); a table names its variables.")
    lines.append("[decision.thresholds]")
    lines.append("")
    lines.append("# [sweep]")
    lines.append(f'# "priors.set" = {_toml_value(list(sets))}   # one run per prior set')
    return "\n".join(lines) + "\n"
