"""The fault-control HTTP routes every simulator shares (mounted under /telegram, /smtp, /sms)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from daemon.simulators.faults import FaultPlan, FaultRule


class Recorded(Protocol):
    def to_json(self) -> dict[str, Any]: ...


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or ValueError saying why not."""
    data = await request.json()  # JSONDecodeError is a ValueError
    if not isinstance(data, dict):
        raise ValueError("body: must be a JSON object")
    return data


def fault_routes(plan: FaultPlan, messages: Callable[[], Sequence[Recorded]], *,
                 post_faults: bool = True) -> web.RouteTableDef:
    """POST /faults (a FaultRule as JSON; 400 naming the bad input), GET /faults, DELETE /faults,
    GET /messages (``?last=N``: the last N). ``post_faults=False`` when the simulator routes its POSTs itself."""
    routes = web.RouteTableDef()

    if post_faults:
        @routes.post("/faults")
        async def add_fault(request: web.Request) -> web.Response:
            try:
                rule = FaultRule.from_json(await json_object(request))
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            plan.add(rule)
            return web.json_response(rule.to_json(), status=201)

    @routes.get("/faults")
    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response([rule.to_json() for rule in plan.rules])

    @routes.delete("/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        plan.clear()
        return web.json_response({"cleared": True})

    @routes.get("/messages")
    async def list_messages(request: web.Request) -> web.Response:
        """Every message, or with ``?last=N`` the last N (the benchmark polls after 100k sends)."""
        recorded = messages()
        last = request.query.get("last", "")
        if last.isdigit():
            recorded = recorded[max(0, len(recorded) - int(last)):]
        return web.json_response([m.to_json() for m in recorded])

    return routes
