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
           "remove_stale"]

#: Prefix of every temporary path; such paths are never mistaken for finished outputs.
TMP_PREFIX = ".bs-tmp-"


class TargetExists(FileExistsError):
    """The final path appeared while the output was being written (another process finished first)."""


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-filesystem temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place on success.

    Parameters
    ----------
    path : path-like
        The final directory.
    overwrite : bool, default False
        Replace an existing directory at ``path``. Without it an existing directory is an error, checked at the start
        and again, exclusively, at the final rename (:class:`TargetExists`).

    Yields
    ------
    Path
        The temporary directory to fill (mode 0755 under the usual umask). On an exception it is removed and ``path``
        is untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise TargetExists(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_name(path), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if not any(tmp.iterdir()):
            (tmp / ".complete").write_text("")  # an empty folder could be renamed over an existing empty one
        if not overwrite:
            _rename_exclusive(tmp, path)
        elif path.exists():
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
