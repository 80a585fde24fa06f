"""Images as half-block character cells, for previews in the timeline.

Each cell is "▀" with the upper pixel as foreground and the lower as
background (rich-pixels), so a preview works in any colour terminal and
sits in the Line API timeline like text. The viewer screen shows images
large with the Kitty or Sixel protocols where the terminal has them.

Image data is remote and hostile: it is decoded only in worker threads,
never on the UI loop; only as PNG, JPEG, GIF or WebP (Pillow would
otherwise try any of its formats, and run Ghostscript on PostScript);
never beyond MAX_PIXELS (read from the header, before decoding). Any
failure is an `ImageRefused` with a short reason of our own words.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from rich.console import Console
from rich.segment import Segment
from rich.style import Style

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

PREVIEW_COLUMNS = 40
PREVIEW_ROWS = 10
# Images larger than this are not decoded (a decompression bomb).
MAX_PIXELS = 40_000_000
# The only formats Pillow may read.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


class ImageRefused(Exception):
    """The image cannot be shown; the message says why (our own words)."""


def decode(data: bytes, draft: tuple[int, int] | None = None) -> PILImage:
    """The image as RGB pixels (JPEG drafted down to about `draft`), or
    `ImageRefused`. Slow on large images: call it in a worker thread."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageRefused("it is not a PNG, JPEG, GIF or WebP image") from None
    except Image.DecompressionBombError:
        raise ImageRefused("it is too large") from None
    except Exception as error:  # noqa: BLE001 - any header Pillow chokes on
        raise ImageRefused(f"it is damaged ({type(error).__name__})") from None
    with image:
        width, height = image.size
        if not width or not height:
            raise ImageRefused("it has no pixels")
        if width * height > MAX_PIXELS:
            raise ImageRefused(f"it is too large ({width}×{height} pixels)")
        try:
            if draft is not None:
                image.draft("RGB", draft)
            return image.convert("RGB")
        except Exception as error:  # noqa: BLE001 - truncated or corrupt data
            raise ImageRefused(f"it is damaged ({type(error).__name__})") from None


def half_block_lines(
    data: bytes, columns: int = PREVIEW_COLUMNS, rows: int = PREVIEW_ROWS
) -> list[list[Segment]]:
    """The image as at most `rows` lines of `columns` half-block cells, or
    `ImageRefused`. Call it in a worker thread."""
    from rich_pixels import Pixels

    picture = decode(data, (columns, rows * 2))
    picture.thumbnail((columns, rows * 2))
    console = Console(width=columns, color_system="truecolor", file=io.StringIO())
    pixels = Pixels.from_image(picture)
    lines = console.render_lines(pixels, console.options.update_width(columns), pad=False)
    return [line for line in lines if any(seg.text.strip(" ") or seg.style for seg in line)]


def preview_lines(
    data: bytes,
    columns: int = PREVIEW_COLUMNS,
    rows: int = PREVIEW_ROWS,
    *,
    kitty: bool = False,
) -> list[list[Segment]] | None:
    """The image as at most `rows` lines of `columns` cells, or None (and
    a log line) if it cannot be shown. With `kitty`, the lines are Kitty
    graphics protocol placeholders for a real image (sent to the terminal
    once, here), else half blocks. Call it in a worker thread."""
    lines, _reason = _preview(data, columns, rows, kitty)
    return lines


def preview_or_note(data: bytes, *, kitty: bool = False) -> list[list[Segment]]:
    """A preview for the timeline, or one line saying why there is none
    (also logged). Call it in a worker thread."""
    lines, reason = _preview(data, PREVIEW_COLUMNS, PREVIEW_ROWS, kitty)
    if lines:
        return lines
    return [[Segment(f"(no preview: {reason})", Style(italic=True, dim=True))]]


def _preview(
    data: bytes, columns: int, rows: int, kitty: bool
) -> tuple[list[list[Segment]] | None, str]:
    try:
        if kitty:
            return _placeholder_lines(data, columns, rows), ""
        return half_block_lines(data, columns, rows), ""
    except ImageRefused as refused:
        reason = str(refused)
        log.info("an image preview cannot be shown: %s", reason)
    except Exception as error:  # a failure must not end the worker unseen
        reason = f"it could not be drawn ({type(error).__name__})"
        log.exception("an image preview cannot be shown")
    return None, reason


def _placeholder_lines(data: bytes, columns: int, rows: int) -> list[list[Segment]]:
    """A real image for Kitty: textual-image sends it (full resolution,
    scaled by the terminal) and yields its placeholder cells."""
    from textual_image.renderable import TGPImage

    picture = decode(data)
    scaled = picture.copy()
    scaled.thumbnail((columns, rows * 2))
    console = Console(width=columns, color_system="truecolor", file=io.StringIO())
    cells, rows = scaled.width, (scaled.height + 1) // 2
    renderable = TGPImage(picture, width=cells, height=rows)
    options = console.options.update(width=cells, height=rows)
    lines = console.render_lines(renderable, options, pad=False)
    return [line for line in lines if line]
