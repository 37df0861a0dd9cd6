"""The on-disk cache: where it lives and the format of one entry, shared by the compiled-model cache
(:mod:`bayes_sacral.compiled`), the rendered-figure cache (:mod:`bayes_sacral.report.figure_cache`) and the remembered
diagnostics (:mod:`bayes_sacral.memo`).

An entry is one file: four magic bytes naming its kind, then a header (format, key, SHA-256 of the body, creation
time) and the pickled body. :func:`read_entry` raises :class:`ValueError` for a file of another kind, format or key,
or whose body does not match its checksum, so a corrupt, truncated, stale or colliding entry is never used (callers
delete and rebuild it). :func:`write_entry` writes a temporary file and renames it, so readers see the old entry or the
whole new one, never half of one.

The cache lives in ``$BAYES_SACRAL_CACHE`` (default ``$XDG_CACHE_HOME/bayes-sacral`` or ``~/.cache/bayes-sacral``) and is
safe to delete at any time (``bayes-sacral cache clear``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import time
from pathlib import Path

__all__ = ["cache_dir", "read_entry", "lookup", "write_entry", "prune"]


def cache_dir() -> Path:
    """``$BAYES_SACRAL_CACHE``, else ``$XDG_CACHE_HOME/bayes-sacral``, else ``~/.cache/bayes-sacral``. A location that
    is a file is an input error naming the variable (a folder that cannot be written only leaves things uncached)."""
    env = os.environ.get("BAYES_SACRAL_CACHE")
    xdg = os.environ.get("XDG_CACHE_HOME")
    path = Path(env).expanduser() if env else (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "bayes-sacral"
    if path.exists() and not path.is_dir():
        from .errors import InputError, Problem

        var = "BAYES_SACRAL_CACHE" if env else ("XDG_CACHE_HOME" if xdg else "HOME")
        raise InputError([Problem("environment", var, str(path), "the cache location is a file; it must be a folder (created when "
                                  "missing): point BAYES_SACRAL_CACHE at one")])
    return path


def read_entry(path: Path, magic: bytes, fmt: int, key: str):
    """The body of the entry at ``path``; :class:`ValueError` unless it is an intact entry of this kind, format and key."""
    raw = Path(path).read_bytes()
    if raw[:4] != magic:
        raise ValueError(f"not a bayes-sacral cache entry of kind {magic!r}")
    header_len = int.from_bytes(raw[4:8], "little")
    header = pickle.loads(raw[8:8 + header_len])
    body = raw[8 + header_len:]
    if header.get("format") != fmt or header.get("key") != key:
        raise ValueError("entry of another format or key")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise ValueError("entry is corrupt (checksum mismatch)")
    return pickle.loads(body)


def lookup(path: Path, magic: bytes, fmt: int, key: str, read_only: bool = False) -> tuple[bool, object]:
    """``(True, body)`` for an intact entry, touched as just used (for :func:`prune`); ``(False, None)`` when there is
    none. A damaged, stale or foreign entry is deleted (the caller computes the value again) and never returned.
    ``read_only``: an entry of a folder that is not the cache's (the package's prebuilt models) is neither touched nor
    deleted."""
    path = Path(path)
    try:
        body = read_entry(path, magic, fmt, key)
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except Exception:  # noqa: BLE001 - corrupt, truncated, stale or foreign: never used
        if read_only:
            return False, None
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return False, None
    if read_only:
        return True, body
    try:
        os.utime(path)
    except OSError:
        pass
    return True, body


def write_entry(path: Path, magic: bytes, fmt: int, key: str, payload, pickler: type[pickle.Pickler] = pickle.Pickler) -> None:
    """Write ``payload`` as the entry at ``path`` (atomically: a temporary file renamed over it). ``pickler``: a
    :class:`pickle.Pickler` subclass for payloads that need one (e.g. to leave out what cannot be pickled)."""
    path = Path(path)
    buf = io.BytesIO()
    pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    body = buf.getvalue()
    header = pickle.dumps({"format": fmt, "key": key, "sha256": hashlib.sha256(body).hexdigest(), "created": time.time()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(magic + len(header).to_bytes(4, "little") + header + body)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def prune(files, max_bytes: int) -> int:
    """Delete the least recently used of ``files`` (by modification time; readers touch what they use) until the rest
    fit in ``max_bytes``; returns how many were deleted."""
    stats = []
    for p in files:
        try:
            st = Path(p).stat()
        except OSError:
            continue
        stats.append((st.st_mtime, st.st_size, Path(p)))
    total = sum(size for _, size, _ in stats)
    n = 0
    for _, size, p in sorted(stats, key=lambda t: t[0]):
        if total <= max_bytes:
            break
        p.unlink(missing_ok=True)
        total -= size
        n += 1
    return n
