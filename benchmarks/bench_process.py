"""Process backend benchmarks, side by side in one run.

1. Parallel speed-up: 40 CPU-bound actions of ~20 ms on the process backend at concurrency 2,
   against the same 40 calls run one after another in this process. Target: >= 1.8x on 2 cores.
2. Per-action overhead on a warm pool: N trivial actions through flyte_nb (concurrency 2)
   against ``concurrent.futures.ProcessPoolExecutor(2)`` running the same cloudpickled function,
   the floor for "ship a function to another process and get the result back". Target: flyte_nb's
   per-action cost under 1 ms.

Usage: ``python benchmarks/bench_process.py [--quick] [--strict]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("FLYTE_NB_HOME", tempfile.mkdtemp(prefix="flyte_nb-bench-"))

import cloudpickle  # noqa: E402

import flyte_nb  # noqa: E402

SPEEDUP_TARGET = 1.8
OVERHEAD_TARGET_MS = 1.0
BURN_SECONDS = 0.02

workers = flyte_nb.TaskEnvironment("bench-workers", backend="process", concurrency=2)
drivers = flyte_nb.TaskEnvironment("bench-drivers")


def burn(i: int) -> int:
    end = time.perf_counter() + BURN_SECONDS
    while time.perf_counter() < end:
        pass
    return i


def trivial(i: int) -> int:
    return i


burn_task = workers.task(burn, short_name="burn")
trivial_task = workers.task(trivial, short_name="trivial")


@drivers.task
async def fan_out(task_name: str, n: int) -> int:
    task = burn_task if task_name == "burn" else trivial_task
    return len(list(flyte_nb.map(task, range(n), concurrency=2)))


def _run_cloudpickled(payload: bytes, i: int) -> int:
    return cloudpickle.loads(payload)(i)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def flyte_map(task_name: str, n: int) -> None:
    assert flyte_nb.run(fan_out, task_name, n).outputs() == n


def serial(n: int) -> None:
    for i in range(n):
        burn(i)


def pool_map(executor: concurrent.futures.ProcessPoolExecutor, n: int) -> None:
    payload = cloudpickle.dumps(trivial)
    futures = [executor.submit(_run_cloudpickled, payload, i) for i in range(n)]
    assert sum(f.result() for f in futures) == n * (n - 1) // 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a CI smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    options = parser.parse_args()
    calls = 40
    trivial_n = 300 if options.quick else 2000
    rounds = 2 if options.quick else 5
    print(f"flyte_nb {flyte_nb.__version__} process backend benchmarks — {os.cpu_count()} CPUs")

    flyte_map("trivial", 4)  # start the workers
    serial_times, parallel_times = [], []
    for _ in range(rounds):
        serial_times.append(timed(serial, calls))
        parallel_times.append(timed(flyte_map, "burn", calls))
    speedup = statistics.median(serial_times) / statistics.median(parallel_times)

    flyte_times, pool_times = [], []
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        pool_map(executor, 10)  # warm
        for _ in range(rounds):
            flyte_times.append(timed(flyte_map, "trivial", trivial_n))
            pool_times.append(timed(pool_map, executor, trivial_n))
    flyte_ms = statistics.median(flyte_times) / trivial_n * 1000
    pool_ms = statistics.median(pool_times) / trivial_n * 1000

    ok_speedup = speedup >= SPEEDUP_TARGET
    ok_overhead = flyte_ms < OVERHEAD_TARGET_MS
    print(f"\n1. {calls} CPU-bound actions of {BURN_SECONDS * 1000:.0f} ms, concurrency 2 ({rounds} rounds, medians)")
    print(f"   serial in-process     {statistics.median(serial_times):7.3f} s")
    print(f"   process backend       {statistics.median(parallel_times):7.3f} s   speed-up {speedup:.3f}x "
          f"(target >= {SPEEDUP_TARGET}x)  {'PASS' if ok_speedup else 'FAIL'}")
    print(f"\n2. per-action cost of {trivial_n} trivial actions on a warm pool of 2 ({rounds} rounds, medians)")
    print(f"   ProcessPoolExecutor + cloudpickle  {pool_ms:6.3f} ms/action (the floor)")
    print(f"   flyte_nb process backend           {flyte_ms:6.3f} ms/action  ratio {flyte_ms / pool_ms:.2f}x "
          f"(target < {OVERHEAD_TARGET_MS} ms)  {'PASS' if ok_overhead else 'FAIL'}")
    met = ok_speedup + ok_overhead
    print(f"\n{met}/2 targets met")
    return 1 if options.strict and met < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
