"""The interactive joint plot of `collector plot --html`: data as inline JSON, drawn by inline JavaScript.

The page must open anywhere, offline and years later, so nothing is fetched: the script
(plot_page.js, next to this file) and the data are both written into the page. Long takes are reduced
to the minimum and maximum of each joint per time bucket (at most MAX_POINTS values per trace), so a
spike of one sample stays visible at any zoom level the data allows.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from collector.robot.joint_groups import JointGroup

MAX_POINTS = 4000
SCRIPT = Path(__file__).with_name("plot_page.js")
STYLE = """
#joints-plot .joint-group{margin:.3em 0 .8em}
#joints-plot svg{max-width:100%;height:auto;font:11px sans-serif;cursor:crosshair;user-select:none}
#joints-plot .frame{fill:#fff;stroke:#999}
#joints-plot .grid{stroke:#e4e4e4}
#joints-plot .cursor{stroke:#333;stroke-width:1}
#joints-plot .brush{fill:rgba(61,125,219,.2)}
#joints-plot .ylabel,#joints-plot .xlabel{font-size:12px}
#joints-plot .legend{display:flex;flex-wrap:wrap;gap:.2em 1.2em;font:12px monospace;margin-left:72px}
.joints-bar{display:flex;gap:1em;align-items:baseline;font-size:13px}
"""


def reduce_min_max(t: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS):
    """(t, values) cut to at most `max_points` rows: per bucket, each column's min and max in time order."""
    n = t.size
    if n <= max_points:
        return t, values
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    t_out = np.empty(2 * buckets)
    v_out = np.empty((2 * buckets, values.shape[1]))
    for b in range(buckets):
        lo, hi = edges[b], edges[b + 1]
        chunk = values[lo:hi]
        low = np.where(np.isnan(chunk), np.inf, chunk).argmin(0)
        high = np.where(np.isnan(chunk), -np.inf, chunk).argmax(0)
        first, second = np.minimum(low, high), np.maximum(low, high)
        columns = np.arange(values.shape[1])
        t_out[2 * b], t_out[2 * b + 1] = t[lo], t[hi - 1]
        v_out[2 * b], v_out[2 * b + 1] = chunk[first, columns], chunk[second, columns]
    return t_out, v_out


def _columns(values: np.ndarray) -> List[List[Optional[float]]]:
    # 7 decimals keep a micrometre and a microradian; NaN (no value) becomes JSON null.
    rounded = np.round(values.astype(float), 7)
    return [[None if not np.isfinite(v) else float(v) for v in column] for column in rounded.T]


def joints_payload(series, groups: List[JointGroup]) -> dict:
    t, q = reduce_min_max(series.t, series.q)
    payload = {"t": np.round(t, 4).tolist(), "t_cmd": None, "groups": []}
    q_cmd = None
    if series.q_cmd is not None:
        t_cmd, q_cmd = reduce_min_max(series.t_cmd, series.q_cmd)
        payload["t_cmd"] = np.round(t_cmd, 4).tolist()
    for group in groups:
        columns = list(group.indices)
        payload["groups"].append({
            "name": group.name, "unit": group.unit, "label": group.label, "min_span": group.min_span,
            "joints": list(group.joints), "measured": _columns(q[:, columns]),
            "commanded": _columns(q_cmd[:, columns]) if q_cmd is not None else None,
        })
    return payload


def joints_section(series, groups: List[JointGroup], note: str = "") -> str:
    """The HTML of the interactive joint plot (a <section> with its own style, data and script)."""
    data = json.dumps(joints_payload(series, groups), separators=(",", ":"), allow_nan=False)
    # "</" inside a script element would end it early; JSON allows the escaped form.
    data = data.replace("</", "<\\/")
    script = SCRIPT.read_text(encoding="utf-8")
    legend = "solid: measured, dashed: commanded" if series.q_cmd is not None else "measured"
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return (f"<section id='joints'><h2>joints</h2><style>{STYLE}</style>"
            f"<div class='joints-bar'><span>{legend}; hover for values, drag to zoom, double-click to reset</span>"
            "<button id='joints-reset' type='button'>reset zoom</button><span id='joints-view'></span>"
            f"<span id='joints-time'></span></div>{note_html}<div id='joints-plot'></div>"
            f"<script type='application/json' id='collector-joints'>{data}</script>"
            f"<script>{script}</script></section>")
