"""Python's cyclic garbage collector held off during a fit, and skipped over at the exit of our own processes.

A fit imports PyMC, PyTensor, numba and ArviZ and builds PyTensor graphs: millions of long-lived objects. Each
automatic collection of the oldest generation walks all of them, and the interpreter walks them once more at shutdown.
Measured on the 30-patient MSTS fit in a fresh process (2-core machine), that is about 0.6 s during the fit and 0.9 s
at exit, a quarter of the process's wall time.

- :func:`paused` holds automatic collection off for one block (a fit) and restores the caller's setting afterwards.
  The garbage a fit leaves is collected by the next automatic collection as usual; peak memory grows by a few MB
  (403 -> 409 MB on that fit; the per-item model with its 10 reconstructions: 713 MB without the pause, 702 MB with it).
- :func:`freeze_for_exit` moves every object into the collector's permanent generation just before one of *our*
  processes exits (the console command, a worker), so that shutdown does not walk them. It is never called from the
  library API: a user's process keeps its normal shutdown.
- A pause defers work rather than removing all of it: everything allocated inside the block is in the youngest
  generation when it ends, and the first collection after it walks all of that (0.12 s after the MSTS example's fit,
  0.04 s after importing the package). In the console command's process (:func:`console_command`), a block marked
  ``last`` (the command's final work: a fit and its write) freezes what it leaves alive instead, as the exit would.
"""

from __future__ import annotations

import contextlib
import gc
import threading

__all__ = ["paused", "freeze_for_exit", "console_command"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False
_freeze_at_release = False
_console = False


def console_command() -> None:
    """Called by the ``bayes-sacral`` console command before it runs: its process ends when the command returns."""
    global _console
    _console = True


@contextlib.contextmanager
def paused(last: bool = False):
    """Hold automatic cyclic garbage collection off inside the block; nested and concurrent blocks are safe (the
    collector is re-enabled when the last block ends, and only if it was enabled when the first one began).

    ``last``: the block is the console command's final work; in its process, what the block leaves alive is frozen
    when the pause ends (see the module docstring). Anywhere else (the library, tests calling the CLI in-process) it
    changes nothing."""
    global _depth, _was_enabled, _freeze_at_release
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
        _freeze_at_release = _freeze_at_release or (last and _console)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                if _freeze_at_release:
                    gc.freeze()
                    _freeze_at_release = False
                if _was_enabled:
                    gc.enable()


def freeze_for_exit() -> None:
    """Called by our own processes right before they exit: shutdown then skips the collector's walk over every live
    object (Python does not promise to finalize objects that are alive at exit; files are flushed by their owners)."""
    gc.freeze()
