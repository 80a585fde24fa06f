"""An image, large: with Sixel or the Kitty graphics protocol where the
terminal has one (textual-image, set up before the app started: see
`tuichat.ui.graphics`), half blocks elsewhere."""

from __future__ import annotations

import io

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tuichat.model.sanitize import safe_line
from tuichat.ui.graphics import graphics_ready
from tuichat.ui.widgets.image_preview import preview_lines
from tuichat.ui.widgets.rich_body import segments_text


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
        self.image_name = name
        self.data = data

    def compose(self) -> ComposeResult:
        with Vertical():
            # The name is remote text: a Text, never markup.
            caption = safe_line(f"{self.image_name}   s: save · Esc: close")
            yield Static(Text(caption), id="caption")
            if graphics_ready():
                # Sixel or Kitty graphics, as found before the app started.
                from PIL import Image as PILImage
                from textual_image.widget import Image

                yield Image(PILImage.open(io.BytesIO(self.data)), id="image")
            else:
                yield Static(id="image")

    def on_resize(self) -> None:
        self._draw_half_blocks()

    def on_mount(self) -> None:
        self._draw_half_blocks()

    def _draw_half_blocks(self) -> None:
        if graphics_ready():
            return
        image = self.query_one("#image", Static)
        columns, rows = image.size.width or 80, image.size.height or 24
        lines = preview_lines(self.data, columns, rows)
        if lines is None:
            image.update(Text("This image cannot be shown.", style="italic"))
            return
        text = Text("\n").join(segments_text(line) for line in lines)
        image.update(text)

    def action_dismiss_viewer(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        self.dismiss("save")
