"""How the Telegram channel reads the Bot API's answers (``daemon.channels.botapi``), row by row.

The same classes and texts the daemon had when aiogram sent its messages; the adapter against the
loopback simulator is in ``test_channel_telegram``.
"""

from __future__ import annotations

import json

import pytest

from daemon.channels.botapi import api_error, check_token, read_answer
from daemon.core.errors import ConfigError, PermanentError, TransientError


def answer(status: int, **envelope: object) -> object:
    return read_answer(status, json.dumps(envelope).encode())


@pytest.mark.parametrize(("code", "description", "kind", "text"), [
    (400, "Bad Request: chat not found", PermanentError, "Telegram refused: Bad Request: chat not found"),
    (401, "Unauthorized", PermanentError, "bot token rejected (401 Unauthorized)"),
    (403, "Forbidden: bot can't initiate conversation with a user", PermanentError,
     "Telegram refused: Forbidden: bot can't initiate conversation with a user"),
    (404, "Not Found", PermanentError, "Telegram answered 404 (Not Found): is [telegram] api_base right?"),
    (409, "Conflict: terminated by other getUpdates request", TransientError,
     "Telegram error: Conflict: terminated by other getUpdates request"),
    (413, "Request Entity Too Large", PermanentError, "Telegram refused: Request Entity Too Large"),
    (500, "Internal Server Error", TransientError, "Telegram server error: Internal Server Error"),
    (502, "Bad Gateway", TransientError, "Telegram server error: Bad Gateway"),
    (420, "Flood", TransientError, "Telegram error: Flood"),
])
def test_each_error_code_has_its_class_and_text(
    code: int, description: str, kind: type[Exception], text: str
) -> None:
    error = api_error(code, description)
    assert type(error) is kind and str(error) == text


@pytest.mark.parametrize(("description", "blocked"), [
    ("Forbidden: bot was blocked by the user", True),
    ("Forbidden: bot was kicked from the group chat", True),
    ("Forbidden: user is deactivated", True),
    ("Forbidden: bot can't send messages to bots", False),
])
def test_a_403_is_blocked_only_when_the_user_blocked_kicked_or_left(description: str, blocked: bool) -> None:
    error = api_error(403, description)
    assert isinstance(error, PermanentError) and error.blocked is blocked


@pytest.mark.parametrize("retry_after", [3, 0.5])
def test_retry_after_makes_a_rate_limit_whatever_the_code(retry_after: float) -> None:
    error = api_error(429, "Too Many Requests: retry after 3", {"retry_after": retry_after})
    assert isinstance(error, TransientError)
    assert (error.retry_after, error.rate_limited) == (retry_after, True)
    assert str(error) == f"Telegram rate limit: retry after {retry_after}s"


@pytest.mark.parametrize("retry_after", [0, -1, True, "3", float("inf"), float("nan"), None])
def test_an_unusable_retry_after_is_ignored(retry_after: object) -> None:
    error = api_error(429, "Too Many Requests", {"retry_after": retry_after})
    assert isinstance(error, TransientError) and error.retry_after is None and not error.rate_limited


def test_a_migrated_group_is_permanent_and_names_the_new_chat() -> None:
    error = api_error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                      {"migrate_to_chat_id": -1001234})
    assert isinstance(error, PermanentError) and "-1001234" in str(error)


def test_a_good_answer_gives_its_result() -> None:
    assert answer(200, ok=True, result={"message_id": 7}) == {"message_id": 7}


def test_the_envelopes_error_code_wins_over_the_http_status() -> None:
    with pytest.raises(PermanentError, match="chat not found"):
        answer(200, ok=False, error_code=400, description="Bad Request: chat not found")
    with pytest.raises(TransientError, match="server error: Bad Gateway"):
        answer(502, ok=False, description="Bad Gateway")  # no error_code: the HTTP status decides


@pytest.mark.parametrize(("content", "text"), [
    (b"<html>502 Bad Gateway</html>", "unreadable answer from the Bot API: Failed to decode object"),
    (b"\xff\xfe not utf-8", "unreadable answer from the Bot API: Failed to decode object"),
    (b'["ok"]', "unreadable answer from the Bot API: Failed to deserialize object"),
    (b'{"result": 1}', "unreadable answer from the Bot API: Failed to deserialize object"),
])
def test_an_unreadable_answer_is_transient(content: bytes, text: str) -> None:
    with pytest.raises(TransientError) as caught:
        read_answer(502, content)
    assert str(caught.value) == text


def test_an_error_without_a_description_still_says_what_happened() -> None:
    with pytest.raises(TransientError, match=r"Telegram server error: error 500"):
        answer(500, ok=False, error_code=500)


@pytest.mark.parametrize("token", ["no-colon-XYZ", ":XYZ", "12ab:XYZ", "123:", "123: XYZ bits"])
def test_a_malformed_token_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(ConfigError, match="not a bot token") as caught:
        check_token(token)
    assert "XYZ" not in str(caught.value)
