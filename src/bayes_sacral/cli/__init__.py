"""The ``bayes-sacral`` command line: a thin layer over the Python API with one error path.

Exit codes: 0 success; 1 a failed fit (``--strict``), failed checks or an unexpected error; 2 bad input or usage (every
problem named with its option, file, key path or row/column, value and rule). No traceback is printed unless
``--debug`` is given.
"""

from __future__ import annotations

import sys

from ..errors import BayesSacralError, InputError
from ..gcpause import console_command, freeze_for_exit, paused
from ..oneshot import declare_no_dask_arrays

with paused():  # typer, click and rich: long-lived objects, as in the package's own imports (see gcpause)
    from .app import app

__all__ = ["app", "main"]


def _usage_error_types() -> tuple[type, ...]:
    types: list[type] = []
    try:
        from typer._click import exceptions as tc

        types.append(tc.ClickException)
    except ImportError:  # pragma: no cover - typer without its vendored click
        pass
    try:
        import click

        types.append(click.exceptions.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _usage_message(exc) -> str:
    """One line naming the option or argument: click's message without its 'Try --help' footer."""
    msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    msg = " ".join(str(msg).split()).replace("Value error, ", "").replace("Input should be", "must be")
    cmd = getattr(getattr(exc, "ctx", None), "command_path", None)
    return f"{msg} (see `{cmd} --help`)" if cmd else msg


def _print_error(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; every error becomes one message and an exit code (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    usage = _usage_error_types()
    try:
        rc = app(args=args, prog_name="bayes-sacral", standalone_mode=False)
    except InputError as exc:
        _print_error(f"error: {exc}")
        return 2
    except FileExistsError as exc:  # an output that another process finished first (atomic.TargetExists)
        _print_error(f"error: {exc}; nothing was replaced")
        return 2
    except BayesSacralError as exc:
        _print_error(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted; no partial output was written")
        return 130
    except SystemExit as exc:  # typer's own exits (e.g. --help)
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    except Exception as exc:
        name = type(exc).__name__
        if usage and isinstance(exc, usage):
            if name == "NoArgsIsHelpError":  # a command group given no command: its help, laid out as --help lays it out
                _print_error(exc.format_message().rstrip())
                return 2
            _print_error(f"error: {_usage_message(exc)}")
            return 2
        if name == "Exit":
            return int(getattr(exc, "exit_code", 0) or 0)
        if name == "Abort":
            _print_error("aborted")
            return 1
        if debug:
            raise
        text = " ".join(str(exc).split()) or "(no message)"
        _print_error(f"error: unexpected {name}: {text[:500]}\nre-run with --debug for the traceback")
        return 1
    return rc if isinstance(rc, int) else 0


def entry() -> int:
    """The console command: :func:`main`, then the process exits without the collector's walk over every object."""
    console_command()
    declare_no_dask_arrays()
    rc = main()
    freeze_for_exit()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
