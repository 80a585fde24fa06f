"""Remote text is cleaned at the boundary that draws it.

Every widget, screen and CLI line takes text that is already clean: a
`SafeText` from the sanitiser (`safe_line`/`safe_text`), tuichat's own
literals, or a Rich `Text` built from those. A static check walks the UI
modules and the CLI and fails on a drawing call given anything else; the
screen tests below pin the findings of the second hostile-input review
(member state keys, device ids, server error text in the status and feedback
lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.drawing_check import check_tree
from tests.test_look_and_feel import offline_profile
from tuichat.model.connection import ConnectionState
from tuichat.model.devices import DeviceInfo, Trust
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.ui.app import TuichatApp

ROOT = Path(__file__).resolve().parents[1]
DRAWING_MODULES = [
    *sorted((ROOT / "tuichat" / "ui").rglob("*.py")),
    ROOT / "tuichat" / "cli.py",
    ROOT / "tuichat" / "cli_login.py",
]

# Functions whose drawing calls need no sanitiser, and why.
EXEMPT = {
    ("tuichat/ui/app.py", "TuichatApp._write_to_terminal"): (
        "writes tuichat's own escape sequences (bell, desktop notifications); "
        "notifications.py cleans the fields it puts in them"
    ),
    ("tuichat/ui/widgets/rich_body.py", "segments_text"): (
        "segments of tuichat's own image previews (half blocks), no text from the network"
    ),
    ("tuichat/ui/widgets/highlight.py", "wrapped_lines"): (
        "wraps a copy of a Highlighted text, which _highlight builds only from tokens "
        "passed through safe_text (a dataclass field is not a type the check can follow)"
    ),
    ("tuichat/ui/screens/help.py", "HelpScreen.compose"): (
        "draws help_content: a Group of Text made with safe_line from the command table "
        "and the bindings (a Group is not a type the check can follow)"
    ),
}

# What must never reach the terminal from remote text.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b]8;;https://evil\x1b\\x\x1b]0;pwned\x07\x1b[2J\x9b2J\u202eevil"


def _screen(app: TuichatApp) -> str:
    """The screen as drawn (the SVG export's text, spaces as spaces)."""
    return app.export_screenshot().replace("&#160;", " ")


def _check(sources: dict[str, str] | None = None) -> list[str]:
    return [str(f) for f in check_tree(ROOT, DRAWING_MODULES, EXEMPT, sources)]


def test_every_drawing_call_in_the_ui_and_the_cli_takes_clean_text() -> None:
    relative = {path.relative_to(ROOT).as_posix() for path in DRAWING_MODULES}
    for named in ("tuichat/ui/app.py", "tuichat/ui/screens/devices.py", "tuichat/cli.py"):
        assert named in relative  # the check does not pass by looking at nothing
    for path, function in EXEMPT:  # no stale exemption
        assert f"def {function.rsplit('.', 1)[-1]}(" in _source(path), (path, function)
    findings = _check()
    assert not findings, "\n".join(findings)


def _source(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def _with(path: str, old: str, new: str) -> dict[str, str]:
    text = _source(path)
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    return {path: text.replace(old, new)}


# Each: a real drawing path as it was before the fix (or a likely slip), the
# module it is in, and what the check reports.
REGRESSIONS = {
    "a room name straight into a Static": (
        "tuichat/ui/screens/invite.py",
        "            yield Static(description)\n",
        "            yield Static(description)\n            yield Static(room.name)\n",
        "drawn by Static() `room.name` is unsafe",
    ),
    "the header's room name unsanitised": (
        "tuichat/ui/widgets/room_header.py",
        "text.append(safe_line(room.name), style=Style(bold=True))",
        "text.append(room.name, style=Style(bold=True))",
        "text in .append() `room.name` is unsafe",
    ),
    "a device id into the devices table": (
        "tuichat/ui/screens/devices.py",
        "Text(safe_line(device.device_id)),",
        "Text(device.device_id),",
        "`device.device_id` is unsafe",
    ),
    "a server error into the feedback line": (
        "tuichat/ui/controllers/chat.py",
        "safe_text(notice.text), error=notice.error",
        "notice.text, error=notice.error",
        "show() takes `notice.text` is unsafe",
    ),
    "a sync error into the status line": (
        "tuichat/ui/controllers/chat.py",
        "safe_line(state.connection_detail)",
        "state.connection_detail",
        "status_text() takes `state.connection_detail` is unsafe",
    ),
    "a login error printed raw": (
        "tuichat/cli_login.py",
        'print(safe_line(f"tuichat: {error}"), file=sys.stderr)',
        'print(f"tuichat: {error}", file=sys.stderr)',
        "printed by print() `f'tuichat: {error}'` is unsafe",
    ),
    "sanitised text parsed as markup by a widget": (
        "tuichat/ui/screens/invite.py",
        "            yield Static(description)\n",
        "            yield Static(safe_line(room.name))\n",
        "`safe_line(room.name)` is safe, needs text",
    ),
    "a SafeText made without the sanitiser": (
        "tuichat/ui/widgets/room_list.py",
        "label.append(safe_line(room.name),",
        "label.append(SafeText(room.name),",
        "SafeText is made only by the sanitiser",
    ),
    "trusted() given remote text": (
        "tuichat/ui/widgets/room_list.py",
        "label.append(safe_line(room.name),",
        "label.append(trusted(room.name),",
        "trusted() takes a string literal only",
    ),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_the_drawing_check_catches(name: str) -> None:
    path, old, new, expected = REGRESSIONS[name]
    findings = _check(_with(path, old, new))
    assert any(path in f and expected in f for f in findings), findings


def test_safe_text_is_made_by_the_sanitiser() -> None:
    assert isinstance(safe_line(HOSTILE), SafeText)
    assert isinstance(safe_text(HOSTILE), SafeText)
    assert isinstance(trusted("ours"), SafeText)
    assert not FORBIDDEN.search(safe_line(HOSTILE)) and not FORBIDDEN.search(safe_text(HOSTILE))
    # A body the converter already cut is not cut again where it is drawn.
    body = "a" * 65536 + "…"
    assert safe_text(body) == body


# -- the findings, through the screen -------------------------------------------------


async def test_member_state_keys_and_names_reach_the_members_dialog_cleaned(
    tmp_path: Path,
) -> None:
    from tuichat.ui.screens.members import MembersDialog

    key = f"@{HOSTILE}:evil.example"
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(120, 30)) as pilot:
        members = [(key, key, "invite"), ("@ada:x", f"Ada ({key})", "join")]
        await app.push_screen(MembersDialog(safe_line(HOSTILE), members))
        await pilot.pause()
        screen = _screen(app)
        assert not FORBIDDEN.search(screen), FORBIDDEN.findall(screen)[:5]
        assert "␛]52" in screen  # drawn, made visible


async def test_device_ids_and_names_reach_the_devices_screen_cleaned(tmp_path: Path) -> None:
    from tuichat.ui.screens.devices import DevicesScreen

    def device(device_id: str, *, this: bool = False) -> DeviceInfo:
        return DeviceInfo(
            user_id="@mallory:x",
            device_id=device_id,
            display_name=HOSTILE,
            ed25519="A" * 43,
            curve25519="B" * 43,
            trust=Trust.UNVERIFIED,
            this_device=this,
        )

    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = DevicesScreen("@mallory:x", safe_line(HOSTILE))
        await app.push_screen(screen)
        screen.show_devices([device(f"ID{HOSTILE}"), device(f"ME{HOSTILE}", this=True)])
        await pilot.pause()
        shot = _screen(app)
        assert not FORBIDDEN.search(shot), FORBIDDEN.findall(shot)[:5]
        assert "ID␛]52" in shot and "ME␛]52" in shot


async def test_a_sync_error_from_the_server_reaches_the_status_line_cleaned(
    tmp_path: Path,
) -> None:
    from tuichat.model.events import ConnectionChanged

    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(160, 30)) as pilot:
        app.sink(ConnectionChanged(ConnectionState.RECONNECTING, f"HTTP 502: {HOSTILE}"))
        await pilot.pause()
        shot = _screen(app)
        assert not FORBIDDEN.search(shot), FORBIDDEN.findall(shot)[:5]
        assert "HTTP 502: ␛]52" in shot


async def test_a_server_error_reaches_the_feedback_line_cleaned(tmp_path: Path) -> None:
    from tuichat.model.events import Notice

    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(160, 30)) as pilot:
        app.sink(Notice(f"Could not join #x: {HOSTILE}", error=True))
        await pilot.pause()
        shot = _screen(app)
        assert not FORBIDDEN.search(shot), FORBIDDEN.findall(shot)[:5]
        assert "Could not join #x: ␛]52" in shot
