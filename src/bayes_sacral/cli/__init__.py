"""The ``bayes-sacral`` command line."""

from __future__ import annotations

import sys

from ..errors import BayesSacralError
from ._app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the typer app, turning known errors into a message and an exit code."""
    from ._output import err_console

    try:
        rc = app(args=argv, prog_name="bayes-sacral", standalone_mode=False)
    except BayesSacralError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:  # typer's own exits (e.g. --help)
        return int(exc.code or 0)
    except KeyboardInterrupt:
        err_console.print("interrupted; no partial output was written")
        return 130
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            err_console.print("aborted")
            return 1
        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
