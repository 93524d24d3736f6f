"""A rate limiter or semaphore used inside a body running in a worker is the kernel's one budget.

Parametrised over backends like ``test_nesting`` (driver and children in one environment): on
process, docker and dask every child body runs in a worker, and each acquisition travels to the
kernel. Measured from the bodies' own clock stamps, with bounds a loaded machine keeps.
"""

from __future__ import annotations

import pytest

import flyte_nb as flyte
from tests.backends.limit_tasks import build
from tests.backends.test_dask import cluster  # noqa: F401 - the fixture, shared
from tests.backends.test_nesting import BACKENDS, _options
from tests.engine.test_rates import worst_window
from tests.timeline import peak

ROUND_TRIP = 0.25  # a grant is stamped in the worker after its answer crossed from the kernel
_built: dict[str, object] = {}


@pytest.fixture(params=BACKENDS)
def limited(request):
    backend = request.param
    if backend not in _built:
        if backend == "dask":
            request.getfixturevalue("cluster")  # a real scheduler and two workers
            _built[backend] = build("limits-dask", backend="dask", concurrency=8)
        else:
            _built[backend] = build(f"limits-{backend}", **_options(backend))
    elif backend == "dask":
        request.getfixturevalue("cluster")
    tasks = _built[backend]
    tasks.slow = backend == "docker"  # a container per child: start-up is on the critical path
    return tasks


def test_one_rate_for_every_worker(limited):
    run = flyte.run(limited.callers, 4, 5)  # 4 children (2 async, 2 sync), 5 grants each, at 10/s together
    stamps = [t for child in run.outputs(timeout=60) for t in child]
    assert len(stamps) == 20
    assert worst_window(stamps, 10, 1, ROUND_TRIP) <= 0, "the workers together went faster than 10/s"
    assert max(stamps) - min(stamps) >= 19 / 10 - ROUND_TRIP
    (pool,) = [s for s in run.statistics() if s.name == f"limiter:{limited.api}"]  # the kernel's, seen by the run
    assert pool.rate == 10 and pool.waiting == 0


def test_one_machine_rate_for_every_worker(limited, flyte_home):
    run = flyte.run(limited.machine_callers, 4, 4)
    stamps = [t for child in run.outputs(timeout=60) for t in child]
    assert len(stamps) == 16
    assert worst_window(stamps, 10, 1, ROUND_TRIP) <= 0, "the workers together went faster than 10/s"
    assert any(s.name == f"limiter:{limited.api}@machine" for s in run.statistics()), "the kernel granted them"


def test_settle_in_a_worker_corrects_the_kernels_budget(limited):
    run = flyte.run(limited.refunded, 6)
    took = run.outputs(timeout=60)
    assert took < 1.5, f"6 grants at 2/s each refunded came at once, not in {took:.2f}s"
    (pool,) = [s for s in run.statistics() if s.name == f"limiter:{limited.name}-tpm"]
    assert pool.holders == 0, "the kernel's window holds no units once every grant was refunded"


def test_a_map_rate_inside_a_worker_spaces_its_childrens_starts(limited):
    run = flyte.run(limited.rated_map, 15)
    assert run.outputs(timeout=60) == list(range(15))
    starts = [a.started_at for a in run.actions if a.task.endswith(".ping")]  # as the kernel started them
    assert len(starts) == 15
    # a start is stamped when the worker's call reaches the kernel, after its grant: a loaded machine delays
    # some calls more than others, by up to one interval here (a limiter that let them all go would exceed by 10+)
    assert worst_window(starts, 10, 1, 0.1) <= 0, "the map's children started faster than 10/s"
    assert max(starts) - min(starts) >= 14 / 10 - 0.01
    assert any(s.name == "rate:map.ping" for s in run.statistics())


def test_one_semaphore_for_every_worker(limited):
    run = flyte.run(limited.queries, 6)
    spans = run.outputs(timeout=60)
    assert len(spans) == 6
    if limited.slow:  # container start-up jitter can keep bodies from overlapping: never more than 2
        assert peak(spans) <= 2
    else:
        assert peak(spans) == 2, "at most two holders among all the workers (and two reached)"
    (pool,) = [s for s in run.statistics() if s.name == f"semaphore:{limited.name}-db"]
    assert pool.holders == 0 and pool.waiting == 0


def test_a_body_ended_holding_a_slot_gives_it_back(limited, request):
    if "inline" in request.node.name:
        pytest.skip("in the kernel a body that never releases keeps its slot, as with asyncio.Semaphore")
    run = flyte.run(limited.hogs_then_queries, 4)  # two bodies time out holding both slots
    spans = run.outputs(timeout=60)
    assert len(spans) == 4 and peak(spans) <= 2
    (pool,) = [s for s in run.statistics() if s.name == f"semaphore:{limited.name}-db"]
    assert pool.holders == 0 and pool.waiting == 0
