"""Lines naming only an event's type (state events and types tuichat has no
rendering for) are kept in the timeline but shown only with the config's
`show_hidden_events` (or the palette's "Hidden events: show"); events with a
body show it either way. Through the screen, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.test_look_and_feel import message, offline_profile
from tests.test_other_events import STATE, VIEWER, event
from tuichat.config import Config, load_config
from tuichat.matrix.content.convert import to_item
from tuichat.model.events import RoomsChanged, TimelineAppended
from tuichat.model.items import TimelineItem
from tuichat.model.rooms import RoomSummary
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.timeline_view import TimelineView


def _items() -> list[TimelineItem]:
    raws: list[dict[str, Any]] = [
        event("org.example.widget", {"x": 1}, event_id="$widget", ts=1_763_800_060_000),
        event("org.example.setting", {}, event_id="$setting", ts=1_763_800_120_000, state_key=""),
        event("org.example.note", {"body": "a note"}, event_id="$note", ts=1_763_800_180_000),
    ]
    items = [to_item(raw, STATE, VIEWER) for raw in raws]
    assert all(item is not None for item in items)
    return [message(0, "hello"), *(item for item in items if item is not None)]


async def _open_room(app: TuichatApp, pilot: Any) -> TimelineView:
    await pilot.pause()
    app.sink(RoomsChanged([RoomSummary("!r", "Room")]))
    app.sink(TimelineAppended("!r", _items()))
    await pilot.pause()
    app.chat.switch_room("!r")
    await pilot.pause()
    return app.query_one(TimelineView)


def _shown(view: TimelineView, text: str) -> bool:
    return any(text in line for line in view.line_texts())


async def test_type_only_lines_are_hidden_by_default_kept_and_shown_from_the_palette(
    tmp_path: Path,
) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=Config())
    async with app.run_test(size=(110, 30)) as pilot:
        view = await _open_room(app, pilot)
        assert _shown(view, "hello") and _shown(view, "a note")
        assert not _shown(view, "org.example.widget")
        assert not _shown(view, "org.example.setting")
        # Kept in the model, never dropped.
        keys = [item.key for item in app.state.timelines["!r"]]
        assert "$widget" in keys and "$setting" in keys

        await pilot.press("ctrl+p")
        await pilot.press(*"hidden events")
        await pilot.press("enter")
        await pilot.pause()
        assert _shown(view, "Bob sent an event of type org.example.widget")
        assert _shown(view, "Bob changed org.example.setting")
        assert _shown(view, "hello") and _shown(view, "a note")


async def test_the_setting_on_shows_type_only_lines_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("show_hidden_events = true\n")
    config, errors = load_config(path)
    assert errors == [] and config.show_hidden_events
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config)
    async with app.run_test(size=(110, 30)) as pilot:
        view = await _open_room(app, pilot)
        assert _shown(view, "Bob sent an event of type org.example.widget")
        assert _shown(view, "Bob changed org.example.setting")
        assert _shown(view, "a note")


def test_show_hidden_events_must_be_true_or_false(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('show_hidden_events = "yes"\n')
    config, errors = load_config(path)
    assert errors == [f"{path}:1: 'show_hidden_events' must be true or false"]
    assert config.show_hidden_events is False
