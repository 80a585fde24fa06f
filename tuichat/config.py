"""The user's config file: a TOML file in the platformdirs config directory.

`tuichat config path` prints where it is, `tuichat config init` writes the
commented default below. A missing file means the defaults. Mistakes never
stop tuichat and never show a traceback: each is reported with the file and
line (`config.toml:7: 'bell' must be true or false`) and that setting keeps
its default.

Plain Python (no Textual): the UI reads a `Config`, the CLI checks it.
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

CONFIG_ENV = "TUICHAT_CONFIG"

MEMBERSHIP_CHOICES = ("show", "condense", "hide")
DESKTOP_CHOICES = ("off", "osc9", "osc777")

# Actions whose keys can be changed, with their default keys: the ids of
# the bindings (Textual's keymap applies `[keys]` to bindings by id).
DEFAULT_KEYS: dict[str, str] = {
    "switch_room": "ctrl+k",
    "new_dm": "ctrl+n",
    "members": "f2",
    "own_devices": "f3",
    "retry_failed": "ctrl+r",
    "select_message": "ctrl+s",
    "next_room": "alt+down,ctrl+pagedown",
    "previous_room": "alt+up,ctrl+pageup",
    "quit": "ctrl+q",
    "reply": "r",
    "edit": "e",
    "react": "plus,equals_sign",
    "delete": "d,delete",
    "open": "enter",
    "view": "v",
    "upload": "ctrl+u",
}

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

# Where downloaded files go (default: your Downloads directory).
# download_dir = "~/Downloads"

[notifications]
# A mention, or a message in a direct chat, in a room you are not looking at:
bell = true           # ring the terminal bell
desktop = "off"       # "osc9" or "osc777": a desktop notification, where
                      # the terminal supports it (kitty, foot, WezTerm, …)
show_text = false     # put the message text in desktop notifications

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
    previews: bool = True
    download_dir: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


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
        if key in ("theme", "time_format", "membership"):
            choices = MEMBERSHIP_CHOICES if key == "membership" else None
            value = text_choice("", key, choices, raw)
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
        elif key == "previews":
            if isinstance(raw[key], bool):
                values[key] = raw[key]
            else:
                problem("", key, "'previews' must be true or false")
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
                if name in ("bell", "show_text"):
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
                else:
                    keys[action] = _keys_value(value)
            values["keys"] = keys
        else:
            problem("", key, f"unknown setting '{key}'")
    return Config(path=path, **values), errors


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
