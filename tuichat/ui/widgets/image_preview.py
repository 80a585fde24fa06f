"""Images as half-block character cells, for previews in the timeline.

Each cell is "▀" with the upper pixel as foreground and the lower as
background (rich-pixels), so a preview works in any colour terminal and
sits in the Line API timeline like text. The viewer screen shows images
large with the Kitty or Sixel protocols where the terminal has them.
Decoding runs in a worker thread (Pillow), never on the UI loop.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.segment import Segment

PREVIEW_COLUMNS = 40
PREVIEW_ROWS = 10
# Images larger than this are not decoded (a decompression bomb).
MAX_PIXELS = 40_000_000


def preview_lines(
    data: bytes,
    columns: int = PREVIEW_COLUMNS,
    rows: int = PREVIEW_ROWS,
    *,
    kitty: bool = False,
) -> list[list[Segment]] | None:
    """The image as at most `rows` lines of `columns` cells, or None if it
    cannot be decoded. With `kitty`, the lines are Kitty graphics protocol
    placeholders for a real image (sent to the terminal once, here), else
    half blocks."""
    from PIL import Image, UnidentifiedImageError
    from rich_pixels import Pixels

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS or not width or not height:
                return None
            image.draft("RGB", (columns, rows * 2))
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    picture.thumbnail((columns, rows * 2))
    console = Console(width=columns, color_system="truecolor", file=io.StringIO())
    if kitty:
        return _placeholder_lines(data, console, picture.width, (picture.height + 1) // 2)
    pixels = Pixels.from_image(picture)
    lines = console.render_lines(pixels, console.options.update_width(columns), pad=False)
    return [line for line in lines if any(seg.text.strip(" ") or seg.style for seg in line)]


def _placeholder_lines(
    data: bytes, console: Console, columns: int, rows: int
) -> list[list[Segment]] | None:
    """A real image for Kitty: textual-image sends it (full resolution,
    scaled by the terminal) and yields its placeholder cells."""
    from PIL import Image
    from textual_image.renderable import TGPImage

    with Image.open(io.BytesIO(data)) as image:
        renderable = TGPImage(image.convert("RGB"), width=columns, height=rows)
        options = console.options.update(width=columns, height=rows)
        lines = console.render_lines(renderable, options, pad=False)
    return [line for line in lines if line]
