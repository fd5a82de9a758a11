"""Property tests of the edges: whatever arrives, the answer is a value or an error naming the
problem, never an unexpected exception (which would be an `internal` reply or a crash)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import protocol
from daemon.api.requests import (
    REQUESTS,
    InvalidRequest,
    LegacySendRequest,
    NotificationsQuery,
    RecipientChanges,
    RecipientCreate,
    RecipientUpdate,
    Request,
    SendRequest,
    parse,
)
from daemon.config import parse_config
from daemon.core.errors import ConfigError, ValidationError
from daemon.core.models import Channel

NOW = datetime(2026, 11, 25, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.just("\udfff"),  # what JSON's "\udfff" escape decodes to
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
MODELS = sorted({*REQUESTS.values(), NotificationsQuery, LegacySendRequest, RecipientChanges}, key=lambda m: m.__name__)
FIELDS = sorted({name for model in MODELS for name in model.model_fields})
PARAMS = st.dictionaries(st.sampled_from([*FIELDS, "", "\ud800"]) | st.text(max_size=8), JSON, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_line_decodes_to_a_request_or_a_protocol_error(line: bytes) -> None:
    try:
        request = protocol.decode_request(line)
    except protocol.ProtocolError as exc:
        assert str(exc)
    else:
        assert request.op in protocol.OPS and isinstance(request.params, dict)


@settings(max_examples=300, deadline=None)
@given(PARAMS)
def test_any_send_params_give_a_notification_or_an_error_naming_a_field(params: dict[str, Any]) -> None:
    try:
        new = parse(SendRequest, params).to_notification((Channel.TELEGRAM,), NOW)
    except ValidationError as exc:
        assert exc.field and exc.reason
    else:
        assert new.recipient_id >= 1 and new.text.strip() and new.chain


@settings(max_examples=300, deadline=None)
@given(PARAMS, st.booleans())
def test_any_recipient_params_give_fields_or_an_error_naming_a_field(params: dict[str, Any], partial: bool) -> None:
    try:
        request = parse(RecipientUpdate if partial else RecipientCreate, params)
    except ValidationError as exc:
        assert exc.field and exc.reason
    else:
        assert set(request.changes()) <= set(params) and (partial or request.name.strip())




@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MODELS), PARAMS, st.booleans())
def test_any_params_for_any_model_in_either_mode_give_a_request_or_problems_naming_fields(
    model: type[Request], params: dict[str, Any], strict: bool
) -> None:
    try:
        request = parse(model, params, strict=strict)
    except InvalidRequest as exc:
        assert exc.problems and all(p.field and p.message for p in exc.problems)
        assert (exc.field, exc.reason) == (exc.problems[0].field, exc.problems[0].message)
    else:
        assert isinstance(request, model)


SECTIONS = st.sampled_from(["daemon", "telegram", "email", "sms", "retry", "chain", "http", "breaker", "nope"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(SECTIONS, st.dictionaries(st.text(max_size=15), JSON, max_size=4), max_size=4))
def test_any_config_mapping_loads_or_is_refused_with_a_config_error(raw: dict[str, Any]) -> None:
    try:
        parse_config(raw)
    except ConfigError as exc:
        assert str(exc).startswith("configuration: [")
