"""The HTTP API: an aiohttp app over the same service layer as the Unix socket API.

Transport only, like ``daemon.api.socket_server``: each route reads the path, query and JSON body,
validates them with the request models the OpenAPI document is made from (``daemon.api.requests``,
strictly: JSON types exactly as documented) and makes one ``Service`` call.

    401  missing or wrong bearer token (no detail; ``WWW-Authenticate: Bearer``)
    400  malformed JSON or a wrong JSON type      {"errors": [{"field", "message"}, ...]}
    422  a refused value                          {"errors": [{"field", "message"}, ...]}
    404 NotFound · 409 Conflict · 413 body too large · 502 ChannelError · 503 StorageError  {"error": ...}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from daemon.api.health import PROBES, probe
from daemon.api.http_groups import GroupRoutes
from daemon.api.http_guard import Listener, ListenerLimits
from daemon.api.http_openapi import openapi_document
from daemon.api.requests import (
    ById,
    InvalidRequest,
    LegacySendRequest,
    NotificationsQuery,
    Problem,
    RecipientChanges,
    RecipientCreate,
    RecipientUpdate,
    Request,
    SendRequest,
    parse,
    parse_query,
)
from daemon.api.service import Service
from daemon.api.service_groups import batch_reply
from daemon.api.twilio_callback import status_callback
from daemon.config import HttpConfig
from daemon.core.errors import ChannelError, Conflict, FnotifyError, NotFound, StorageError, ValidationError
from daemon.core.models import Notification

log = logging.getLogger(__name__)


def _reply(value: Any, *, status: int = 200, headers: Any = None) -> web.Response:
    """A JSON response with text as it is (Cyrillic, emoji), not \\u escapes."""
    return web.json_response(value, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)

MAX_BODY = 1024 * 1024
"""Largest request body accepted: a maximal message (65,536 characters) fits even \\u-escaped."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATUS_OF: dict[type[FnotifyError], int] = {NotFound: 404, Conflict: 409, StorageError: 503, ChannelError: 502}
_LEGACY_FIELDS = {"recipient_id": "recipient", "chain": "channels_chain"}
_MAX_BODY = web.AppKey("max_body", int)
R = TypeVar("R", bound=Request)


class HttpError(Exception):
    """A reply other than success, raised anywhere below the error middleware."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers

    @classmethod
    def refused(cls, found: Sequence[Problem]) -> HttpError:
        """400 if any field has the wrong JSON type, else 422; names every field."""
        status = 400 if any(p.wrong_type for p in found) else 422
        return cls(status, {"errors": [{"field": p.field, "message": p.message} for p in found]})

    def response(self) -> web.Response:
        return _reply(dict(self.body), status=self.status, headers=self.headers)


class TokenCheck:
    """Bearer tokens compared by SHA-256 digest in constant time; configured as token or ``sha256:<hex>``."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = [bytes.fromhex(t[7:]) if t.startswith("sha256:") else _sha256(t) for t in tokens]

    def __call__(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            presented = _sha256(token)
        except UnicodeError:
            return False
        matched = False
        for digest in self._digests:  # every entry is compared: the time does not say which one matched
            matched |= hmac.compare_digest(presented, digest)
        return matched


def _sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


# -- middlewares (outermost first) ----------------------------------------------------------------

def _probes(service: Service) -> Middleware:
    """``/healthz`` and ``/readyz`` for load balancers, outside the API: no token, no request log line
    (a probe a second would flood the journal), not in the OpenAPI document."""

    @web.middleware
    async def probes(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PROBES and request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
            return await probe(request.path, service.store, service.engine)
        return await handler(request)

    return probes


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: client, method, path (no query), status, duration. Never headers."""
    started = time.perf_counter()
    status = "500"
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except ConnectionError:
        status = "connection closed"
        raise
    finally:
        log.info("%s %s %s %s %.1fms", request.remote, request.method, request.rel_url.raw_path, status,
                 (time.perf_counter() - started) * 1000)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every failure into a JSON reply; the service's exceptions map onto statuses here only."""
    try:
        return await handler(request)
    except HttpError as exc:
        return exc.response()
    except web.HTTPException as exc:  # aiohttp's own: no such path, wrong method, body too large
        allow = {hdrs.ALLOW: exc.headers[hdrs.ALLOW]} if hdrs.ALLOW in exc.headers else None
        return _reply({"error": exc.reason}, status=exc.status, headers=allow)
    except InvalidRequest as exc:
        return HttpError.refused(exc.problems).response()
    except ValidationError as exc:
        return HttpError.refused([Problem(exc.field, exc.reason)]).response()
    except FnotifyError as exc:
        status = next((s for kind, s in _STATUS_OF.items() if isinstance(exc, kind)), 400)
        if status == 503:
            log.error("%s %s failed: %s", request.method, request.rel_url.raw_path, exc)
        if status == 400:
            return HttpError.refused([Problem(None, str(exc))]).response()
        return _reply({"error": str(exc)}, status=status)
    except ConnectionError:
        raise  # the client is gone (or was cut off by the guard): nothing to answer, nothing to log
    except Exception:
        log.exception("%s %s failed unexpectedly", request.method, request.rel_url.raw_path)
        return _reply({"error": "internal error; see the daemon log"}, status=500)


def _auth(check: TokenCheck) -> Middleware:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not check(request.headers.get(hdrs.AUTHORIZATION)):
            raise HttpError(401, {"error": "unauthorized"}, {hdrs.WWW_AUTHENTICATE: "Bearer"})
        return await handler(request)

    return auth


# -- reading requests ------------------------------------------------------------------------------

async def _body(request: web.Request, model: type[R]) -> R:
    """The JSON body as a ``model``: 413 if too large, 400/422 naming each bad field."""
    limit = request.app[_MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, {"error": f"the body is larger than {limit} bytes"})
    raw = await request.read()
    try:
        value = json.loads(raw, parse_float=_number, parse_constant=_no_constant)
        json.dumps(value, ensure_ascii=False).encode()  # an unpaired \\ud800 escape cannot be stored
    except (ValueError, RecursionError) as exc:
        raise HttpError.refused([Problem(None, f"not valid JSON: {exc}", wrong_type=True)]) from None
    if not isinstance(value, dict):
        raise HttpError.refused([Problem(None, "the body must be a JSON object", wrong_type=True)])
    return parse(model, value, strict=True)


def _number(text: str) -> int | float:
    """JSON Schema counts 2.0 as an integer, so it is one here (the service wants ints for ids)."""
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is out of range for a number")
    return int(value) if value.is_integer() else value


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (Python's parser takes them; strict clients would not)."""
    raise ValueError(f"{name} is not JSON")


def _path_id(request: web.Request) -> ById:
    return parse_query(ById, {"id": [request.match_info["id"]]})


def _json(value: Any, status: int = 200) -> web.Response:
    if isinstance(value, list):
        value = [v.to_json() for v in value]
    elif hasattr(value, "to_json"):
        value = value.to_json()
    return _reply(value, status=status)


class HttpApi:
    """The routes: each a thin mapping of one request onto one ``Service`` method."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.routes: list[tuple[str, str, Handler]] = [
            ("POST", "/api/v1/notifications", self.send),
            ("GET", "/api/v1/notifications", self.list_notifications),
            ("GET", "/api/v1/notifications/{id}", self.show),
            ("POST", "/api/v1/notifications/{id}/cancel", self.cancel),
            ("GET", "/api/v1/recipients", self.list_recipients),
            ("POST", "/api/v1/recipients", self.add_recipient),
            ("GET", "/api/v1/recipients/{id}", self.show_recipient),
            ("PATCH", "/api/v1/recipients/{id}", self.update_recipient),
            ("DELETE", "/api/v1/recipients/{id}", self.remove_recipient),
            ("POST", "/api/v1/recipients/{id}/link", self.link_recipient),
            ("POST", "/api/send/", self.legacy_send),
            ("GET", "/api/v1/openapi.json", self.openapi),
            *GroupRoutes(service, _body, _json).routes,
        ]

    async def send(self, request: web.Request) -> web.Response:
        """One notification (``recipient_id``), or a batch, one per member (``group``)."""
        send = await _body(request, SendRequest)
        if send.group is not None:
            batch, created = await self.service.send_group(send)
            return _reply(batch_reply(batch, created), status=202 if created else 200)
        notification, created = await self.service.send(send)
        return _json(notification, 202 if created else 200)

    async def list_notifications(self, request: web.Request) -> web.Response:
        query = parse_query(NotificationsQuery, {name: request.query.getall(name) for name in request.query})
        items = await self.service.list_notifications(query.to_list())
        next_cursor = str(items[-1].id) if len(items) == query.limit else None
        return _reply({"items": [n.to_json() for n in items], "next_cursor": next_cursor})

    async def show(self, request: web.Request) -> web.Response:
        return _json(await self.service.show(_path_id(request)))

    async def cancel(self, request: web.Request) -> web.Response:
        return _json(await self.service.cancel(_path_id(request)))

    async def list_recipients(self, request: web.Request) -> web.Response:
        return _json(await self.service.list_recipients())

    async def add_recipient(self, request: web.Request) -> web.Response:
        return _json(await self.service.add_recipient(await _body(request, RecipientCreate)), 201)

    async def show_recipient(self, request: web.Request) -> web.Response:
        return _json(await self.service.show_recipient(_path_id(request)))

    async def update_recipient(self, request: web.Request) -> web.Response:
        path = _path_id(request)
        changes = await _body(request, RecipientChanges)
        return _json(await self.service.update_recipient(RecipientUpdate.of(path.id, changes)))

    async def remove_recipient(self, request: web.Request) -> web.Response:
        return _json(await self.service.remove_recipient(_path_id(request)))

    async def link_recipient(self, request: web.Request) -> web.Response:
        return _json(await self.service.link_recipient(_path_id(request)))

    async def legacy_send(self, request: web.Request) -> web.Response:
        """``POST /api/send/`` as the replaced Django service took it: 201, or 400 in DRF's shape."""
        try:
            body = await _body(request, LegacySendRequest)
            notification, _ = await self.service.send(body.to_send())
        except HttpError as exc:
            if exc.status not in (400, 422):
                raise
            raise HttpError(400, _drf_errors(exc.body["errors"])) from None
        except InvalidRequest as exc:
            raise HttpError(400, _drf_errors(HttpError.refused(exc.problems).body["errors"])) from None
        except ValidationError as exc:
            raise HttpError(400, {_LEGACY_FIELDS.get(exc.field, exc.field): [exc.reason]}) from None
        except NotFound as exc:
            raise HttpError(400, {"recipient": [str(exc)]}) from None
        return _reply(_legacy_view(notification), status=201)

    async def openapi(self, request: web.Request) -> web.Response:
        return _reply(openapi_document())


def _drf_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """DRF's shape: ``{"field": ["message", ...]}``, or ``{"detail": "..."}`` for the request as a whole."""
    whole = [e["message"] for e in errors if e["field"] is None]
    if whole:
        return {"detail": "; ".join(whole)}
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(_LEGACY_FIELDS.get(error["field"], error["field"]), []).append(error["message"])
    return out


def _legacy_view(notification: Notification) -> dict[str, Any]:
    """The notification, plus the fields the Django service echoed back under its own names."""
    data = notification.to_json()
    return {**data, "recipient": notification.recipient_id, "message": notification.text,
            "channels_chain": data["chain"]}


def build_app(service: Service, tokens: Iterable[str], *, max_body: int = MAX_BODY) -> web.Application:
    """The aiohttp application: logging, JSON errors and bearer auth around ``HttpApi``'s routes."""
    # Twilio's status callback is signed, not bearer-authenticated: answered before the token check
    app = web.Application(middlewares=[_probes(service), _log_requests, status_callback(service), _errors,
                                       _auth(TokenCheck(tokens))],
                          client_max_size=max_body)
    app[_MAX_BODY] = max_body
    for method, path, handler in HttpApi(service).routes:
        app.router.add_route(method, path, handler)
    return app


class HttpServer:
    """Serves ``build_app`` on ``[http] listen`` within ``limits`` (``daemon.http_guard``); ``address`` is the
    bound one (port 0 picks a free port)."""

    def __init__(self, service: Service, config: HttpConfig, *, shutdown_timeout: float = 10.0,
                 limits: ListenerLimits | None = None) -> None:
        self.config = config
        tokens = [t.get_secret_value() for t in config.tokens]
        host, port = config.address
        self.listener = Listener(build_app(service, tokens), host, port, limits or ListenerLimits.from_config(config),
                                  name="HTTP API", shutdown_timeout=shutdown_timeout)
        self._started = False

    async def start(self) -> None:
        try:
            await self.listener.start()
        except OSError as exc:
            raise FnotifyError(f"cannot serve the HTTP API on {self.config.listen}: {exc.strerror}; "
                               "change [http] listen or stop whatever holds the port") from None
        self._started = True
        log.info("HTTP API listening on %s (at most %d connections)", self.url, self.listener.limits.max_connections)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound; only while started."""
        return self.listener.address

    @property
    def url(self) -> str:
        return self.listener.url

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.listener.stop()
