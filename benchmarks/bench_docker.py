"""Docker backend benchmarks, side by side in one run.

1. Cold per-action cost: N trivial actions one after another, each in a fresh container (create,
   start, log stream, wait, collect, remove), against a bare ``docker run --rm IMAGE python3 -c pass``
   the same number of times. Target: within 1.3x of the bare docker run.
2. Warm per-action overhead with ``ReusePolicy``: N trivial actions one after another on one
   long-lived worker container, against the same calls on the process backend (the floor for
   shipping a function to another process). Target: under 10 ms per action.

Usage: ``python benchmarks/bench_docker.py [--quick] [--strict]`` (needs a Docker daemon and the
base image: ``scripts/docker-setup``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("FLYTE_NB_HOME", tempfile.mkdtemp(prefix="flyte_nb-bench-"))

import flyte_nb  # noqa: E402
from flyte_nb.backends import docker as dockerbackend  # noqa: E402

COLD_TARGET = 1.3
WARM_TARGET_MS = 10.0
IMAGE = dockerbackend.BASE_IMAGE

cold_env = flyte_nb.TaskEnvironment("bench-docker-cold", backend="docker", image=IMAGE, concurrency=1)
warm_env = flyte_nb.TaskEnvironment("bench-docker-warm", backend="docker", image=IMAGE,
                                    reusable=flyte_nb.ReusePolicy(replicas=1, concurrency=1))
process_env = flyte_nb.TaskEnvironment("bench-docker-process", backend="process", concurrency=1)
drivers = flyte_nb.TaskEnvironment("bench-docker-drivers")


def trivial(i: int) -> int:
    return i


tasks = {name: env.task(trivial, short_name=f"trivial_{name}")
         for name, env in (("cold", cold_env), ("warm", warm_env), ("process", process_env))}


@drivers.task
async def sequential(kind: str, n: int) -> int:
    return len(list(flyte_nb.map(tasks[kind], range(n), concurrency=1)))


def flyte_seq(kind: str, n: int) -> float:
    start = time.perf_counter()
    assert flyte_nb.run(sequential, kind, n).outputs() == n
    return time.perf_counter() - start


def bare_docker(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["docker", "run", "--rm", IMAGE, "python3", "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a CI smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    options = parser.parse_args()
    try:
        dockerbackend._connect().close()
    except flyte_nb.ConfigurationError as error:
        print(f"bench_docker: SKIP, {error}")
        return 1 if options.strict else 0
    cold_n = 5 if options.quick else 20
    warm_n = 100 if options.quick else 1000
    rounds = 2 if options.quick else 3
    print(f"flyte_nb {flyte_nb.__version__} docker backend benchmarks — {os.cpu_count()} CPUs, image {IMAGE}")

    flyte_seq("cold", 1)  # image check (once per image) and warm caches
    bare_docker(1)
    flyte_cold, bare = [], []
    for _ in range(rounds):
        bare.append(bare_docker(cold_n) / cold_n)
        flyte_cold.append(flyte_seq("cold", cold_n) / cold_n)
    cold_ratio = statistics.median(flyte_cold) / statistics.median(bare)

    flyte_seq("warm", 5)  # start the worker container
    flyte_seq("process", 5)
    warm, process = [], []
    for _ in range(rounds):
        warm.append(flyte_seq("warm", warm_n) / warm_n * 1000)
        process.append(flyte_seq("process", warm_n) / warm_n * 1000)
    warm_ms = statistics.median(warm)

    ok_cold = cold_ratio <= COLD_TARGET
    ok_warm = warm_ms < WARM_TARGET_MS
    print(f"\n1. cold per-action cost, {cold_n} actions one after another ({rounds} rounds, medians)")
    print(f"   docker run --rm IMAGE python3 -c pass   {statistics.median(bare) * 1000:7.1f} ms")
    print(f"   flyte_nb docker backend (one-shot)      {statistics.median(flyte_cold) * 1000:7.1f} ms   ratio "
          f"{cold_ratio:.2f}x (target <= {COLD_TARGET}x)  {'PASS' if ok_cold else 'FAIL'}")
    print(f"\n2. warm per-action overhead, {warm_n} trivial actions one after another ({rounds} rounds, medians)")
    print(f"   process backend (reference)             {statistics.median(process):7.3f} ms")
    print(f"   docker backend with ReusePolicy         {warm_ms:7.3f} ms   (target < {WARM_TARGET_MS:g} ms)  "
          f"{'PASS' if ok_warm else 'FAIL'}")
    met = ok_cold + ok_warm
    print(f"\n{met}/2 targets met")
    return 1 if options.strict and met < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
