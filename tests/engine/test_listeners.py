"""Listeners declare the action phases they want; a phase nobody wants costs no event."""

from __future__ import annotations

import asyncio

import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from flyte_nb.engine.listeners import Listeners

env = flyte.TaskEnvironment("listeners")


@env.task
async def leaf(x: int) -> int:
    await asyncio.sleep(0)
    return x


@env.task
async def fan() -> int:
    return sum(await asyncio.gather(*(leaf(i) for i in range(5))))


class Picky:
    """Hears only what it asks for, unless another listener wants more."""

    phases = (Phase.RUNNING, Phase.SUCCEEDED)

    def __init__(self) -> None:
        self.heard: list[Phase | None] = []

    def __call__(self, event: flyte.Event) -> None:
        self.heard.append(event.phase)


def test_a_phase_no_listener_wants_is_not_delivered():
    picky = Picky()
    run = flyte.with_runcontext(listeners=[picky]).run(fan)
    assert run.outputs(timeout=10) == 10
    action_phases = [p for p in picky.heard if p is not None]
    assert Phase.QUEUED not in action_phases
    assert action_phases.count(Phase.RUNNING) == 6 and action_phases.count(Phase.SUCCEEDED) == 6
    assert picky.heard.count(None) >= 2  # the run's own events go to every listener


def test_a_listener_that_declares_nothing_hears_every_phase():
    picky, everything = Picky(), []
    run = flyte.with_runcontext(listeners=[picky, everything.append]).run(fan)
    assert run.outputs(timeout=10) == 10
    assert [e.phase for e in everything].count(Phase.QUEUED) == 6
    assert picky.heard.count(Phase.QUEUED) == 6  # built for the other one: the picky one ignores it


def test_wants_follows_every_change_of_the_list():
    picky = Picky()
    listeners = Listeners([picky])
    assert not listeners.wants[Phase.QUEUED] and listeners.wants[Phase.RUNNING] and not listeners.wants[Phase.FAILED]
    listeners.append(print)
    assert all(listeners.wants) and listeners.snapshot == (picky, print)
    listeners.remove(print)
    assert not listeners.wants[Phase.QUEUED] and listeners.snapshot == (picky,)
    listeners.clear()
    assert not any(listeners.wants) and listeners.snapshot == ()
    listeners += [print]
    assert all(listeners.wants)


class Hooked(Picky):
    """Hears its action phases through ``on_action``, with no event built for it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, Phase, object]] = []

    def on_action(self, action, phase, data) -> None:
        self.calls.append((action.number, phase, data))


def test_a_hooked_listener_hears_its_phases_with_no_event_built(monkeypatch):
    from flyte_nb.engine import run_state

    built = []
    real = run_state.Event
    monkeypatch.setattr(run_state, "Event", lambda *a, **k: built.append(a[3]) or real(*a, **k))
    hooked = Hooked()
    run = flyte.with_runcontext(listeners=[hooked]).run(fan)
    assert run.outputs(timeout=10) == 10
    phases = [phase for _, phase, _ in hooked.calls]
    assert phases.count(Phase.RUNNING) == 6 and phases.count(Phase.SUCCEEDED) == 6 and Phase.QUEUED not in phases
    assert sorted(data for _, phase, data in hooked.calls if phase is Phase.SUCCEEDED) == [0, 1, 2, 3, 4, 10]
    assert [phase for phase in built if phase is not None] == [] and hooked.heard.count(None) >= 2  # the run's own still come
    listeners = Listeners([hooked])
    assert listeners.hooks == (hooked.on_action,) and not any(listeners.wants) and listeners.hooked[Phase.RUNNING]


def test_a_kernel_wide_hooked_listener_hears_every_run(monkeypatch):
    from flyte_nb.engine.events import subscribe

    monkeypatch.setenv("FLYTE_NB_STORE", "off")  # no listener of the run's own (the store's) hears anything
    hooked = Hooked()
    stop = subscribe(hooked)
    try:
        assert flyte.run(fan).outputs(timeout=10) == 10
    finally:
        stop()
    assert [phase for _, phase, _ in hooked.calls].count(Phase.SUCCEEDED) == 6


class Failing(Hooked):
    def on_action(self, action, phase, data) -> None:
        raise RuntimeError("broken listener")


def test_a_failing_hook_is_dropped_with_a_warning_and_the_run_goes_on():
    failing = Failing()
    with pytest.warns(UserWarning, match="failed and was removed"):
        run = flyte.with_runcontext(listeners=[failing]).run(fan)
        assert run.outputs(timeout=10) == 10
