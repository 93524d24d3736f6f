"""``RateLimiter`` inside task bodies: weighted grants, settle(), one budget per name, timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

import flyte_nb as flyte
from tests.engine.test_rates import worst_window

env = flyte.TaskEnvironment("limited")
RECORDING = 0.01


@env.task
async def call_api(name: str, estimate: int, actual: int) -> float:
    limiter = flyte.RateLimiter(name, 1000, per="1s", burst=1000)  # same name: the same budget
    grant = await limiter.acquire(estimate)
    started = time.monotonic()
    grant.settle(actual)
    return started


@env.task
async def calls(name: str, n: int, estimate: int, actual: int) -> list[float]:
    return list(await asyncio.gather(*(call_api(name, estimate, actual) for _ in range(n))))


def test_settle_refunds_what_a_call_did_not_use():
    start = time.monotonic()
    run = flyte.run(calls, "tpm-refund", 10, 500, 100)
    starts = run.outputs(timeout=30)
    elapsed = max(starts) - start
    # charged at the estimate only, 10 × 500 tokens at 1000/s after a 1000 burst would take 4 s
    assert elapsed < 2.0, f"refunds let later calls go early, took {elapsed:.2f}s"
    limiter = flyte.RateLimiter("tpm-refund", 1000, per="1s", burst=1000)
    assert limiter._pool.granted == pytest.approx(1000), "net of refunds: 10 × 100 tokens"
    assert any(s.name == "limiter:tpm-refund" for s in run.statistics())


def test_settle_charges_what_a_call_used_beyond_its_estimate():
    flyte.RateLimiter("tpm-charge", 1000, per="1s", burst=1000)
    start = time.monotonic()
    starts = flyte.run(calls, "tpm-charge", 12, 100, 400).outputs(timeout=30)
    # 12 × 400 = 4800 tokens: past the 1000 burst the debt is paid at 1000/s before the last start
    assert max(starts) - start >= 2.5, "charges pushed the later calls back"


shared_env = flyte.TaskEnvironment("shared-limit")


@shared_env.task
async def take(which: int) -> float:
    limiter = flyte.RateLimiter("shared-20", 20, per="1s")
    async with limiter:
        return time.time()


@shared_env.task
def take_sync(which: int) -> float:
    with flyte.RateLimiter("shared-20", 20, per="1s"):
        return time.time()


@shared_env.task
async def take_alias(which: int) -> float:
    await flyte.rate_limit("shared-20")
    return time.time()


@shared_env.task
async def mixed(n: int) -> list[float]:
    calls = [(take, take_sync, take_alias)[i % 3].aio(i) for i in range(n)]
    return list(await asyncio.gather(*calls))


def test_same_name_is_one_budget_across_runs_sync_and_alias():
    runs = [flyte.run(mixed, 12), flyte.run(mixed, 12)]
    starts = [t for run in runs for t in run.outputs(timeout=30)]
    assert len(starts) == 24
    assert worst_window(starts, 20, 1, RECORDING) <= 0
    assert max(starts) - min(starts) >= 23 / 20 - 0.005


@env.task(timeout=0.3)
async def impatient() -> None:
    await flyte.RateLimiter("slow-1", 1, per="1s").acquire()


@env.task
async def after_timeouts() -> float:
    limiter = flyte.RateLimiter("slow-1", 1, per="1s")
    await limiter.acquire()  # the bucket's one unit
    start = time.monotonic()
    for _ in range(2):
        with pytest.raises(flyte.ActionTimeoutError):
            await impatient()
    await limiter.acquire()
    return time.monotonic() - start


def test_timed_out_waiters_consume_nothing():
    waited = flyte.run(after_timeouts).outputs(timeout=30)
    assert 0.9 <= waited < 1.5, f"the next unit came after one interval, not three: {waited:.2f}s"


def test_a_new_limit_applies_to_the_next_grant():
    async def main() -> float:
        slow = flyte.RateLimiter("retuned", 1, per="1s")
        await slow.acquire()
        flyte.RateLimiter("retuned", 50, per="1s")  # same name, new rate
        start = time.monotonic()
        await slow.acquire()
        return time.monotonic() - start

    assert asyncio.run(main()) < 0.3


def test_clear_errors():
    with pytest.raises(flyte.ConfigurationError, match="scope must be one of"):
        flyte.RateLimiter("x", 1, scope="galaxy")
    with pytest.raises(flyte.ConfigurationError, match="needs a name"):
        flyte.RateLimiter("", 1)
    with pytest.raises(flyte.ConfigurationError, match="no rate limiter named 'nobody'"):
        flyte.rate_limit("nobody")
    with pytest.raises(flyte.ConfigurationError, match="machine-scope Semaphore needs a name"):
        flyte.Semaphore(2, scope="machine")
    with pytest.raises(flyte.ConfigurationError, match="Semaphore scope must be one of"):
        flyte.Semaphore(2, name="x", scope="galaxy")
    with pytest.raises(flyte.ConfigurationError, match="at most one whole number or Semaphore"):
        flyte.with_runcontext(throttle={"db": [2, flyte.Semaphore(2, name="db")]})
    limiter = flyte.RateLimiter("errors", 100, per="1s", burst=10)
    with pytest.raises(flyte.ConfigurationError, match="cost must be a number > 0"):
        asyncio.run(limiter.acquire(0))
    grant = asyncio.run(limiter.acquire(2))
    grant.settle(1)
    with pytest.raises(flyte.ConfigurationError, match="already settled"):
        grant.settle(1)


@env.task
async def call_tpm(estimate: int, actual: int) -> float:
    tpm = flyte.RateLimiter("tpm-minute", 60_000, per="1m", burst=2_000)  # tokens per minute
    grant = await tpm.acquire(estimate)
    started = time.monotonic()
    grant.settle(actual)
    return started


@env.task
async def tpm_calls(n: int, estimate: int, actual: int) -> list[float]:
    return list(await asyncio.gather(*(call_tpm(estimate, actual) for _ in range(n))))


def test_tokens_per_minute_with_settle_corrections():
    start = time.monotonic()
    run = flyte.run(tpm_calls, 12, 1_000, 250)
    starts = run.outputs(timeout=60)
    # charged at the estimate, 12 × 1,000 tokens at 1,000/s after a 2,000 burst would take 10 s;
    # settled at 250 each the budget's debt is 12 × 250 - 2,000 = 1,000 tokens: about a second
    assert max(starts) - start < 5.0, f"settlements gave back what the calls did not use ({max(starts) - start:.2f}s)"
    (stat,) = [s for s in run.statistics() if s.name == "limiter:tpm-minute"]
    assert stat.capacity == 60_000 and stat.rate == 1_000 and stat.waiting == 0
    assert stat.holders == 3_000, "the minute's window counts the tokens used, net of settlements"
    assert run.state.rate_lanes["limiter:tpm-minute"].total == 3_000
