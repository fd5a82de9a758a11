"""The service layer: every operation a client can ask for, shared by the socket and HTTP APIs.

Each operation takes its request model (``daemon.api.requests``), which the socket and HTTP servers
have already validated; results are domain objects the API layers render as JSON.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from daemon import __version__
from daemon.api import health
from daemon.api.requests import (
    LIST_LIMIT_MAX,
    BackupRequest,
    ById,
    ListRequest,
    RecipientChanges,
    RecipientCreate,
    RecipientUpdate,
    SendRequest,
    parse,
)
from daemon.api.sandbox import private_tmp_dirs
from daemon.api.service_groups import GroupOps
from daemon.config import Config
from daemon.core.engine import Engine
from daemon.core.errors import Conflict, NotFound, ValidationError
from daemon.core.events import EventBus
from daemon.core.models import Channel, Notification, Outcome, Recipient, iso, iso_at, utcnow
from daemon.core.sms_caps import day_start
from daemon.core.store import AckOutcome, AckResult, ChannelActivity, LinkOutcome, LinkRedemption, Store
from daemon.protocol import LinkJSON, PausedData, SmsStatusJSON, StatusJSON

BACKUP_DIR = "backups"
"""Under the state directory: where ``backup`` without a path writes (the unit's StateDirectory= makes it)."""

log = logging.getLogger(__name__)


class TelegramBotNotRunning(Conflict):
    """Opt-in links come from the in-daemon bot, which runs only with [telegram] enabled."""

    code = "unsupported"


class LinkIssuer(Protocol):
    """Makes opt-in deep links (``bot.links.LinkIssuer``; the daemon sets one while the bot runs)."""

    async def issue(self, recipient_id: int) -> LinkJSON:
        """A new single-use link for the recipient: at least ``url``, ``token`` and ``expires_at``."""
        ...


class Service(GroupOps):
    def __init__(
        self, config: Config, store: Store, engine: Engine, events: EventBus,
        clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.events = events
        self.clock = clock
        self.monotonic = monotonic
        self.started = monotonic()
        self.last_send = -math.inf
        """``monotonic()`` of the latest send taken: the bot's first import waits for a quiet moment."""
        self.links: LinkIssuer | None = None
        self._backup_running = False

    # -- notifications -----------------------------------------------------------------------

    async def send(self, request: SendRequest) -> tuple[Notification, bool]:
        """Store a notification; returns it and whether it is new (idempotency)."""
        self.last_send = self.monotonic()
        now = self.clock()
        new = request.to_notification(self.config.chain.default, now)
        notification, created = await self.store.create_notification(new, now)
        if created:
            if self.events.listened:  # the summary is a tenth of a send's CPU (py-spy): only for a reader
                self.events.publish("notification.created", notification.summary_json())
            self.engine.poke()
        return notification, created

    async def show(self, request: ById) -> Notification:
        notification = await self.store.get_notification(request.id)
        if notification is None:
            raise NotFound(f"notification {request.id} does not exist")
        return notification

    async def list_notifications(self, request: ListRequest) -> list[Notification]:
        return await self.store.list_notifications(
            status=request.status,
            recipient_id=request.recipient_id,
            limit=min(request.limit or 50, LIST_LIMIT_MAX),
            before_id=request.before_id,
            search=request.search,
        )

    async def cancel(self, request: ById) -> Notification:
        before = await self.store.get_notification(request.id)
        waiting = {a.id for a in before.attempts if a.finished_at is None} if before is not None else set()
        notification = await self.store.cancel(request.id, self.clock())
        for attempt in notification.attempts:  # an SMS waiting for its receipt: the cancel closed its attempt
            if attempt.id in waiting and attempt.finished_at is not None:
                self.events.publish("attempt.finished", attempt.to_json())
        self.events.publish("notification.status", notification.summary_json())
        return notification

    async def retry(self, request: ById) -> Notification:
        """Redrive a failed (or expired) notification from the start of its chain; its log is kept."""
        notification = await self.store.redrive(request.id, self.clock())
        self.events.publish("notification.status", notification.summary_json())
        self.engine.poke()
        return notification

    # -- recipients ----------------------------------------------------------------------------

    async def add_recipient(self, request: RecipientCreate) -> Recipient:
        recipient = await self.store.add_recipient(request.name, request.email, request.phone,
                                                   request.telegram_chat_id)
        later = {k: v for k, v in (("opt_out", request.opt_out), ("timezone", request.timezone),
                                   ("quiet_hours", request.quiet_hours)) if v}
        if later:  # not add_recipient's arguments: set at once after it, as an update
            recipient = await self.store.update_recipient(recipient.id, later)
        self.events.publish("recipient.added", recipient.to_json())
        return recipient

    async def list_recipients(self) -> list[Recipient]:
        return await self.store.list_recipients()

    async def show_recipient(self, request: ById) -> Recipient:
        recipient = await self.store.get_recipient(request.id)
        if recipient is None:
            raise NotFound(f"recipient {request.id} does not exist")
        return recipient

    async def update_recipient(self, request: RecipientUpdate) -> Recipient:
        fields = request.changes()
        if "telegram_chat_id" in fields:
            fields["telegram_blocked"] = False  # a new chat starts unblocked
        recipient = await self.store.update_recipient(request.id, fields)
        self.events.publish("recipient.updated", recipient.to_json())
        return recipient

    async def remove_recipient(self, request: ById) -> dict[str, Any]:
        await self.store.remove_recipient(request.id)
        self.events.publish("recipient.removed", {"id": request.id})
        return {"id": request.id, "removed": True}

    # -- Telegram: opt-in links, and what the in-daemon bot's commands do ------------------------

    async def link_recipient(self, request: ById) -> LinkJSON:
        """A single-use, expiring deep link: the Telegram chat that opens it is linked to the recipient."""
        recipient = await self.show_recipient(request)
        if self.links is None:
            raise TelegramBotNotRunning("opt-in links need the Telegram bot: set [telegram] enabled = true")
        link = await self.links.issue(recipient.id)
        self.events.publish("recipient.link_created", {"recipient_id": recipient.id, "expires_at": link["expires_at"]})
        return link

    async def save_link_token(self, recipient_id: int, token: str, now: datetime, expires_at: datetime) -> None:
        """Keep a new opt-in token (the bot's ``LinkIssuer`` made it; only its hash is stored)."""
        await self.store.create_link_token(recipient_id, token, now, expires_at)

    async def redeem_link(self, token: str, chat_id: int) -> LinkRedemption:
        """``/start <token>`` from ``chat_id``: only LINKED changes anything."""
        redemption = await self.store.redeem_link_token(token, chat_id, self.clock())
        if redemption.outcome is LinkOutcome.LINKED and redemption.recipient is not None:
            self.events.publish("recipient.linked", redemption.recipient.telegram_event())
        return redemption

    async def recipient_for_chat(self, chat_id: int) -> Recipient | None:
        return await self.store.get_recipient_by_chat(chat_id)

    async def set_telegram_opt_out(self, chat_id: int, opted_out: bool) -> tuple[Recipient | None, bool]:
        """``/stop`` and ``/resume``: the chat's recipient (None: not linked) and whether it changed."""
        recipient = await self.store.get_recipient_by_chat(chat_id)
        if recipient is None or (Channel.TELEGRAM in recipient.opt_out) == opted_out:
            return recipient, False
        opt_out = recipient.opt_out | {Channel.TELEGRAM} if opted_out else recipient.opt_out - {Channel.TELEGRAM}
        recipient = await self.store.update_recipient(recipient.id, {"opt_out": opt_out})
        self.events.publish("recipient.opted_out" if opted_out else "recipient.opted_in", recipient.telegram_event())
        return recipient, True

    async def set_own_quiet_hours(self, chat_id: int, field: str, value: str) -> Recipient | None:
        """``/quiet 22:00-07:00``, ``/quiet off`` and ``/timezone Europe/Moscow`` from the person's own chat:
        ``field`` is ``quiet_hours`` or ``timezone``; None when the chat is not linked, ValidationError
        (naming the field) when the value is refused."""
        if field not in ("quiet_hours", "timezone"):
            raise ValueError(f"not a setting a chat may change: {field}")
        recipient = await self.store.get_recipient_by_chat(chat_id)
        if recipient is None:
            return None
        fields = parse(RecipientChanges, {field: value}).changes()
        recipient = await self.store.update_recipient(recipient.id, fields)
        self.events.publish("recipient.updated", recipient.to_json())
        return recipient

    async def set_telegram_blocked(self, chat_id: int, blocked: bool) -> Recipient | None:
        """The user blocked the bot (``my_chat_member`` kicked) or is back (member, ``/start``)."""
        recipient = await self.store.get_recipient_by_chat(chat_id)
        if recipient is None or recipient.telegram_blocked == blocked:
            return recipient
        recipient = await self.store.update_recipient(recipient.id, {"telegram_blocked": blocked})
        self.events.publish("recipient.blocked" if blocked else "recipient.unblocked", recipient.telegram_event())
        return recipient

    async def first_time_update(self, update_id: int) -> bool:
        """The bot is about to handle Telegram update ``update_id``: False if a daemon did already (a new
        bot leader re-polls what the previous one had not confirmed)."""
        return await self.store.first_time_update(update_id, self.clock())

    async def acknowledge(self, notification_id: int, chat_id: int) -> AckResult:
        """The "Got it" button, pressed in ``chat_id``: ends the notification, no further channel."""
        result = await self.store.acknowledge(notification_id, chat_id, self.clock())
        if result.outcome is AckOutcome.ACKNOWLEDGED and result.notification is not None:
            self.events.publish("notification.status", result.notification.summary_json())
        return result

    # -- daemon ----------------------------------------------------------------------------------

    async def status(self) -> StatusJSON:
        counts = await self.store.counts_by_status()
        return {
            "version": __version__,
            "uptime_s": round(self.monotonic() - self.started, 1),
            "in_flight": self.engine.in_flight,
            "paused": self.engine.paused,
            "storage": self.store.location,  # a path, or the PostgreSQL URL without its password
            "counts": counts,
            "queue_depth": counts.get("queued", 0) + counts.get("sending", 0) + counts.get("held", 0),
            "channels": {str(c): c in self.engine.channels for c in Channel},
            "subscribers": self.events.subscriber_count,
            "retry": dataclasses.asdict(self.engine.policy),  # the policy in force, after any SIGHUP
            "sms": await self._sms_status(),
            "members": [{"id": m.id, "host": m.host, "pid": m.pid, "started_at": iso_at(m.started_at),
                         "heartbeat_at": iso_at(m.heartbeat_at), "leads": list(m.leads),
                         "self": m.id == self.engine.owner} for m in await self.store.members()],
        }

    async def _sms_status(self) -> SmsStatusJSON:
        """SMS receipts and caps in force, and the segments every daemon sent today (UTC)."""
        sms, now = self.engine.sms, self.clock()
        usage = await self.store.sms_usage(-1, now, day_start(now))
        return {"receipts": self.config.sms.receipts if sms.receipt_timeout is not None else "off",
                "recipient_limits": [limit.text for limit in sms.caps.limits],
                "daily_budget": sms.caps.daily_budget, "budget_used_today": usage.segments_today}

    async def pause(self) -> PausedData:
        """Hold delivery: sends are accepted and stored, no attempt starts until ``resume``."""
        await self.store.set_paused(True, self.clock(), self.engine.owner)  # every daemon on the database
        self.engine.pause()
        self.events.publish("daemon.paused", {"paused": True})
        return {"paused": True}

    async def resume(self) -> PausedData:
        await self.store.set_paused(False, self.clock(), self.engine.owner)
        self.engine.resume()
        self.events.publish("daemon.paused", {"paused": False})
        return {"paused": False}

    async def backup(self, request: BackupRequest) -> dict[str, Any]:
        """A consistent online copy of the database, made by the daemon: at ``path`` (absolute, a new
        file), or without one in ``<state_dir>/backups``, a place the shipped unit lets it write."""
        path = Path(request.path) if request.path is not None else self._new_backup_path()
        _refuse_private_tmp(path, self.config.daemon.state_dir.absolute() / BACKUP_DIR)
        if self._backup_running:  # two at once would read everything twice for nothing
            raise Conflict("a backup is already running; try again when it has finished")
        self._backup_running = True
        started = time.monotonic()
        try:
            size = await self.store.backup(path)
        finally:
            self._backup_running = False
        log.info("backup written to %s: %d bytes in %.1f s", path, size, time.monotonic() - started)
        return {"path": str(path), "bytes": size}

    def _new_backup_path(self) -> Path:
        backups = self.config.daemon.state_dir.absolute() / BACKUP_DIR
        if not backups.is_dir():
            backups.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = self.clock().strftime("%Y%m%dT%H%M%SZ")
        path = backups / f"fnotify-{stamp}.db"
        n = 1
        while path.exists():  # two within a second
            n += 1
            path = backups / f"fnotify-{stamp}-{n}.db"
        return path

    async def prune(self) -> int:
        """Delete final notifications older than ``[daemon] retention_days``; the retention job calls this."""
        before = self.clock() - timedelta(days=self.config.daemon.retention_days)
        return await self.store.prune(before)

    async def health(self) -> dict[str, Any]:
        """Per channel over the last hour: attempts by outcome, whether it is enabled, its circuit
        breaker (``state`` closed / open / half_open, ``consecutive_failures``, ``probe_in_s``), the
        attempts per minute by outcome (``series``) and the p50 / p95 call time (``latency_ms``)."""
        now = self.clock()
        counts = await self.store.channel_health(now - timedelta(hours=1))
        start = health.series_start(now)
        activity = await self.store.channel_activity(start, health.SERIES_BUCKETS, health.SERIES_STEP)
        empty = ChannelActivity({str(o): [0] * health.SERIES_BUCKETS for o in Outcome}, ())
        reply: dict[str, Any] = {}
        for channel in (Channel.TELEGRAM, Channel.EMAIL, Channel.SMS):
            seen = activity.get(str(channel), empty)
            reply[str(channel)] = {
                "enabled": channel in self.engine.channels, **counts.get(str(channel), {}),
                "breaker": self.engine.breakers[channel].to_json(),
                "series": {"start": iso(start), "step_s": int(health.SERIES_STEP), **seen.per_bucket},
                "latency_ms": health.latency_ms(seen.durations),
            }
        return reply


def _refuse_private_tmp(path: Path, backups: Path) -> None:
    """Refuse a backup into the service's private /tmp (``PrivateTmp=``): it would "succeed" into a
    directory nobody else sees, removed when the service stops."""
    if not path.is_absolute():
        return  # refused by the store, naming the reason
    where = path.parent.resolve()
    for private in private_tmp_dirs():
        if where.is_relative_to(private):
            raise ValidationError("path", f"{private} is private to the service (systemd PrivateTmp=): a file "
                                          "there is invisible to you and removed when the service stops; "
                                          f"`fnotify backup` without a path writes to {backups}")

