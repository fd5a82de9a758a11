"""SMS adapter: Twilio's Messages API or a generic JSON webhook, over one reused httpx client
(``daemon.channels.http_client``: httpx over aiohttp).

This is the only module that looks at httpx errors for SMS; it maps them, and the provider's
HTTP answers, onto the daemon's tree::

    2xx                                   delivered; the provider's message id is returned
    429                                   TransientError, retry_after from ``Retry-After``
    408, 5xx, network error, timeout      TransientError
    any other 4xx (bad number, STOP, ...) PermanentError, with Twilio's code and message

Error texts pass through a redactor, so the auth token never reaches the attempt log.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from daemon.channels.http_client import LazyClient
from daemon.channels.sms_segments import sms_segments
from daemon.config import SmsConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import ConfigError, PermanentError, TransientError
from daemon.core.models import Channel, Recipient
from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer, RateLimitStore
from daemon.core.redact import Redactor

log = logging.getLogger(__name__)

RATE_KEY = "sms"
"""``[sms] rate``'s key among the rate limits (shared by every daemon on one PostgreSQL)."""


class SmsChannel:
    """ChannelAdapter for SMS. Construct once; ``close()`` on shutdown."""

    name = Channel.SMS

    def __init__(self, config: SmsConfig, rate_limits: RateLimitStore | None = None) -> None:
        self.provider = config.provider
        self._token = config.auth_token.get_secret_value() if config.auth_token else None
        self._sender = config.sender
        self._max_segments = config.max_segments
        # Twilio posts status changes here only when receipts come by callback (poll: we ask instead)
        self._status_callback = config.status_callback_url if config.receipts == "callback" else None
        self._redact = Redactor([self._token] if self._token else [])
        self._account_sid = ""
        self._base = ""
        self._webhook_url = ""
        if config.provider == "twilio":
            if not (config.account_sid and self._token and config.sender):
                raise ConfigError('[sms] account_sid, auth_token, sender: required for provider = "twilio"')
            self._account_sid = config.account_sid
            self._base = (
                f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/{quote(config.account_sid, safe='')}"
            )
        else:
            if not config.webhook_url:
                raise ConfigError('[sms] webhook_url: required for provider = "webhook"')
            self._webhook_url = config.webhook_url
        # httpcore's pool rescans every waiting request on each release: keep the queue in front of
        # it, not inside it (measured: 3x the throughput at 256 concurrent sends)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._rate = (Pacer(rate_limits or MemoryRateLimits(), Limit(RATE_KEY, config.rate))
                      if config.rate else None)
        self._client = LazyClient(timeout=config.timeout, connections=config.concurrency)  # aiohttp: loaded then

    # --- ChannelAdapter --------------------------------------------------------------------

    async def wait_turn(self, recipient: Recipient) -> None:
        """Pace under ``rate`` (messages per second) when one is configured."""
        if self._rate is not None:
            await self._client.get()  # the first send's wait for aiohttp comes before its turn, not after
            await self._rate.acquire()

    async def send(self, message: OutgoingMessage) -> str | None:
        """Hand the text to the provider; return its message id (Twilio's ``sid``)."""
        phone = message.recipient.phone
        if not phone:
            raise PermanentError("SMS: recipient has no phone number")
        segments = sms_segments(message.text)
        if segments > self._max_segments:
            raise PermanentError(f"SMS: text too long: {segments} segments, at most {self._max_segments}"
                                 " ([sms] max_segments)")
        if self.provider == "twilio":
            form = {"To": phone, "From": self._sender or "", "Body": message.text}
            if self._status_callback:
                form["StatusCallback"] = self._status_callback
            if message.validity_period is not None:
                form["ValidityPeriod"] = str(message.validity_period)
            response = await self._request("POST", f"{self._base}/Messages.json", data=form, auth=self._basic_auth())
            self._raise_for_status(response)
            message_id = _json_field(response, "sid")
            if message_id is None:
                log.warning("SMS: Twilio accepted notification %s without a sid", message.notification_id)
            return message_id
        response = await self._request(
            "POST",
            self._webhook_url,
            json={"to": phone, "from": self._sender, "body": message.text},
            headers=self._bearer(),
        )
        self._raise_for_status(response)
        return _json_field(response, "id", "sid", "message_id")

    async def fetch_status(self, message_sid: str) -> tuple[str, int | None]:
        """Twilio: the message's status and error code now (``GET .../Messages/{sid}.json``), for
        ``[sms] receipts = "poll"``. Raises TransientError / PermanentError as ``send`` does."""
        response = await self._request("GET", f"{self._base}/Messages/{quote(message_sid, safe='')}.json",
                                       auth=self._basic_auth())
        self._raise_for_status(response)
        data = _json_body(response)
        code = data.get("error_code")
        status = data.get("status")
        return (str(status) if isinstance(status, str) else "unknown",
                int(code) if isinstance(code, int | str) and str(code).isdigit() else None)

    async def check(self) -> str:
        """Twilio: fetch the account resource (proves the credentials). Webhook: reachability only."""
        if self.provider == "twilio":
            response = await self._request("GET", f"{self._base}.json", auth=self._basic_auth())
            if response.status_code == 401:
                raise PermanentError(f"SMS: Twilio credentials rejected for account {self._account_sid}")
            self._raise_for_status(response)
            status = _json_field(response, "status")
            return f"twilio account {self._account_sid}" + (f" ({status})" if status else "")
        response = await self._request("OPTIONS", self._webhook_url, headers=self._bearer())
        if response.status_code >= 500:
            raise TransientError(f"SMS webhook answered HTTP {response.status_code} to OPTIONS")
        return "webhook reachable (no auth check)"

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    # --- HTTP and classification -----------------------------------------------------------

    def _basic_auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self._account_sid, self._token or "")

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            async with self._slots:
                client = await self._client.get()
                return await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(
                self._redact(f"SMS {self.provider}: timed out ({type(exc).__name__})")
            ) from exc
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TransientError(self._redact(f"SMS {self.provider}: unreachable ({detail})")) from exc

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        self._fail(status, response)

    def _fail(self, status: int, response: httpx.Response) -> NoReturn:
        text = self._redact(self._describe(status, response))
        if status == 429:
            raise TransientError(text, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status == 408 or status >= 500:
            raise TransientError(text)
        raise PermanentError(text)

    def _describe(self, status: int, response: httpx.Response) -> str:
        """One line: the provider's own code and message when the body has them."""
        data = _json_body(response)
        if self.provider == "twilio":
            code, msg = data.get("code"), data.get("message")
            if code is not None and msg:
                return f"Twilio {code}: {msg} (HTTP {status})"
            return f"Twilio HTTP {status} {response.reason_phrase}".rstrip()
        detail = data.get("error") or data.get("message") or data.get("detail")
        if not isinstance(detail, str):
            detail = response.text[:200].strip() if not data else ""
        suffix = f": {detail}" if detail else ""
        return f"SMS webhook HTTP {status}{suffix}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:  # includes JSONDecodeError and a body that is not UTF-8
        return {}
    return data if isinstance(data, dict) else {}


def _json_field(response: httpx.Response, *keys: str) -> str | None:
    data = _json_body(response)
    for key in keys:
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None
