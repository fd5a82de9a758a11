"""The HTTP API's routes for recipient groups and batches (``/api/v1/groups``, ``/api/v1/batches``),
mounted by ``daemon.api.http_api.HttpApi``, which hands in its way of reading a body and of replying."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from daemon.api.requests import ByBatch, ByName, GroupChanges, GroupCreate, GroupUpdate, Request, parse_query
from daemon.api.service import Service

R = TypeVar("R", bound=Request)
BodyReader = Callable[[web.Request, type[R]], Awaitable[R]]
Replier = Callable[[Any, int], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GroupRoutes:
    def __init__(self, service: Service, body: BodyReader[Any], reply: Replier) -> None:
        self.service = service
        self._body = body
        self._reply = reply
        self.routes: list[tuple[str, str, Handler]] = [
            ("GET", "/api/v1/groups", self.list_groups),
            ("POST", "/api/v1/groups", self.add_group),
            ("GET", "/api/v1/groups/{name}", self.show_group),
            ("PATCH", "/api/v1/groups/{name}", self.update_group),
            ("DELETE", "/api/v1/groups/{name}", self.remove_group),
            ("GET", "/api/v1/batches/{id}", self.show_batch),
        ]

    async def list_groups(self, request: web.Request) -> web.Response:
        return self._reply(await self.service.list_groups(), 200)

    async def add_group(self, request: web.Request) -> web.Response:
        return self._reply(await self.service.add_group(await self._body(request, GroupCreate)), 201)

    async def show_group(self, request: web.Request) -> web.Response:
        return self._reply(await self.service.show_group(_path_name(request)), 200)

    async def update_group(self, request: web.Request) -> web.Response:
        path = _path_name(request)
        changes: GroupChanges = await self._body(request, GroupChanges)
        return self._reply(await self.service.update_group(GroupUpdate.of(path.name, changes)), 200)

    async def remove_group(self, request: web.Request) -> web.Response:
        return self._reply(await self.service.remove_group(_path_name(request)), 200)

    async def show_batch(self, request: web.Request) -> web.Response:
        batch = await self.service.show_batch(parse_query(ByBatch, {"id": [request.match_info["id"]]}))
        return self._reply(batch, 200)


def _path_name(request: web.Request) -> ByName:
    return parse_query(ByName, {"name": [request.match_info["name"]]})
