"""The socket server's JSON codec: orjson, with the standard library deciding whatever orjson would
read or write differently, so a client cannot tell the two apart (except a float's exponent
spelling: ``1e-7`` for ``1e-07``, the same number).

Why: under 64 busy clients ``json`` was 8 % of the event loop's CPU per send (reading a request line
~4 us, writing a reply ~8 us); orjson takes ~0.5 and ~0.7 us. Only the daemon imports this module:
the CLI and the TUI keep ``daemon.protocol``'s ``json`` (a client command must stay under 80 ms, and
tests/test_config_and_cli.py checks it loads no orjson).

Reading: orjson reads an integer beyond 64 bits as a float, where ``json`` keeps it exact (and the
request model then names it as out of range): a line with a run of 19 or more digits, and any line
orjson refuses (a lone surrogate, NaN, a BOM, UTF-16...), is read by ``json``, whose verdict and
words the client gets as before. Writing: a time or a dataclass goes through ``str`` as ``json``'s
``default=str`` did; anything orjson refuses (an integer beyond 64 bits, a non-string key, a lone
surrogate) is written by ``protocol.encode``.
"""

from __future__ import annotations

from typing import Any

import orjson

from daemon import protocol

_DIGITS = bytes(48 if b in b"0123456789" else 32 for b in range(256))  # every digit "0", the rest " "
_LONG_NUMBER = b"0" * 19
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def decode_request(line: bytes) -> protocol.Request:
    """As ``protocol.decode_request``: the request, or ProtocolError naming what is wrong."""
    if _LONG_NUMBER in line.translate(_DIGITS):  # a third of a regular expression's cost
        return protocol.decode_request(line)
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return protocol.decode_request(line)  # json's verdict, in json's words
    return protocol.request_from(data)


def encode(obj: Any) -> bytes:
    """As ``protocol.encode``: one line of compact JSON, non-ASCII text as UTF-8."""
    try:
        return orjson.dumps(obj, default=str, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return protocol.encode(obj)
