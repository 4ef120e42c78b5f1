"""The alignment core: put streams recorded at different rates and clocks onto common time steps.

Pure numpy, no Python loop per sample. See docs/sync.md.
"""
from collector.sync.align import (
    METHODS,
    AlignResult,
    align_sorted,
    align_stream,
    fixed_grid,
    grid_rows_before,
    grid_row,
    grid_stamps,
)
from collector.sync.clock import ClockMap, fit_clock
from collector.sync.many import align_streams
from collector.sync.online import OnlineAligner
from collector.sync.report import StreamReport, stream_report
from collector.sync.stamps import StampRepair, check_stamps, repair_stamps

__all__ = [
    "METHODS",
    "AlignResult",
    "ClockMap",
    "OnlineAligner",
    "StampRepair",
    "StreamReport",
    "align_sorted",
    "align_stream",
    "align_streams",
    "check_stamps",
    "fit_clock",
    "fixed_grid",
    "grid_rows_before",
    "grid_row",
    "grid_stamps",
    "repair_stamps",
    "stream_report",
]
