"""The config file: defaults, every setting, and mistakes reported with the
file and line instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuichat.config import DEFAULT_CONFIG, Config, load_config, write_default


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    config, errors = load_config(tmp_path / "nothing.toml")
    assert errors == [] and config == Config(path=tmp_path / "nothing.toml")


def test_the_written_default_is_valid_and_says_what_the_defaults_are(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    assert write_default(path)
    assert not write_default(path)  # never overwritten unless forced
    config, errors = load_config(path)
    assert errors == []
    assert config == Config(path=path)
    assert '# select_message = "ctrl+s"' in DEFAULT_CONFIG


def test_every_setting_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'theme = "tuichat-light"\ntime_format = "%I:%M %p"\nmembership = "hide"\n'
        '[notifications]\nbell = false\ndesktop = "osc777"\nshow_text = true\n'
        '[keys]\nswitch_room = "ctrl+o"\nreply = "R, alt+r"\n',
    )
    config, errors = load_config(path)
    assert errors == []
    assert (config.theme, config.time_format, config.membership) == (
        "tuichat-light",
        "%I:%M %p",
        "hide",
    )
    assert (config.bell, config.desktop, config.show_text) == (False, "osc777", True)
    assert config.keys == {"switch_room": "ctrl+o", "reply": "R,alt+r"}


def test_mistakes_are_reported_with_file_and_line_and_keep_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "theme = 3\n"
        'colour = "blue"\n'
        'membership = "sometimes"\n'
        "[notifications]\n"
        'bell = "yes"\n'
        "volume = 11\n"
        "[keys]\n"
        'launch_missiles = "ctrl+m"\n'
        'quit = "ctrl q"\n',
    )
    config, errors = load_config(path)
    assert errors == [
        f"{path}:1: 'theme' must be a string",
        f"{path}:2: unknown setting 'colour'",
        f"{path}:3: 'membership' must be one of show, condense, hide (not 'sometimes')",
        f"{path}:5: 'bell' must be true or false",
        f"{path}:6: unknown setting 'volume' in [notifications]",
        errors[5],
        f'{path}:9: \'quit\' must be keys like "ctrl+k" or "f2,alt+x"',
    ]
    assert errors[5].startswith(f"{path}:8: unknown action 'launch_missiles'")
    assert config.theme == "tuichat-dark" and config.bell is True and config.keys == {}


def test_a_file_that_is_not_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'theme = "x"\nthis is not toml\n')
    config, errors = load_config(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:2: not valid TOML")
    assert config == Config(path=path)


def test_a_bad_time_format_is_refused(tmp_path: Path) -> None:
    config, errors = load_config(write(tmp_path, 'time_format = ""\n'))
    assert errors == [f"{tmp_path / 'config.toml'}:1: 'time_format' must give 1 to 16 characters"]
    assert config.time_format == "%H:%M"


@pytest.mark.parametrize("action", ["path", "init", "check"])
def test_the_config_command(tmp_path: Path, action: str) -> None:
    path = tmp_path / "conf" / "config.toml"
    env = {**os.environ, "TUICHAT_CONFIG": str(path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tuichat", "config", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    if action == "path":
        assert run("path").stdout.strip() == str(path)
    elif action == "init":
        assert run("init").returncode == 0 and path.read_text() == DEFAULT_CONFIG
        again = run("init")
        assert again.returncode == 1 and "exists already" in again.stderr
    else:
        path.parent.mkdir(parents=True)
        path.write_text("bell = true\n")
        result = run("check")
        assert result.returncode == 1
        assert f"{path}:1: unknown setting 'bell'" in result.stderr
        assert "Traceback" not in result.stderr
