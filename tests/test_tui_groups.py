"""The TUI's group sends, driven by Pilot against a real daemon on a real Unix socket: the send form's
choice of a group instead of a recipient, and the batch screen with each member's status."""

from __future__ import annotations

from textual.widgets import DataTable, Select, Static

from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.test_tui import SIZE, add_recipient, make_app, ready, rendered, simulated_daemon, type_text, wait_for  # noqa: F401
from tui.screens.batch import BatchScreen
from tui.screens.detail import NotificationDetailScreen
from tui.screens.send import SendScreen
from tui.widgets.recipient_picker import RecipientPicker


async def test_the_send_form_sends_to_a_group_and_opens_the_batch_with_each_members_status(
    simulated_daemon: RunningDaemon, suite: SimulatorSuite,  # noqa: F811
) -> None:
    ids = [await add_recipient(simulated_daemon, name=name, email=f"{name.lower()}@example.com")
           for name in ("Alice", "Bob", "Carol")]
    await simulated_daemon.call("group.add", name="oncall", members=ids)
    app = make_app(simulated_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=3)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SendScreen))
        form = app.screen
        group: Select[str] = form.query_one("#group", Select)
        await wait_for(pilot, lambda: len(group._options) > 1)  # the blank prompt, then the groups
        group.focus()
        await pilot.press("enter", "down", "enter")  # open the list, the first group, choose it
        await wait_for(pilot, lambda: group.value == "oncall")
        assert form.query_one(RecipientPicker).disabled  # a group replaces the recipient
        form.query_one("#message").focus()
        await type_text(pilot, "db-1 is 97% full")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchScreen))
        batch = app.screen
        assert isinstance(batch, BatchScreen)
        table: DataTable[object] = batch.query_one(DataTable)
        await wait_for(pilot, lambda: batch.record is not None and batch.record["counts"] == {"delivered": 3})
        assert table.row_count == 3
        rows = [" ".join(str(cell) for cell in table.get_row_at(i)) for i in range(3)]
        assert ["Alice" in rows[0], "Bob" in rows[1], "Carol" in rows[2]] == [True] * 3
        assert all("delivered" in row for row in rows)
        summary = rendered(batch.query_one("#batch-summary", Static))
        assert "→ group oncall" in summary and "✓ delivered 3" in summary
        sent = await simulated_daemon.call("batch.show", id=batch.batch_id)
        assert [n["recipient_id"] for n in sent["notifications"]] == ids

        await pilot.press("down", "enter")  # Bob's notification
        await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen))
        detail = app.screen
        assert isinstance(detail, NotificationDetailScreen)
        assert detail.notification_id == sent["notifications"][1]["id"]
        await wait_for(pilot, lambda: detail.notification is not None)
        assert f"#{batch.batch_id}, sent to a group" in rendered(detail.query_one("#summary", Static))
        await pilot.press("b")  # back to the batch from one of its notifications
        await wait_for(pilot, lambda: isinstance(app.screen, BatchScreen) and app.screen is not batch)


async def test_a_send_to_an_empty_group_shows_the_refusal_next_to_the_group(bare_daemon: RunningDaemon) -> None:
    await add_recipient(bare_daemon, name="Alice")
    await bare_daemon.call("group.add", name="nobody")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SendScreen))
        form = app.screen
        group: Select[str] = form.query_one("#group", Select)
        await wait_for(pilot, lambda: len(group._options) > 1)
        group.focus()
        await pilot.press("enter", "down", "enter")
        form.query_one("#message").focus()
        await type_text(pilot, "hello")
        await pilot.press("ctrl+s")
        error = form.query_one("#group-error", Static)
        await wait_for(pilot, lambda: "has no members" in rendered(error))
        assert isinstance(app.screen, SendScreen) and await bare_daemon.call("list") == []
