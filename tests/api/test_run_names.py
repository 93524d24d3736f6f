"""Run names are for people; what touches the file system or a container is the run's key (issue 18).

A run named ``..`` used to become the Docker payload folder ``$TMPDIR/flyte_nb-docker-…/..`` and
its cleanup removed the temp folder; "exp 1" and "exp_1" shared one folder and swapped results.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import flyte_nb as flyte
from flyte_nb.engine.names import check_run_name, run_key

_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*-[0-9]+$")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=20))
def test_every_name_gets_a_safe_key_unique_by_construction(names):
    keys = [run_key(name) for name in names]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert _KEY.match(key), key
        assert Path(key).name == key and key not in (".", "..")


@pytest.mark.parametrize("name", ["..", ".", "/", "../x", "a/b", " .. ", "", "   ", "x\n", "\x00", "x" * 201, 3])
def test_names_that_cannot_be_a_url_segment_are_refused_with_one_line(name):
    with pytest.raises(flyte.ConfigurationError) as caught:
        flyte.with_runcontext(name=name)
    assert "\n" not in str(caught.value) and "run name" in str(caught.value)


@pytest.mark.parametrize("name", ["exp 1", "exp_1", "..x", "a..b", ".hidden", "x\\..", "ünï cödé", "-", "_"])
def test_odd_but_harmless_names_are_kept_as_typed(name):
    assert check_run_name(name) == name
    run = flyte.with_runcontext(name=name).run(lambda: 1)
    assert run.outputs(timeout=30) == 1
    assert run.name.startswith(name)
    assert run.state.key != name and _KEY.match(run.state.key)


# ------------------------------------------------------------------------------------ real Docker
_DOCKER_SCRIPT = textwrap.dedent(r'''
    import json, os, sys, time
    import flyte_nb as flyte
    from flyte_nb.backends import docker as dockerbackend

    boxes = flyte.TaskEnvironment("names-boxes", backend="docker", image=dockerbackend.BASE_IMAGE, concurrency=8)

    @boxes.task
    def echo(tag: str) -> str:
        time.sleep(1.5)  # every run's container is alive at once
        return tag

    refused = {}
    for name in ["..", ".", "/", "../x"]:
        try:
            flyte.with_runcontext(name=name).run(echo, name)
        except flyte.ConfigurationError as error:
            refused[name] = str(error)
    names = ["exp 1", "exp_1", "exp-1", "..x", "a..b", ".x", "x\\.."]
    runs = [flyte.with_runcontext(name=name).run(echo, name) for name in names]
    got = {}
    for name, run in zip(names, runs):
        try:
            got[name] = run.outputs(timeout=180)
        except BaseException as error:
            got[name] = f"{type(error).__name__}: {error}"
    @boxes.task
    def leaves() -> int:
        sys.exit(5)  # in a container: the action fails, the kernel's engine goes on (issue 18, item 3)

    try:
        flyte.run(leaves).outputs(timeout=180)
        exited = "nothing raised"
    except BaseException as error:
        exited = type(error).__name__
    after = flyte.run(echo, "after").outputs(timeout=180)
    print(json.dumps({"refused": refused, "got": got, "exited": exited, "after": after}))
''')


def _docker_usable() -> str | None:
    from flyte_nb.backends import docker as dockerbackend

    try:
        client = dockerbackend._connect()
    except flyte.ConfigurationError as error:
        return str(error)
    try:
        if not dockerbackend._exists(client, dockerbackend.BASE_IMAGE):
            return f"the base image {dockerbackend.BASE_IMAGE} is missing: run scripts/docker-setup"
    finally:
        client.close()
    return None


def test_docker_runs_with_dangerous_or_look_alike_names_keep_their_results_and_the_temp_folder(tmp_path):
    """Also: a container body's sys.exit() fails its action and the next run works."""
    problem = _docker_usable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker is not usable: {problem}")
        pytest.skip(problem)
    temp = tmp_path / "tmp"
    (temp / "keep").mkdir(parents=True)
    sentinels = [temp / "sentinel.txt", temp / "keep" / "nested.txt", tmp_path / "outside.txt"]
    for sentinel in sentinels:
        sentinel.write_text("still here")
    script = tmp_path / "names_script.py"
    script.write_text(_DOCKER_SCRIPT)
    env = dict(os.environ, TMPDIR=str(temp), FLYTE_NB_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(report["refused"]) == sorted(["..", ".", "/", "../x"])
    assert report["got"] == {name: name for name in report["got"]}, report["got"]
    assert report["exited"] == "TaskExitError" and report["after"] == "after"
    for sentinel in sentinels:
        assert sentinel.read_text() == "still here", f"{sentinel} was removed"
    leftovers = [p for p in temp.iterdir() if p.name.startswith("flyte_nb-docker-")]
    assert all(not any(p.iterdir()) for p in leftovers if p.exists()), "payload folders left behind"
