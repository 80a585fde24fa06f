"""Themes as data: TOML files mapped onto Textual's `Theme`.

tuichat ships its themes in the top-level `themes/` directory (installed as
the `tuichat.themes` package). A broken file is reported with its name and
the problem, and skipped; it never stops the app.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "tuichat-dark"

_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "success",
    "warning",
    "error",
)


class ThemeError(ValueError):
    """A theme file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedThemes:
    themes: list[Theme]
    errors: list[str]


def parse_theme(source: str, data: bytes) -> Theme:
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ThemeError(f"{source}: {error}") from None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeError(f"{source}: 'name' must be a non-empty string")
    if not isinstance(raw.get("primary"), str):
        raise ThemeError(f"{source}: 'primary' colour is required")
    known = {*_COLOUR_FIELDS, "name", "dark", "variables"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ThemeError(f"{source}: unknown key(s): {', '.join(unknown)}")
    colours = {}
    for field in _COLOUR_FIELDS:
        value = raw.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ThemeError(f"{source}: '{field}' must be a colour string")
        try:
            Color.parse(value)
        except ColorParseError:
            raise ThemeError(f"{source}: '{field}' = {value!r} is not a colour") from None
        colours[field] = value
    dark = raw.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError(f"{source}: 'dark' must be true or false")
    variables = raw.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(f"{source}: 'variables' must map names to strings")
    return Theme(name=name, dark=dark, variables=variables, **colours)


def _theme_files(directory: Path) -> list[Path]:
    return sorted(
        (entry for entry in directory.iterdir() if entry.name.endswith(".toml")),
        key=lambda entry: entry.name,
    )


def builtin_themes() -> LoadedThemes:
    # The package's directory from its import spec: `importlib.resources`
    # would do the same for files on disk (which is how tuichat installs)
    # after importing its zip-file support, 5 ms of every start.
    spec = importlib.util.find_spec("tuichat.themes")
    if spec is None or not spec.submodule_search_locations:
        return LoadedThemes([], ["tuichat's themes are not installed"])
    return load_theme_dir(Path(next(iter(spec.submodule_search_locations))))


def load_themes(user_dir: Path | None) -> LoadedThemes:
    """tuichat's themes, then the user's own (from `user_dir`, if it
    exists): a user theme with a built-in name replaces it."""
    loaded = builtin_themes()
    if user_dir is None or not user_dir.is_dir():
        return loaded
    users = load_theme_dir(user_dir)
    names = {theme.name for theme in users.themes}
    themes = [t for t in loaded.themes if t.name not in names] + users.themes
    errors = loaded.errors + [f"{user_dir}/{error}" for error in users.errors]
    return LoadedThemes(themes, errors)


def load_theme_dir(directory: Path) -> LoadedThemes:
    themes, errors = [], []
    for entry in _theme_files(directory):
        try:
            themes.append(parse_theme(entry.name, entry.read_bytes()))
        except ThemeError as error:
            errors.append(str(error))
    return LoadedThemes(themes, errors)
