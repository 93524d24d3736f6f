"""Dask backend benchmark, side by side in one run.

Per-action overhead: N trivial actions through flyte_nb on the dask backend (``flyte_nb.map``,
concurrency 0 = all at once) against raw ``client.gather(client.map(f, range(N), pure=False))``
of the same function on the same cluster: a real ``dask scheduler`` and two ``dask worker``
processes (2 threads each) started on 127.0.0.1 by this script, or ``--address`` of your own.
Target: flyte_nb within 1.3x of raw ``client.map``.

Usage: ``python benchmarks/bench_dask.py [--quick] [--strict] [--address tcp://host:8786]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("FLYTE_NB_HOME", tempfile.mkdtemp(prefix="flyte_nb-bench-"))

import distributed  # noqa: E402

import flyte_nb  # noqa: E402
from flyte_nb.engine.kernel import kernel  # noqa: E402

RATIO_TARGET = 1.3

workers = flyte_nb.TaskEnvironment("bench-dask", backend="dask")
drivers = flyte_nb.TaskEnvironment("bench-dask-drivers", backend="inline")


def trivial(i: int) -> int:
    return i


trivial_task = workers.task(trivial, short_name="trivial")


@drivers.task
async def fan_out(n: int) -> int:
    return sum(flyte_nb.map(trivial_task, range(n)))


def start_cluster() -> tuple[str, list[subprocess.Popen]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = os.path.join(os.path.dirname(sys.executable), "dask")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    for _ in range(2):
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "2", "--nworkers", "1",
                                       "--host", "127.0.0.1", "--dashboard-address", ":0"], **quiet))
    return address, procs


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def flyte_map(n: int) -> None:
    assert flyte_nb.run(fan_out, n).outputs() == n * (n - 1) // 2


def raw_map(client: distributed.Client, n: int) -> None:
    assert sum(client.gather(client.map(trivial, range(n), pure=False))) == n * (n - 1) // 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a CI smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--address", help="an existing scheduler instead of a local one")
    options = parser.parse_args()
    n = 300 if options.quick else 2000
    rounds = 3 if options.quick else 5
    procs: list[subprocess.Popen] = []
    address = options.address
    if address is None:
        address, procs = start_cluster()
    try:
        client = distributed.Client(address, timeout=30, set_as_default=False)
        client.wait_for_workers(2 if procs else 1, timeout=30)
        flyte_nb.init(backend="dask", endpoint=address)
        print(f"flyte_nb {flyte_nb.__version__} dask backend benchmark — distributed {distributed.__version__}, "
              f"{len(client.scheduler_info()['workers'])} workers at {address}")
        flyte_map(20)  # connect, warm
        raw_map(client, 20)
        flyte_times, raw_times = [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            raw_times.append(timed(raw_map, client, n))
            flyte_times.append(timed(flyte_map, n))
        raw_ms = statistics.median(raw_times) / n * 1000
        flyte_ms = statistics.median(flyte_times) / n * 1000
        ratio = flyte_ms / raw_ms
        ok = ratio <= RATIO_TARGET
        print(f"\nper-action cost of {n} trivial actions on the same cluster ({rounds} rounds, medians)")
        print(f"   raw client.map + gather       {raw_ms:6.3f} ms/action (the floor)")
        print(f"   flyte_nb dask backend         {flyte_ms:6.3f} ms/action  ratio {ratio:.2f}x "
              f"(target <= {RATIO_TARGET}x)  {'PASS' if ok else 'FAIL'}")
        print(f"\n{int(ok)}/1 targets met")
        client.close()
        return 1 if options.strict and not ok else 0
    finally:
        kernel().close()  # flyte_nb's own client leaves first: one that outlives the scheduler logs reconnect errors
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
