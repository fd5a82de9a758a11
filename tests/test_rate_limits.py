"""The rate limits' contract, on both stores: this daemon's memory and the PostgreSQL rows every daemon
shares. Time is injected (the store answers for the moment the test says), so nothing sleeps; on
PostgreSQL "another daemon" is another store with a pool of its own on the same database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise

import pytest

from daemon.channels.telegram import bot_id
from daemon.core.errors import StorageError
from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer, RateLimitStore, Reservation
from daemon.database_url import parse_postgres_url
from daemon.storage.postgres import PostgresStore
from tests.pg import create_database, drop_database

Opener = Callable[[], Awaitable[RateLimitStore]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "postgres"])
async def open_limits(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Opener]:
    """Opens the limits as another daemon would see them: on PostgreSQL a store (and pool) of its own
    on the test's database; in memory the one daemon's limits (a second daemon has none to share)."""
    stores: list[PostgresStore] = []
    memory = MemoryRateLimits(clock)
    admin = request.getfixturevalue("postgres_server") if request.param == "postgres" else ""
    url = await create_database(admin) if admin else ""

    async def opener() -> RateLimitStore:
        if not url:
            return memory
        store = PostgresStore(parse_postgres_url(url))
        await store.open()
        stores.append(store)
        return store.rate_limits(clock)

    yield opener
    for store in stores:
        await store.close()
    if url:
        await drop_database(admin, url)


@pytest.fixture
async def limits(open_limits: Opener) -> RateLimitStore:
    return await open_limits()


def booked(wait: float) -> Reservation:
    return Reservation(True, pytest.approx(wait, abs=1e-6))  # type: ignore[arg-type]


async def test_sends_under_one_limit_are_booked_one_interval_apart_in_the_order_asked(
    limits: RateLimitStore,
) -> None:
    sms = [Limit("sms", 10.0)]
    assert [await limits.reserve(sms) for _ in range(4)] == [booked(0), booked(0.1), booked(0.2), booked(0.3)]


async def test_a_burst_goes_at_once_then_the_steady_rate_and_again_after_a_pause(
    limits: RateLimitStore, clock: Clock
) -> None:
    bot = [Limit("telegram:1", 10.0, burst=3)]
    assert [await limits.reserve(bot) for _ in range(5)] == [booked(0), booked(0), booked(0), booked(0.1),
                                                             booked(0.2)]
    clock.now += 10  # idle: the burst is back, and no more
    assert [await limits.reserve(bot) for _ in range(4)] == [booked(0), booked(0), booked(0), booked(0.1)]


async def test_each_key_has_its_own_pace(limits: RateLimitStore) -> None:
    for _ in range(3):
        await limits.reserve([Limit("telegram:1:chat:5", 1.0)])
    assert await limits.reserve([Limit("telegram:1:chat:6", 1.0)]) == booked(0)
    assert await limits.reserve([Limit("email", 1.0)]) == booked(0)
    assert await limits.reserve([Limit("telegram:1:chat:5", 1.0)]) == booked(3)


async def test_a_send_under_two_limits_goes_when_both_allow_and_charges_both_at_that_moment(
    limits: RateLimitStore,
) -> None:
    bot = Limit("telegram:1", 10.0)
    chat = Limit("telegram:1:chat:5", 1.0)
    assert await limits.reserve([bot, chat]) == booked(0)
    assert await limits.reserve([bot, Limit("telegram:1:chat:6", 1.0)]) == booked(0.1)
    assert await limits.reserve([bot, chat]) == booked(1.0)  # the chat's turn; the bot's slot at 1.0 too
    assert await limits.reserve([bot, Limit("telegram:1:chat:7", 1.0)]) == booked(1.1)  # no max_skip: behind it


async def test_a_send_held_back_by_its_chat_books_nothing_until_it_is_within_the_bots_max_skip(
    limits: RateLimitStore, clock: Clock
) -> None:
    bot = Limit("telegram:1", 10.0, max_skip=0.3)
    chat = Limit("telegram:1:chat:5", 1.0)
    start = clock.now
    assert await limits.reserve([bot, chat]) == booked(0)
    assert await limits.reserve([bot, chat]) == Reservation(False, pytest.approx(0.7))  # type: ignore[arg-type]
    assert await limits.reserve([bot, Limit("telegram:1:chat:6", 1.0)]) == booked(0.1)  # not behind the chat
    clock.now = start + 0.5
    assert await limits.reserve([bot, chat]) == Reservation(False, pytest.approx(0.2))  # type: ignore[arg-type]
    clock.now = start + 0.7
    assert await limits.reserve([bot, chat]) == booked(0.3)


async def test_a_block_holds_its_key_back_and_never_shortens_an_earlier_one(
    limits: RateLimitStore, clock: Clock
) -> None:
    chat = Limit("telegram:1:chat:5", 1.0)
    await limits.block(chat, 5.0)
    await limits.block(chat, 2.0)
    assert await limits.reserve([Limit("telegram:1:chat:6", 1.0)]) == booked(0)
    assert await limits.reserve([chat]) == booked(5.0)
    clock.now += 100
    burst = Limit("telegram:1", 10.0, burst=3)
    await limits.block(burst, 1.0)
    # nothing before the block's end, then the steady rate: the provider's refusal spent the burst
    assert [await limits.reserve([burst]) for _ in range(3)] == [booked(1.0), booked(1.1), booked(1.2)]


async def test_concurrent_callers_on_several_connections_never_share_a_slot(
    open_limits: Opener,
) -> None:
    daemons = [await open_limits() for _ in range(3)]
    bot = Limit("telegram:1", 30.0)
    chats = [Limit(f"telegram:1:chat:{c}", 1.0) for c in range(3)]
    asks = [(daemons[i % 3], sorted([bot, chats[i % 3]], key=lambda limit: limit.key)) for i in range(45)]
    answers = await asyncio.gather(*(store.reserve(limits) for store, limits in asks))
    assert all(answer.reserved for answer in answers)
    bot_slots = sorted(answer.wait for answer in answers)
    assert all(b - a >= 1 / 30 - 1e-6 for a, b in pairwise(bot_slots))
    for c in range(3):
        chat_slots = sorted(answer.wait for (_, limits), answer in zip(asks, answers, strict=True)
                            if chats[c] in limits)
        assert len(chat_slots) == 15
        assert all(b - a >= 1 - 1e-6 for a, b in pairwise(chat_slots))


async def test_the_pacer_sleeps_what_the_store_says_and_asks_again_when_nothing_was_booked(
    limits: RateLimitStore, clock: Clock
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock.now += seconds

    pacer = Pacer(limits, Limit("telegram:1", 10.0, max_skip=0.3), per_key_rate=1.0,
                  per_key_prefix="telegram:1:chat:", sleep=sleep)
    for _ in range(3):
        await pacer.acquire(5)
    assert slept == [0.7, 0.3, 0.7, 0.3]  # per send after the first: too far, asked again, then booked


# -- PostgreSQL only ------------------------------------------------------------------------------

async def test_on_the_databases_clock_the_second_send_waits_one_interval(pg_database: str) -> None:
    store = PostgresStore(parse_postgres_url(pg_database))
    await store.open()
    try:
        limits = store.rate_limits()  # no clock: the server's
        email = [Limit("email", 2.0)]
        first, second = await limits.reserve(email), await limits.reserve(email)
    finally:
        await store.close()
    assert first == booked(0)
    assert second.reserved and 0.4 < second.wait <= 0.5


async def test_an_unreachable_database_is_a_storage_error_and_books_nothing(pg_database: str) -> None:
    store = PostgresStore(parse_postgres_url(pg_database))
    await store.open()
    limits = store.rate_limits()
    await store.close()
    with pytest.raises(StorageError):
        await limits.reserve([Limit("sms", 1.0)])
    with pytest.raises(StorageError):
        await limits.block(Limit("sms", 1.0), 1.0)


async def test_keys_out_of_order_are_refused_before_they_can_deadlock(pg_database: str) -> None:
    store = PostgresStore(parse_postgres_url(pg_database))
    await store.open()
    try:
        with pytest.raises(ValueError, match="sorted"):
            await store.rate_limits().reserve([Limit("telegram:1:chat:5", 1.0), Limit("telegram:1", 30.0)])
    finally:
        await store.close()


def test_the_telegram_limits_are_named_by_the_bots_id_never_by_its_secret() -> None:
    assert bot_id("123456:AAE-secret") == "123456"
    odd = bot_id("no-colon-secret")
    assert "secret" not in odd and odd.startswith("sha256-")
