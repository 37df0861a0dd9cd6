"""Run configs: every bad config fails with its key path, value and rule (exit 2); defaults validate; overrides and sweeps."""

from pathlib import Path

import pytest

from bayes_sacral.config import (
    config_to_toml,
    defaults_toml,
    load_config,
    load_configs,
    parse_set,
    resolve,
)
from bayes_sacral.errors import InputError
from bayes_sacral.models import KINDS

BAD = Path(__file__).parent / "data" / "bad_configs"
CONFIGS = Path(__file__).parents[1] / "configs"

EXPECTED = {  # file -> (key path, fragment of the rule)
    "unknown_key.toml": ("sampler.draw", "did you mean 'draws'"),
    "wrong_type.toml": ("sampler.draws", "whole number"),
    "float_draws.toml": ("sampler.draws", "not 2000.0"),
    "out_of_range.toml": ("sampler.target_accept", "less than 1"),
    "unknown_kind.toml": ("model.kind", "did you mean 'secondary_procedures'"),
    "unknown_prior_set.toml": ("priors.set", "did you mean 'jeffreys'"),
    "bad_prior_family.toml": ("priors.p_event", "does not fit"),
    "bad_prior_value.toml": ("priors.p_event", "alpha must be > 0"),
    "unknown_prior_param.toml": ("priors.p_evnet", "did you mean 'p_event'"),
    "unknown_outcome.toml": ("model.outcome", "did you mean 'secondary_procedure'"),
    "outcome_of_other_kind.toml": ("model.outcome", "is a event outcome"),
    "ambiguous_outcome.toml": ("model.outcome", "several event outcomes"),
    "missing_card.toml": ("data.study", "no such study card"),
    "missing_seed.toml": ("run.seed", "required"),
    "ipd_without_path.toml": ("data.path", "needs a path"),
    "syntax_error.toml": ("TOML syntax", "line 2"),
    "bad_model_option.toml": ("model.variant", "ordered_logit"),
    "bad_sweep.toml": ("priors.set", "flat"),
}


def test_every_bad_config_is_covered():
    assert {p.name for p in BAD.glob("*.toml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_message(name):
    key, fragment = EXPECTED[name]
    with pytest.raises(InputError) as exc:
        load_configs(BAD / name)
    text = str(exc.value)
    assert any(p.location.startswith(key) for p in exc.value.problems), text
    assert fragment in text
    assert all(p.file.endswith(name) for p in exc.value.problems)


@pytest.mark.parametrize("name", ["unknown_key.toml", "bad_prior_value.toml", "syntax_error.toml"])
def test_cli_exit_code_2(cli, name):
    r = cli("config", "validate", BAD / name)
    assert r.code == 2 and EXPECTED[name][0] in r.err


def test_out_of_range_reports_all_problems():
    with pytest.raises(InputError) as exc:
        load_configs(BAD / "out_of_range.toml")
    assert {p.location for p in exc.value.problems} == {"sampler.target_accept", "sampler.chains"}


@pytest.mark.parametrize("kind", sorted(KINDS) + ["secondary_procedures", "msts"])
def test_defaults_are_complete_and_valid(kind, tmp_path):
    text = defaults_toml(kind)
    p = tmp_path / "c.toml"
    p.write_text(text)
    run = load_config(p)
    assert run.kind.name == {"secondary_procedures": "events", "msts": "score"}.get(kind, kind)
    for key in ("draws", "tune", "chains", "target_accept", "backend", "seed", "source", "set"):
        assert f"{key} =" in text


def test_canonical_configs_validate():
    files = sorted(CONFIGS.glob("*.toml"))
    assert files
    for f in files:
        assert load_configs(f)


def test_reading_configs_does_not_load_the_sampler(fresh_python):
    """Loading, resolving and printing configs (what `config validate` and `config defaults` do before any data check)
    imports neither PyMC/PyTensor nor scipy.stats: the model kinds import them when they build a model (a fresh process;
    `config defaults` took 1.7 s with them, 0.8 s without). A model is still built afterwards in the same process."""
    code = ("import sys\nfrom bayes_sacral.config import defaults_toml, load_configs\n"
            f"runs = [r for f in sorted(__import__('pathlib').Path({str(CONFIGS)!r}).glob('*.toml')) for r in load_configs(f)]\n"
            "assert len(runs) > 10 and defaults_toml('msts')\n"
            "heavy = {'pymc', 'pytensor', 'scipy.stats', 'scipy.optimize', 'numba', 'nutpie'} & set(sys.modules)\n"
            "assert not heavy, sorted(heavy)\n"
            "from bayes_sacral.fitting import build_run_model, prepare_run\n"
            "run = next(r for r in runs if r.config.run.name == 'msts-domains')\n"
            "m = build_run_model(run, prepare_run(run)[0])\nassert 'domain_effect_points' in m.named_vars\n")
    fresh_python(code)


ROOT = Path(__file__).parents[1]
DOCS = {"study card": ROOT / "examples" / "odi-study" / "card.toml", "run config": CONFIGS / "msts_domains.toml",
        "design config": CONFIGS / "designs" / "msts_followup.toml"}


@pytest.mark.parametrize("given", list(DOCS))
@pytest.mark.parametrize("expected", list(DOCS))
def test_another_kind_of_input_is_one_problem(given, expected):
    """A study card, run config or design config read as another kind is one problem naming what it is and what to do
    with it (it was a list of every table the schema did not know); the right kind still loads."""
    from bayes_sacral.design.config import load_design
    from bayes_sacral.study.card import load_card

    load = {"study card": load_card, "run config": load_configs, "design config": load_design}[expected]
    if given == expected:
        assert load(DOCS[given])
        return
    with pytest.raises(InputError) as exc:
        load(DOCS[given])
    (p,) = exc.value.problems
    assert p.location == "file" and f"is a {given} (it has [" in p.rule and f"not a {expected}" in p.rule
    assert {"study card": "--study", "run config": "bayes-sacral fit", "design config": "bayes-sacral design"}[given] in p.rule


def test_a_config_with_its_own_tables_still_gets_every_key_problem(tmp_path):
    """A run config that also carries design tables by mistake is validated key by key, not refused as a design."""
    p = tmp_path / "c.toml"
    p.write_text(defaults_toml("secondary_procedures") + "\n[design]\nname = 'x'\n[truth]\nsigma = 1.0\n")
    with pytest.raises(InputError) as exc:
        load_config(p)
    assert {q.location for q in exc.value.problems} == {"design", "truth"}


def test_set_overrides_are_typed_and_validated(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(defaults_toml("secondary_procedures"))
    run = load_config(p, ["priors.set=jeffreys", "run.seed=7", "sampler.draws=300", 'priors.p_event={dist="Beta",alpha=2,beta=3}'])
    assert run.prior_set == "jeffreys" and run.config.run.seed == 7 and run.config.sampler.draws == 300
    assert run.priors["p_event"].params == {"alpha": 2, "beta": 3} and run.overridden == ["p_event"]
    with pytest.raises(InputError) as exc:
        load_config(p, ["sampler.draws=-5"])
    assert exc.value.problems[0].file == "--set sampler.draws=-5" and exc.value.problems[0].location == "sampler.draws"
    with pytest.raises(InputError):
        parse_set(["no-equals-sign"])


def test_sweep_expands_with_distinct_names():
    runs = load_configs(CONFIGS / "secondary_procedures.toml")
    assert [r.prior_set for r in runs] == ["uniform", "jeffreys", "skeptical", "literature"]
    assert len({r.config.run.name for r in runs}) == 4


def test_set_on_a_swept_key_replaces_the_sweep():
    runs = load_configs(CONFIGS / "secondary_procedures.toml", ["priors.set=jeffreys"])
    assert [r.prior_set for r in runs] == ["jeffreys"]


def test_resolved_config_refits_the_same_model(tmp_path):
    run = load_configs(CONFIGS / "secondary_procedures.toml")[3]  # literature: per-arm table parameters
    text = config_to_toml(run)
    p = tmp_path / "resolved.toml"
    p.write_text(text)
    again = load_config(p)
    assert again.priors["p_event"].params == run.priors["p_event"].params
    assert again.config.sampler == run.config.sampler and again.config.run == run.config.run


def test_prior_table_must_name_dim_labels():
    doc = {"run": {"name": "x", "seed": 1}, "model": {"kind": "secondary_procedures"},
           "priors": {"p_event": {"dist": "Beta", "alpha": {"psfs": 1, "sacro": 1}, "beta": 1}}}
    with pytest.raises(InputError) as exc:
        resolve(doc)
    assert "every label" in str(exc.value)


def test_threshold_variables_checked():
    doc = {"run": {"name": "x", "seed": 1}, "model": {"kind": "secondary_procedures"},
           "decision": {"thresholds": {"t": {"value": 0.1, "variables": ["risk_diference"]}}}}
    with pytest.raises(InputError) as exc:
        resolve(doc)
    assert "did you mean 'risk_difference'" in str(exc.value)


def test_field_docs_read_what_pydantic_reads_from_attribute_docstrings():
    """validation.field_docs (read when the commented config asks, not at import) gives the docstrings pydantic's
    use_attribute_docstrings gives, inherited fields and multi-line ones included; a field without one is absent."""
    from pydantic import BaseModel, ConfigDict

    from bayes_sacral.validation import field_docs

    class Base(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        seed: int = 1
        """Seed of the run."""
        name: str = "x"

    class Child(Base):
        model_config = ConfigDict(use_attribute_docstrings=True)
        draws: int = 1000
        """Draws per chain.

            Kept after tuning."""
        chains: int = 4
        tune: int = 1000
        """Tuning iterations."""

    class PlainBase(BaseModel):
        seed: int = 1
        """Seed of the run."""
        name: str = "x"

    class Plain(PlainBase):
        draws: int = 1000
        """Draws per chain.

            Kept after tuning."""
        chains: int = 4
        tune: int = 1000
        """Tuning iterations."""

    expected = {n: f.description for n, f in Child.model_fields.items() if f.description}
    assert set(expected) == {"seed", "draws", "tune"}
    assert field_docs(Plain) == expected


def test_every_config_key_with_a_docstring_is_explained_in_the_commented_config():
    """The commented config (`bayes-sacral config defaults KIND`) carries each documented key's docstring above it."""
    from bayes_sacral.config import RunSection, SamplerSection
    from bayes_sacral.validation import field_docs

    text = defaults_toml("msts")
    for cls in (RunSection, SamplerSection, KINDS["score"].options_class):
        docs = field_docs(cls)
        assert docs, cls
        for doc in docs.values():
            assert f"# {doc.splitlines()[0].strip()}" in text
