"""The shape of every envelope, reply and event payload, as ``TypedDict``s: the daemon's producers are
annotated with them and the clients read them, so mypy checks both sides of the wire."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# -- envelopes -------------------------------------------------------------------------------------
# Values typed ``str`` below carry the vocabulary above (``status`` a Status, ``channel`` a Channel,
# ``outcome`` an Outcome) as plain strings, which is what a client gets from ``json.loads``; times
# are ISO 8601 strings with milliseconds and an offset.

class RequestJSON(TypedDict):
    id: NotRequired[Any]  # any JSON value; echoed back in the reply
    op: str
    params: NotRequired[dict[str, Any]]


class ErrorJSON(TypedDict):
    code: str
    message: str
    field: NotRequired[str]  # the parameter at fault, when there is one


class OkReply(TypedDict):
    id: Any
    ok: Literal[True]
    result: Any  # the op's result: see the *JSON types below and docs/protocol.md


class ErrorReply(TypedDict):
    id: Any  # null for a reply the daemon sends on its own (busy, forbidden, idle, too_large)
    ok: Literal[False]
    error: ErrorJSON


Reply = OkReply | ErrorReply


# -- replies ---------------------------------------------------------------------------------------

class AttemptJSON(TypedDict):
    id: int
    notification_id: int
    channel: str
    outcome: str | None  # None while the attempt is in flight
    error: str | None  # secrets redacted
    provider_message_id: str | None
    started_at: str
    finished_at: str | None
    retry_at: str | None  # when the same channel is tried again (outcome retry)
    duration_ms: float | None


class NotificationSummaryJSON(TypedDict):
    """A notification without its attempt log (``list``, ``notification.created``)."""

    id: int
    recipient_id: int
    text: str
    subject: str | None
    chain: list[str]
    status: str
    priority: str  # low / normal / high / critical
    idempotency_key: str | None
    channel: str | None  # the channel that delivered, or the one being tried
    next_attempt_at: str | None
    deadline: str | None
    ack_timeout: float | None
    created_at: str
    updated_at: str
    attempt_count: int
    batch_id: int | None  # the batch of a send to a group (``batch.show``); None: sent to one recipient


class NotificationJSON(NotificationSummaryJSON):
    """``show``, ``cancel``, ``retry``, and each item of ``list``."""

    attempts: list[AttemptJSON]


class SendResultJSON(NotificationJSON):
    created: bool  # False: the idempotency key was seen before and nothing new is sent


class RecipientJSON(TypedDict):
    id: int
    name: str
    email: str | None
    phone: str | None
    telegram_chat_id: int | None
    opt_out: list[str]
    telegram_blocked: bool
    telegram_state: str  # linked / not linked / opted out / blocked
    timezone: str  # IANA name, e.g. Europe/Moscow; quiet hours are read on its wall clock
    quiet_hours: str | None  # "22:00-07:00" (may cross midnight), or None: never quiet
    created_at: str


class BreakerJSON(TypedDict):
    state: str  # closed / open / half_open
    consecutive_failures: int
    probe_in_s: float | None  # seconds until the open breaker lets one probe through


class SmsStatusJSON(TypedDict):
    receipts: str  # callback / poll / off
    recipient_limits: list[str]  # the per-recipient caps in force, e.g. "5/15m"
    daily_budget: int | None  # SMS segments per UTC day, every daemon together; None: no budget
    budget_used_today: int  # segments sent today (UTC)


class StatusJSON(TypedDict):
    version: str
    uptime_s: float
    in_flight: int
    paused: bool
    counts: dict[str, int]  # notifications by status
    queue_depth: int
    channels: dict[str, bool]  # channel -> enabled
    subscribers: int
    retry: dict[str, Any]  # the retry policy in force
    storage: str  # where the data lives: the SQLite file, or the PostgreSQL URL without its password
    sms: NotRequired[SmsStatusJSON]  # SMS receipts, caps and today's budget use
    members: list[MemberJSON]  # the daemons sharing the database (one on SQLite)


class MemberJSON(TypedDict):
    id: str  # the daemon id, "<hostname>:<pid>:<random>"
    host: str
    pid: int
    started_at: str
    heartbeat_at: str  # its last heartbeat (every [storage] lease / 2)
    leads: list[str]  # roles it holds: "telegram-bot" is the daemon polling Telegram
    self: bool  # the daemon answering


class LinkJSON(TypedDict):
    recipient_id: int
    url: str
    token: str
    expires_at: str
    bot: str


class SubscribedJSON(TypedDict):
    subscribed: list[str] | Literal["all"]


# -- events ----------------------------------------------------------------------------------------

class AttemptStartedData(TypedDict):
    notification_id: int
    attempt_id: int
    channel: str


class NotificationStatusData(TypedDict):
    """The engine sends these keys; a status change made through the API (cancel, retry, the
    "Got it" button) sends the whole ``NotificationSummaryJSON``, which has them too."""

    id: int
    recipient_id: int
    status: str
    channel: str | None
    created_at: str  # when it was sent: the metrics' send-to-delivered latency


class AwaitingAckData(TypedDict):
    id: int
    recipient_id: int
    until: str | None  # when the next channel is tried unless the button is pressed


class AwaitingReceiptData(TypedDict):
    id: int
    recipient_id: int
    message_sid: str  # the SMS provider's id, which its delivery receipt names
    until: str | None  # when it counts as delivered if no final receipt came


class SmsBudgetData(TypedDict):
    used: int  # SMS segments sent today (UTC), every daemon together
    budget: int  # [sms] daily_budget


class BreakerEventData(BreakerJSON):
    channel: str


class RecipientTelegramData(TypedDict):
    """recipient.linked / opted_out / opted_in / blocked / unblocked."""

    recipient_id: int
    name: str
    telegram_chat_id: int | None
    telegram_state: str


class RecipientRemovedData(TypedDict):
    id: int


class LinkCreatedData(TypedDict):
    recipient_id: int
    expires_at: str


class PausedData(TypedDict):
    paused: bool


class OverflowData(TypedDict):
    reason: str


RecipientTelegramKind = Literal[
    "recipient.linked", "recipient.opted_out", "recipient.opted_in", "recipient.blocked", "recipient.unblocked",
]
RecipientChangedKind = Literal["recipient.added", "recipient.updated"]
OVERFLOW: Literal["overflow"] = "overflow"


# one envelope per kind, so that narrowing on ``event["event"]`` types ``event["data"]``

class NotificationCreatedEvent(TypedDict):
    event: Literal["notification.created"]
    at: str
    data: NotificationSummaryJSON


class NotificationStatusEvent(TypedDict):
    event: Literal["notification.status"]
    at: str
    data: NotificationStatusData


class AwaitingAckEvent(TypedDict):
    event: Literal["notification.awaiting_ack"]
    at: str
    data: AwaitingAckData


class AwaitingReceiptEvent(TypedDict):
    event: Literal["notification.awaiting_receipt"]
    at: str
    data: AwaitingReceiptData


class SmsBudgetEvent(TypedDict):
    event: Literal["sms.budget"]
    at: str
    data: SmsBudgetData


class AttemptStartedEvent(TypedDict):
    event: Literal["attempt.started"]
    at: str
    data: AttemptStartedData


class AttemptFinishedEvent(TypedDict):
    event: Literal["attempt.finished"]
    at: str
    data: AttemptJSON


class BreakerEvent(TypedDict):
    event: Literal["channel.breaker"]
    at: str
    data: BreakerEventData


class RecipientChangedEvent(TypedDict):
    event: RecipientChangedKind
    at: str
    data: RecipientJSON


class RecipientRemovedEvent(TypedDict):
    event: Literal["recipient.removed"]
    at: str
    data: RecipientRemovedData


class LinkCreatedEvent(TypedDict):
    event: Literal["recipient.link_created"]
    at: str
    data: LinkCreatedData


class RecipientTelegramEvent(TypedDict):
    event: RecipientTelegramKind
    at: str
    data: RecipientTelegramData


class PausedEvent(TypedDict):
    event: Literal["daemon.paused"]
    at: str
    data: PausedData


class OverflowEvent(TypedDict):
    """The last event of a stream whose subscriber fell behind (it has no ``at``)."""

    event: Literal["overflow"]
    data: OverflowData


Event = (
    NotificationCreatedEvent | NotificationStatusEvent | AwaitingAckEvent | AttemptStartedEvent
    | AttemptFinishedEvent | BreakerEvent | RecipientChangedEvent | RecipientRemovedEvent | LinkCreatedEvent
    | RecipientTelegramEvent | PausedEvent | OverflowEvent | AwaitingReceiptEvent | SmsBudgetEvent
)
