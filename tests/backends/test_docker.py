"""The docker backend on a real Docker daemon (scripts/docker-setup starts one and builds the base image).

With CI=true these tests never skip: a missing daemon fails them with a message saying what to run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.needs import need

import flyte_nb as flyte
from flyte_nb.backends import docker as dockerbackend
from tests.timeline import peak

BASE = dockerbackend.BASE_IMAGE


def _daemon_problem() -> str | None:
    try:
        client = dockerbackend._connect()
    except flyte.ConfigurationError as error:
        return str(error)
    try:
        if not dockerbackend._exists(client, BASE):
            return f"the base image {BASE} is missing: run scripts/docker-setup"
    finally:
        client.close()
    return None


_PROBLEM = _daemon_problem()


@pytest.fixture(autouse=True)
def _needs_docker():
    need(None if _PROBLEM is None else f"Docker is not usable here: {_PROBLEM}")


def _docker_ps(label: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


boxes = flyte.TaskEnvironment("dk-boxes", backend="docker", image=BASE, concurrency=3, env_vars={"GREETING": "hi"},
                              resources=flyte.Resources(cpu=0.5, memory="256Mi"))
drivers = flyte.TaskEnvironment("dk-drivers")


@boxes.task
def half_second(i: int) -> tuple[int, str, str, float, float]:
    start = time.time()
    print(f"item {i}", flush=True)
    time.sleep(0.5)
    return i, socket.gethostname(), os.environ["GREETING"], start, time.time()


@drivers.task
async def eight() -> list:
    return list(flyte.map(half_second, range(8)))


def test_eight_half_second_actions_on_three_slots_each_in_its_own_container():
    run = flyte.run(eight)
    results = run.outputs(timeout=120)
    assert [r[0] for r in results] == list(range(8))
    assert len({r[1] for r in results}) == 8, "each action ran in a container of its own"
    assert {r[2] for r in results} == {"hi"}
    assert peak((r[3], r[4]) for r in results) <= 3, "never more than 3 bodies at once"
    leaves = [a for a in run.actions if a.task == "dk-boxes.half_second"]
    # 3 at once is reached by the actions (container start + body); the bodies alone may not overlap
    # three-fold on a loaded machine, where start-up jitter exceeds their 0.5 s
    assert peak((a.started_at, a.ended_at) for a in leaves) == 3
    assert sorted(a.logs for a in leaves) == sorted(f"item {i}\n" for i in range(8))
    assert _docker_ps(f"flyte_nb.run={run.name}") == []


@boxes.task
def linger(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def test_resources_env_vars_and_labels_are_applied():
    run = flyte.run(linger, 3)
    assert _wait_until(lambda: _docker_ps(f"flyte_nb.run={run.name}"), 30)
    (cid,) = _docker_ps(f"flyte_nb.run={run.name}")
    info = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True).stdout)[0]
    assert info["HostConfig"]["NanoCpus"] == 500_000_000
    assert info["HostConfig"]["Memory"] == 256 * 2**20
    assert "GREETING=hi" in info["Config"]["Env"]
    labels = info["Config"]["Labels"]
    assert labels["flyte_nb.action"] == run.actions[0].name
    assert labels["flyte_nb.kernel.pid"] == str(os.getpid())
    assert labels["flyte_nb.kernel.host"] == socket.gethostname()
    assert labels["flyte_nb.kernel.started"]
    assert run.outputs(timeout=60) == "done"
    assert _docker_ps(f"flyte_nb.run={run.name}") == []


small = flyte.TaskEnvironment("dk-small", backend="docker", image=BASE, resources=flyte.Resources(memory="64Mi"))


@small.task
def hog() -> int:
    blocks = []
    for _ in range(64):
        blocks.append(bytearray(8 * 2**20))
    return len(blocks)


def test_out_of_memory_is_a_worker_died_error_naming_the_limit():
    with pytest.raises(flyte.WorkerDiedError, match=r"out of memory \(limit 64Mi\)"):
        flyte.run(hog).outputs(timeout=60)


@boxes.task
def raises(kind: str) -> None:
    if kind == "value":
        raise ValueError("bad value in a container")
    raise KeyError("missing")


@pytest.mark.parametrize("kind,error", [("value", ValueError), ("key", KeyError)])
def test_errors_keep_their_type_with_the_remote_traceback(kind, error):
    with pytest.raises(error) as caught:
        flyte.run(raises, kind).outputs(timeout=60)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "remote traceback (container" in notes and "in raises" in notes
    assert "flyte_nb/backends" not in notes


@boxes.task(retries=1)
def crashes_once() -> str:
    if os.environ["FLYTE_NB_ATTEMPT"] == "1":
        os._exit(3)
    return "second attempt"


def test_a_crashed_container_fails_the_attempt_and_retries_apply():
    run = flyte.run(crashes_once)
    assert run.outputs(timeout=60) == "second attempt"
    action = run.actions[0]
    assert action.attempts == 2
    assert isinstance(action.history[0].error, flyte.WorkerDiedError)
    assert "exited with code 3" in str(action.history[0].error)


@boxes.task(timeout=1)
def too_slow() -> None:
    time.sleep(60)


def test_a_timeout_stops_and_removes_the_container_within_two_seconds():
    run = flyte.run(too_slow)
    assert _wait_until(lambda: _docker_ps(f"flyte_nb.run={run.name}"), 30)
    with pytest.raises(flyte.ActionTimeoutError):
        run.outputs(timeout=60)
    fired = run.actions[0].ended_at
    assert _wait_until(lambda: not _docker_ps(f"flyte_nb.run={run.name}"), 2)
    assert time.time() - fired < 2.5


@drivers.task
async def fifty() -> list:
    return list(flyte.map(linger, [60] * 50))


def test_abort_of_a_fifty_action_map_leaves_no_container():
    run = flyte.run(fifty)
    assert _wait_until(lambda: len(_docker_ps(f"flyte_nb.run={run.name}")) >= 3, 60)
    start = time.monotonic()
    run.abort()
    with pytest.raises(flyte.RunAbortedError):
        run.outputs(timeout=30)
    assert _wait_until(lambda: not _docker_ps(f"flyte_nb.run={run.name}"), 2)
    assert time.monotonic() - start < 4
    assert all(s.holders == 0 for s in run.statistics())


def test_containers_of_a_killed_kernel_are_removed_by_the_next_one(tmp_path):
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import time, flyte_nb as flyte
        env = flyte.TaskEnvironment("dk-orphans", backend="docker", image={BASE!r}, concurrency=2)

        @env.task
        def forever(i: int) -> None:
            time.sleep(600)

        @flyte.TaskEnvironment("dk-orphan-driver").task
        async def main() -> list:
            return list(flyte.map(forever, range(2)))

        run = flyte.run(main)
        print(run.name, flush=True)
        time.sleep(600)
    """))
    kernel = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        run_name = kernel.stdout.readline().strip()
        assert _wait_until(lambda: len(_docker_ps(f"flyte_nb.run={run_name}")) == 2, 60)
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait()
        kernel.stdout.close()
    folders = list(dockerbackend.folder_root().glob(f"flyte_nb-docker-{kernel.pid}-*"))
    assert folders, "a SIGKILLed kernel leaves its payload folder (else this test proves nothing about removing it)"
    assert _docker_ps(f"flyte_nb.run={run_name}"), "a SIGKILLed kernel leaves its containers"
    subprocess.run([sys.executable, "-c", "from flyte_nb.backends.docker import DockerBackend; DockerBackend().client"],
                   check=True, timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert _docker_ps(f"flyte_nb.run={run_name}") == []
    assert not [folder for folder in folders if folder.exists()], "the dead kernel's payload folder is removed"


def test_an_unreachable_daemon_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    with pytest.raises(flyte.ConfigurationError, match=r"Docker daemon at unix:///nonexistent is not reachable .*"
                                                       r"start it with scripts/docker-setup or `dockerd &`"):
        dockerbackend._connect()


missing = flyte.TaskEnvironment("dk-missing", backend="docker", image="flyte-nb-no-such-image:1")


@missing.task
def nothing() -> None:
    return None


def test_an_image_that_is_not_there_is_a_clear_error():
    with pytest.raises(flyte.ConfigurationError, match=r"image 'flyte-nb-no-such-image:1' is not available .* never pulls"):
        flyte.run(nothing).outputs(timeout=60)


@boxes.task
def big(n: int) -> bytes:
    return b"x" * n


def test_a_result_over_the_limit_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(dockerbackend.MAX_RESULT_ENV, "1Ki")
    assert flyte.run(big, 100).outputs(timeout=60) == b"x" * 100
    with pytest.raises(flyte.SerializationError, match=r"over the docker backend's result limit of 1Ki"):
        flyte.run(big, 10_000).outputs(timeout=60)


# ---------------------------------------------------------------- images
def _env_reading(image, name: str):
    env = flyte.TaskEnvironment(name, backend="docker", image=image)

    @env.task
    def read(key: str) -> str | None:
        return os.environ.get(key)

    return read


def test_images_from_a_dockerfile_and_with_env_vars_are_built_once(tmp_path, monkeypatch):
    lines: list[tuple[str, str]] = []
    monkeypatch.setattr(dockerbackend, "build_log", lambda tag, line: lines.append((tag, line)))
    dockerfile = _context(tmp_path) / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nENV FROM_DOCKERFILE=yes-{time.time_ns()}\n")
    image = flyte.Image.from_dockerfile(dockerfile).with_env_vars({"EXTRA": "layered"})
    read = _env_reading(image, "dk-built")
    assert flyte.run(read, "EXTRA").outputs(timeout=120) == "layered"
    assert flyte.run(read, "FROM_DOCKERFILE").outputs(timeout=60).startswith("yes-")
    assert any(line.startswith("Step 2/3 : ENV FROM_DOCKERFILE") for _, line in lines)
    assert {tag for tag, _ in lines} == {f"flyte-nb-image:{image.digest}", f"flyte-nb-image:{image.digest}-dockerfile"}
    # a new backend (a new kernel) with the same spec: nothing is rebuilt
    lines.clear()
    fresh = dockerbackend.DockerBackend()
    assert fresh._image(image) == f"flyte-nb-image:{image.digest}"
    assert lines == []
    fresh._client.close()
    debian = flyte.Image.from_debian_base().with_env_vars({"ONLY_ENV": "1"})
    assert flyte.run(_env_reading(debian, "dk-debian"), "ONLY_ENV").outputs(timeout=120) == "1"
    subprocess.run(["docker", "rmi", "-f", f"flyte-nb-image:{image.digest}", f"flyte-nb-image:{image.digest}-dockerfile"],
                   capture_output=True)


def test_a_failing_build_names_the_step_and_shows_the_log_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(dockerbackend, "build_log", lambda tag, line: None)
    dockerfile = _context(tmp_path) / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nRUN echo about to fail && exit 7\n")
    read = _env_reading(flyte.Image.from_dockerfile(dockerfile), "dk-broken")
    with pytest.raises(dockerbackend.ImageBuildError) as caught:
        flyte.run(read, "X").outputs(timeout=120)
    message = str(caught.value)
    assert "failed at 'Step 2/3 : RUN echo about to fail && exit 7'" in message
    assert "returned a non-zero code: 7" in message and "about to fail" in message


def test_an_image_with_another_python_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dockerbackend, "build_log", lambda tag, line: None)
    dockerfile = _context(tmp_path) / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nRUN printf '#!/bin/sh\\necho 3.9\\n' > /usr/local/bin/python3 "
                          "&& chmod +x /usr/local/bin/python3\n")
    read = _env_reading(flyte.Image.from_dockerfile(dockerfile), "dk-old-python")
    want = "%d.%d" % sys.version_info[:2]
    with pytest.raises(flyte.ConfigurationError, match=rf"has Python 3.9 but this kernel runs {want}"):
        flyte.run(read, "X").outputs(timeout=120)


# ---------------------------------------------------------------- reusable containers
reused = flyte.TaskEnvironment("dk-reused", backend="docker", image=BASE,
                               reusable=flyte.ReusePolicy(replicas=(0, 2), idle_ttl="3s", concurrency=1))


@reused.task
def where(i: int) -> tuple[int, str, int]:
    print(f"reused {i}", flush=True)
    time.sleep(0.05)
    return i, socket.gethostname(), os.getpid()


@reused.task(timeout=1)
def stuck() -> None:
    print(socket.gethostname(), os.getpid(), flush=True)  # which replica's worker the timeout kills
    time.sleep(60)


@drivers.task
async def twenty() -> list:
    return list(flyte.map(where, range(20)))


def _context(tmp_path) -> "dockerbackend.Path":
    """A build context of its own: tmp_path also holds the test's live store, which must not be tarred."""
    folder = tmp_path / "image"
    folder.mkdir(exist_ok=True)
    return folder


def _python_pids(container: str) -> set[int]:
    """Pids of the python processes inside ``container`` (read from its /proc: minbase has no ps)."""
    script = 'for p in /proc/[0-9]*; do [ "$(head -c 7 $p/cmdline 2>/dev/null)" = python3 ] && echo ${p#/proc/}; done'
    out = subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True)
    return {int(line) for line in out.stdout.split()}


def test_reusable_containers_take_many_actions_scale_and_stop_when_idle():
    run = flyte.run(twenty)
    results = run.outputs(timeout=120)
    assert [r[0] for r in results] == list(range(20))
    hosts = {r[1] for r in results}
    assert 1 <= len(hosts) <= 2, "at most two replicas"
    assert len({(r[1], r[2]) for r in results}) == len(hosts), "one worker per replica took every action"
    assert sorted(a.logs for a in run.actions if a.task == "dk-reused.where") == sorted(f"reused {i}\n" for i in range(20))
    # a second replica may still be starting when a busy machine's first one has served all 20
    assert len(hosts) <= len(_docker_ps("flyte_nb.env=dk-reused")) <= 2
    timed_out = flyte.run(stuck)
    with pytest.raises(flyte.ActionTimeoutError):
        timed_out.outputs(timeout=60)
    stuck_host, stuck_pid = timed_out.actions[0].logs.split()
    assert any(c.startswith(stuck_host) for c in _docker_ps("flyte_nb.env=dk-reused")), "its container survives the kill"
    assert _wait_until(lambda: _python_pids(stuck_host) - {int(stuck_pid)}, 30), "a new worker starts in that container"
    again = flyte.run(twenty).outputs(timeout=120)  # both replicas busy: the one whose worker was killed serves too
    pids_there = {r[2] for r in again if r[1] == stuck_host}
    assert pids_there and int(stuck_pid) not in pids_there, "the new worker inside the same container takes actions"
    assert _wait_until(lambda: not _docker_ps("flyte_nb.env=dk-reused"), 15), "idle replicas stop after idle_ttl"


def test_images_with_apt_and_pip_packages_are_built_from_the_local_base():
    """Installs from Debian's mirror and PyPI inside the build (the registries this machine reaches)."""
    image = flyte.Image.from_debian_base().with_apt_packages("jq").with_pip_packages("six==1.16.0")
    env = flyte.TaskEnvironment("dk-packages", backend="docker", image=image)

    @env.task
    def versions() -> tuple[str, str]:
        import shutil

        import six

        return six.__version__, str(shutil.which("jq"))

    try:
        assert flyte.run(versions).outputs(timeout=600) == ("1.16.0", "/usr/bin/jq")
    finally:
        subprocess.run(["docker", "rmi", "-f", f"flyte-nb-image:{image.digest}"], capture_output=True)


def test_a_reusable_container_that_dies_is_replaced():
    first = flyte.run(where, 1).outputs(timeout=120)
    for name in _docker_ps("flyte_nb.env=dk-reused"):
        subprocess.run(["docker", "kill", name], capture_output=True)
    start = time.monotonic()
    again = flyte.run(where, 2).outputs(timeout=60)
    assert again[0] == 2 and again[1] != first[1], "a new container took the action"
    assert time.monotonic() - start < 20
