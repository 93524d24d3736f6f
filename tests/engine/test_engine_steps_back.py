"""A busy engine steps back for the kernel's own threads: a lower CPU priority and, while work is
queued, a 1 ms switch interval (``tests/notebook/test_large_run_kernel.py`` times the cells); and
while busy the garbage collector runs every 10,000 young objects, not every 700."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = """
    import asyncio, gc, os, sys, threading, time
    from flyte_nb.engine.loop import engine
    if os.environ.get("FLYTE_NB_PROBE_GC") == "off":
        gc.set_threshold(0)
    loop = engine()
    def nice(native_id):
        return os.getpriority(os.PRIO_PROCESS, native_id)
    async def spin(seconds):  # a busy engine: tasks keep the ready queue full
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(asyncio.sleep(0) for _ in range(50)))
    before = sys.getswitchinterval(), gc.get_threshold()[0]
    future = asyncio.run_coroutine_threadsafe(spin(0.5), loop.loop)
    time.sleep(0.2)
    busy = sys.getswitchinterval(), gc.get_threshold()[0]
    future.result()
    time.sleep(0.1)
    after = sys.getswitchinterval(), gc.get_threshold()[0]
    print(nice(loop.thread.native_id) - nice(threading.get_native_id()), *before, *busy, *after)
"""


def _probe(**env: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE)], env=dict(os.environ, PYTHONPATH=ROOT, **env),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")


def test_the_engine_runs_below_the_kernel_and_switches_fast_only_while_busy():
    nice, interval, collector, busy_interval, busy_collector, after_interval, after_collector = _probe()
    assert (nice, interval, busy_interval, after_interval) == ("10", "0.005", "0.001", "0.005")
    assert int(collector) < 10_000 and busy_collector == "10000" and after_collector == collector


def test_a_collector_the_user_turned_off_stays_off():
    assert _probe(FLYTE_NB_PROBE_GC="off")[1:] == ["0.005", "0", "0.001", "0", "0.005", "0"]


def test_the_nice_value_is_a_setting():
    assert _probe(FLYTE_NB_ENGINE_NICE="0")[0] == "0"
    assert _probe(FLYTE_NB_ENGINE_NICE="3")[0] == "3"


def test_a_bad_nice_value_says_what_to_do():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE)],
                          env=dict(os.environ, PYTHONPATH=ROOT, FLYTE_NB_ENGINE_NICE="low"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "10"
    assert "FLYTE_NB_ENGINE_NICE must be a whole number (0 to 19)" in done.stderr
