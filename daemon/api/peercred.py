"""Who is on the other end of a Unix socket (SO_PEERCRED), and whether they may talk to the daemon.

The socket file is 0660 already; ``[daemon] allowed_uids`` / ``allowed_gids`` narrow that further
(e.g. to the operators' group when the socket's group is broader). A peer is allowed when both
lists are empty (no check), or its uid is listed, or its primary or a supplementary group is.
The daemon's own user is not implied: list it too if it must connect.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from collections.abc import Collection
from dataclasses import dataclass

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    def groups(self) -> set[int]:
        """Primary and supplementary groups of the peer's user (the primary only when it has no passwd entry)."""
        try:
            name = pwd.getpwuid(self.uid).pw_name
            return set(os.getgrouplist(name, self.gid))
        except (KeyError, OSError):
            return {self.gid}


def peer_of(sock: socket.socket) -> Peer:
    """The credentials the kernel recorded for the connecting process."""
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid)


def is_allowed(peer: Peer, allowed_uids: Collection[int], allowed_gids: Collection[int]) -> bool:
    """No lists: everyone who can open the socket file. Else a listed uid or a listed group."""
    if not allowed_uids and not allowed_gids:
        return True
    if peer.uid in allowed_uids:
        return True
    return bool(allowed_gids) and not peer.groups().isdisjoint(allowed_gids)
