"""An image, large: with the Kitty graphics protocol or Sixel where the
terminal has one (textual-image detects it), half blocks elsewhere."""

from __future__ import annotations

import io

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


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
        # Imported here: textual-image asks the terminal what it supports.
        from PIL import Image as PILImage
        from textual_image.widget import Image

        with Vertical():
            # The name is remote text: a Text, never markup.
            yield Static(Text(f"{self.image_name}   s: save · Esc: close"), id="caption")
            yield Image(PILImage.open(io.BytesIO(self.data)), id="image")

    def action_dismiss_viewer(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        self.dismiss("save")
