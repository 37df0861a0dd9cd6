"""Validation shared by every TOML input (run configs, design configs, study cards): reading, strict schemas, messages.

Every problem becomes a :class:`~bayes_sacral.errors.Problem` naming the file (or ``--set``), the key path, the bad
value and the rule in plain words; pydantic's own wording never reaches the user.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InputError, Problem
from .suggest import did_you_mean

__all__ = ["Strict", "field_docs", "read_toml", "parse_toml", "problems_from_validation", "allowed_keys", "check_document_kind",
           "MAX_TOML_DEPTH", "MAX_TOML_BYTES"]

#: Deeper nesting than this is an input error (Python's TOML parser would otherwise recurse until it crashes).
MAX_TOML_DEPTH = 32
#: Larger files are refused before parsing.
MAX_TOML_BYTES = 4_000_000


#: The top-level tables that only one kind of TOML input has, and what to do with that kind.
_KIND_TABLES = {
    "study card": (("study", "arms", "outcomes", "covariates", "columns", "aliases"),
                   "pass a card with --study, or name it in a config's data.study"),
    "run config": (("run", "data", "model", "priors", "sampler", "sweep"), "fit it with `bayes-sacral fit`"),
    "design config": (("design", "truth", "analysis", "interim", "full_model"), "run it with `bayes-sacral design`"),
}


def check_document_kind(doc: dict, fname: str, expected: str) -> None:
    """Refuse, as one problem, a TOML document that is plainly another kind of input (``expected``: "study card", "run
    config" or "design config"): it has two or more tables only that kind has and none only the expected kind has. Any
    other document goes on to the schema, whose problems name each key."""
    own = _KIND_TABLES[expected][0]
    if any(k in doc for k in own):
        return
    for kind, (tables, hint) in _KIND_TABLES.items():
        found = [t for t in tables if t in doc]
        if kind != expected and len(found) >= 2:
            listed = ", ".join(f"[{t}]" for t in found[:3])
            raise InputError([Problem(fname, "file", "", f"is a {kind} (it has {listed}), not a {expected}; {hint}")])


class Strict(BaseModel):
    """Base of every schema: unknown keys rejected, no coercion (no string or float where an integer is required).

    A field is documented by the string literal under it; :func:`field_docs` reads those when they are wanted (the
    commented config). Pydantic's ``use_attribute_docstrings`` read them for every schema at import: it looks up each
    class's source through ``inspect.getmodule``, a walk over every loaded module, 0.13 s of every process's start."""

    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


@functools.cache
def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """The attribute docstrings of ``cls``'s fields (the string literal right under a field, cleaned as
    :func:`inspect.cleandoc` cleans a docstring), its base classes' included; a field without one is absent."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (built at run time): no docstrings
            continue
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return {name: docs[name] for name in cls.model_fields if name in docs}


def _nesting_depth(text: str) -> int:
    """Upper bound of the bracket nesting of TOML text, ignoring brackets inside strings and comments."""
    depth = best = 0
    quote = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i:i + 3]
            i += 3
            continue
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
        elif c == "\n" and depth <= 1:
            depth = 0  # a table header [a] closes on its own line
        i += 1
    return best


def parse_toml(text: str, fname: str) -> dict:
    """Parse TOML text; syntax errors, excessive nesting and non-tables are input errors naming ``fname``."""
    depth = _nesting_depth(text)
    if depth > MAX_TOML_DEPTH:
        raise InputError([Problem(fname, "TOML structure", "", f"arrays or tables are nested {depth} deep; at most {MAX_TOML_DEPTH} are allowed")])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(fname, "TOML syntax", "", str(exc))]) from None
    except RecursionError:  # pragma: no cover - guarded by the depth check
        raise InputError([Problem(fname, "TOML structure", "", "nested too deeply")]) from None


def read_toml(path: str | Path, what: str = "file") -> dict:
    """Read and parse a TOML file: a missing path, a folder, unreadable or non-UTF-8 bytes are input errors."""
    path = Path(path)
    fname = str(path)
    if path.is_dir():
        raise InputError([Problem(fname, what, "", "is a folder; a TOML file is expected")])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError([Problem(fname, what, "", "no such file")]) from None
    except OSError as exc:
        raise InputError([Problem(fname, what, "", f"cannot be read ({exc.strerror or exc})")]) from None
    if len(raw) > MAX_TOML_BYTES:
        raise InputError([Problem(fname, what, "", f"is {len(raw):,} bytes; a TOML input is at most {MAX_TOML_BYTES:,}")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(fname, f"byte {exc.start}", "", "the file must be UTF-8 text")]) from None
    return parse_toml(text, fname)


def allowed_keys(root: type[BaseModel], loc: tuple, resolve_union: Callable[[tuple], type | None] | None = None) -> list[str]:
    """Field names of the table at ``loc`` below ``root`` (for unknown-key messages)."""
    cls: Any = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if cls is None or not hasattr(cls, "model_fields"):
            return []
        fld = cls.model_fields.get(part)
        if fld is None:
            return []
        ann = fld.annotation
        if resolve_union is not None:
            special = resolve_union(tuple(loc[: i + 1]))
            if special is not None:
                cls = special
                continue
        while getattr(ann, "__origin__", None) in (list, dict) and getattr(ann, "__args__", None):
            ann = ann.__args__[-1]
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if args:
            ann = args[0]
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(cls.model_fields) if cls is not None and hasattr(cls, "model_fields") else []


def _show(value: Any) -> str:
    if value is None or isinstance(value, dict):
        return ""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "str": "a text string", "bool": "true or false",
               "list": "a list [ ... ]", "dict": "a table { ... }"}


def _rule(e: dict) -> str:
    """A pydantic error in plain words."""
    t = e["type"]
    ctx = e.get("ctx") or {}
    if t in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number (write 2000, not 2000.0 or \"2000\")"
    if t in ("float_type", "float_parsing"):
        return "must be a number"
    if t in ("string_type",):
        return "must be a text string in quotes"
    if t in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if t == "list_type":
        return "must be a list [ ... ]"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a table { ... }"
    if t == "literal_error":
        expected = ctx.get("expected", "")
        return f"must be one of {expected.replace(' or ', ', ')}"
    if t == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if t == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if t == "less_than":
        return f"must be less than {ctx.get('lt')}"
    if t == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if t == "string_pattern_mismatch":
        return "may use letters, digits, '.', '_' and '-' only, starting with a letter or digit"
    if t == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if t == "string_too_short":
        return "must not be empty"
    if t in ("too_short",):
        return f"needs at least {ctx.get('min_length')} item(s)"
    if t in ("too_long",):
        return f"takes at most {ctx.get('max_length')} item(s)"
    if t == "missing":
        return "is required"
    if t == "finite_number":
        return "must be a finite number"
    msg = e.get("msg", "is invalid")
    return re.sub(r"^(Value|Assertion) error, ", "", msg)


def problems_from_validation(exc: ValidationError, fname: str | Callable[[str], str], root: type[BaseModel] | None = None,
                             drop_loc: Callable[[list], list] | None = None,
                             resolve_union: Callable[[tuple], type | None] | None = None) -> list[Problem]:
    """Problems (key path, value, rule in plain words) from a pydantic ``ValidationError``.

    Parameters
    ----------
    fname : str or callable
        The file named in each problem, or a function of the key path (``--set`` overrides are blamed on ``--set``).
    root : pydantic model class, optional
        For "unknown key; did you mean ..." lists.
    drop_loc : callable, optional
        Rewrites the raw location (e.g. drops a discriminated union's tag from it).
    """
    out = []
    for e in exc.errors():
        raw_loc = list(e["loc"])
        loc = drop_loc(raw_loc) if drop_loc else raw_loc
        # pydantic inserts validator and union member names into locations; keep field names and indices only
        loc = [x for x in loc if not (isinstance(x, str) and ("[" in x or x in ("float", "int", "str", "function-after")))]
        key = ".".join(str(x) for x in loc) or "(top level)"
        origin = fname(key) if callable(fname) else fname
        if e["type"] == "extra_forbidden":
            allowed = allowed_keys(root, tuple(loc[:-1]), resolve_union) if root is not None else []
            rule = f"unknown key{did_you_mean(str(loc[-1]), allowed)}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
            out.append(Problem(origin, key, "", rule))
            continue
        value = e.get("input")
        shown = "" if e["type"] == "missing" else _show(value)
        rule = _rule(e)
        if e["type"] in ("int_type", "float_type") and isinstance(value, str):
            rule += " (a number without quotes)"
        out.append(Problem(origin, key, shown, rule))
    return out
