"""The user's config file: a TOML file in the platformdirs config directory.

`tuichat config path` prints where it is, `tuichat config init` writes the
commented default below. A missing file means the defaults. Mistakes never
stop tuichat and never show a traceback: each is reported with the file and
line (`config.toml:7: 'bell' must be true or false`) and that setting keeps
its default.

No Textual at import time: the UI reads a `Config`, the CLI checks it.
Checking a theme name or a key asks Textual (imported then), so that
`config check` accepts exactly what the app can use.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

# The actions `[keys]` may change, with their default keys, from the key
# table: the ids of the bindings (Textual's keymap applies `[keys]` by id).
from tuichat.model.keys import DEFAULT_KEYS

CONFIG_ENV = "TUICHAT_CONFIG"

MEMBERSHIP_CHOICES = ("show", "condense", "hide")
# [search] fetch_history: older messages fetched per room, at most.
MAX_FETCH_HISTORY = 100_000
SYNC_MODE_CHOICES = ("auto", "sliding", "v3")  # issue 25
DESKTOP_CHOICES = ("off", "auto", "osc9", "osc777", "osc99", "notify-send")

DEFAULT_CONFIG = """\
# tuichat configuration (TOML). Delete a line to get its default back.

# The colour theme: tuichat-dark, tuichat-light, tuichat-high-contrast,
# tuichat-solarized, or the name of a theme file you put in the "themes"
# directory next to this file. Ctrl+P, "theme" switches live.
theme = "tuichat-dark"

# How message times are shown (strftime): "%H:%M", "%I:%M %p", …
time_format = "%H:%M"

# Joins, leaves and name changes in the timeline: show, condense or hide.
membership = "condense"

# Small previews of images in the timeline (Enter on an image saves it,
# v shows it large).
previews = true

# Lines naming only the type of an event tuichat has no rendering for
# (state events, unknown types): never dropped, shown only when true.
# Ctrl+P, "hidden events" switches live.
show_hidden_events = false

# How to sync: "auto" (sliding sync when the server offers it, else
# /v3/sync), "sliding" or "v3". TUICHAT_SYNC_MODE overrides it.
sync_mode = "auto"

# Where downloaded files go (default: your Downloads directory).
# download_dir = "~/Downloads"

[notifications]
# A mention, or a message in a direct chat, in a room you are not looking at:
bell = true           # ring the terminal bell
desktop = "off"       # "auto", "osc9", "osc777", "osc99" (kitty) or
                      # "notify-send": a desktop notification, where the
                      # terminal supports it (kitty, foot, WezTerm, …)
show_text = false     # put the message text in desktop notifications
show_encrypted_text = false  # … also for encrypted rooms
title_counts = false  # the number of mentions in the window title
private_receipts = false  # others do not see how far you read (m.read.private)

[search]
# Encrypted rooms are searched in a local, encrypted index of what this
# device decrypted. It indexes the cached history by itself; this many
# older messages per room are also fetched from the server to index them
# (0: none).
fetch_history = 0

[keys]
# Change an action's keys: action = "key" or "key1,key2". The actions and
# their defaults:
""" + "".join(f'# {action} = "{keys}"\n' for action, keys in DEFAULT_KEYS.items())


@dataclass(frozen=True)
class Config:
    theme: str = "tuichat-dark"
    time_format: str = "%H:%M"
    membership: str = "condense"
    bell: bool = True
    desktop: str = "off"
    show_text: bool = False
    private_receipts: bool = False
    show_encrypted_text: bool = False
    title_counts: bool = False
    previews: bool = True
    show_hidden_events: bool = False
    sync_mode: str = "auto"  # issue 25
    download_dir: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    search_fetch_history: int = 0  # [search] fetch_history (issue 24)


def default_config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    return user_config_path("tuichat", appauthor=False) / "config.toml"


def user_theme_dir(config_path: Path) -> Path:
    """Users' own theme files live beside the config file."""
    return config_path.parent / "themes"


_KEY_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(,[A-Za-z0-9_+\-]+)*$")
_TOML_LINE = re.compile(r"at line (\d+)")


class _Lines:
    """Finds the line of a key in the file, for messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, table: str, key: str) -> int:
        current = ""
        header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"]+)\s*\]")
        assignment = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number, line in enumerate(self.lines, start=1):
            match = header.match(line)
            if match:
                current = match.group(1).strip('"')
            elif current == table and assignment.match(line):
                return number
        return 0


def load_config(path: Path | None = None) -> tuple[Config, list[str]]:
    """The config at `path` (default: the platform's config file), and the
    problems found, each as "file:line: message"."""
    path = path or default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path=path), []
    except (OSError, UnicodeDecodeError) as error:
        return Config(path=path), [f"{path}: cannot be read: {error}"]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = _TOML_LINE.search(str(error))
        where = f"{path}:{match.group(1)}" if match else str(path)
        return Config(path=path), [f"{where}: not valid TOML: {error}"]
    return _validate(raw, path, _Lines(text))


def _validate(raw: dict[str, Any], path: Path, lines: _Lines) -> tuple[Config, list[str]]:
    errors: list[str] = []
    values: dict[str, Any] = {}

    def problem(table: str, key: str, message: str) -> None:
        line = lines.of(table, key)
        errors.append(f"{path}:{line}: {message}" if line else f"{path}: {message}")

    def text_choice(table: str, key: str, choices: tuple[str, ...] | None, source: dict) -> Any:
        value = source[key]
        if not isinstance(value, str):
            problem(table, key, f"'{key}' must be a string")
            return None
        if choices is not None and value not in choices:
            problem(table, key, f"'{key}' must be one of {', '.join(choices)} (not {value!r})")
            return None
        return value

    for key in raw:
        if key in ("theme", "time_format", "membership", "sync_mode"):
            choices = {"membership": MEMBERSHIP_CHOICES, "sync_mode": SYNC_MODE_CHOICES}.get(key)
            value = text_choice("", key, choices, raw)
            if key == "theme" and value is not None:
                names = theme_names(path)
                if value not in names:
                    problem("", key, f"unknown theme {value!r} (themes: {', '.join(names)})")
                    value = None
            if key == "time_format" and value is not None:
                try:
                    sample = datetime(2026, 11, 22, 9, 5).strftime(value)
                except ValueError as error:
                    problem("", key, f"'time_format' is not a strftime format: {error}")
                    value = None
                else:
                    if not sample.strip() or len(sample) > 16:
                        problem("", key, "'time_format' must give 1 to 16 characters")
                        value = None
            if value is not None:
                values[key] = value
        elif key in ("previews", "show_hidden_events"):
            if isinstance(raw[key], bool):
                values[key] = raw[key]
            else:
                problem("", key, f"'{key}' must be true or false")
        elif key == "download_dir":
            value = text_choice("", key, None, raw)
            if value is not None:
                values[key] = Path(value).expanduser()
        elif key == "notifications":
            section = raw[key]
            if not isinstance(section, dict):
                problem("", key, "[notifications] must be a table")
                continue
            for name in section:
                if name in (
                    "bell",
                    "show_text",
                    "show_encrypted_text",
                    "title_counts",
                    "private_receipts",
                ):
                    if isinstance(section[name], bool):
                        values[name] = section[name]
                    else:
                        problem(key, name, f"'{name}' must be true or false")
                elif name == "desktop":
                    value = text_choice(key, name, DESKTOP_CHOICES, section)
                    if value is not None:
                        values[name] = value
                else:
                    problem(key, name, f"unknown setting '{name}' in [notifications]")
        elif key == "search":  # issue 24
            section = raw[key]
            if not isinstance(section, dict):
                problem("", key, "[search] must be a table")
                continue
            for name, value in section.items():
                if name != "fetch_history":
                    problem(key, name, f"unknown setting '{name}' in [search]")
                elif (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not 0 <= value <= MAX_FETCH_HISTORY
                ):
                    problem(
                        key, name, f"'fetch_history' must be a number from 0 to {MAX_FETCH_HISTORY}"
                    )
                else:
                    values["search_fetch_history"] = value
        elif key == "keys":
            section = raw[key]
            if not isinstance(section, dict):
                problem("", key, "[keys] must be a table")
                continue
            keys: dict[str, str] = {}
            for action, value in section.items():
                if action not in DEFAULT_KEYS:
                    known = ", ".join(DEFAULT_KEYS)
                    problem(key, action, f"unknown action '{action}' (known: {known})")
                elif not isinstance(value, str) or not _KEY_NAME.match(_keys_value(value)):
                    problem(key, action, f'\'{action}\' must be keys like "ctrl+k" or "f2,alt+x"')
                elif unknown := [k for k in _keys_value(value).split(",") if not _is_key(k)]:
                    problem(
                        key,
                        action,
                        f"'{action}': {unknown[0]!r} is not a key (keys look like "
                        '"ctrl+k", "alt+up", "f2", "r", "plus")',
                    )
                else:
                    keys[action] = _keys_value(value)
            for action, other, shared in _shared_keys(keys):
                problem(
                    key,
                    action,
                    f"'{action}': {shared} is the key of '{other}' too; "
                    f"'{action}' keeps {DEFAULT_KEYS[action]}",
                )
                del keys[action]
            values["keys"] = keys
        else:
            problem("", key, f"unknown setting '{key}'")
    return Config(path=path, **values), errors


# Modifiers Textual reads in a binding's key ("ctrl+alt+x").
_MODIFIERS = frozenset({"ctrl", "alt", "shift", "meta", "super", "hyper"})


def _key_names() -> frozenset[str]:
    """The keys Textual reports, without modifiers: its named keys ("up",
    "f2", "pagedown") and the names it gives the printable ASCII characters
    ("plus", "full_stop"). Textual accepts any word in a binding and turns
    Unicode names into characters ("banana" is 🍌), so a typo binds nothing
    and shows nonsense in the footer: only these names are keys."""
    from textual.keys import Keys, _character_to_key

    named = {key.value for key in Keys if key.value.isalnum() or key.value.isidentifier()}
    characters = {_character_to_key(chr(code)) for code in range(32, 127)}
    return frozenset(named | characters)


def _is_key(key: str) -> bool:
    *modifiers, base = key.split("+")
    if len(set(modifiers)) != len(modifiers) or not _MODIFIERS.issuperset(modifiers):
        return False
    if len(base) == 1:
        return base.isprintable()  # a character key, also on non-English keyboards
    return base in _key_names()


def _canonical_key(key: str) -> str:
    """One spelling per key, to find two actions on it: "+" is "plus",
    "ctrl+m" is "enter" (Textual's aliases)."""
    from textual.keys import KEY_ALIASES, _character_to_key

    *modifiers, base = key.split("+")
    if len(base) == 1:
        base = _character_to_key(base)
    key = "+".join([*sorted(modifiers), base])
    for canonical, aliases in KEY_ALIASES.items():
        if key in aliases:
            return canonical
    return key


def _shared_keys(overrides: dict[str, str]) -> list[tuple[str, str, str]]:
    """(action, other action, key) for each changed action whose key another
    action has too. Each such change is dropped (its default comes back)
    and the rest checked again, until no key has two actions."""
    overrides = dict(overrides)
    found: list[tuple[str, str, str]] = []
    while True:
        owners: dict[str, list[str]] = {}
        for action, keys in {**DEFAULT_KEYS, **overrides}.items():
            for key in keys.split(","):
                owners.setdefault(_canonical_key(key), []).append(action)
        clash = next(
            (
                (action, other, key)
                for key, actions in owners.items()
                if len(actions) > 1
                for action in actions
                if action in overrides
                for other in actions
                if other != action
            ),
            None,
        )
        if clash is None:
            return found
        found.append(clash)
        del overrides[clash[0]]


def theme_names(config_path: Path) -> list[str]:
    """The themes `theme` may name: tuichat's, the user's theme files next
    to the config file, and Textual's own (the app offers all of them)."""
    from textual.theme import BUILTIN_THEMES

    from tuichat.ui.themes import load_themes

    loaded = load_themes(user_theme_dir(config_path))
    names = [theme.name for theme in loaded.themes]
    return names + [name for name in BUILTIN_THEMES if name not in names]


def _keys_value(value: str) -> str:
    """ "R, alt+r" -> "R,alt+r" (spaces inside a key stay, and fail)."""
    return ",".join(part.strip() for part in value.split(","))


def write_default(path: Path, *, force: bool = False) -> bool:
    """Write the commented default config; False if one exists already."""
    if path.exists() and not force:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return True
