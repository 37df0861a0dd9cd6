"""The README's Python examples run as written (from the repository root), and print what the README shows."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_python_examples():
    assert len(_blocks()) >= 2


def test_readme_python_examples_run(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(ROOT)
    ns = {}
    for code in _blocks():
        exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own examples
    out = capsys.readouterr().out
    # what the README says the examples print (names and messages; the digits are the README's excerpt)
    for expected in ("Study('cox2025'", "risk_difference[pathological]", "risk_difference[myeloma]", "2 problems found",
                     "value 'Screws': unknown category; allowed: screws | cement; did you mean 'screws'?"):
        assert expected in out, expected
    assert (ns["folder"] / "idata.nc").is_file()
    assert ns["table"]["prob_benefit"].between(0, 1).all()


@pytest.mark.parametrize("module", ["bayes_sacral.api", "bayes_sacral.run", "bayes_sacral.study"])
def test_docstring_examples_run(module):
    """The numpydoc examples of the public API run as written."""
    import doctest
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
