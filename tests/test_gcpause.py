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
