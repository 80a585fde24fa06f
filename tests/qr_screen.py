"""Read back a QR code as tuichat drew it on the screen.

The widget's rendered cells (characters and their colours) become a bitmap,
two pixels-high blocks per cell: a half block's drawn half takes the cell's
foreground colour, the rest its background. A QR decoder (zxing-cpp) then
reads the bitmap, as a phone's camera would read the terminal.
"""

from __future__ import annotations

from PIL import Image
from rich.style import Style
from textual.geometry import Region
from textual.widget import Widget

_TOP = {"\u2580", "\u2588"}
_BOTTOM = {"\u2584", "\u2588"}
MODULE_PX = 6
MARGIN_PX = 24


def _luma(style: Style | None, *, foreground: bool) -> int:
    colour = None if style is None else (style.color if foreground else style.bgcolor)
    if colour is None:
        return 0 if foreground else 255  # unstyled: dark on light, like the code's own
    red, green, blue = colour.get_truecolor()
    return (red * 299 + green * 587 + blue * 114) // 1000


def cells_bitmap(widget: Widget) -> Image.Image:
    """The widget as drawn, one module per half cell."""
    width, height = widget.size
    strips = widget.render_lines(Region(0, 0, width, height))
    rows: list[list[int]] = []
    for strip in strips:
        top: list[int] = []
        bottom: list[int] = []
        for segment in strip:
            if segment.control:
                continue
            style = segment.style
            fg, bg = _luma(style, foreground=True), _luma(style, foreground=False)
            if style is not None and style.reverse:
                fg, bg = bg, fg
            for char in segment.text:
                top.append(fg if char in _TOP else bg)
                bottom.append(fg if char in _BOTTOM else bg)
        rows.extend((top, bottom))
    columns = max(len(row) for row in rows)
    image = Image.new(
        "L", (columns * MODULE_PX + 2 * MARGIN_PX, len(rows) * MODULE_PX + 2 * MARGIN_PX), 255
    )
    for y, row in enumerate(rows):
        for x, value in enumerate(row):
            left, upper = MARGIN_PX + x * MODULE_PX, MARGIN_PX + y * MODULE_PX
            image.paste(value, (left, upper, left + MODULE_PX, upper + MODULE_PX))
    return image


def decode_drawn_qr(widget: Widget) -> bytes:
    """The bytes of the one QR code drawn in `widget` (AssertionError if none)."""
    import zxingcpp

    image = cells_bitmap(widget)
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormat.QRCode, try_invert=False, try_rotate=False
    )
    assert found, "no QR code readable in the drawn cells"
    return bytes(found[0].bytes)
