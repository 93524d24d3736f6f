"""Every task call is an action of the kernel's engine, wherever its caller runs.

One suite, parametrised over backends (as anyio's tests are): the driver runs in the SAME
environment as its children, so on process/docker/dask it runs in a worker and each of its
calls travels back to the kernel, becomes a child action there and is placed on the callee's
backend. Overlap is measured from the bodies' own clock stamps.
"""

from __future__ import annotations

import os
import time

import pytest

import flyte_nb as flyte
from flyte_nb import Phase
from tests.backends.nesting_tasks import ArgError, build
from tests.backends.test_dask import cluster  # noqa: F401 - the fixture, shared
from tests.timeline import peak

BACKENDS = ["inline", "process", "docker", "docker-reuse", "dask"]
_built: dict[str, object] = {}


def _docker_problem() -> str | None:
    from flyte_nb.backends import docker

    try:
        client = docker._connect()
    except flyte.ConfigurationError as error:
        return str(error)
    try:
        return None if docker._exists(client, docker.BASE_IMAGE) else f"{docker.BASE_IMAGE} is missing: run scripts/docker-setup"
    finally:
        client.close()


def _options(backend: str) -> dict:
    if backend == "inline":
        return {"backend": "inline"}
    if backend == "process":
        return {"backend": "process", "concurrency": 8}
    problem = _docker_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker is not usable: {problem}")
        pytest.skip(f"Docker is not usable here: {problem}")
    from flyte_nb.backends.docker import BASE_IMAGE

    if backend == "docker":
        return {"backend": "docker", "image": BASE_IMAGE, "concurrency": 8}
    return {"backend": "docker", "image": BASE_IMAGE, "reusable": flyte.ReusePolicy(replicas=1, concurrency=6)}


@pytest.fixture(params=BACKENDS)
def tasks(request):
    backend = request.param
    if backend == "dask":
        request.getfixturevalue("cluster")  # a real scheduler and two workers
        if backend not in _built:
            _built[backend] = build("nest-dask", backend="dask", concurrency=8)
        tasks = _built[backend]
        tasks.slow = False
        return tasks
    if backend not in _built:
        _built[backend] = build(f"nest-{backend}", **_options(backend))
    tasks = _built[backend]
    tasks.slow = backend == "docker"  # a container per child: start-up is on the critical path
    return tasks


def _children(run, task: str) -> list:
    return [a for a in run.actions if a.task.endswith("." + task)]


@pytest.mark.parametrize("driver", ["under_semaphore", "under_map", "under_map_aio"])
def test_eight_half_second_children_three_at_a_time(tasks, driver):
    run = flyte.run(getattr(tasks, driver), 8)
    stamps = run.outputs(timeout=60)
    assert len(stamps) == 8
    children = [a for a in run.actions if a.parent is not None]
    assert peak((a.started_at, a.ended_at) for a in children) == 3  # as the kernel recorded them
    if tasks.slow:  # container start-up jitter can keep bodies from overlapping: never more than 3
        assert peak(stamps) <= 3
    else:
        assert peak(stamps) == 3
    bound = 1.5 + (20.0 if tasks.slow else 2.0)  # ideal 1.5 s; generous for a loaded machine
    assert max(e for _, e in stamps) - min(s for s, _ in stamps) < bound
    assert len(children) == 8 and all(a.parent is run.actions[0] and a.phase == Phase.SUCCEEDED for a in children)
    if driver != "under_semaphore":  # a map made where the driver runs: one group, n/N, under the driver
        (group,) = run.groups.values()
        assert (group.total, group.finished, group.parent) == (8, 8, run.actions[0])


def test_a_tag_throttle_serialises_only_the_tagged_children(tasks):
    run = flyte.with_runcontext(throttle={"print": 1}).run(tasks.speakers)
    ann, bob, cy = run.outputs(timeout=60)
    assert peak([ann, bob]) == 1
    recorded = [(a.started_at, a.ended_at) for a in run.actions if a.parent is not None]
    # the untagged one ran beside a tagged one: measured in the bodies, or (a container per child,
    # whose start-up jitter can exceed the 0.2 s bodies) in the actions the engine ran at once
    assert peak([ann, bob, cy]) == 2 or (tasks.slow and peak(recorded) == 2), recorded
    assert all(s.holders == 0 for s in run.statistics())


LIMITS = {"group A": 1, "group B": 2, "group C": 1}


def test_three_nested_tag_groups_are_all_respected(tasks):
    run = flyte.with_runcontext(throttle=LIMITS).run(tasks.tag_groups)
    results = run.outputs(timeout=60)
    assert len(results) == 12
    for tag, limit in LIMITS.items():
        letter = tag[-1]
        measured = peak((s, e) for label, s, e in results if letter in label)
        recorded = peak((a.started_at, a.ended_at) for a in run.actions if tag in a.tags)
        assert recorded == limit and (measured <= limit if tasks.slow else measured == limit), (tag, measured, recorded)
    assert sorted(len(a.tags) for a in run.actions if a.parent is not None) == [1] * 8 + [2] * 4
    assert all(s.holders == 0 and s.waiting == 0 for s in run.statistics())


def test_a_parent_waiting_on_children_lends_them_its_throttle_slot(tasks):
    run = flyte.with_runcontext(throttle={"db": 1}).run(tasks.parents, 3)
    results = run.outputs(timeout=60)
    leaves = [stamp for group in results for stamp in group]
    assert len(leaves) == 9 and peak(leaves) == 1
    assert all(s.holders == 0 for s in run.statistics())


def test_a_child_timeout_fires(tasks):
    start = time.monotonic()
    run = flyte.run(tasks.times_out)
    assert run.outputs(timeout=60) == "ActionTimeoutError: 1"
    assert time.monotonic() - start < 15
    child = _children(run, "too_slow")[0]
    assert child.phase == Phase.TIMED_OUT


@pytest.mark.parametrize("kind,expected", [("value", ("ValueError", "bad value")),
                                           ("arg", ("ArgError", 7, "no such thing"))])
def test_a_child_error_keeps_its_type_in_the_calling_body(tasks, kind, expected):
    assert flyte.run(tasks.catches, kind).outputs(timeout=60) == expected


def test_an_error_that_flies_through_the_driver_keeps_its_type_and_attributes(tasks):
    run = flyte.run(tasks.lets_it_fly, "arg")
    with pytest.raises(ArgError) as caught:
        run.outputs(timeout=60)
    assert caught.value.code == 7 and caught.value.detail == "no such thing"
    assert [a.phase for a in run.actions] == [Phase.FAILED, Phase.FAILED]
