"""A QR code drawn with text: two modules per character cell (half blocks).

For the device login over SSH: the phone scans the terminal. Dark modules
are drawn, light ones left blank; on a terminal the code is drawn black on
white with SGR colours (a dark-background terminal would otherwise invert
it, which many scanners cannot read; 256-colour black and white, not the
terminal theme's), and a quiet zone of two modules all
round.
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
_BLACK_ON_WHITE = "\x1b[38;5;16;48;5;231m"
_RESET = "\x1b[0m"


def qr_lines(data: str, *, colour: bool = False) -> list[str]:
    """The QR code of `data` as lines of half-block characters."""
    import segno

    code = segno.make(data, micro=False, error="m")
    rows = [[bool(module) for module in row] for row in code.matrix_iter(border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        line = "".join(_HALF_BLOCKS[pair] for pair in zip(top, bottom, strict=True))
        lines.append(f"{_BLACK_ON_WHITE}{line}{_RESET}" if colour else line)
    return lines


def modules_from_lines(lines: list[str]) -> list[list[bool]]:
    """The module matrix drawn by `qr_lines` (without colour), read back."""
    top_of = {char: pair for pair, char in _HALF_BLOCKS.items()}
    rows: list[list[bool]] = []
    for line in lines:
        pairs = [top_of[char] for char in line]
        rows.append([pair[0] for pair in pairs])
        rows.append([pair[1] for pair in pairs])
    return rows
