"""Every action a key starts, written once: its id, default keys and what
it does. The App's bindings, the config's `[keys]` defaults and checks, the
Help screen, the command palette and the texts that name a key are made
from this table, so a changed default changes all of them.

Keys are Textual's names ("ctrl+k", "plus"), comma-separated when an action
has several. Plain Python: `tuichat.config` reads it without Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class KeyScope(Enum):
    """Where an action's keys work."""

    APP = "app"  # anywhere: the App's bindings
    SELECTED_MESSAGE = "selected message"  # on a selected message: the timeline's


@dataclass(frozen=True)
class KeyAction:
    id: str  # the binding id, and the action's name in the config's [keys]
    keys: str  # the default keys
    description: str  # the footer's, the Help screen's and the palette's words
    scope: KeyScope = KeyScope.APP
    # The command palette's line under the description; "{key}" becomes
    # the keys as bound. Empty: the action is not offered there.
    palette: str = ""
    show: bool = True  # in the footer
    priority: bool = False  # before the focused widget's own bindings


KEY_ACTIONS: tuple[KeyAction, ...] = (
    # In the order the footer and the Help screen show them.
    KeyAction(
        "switch_room", "ctrl+k", "Switch room", palette="Go to another room ({key})", priority=True
    ),
    KeyAction("quit", "ctrl+q", "Quit", priority=True),
    KeyAction("new_dm", "ctrl+n", "New DM", palette="Start an encrypted direct message"),
    KeyAction("members", "f2", "Members", palette="This room's members and their devices"),
    KeyAction("own_devices", "f3", "Devices", palette="Your devices and fingerprints"),
    KeyAction("retry_failed", "ctrl+r", "Retry failed", palette="Send failed messages again"),
    KeyAction("select_message", "ctrl+s", "Select message", palette="Reply, edit, react or delete"),
    # Not Ctrl+U: the composer (a TextArea) takes it for "delete to the
    # start of the line", and the composer has the focus while typing.
    KeyAction("upload", "ctrl+t", "Upload file", palette="Send a file to this room ({key})"),
    KeyAction("help", "f1", "Help", palette="Every key and command ({key})"),
    KeyAction("toggle_rooms", "f4", "Room list", palette="Show or hide the room list ({key})"),
    KeyAction(
        "next_room",
        "alt+down,ctrl+pagedown",
        "Next room",
        palette="The next room in the list",
        show=False,
    ),
    KeyAction(
        "previous_room", "alt+up,ctrl+pageup", "Previous room", palette="The room above", show=False
    ),
    # notifications and unread state (issue 23)
    KeyAction(
        "next_activity",
        "alt+a",
        "Next unread",
        palette="The next room with a mention, else with unread messages ({key})",
        show=False,
    ),
    KeyAction(
        "mentions", "f9", "Mentions", palette="Messages that mentioned you ({key})", show=False
    ),
    # threads (issue 21)
    KeyAction("threads", "f5", "Threads", palette="This room's threads ({key})"),
    KeyAction("my_threads", "f8", "My threads", palette="Your threads in every room, unread first"),
    # search (issue 24)
    KeyAction(
        "search",
        "ctrl+f",
        "Search",
        palette="Find messages here or in every room, encrypted ones too ({key})",
    ),
    # issue 22: spaces
    KeyAction(
        "next_space",
        "alt+s",
        "Next space",
        palette="Choose the next space: the room list shows it, Ctrl+K looks in it",
        show=False,
    ),
    KeyAction("reply", "r", "Reply", KeyScope.SELECTED_MESSAGE),
    KeyAction("edit", "e", "Edit", KeyScope.SELECTED_MESSAGE),
    KeyAction("react", "plus,equals_sign", "React", KeyScope.SELECTED_MESSAGE),
    KeyAction("delete", "d,delete", "Delete", KeyScope.SELECTED_MESSAGE),
    KeyAction("open", "enter", "Save file", KeyScope.SELECTED_MESSAGE),
    KeyAction("view", "v", "View image", KeyScope.SELECTED_MESSAGE),
    KeyAction("thread", "t", "Thread", KeyScope.SELECTED_MESSAGE),  # threads (issue 21)
    # issue 22: on a selected poll, the digit N votes for answer N (toggles it on
    # multi-choice polls); keys bound instead vote by their last digit.
    KeyAction(
        "vote",
        "1,2,3,4,5,6,7,8,9",
        "Vote for answer N (a poll)",
        KeyScope.SELECTED_MESSAGE,
        show=False,
    ),
)

KEYS_BY_ID: dict[str, KeyAction] = {action.id: action for action in KEY_ACTIONS}

# Action id -> default keys: what the config's [keys] may change.
DEFAULT_KEYS: dict[str, str] = {action.id: action.keys for action in KEY_ACTIONS}


def in_scope(scope: KeyScope) -> tuple[KeyAction, ...]:
    return tuple(action for action in KEY_ACTIONS if action.scope is scope)


# How key names are written for people (Textual's names on the left).
_NAMES = {
    "plus": "+",
    "equals_sign": "=",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "escape": "Escape",
}


def key_label(key: str) -> str:
    """ "ctrl+pagedown" -> "Ctrl+PageDown", "r" -> "r", "f1" -> "F1"."""
    *modifiers, name = key.split("+")
    if name in _NAMES:
        name = _NAMES[name]
    elif len(name) > 1 or modifiers:
        name = name.capitalize() if not modifiers or len(name) > 1 else name.upper()
    return "+".join([*(m.capitalize() for m in modifiers), name])


def split_keys(keys: str) -> list[str]:
    """ "alt+down, ctrl+pagedown" -> ["alt+down", "ctrl+pagedown"]."""
    return [key.strip() for key in keys.split(",") if key.strip()]


def keys_label(action_id: str, keymap: Mapping[str, str]) -> str:
    """An action's keys as people write them ("Alt+Down, Ctrl+PageDown"),
    after the config's `[keys]` (`keymap`)."""
    keys = keymap.get(action_id, KEYS_BY_ID[action_id].keys)
    return ", ".join(key_label(key) for key in split_keys(keys))
