"""SIGHUP: re-read the config file and apply what can change while the daemon runs.

Applied live:
    [retry], [chain], [bundle]            the next decision uses them (an open bundling window keeps its end)
    [daemon] log_level, max_in_flight,    at once
             shutdown_grace
    [telegram], [email], [sms]            adapters rebuilt from the new settings and secrets, swapped in
                                          for new attempts; the old ones are closed once the attempts
                                          already using them are done

Everything else needs a restart: the database location and the socket (``[daemon] state_dir``,
``[daemon] socket``) and any section not listed above, such as ``[http]``. For those the running
value is kept and the log names each key: ``reload: [daemon] socket changed, needs a restart``.

No work is dropped: queued and in-flight notifications carry on. A file that does not load (bad
TOML, an invalid value, a missing secret) is logged and ignored; the daemon keeps its current config.
``plan_reload`` is the pure part (what changes, what is kept); ``Reloader`` applies it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from daemon.api.service import Service
from daemon.channels import ChannelAdapter, build_channels
from daemon.config import Config, load_config
from daemon.core.bundle import BundlePolicy
from daemon.core.engine import Engine
from daemon.core.failover import RetryPolicy
from daemon.core.models import Channel
from daemon.core.ratelimit import RateLimitStore
from daemon.core.redact import Redactor
from daemon.core.sms_caps import SmsCaps, SmsPolicy
from daemon.runtime.logs import set_level
from daemon.runtime.systemd import Notifier

log = logging.getLogger(__name__)

CHANNEL_SECTIONS = frozenset({"telegram", "email", "sms"})
LIVE_SECTIONS = CHANNEL_SECTIONS | {"retry", "chain", "bundle"}
LIVE_DAEMON_KEYS = frozenset({"log_level", "max_in_flight", "shutdown_grace"})
CLOSE_OLD_AFTER_MAX = 60.0
"""Seconds a replaced adapter is kept open for the attempts still using it."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does: the config to run on and the keys that changed, by kind."""

    config: Config
    """The new config, except that keys needing a restart keep their running values."""
    changed: tuple[str, ...]
    """Keys applied live, as ``[section] key``."""
    needs_restart: tuple[str, ...]
    """Keys that changed in the file but keep their running values until a restart."""

    @property
    def channels_changed(self) -> bool:
        return any(label.split("]")[0].lstrip("[") in CHANNEL_SECTIONS for label in self.changed)


def is_live(section: str, key: str) -> bool:
    """Whether ``[section] key`` can change without a restart."""
    return section in LIVE_SECTIONS or (section == "daemon" and key in LIVE_DAEMON_KEYS)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare the running config with a freshly loaded one, key by key (values are never printed)."""
    changed: list[str] = []
    restart: list[str] = []
    sections: dict[str, Any] = {}
    for name in type(old).model_fields:
        if name == "source":
            continue
        old_section, new_section = getattr(old, name), getattr(new, name)
        if not isinstance(new_section, BaseModel):
            if old_section != new_section:
                restart.append(f"[{name}]")
                sections[name] = old_section
            continue
        keep: dict[str, Any] = {}
        for key in type(new_section).model_fields:
            if getattr(old_section, key) == getattr(new_section, key):
                continue
            label = f"[{name}] {key}"
            if is_live(name, key):
                changed.append(label)
            else:
                restart.append(label)
                keep[key] = getattr(old_section, key)
        sections[name] = new_section.model_copy(update=keep) if keep else new_section
    return ReloadPlan(new.model_copy(update=sections), tuple(changed), tuple(restart))


def retry_policy(config: Config) -> RetryPolicy:
    """The engine's retry policy from ``[retry]``: at start and after every reload."""
    r = config.retry
    return RetryPolicy(r.attempts_per_channel, r.backoff_initial, r.backoff_max)


def sms_policy(config: Config) -> SmsPolicy:
    """The engine's SMS receipts and caps from ``[sms]``: at start and after every reload."""
    sms = config.sms
    timeout = sms.receipt_timeout if sms.enabled and sms.receipts != "off" else None
    return SmsPolicy(timeout, SmsCaps.parse(sms.recipient_limits, sms.daily_budget))


def bundle_policy(config: Config) -> BundlePolicy:
    """The engine's bundling from ``[bundle]`` (and the SMS length limit): at start and after every reload."""
    return BundlePolicy(config.bundle.window, config.sms.max_segments)


class Reloadable(Protocol):
    """What a reload touches in the running daemon (``daemon.runtime.app.Daemon``)."""

    config: Config
    channels: dict[Channel, ChannelAdapter]
    rate_limits: RateLimitStore  # the new adapters keep pacing where the old ones left off
    redactor: Redactor
    notifier: Notifier
    service: Service
    engine: Engine


class Reloader:
    """Applies reloads to a running Daemon, which owns one and calls ``aclose()`` when stopping."""

    def __init__(self, daemon: Reloadable) -> None:
        self.daemon = daemon
        self._closing: set[asyncio.Task[None]] = set()

    def reload(self) -> ReloadPlan | None:
        """Re-read ``config.source`` and apply it; None when the file was rejected.

        Synchronous on purpose: from the moment it returns, new attempts use the new settings.
        """
        notifier = self.daemon.notifier
        notifier.reloading()
        try:
            return self._reload()
        finally:
            notifier.ready()  # READY=1 ends a reload for systemd, whether it applied or not

    def _reload(self) -> ReloadPlan | None:
        daemon = self.daemon
        source = daemon.config.source
        try:
            plan = plan_reload(daemon.config, load_config(source))
            channels = build_channels(plan.config, daemon.rate_limits) if plan.channels_changed else None
        except Exception as exc:  # ConfigError above all, but no reload may take the daemon down
            reason = "; ".join(str(exc).splitlines()) or type(exc).__name__
            log.error("reload failed, still running on the previous configuration: %s", reason)
            return None
        for label in plan.needs_restart:
            log.warning("reload: %s changed, needs a restart: keeping the running value", label)
        self._apply(plan, channels)
        log.info("reloaded %s: %s", source or "the default configuration",
                 ", ".join(plan.changed) or "nothing to apply live")
        return plan

    def _apply(self, plan: ReloadPlan, channels: dict[Channel, ChannelAdapter] | None) -> None:
        daemon, config = self.daemon, plan.config
        # old secrets stay masked too: an attempt in flight may still report an error quoting one
        daemon.redactor.update([*daemon.config.secrets(), *config.secrets()])
        daemon.config = daemon.service.config = config
        daemon.engine.policy = retry_policy(config)
        daemon.engine.sms = sms_policy(config)
        daemon.engine.bundle = bundle_policy(config)
        daemon.engine.max_in_flight = config.daemon.max_in_flight
        set_level(config.daemon.log_level)
        if channels is not None:
            old = daemon.channels
            daemon.channels = channels
            in_flight = daemon.engine.replace_channels(channels)
            enabled = ", ".join(str(c) for c in Channel if c in channels) or "none"
            log.info("channels rebuilt; enabled: %s", enabled)
            if old:
                task = asyncio.create_task(self._close_when_done(old.values(), in_flight), name="close-old")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        daemon.engine.poke()  # more room in flight, or a channel that is back: look for due work

    async def _close_when_done(
        self, adapters: Iterable[ChannelAdapter], in_flight: set[asyncio.Task[None]]
    ) -> None:
        try:
            if in_flight:
                await asyncio.wait(in_flight, timeout=CLOSE_OLD_AFTER_MAX)
        finally:
            await close_adapters(adapters)

    async def aclose(self) -> None:
        """Close replaced adapters now (the daemon is stopping; its attempts are done or cancelled)."""
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)


async def close_adapters(adapters: Iterable[ChannelAdapter]) -> None:
    """Close each adapter; a failure is logged, never raised (closing is best effort)."""
    for adapter in adapters:
        try:
            await adapter.close()
        except Exception:
            log.warning("closing the %s adapter failed", adapter.name, exc_info=True)
