"""A QR code as terminal text: two module rows per character row with half-block characters.

``qrcode`` (maintained, pure Python) builds the matrix; we only draw it, dark modules on a light
background as scanners expect, whatever the terminal's colours.
"""

from __future__ import annotations

import qrcode
from rich.text import Text

_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
QR_STYLE = "#000000 on #ffffff"


def qr_matrix(data: str) -> list[list[bool]]:
    code = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def half_block_lines(matrix: list[list[bool]]) -> list[str]:
    """Each output line covers two matrix rows; an odd last row is paired with a light one."""
    lines = []
    for top in range(0, len(matrix), 2):
        upper = matrix[top]
        lower = matrix[top + 1] if top + 1 < len(matrix) else [False] * len(upper)
        lines.append("".join(_BLOCKS[(u, d)] for u, d in zip(upper, lower, strict=True)))
    return lines


def qr_text(data: str) -> Text:
    """The QR code of ``data``, ready for a Static."""
    return Text("\n".join(half_block_lines(qr_matrix(data))), style=QR_STYLE, no_wrap=True)
