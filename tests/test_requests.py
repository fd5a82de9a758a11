"""The request models: one per operation that takes parameters, the same rules over the socket (lax)
and over HTTP (strict JSON types), and the OpenAPI document made from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from daemon import protocol
from daemon.api.http_openapi import PARAMETERS, REQUEST_BODIES, openapi_document
from daemon.api.requests import REQUESTS, InvalidRequest, ListRequest, RecipientUpdate, SendRequest, parse
from daemon.core.models import Channel
from tests.conftest import RunningDaemon
from tests.test_hostile_input import raw_call

DOCS = Path(__file__).parent.parent / "docs"


def documented_params() -> dict[str, set[str]]:
    """docs/protocol.md's table of operations: op -> the parameter names in its params column."""
    text = (DOCS / "protocol.md").read_text()
    table = text[text.index("## Operations"):text.index("A **notification** has")]
    ops: dict[str, set[str]] = {}
    for cell_ops, cell_params in re.findall(r"^\| ([^|]+) \| ([^|]+) \|", table, re.MULTILINE):
        for op in re.findall(r"`([a-z.]+)`", cell_ops):
            ops[op] = set(re.findall(r"`([a-z_]+)\??`", cell_params))
    return ops


def test_every_socket_op_that_takes_params_has_a_model_with_exactly_the_documented_fields() -> None:
    documented = documented_params()
    assert set(documented) == set(protocol.OPS)
    takes_params = {op for op, params in documented.items() if params}
    assert takes_params == set(REQUESTS)
    for op in takes_params:
        assert set(REQUESTS[op].model_fields) == documented[op], op
        assert REQUESTS[op].model_config["extra"] == "forbid", op


@pytest.mark.parametrize("op", sorted(REQUESTS))
async def test_every_op_with_params_refuses_an_unknown_field_by_name(bare_daemon: RunningDaemon, op: str) -> None:
    reply = await raw_call(bare_daemon, op, {"colour": "red"})
    assert reply["ok"] is False
    assert (reply["error"]["code"], reply["error"]["field"]) == ("invalid", "colour"), reply
    assert reply["error"]["message"].startswith("colour: unknown field (allowed: ")


def test_the_openapi_documents_request_schemas_are_the_models_schemas() -> None:
    document = openapi_document()
    operations = [op for item in document["paths"].values() for op in item.values()]
    bodies = {op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
              for op in operations if "requestBody" in op}
    assert bodies == set(REQUEST_BODIES)
    for name, model in REQUEST_BODIES.items():
        assert document["components"]["schemas"][name] == model.model_json_schema(), name
    for op in operations:
        for param in op.get("parameters", []):
            schema = PARAMETERS[param["in"]].model_json_schema()
            assert param["schema"] == schema["properties"][param["name"]], (op["operationId"], param)
            assert param["required"] == (param["name"] in schema.get("required", []))
    listed = next(op for op in operations if op["operationId"] == "list_notifications")
    assert [p["name"] for p in listed["parameters"]] == list(PARAMETERS["query"].model_fields)


# -- the two modes -------------------------------------------------------------------------------------

def test_the_socket_reads_digit_strings_and_comma_separated_chains_as_the_cli_sends_them() -> None:
    sent = parse(SendRequest, {"recipient_id": " 7 ", "message": "hi", "chain": "EMAIL, sms", "expires_in": 60})
    assert (sent.recipient_id, sent.chain, sent.expires_in) == (7, (Channel.EMAIL, Channel.SMS), 60.0)
    assert parse(ListRequest, {"status": "", "limit": "20"}).limit == 20


def test_strict_mode_takes_json_types_exactly_and_tells_a_wrong_type_apart() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(SendRequest, {"recipient_id": "7", "message": "  ", "chain": "email", "colour": 1}, strict=True)
    found = [(p.field, p.wrong_type) for p in err.value.problems]
    assert found == [("colour", False), ("recipient_id", True), ("message", False), ("chain", True)]
    assert (err.value.field, str(err.value)) == ("colour", f"colour: {err.value.problems[0].message}")


@pytest.mark.parametrize(("params", "field", "message"), [
    ({"message": "x"}, "recipient_id", "required"),
    ({"recipient_id": None, "message": "x"}, "recipient_id", "required"),
    ({"recipient_id": True, "message": "x"}, "recipient_id", "must be an integer"),
    ({"recipient_id": 1, "message": ""}, "message", "must not be empty"),
    ({"recipient_id": 1, "message": "x", "deadline": "2030-01-01T00:00:00Z", "expires_in": 5}, "deadline",
     "give either deadline or expires_in, not both"),
    ({"recipient_id": 1, "message": "x", "chain": ["sms", "SMS"]}, "chain", "sms appears twice"),
    ({"recipient_id": 1, "message": "x", "ack_timeout": float("nan")}, "ack_timeout",
     "must be a finite number of seconds, more than 0 and at most 315619200"),
])
def test_a_refusal_names_the_field_in_todays_words(params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(SendRequest, params)
    assert (err.value.field, err.value.reason) == (field, message)


def test_a_key_that_is_not_valid_unicode_is_an_unknown_field_named_escaped() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(SendRequest, {"recipient_id": 1, "message": "x", "\udcff": 1})
    assert err.value.field == "\\udcff" and "unknown field" in err.value.reason


def test_an_update_changes_only_the_fields_given_and_null_opt_out_clears() -> None:
    update = parse(RecipientUpdate, {"id": "3", "email": "", "opt_out": None})
    assert (update.id, update.changes()) == (3, {"email": None, "opt_out": frozenset()})
    with pytest.raises(InvalidRequest, match="name: required"):
        parse(RecipientUpdate, {"id": 3, "name": None})
