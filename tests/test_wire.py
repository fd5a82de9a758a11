"""The socket server's codec (``daemon.api.wire``, orjson) against the protocol's (``json``): whatever
a client sends, the daemon reads the same request or refuses it in the same words, and what it writes
reads back as the same value."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import protocol
from daemon.api import wire
from daemon.core.models import Channel, Status

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**70)
           | st.integers(min_value=-(2**70), max_value=-(2**62)) | st.floats() | st.text(max_size=20)
           | st.just("\ud800"))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                       max_size=4), max_leaves=10)


def outcome(decode: Any, line: bytes) -> tuple[str, Any]:
    try:
        request = decode(line)
    except protocol.ProtocolError as exc:
        return "refused", (str(exc), exc.field)
    return "read", (request.op, json.dumps(request.params, sort_keys=True, default=repr), request.id)


def same_request(line: bytes) -> None:
    # compared through json.dumps: a float read as another type (or an int as a float) shows up, and NaN
    # (which is never equal to itself) compares as its spelling
    assert outcome(wire.decode_request, line) == outcome(protocol.decode_request, line)


@pytest.mark.parametrize("line", [
    b'{"op": "send", "id": 1, "params": {"recipient_id": 18446744073709551616, "message": "hi"}}\n',
    b'{"op": "send", "id": 1, "params": {"recipient_id": -9223372036854775809, "message": "hi"}}\n',
    b'{"op": "send", "id": 99999999999999999999999, "params": {"recipient_id": 1, "message": "hi"}}\n',
    b'{"op": "send", "params": {"recipient_id": 1, "message": "\\ud800"}}\n',
    b'{"op": "send", "params": {"recipient_id": 1, "message": "hi", "ack_timeout": NaN}}\n',
    b'{"op": "send", "params": {"recipient_id": 1, "message": "hi", "ack_timeout": 1e400}}\n',
    b'\xef\xbb\xbf{"op": "ping"}\n',
    '{"op": "ping"}'.encode("utf-16"),
    b'{"op": "ping", "op": "status"}\n',
    b'{"op": "pi\xffng"}\n',
    b'{"op": "ping"',
    b"[" * 5000 + b"]" * 5000,
    b'{"op": "ping", "params": {"a": "tab\there"}}',
    b'{"op": "nope"}',
    b'{"op": "send", "extra": 1}',
])
def test_edge_lines_are_read_or_refused_as_the_json_module_does(line: bytes) -> None:
    same_request(line)


@settings(max_examples=400, deadline=None)
@given(JSON.map(lambda v: {"op": "send", "id": 1, "params": {"value": v}}) | JSON | st.binary(max_size=80))
def test_any_line_is_read_or_refused_as_the_json_module_does(value: Any) -> None:
    same_request(value if isinstance(value, bytes) else json.dumps(value).encode() + b"\n")


@pytest.mark.parametrize("value", [
    {"id": 2**70, "ok": True, "result": [-(2**64), 2**63]},  # beyond 64 bits: orjson refuses, json writes it
    {"id": 1, "ok": True, "result": {1: "a non-string key"}},
    {"id": "\ud800", "ok": False, "error": {"code": "invalid", "message": "a lone surrogate echoed back"}},
    {"id": 1, "ok": True, "result": {"at": datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC), "s": Status.QUEUED,
                                     "chain": (Channel.TELEGRAM,), "text": "é 😀 \u2028", "x": 1e-7, "y": 0.1}},
])
def test_a_reply_reads_back_as_the_json_module_wrote_it(value: Any) -> None:
    line = wire.encode(value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == json.loads(protocol.encode(value))


@settings(max_examples=300, deadline=None)
@given(JSON.filter(lambda v: "nan" not in json.dumps(v).lower() and "infinity" not in json.dumps(v).lower()))
def test_any_finite_reply_reads_back_as_the_json_module_wrote_it(value: Any) -> None:
    reply = {"id": 1, "ok": True, "result": value}
    assert json.loads(wire.encode(reply)) == json.loads(protocol.encode(reply))


def test_non_finite_floats_are_the_one_known_difference() -> None:
    """orjson writes NaN and infinity as null, json as NaN / Infinity (not JSON); no reply carries one:
    stored durations are held finite (``sqlite_rows.to_seconds``) and requests refuse them."""
    assert json.loads(wire.encode({"x": math.inf}))["x"] is None
