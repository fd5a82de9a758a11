"""The ``health`` reply's reads: attempts per channel, per time bucket and outcome, and the durations
of recent provider calls for latency percentiles. Both walk the ``attempts_finished`` index over the
window only; the durations are capped per channel, newest first, so a busy hour costs a bounded read."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from daemon.core.models import TIMED_OUTCOMES, Outcome
from daemon.core.store import ChannelActivity

MAX_DURATIONS = 10_000  # per channel: enough for a stable p95, bounded however busy the hour was
_TIMED = ",".join(f"'{o}'" for o in sorted(TIMED_OUTCOMES))


async def channel_activity(
    read: aiosqlite.Connection, since: datetime, buckets: int, step: float, max_durations: int = MAX_DURATIONS,
) -> dict[str, ChannelActivity]:
    """Per channel with attempts finished in ``[since, since + buckets * step)``: counts per bucket (oldest
    first) for every outcome, and the durations in seconds of its newest calls (TIMED_OUTCOMES)."""
    start = since.timestamp()
    end = start + buckets * step
    rows = await read.execute_fetchall(
        "SELECT channel, outcome, CAST((finished_at - ?) / ? AS INTEGER) AS bucket, count(*) FROM attempts"
        " WHERE finished_at >= ? AND finished_at < ? AND outcome IS NOT NULL GROUP BY channel, outcome, bucket",
        (start, step, start, end),
    )
    series: dict[str, dict[str, list[int]]] = {}
    for channel, outcome, bucket, count in rows:
        per_outcome = series.setdefault(channel, {str(o): [0] * buckets for o in Outcome})
        if outcome in per_outcome and 0 <= bucket < buckets:
            per_outcome[outcome][bucket] = count
    activity: dict[str, ChannelActivity] = {}
    for channel, per_outcome in series.items():
        durations = await read.execute_fetchall(
            f"SELECT finished_at - started_at FROM attempts WHERE finished_at >= ? AND finished_at < ?"
            f" AND channel = ? AND outcome IN ({_TIMED}) ORDER BY finished_at DESC LIMIT ?",
            (start, end, channel, max_durations),
        )
        activity[channel] = ChannelActivity(per_outcome, tuple(max(d[0], 0.0) for d in durations))
    return activity
