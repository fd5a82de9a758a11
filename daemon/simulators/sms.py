"""A loopback SMS provider: Twilio's Messages API as Twilio serves it, plus a generic JSON webhook.

Twilio side::

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   form To, From, Body; basic auth
         -> 201 message resource (sid "SM" + 32 hex, status "queued", num_segments, ...)
    GET  /2010-04-01/Accounts/{AccountSid}.json            the account resource (an auth check)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json   the message, with its status

Delivery receipts: a message sent with ``StatusCallback`` gets ``sent`` and then its final status posted
there as a form, signed with ``X-Twilio-Signature`` as Twilio signs it (``send_callbacks = False``
posts none, as when Twilio cannot reach the daemon). The final status is ``delivered`` unless
``receipt_for(to, status, code)`` chose another for that number (e.g. ``undelivered``, 30005), once per
planned entry; the Messages GET shows it.

Errors are Twilio's JSON: ``{"code", "message", "more_info", "status"}``.

Webhook side: ``POST /webhook`` with JSON ``{"to", "from", "body"}`` -> 200 ``{"id": ...}``,
checking ``Authorization: Bearer <webhook_token>`` when a token is configured.

Faults (``self.faults``, target = the To number) are consulted once per message, after the
credentials are accepted: down closes the connection without an answer, error is a 500,
rate_limit a 429 with ``Retry-After``, permanent a 400 code 21211 (invalid number), blocked a 400
code 21610 (the recipient replied STOP), latency sleeps and then serves.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

from aiohttp import BasicAuth, hdrs, web

from daemon.api.twilio_callback import SIGNATURE_HEADER, twilio_signature
from daemon.channels.sms_segments import sms_segments
from daemon.simulators.control import fault_routes
from daemon.simulators.faults import FaultPlan
from daemon.simulators.loopback import serve_loopback

log = logging.getLogger(__name__)

API = "/2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY = 1600


@dataclass(frozen=True, slots=True)
class SmsRecord:
    """One message the simulator accepted."""

    provider: Literal["twilio", "webhook"]
    to: str
    from_: str | None
    body: str
    sid: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "sid": self.sid,
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
        }


def twilio_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A Twilio-shaped error response."""
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status, headers=headers)


def _retry_after(seconds: float) -> str:
    # HTTP wants whole seconds; a fractional value is kept so tests can ask for fast retries
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class _DropConnection(Exception):
    """Raised after the transport was closed: nothing is to be answered."""


class SmsSimulator:
    """Twilio Messages API and a JSON webhook on 127.0.0.1, with fault injection and a message log."""

    def __init__(
        self,
        account_sid: str = "ACtest",
        auth_token: str = "test-auth-token",
        *,
        webhook_token: str | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_token = webhook_token
        self.faults = faults if faults is not None else FaultPlan()
        self.messages: list[SmsRecord] = []
        self.requests = 0
        self._peers: set[tuple[Any, ...]] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None
        self.send_callbacks = True
        self.statuses: dict[str, tuple[str, int | None]] = {}  # sid -> final status, error code
        self.callbacks: list[tuple[str, int]] = []  # (sid, HTTP status the callback got)
        self._receipts: dict[str, list[tuple[str, int | None]]] = {}
        self._posting: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._drop_middleware])
        app.router.add_post(f"{API}/Accounts/{{sid}}/Messages.json", self._twilio_send)
        app.router.add_get(f"{API}/Accounts/{{sid}}.json", self._twilio_account)
        app.router.add_get(f"{API}/Accounts/{{sid}}/Messages/{{message_sid}}.json", self._twilio_message)
        app.router.add_post("/webhook", self._webhook_send)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (loopback only; port 0 picks one) and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("SMS simulator already started")
        self._runner, self.base_url = await serve_loopback(self.make_app(), host, port, "SMS simulator")
        log.debug("SMS simulator listening on %s", self.base_url)
        return self.base_url

    def receipt_for(self, to: str, status: str, code: int | None = None, times: int = 1) -> None:
        """The final status (and error code) the next ``times`` messages to ``to`` will report."""
        self._receipts.setdefault(to, []).extend([(status, code)] * times)

    async def stop(self) -> None:
        """Close every connection and stop listening (idempotent)."""
        for task in list(self._posting):
            task.cancel()
        await asyncio.gather(*self._posting, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- observation -----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Distinct TCP connections that carried at least one request."""
        return len(self._peers)

    async def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[SmsRecord]:
        """Wait until at least ``n`` messages were accepted; return them all."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"SMS simulator: {len(self.messages)} message(s) after {timeout}s, expected {n}"
            ) from None
        return list(self.messages)

    def reset(self) -> None:
        """Forget messages, connections and faults."""
        self.messages.clear()
        self._peers.clear()
        self.requests = 0
        self.faults.clear()

    def _record(self, record: SmsRecord) -> None:
        self.messages.append(record)
        self._changed.set()

    # --- the control API (mounted under /sms by whoever hosts it) --------------------------

    def control_routes(self) -> web.RouteTableDef:
        """POST /faults (a FaultRule as JSON), GET /faults, DELETE /faults, GET /messages."""
        return fault_routes(self.faults, lambda: self.messages)

    # --- request handling ------------------------------------------------------------------

    @web.middleware
    async def _drop_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if request.transport is not None:
            self._peers.add(tuple(request.transport.get_extra_info("peername") or ()))
        try:
            response: web.StreamResponse = await handler(request)
        except _DropConnection:
            # the transport is closed; an empty response keeps aiohttp from logging a 500
            return web.Response()
        return response

    async def _apply_fault(self, request: web.Request, target: str) -> web.Response | None:
        """Serve the fault planned for this message, if any; None means go on normally."""
        rule = self.faults.take(target)
        if rule is None:
            return None
        if rule.kind == "latency":
            await asyncio.sleep(rule.delay)
            return None
        if rule.kind == "down":
            if request.transport is not None:
                request.transport.abort()
            raise _DropConnection
        if rule.kind == "error":
            return twilio_error(500, 20500, "Internal Server Error")
        if rule.kind == "rate_limit":
            headers = {"Retry-After": _retry_after(rule.retry_after)}
            return twilio_error(429, 20429, "Too Many Requests", headers)
        if rule.kind == "blocked":
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        return twilio_error(400, 21211, "Invalid 'To' Phone Number")

    def _twilio_auth(self, request: web.Request) -> web.Response | None:
        """None when the basic credentials are this account's; else Twilio's 401 or 404."""
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        try:
            auth = BasicAuth.decode(header, encoding="utf-8") if header else None
        except ValueError:
            auth = None
        if (
            auth is None
            or not hmac.compare_digest(auth.login.encode(), self.account_sid.encode())
            or not hmac.compare_digest(auth.password.encode(), self.auth_token.encode())
        ):
            challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            return twilio_error(401, 20003, "Authenticate", challenge)
        if request.match_info["sid"] != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return None

    async def _twilio_account(self, request: web.Request) -> web.Response:
        if (refused := self._twilio_auth(request)) is not None:
            return refused
        now = format_datetime(datetime.now(UTC))
        return web.json_response(
            {
                "sid": self.account_sid,
                "owner_account_sid": self.account_sid,
                "friendly_name": "failover-notify simulator",
                "status": "active",
                "type": "Full",
                "date_created": now,
                "date_updated": now,
                "uri": f"{API}/Accounts/{self.account_sid}.json",
                "subresource_uris": {"messages": f"{API}/Accounts/{self.account_sid}/Messages.json"},
            }
        )

    async def _twilio_send(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (refused := self._twilio_auth(request)) is not None:
            return refused
        to, sender, body = (str(form.get(key, "")) for key in ("To", "From", "Body"))
        if (faulted := await self._apply_fault(request, to)) is not None:
            return faulted
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if not E164.match(to):
            return twilio_error(400, 21211, "Invalid 'To' Phone Number")
        if len(body) > MAX_BODY:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = "SM" + secrets.token_hex(16)
        planned = self._receipts.get(to)
        self.statuses[sid] = planned.pop(0) if planned else ("delivered", None)
        callback = str(form.get("StatusCallback", ""))
        if callback and self.send_callbacks:
            task = asyncio.create_task(self.post_statuses(callback, sid, to, sender))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)
        self._record(SmsRecord("twilio", to, sender, body, sid))
        now = format_datetime(datetime.now(UTC))
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(sms_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        headers = {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)}
        return web.json_response(resource, status=201, headers=headers)

    async def _twilio_message(self, request: web.Request) -> web.Response:
        if (refused := self._twilio_auth(request)) is not None:
            return refused
        sid = request.match_info["message_sid"]
        if sid not in self.statuses:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        status, code = self.statuses[sid]
        return web.json_response({"sid": sid, "account_sid": self.account_sid, "status": status,
                                  "error_code": code, "error_message": None})

    async def post_statuses(self, url: str, sid: str, to: str, sender: str) -> None:
        """Post ``sent``, then the final status, signed as Twilio signs them."""
        import aiohttp  # the client side, only for simulated callbacks

        status, code = self.statuses[sid]
        async with aiohttp.ClientSession() as session:
            for step, code_ in (("sent", None), (status, code)):
                params = {"AccountSid": self.account_sid, "MessageSid": sid, "MessageStatus": step,
                          "To": to, "From": sender}
                if code_ is not None:
                    params["ErrorCode"] = str(code_)
                headers = {SIGNATURE_HEADER: twilio_signature(self.auth_token, url, params)}
                try:
                    async with session.post(url, data=params, headers=headers) as response:
                        self.callbacks.append((sid, response.status))
                except aiohttp.ClientError as exc:
                    log.warning("SMS simulator: status callback to %s failed: %s", url, exc)
                    return

    async def _webhook_send(self, request: web.Request) -> web.Response:
        if self.webhook_token is not None:
            expected = f"Bearer {self.webhook_token}".encode()
            given = request.headers.get(hdrs.AUTHORIZATION, "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "unauthorized"}, status=401)
        try:
            data = json.loads(await request.text())
        except ValueError:
            return web.json_response({"error": "body: not valid JSON"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "body: must be a JSON object"}, status=400)
        to, sender, body = data.get("to"), data.get("from"), data.get("body")
        if not isinstance(to, str) or not to:
            return web.json_response({"error": "to: required"}, status=400)
        if not isinstance(body, str) or not body:
            return web.json_response({"error": "body: required"}, status=400)
        if (faulted := await self._apply_fault(request, to)) is not None:
            return faulted
        message_id = "wh_" + secrets.token_hex(12)
        self._record(SmsRecord("webhook", to, sender if isinstance(sender, str) else None, body, message_id))
        return web.json_response({"id": message_id})
