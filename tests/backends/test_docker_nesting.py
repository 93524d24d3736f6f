"""Docker: children of a container-run driver get containers of their own, at any depth; abort leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import cloudpickle

import flyte_nb as flyte
from flyte_nb.notebook.widget_state import snapshot
from tests.backends.test_nesting import _options
from tests.timeline import peak

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # containers cannot import the tests


def _docker_ps(*labels: str) -> list[str]:
    filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
    out = subprocess.run(["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=True)
    return out.stdout.split()


def container_id() -> str:
    """The id of the container this runs in (not its hostname: a tree's containers share one network and hostname)."""
    import re

    with open("/proc/self/cgroup") as cgroups:
        found = re.search(r"[0-9a-f]{64}", cgroups.read())
    if found is None:  # (no assert: pytest rewrites those with its own module, which containers lack)
        raise RuntimeError("no container id in /proc/self/cgroup (cgroup v1 or a host cgroup namespace needed)")
    return found.group(0)


@pytest.fixture(scope="module")
def boxes():
    return flyte.TaskEnvironment("dk-depth", **_options("docker"))


def test_depth_three_is_nine_actions_in_nine_containers(boxes):
    @boxes.task
    def leaf(i: int) -> tuple[str, float, float]:
        start = time.monotonic()
        time.sleep(1.0)
        return container_id(), start, time.monotonic()

    @boxes.task
    async def stage(s: int) -> tuple[str, list]:
        return container_id(), list(flyte.map(leaf, [s * 10 + i for i in range(3)]))

    @boxes.task
    async def driver() -> tuple[str, list]:
        import asyncio

        return container_id(), await asyncio.gather(stage.aio(0), stage.aio(1))

    run = flyte.run(driver)
    root_host, stages = run.outputs(timeout=180)
    leaves = [leaf_result for _, stage_leaves in stages for leaf_result in stage_leaves]
    assert len(run.actions) == 9 and run.counts["succeeded"] == 9
    assert [a.task.rsplit(".", 1)[1] for a in run.actions].count("leaf") == 6
    depth: dict[int, int] = {}
    for action in run.actions:
        depth[action.number] = 0 if action.parent is None else depth[action.parent.number] + 1
    assert sorted(depth.values()) == [0, 1, 1, 2, 2, 2, 2, 2, 2]
    hosts = {root_host} | {host for host, _ in stages} | {host for host, _, _ in leaves}
    assert len(hosts) == 9, "each of the 9 actions ran in a container of its own"
    # each stage's 3 leaves ran at once as the engine recorded them; their 1 s bodies overlap at least
    # two-fold (container start-up jitter on a loaded machine can exceed a body)
    recorded = [peak((a.started_at, a.ended_at) for a in run.actions if a.parent is stage and a.task.endswith(".leaf"))
                for stage in run.actions if stage.task.endswith(".stage")]
    assert recorded == [3, 3] and peak((s, e) for _, s, e in leaves) >= 2, ("leaves ran in parallel", recorded)
    stored = _stored(run.name)
    assert [(a.name, a.parent_name, str(a.phase)) for a in stored.actions] == [
        (a.name, a.parent_name, "succeeded") for a in run.actions], "all 9 in the run store, as the tree ran"
    view = snapshot(run.state)  # what the widget draws
    assert view["actions"] == 9 and view["counts"]["succeeded"] == 9
    stage_names = sorted(a.name for a in run.actions if a.task.endswith(".stage"))
    assert sorted(g["parent"] for g in view["groups"]) == stage_names  # each stage's map under its stage
    assert all((g["succeeded"], g["total"], g["depth"]) == (3, 3, 2) for g in view["groups"])


def _stored(name: str):
    from flyte_nb.api.history import StoredRun
    from flyte_nb.api.stored import open_store, rows_of

    store = open_store()
    return StoredRun(store, rows_of(store, "SELECT * FROM runs WHERE name = ?", (name,))[0])


def test_abort_of_a_run_whose_driver_runs_in_a_container_leaves_nothing(boxes):
    @boxes.task
    def forever(i: int) -> None:
        time.sleep(300)

    @boxes.task
    async def endless() -> list:
        return list(flyte.map(forever, range(3)))

    run = flyte.run(endless)
    label = f"flyte_nb.run={run.name}"
    deadline = time.monotonic() + 120
    while (run.counts["running"] < 4 or len(_docker_ps(label)) < 4) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.counts["running"] == 4 and len(_docker_ps(label)) >= 4, run.counts  # (and the run's spares)
    time.sleep(1.0)  # the leaves' bodies are running
    start = time.monotonic()
    run.abort()
    with pytest.raises(flyte.RunAbortedError):
        run.outputs(timeout=30)
    while _docker_ps(label) and time.monotonic() - start < 10:
        time.sleep(0.1)
    assert not _docker_ps(label), "no container of the run is left, spare or used"
    took = time.monotonic() - start
    print(f"abort left nothing after {took:.2f} s")
    assert took < 5  # the 2 s, with room for a loaded machine's docker daemon
    assert all(s.holders == 0 for s in run.statistics())
    from flyte_nb.backends.base import get_backend

    assert not [w.pid for w in tuple(get_backend("process").workers) if w.link.running], "no worker process runs anything of it"


@pytest.mark.parametrize("reusable", [False, True])
def test_redefining_a_docker_environment_takes_effect_at_once(reusable):
    def define(value: str):
        options = _options("docker-reuse" if reusable else "docker")
        env = flyte.TaskEnvironment("dk-redefined", env_vars={"SETTING": value}, **options)

        @env.task
        def setting() -> str:
            import os

            return os.environ["SETTING"]

        return setting

    assert flyte.run(define("old")).outputs(timeout=120) == "old"
    assert flyte.run(define("new")).outputs(timeout=120) == "new"


def test_a_one_worker_reusable_environment_holds_its_driver_and_its_children():
    options = dict(_options("docker-reuse"), reusable=flyte.ReusePolicy(replicas=1, concurrency=1, idle_ttl="2s"))
    env = flyte.TaskEnvironment("dk-solo", **options)

    @env.task
    def leaf(i: int) -> int:
        return i * i

    @env.task
    async def driver(n: int) -> list:
        return list(flyte.map(leaf, range(n)))

    run = flyte.run(driver, 4)
    assert run.outputs(timeout=120) == [0, 1, 4, 9]
    assert len(run.actions) == 5 and all(s.holders == 0 for s in run.statistics())


def test_children_of_a_container_driver_take_spare_containers_that_go_with_it(boxes):
    @boxes.task
    def child(i: int) -> tuple[int, str, str]:
        time.sleep(0.3)
        return i, container_id(), os.environ["FLYTE_NB_ACTION"]

    @boxes.task
    async def waves() -> list:
        import asyncio

        done: list = []
        for wave in range(4):  # later waves find spares that earlier ones had started
            done += await asyncio.gather(*(child.aio(wave * 2 + k) for k in range(2)))
            if wave < 3:  # the last wave's containers are still being removed as the driver returns
                await asyncio.sleep(1.0)
        return done

    run = flyte.run(waves)
    spares_seen: set[str] = set()
    while not run.done():
        spares_seen |= set(_docker_ps(f"flyte_nb.run={run.name}", "flyte_nb.spare=1"))
        time.sleep(0.2)
    results = run.outputs(timeout=10)
    assert _docker_ps(f"flyte_nb.run={run.name}") == [], "spares go with the action they were kept for"
    children = [a for a in run.actions if a.parent is not None]
    assert len(children) == 8 and len({host for _, host, _ in results}) == 8, "each child in a fresh container"
    assert {env for _, _, env in results} == {a.name for a in children}, "a spare learns its action's name"
    used = {host[:12] for _, host, _ in results} & {cid[:12] for cid in spares_seen}
    assert used, "later children ran in spare containers started ahead of them"


def test_a_driver_that_calls_tasks_starts_their_spares_with_it_in_its_network(boxes):
    @boxes.task
    def child(i: int) -> str:
        return container_id()

    @boxes.task
    async def late() -> list:
        import asyncio

        await asyncio.sleep(3.0)  # no child is called yet: spares start beside the driver's container
        return await asyncio.gather(*(child.aio(i) for i in range(3)))

    run = flyte.run(late)
    label = f"flyte_nb.run={run.name}"
    before: set[str] = set()
    driver: set[str] = set()
    networks: dict[str, str] = {}  # read when a spare is first seen: a used one-shot child is removed soon after
    while not run.done() and len(run.actions) <= 1:
        before |= set(_docker_ps(label, "flyte_nb.spare=1"))
        driver |= set(subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={label}", "--filter",
                                      "label=flyte_nb.action=a0"], capture_output=True, text=True).stdout.split())
        for cid in before - networks.keys():
            networks[cid] = subprocess.run(["docker", "inspect", "--format", "{{.HostConfig.NetworkMode}}", cid],
                                           capture_output=True, text=True).stdout.strip()
        time.sleep(0.2)
    results = run.outputs(timeout=120)
    assert before, "spares were started before the driver called its first child"
    assert len(before) <= 8, "no more spares than the environment's concurrency"
    assert len({cid[:12] for cid in results} & {cid[:12] for cid in before}) == 3, "each child took a spare"
    assert set(networks.values()) - {""} == {f"container:{cid}" for cid in driver}, "the tree shares its driver's network namespace"
    assert _docker_ps(label) == [], "the unused spares went with the run"


def test_spares_do_not_outlive_their_kernel(tmp_path):
    from flyte_nb.backends.docker import BASE_IMAGE

    _options("docker")  # skips without a usable daemon
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys, time, flyte_nb as flyte
        env = flyte.TaskEnvironment("dk-spare-exit", backend="docker", image={BASE_IMAGE!r}, concurrency=4)

        @env.task
        def child(i: int) -> int:
            return i

        @env.task
        async def driver() -> list:
            await asyncio.sleep(600)  # its spares are up, waiting for calls that never come
            return list(flyte.map(child, range(4)))

        run = flyte.run(driver)
        print(run.name, flush=True)
        sys.stdin.readline()  # the test saw the spares: exit with the run still going
    """))
    kernel = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        label = f"flyte_nb.run={kernel.stdout.readline().strip()}"
        deadline = time.monotonic() + 60
        while len(_docker_ps(label, "flyte_nb.spare=1")) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_docker_ps(label, "flyte_nb.spare=1")) == 4, "the driver's spares are up"
        kernel.stdin.write("\n")
        kernel.stdin.flush()
        assert kernel.wait(60) == 0
    finally:
        kernel.kill()
        kernel.wait()
        kernel.stdout.close()
        kernel.stdin.close()
    left = subprocess.run(["docker", "ps", "-a", "--filter", f"label={label}", "--format",
                           '{{.ID}} {{.Status}} action={{.Label "flyte_nb.action"}} spare={{.Label "flyte_nb.spare"}}'],
                          capture_output=True, text=True).stdout
    assert _docker_ps(label) == [], f"no container of the run outlives its kernel, spare or driver: {left}"
