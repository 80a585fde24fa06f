"""Where tuichat keeps things, from platformdirs unless the user says."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_path

PROFILE_ENV = "TUICHAT_PROFILE"


def default_profile_dir() -> Path:
    return user_data_path("tuichat", appauthor=False) / "default"


def resolve_profile_dir(arg: str | None) -> Path:
    """`--profile DIR`, else `$TUICHAT_PROFILE`, else the platform default."""
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get(PROFILE_ENV)
    if env:
        return Path(env).expanduser()
    return default_profile_dir()
