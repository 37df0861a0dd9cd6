"""The collector held off during a fit and given back afterwards, whatever the caller had set."""

import gc
import threading

import pytest

from bayes_sacral import gcpause


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_restores_the_callers_setting_nested_and_after_an_error():
    gc.enable()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("a failed fit")
    assert gc.isenabled()
    gc.disable()  # a caller who turned it off keeps it off
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_concurrent_blocks_reenable_only_when_the_last_one_ends():
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def other():
        with gcpause.paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with gcpause.paused():
        pass
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_a_fit_leaves_the_collector_as_it_found_it():
    import bayes_sacral as bs

    gc.enable()
    seen = []
    bs.fit({"run": {"name": "g", "seed": 1}, "model": {"kind": "events", "outcome": "secondary_procedure"},
            "sampler": {"draws": 50, "tune": 50, "chains": 1, "prior_draws": 0}}, data=bs.load_study(),
           log=lambda m: seen.append(gc.isenabled()))
    assert seen and not any(seen)  # held off while fitting
    assert gc.isenabled()


def test_last_freezes_only_in_the_console_commands_process(fresh_python):
    before = gc.get_freeze_count()
    with gcpause.paused(last=True):  # this test process is not the console command: nothing is frozen
        junk = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == before and gc.isenabled() and junk
    code = ("import gc\nfrom bayes_sacral import gcpause\n"
            "base = gc.get_freeze_count()\n"
            "gcpause.console_command()\n"
            "with gcpause.paused(last=True):\n    with gcpause.paused():\n        kept = [[i] for i in range(1000)]\n"
            "    assert gc.get_freeze_count() == base  # only when the outermost block ends\n"
            "print(gc.get_freeze_count() > base + 1000, gc.isenabled())\n")
    assert fresh_python(code).stdout.split() == ["True", "True"]


def test_importing_the_package_leaves_the_collector_as_it_found_it(fresh_python):
    for setting in ("enable", "disable"):
        out = fresh_python(f"import gc\ngc.{setting}()\nimport bayes_sacral\nprint(gc.isenabled())\n").stdout.strip()
        assert out == str(setting == "enable")
