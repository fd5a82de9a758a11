"""Twilio's status callback (SMS delivery receipts) on the HTTP listener, at the path of
``[sms] status_callback_url``.

Twilio authenticates it, not a bearer token: ``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, the
full URL Twilio was given + each POST parameter's name and value, sorted by name)). A bad or missing
signature gets 403 and changes nothing. A callback for a ``MessageSid`` the daemon does not know (sent
before receipts were on, or pruned) gets 200, so Twilio stops retrying it, and is logged once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from daemon.api.service import Service
from daemon.core.sms_receipt import FINAL_STATUSES

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNATURE_HEADER = "X-Twilio-Signature"
UNKNOWN_LOGGED = 1000  # how many unknown MessageSids are remembered so each is logged once


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends with a form POST to ``url``."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), given.encode())


def status_callback(service: Service) -> Middleware:
    """Middleware answering POSTs to the callback path; everything else goes on to the API."""
    sms = service.config.sms
    url = sms.status_callback_url
    path = urlsplit(url).path if url else None
    token = sms.auth_token.get_secret_value() if sms.auth_token else None
    unknown: OrderedDict[str, None] = OrderedDict()

    @web.middleware
    async def callback(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (path is None or token is None or url is None or request.path != path or request.method != "POST"
                or not sms.enabled or sms.receipts != "callback"):
            return await handler(request)
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        if not signature_valid(token, url, params, request.headers.get(SIGNATURE_HEADER)):
            log.warning("Twilio status callback from %s refused: bad or missing %s", request.remote, SIGNATURE_HEADER)
            return web.json_response({"error": "invalid signature"}, status=403)
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        if not sid or not status:
            return web.json_response({"error": "MessageSid and MessageStatus: required"}, status=400)
        code_text = params.get("ErrorCode", "")
        code = int(code_text) if code_text.isdigit() else None
        notification_id = await service.store.record_receipt(sid, status, code, service.clock())
        if notification_id is None:
            if sid not in unknown:
                log.info("Twilio status callback for unknown MessageSid %s (%s): ignored", sid, status)
                unknown[sid] = None
                if len(unknown) > UNKNOWN_LOGGED:
                    unknown.popitem(last=False)
        else:
            log.debug("notification %d: SMS %s reported %s%s", notification_id, sid, status,
                      f" ({code})" if code is not None else "")
            if status in FINAL_STATUSES:
                service.engine.poke()
        return web.Response(status=200)

    return callback
