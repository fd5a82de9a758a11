"""The service layer's recipient groups and batch sends (mixed into ``daemon.api.service.Service``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from daemon.api.requests import ByBatch, ByName, GroupCreate, GroupUpdate, SendRequest
from daemon.config import Config
from daemon.core.engine import Engine
from daemon.core.errors import NotFound
from daemon.core.events import EventBus
from daemon.core.groups import Batch, Group
from daemon.core.store import Store
from daemon.protocol import BatchSendJSON, GroupRemovedJSON


class GroupOps:
    """``group.*``, ``batch.show``, and ``send`` with ``group``."""

    config: Config
    store: Store
    engine: Engine
    events: EventBus
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]
    last_send: float

    async def add_group(self, request: GroupCreate) -> Group:
        return await self.store.add_group(request.name, request.members, self.clock())

    async def list_groups(self) -> list[Group]:
        return await self.store.list_groups()

    async def show_group(self, request: ByName) -> Group:
        group = await self.store.get_group(request.name)
        if group is None:
            raise NotFound(f"group {request.name!r} does not exist")
        return group

    async def update_group(self, request: GroupUpdate) -> Group:
        return await self.store.update_group(request.name, rename=request.rename, members=request.members,
                                             add=request.add, remove=request.remove)

    async def remove_group(self, request: ByName) -> GroupRemovedJSON:
        await self.store.remove_group(request.name)
        return {"name": request.name, "removed": True}

    async def send_group(self, request: SendRequest) -> tuple[Batch, bool]:
        """One notification per member of ``request.group``, created together; the batch and whether it is
        new (a repeat of an idempotency key returns the first batch and sends nothing)."""
        self.last_send = self.monotonic()
        now = self.clock()
        batch, created = await self.store.create_batch(request.to_batch(self.config.chain.default, now), now)
        if created:
            for member in batch.members:
                self.events.publish("notification.created", member.notification.summary_json())
            self.engine.poke()
        return batch, created

    async def show_batch(self, request: ByBatch) -> Batch:
        batch = await self.store.get_batch(request.id)
        if batch is None:
            raise NotFound(f"batch {request.id} does not exist")
        return batch


def batch_reply(batch: Batch, created: bool) -> BatchSendJSON:
    """The reply to a send to a group: the batch, each member's notification, and whether it is new."""
    return {**batch.to_json(), "created": created}
