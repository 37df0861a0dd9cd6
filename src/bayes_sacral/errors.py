"""Error types: every input problem names the file, the location, the value and the rule."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Problem", "InputError", "BayesSacralError"]


class BayesSacralError(Exception):
    """Base class of errors the CLI reports without a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file.

    Parameters
    ----------
    file : str
        The file the problem is in.
    location : str
        Where in the file: ``row 4 (line 5), column 'msts_post'`` or a key path ``sampler.draws``.
    value : str
        The offending value as written (``repr``-like), or ``""`` when something is missing.
    rule : str
        The rule it breaks, phrased so the reader knows what is allowed.
    """

    file: str
    location: str
    value: str
    rule: str

    def __str__(self) -> str:
        val = f": value {self.value}" if self.value != "" else ""
        return f"{self.file}: {self.location}{val}: {self.rule}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "location": self.location, "value": self.value, "rule": self.rule}


@dataclass
class InputError(BayesSacralError):
    """Invalid input: carries every problem found in one pass (exit code 2)."""

    problems: list[Problem] = field(default_factory=list)
    exit_code = 2

    def __post_init__(self):
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
