"""An image, large: with Sixel or the Kitty graphics protocol where the
terminal has one (textual-image, set up before the app started: see
`tuichat.ui.graphics`), half blocks elsewhere.

The image data is remote: it is decoded in a worker thread (see
`tuichat.ui.widgets.image_preview` for what is refused), "Loading…" shows
until then, and an image that cannot be shown says why, on the screen and
in the log."""

from __future__ import annotations

import asyncio
import logging

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tuichat.model.sanitize import clean_line, safe_line
from tuichat.ui.graphics import graphics_ready
from tuichat.ui.widgets.image_preview import ImageRefused, decode, half_block_lines
from tuichat.ui.widgets.rich_body import segments_text

log = logging.getLogger(__name__)

# What the terminal's own graphics get at most (textual-image scales and
# encodes on the UI loop; a screen has fewer pixels than this).
MAX_GRAPHICS_SIZE = (2048, 2048)


class ImageViewer(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ImageViewer { align: center middle; }
    ImageViewer > Vertical {
        width: 90%; height: 90%; padding: 0 1;
        border: thick $primary; background: $surface;
    }
    ImageViewer #image { height: 1fr; width: 1fr; }
    ImageViewer #caption { height: 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape,q", "dismiss_viewer", "Close"),
        Binding("s,enter", "save", "Save"),
    ]

    def __init__(self, name: str, data: bytes) -> None:
        super().__init__()
        self.image_name = clean_line(name)
        self.data = data
        self._shown_as_graphics = False
        self._drawn_size: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            # The name is remote text: a Text, never markup.
            caption = safe_line(f"{self.image_name}   s: save · Esc: close")
            yield Static(Text(caption), id="caption")
            yield Static(Text("Loading…", style="italic"), id="image")

    def on_resize(self) -> None:
        self._draw()

    def on_mount(self) -> None:
        self._draw()

    def _draw(self) -> None:
        """Decode (again, for half blocks at a new size) in a worker."""
        if self._shown_as_graphics:
            return  # the terminal scales it
        image = self.query_one("#image", Static)
        size = (image.size.width or 80, image.size.height or 24)
        if size == self._drawn_size:
            return
        self._drawn_size = size
        self.run_worker(self._show(*size), group="viewer", exclusive=True, exit_on_error=False)

    async def _show(self, columns: int, rows: int) -> None:
        image = self.query_one("#image", Static)
        try:
            if graphics_ready():
                picture = await asyncio.to_thread(self._graphics_picture)
                await self._show_graphics(picture)
                return
            lines = await asyncio.to_thread(half_block_lines, self.data, columns, rows)
        except ImageRefused as refused:
            reason = str(refused)
        except Exception as error:  # said on screen and logged, never a crash
            log.exception("the image viewer failed")
            reason = f"it could not be drawn ({type(error).__name__})"
        else:
            image.update(Text("\n").join(segments_text(line) for line in lines))
            return
        log.info("an image cannot be shown: %s", reason)
        image.update(Text(safe_line(f"This image cannot be shown: {reason}."), style="italic"))

    def _graphics_picture(self) -> object:
        picture = decode(self.data)
        picture.thumbnail(MAX_GRAPHICS_SIZE)
        return picture

    async def _show_graphics(self, picture: object) -> None:
        from textual_image.widget import Image

        self._shown_as_graphics = True  # from now on "#image" is not the Static
        await self.query_one("#image", Static).remove()
        await self.query_one(Vertical).mount(Image(picture, id="image"))

    def action_dismiss_viewer(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        self.dismiss("save")
