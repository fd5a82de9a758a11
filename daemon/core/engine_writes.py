"""The engine's writes around an attempt, a part of ``Engine`` kept in its own module.

A skipped step (Telegram with no chat, a channel whose breaker is open) is not written on its own: the
walk holds it back, and it goes to the store with the start of the attempt that follows, one transaction
(``Store.skip_then_start``) where there were two, each a trip through the writer. Should anything else
follow it (another skip, the end of the chain, a bundling window), it is written alone first, as before.
Nothing is lost by the wait: until that write the row is claimed and unchanged on disk, and a crash makes
the next walk decide the same skip again. Every step is still logged and published in the order it was
decided.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from daemon.core.failover import Plan, Send, StepKind
from daemon.core.models import Notification, Skip, Status, iso
from daemon.core.outcomes import report

if TYPE_CHECKING:
    from daemon.core.engine_bundle import EngineParts as Engine  # what these use of the engine (no cycle)

# the attempt ledger keeps the engine's logger name: operators (and JSON log filters) select it by that
log = logging.getLogger("daemon.core.engine")


def can_wait(plan: Plan) -> bool:
    """Whether ``plan`` may be held back for the next attempt's start: a step decided without a provider
    call that goes straight on to the next channel, and writes nothing besides its own record."""
    return plan.kind is StepKind.NEXT and plan.attempt_id is None and not plan.block_recipient


async def finish(e: Engine, n: Notification, plan: Plan, attempt_id: int | None, status: Status) -> Status:
    """Write ``plan`` (the attempt's record and the notification's next state), report it; the new status."""
    attempt, new_status = await e.store.finish_attempt(attempt_id, n.id, plan.channel, plan.record, plan.update,
                                                       plan.at, e.owner)
    report(e.events, n, attempt.to_json(), plan, status, new_status)
    if plan.update.release and plan.update.next_attempt_at is not None:  # a retry, or the ack deadline
        e._arm_if_earlier(plan.update.next_attempt_at)
    return new_status


async def start(e: Engine, n: Notification, send: Send, skipped: Plan | None,
                status: Status) -> tuple[int | None, Status]:
    """Record the attempt's start (with the held-back ``skipped`` step, in one transaction); its id and the
    notification's status. None: the notification was final already (cancelled), nothing started."""
    now = e.clock()
    if skipped is None:
        attempt_id: int | None = await e.store.start_attempt(n.id, send.channel, now, send.tries, e.owner)
    else:
        skip = Skip(skipped.channel, skipped.record, skipped.update, skipped.at)
        attempt, new_status, attempt_id = await e.store.skip_then_start(skip, n.id, send.channel, now, send.tries,
                                                                        e.owner)
        report(e.events, n, attempt.to_json(), skipped, status, new_status)
        status = new_status
    if attempt_id is not None:
        e.events.publish("attempt.started", {"notification_id": n.id, "attempt_id": attempt_id,
                                             "channel": str(send.channel)})
    return attempt_id, status


async def await_receipt(e: Engine, n: Notification, plan: Plan, attempt_id: int | None) -> None:
    """The SMS was accepted: its attempt stays open and the row waits, on disk, for the receipt."""
    attempt_id = attempt_id if attempt_id is not None else plan.attempt_id
    assert attempt_id is not None and plan.message_sid is not None and plan.update.next_attempt_at is not None
    timeout = e.sms.receipt_timeout or (plan.update.next_attempt_at - plan.at).total_seconds()
    await e.store.await_receipt(attempt_id, n.id, plan.message_sid, plan.record.sent_at or plan.at, timeout,
                                plan.update, plan.at, e.owner)
    log.info("notification %d -> recipient %d: sms accepted (%s), waiting until %s for its delivery receipt",
             n.id, n.recipient_id, plan.message_sid, iso(plan.update.next_attempt_at))
    e.events.publish("notification.awaiting_receipt", {
        "id": n.id, "recipient_id": n.recipient_id, "message_sid": plan.message_sid,
        "until": iso(plan.update.next_attempt_at)})
    e._arm_if_earlier(plan.update.next_attempt_at)
