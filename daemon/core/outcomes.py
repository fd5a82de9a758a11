"""What an attempt's outcome tells the operators and the circuit breakers: the ledger's log line, the
events, the breaker's count. The engine's walk and its bundles both report through here."""

from __future__ import annotations

import logging

from daemon.core.breaker import BreakerState, CircuitBreaker
from daemon.core.events import EventBus
from daemon.core.failover import AttemptResult, Plan, StepKind
from daemon.core.models import Channel, Notification, Status, iso, iso_at
from daemon.protocol import AttemptJSON

# the attempt ledger keeps the engine's logger name: operators (and JSON log filters) select it by that
log = logging.getLogger("daemon.core.engine")


def breaker_saw(breaker: CircuitBreaker, channel: Channel, result: AttemptResult, events: EventBus) -> None:
    """Count ``result`` on ``channel``'s breaker; log and publish a change of its state."""
    before = breaker.state
    if result.channel_failed:
        breaker.failure()
    else:  # delivered, refused for good, rate limited: the provider answered
        breaker.success()
    after = breaker.state
    if after is not before:
        if after is BreakerState.OPEN:
            log.warning("%s is down after %d consecutive transient failures: skipped for %.0f s",
                        channel, breaker.failures, breaker.settings.cooldown)
        else:
            log.info("%s breaker %s", channel, after)
        events.publish("channel.breaker", {"channel": str(channel), **breaker.to_json()})


def report(events: EventBus, n: Notification, attempt: AttemptJSON, plan: Plan, old: Status, new: Status) -> None:
    """One log line per attempt outcome (with its duration), and the events it makes."""
    then = f", retry in {plan.delay:.1f} s" if plan.kind is StepKind.RETRY else ""
    if plan.kind is StepKind.HOLD:
        then = f", held until {iso(plan.update.next_attempt_at)}"
    if plan.update.awaiting_ack:
        then = f", waiting {n.ack_timeout:g} s for an acknowledgement"
    log.info(
        "notification %d -> recipient %d: %s %s in %s ms%s%s",
        n.id, n.recipient_id, attempt["channel"], attempt["outcome"], attempt["duration_ms"],
        f" ({attempt['error']})" if attempt["error"] else "", then,
        extra={"notification_id": n.id, "recipient_id": n.recipient_id, "channel": attempt["channel"],
               "outcome": attempt["outcome"], "duration_ms": attempt["duration_ms"]},  # for JSON logs
    )
    events.publish("attempt.finished", {"notification_id": n.id, **attempt})
    if plan.update.awaiting_ack:
        events.publish("notification.awaiting_ack", {
            "id": n.id, "recipient_id": n.recipient_id, "until": iso(plan.update.next_attempt_at)})
    if new is not old:
        events.publish("notification.status", {"id": n.id, "recipient_id": n.recipient_id,
                                               "status": str(new), "channel": attempt["channel"],
                                               "created_at": iso_at(n.created_at)})
