"""The Telegram simulator's control API (mounted under /telegram by whoever hosts it).

POST /faults (a FaultRule), /updates (a raw update), /user_sends ({chat_id, text}),
/press_button ({chat_id, message_id, data}), /member_status ({chat_id, status}) answer 201 with what
was created, or 400 naming the bad input; GET /faults, DELETE /faults, GET /messages. It drives the
simulator only through its public methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web

from daemon.simulators.control import fault_routes, json_object
from daemon.simulators.faults import FaultPlan, FaultRule

Json = dict[str, Any]


class TelegramSimulator(Protocol):
    """The simulator's public methods these routes drive (``daemon.simulators.telegram``)."""

    faults: FaultPlan

    @property
    def messages(self) -> Sequence[Any]: ...
    def push_update(self, update: Json) -> Json: ...
    def user_sends(self, chat_id: int, text: str) -> Json: ...
    def press_button(self, chat_id: int, message_id: int, data: str) -> Json: ...
    def member_status(self, chat_id: int, status: str) -> Json: ...


def control_routes(sim: TelegramSimulator) -> web.RouteTableDef:
    """The control routes of ``sim``."""

    async def control_post(request: web.Request) -> web.Response:
        try:
            data = await json_object(request)
            what = request.match_info["what"]
            if what == "faults":
                rule = FaultRule.from_json(data)
                sim.faults.add(rule)
                return web.json_response(rule.to_json(), status=201)
            if what == "updates":
                return web.json_response(sim.push_update(data), status=201)
            if what == "press_button":
                pressed = sim.press_button(int(data["chat_id"]), int(data["message_id"]), str(data["data"]))
                return web.json_response(pressed, status=201)
            if what == "member_status":
                return web.json_response(sim.member_status(int(data["chat_id"]), str(data["status"])), status=201)
            text = data["text"]
            if not isinstance(text, str) or not text:
                raise ValueError("text: must be a non-empty string")
            return web.json_response(sim.user_sends(int(data["chat_id"]), text), status=201)
        except KeyError as exc:
            return web.json_response({"error": f"{exc.args[0]}: required"}, status=400)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    routes = fault_routes(sim.faults, lambda: sim.messages, post_faults=False)
    routes.post("/{what:faults|updates|user_sends|press_button|member_status}")(control_post)
    return routes
