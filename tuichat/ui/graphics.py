"""Which image protocol the terminal speaks, found out before Textual starts.

textual-image asks the terminal (Sixel? Kitty's graphics protocol?) when it
is imported, by writing a query and reading the answer from stdin; once
Textual runs, its input thread takes the answer instead (and a keystroke
may be lost). So the question is asked, at most once, before the app
starts, and only in terminals that may say yes (by their environment), so
everyone else does not wait for a timeout. Without an answer the image
viewer draws half blocks itself.
"""

from __future__ import annotations

import os
import sys

_CANDIDATES = ("kitty", "wezterm", "foot", "mlterm", "contour", "konsole", "iterm", "ghostty")
_state: dict[str, bool] = {"prepared": False}


def may_show_images(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the terminal is one that might speak Sixel or Kitty graphics."""
    if environ.get("KITTY_WINDOW_ID") or environ.get("WEZTERM_EXECUTABLE"):
        return True
    names = " ".join(
        environ.get(key, "") for key in ("TERM", "TERM_PROGRAM", "LC_TERMINAL")
    ).lower()
    return any(candidate in names for candidate in _CANDIDATES)


def prepare_graphics() -> None:
    """Ask the terminal now (before Textual starts), if worth asking."""
    stdout = sys.__stdout__
    if stdout is None or not stdout.isatty() or not may_show_images():
        return
    try:
        import textual_image.widget  # noqa: F401  (its import asks the terminal)
    except Exception:  # noqa: BLE001 - no graphics then, never a failed start
        return
    _state["prepared"] = True


def graphics_ready() -> bool:
    """Whether textual-image was set up before the app started."""
    return _state["prepared"]


def inline_images() -> bool:
    """Whether previews in the timeline can be real images: the terminal
    speaks Kitty's graphics protocol, whose Unicode placeholders are
    ordinary characters in ordinary lines (Sixel paints at the cursor and
    cannot live in a scrolled, redrawn line view)."""
    if not graphics_ready():
        return False
    from textual_image.renderable import Image, TGPImage

    return Image is TGPImage
