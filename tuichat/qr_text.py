"""A QR code drawn with text: two modules per character cell (half blocks).

For the device login over SSH and for verification by QR code: the phone
scans the terminal. Dark modules
are drawn, light ones left blank, with a quiet zone of two modules all
round. On a terminal the caller draws the lines black on white
(`BLACK_ON_WHITE`, 256-colour black and white rather than the theme's): a
dark-background terminal would otherwise invert the code, which many
scanners cannot read.
"""

from __future__ import annotations

# (top dark, bottom dark) -> the character.
_HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "\u2580",  # ▀ upper half
    (False, True): "\u2584",  # ▄ lower half
    (True, True): "\u2588",  # █ full block
}
QUIET_ZONE = 2


def qr_lines(data: str | bytes, error: str = "m") -> list[str]:
    """The QR code of `data` (text, or bytes as they are) as lines of
    half-block characters; `error` is the error correction level."""
    import segno

    code = segno.make(data, micro=False, error=error)
    rows = [[bool(module) for module in row] for row in code.matrix_iter(border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        lines.append("".join(_HALF_BLOCKS[pair] for pair in zip(top, bottom, strict=True)))
    return lines


def modules_from_lines(lines: list[str]) -> list[list[bool]]:
    """The module matrix drawn by `qr_lines`, read back."""
    top_of = {char: pair for pair, char in _HALF_BLOCKS.items()}
    rows: list[list[bool]] = []
    for line in lines:
        pairs = [top_of[char] for char in line]
        rows.append([pair[0] for pair in pairs])
        rows.append([pair[1] for pair in pairs])
    return rows
