"""Atomic outputs: write to a temporary sibling path, then rename, so a crash leaves nothing half-written.

A finished folder is never replaced silently: without ``overwrite`` the final rename refuses an existing target (two
processes writing the same run at the same time: the second one gets :class:`TargetExists`). Temporary paths carry the
writing process's id, so those left behind by a killed process can be listed and removed (:func:`stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_directory", "TMP_PREFIX", "TargetExists", "stale_temporaries",
           "remove_stale", "NotReplaceable", "output_folder_problem", "writable_folder_problem", "check_output_folder"]

#: Prefix of every temporary path; such paths are never mistaken for finished outputs.
TMP_PREFIX = ".bs-tmp-"


class TargetExists(FileExistsError):
    """The final path appeared while the output was being written (another process finished first)."""


class NotReplaceable(TargetExists):
    """The path holds something that is not an earlier output of this kind (a file, or a folder without its marker)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_name(path: Path) -> str:
    return f"{TMP_PREFIX}{path.name}.{os.getpid()}."


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    fd, name = tempfile.mkstemp(prefix=_tmp_name(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (where a missing folder would be created)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _output_error(path: Path, exc: OSError):
    """The :class:`~bayes_sacral.errors.OutputError` for an output that could not be written at ``path``."""
    from .errors import OutputError

    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        return OutputError(f"cannot write {path}: {existing} is a file, not a folder")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-filesystem temp file + ``os.replace``). A location that cannot be
    written raises :class:`~bayes_sacral.errors.OutputError` naming it, and leaves nothing behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(path)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def _rename_exclusive(src: Path, dst: Path) -> None:
    """Rename a non-empty folder into place; fails (TargetExists) when ``dst`` exists: POSIX rename refuses a non-empty
    target folder, and an existing file or empty folder is checked just before."""
    if dst.exists() and not (dst.is_dir() and not any(dst.iterdir())):
        raise TargetExists(f"{dst} already exists")
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise TargetExists(f"{dst} already exists") from None
        raise


def _can_create_in(parent: Path) -> str | None:
    """None when a folder can be made in ``parent`` (or, when it does not exist yet, in its nearest existing ancestor,
    where it would be created), else why not. Creates nothing: a probe folder is made and removed at once."""
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        return f"cannot be created: {existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=TMP_PREFIX + "probe.", dir=existing))
    except OSError as exc:
        return f"cannot be written in {existing}: {exc.strerror or exc}"
    return None


def _replace_refusal(path: Path, marker: str | None) -> str | None:
    """Why the existing ``path`` must not be replaced by an output folder, or None."""
    if not (path.exists() or path.is_symlink()):
        return None
    if path.is_symlink():
        return "is a symbolic link; it is never replaced (give the folder it points to, or a new folder)"
    if not path.is_dir():
        return "exists and is not a folder; it is never replaced (choose a folder name)"
    if marker is not None and not (path / marker).exists():
        try:
            empty = not any(path.iterdir())
        except OSError as exc:
            return f"cannot be read: {exc.strerror or exc}"
        if not empty:
            return (f"is a folder that holds no earlier output of this kind (no {marker} in it), so it is never replaced; "
                    "choose a new or empty folder")
    return None


def output_folder_problem(path: str | os.PathLike, marker: str | None = None) -> str | None:
    """Why an output folder cannot be written at ``path`` by :func:`atomic_directory` with ``overwrite`` (replacing an
    earlier one), or None when it can: checked before the work that fills it, so a mistyped path costs nothing.

    ``marker`` is a file every earlier output of this kind holds (a report's ``report.md``, a run's ``manifest.json``):
    an existing path that is not a folder, or a non-empty folder without the marker, is someone's files and is never
    replaced. The parent folder must be one that a folder can be created in."""
    path = Path(path)
    return _replace_refusal(path, marker) or _can_create_in(path.parent)


def writable_folder_problem(path: str | os.PathLike) -> str | None:
    """Why outputs cannot be written into the folder ``path`` (a run store, a design folder: created when missing, never
    replaced), or None when they can. Creates nothing."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        return "exists and is not a folder"
    return _can_create_in(path)


def check_output_folder(path: str | os.PathLike, option: str, what: str, marker: str | None = None, into: bool = False) -> None:
    """Raise an :class:`~bayes_sacral.errors.InputError` naming ``option`` when ``path`` cannot take this output: a
    folder replaced by :func:`atomic_directory` (:func:`output_folder_problem` with ``marker``), or with ``into`` a
    folder written into (:func:`writable_folder_problem`). ``what`` names the folder in the message."""
    problem = writable_folder_problem(path) if into else output_folder_problem(path, marker)
    if problem is not None:
        from .errors import InputError, Problem

        raise InputError([Problem(str(path), option, str(path), f"the {what} {problem}")])


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place on success.

    Parameters
    ----------
    path : path-like
        The final directory.
    overwrite : bool, default False
        Replace an existing directory at ``path``. Without it an existing directory is an error, checked at the start
        and again, exclusively, at the final rename (:class:`TargetExists`).
    marker : str, optional
        A file every earlier output of this kind holds: with ``overwrite``, a non-empty directory without it is not
        replaced (:class:`TargetExists`). A path that is not a directory is never replaced.

    Yields
    ------
    Path
        The temporary directory to fill (mode 0755 under the usual umask). On an exception it is removed and ``path``
        is untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise TargetExists(f"{path} already exists; refusing to overwrite it")
    refusal = _replace_refusal(path, marker if overwrite else None)
    if refusal is not None:
        raise NotReplaceable(f"{path} {refusal}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_name(path), dir=path.parent))
    except OSError as exc:
        raise _output_error(path, exc) from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if not any(tmp.iterdir()):
            (tmp / ".complete").write_text("")  # an empty folder could be renamed over an existing empty one
        if not overwrite:
            _rename_exclusive(tmp, path)
        elif path.exists() or path.is_symlink():
            refusal = _replace_refusal(path, marker)  # again: it may have changed while the output was being written
            if refusal is not None:
                raise NotReplaceable(f"{path} {refusal}")
            # Swap: move the old one aside first so there is never a moment with a half-copied tree.
            old = Path(tempfile.mkdtemp(prefix=_tmp_name(path) + "old.", dir=path.parent))
            old.rmdir()
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_of(p: Path) -> int | None:
    """The writing process of a temporary path (the number after the final name), or None if it carries none."""
    rest = p.name[len(TMP_PREFIX):].split(".")
    for part in reversed(rest[:-1]):
        if part.isdigit():
            return int(part)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(folder: str | os.PathLike, min_age_s: float = 0.0) -> list[Path]:
    """Temporary paths in ``folder`` left by processes that no longer run (or that carry no process id and are older
    than ``min_age_s``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    now = time.time()
    for p in sorted(folder.iterdir()):
        if not p.name.startswith(TMP_PREFIX):
            continue
        pid = _pid_of(p)
        if pid == os.getpid():
            continue
        if (pid is not None and not _alive(pid)) or (pid is None and now - p.stat().st_mtime > min_age_s):
            out.append(p)
    return out


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the stale temporaries of ``folder`` (see :func:`stale_temporaries`); returns what was removed."""
    removed = []
    for p in stale_temporaries(folder, min_age_s=3600):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
