"""The socket server's idle timeout (``daemon.api.idle.IdleWatch``): one re-armed timer per connection
bounds each wait for a request, as a per-request ``asyncio.timeout`` did."""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon.api.idle import IdleTimeout, IdleWatch


async def test_a_wait_longer_than_the_timeout_raises_idle_timeout_at_its_deadline() -> None:
    watch = IdleWatch(0.2)
    began = time.monotonic()
    with pytest.raises(IdleTimeout):
        await watch.guard(asyncio.sleep(5))
    assert 0.19 <= time.monotonic() - began < 1.0
    watch.close()


async def test_waits_each_shorter_than_the_timeout_never_time_out_however_long_they_add_up_to() -> None:
    watch = IdleWatch(0.2)
    for _ in range(6):  # 0.6 s in all: the single timer re-arms for each wait's own deadline
        assert await watch.guard(asyncio.sleep(0.1, "request")) == "request"
    watch.close()


async def test_time_spent_between_waits_serving_a_request_does_not_count() -> None:
    watch = IdleWatch(0.2)
    await watch.guard(asyncio.sleep(0.15))
    await asyncio.sleep(0.3)  # a slow request being served: the timer fires, but nothing is waited for
    assert await watch.guard(asyncio.sleep(0.15, "next")) == "next"
    with pytest.raises(IdleTimeout):  # and the watch still bounds the wait after that
        await watch.guard(asyncio.sleep(5))
    watch.close()


async def test_a_cancellation_from_outside_is_not_mistaken_for_idleness() -> None:
    async def serve() -> None:
        watch = IdleWatch(5)
        try:
            await watch.guard(asyncio.sleep(5))
        finally:
            watch.close()

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
