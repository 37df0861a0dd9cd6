"""A small pool of worker processes for independent jobs: the runs of a reanalysis, the figures of a report.

The workers are plain ``python -m bayes_sacral.workers`` subprocesses fed through pipes, not a ``multiprocessing``
pool: they never import the caller's ``__main__`` (a script or a notebook needs no ``if __name__ == "__main__"``
guard) and never fork a process that already runs sampler or BLAS threads. A job is a module-level function and its
arguments, pickled; its return value or exception comes back pickled. Each worker runs one job at a time and lives as
long as the pool, so a compiled model or an import is paid once per worker, not once per job.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["WorkerPool", "WorkerError", "available_cores"]

_LEN = struct.Struct("<Q")


class WorkerError(RuntimeError):
    """A worker process ended without answering, or its job raised an exception that could not be sent back."""


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _read_exactly(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


class _Worker:
    def __init__(self, env: dict[str, str] | None):
        # stderr to a file, not a pipe: output nobody reads must not fill a pipe and stall the worker
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "bayes_sacral.workers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env={**os.environ, **(env or {})})

    def call(self, fn, args: tuple, what: str):
        msg = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_LEN.pack(len(msg)) + msg)
            self.proc.stdin.flush()
            ok = _read_exactly(self.proc.stdout, 1)
            body = _read_exactly(self.proc.stdout, _LEN.unpack(_read_exactly(self.proc.stdout, _LEN.size))[0])
        except (EOFError, OSError) as exc:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.err.seek(0)
            lines = self.err.read().decode("utf-8", "replace").strip().splitlines()
            raise WorkerError(f"the worker process for {what} ended without an answer (exit status {self.proc.returncode}): "
                              f"{lines[-1] if lines else exc}") from None
        result = pickle.loads(body)
        if ok == b"1":
            return result
        raise result

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


class WorkerPool:
    """At most ``workers`` subprocesses, started on first use; :meth:`submit` returns a :class:`~concurrent.futures.Future`.

    ``env`` is added to each worker's environment (e.g. thread counts). Use as a context manager: leaving it waits
    for the submitted jobs (cancelling those not started when leaving on an exception) and stops the workers.
    """

    def __init__(self, workers: int, env: dict[str, str] | None = None):
        if workers < 1:
            raise ValueError(f"a worker pool needs at least one worker (got {workers})")
        self.workers = workers
        self.env = env
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="bayes-sacral-worker")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def _run(self, fn, args: tuple, what: str):
        try:
            w = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                w = _Worker(self.env)
                self._all.append(w)
        try:
            result = w.call(fn, args, what)
        except WorkerError:
            with self._lock:  # a dead worker is not reused
                self._all.remove(w)
            w.close()
            raise
        self._idle.put(w)
        return result

    def submit(self, fn, *args, what: str = "a job") -> Future:
        """Run ``fn(*args)`` in a worker; ``fn`` must be a module-level function and the arguments picklable."""
        return self._threads.submit(self._run, fn, args, what)

    def close(self, cancel: bool = False) -> None:
        self._threads.shutdown(wait=True, cancel_futures=cancel)
        with self._lock:
            for w in self._all:
                w.close()
            self._all.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


def _serve() -> None:
    """Worker loop: read length-prefixed (function, args) pickles on stdin, answer (status, length, pickle) on stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the answer stream
    inp = sys.stdin.buffer
    while True:
        try:
            n = _LEN.unpack(_read_exactly(inp, _LEN.size))[0]
        except EOFError:
            return
        try:
            fn, args = pickle.loads(_read_exactly(inp, n))
            result, ok = fn(*args), b"1"
            body = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - sent back to the caller, which raises it
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            ok = b"0"
            try:
                body = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(body)
            except Exception:  # noqa: BLE001 - an exception that does not round-trip is sent as text
                body = pickle.dumps(WorkerError(f"{type(exc).__name__}: {exc}"))
        out.write(ok + _LEN.pack(len(body)) + body)
        out.flush()


if __name__ == "__main__":
    from .gcpause import freeze_for_exit
    from .oneshot import declare_no_dask_arrays

    declare_no_dask_arrays()
    _serve()
    freeze_for_exit()
