"""Themes, the config's effect on the app, key overrides, the command
palette and notifications (the app offline, fed scripted service events)."""

from __future__ import annotations

from pathlib import Path

from tuichat.config import Config
from tuichat.matrix.account.session import Profile, Session
from tuichat.model.events import ConnectionChanged, ConnectionState, RoomsChanged, TimelineAppended
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import RoomSummary
from tuichat.ui.app import TuichatApp
from tuichat.ui.notifications import Notifier, notification_sequences
from tuichat.ui.screens.room_switcher import RoomSwitcher
from tuichat.ui.themes import builtin_themes
from tuichat.ui.widgets.timeline_view import TimelineView

ME = "@sam:example.org"


def offline_profile(tmp_path: Path) -> Profile:
    profile = Profile(tmp_path / "profile")
    profile.save_session(Session("https://matrix.example.org", ME, "DEVICE", "token"))
    profile.create_pickle_key()
    return profile


def message(n: int, body: str, *, highlight: bool = False) -> TimelineItem:
    return TimelineItem(
        key=f"$e{n}",
        event_id=f"$e{n}",
        sender="@ada:example.org",
        sender_name="\x1b]0;Ada;\x07",
        timestamp=1_763_800_000_000 + n * 60_000,
        kind=ItemKind.TEXT,
        body=body,
        highlight=highlight,
    )


def test_four_themes_ship_with_tuichat() -> None:
    loaded = builtin_themes()
    assert loaded.errors == []
    names = {theme.name for theme in loaded.themes}
    assert {"tuichat-dark", "tuichat-light", "tuichat-high-contrast", "tuichat-solarized"} <= names
    assert any(not theme.dark for theme in loaded.themes)


async def test_the_config_picks_theme_time_format_and_user_themes(tmp_path: Path) -> None:
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#ff00ff"\ndark = false\n')
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "not a colour"\n')
    config = Config(theme="mine", time_format="%I:%M %p", path=tmp_path / "config.toml")
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        messages = [n.message for n in app._notifications]
        assert any("broken.toml" in m and "not a colour" in m for m in messages)
        app.sink(RoomsChanged([RoomSummary("!r", "Room")]))
        app.sink(TimelineAppended("!r", [message(1, "hello")]))
        await pilot.pause()
        app.chat.switch_room("!r")
        await pilot.pause()
        line = next(t for t in app.query_one(TimelineView).line_texts() if "hello" in t)
        assert line[:8].endswith(("AM", "PM"))
        # The palette's theme command switches live.
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press(*"tuichat-solarized")
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "tuichat-solarized"


async def test_an_unknown_theme_falls_back_to_the_default_with_a_message(tmp_path: Path) -> None:
    config = Config(theme="no-such-theme", path=tmp_path / "config.toml")
    app = TuichatApp(
        offline_profile(tmp_path), connect=False, config=config, config_errors=["x:1: y"]
    )
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "tuichat-dark"
        messages = [n.message for n in app._notifications]
        assert "x:1: y" in messages
        assert any("no-such-theme" in m for m in messages)


async def test_key_overrides_from_the_config(tmp_path: Path) -> None:
    config = Config(keys={"switch_room": "ctrl+o"}, path=tmp_path / "c.toml")
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert not isinstance(app.screen, RoomSwitcher)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, RoomSwitcher)


async def test_the_palette_names_keys_as_the_config_binds_them(tmp_path: Path) -> None:
    """ "Go to another room" said Ctrl+K whatever [keys] said."""
    config = Config(keys={"switch_room": "ctrl+o"}, path=tmp_path / "c.toml")
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config)
    async with app.run_test() as pilot:
        await pilot.pause()
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert helps["Switch room"] == "Go to another room (Ctrl+O)"


async def test_every_action_is_in_the_command_palette(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test() as pilot:
        await pilot.pause()
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for binding in app.BINDINGS:
            assert binding.description in titles or binding.action == "quit", binding
        assert {"Recover encrypted history", "Membership changes: hide"} <= titles


def test_notification_escapes_carry_no_remote_control_characters() -> None:
    item = message(1, "secret \x1b]52;c;x\x07 text", highlight=True)
    room = "Room\x1b]0;pwned\x07;x"
    assert notification_sequences(Config(), room, item) == ["\a"]
    osc9 = notification_sequences(Config(bell=False, desktop="osc9"), room, item)
    # Controls become spaces: nothing can end the sequence early.
    assert osc9 == ["\x1b]9;Room ]0;pwned ;x: ]0;Ada; mentioned you\a"]
    osc777 = notification_sequences(
        Config(bell=False, desktop="osc777", show_text=True), room, item
    )
    assert len(osc777) == 1
    sequence = osc777[0]
    assert sequence.startswith("\x1b]777;notify;tuichat: Room ]0,pwned ,x;")
    assert sequence.endswith("\a")
    inner = sequence[len("\x1b]777;notify;") : -1]
    assert "\x1b" not in inner and "\a" not in inner and inner.count(";") == 1
    assert "secret" in inner  # shown only because show_text is on


def test_notifications_are_rate_limited() -> None:
    written: list[str] = []
    now = [100.0]
    notifier = Notifier(Config(), written.append, clock=lambda: now[0])
    assert notifier.message("Room", message(1, "a"))
    assert not notifier.message("Room", message(2, "b"))
    now[0] += 5
    assert notifier.message("Room", message(3, "c"))
    assert written == ["\a", "\a"]


async def test_a_mention_in_another_room_rings_once_synced(tmp_path: Path) -> None:
    written: list[str] = []
    config = Config(desktop="osc9", path=tmp_path / "c.toml")
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config)
    app.notifier._write = written.append
    rooms = [RoomSummary("!here", "Here", last_activity=2), RoomSummary("!there", "There")]
    async with app.run_test() as pilot:
        app.sink(RoomsChanged(rooms))
        await pilot.pause()
        app.chat.switch_room("!here")
        # The backlog of the first sync does not ring.
        app.sink(TimelineAppended("!there", [message(1, "old", highlight=True)]))
        await pilot.pause()
        assert written == []
        app.sink(ConnectionChanged(ConnectionState.SYNCED))
        app.sink(TimelineAppended("!there", [message(2, "no mention")]))
        await pilot.pause()
        assert written == []
        app.sink(TimelineAppended("!there", [message(3, "hey", highlight=True)]))
        await pilot.pause()
        assert written[0] == "\a" and written[1].startswith("\x1b]9;There:")
