"""The TUI's pure logic: live events folded into rows, filters, forms, verdicts, rendering helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tui.formatting import first_line, retry_wait, short_time
from tui.model import (
    NotificationFilter,
    apply_event,
    changed_fields,
    channel_verdict,
    from_summary,
    notification_id_of,
    reachable_channels,
    recipient_matches,
    recipient_params,
)
from tui.qr import half_block_lines, qr_matrix
from tui.widgets.notification_table import plan_columns

AT = "2026-11-25T14:03:20.946+00:00"
CREATED: Any = {"id": 7, "recipient_id": 1, "text": "Disk full", "subject": None, "chain": ["telegram", "email"],
                "status": "queued", "idempotency_key": None, "channel": "telegram", "next_attempt_at": None,
                "deadline": None, "ack_timeout": None, "created_at": AT, "updated_at": AT, "attempt_count": 0}


def event(kind: str, data: dict[str, Any]) -> Any:
    return {"event": kind, "at": AT, "data": data}


def attempt(attempt_id: int, channel: str, outcome: str, error: str) -> dict[str, Any]:
    return {"notification_id": 7, "id": attempt_id, "channel": channel, "outcome": outcome, "error": error,
            "provider_message_id": None, "started_at": AT, "finished_at": AT, "retry_at": None, "duration_ms": 1.0}


def test_a_failover_streamed_as_events_builds_the_same_attempt_log_the_daemon_keeps() -> None:
    n = from_summary(CREATED)
    n = apply_event(n, event("attempt.started", {"notification_id": 7, "attempt_id": 1, "channel": "telegram"}))
    assert n["status"] == "sending" and n["attempts"][0]["outcome"] is None and n["attempt_count"] == 1
    n = apply_event(n, event("attempt.finished", attempt(1, "telegram", "failed", "chat not found")))
    n = apply_event(n, event("attempt.finished", attempt(2, "email", "skipped", "no email address")))
    n = apply_event(n, event("notification.status", {"id": 7, "recipient_id": 1, "status": "failed",
                                                     "channel": "email"}))
    assert [(a["id"], a["outcome"]) for a in n["attempts"]] == [(1, "failed"), (2, "skipped")]
    assert (n["status"], n["channel"], n["attempt_count"]) == ("failed", "email", 2)


def test_applying_an_event_leaves_the_original_row_untouched() -> None:
    before = from_summary(CREATED)
    apply_event(before, event("attempt.started", {"notification_id": 7, "attempt_id": 1, "channel": "telegram"}))
    assert before["attempts"] == [] and before["status"] == "queued"


def test_events_name_the_notification_they_are_about() -> None:
    assert notification_id_of(event("attempt.finished", {"notification_id": 3})) == 3
    assert notification_id_of(event("notification.status", {"id": 4})) == 4
    assert notification_id_of(event("recipient.added", {"id": 5})) is None


def test_a_filter_becomes_list_params_and_matches_live_rows_the_same_way() -> None:
    f = NotificationFilter(status="failed", recipient_id=1, search=" Disk ")
    assert f.list_params(before_id=9, limit=51) == {"limit": 51, "status": "failed", "recipient_id": 1,
                                                    "search": "Disk", "before_id": 9}
    assert f.matches({**CREATED, "status": "failed"})
    assert not f.matches(CREATED)
    assert NotificationFilter().is_empty and NotificationFilter().list_params(None, 5) == {"limit": 5}


def test_recipient_search_matches_every_word_in_name_email_phone_or_id() -> None:
    ann = {"id": 12, "name": "Ann Lee", "email": "ann@example.com", "phone": "+14155550100"}
    assert recipient_matches(ann, "ann example") and recipient_matches(ann, "4155") and recipient_matches(ann, "12")
    assert not recipient_matches(ann, "bob")


def test_reachable_channels_skip_missing_addresses_opt_outs_and_a_blocked_chat() -> None:
    r: dict[str, Any] = {"email": "a@b.c", "phone": None, "telegram_chat_id": 5, "telegram_blocked": True,
                         "opt_out": []}
    assert reachable_channels(r) == ["email"]
    assert reachable_channels({**r, "telegram_blocked": False, "opt_out": ["email"]}) == ["telegram"]


def test_the_recipient_form_sends_only_what_changed_so_an_untouched_chat_stays_blocked() -> None:
    params = recipient_params({"name": " Ann ", "email": "", "phone": "+14155550100", "telegram_chat_id": "42"},
                              ["sms"])
    assert params == {"name": "Ann", "email": None, "phone": "+14155550100", "telegram_chat_id": 42,
                      "opt_out": ["sms"], "timezone": "UTC", "quiet_hours": None}
    original = {"name": "Ann", "email": None, "phone": "+14155550100", "telegram_chat_id": 42, "opt_out": ["sms"],
                "timezone": "UTC", "quiet_hours": None}
    assert changed_fields(original, params) == {}
    assert changed_fields(original, {**params, "name": "Anna"}) == {"name": "Anna"}
    assert recipient_params({"telegram_chat_id": "abc"}, [])["telegram_chat_id"] == "abc"  # the daemon says why


def test_the_channel_verdict_reads_at_a_glance() -> None:
    assert channel_verdict({"enabled": False, "delivered": 9}) == "disabled"
    assert channel_verdict({"enabled": True}) == "idle"
    assert channel_verdict({"enabled": True, "delivered": 5}) == "ok"
    assert channel_verdict({"enabled": True, "delivered": 5, "retry": 1}) == "degraded"
    assert channel_verdict({"enabled": True, "failed": 3, "retry": 4}) == "failing"


def test_times_show_the_clock_today_and_the_date_otherwise() -> None:
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert short_time("2026-01-15T09:30:05.123+00:00", UTC, now) == "09:30:05"
    assert short_time("2026-01-14T09:30:05.123+00:00", UTC, now) == "01-14 09:30"
    assert short_time(None, UTC, now) == "-"


def test_retry_wait_is_the_gap_between_an_attempt_and_its_retry() -> None:
    attempt = {"finished_at": "2026-01-15T09:30:00.000+00:00", "retry_at": "2026-01-15T09:30:02.500+00:00"}
    assert retry_wait(attempt) == 2.5
    assert retry_wait({"finished_at": attempt["finished_at"], "retry_at": None}) is None


def test_first_line_skips_blank_lines_and_cuts_with_an_ellipsis() -> None:
    assert first_line("\n  Disk full on db-1\nmore", 9) == "Disk ful…"
    assert first_line("short", 10) == "short"


def test_the_message_column_gets_what_the_terminal_has_left() -> None:
    rows = [{"id": 1234, "_time": "09:30:00"}]
    narrow = plan_columns(80, rows, ["Alice"])
    wide = plan_columns(200, rows, ["Alice"])
    assert [c.key for c in narrow] == ["time", "to", "channel", "status", "priority", "tries", "message"]
    assert [c.key for c in wide][:2] == ["time", "id"]
    assert sum(c.width + 2 for c in narrow) + 2 <= 80 and wide[-1].width > 100


def test_a_qr_code_is_drawn_two_rows_per_line_with_half_blocks() -> None:
    matrix = qr_matrix("https://t.me/fnotify_bot?start=abc")
    lines = half_block_lines(matrix)
    assert len(lines) == (len(matrix) + 1) // 2 and all(len(line) == len(matrix[0]) for line in lines)
    assert set("".join(lines)) <= {"█", "▀", "▄", " "}
    assert half_block_lines([[True, False], [True, True], [False, True]]) == ["█▄", " ▀"]


def test_the_table_shows_held_and_the_priority_of_each_row() -> None:
    from tui.formatting import priority_text, status_text

    assert status_text("held").plain == "☾ held"
    assert [priority_text(p).plain for p in ("low", "normal", "high", "critical", None)] == \
        ["low", "-", "high", "crit", "-"]
