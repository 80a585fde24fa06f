"""The layers' boundaries, checked in a fresh interpreter (as Harlequin does)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "tuichat.matrix.service",
        "tuichat.matrix.account.login",
        "tuichat.matrix.storage.cache",
        "tuichat.demo.bot",
    ],
)
def test_matrix_layer_does_not_import_textual(module: str) -> None:
    modules = _modules_after(f"import {module}")
    assert not {m for m in modules if m == "textual" or m.startswith("textual.")}
    assert not {m for m in modules if m.startswith("tuichat.ui")}


def test_model_imports_neither_nio_nor_textual() -> None:
    modules = _modules_after(
        "import tuichat.model.timeline, tuichat.model.rooms, tuichat.model.items, "
        "tuichat.model.commands, tuichat.model.sanitize, tuichat.model.room_names, "
        "tuichat.model.layout"
    )
    for forbidden in ("nio", "textual", "tuichat.matrix", "aiohttp"):
        assert forbidden not in modules


def test_the_ui_paints_without_importing_nio() -> None:
    # nio costs ~0.5 s; the first frame comes from the cache without it.
    modules = _modules_after("import tuichat.cli, tuichat.ui.app")
    assert "nio" not in modules and "aiohttp" not in modules
    # Nor the service's domain events: they come with the first of them.
    assert "tuichat.model.events" not in modules


def test_the_startup_cache_reader_imports_neither_nio_nor_textual() -> None:
    # It runs before the first frame, while nio is not imported yet.
    modules = _modules_after("import tuichat.matrix.storage.startup_reader")
    for forbidden in ("nio", "aiohttp", "textual"):
        assert forbidden not in modules
    assert not {m for m in modules if m.startswith(("nio.", "textual.", "tuichat.ui"))}


def test_the_chat_state_is_plain_python() -> None:
    # ChatState and the events it applies: tested without a terminal.
    modules = _modules_after("import tuichat.model.state")
    for forbidden in ("nio", "textual", "tuichat.matrix", "aiohttp"):
        assert forbidden not in modules
