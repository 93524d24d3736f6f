"""Core benchmarks for flyte_nb: per-action overhead, memory of big maps, and limit accuracy.

Every flyte_nb number is printed next to the same work done by bare asyncio, so the table shows
what the engine itself costs rather than how fast this machine is:

1. Overhead per action: a 10,000-item ``flyte_nb.map`` (concurrency 50) of a trivial async task
   inside a run, against the same 10,000 coroutine calls under ``asyncio.Semaphore(50)`` +
   ``asyncio.gather`` on a fresh loop. The runs are interleaved round by round so machine noise
   hits both sides alike. Target: <= 50 us per action.
2. Peak extra memory of a 100,000-item map (concurrency 100) whose results are discarded as they
   stream, each measured in a fresh subprocess (tracemalloc peak and RSS), next to a naive
   ``gather`` that builds all 100,000 coroutines up front. Target: < 50 MB.
3. The seed scenario: 8 calls of a 0.5 s task with at most 3 at once must take ~1.5 s (within 5 %)
   and the action records must show exactly 3 running at the peak.
4. Fan-out drivers side by side: the per-child cost of 10,000 trivial children at concurrency 50
   for a *sync* parent with ``list(flyte_nb.map(...))`` (Flyte's own benchmark pattern), an async
   parent with ``map.aio``, an async parent with ``gather`` + ``asyncio.Semaphore`` and bare
   asyncio, 5 fresh processes (3 with --quick) x 3 rounds, run store recording. Targets: the sync parent within
   1.5x of ``map.aio``; every flyte_nb driver within 4x of bare asyncio (medians of per-round ratios).
5. The first run of a fresh process (a kernel restart): from ``flyte_nb.run(...)`` to its first
   action running, and the whole one-action run. Target: <= 10 ms each (medians of fresh processes).

Usage: ``python benchmarks/bench_core.py [--quick] [--strict]``. ``--quick`` cuts the sizes for a
CI smoke run; ``--strict`` exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flyte_nb  # noqa: E402
from report import Check, fmt_time, print_table, tally, verdict  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is optional
    psutil = None

OVERHEAD_TARGET_US = 50.0
MEMORY_TARGET_MB = 50.0
SYNC_VS_AIO_TARGET = 1.5
VS_BARE_TARGET = 4.0
FIRST_RUN_TARGET_MS = 10.0
SEED_TOLERANCE = 0.05
SEED_CALLS, SEED_LIMIT, SEED_SLEEP = 8, 3, 0.5

env = flyte_nb.TaskEnvironment("bench")


# ---------------------------------------------------------------------------------------- tasks
@env.task
async def ident(x: int) -> int:
    return x


@env.task
def ident_sync(x: int) -> int:
    return x


@env.task
async def ident_yield(x: int) -> int:
    await asyncio.sleep(0)  # suspends once, so each action stays in flight across loop iterations
    return x


@env.task
async def sleepy(x: int) -> int:
    await asyncio.sleep(SEED_SLEEP)
    return x


@env.task
def sleepy_sync(x: int) -> int:
    time.sleep(SEED_SLEEP)
    return x


@env.task
async def empty_driver() -> int:
    return 0


@env.task
async def map_aio_driver(n: int, concurrency: int) -> int:
    count = 0
    async for _ in flyte_nb.map.aio(ident, range(n), concurrency=concurrency):
        count += 1
    return count


@env.task
async def map_aio_yield_driver(n: int, concurrency: int) -> int:
    count = 0
    async for _ in flyte_nb.map.aio(ident_yield, range(n), concurrency=concurrency):
        count += 1
    return count


@env.task
async def map_sync_driver(n: int, concurrency: int) -> int:
    return len(list(flyte_nb.map(ident, range(n), concurrency=concurrency)))


@env.task
def sync_parent_map_driver(n: int, concurrency: int) -> int:
    """Flyte's benchmark pattern: a sync parent, ``list(flyte.map(child, range(n), concurrency=50))``."""
    count = 0
    for _ in flyte_nb.map(ident, range(n), concurrency=concurrency):  # results discarded as they stream
        count += 1
    return count


@env.task
def sync_parent_sync_map_driver(n: int, concurrency: int) -> int:
    """The same with a sync child: each child body runs on a worker thread."""
    return sum(1 for _ in flyte_nb.map(ident_sync, range(n), concurrency=concurrency))


@env.task
async def gather_semaphore_driver(n: int, concurrency: int) -> int:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with limit:
            return await ident(i)

    return len(await asyncio.gather(*(one(i) for i in range(n))))


@env.task
async def naive_gather_driver(n: int, concurrency: int) -> int:
    """The anti-pattern for contrast: all n calls created up front, bounded by a semaphore."""
    limit = flyte_nb.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with limit:
            return await ident(i)

    return len(await asyncio.gather(*(one(i) for i in range(n))))


@env.task
async def seed_flyte_semaphore() -> list[int]:
    limit = flyte_nb.Semaphore(SEED_LIMIT)

    async def one(i: int) -> int:
        async with limit:
            return await sleepy(i)

    return list(await asyncio.gather(*(one(i) for i in range(SEED_CALLS))))


@env.task
async def seed_asyncio_semaphore() -> list[int]:
    limit = asyncio.Semaphore(SEED_LIMIT)

    async def one(i: int) -> int:
        async with limit:
            return await sleepy(i)

    return list(await asyncio.gather(*(one(i) for i in range(SEED_CALLS))))


@env.task
async def seed_map_aio() -> list[int]:
    return [r async for r in flyte_nb.map.aio(sleepy, range(SEED_CALLS), concurrency=SEED_LIMIT)]


@env.task
async def seed_map_sync() -> list[int]:
    return list(flyte_nb.map(sleepy, range(SEED_CALLS), concurrency=SEED_LIMIT))


@env.task
async def seed_map_sync_task() -> list[int]:
    return list(flyte_nb.map(sleepy_sync, range(SEED_CALLS), concurrency=SEED_LIMIT))


# ---------------------------------------------------------------------------- bare asyncio side
async def bare_gather(n: int, concurrency: int) -> int:
    """n calls of the same trivial coroutine, Semaphore + gather (one task per call, like map)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with limit:
            return await ident.func(i)

    return len(await asyncio.gather(*(one(i) for i in range(n))))


async def bare_workers(n: int, concurrency: int) -> int:
    """n calls through `concurrency` long-lived workers: no task per call, the cheapest baseline."""
    inputs = iter(range(n))
    count = 0

    async def worker() -> None:
        nonlocal count
        for i in inputs:
            await ident.func(i)
            count += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count


# -------------------------------------------------------------------------------------- helpers
def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of ``fn()``, after a collection so garbage from earlier rounds is not billed."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_flyte(driver: flyte_nb.TaskTemplate, *args: object) -> flyte_nb.Run:
    run = flyte_nb.run(driver, *args)
    run.outputs()
    return run


def fmt_mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:7.1f} MB"


# --------------------------------------------------------------------- 1. per-action overhead
def bench_overhead(n: int, concurrency: int, rounds: int) -> list[Check]:
    print(f"\n1. Per-action overhead: {n:,}-item map, concurrency {concurrency}, trivial async task")
    print(f"   1 warm-up + {rounds} interleaved rounds (order rotated each round); overhead = (flyte_nb - bare) / N")
    variants: dict[str, Callable[[], object]] = {
        "bare asyncio: Semaphore + gather": lambda: asyncio.run(bare_gather(n, concurrency)),
        "bare asyncio: bounded workers": lambda: asyncio.run(bare_workers(n, concurrency)),
        "flyte_nb: async for map.aio()": lambda: run_flyte(map_aio_driver, n, concurrency),
        "flyte_nb: list(map()) in async task": lambda: run_flyte(map_sync_driver, n, concurrency),
        "flyte_nb: empty run (fixed cost)": lambda: run_flyte(empty_driver),
    }
    names = list(variants)
    for name in names:  # warm-up: engine thread, greenlet pool, imports, allocator arenas
        variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(variants[name]))

    base = times["bare asyncio: Semaphore + gather"]
    workers = times["bare asyncio: bounded workers"]
    rows, checks = [], []
    for name in names:
        t = times[name]
        row = [name, fmt_time(statistics.median(t)), fmt_time(min(t)), f"{min(t) / n * 1e6:6.2f} µs"]
        if name.startswith("flyte_nb: empty"):
            row[3] = "-"
            row += ["-", "-", "-", "-", "(info)"]
        elif name.startswith("flyte_nb"):
            paired = [(a - b) / n * 1e6 for a, b in zip(t, base)]
            med, best = statistics.median(paired), (min(t) - min(base)) / n * 1e6
            vs_workers = statistics.median([(a - b) / n * 1e6 for a, b in zip(t, workers)])
            ok = med <= OVERHEAD_TARGET_US
            checks.append(Check(f"overhead {name}", ok))
            row += [f"{med:6.2f} µs", f"{best:6.2f} µs", f"{vs_workers:6.2f} µs",
                    f"{statistics.median(t) / statistics.median(base):5.2f}x", verdict(ok)]
        else:
            ratio = statistics.median(t) / statistics.median(base)
            row += ["-", "-", "-", f"{ratio:5.2f}x", "(baseline)" if t is base else "(info)"]
        rows.append(row)
    print_table(["variant", "median", "best", "best/item", "ovh median", "ovh best", "ovh vs workers",
                 "ratio", f"≤{OVERHEAD_TARGET_US:g}µs"], rows)
    print("   ovh median = median over rounds of the paired (flyte_nb - bare gather) difference; "
          "ovh best = best flyte_nb - best bare; ratio = medians vs bare gather")
    return checks


# ------------------------------------------------------------------- 2. memory (subprocesses)
def rss_now() -> int:
    if psutil is not None:
        return psutil.Process().memory_info().rss
    with open("/proc/self/statm") as statm:  # Linux fallback
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss() -> int:
    """This process's RSS high-water mark.

    On Linux it is VmHWM, which belongs to the process image: ``ru_maxrss`` survives exec, so a
    child spawned by this (large) benchmark process would start with the parent's RSS as its peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux, bytes on macOS


def settled_traced_memory(step: float = 0.05, limit: float = 2.0) -> int:
    """Traced bytes once the engine thread has finished freeing (outputs() returns before it unwinds)."""
    current = tracemalloc.get_traced_memory()[0]
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        time.sleep(step)
        gc.collect()
        previous, current = current, tracemalloc.get_traced_memory()[0]
        if current >= previous * 0.99:
            break
    return current


def memory_child(impl: str, mode: str, n: int, concurrency: int) -> dict[str, float]:
    """Inside a fresh process: one big fan-out, measured by tracemalloc or by RSS (never both)."""
    workloads: dict[str, Callable[[], object]] = {
        "flyte_map": lambda: run_flyte(map_aio_driver, n, concurrency),
        "flyte_map_yield": lambda: run_flyte(map_aio_yield_driver, n, concurrency),
        "flyte_sync_map": lambda: run_flyte(sync_parent_map_driver, n, concurrency),
        "flyte_naive": lambda: run_flyte(naive_gather_driver, n, concurrency),
        "bare_naive": lambda: asyncio.run(bare_gather(n, concurrency)),
    }
    work = workloads[impl]
    run_flyte(map_aio_driver, 200, 10)  # warm-up: engine thread and lazy imports are not the map's cost
    asyncio.run(bare_gather(200, 10))
    gc.collect()
    out: dict[str, float] = {}
    if mode == "tracemalloc":
        tracemalloc.start()
        kept = work()  # keep the Run handle alive: what it retains counts as "retained"
        out["peak"] = tracemalloc.get_traced_memory()[1]
        out["current"] = settled_traced_memory()
        tracemalloc.stop()
        del kept
    else:
        rss_before = rss_now()
        start = time.perf_counter()
        kept = work()
        out["wall"] = time.perf_counter() - start
        out["rss_delta"] = rss_now() - rss_before
        out["hwm_delta"] = max(max_rss() - rss_before, 0)
        del kept
    return out


def spawn_child(impl: str, mode: str, n: int, concurrency: int) -> dict[str, Any]:
    return spawn(["--child", impl, mode, str(n), str(concurrency)])


def bench_memory(n: int, concurrency: int) -> list[Check]:
    print(f"\n2. Peak extra memory: {n:,}-item fan-out, concurrency {concurrency}, trivial async task, "
          "results discarded as they stream")
    print("   each cell from a fresh subprocess; tracemalloc and RSS measured in separate processes "
          "(tracing inflates RSS ~3x and time ~5x)")
    variants = {
        "flyte_nb: async for map.aio()": "flyte_map",
        "flyte_nb: async for map.aio(), task awaits once": "flyte_map_yield",
        "flyte_nb: for ... in map() in a sync task": "flyte_sync_map",
        "naive: gather of all N + flyte_nb.Semaphore": "flyte_naive",
        "naive: bare asyncio gather of all N + Semaphore": "bare_naive",
    }
    rows, checks = [], []
    for label, impl in variants.items():
        traced = spawn_child(impl, "tracemalloc", n, concurrency)
        rss = spawn_child(impl, "rss", n, concurrency)
        row = [label, fmt_time(rss["wall"]), fmt_mb(traced["peak"]), f"{traced['peak'] / n:6.0f} B",
               fmt_mb(traced["current"]), fmt_mb(rss["rss_delta"]), fmt_mb(rss["hwm_delta"])]
        if impl.startswith(("flyte_map", "flyte_sync")):
            worst = max(traced["peak"], rss["hwm_delta"])
            ok = worst < MEMORY_TARGET_MB * 1e6
            checks.append(Check(f"memory {label}", ok))
            row.append(verdict(ok))
        else:
            row.append("(contrast)")
        rows.append(row)
    print_table(["variant", "wall", "traced peak", "peak/item", "retained", "RSS Δ", "RSS peak Δ",
                 f"<{MEMORY_TARGET_MB:g}MB"], rows)
    print("   traced peak = tracemalloc peak since just before the run (all threads); retained = still traced "
          "after outputs() returned and the engine settled, Run handle alive;")
    print("   RSS Δ = RSS after - before (psutil); RSS peak Δ = VmHWM high-water - RSS before. "
          "PASS needs traced peak and RSS peak Δ both under target.")
    return checks


# ------------------------------------------------------------------------- 3. seed scenario
def bench_seed(repeats: int) -> list[Check]:
    ideal = -(-SEED_CALLS // SEED_LIMIT) * SEED_SLEEP
    print(f"\n3. Seed scenario: {SEED_CALLS} calls of a {SEED_SLEEP:g} s task, at most {SEED_LIMIT} at once; "
          f"ideal {ideal:.3f} s (run() -> outputs()), {repeats} repeat(s)")
    variants: dict[str, tuple[flyte_nb.TaskTemplate, flyte_nb.TaskTemplate]] = {
        "flyte_nb.Semaphore(3) + gather": (seed_flyte_semaphore, sleepy),
        "asyncio.Semaphore(3) + gather": (seed_asyncio_semaphore, sleepy),
        "map.aio(concurrency=3)": (seed_map_aio, sleepy),
        "list(map(concurrency=3)) in async task": (seed_map_sync, sleepy),
        "list(map(concurrency=3)), sync task body": (seed_map_sync_task, sleepy_sync),
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (driver, task) in variants.items():
            gc.collect()
            start = time.perf_counter()
            run = flyte_nb.run(driver)
            outputs = run.outputs()
            walls[name].append(time.perf_counter() - start)
            assert outputs == list(range(SEED_CALLS)), outputs
            peaks[name].append(run.peak_concurrency(task))
    rows, checks = [], []
    for name in variants:
        med, best = statistics.median(walls[name]), min(walls[name])
        ok_time = med <= ideal * (1 + SEED_TOLERANCE)
        ok_peak = all(p == SEED_LIMIT for p in peaks[name])
        checks.append(Check(f"seed wall {name}", ok_time))
        checks.append(Check(f"seed peak {name}", ok_peak))
        rows.append([name, f"{med:7.3f} s", f"{best:7.3f} s", f"{(med / ideal - 1) * 100:+6.2f} %",
                     f"{(med - ideal) * 1e3:6.1f} ms", verdict(ok_time),
                     ",".join(map(str, sorted(set(peaks[name])))), verdict(ok_peak)])
    print_table(["variant", "median", "best", "vs ideal", "extra", f"≤+{SEED_TOLERANCE:.0%}",
                 "peak conc.", f"={SEED_LIMIT}"], rows)
    print("   peak conc. = most actions of the sleeping task running at once, from run.actions started_at/ended_at")
    return checks


# ------------------------------------------------------ 4. fan-out drivers, fresh processes
FANOUT_DRIVERS = {
    "flyte_nb: sync parent, list(map())": "sync_map",
    "flyte_nb: async parent, map.aio()": "map_aio",
    "flyte_nb: async parent, gather + Semaphore": "gather",
    "bare asyncio: gather + Semaphore (floor)": "bare",
    "flyte_nb: sync parent, list(map()) of a sync child": "sync_map_sync",
}


def fanout_child(n: int, concurrency: int, rounds: int) -> dict[str, list[float]]:
    """Inside a fresh process: every driver ``rounds`` times after a small warm-up, order rotated
    each round; seconds per run, by driver."""
    from flyte_nb.data.recorder import flush

    work: dict[str, Callable[[int], object]] = {
        "sync_map": lambda k: run_flyte(sync_parent_map_driver, k, concurrency),
        "map_aio": lambda k: run_flyte(map_aio_driver, k, concurrency),
        "gather": lambda k: run_flyte(gather_semaphore_driver, k, concurrency),
        "bare": lambda k: asyncio.run(bare_gather(k, concurrency)),
        "sync_map_sync": lambda k: run_flyte(sync_parent_sync_map_driver, k, concurrency),
    }
    for fn in work.values():  # engine thread, store, carriers and lazy imports are not the fan-out's cost
        fn(200)
    flush()
    names = list(work)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = (os.getpid() + r) % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(timed(lambda: work[name](n)))
            flush()  # the next driver does not pay for this one's rows
    return out


def bench_fanout(n: int, concurrency: int, processes: int, rounds: int) -> list[Check]:
    print(f"\n4. Fan-out drivers: {n:,} trivial children, concurrency {concurrency}, run store recording; "
          f"{processes} fresh processes x {rounds} rounds")
    samples: dict[str, list[float]] = {impl: [] for impl in FANOUT_DRIVERS.values()}
    for _ in range(processes):
        for impl, seconds in spawn(["--child", "fanout", str(rounds), str(n), str(concurrency)]).items():
            samples[impl] += seconds

    def paired(impl: str, base: str) -> float:
        """Median of the ratios within each round: load that comes and goes hits both sides alike."""
        return statistics.median(a / b for a, b in zip(samples[impl], samples[base]))

    rows, checks = [], []
    for label, impl in FANOUT_DRIVERS.items():
        per, best = statistics.median(samples[impl]) / n, min(samples[impl]) / n
        row = [label, f"{per * 1e3:7.4f} ms", f"{best * 1e3:7.4f} ms", f"{paired(impl, 'bare'):5.2f}x"]
        if impl == "bare":
            row += ["(floor)", "-", "-"]
        elif impl == "sync_map_sync":  # a thread hand-off each way per child: no target
            row += ["(info)", f"{paired(impl, 'map_aio'):5.2f}x", "-"]
        else:
            ok_floor = paired(impl, "bare") <= VS_BARE_TARGET
            checks.append(Check(f"fan-out {label} vs bare asyncio", ok_floor))
            row.append(verdict(ok_floor))
            if impl == "sync_map":
                ok_aio = paired(impl, "map_aio") <= SYNC_VS_AIO_TARGET
                checks.append(Check(f"fan-out {label} vs map.aio", ok_aio))
                row += [f"{paired(impl, 'map_aio'):5.2f}x", verdict(ok_aio)]
            else:
                row += [f"{paired(impl, 'map_aio'):5.2f}x", "-"]
        rows.append(row)
    print_table(["driver", "per child", "best", "vs bare", f"≤{VS_BARE_TARGET:g}x", "vs map.aio",
                 f"≤{SYNC_VS_AIO_TARGET:g}x"], rows)
    print("   per child = median run() -> outputs() over all rounds / N; vs = median of the per-round ratios; each "
          "process warms every driver up on 200 children, rotates the order each round and flushes the store between runs")
    return checks


# --------------------------------------------------------- 5. the first run of a process
def first_run_child() -> dict[str, float]:
    """Inside a fresh process (flyte_nb imported, an environment and a task defined): one one-action run."""
    started: list[float] = []
    first = flyte_nb.TaskEnvironment("bench_first")

    @first.task
    async def hello() -> int:
        started.append(time.perf_counter())
        return 1

    start = time.perf_counter()
    run = flyte_nb.run(hello)
    returned = time.perf_counter()
    run.outputs()
    done = time.perf_counter()
    return {"returned": returned - start, "first_action": started[0] - start, "whole": done - start}


def bench_first_run(processes: int) -> list[Check]:
    print(f"\n5. The first run of a fresh process (a kernel restart): a one-action run, run store on (a store "
          f"with history); medians of {processes} processes")
    from flyte_nb.data.recorder import flush

    run_flyte(empty_driver)  # the store exists and has history, as a kernel restart finds it
    flush()
    samples: dict[str, list[float]] = {"returned": [], "first_action": [], "whole": []}
    for _ in range(processes):
        for key, seconds in spawn(["--child", "first", "-", "0", "0", "--home", os.environ["FLYTE_NB_HOME"]]).items():
            samples[key].append(seconds)
    labels = {"returned": "run() returns", "first_action": "run() -> first action running",
              "whole": "run() -> outputs() (whole run)"}
    rows, checks = [], []
    for key, label in labels.items():
        med = statistics.median(samples[key]) * 1e3
        row = [label, f"{med:6.1f} ms", f"{min(samples[key]) * 1e3:6.1f} ms", f"{max(samples[key]) * 1e3:6.1f} ms"]
        if key == "returned":
            row.append("(info)")
        else:
            ok = med <= FIRST_RUN_TARGET_MS
            checks.append(Check(f"first run: {label}", ok))
            row.append(verdict(ok))
        rows.append(row)
    print_table(["measure", "median", "best", "worst", f"≤{FIRST_RUN_TARGET_MS:g}ms"], rows)
    print("   each process imports flyte_nb, defines an environment and a task, then runs it once; "
          "before issue 16 this was ~45-50 ms (and ~200 ms in a script, which imported IPython)")
    return checks


def spawn(args: list[str]) -> dict[str, Any]:
    """Run this script as a fresh child process and return the JSON of its last line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- main
def revision() -> str:
    """The git commit being measured, marked dirty when the working tree has changes (best effort)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "flyte_nb"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty flyte_nb" if dirty else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "MODE", "N", "CONCURRENCY"), help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    home = tempfile.mkdtemp(prefix="flyte_nb_bench_")  # the run store goes here, never to ~/.flyte_nb
    os.environ["FLYTE_NB_HOME"] = home
    if args.child:  # a subprocess started by spawn()
        impl, mode, n, concurrency = args.child
        if impl == "first":  # the parent's store (with history): as a kernel restart finds it
            os.environ["FLYTE_NB_HOME"] = args.home
            print(json.dumps(first_run_child()))
            shutil.rmtree(home, ignore_errors=True)
            return 0
        try:
            if impl == "fanout":
                print(json.dumps(fanout_child(int(n), int(concurrency), int(mode))))
            else:
                print(json.dumps(memory_child(impl, mode, int(n), int(concurrency))))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return 0

    overhead_n, memory_n = (2_000, 20_000) if args.quick else (10_000, 100_000)
    seed_repeats = 1 if args.quick else 3
    fanout_n, fanout_processes = (2_000, 3) if args.quick else (10_000, 5)
    first_processes = 3 if args.quick else 7
    print(f"flyte_nb {flyte_nb.__version__} ({revision()}) core benchmarks ({'quick' if args.quick else 'full'}) — "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
          f"psutil {'yes' if psutil else 'no'}")
    try:
        checks = bench_overhead(overhead_n, 50, rounds=5)
        checks += bench_memory(memory_n, 100)
        checks += bench_seed(seed_repeats)
        checks += bench_fanout(fanout_n, 50, fanout_processes, rounds=3)
        checks += bench_first_run(first_processes)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    return tally(checks, args.strict)


if __name__ == "__main__":
    sys.exit(main())
