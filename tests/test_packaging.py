"""Packaging and themes: every package is installed, shipped themes load."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tuichat.ui.themes import ThemeError, builtin_themes, parse_theme

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "tuichat").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


def test_shipped_themes_load() -> None:
    loaded = builtin_themes()
    assert loaded.errors == []
    names = {theme.name for theme in loaded.themes}
    assert {"tuichat-dark", "tuichat-light"} <= names


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name = ", "broken.toml:"),
        ('primary = "#fff"', "'name'"),
        ('name = "x"', "'primary'"),
        ('name = "x"\nprimary = "nope"', "not a colour"),
        ('name = "x"\nprimary = "#fff"\ncolour = "#000"', "unknown key"),
    ],
)
def test_broken_theme_files_are_reported_with_the_file_and_problem(text: str, problem: str) -> None:
    with pytest.raises(ThemeError, match=problem) as caught:
        parse_theme("broken.toml", text.encode())
    assert str(caught.value).startswith("broken.toml:")
