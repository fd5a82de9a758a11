"""The wire shapes of recipient groups and batch sends (``group.*``, ``send`` with ``group``,
``batch.show``); re-exported by ``daemon.protocol``."""

from __future__ import annotations

from typing import TypedDict


class GroupJSON(TypedDict):
    """``group.add``, ``group.show``, ``group.update`` and each item of ``group.list``."""

    name: str
    members: list[int]  # recipient ids, ascending
    created_at: str


class GroupRemovedJSON(TypedDict):
    name: str
    removed: bool


class BatchMemberJSON(TypedDict):
    """One member's notification in a batch."""

    id: int  # the notification's id
    recipient_id: int
    recipient_name: str | None  # None: the recipient was removed since
    status: str
    channel: str | None  # the channel that delivered, or the one being tried
    attempt_count: int
    updated_at: str


class BatchJSON(TypedDict):
    """``batch.show``: a send to a group, one notification per member."""

    batch_id: int
    group: str  # the group's name when it was sent to
    idempotency_key: str | None
    created_at: str
    counts: dict[str, int]  # status -> how many of the batch's notifications are in it
    notifications: list[BatchMemberJSON]


class BatchSendJSON(BatchJSON):
    """``send`` with ``group``."""

    created: bool  # False: the idempotency key was seen before and nothing new is sent
