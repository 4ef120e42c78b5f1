"""Plain-text tables and cell values for the terminal reports (catalog, inspect, stats)."""
from __future__ import annotations

from typing import Sequence


def format_value(value, digits: int = 1) -> str:
    """A cell: '-' for a missing value, floats to `digits` decimals, anything else as str()."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence], rule: bool = False) -> str:
    """Left-aligned columns as wide as their widest cell, two spaces apart; `rule` puts a line of
    dashes under the header. Cells are str()-ed as they are: format them first if needed."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    lines = [line(cells[0])] + ([line(["-" * w for w in widths])] if rule else []) + [line(r) for r in cells[1:]]
    return "\n".join(lines)
