"""What is written to the terminal (or handed to notify-send) for a
notification: the byte sequences per terminal, tmux's passthrough, the
window title's count, the text policy for encrypted rooms, and never a
control character from a remote name."""

from __future__ import annotations

from tests.test_look_and_feel import message
from tuichat.config import Config
from tuichat.ui.notifications import (
    Notifier,
    notification_sequences,
    resolve_desktop,
    title_sequence,
    tmux_wrap,
)

HOSTILE_ROOM = "Room\x1b]0;pwned\x07\x1b\\;x"


def hostile_item(**fields: object):  # type: ignore[no-untyped-def]
    item = message(1, "secret \x1b]52;c;x\x07 text", highlight=True)
    return item.evolve(sender_name="Eve\x1b]2;owned\x07\x9c", **fields)


def _no_remote_controls(sequence: str, start: str, end: str) -> None:
    assert sequence.startswith(start) and sequence.endswith(end)
    inner = sequence[len(start) : -len(end)]
    assert not any(c in inner for c in "\x1b\x07\x9c\x9d"), repr(inner)


def test_kitty_osc99_sequences_are_clean() -> None:
    config = Config(bell=False, desktop="osc99", show_text=True)
    title, body = notification_sequences(config, HOSTILE_ROOM, hostile_item())
    _no_remote_controls(title, "\x1b]99;i=tuichat:d=0;", "\x1b\\")
    _no_remote_controls(body, "\x1b]99;i=tuichat:p=body;", "\x1b\\")
    assert "tuichat: Room ]0;pwned" in title
    assert body.endswith("Eve ]2;owned : secret ]52;c;x text\x1b\\")


def test_tmux_passthrough_wraps_each_sequence_and_doubles_escapes() -> None:
    config = Config(desktop="osc9")
    bell, wrapped = notification_sequences(config, "Room", message(1, "x"), tmux=True)
    assert bell == "\a"
    assert wrapped == "\x1bPtmux;\x1b\x1b]9;Room: ]0;Ada; sent a message\a\x1b\\"
    assert tmux_wrap("\x1b]2;t\a") == "\x1bPtmux;\x1b\x1b]2;t\a\x1b\\"


def test_encrypted_text_needs_its_own_setting() -> None:
    item = message(1, "the plan", highlight=True).evolve(encrypted=True)
    shown = Config(bell=False, desktop="osc9", show_text=True)
    (sequence,) = notification_sequences(shown, "Room", item)
    assert "the plan" not in sequence and "mentioned you" in sequence
    both = Config(bell=False, desktop="osc9", show_text=True, show_encrypted_text=True)
    (sequence,) = notification_sequences(both, "Room", item)
    assert sequence.endswith(": the plan\a")


def test_auto_picks_by_terminal() -> None:
    assert resolve_desktop("auto", {"KITTY_WINDOW_ID": "1"}) == "osc99"
    assert resolve_desktop("auto", {"TERM_PROGRAM": "WezTerm"}) == "osc9"
    assert resolve_desktop("auto", {"VTE_VERSION": "7600"}) == "osc777"
    assert resolve_desktop("auto", {"TERM": "foot"}) == "osc777"
    assert resolve_desktop("auto", {}) == "off"
    assert resolve_desktop("osc9", {"KITTY_WINDOW_ID": "1"}) == "osc9"


def test_notify_send_gets_clean_arguments_and_no_shell() -> None:
    written: list[str] = []
    spawned: list[list[str]] = []
    notifier = Notifier(
        Config(bell=False, desktop="notify-send", show_text=True),
        written.append,
        env={},
        spawn=spawned.append,
    )
    assert notifier.message(HOSTILE_ROOM, hostile_item())
    assert written == []
    (argv,) = spawned
    assert argv[:3] == ["notify-send", "--app-name=tuichat", "--"]
    assert not any(c in arg for arg in argv for c in "\x1b\x07\x9c")


def test_window_title_counts_highlights_when_set() -> None:
    written: list[str] = []
    Notifier(Config(), written.append, env={}).highlights(3)
    assert written == []  # off by default
    notifier = Notifier(Config(title_counts=True), written.append, env={"TMUX": "/tmp/t"})
    notifier.highlights(3)
    notifier.highlights(3)  # unchanged: not written again
    notifier.highlights(0)
    assert written == [tmux_wrap(title_sequence(3)), tmux_wrap(title_sequence(0))]
    assert title_sequence(3) == "\x1b]2;tuichat (3)\a"
