"""Error types: every input problem names the file, the location, the value and the rule."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Problem", "InputError", "BayesSacralError", "FitFailed", "OutputError", "cap_problems", "MAX_PER_KIND"]

#: At most this many problems of one kind are listed; the rest are counted.
MAX_PER_KIND = 20


class BayesSacralError(Exception):
    """Base class of errors the CLI reports in one line without a traceback: a request that cannot be met as given
    (exit code 2, like bad input); see :class:`FitFailed` for exit code 1."""

    exit_code = 2


class OutputError(BayesSacralError):
    """An output cannot be written where it was asked for (a folder that cannot be created or written, a file in the
    way): names the path and the reason (exit code 2)."""


class FitFailed(BayesSacralError):
    """A fit that ran but failed (exit code 1)."""

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
    kind: str = field(default="", compare=False, repr=False)
    """Groups problems of the same kind (for capping long lists); not shown."""

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


def cap_problems(problems: list[Problem], per_kind: int = MAX_PER_KIND) -> list[Problem]:
    """The first ``per_kind`` problems of each kind (in order), then one line per kind saying how many more there are."""
    counts: dict[str, int] = {}
    kept: list[Problem] = []
    for p in problems:
        k = p.kind or p.rule
        counts[k] = counts.get(k, 0) + 1
        if counts[k] <= per_kind:
            kept.append(p)
    extra = [(k, n - per_kind) for k, n in counts.items() if n > per_kind]
    for k, more in extra:
        first = next(p for p in problems if (p.kind or p.rule) == k)
        kept.append(Problem(first.file, "...", "", f"and {more:,} more problem{'s' if more != 1 else ''} of this kind ({k})", kind=k))
    return kept
