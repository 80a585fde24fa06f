"""The image viewer and previews with hostile image data: decoded in a
worker thread, only PNG, JPEG, GIF and WebP, never beyond a pixel limit,
and every failure a visible message and a log line, never a crash."""

from __future__ import annotations

import io
import logging
import random
import struct
import zlib

import pytest
from PIL import Image
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.test_attachments import png
from tests.test_ui_chat import wait_ui
from tuichat.ui import graphics
from tuichat.ui.screens.image_viewer import ImageViewer
from tuichat.ui.widgets.image_preview import preview_lines, preview_or_note


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb() -> bytes:
    """45 bytes: a PNG header claiming 20000 x 20000 pixels."""
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"")
    assert len(data) == 45
    return data


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\n"
    b"newpath 0 0 moveto 100 100 lineto stroke showpage\n%%EOF\n"
)


def bmp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 0, 0)).save(buffer, "BMP")
    return buffer.getvalue()


HOSTILE = {
    "random bytes": random.Random(2).randbytes(4000),
    "a PNG header claiming 20000x20000": png_bomb(),
    "PostScript": EPS,
    "a truncated PNG": png(300, 200)[:200],
    "a BMP": bmp(),
}


class ViewerApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("behind")


@pytest.mark.parametrize("graphics_protocol", [False, True], ids=["half blocks", "graphics"])
@pytest.mark.parametrize("what", sorted(HOSTILE))
async def test_hostile_image_data_shows_a_message_and_a_log_line_not_a_crash(
    what: str,
    graphics_protocol: bool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(graphics._state, "prepared", graphics_protocol)
    app = ViewerApp()
    caplog.set_level(logging.INFO)
    async with app.run_test(size=(80, 30)) as pilot:
        await app.push_screen(ImageViewer("bad\x1b[31m.png", HOSTILE[what]))
        viewer = app.screen
        assert isinstance(viewer, ImageViewer)

        def shown() -> str:
            return str(viewer.query_one("#image", Static).render())

        await wait_ui(pilot, lambda: "cannot be shown" in shown(), 10)
        assert "\x1b" not in shown()
        assert app.is_running and app.screen is viewer
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not isinstance(app.screen, ImageViewer))
    assert any("cannot be shown" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("graphics_protocol", [False, True], ids=["half blocks", "graphics"])
async def test_an_image_is_decoded_off_the_ui_thread_and_then_shown(
    graphics_protocol: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual_image.widget import Image as GraphicsImage

    monkeypatch.setitem(graphics._state, "prepared", graphics_protocol)
    app = ViewerApp()
    async with app.run_test(size=(80, 30)) as pilot:
        await app.push_screen(ImageViewer("chart.png", png(400, 300)))
        viewer = app.screen
        image = viewer.query_one("#image", Static)
        # The screen is up before the image is decoded.
        assert "Loading" in str(image.render())
        if graphics_protocol:
            await wait_ui(pilot, lambda: viewer.query(GraphicsImage))
        else:
            await wait_ui(pilot, lambda: "▄" in str(image.render()) or "▀" in str(image.render()))
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert app.screen is viewer


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_previews_of_hostile_image_data_are_refused(
    what: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert preview_lines(HOSTILE[what]) is None
    assert preview_lines(HOSTILE[what], kitty=True) is None
    assert any("cannot be shown" in record.getMessage() for record in caplog.records)


def test_a_preview_that_cannot_be_made_is_one_line_saying_why() -> None:
    assert "▄" in "".join(s.text for line in preview_or_note(png(80, 60)) for s in line)
    note = preview_or_note(png_bomb())
    assert len(note) == 1
    assert "".join(s.text for s in note[0]) == "(no preview: it is too large)"
    note = preview_or_note(EPS)
    assert "not a PNG, JPEG, GIF or WebP image" in "".join(s.text for s in note[0])
