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


MISTAKES = 'theme = "nope"\n[keys]\nswitch_room = "ctrl+banana"\nquit = "ctrl+k"\n'


def test_unknown_themes_keys_that_are_not_keys_and_shared_keys_are_errors(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, MISTAKES)
    config, errors = load_config(path)
    assert errors[0].startswith(f"{path}:1: unknown theme 'nope' (themes: tuichat-dark, ")
    assert errors[1:] == [
        f"{path}:3: 'switch_room': 'ctrl+banana' is not a key (keys look like "
        '"ctrl+k", "alt+up", "f2", "r", "plus")',
        f"{path}:4: 'quit': ctrl+k is the key of 'switch_room' too; 'quit' keeps ctrl+q",
    ]
    assert config.theme == "tuichat-dark" and config.keys == {}


@pytest.mark.parametrize(
    ("keys", "clash"),
    [
        ('reply = "v"', "'reply': v is the key of 'view' too"),
        ('new_dm = "ctrl+m"', "'new_dm': enter is the key of 'open' too"),
        ('members = "f3"\nown_devices = "f3"', "'members': f3 is the key of 'own_devices' too"),
    ],
)
def test_one_key_for_two_actions_is_found_in_any_spelling(
    tmp_path: Path, keys: str, clash: str
) -> None:
    _config, errors = load_config(write(tmp_path, f"[keys]\n{keys}\n"))
    assert any(clash in error for error in errors), errors


def test_swapped_keys_real_keys_and_every_offered_theme_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "mine.toml").write_text('name = "mine"\nprimary = "#ff00ff"\n')
    keys = (
        'switch_room = "ctrl+q"\nquit = "ctrl+k"\nreply = "R, alt+r"\n'
        'react = "shift+plus,full_stop"\nnext_room = "ctrl+alt+down"\nview = "V"\n'
    )
    for theme in ("tuichat-light", "mine", "nord"):  # ours, the user's, Textual's
        config, errors = load_config(write(tmp_path, f'theme = "{theme}"\n[keys]\n{keys}'))
        assert errors == [] and config.theme == theme
    assert config.keys["switch_room"] == "ctrl+q" and config.keys["quit"] == "ctrl+k"


def test_config_check_reports_the_theme_and_key_mistakes(tmp_path: Path) -> None:
    path = write(tmp_path, MISTAKES)
    result = subprocess.run(
        [sys.executable, "-m", "tuichat", "config", "check"],
        env={**os.environ, "TUICHAT_CONFIG": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:1", f"{path}:3", f"{path}:4"]
    assert "unknown theme 'nope'" in lines[0] and "'ctrl+banana' is not a key" in lines[1]


async def test_at_start_the_mistakes_are_told_and_the_defaults_kept(tmp_path: Path) -> None:
    """The footer showed "^🍌" and Ctrl+K quit: now the app starts with the
    default keys and theme, and says what was wrong."""
    from tests.test_look_and_feel import offline_profile
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.room_switcher import RoomSwitcher

    config, errors = load_config(write(tmp_path, MISTAKES))
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=config, config_errors=errors)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert all(error in messages for error in errors) and len(errors) == 3
        assert app.theme == "tuichat-dark"
        assert "🍌" not in app.export_screenshot()
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, RoomSwitcher)


def test_the_sync_mode_is_read_and_a_wrong_one_refused(tmp_path: Path) -> None:
    """issue 25: auto, sliding or v3; the environment wins over the file."""
    config, errors = load_config(write(tmp_path, 'sync_mode = "v3"\n'))
    assert config.sync_mode == "v3" and errors == []
    config, errors = load_config(write(tmp_path, 'sync_mode = "fast"\n'))
    assert config.sync_mode == "auto"
    assert errors and "'sync_mode' must be one of auto, sliding, v3" in errors[0]


def test_the_environment_wins_over_the_configured_sync_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuichat.matrix.service.sliding_sync import SlidingSync, SyncMode

    monkeypatch.setenv("TUICHAT_SYNC_MODE", "sliding")
    sync = SlidingSync(lambda: None, lambda: 0)
    sync.configure("v3")
    assert sync.mode is SyncMode.SLIDING and sync.active
    monkeypatch.delenv("TUICHAT_SYNC_MODE")
    sync.configure("v3")
    assert sync.mode is SyncMode.V3 and not sync.active
