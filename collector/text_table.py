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


def format_table(header: Sequence[str], rows: Sequence[Sequence], rule: bool = False, right: str = "",
                 indent: str = "") -> str:
    """Columns as wide as their widest cell, two spaces apart, so no cell ever runs into the next;
    `rule` puts a line of dashes under the header; `right` holds one character per column, "r" for
    right-aligned (numbers), anything else for left; `indent` starts every line. Cells are str()-ed as
    they are: format them first if needed."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    aligned = [right[i:i + 1] == "r" for i in range(len(header))]
    line = lambda row: indent + "  ".join(c.rjust(w) if r else c.ljust(w)  # noqa: E731
                                          for c, w, r in zip(row, widths, aligned)).rstrip()
    lines = [line(cells[0])] + ([line(["-" * w for w in widths])] if rule else []) + [line(r) for r in cells[1:]]
    return "\n".join(lines)
