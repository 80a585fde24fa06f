"""Keys that must not fight each other: every key the README lists works
from where it is used (the composer has the focus while typing), the README's
table and the bindings agree, keys typed in a burst (or sent by tmux) arrive
as typed, and the Help screen shows every key and command."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual._xterm_parser import XTermParser
from textual.binding import Binding
from textual.widgets import Static

from tests.test_look_and_feel import message, offline_profile
from tuichat.model.commands import COMMANDS
from tuichat.model.events import RoomsChanged, TimelineAppended
from tuichat.model.keys import KEY_ACTIONS, KeyScope
from tuichat.model.rooms import RoomSummary
from tuichat.ui.app import TuichatApp
from tuichat.ui.commands import HANDLERS
from tuichat.ui.screens.file_picker import FilePicker
from tuichat.ui.screens.help import HelpScreen, key_label
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.timeline_view import TimelineView

README = Path(__file__).resolve().parent.parent / "README.md"


def shown_text(widget: Static, width: int) -> str:
    """What a Static shows, as plain text at this width."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def readme_keys() -> list[tuple[list[str], str]]:
    """The README's Keys table: ([Textual key names], action text) per row.
    Text in parentheses is context ("Up (empty composer)"), not a key."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("Key", "---"):
            continue
        keys_cell = re.sub(r"\([^)]*\)", "", cells[0]).replace("`", "")
        labels = [k.strip() for k in re.split(r" / |, ", keys_cell) if k.strip()]
        rows.append(([key_name(label) for label in labels], cells[1]))
    return rows


def key_name(label: str) -> str:
    """ "Ctrl+PageDown" -> "ctrl+pagedown", "+" -> "plus"."""
    if label == "+":
        return "plus"
    return label.lower()


def on_selected_message(action: str) -> bool:
    return "selected" in action


def binding_keys(bindings: list[Binding | tuple[str, ...]]) -> dict[str, set[str]]:
    """action -> its keys, for the Binding objects in a BINDINGS list."""
    keys: dict[str, set[str]] = {}
    for binding in bindings:
        if isinstance(binding, Binding):
            keys.setdefault(binding.action, set()).update(binding.key.split(","))
    return keys


async def test_every_readme_key_works_from_where_it_is_used(tmp_path: Path) -> None:
    """With the composer focused, each README key must reach the App's (or
    the composer's own) binding first: not a binding the composer inherits
    from TextArea (Ctrl+U was "delete to line start" there, so the upload
    key did nothing while typing)."""
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    composer_own = {b.action for b in Composer.BINDINGS if isinstance(b, Binding)}
    composer_reads = {key for key, _ in Composer.KEYS_READ}
    async with app.run_test(size=(100, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!r", "Room")]))
        app.sink(TimelineAppended("!r", [message(1, "hello")]))
        await pilot.pause()
        app.chat.switch_room("!r")
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.pause()
        active = app.screen.active_bindings
        for keys, action in readme_keys():
            if on_selected_message(action):
                continue
            for key in keys:
                winner = active.get(key)
                if key in composer_reads:
                    # Read by the composer before any binding, unless a
                    # priority binding takes it.
                    assert winner is None or not winner.binding.priority, (key, winner)
                    continue
                assert winner is not None, f"{key} ({action}) is bound to nothing"
                assert winner.node is app or winner.binding.action in composer_own, (
                    f"{key} ({action}) is taken by {type(winner.node).__name__}: "
                    f"{winner.binding.action}"
                )

        view = app.query_one(TimelineView)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert view.has_focus
        active = app.screen.active_bindings
        for keys, action in readme_keys():
            if on_selected_message(action):
                for key in keys:
                    assert active[key].node is view, (key, action)


def test_the_readme_keys_table_equals_the_bindings() -> None:
    """Every key in the README is bound, and every binding people use is in
    the README: a changed default (Ctrl+U -> Ctrl+T) changes both or fails."""
    rows = readme_keys()
    typing = {k for keys, action in rows if not on_selected_message(action) for k in keys}
    selected = {k for keys, action in rows if on_selected_message(action) for k in keys}

    app_bindings = binding_keys(TuichatApp.BINDINGS)
    app_bindings["command_palette"] = {TuichatApp.COMMAND_PALETTE_BINDING}
    composer = binding_keys(Composer.BINDINGS)
    composer.update({f"read:{key}": {key} for key, _ in Composer.KEYS_READ})
    everywhere = {**app_bindings, **composer}
    for action, keys in everywhere.items():
        assert keys & typing, f"{action} ({', '.join(sorted(keys))}) is not in the README"
    bound = set().union(*everywhere.values())
    assert typing <= bound, f"in the README but bound to nothing: {sorted(typing - bound)}"

    timeline = {
        b.id: set(b.key.split(","))
        for b in TimelineView.BINDINGS
        if isinstance(b, Binding) and b.id
    }
    for action, keys in timeline.items():
        assert keys & selected, f"{action} ({', '.join(sorted(keys))}) is not in the README"
    bound = set().union(*timeline.values())
    assert selected <= bound, f"in the README but not bound: {sorted(selected - bound)}"


def test_the_bindings_bind_what_the_key_table_says() -> None:
    """Each action's default keys and words are written once, in the key
    table: the App's and the timeline's bindings carry exactly those (the
    config's `[keys]` defaults are made from the same table)."""
    bound = {
        KeyScope.APP: TuichatApp.BINDINGS,
        KeyScope.SELECTED_MESSAGE: TimelineView.BINDINGS,
    }
    for scope, bindings in bound.items():
        with_id = {b.id: b for b in bindings if isinstance(b, Binding) and b.id}
        table = {action.id: action for action in KEY_ACTIONS if action.scope is scope}
        assert with_id.keys() == table.keys(), scope
        for action_id, action in table.items():
            binding = with_id[action_id]
            assert (binding.key, binding.description) == (action.keys, action.description)
            assert (binding.show, binding.priority) == (action.show, action.priority)


async def test_newline_keys_typed_in_a_burst_stay_in_order(tmp_path: Path) -> None:
    """Bytes as a terminal (or tmux) sends them, through Textual's own parser,
    posted to the app back to back as its driver does: Alt+Enter arrives as
    ESC CR, Ctrl+J as LF. It came out as a sent "a" (Alt+Enter read as
    Enter) and "bxy" followed by the newlines (the composer's newline was a
    binding, run only after the key bubbled up to the App)."""
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.pause()
        parser = XTermParser()
        for event in [*parser.feed("a\x1b\rb\nx\ny"), *parser.feed("")]:
            app.post_message(event)
        await pilot.pause(0.3)
        assert composer.text == "a\nb\nx\ny"
        assert not app.main.feedback.text  # nothing was sent


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", "tuichat-test-keys", *args], capture_output=True, text=True, check=False
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_real_app_in_tmux_takes_the_keys_from_the_composer(tmp_path: Path) -> None:
    """tuichat itself in a tmux pane, keys sent by tmux: Alt+Enter and Ctrl+J
    start new lines, and the upload key opens the file picker while the
    composer has the focus."""
    profile = offline_profile(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text("")
    root = Path(__file__).resolve().parent.parent
    command = (
        f"cd {root} && TUICHAT_CONFIG={config} {Path(__import__('sys').executable)} "
        f"-m tuichat --profile {profile.root}"
    )
    _tmux("kill-server")
    _tmux("new-session", "-d", "-x", "100", "-y", "30", command)
    try:

        def screen() -> str:
            return _tmux("capture-pane", "-p")

        def wait_for(text: str, timeout: float = 20.0, *, gone: bool = False) -> str:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                shown = screen()
                if (text in shown) is not gone:
                    return shown
                time.sleep(0.2)
            raise AssertionError(f"{text!r} never {'gone' if gone else 'shown'}:\n{screen()}")

        wait_for("Enter sends")  # the composer's placeholder
        wait_for("^p")  # the key bar: the app reads keys
        _tmux("send-keys", "one", "M-Enter", "two", "C-j", "x3", "C-j", "y4")
        shown = wait_for("y4")
        lines = [line.strip(" ▊▎") for line in shown.splitlines()]
        typed = [line for line in lines if line in ("one", "two", "x3", "y4")]
        assert typed == ["one", "two", "x3", "y4"], shown
        _tmux("send-keys", "C-t")
        wait_for("Send a file")
        # The other keys that open something, from the composer, as tmux
        # sends them (F-keys, Ctrl+K, Ctrl+N), each closed with Escape.
        previous = "Send a file"
        opening = (
            ("F1", "Anywhere"),  # the help (its first heading: more keys push the rest down)
            ("C-k", "Switch to room"),
            ("F3", "Devices of"),
            ("C-n", "New encrypted direct message"),
        )
        for key, shows in opening:
            _tmux("send-keys", "Escape")
            wait_for(previous, gone=True)
            _tmux("send-keys", key)
            wait_for(shows)
            previous = shows
    finally:
        _tmux("kill-server")


def test_every_command_in_the_table_has_a_handler_and_no_other_does() -> None:
    assert HANDLERS.keys() == COMMANDS.keys()


async def test_help_shows_every_command_and_key_and_scrolls(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = shown_text(app.screen.query_one("#help-text", Static), 200)
        for spec in COMMANDS.values():
            assert spec.usage in text
        for binding in TuichatApp.BINDINGS:
            assert isinstance(binding, Binding)
            label = ", ".join(key_label(key) for key in binding.key.split(","))
            assert f"{label}  " in text and binding.description in text, binding
        for _key, what in Composer.KEYS_READ:
            assert what in text
        scroll = app.screen.query_one("#help-scroll")
        assert scroll.max_scroll_y > 0  # longer than the screen, and it scrolls
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

        composer = app.query_one(Composer)
        composer.focus()
        composer.insert("/help")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_the_upload_key_opens_the_file_picker_from_the_composer(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!r", "Room")]))
        await pilot.pause()
        composer = app.query_one(Composer)
        composer.focus()
        composer.insert("half a thought")
        await pilot.press(*app.key_label("upload").lower().split(", ")[:1])
        await pilot.pause()
        assert isinstance(app.screen, FilePicker)
        await pilot.press("escape")
        await pilot.pause()
        assert composer.text == "half a thought"


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (30, 20)])
async def test_a_narrow_terminal_keeps_the_timeline_and_the_list_toggles(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=size) as pilot:
        app.sink(RoomsChanged([RoomSummary("!r", "Room")]))
        app.sink(TimelineAppended("!r", [message(1, "hello " * 20)]))
        await pilot.pause()
        app.chat.switch_room("!r")
        await pilot.pause()
        columns, rows = size
        rooms, view = app.query_one(RoomListView), app.query_one(TimelineView)
        composer = app.query_one(Composer)
        # Messages get at least three quarters of the width, and the rows
        # the composer and the bars leave.
        assert view.size.width >= columns * 3 // 4, view.size
        assert view.size.height >= rows - 12, view.size
        assert composer.region.width >= columns * 3 // 4 and composer.region.bottom <= rows
        assert any("hello" in line for line in view.line_texts())
        shown = rooms.display
        assert shown is (columns >= 70)
        await pilot.press("f4")
        await pilot.pause()
        assert rooms.display is not shown
        await pilot.resize_terminal(columns + 1, rows)
        await pilot.pause()
        assert rooms.display is not shown  # the choice holds
        await pilot.press("f4")
        await pilot.pause()
        assert rooms.display is shown
