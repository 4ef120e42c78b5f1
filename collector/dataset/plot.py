"""Pictures of one episode for a person to check a take: `collector plot`.

Figures (matplotlib, Agg backend, no display needed):
- joints:    per joint group, measured positions (raw joints stream) against the commands sent;
- timeline:  one lane per stream with its samples, gaps longer than the stream's tolerance in red,
             drops and rejections from the recorder's counters in the lane label;
- sync:      per aligned stream, the stamp error of every aligned row (ms), with its tolerance band;
- frames:    a contact sheet of camera frames at evenly spaced aligned rows.
Joints are grouped by limb (the robot YAML's groups, one panel each) with the unit of each group read
from the robot's MJCF joint types (hinge: rad, slide: m), a plain tick format (no offset notation) and
a minimum vertical span, so sensor noise on a still joint stays a flat line.
Written as one PNG (the figures stacked) or one self-contained HTML page: the joint plot there is
interactive (inline SVG and script, collector/dataset/plot_html.py), the other figures are base64 PNG,
next to the episode's metadata and conditions.
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader
from collector.recorder.vocabulary import COMMAND, JOINTS
from collector.robot.joint_groups import JointGroup, robot_joint_groups

FIGURES = ("joints", "timeline", "sync", "frames")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _joint_names(reader: EpisodeReader, stream: str, width: int) -> List[str]:
    names = list((reader.streams[stream].attrs or {}).get("joint_names") or [])
    return names if len(names) == width else [f"joint {i}" for i in range(width)]


@dataclass
class JointSeries:
    """Measured (and, when recorded, commanded) joint positions, time in s from the episode's first sample."""

    names: List[str]
    t: np.ndarray
    q: np.ndarray
    t_cmd: Optional[np.ndarray] = None
    q_cmd: Optional[np.ndarray] = None


def joint_series(reader: EpisodeReader, measured: str = JOINTS, commanded: str = COMMAND) -> JointSeries:
    streams = reader.streams
    if measured not in streams or reader.count(measured) == 0:
        raise DataError(f"{reader.path}: no {measured!r} samples to plot")
    t0 = _t0(reader)
    t = reader.stamps(measured) - t0
    q = reader.raw(measured, "position")[: t.size]
    series = JointSeries(_joint_names(reader, measured, q.shape[1]), t, q)
    if commanded in streams and reader.count(commanded) > 0 and "position" in streams[commanded].fields:
        t_cmd = reader.stamps(commanded) - t0
        q_cmd = reader.raw(commanded, "position")[: t_cmd.size]
        if q_cmd.shape[1:] == q.shape[1:]:
            series.t_cmd, series.q_cmd = t_cmd, q_cmd
    return series


def episode_joint_groups(reader: EpisodeReader, names: List[str]) -> Tuple[List[JointGroup], str]:
    """The robot's groups and units for the recorded joints, and a note when the robot is unknown here."""
    robot = reader.metadata.get("robot")
    if robot:
        try:
            return robot_joint_groups(str(robot), names), ""
        except ConfigError as exc:
            note = f"units unknown: {exc}"
    else:
        note = "units unknown: the episode does not name its robot"
    return [JointGroup("joints", "", tuple(names), tuple(range(len(names))))], note


def span_limits(values: np.ndarray, min_span: float) -> Optional[Tuple[float, float]]:
    """y limits that show at least `min_span` around the data (None: the data's own span is larger)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = float(finite.min()), float(finite.max())
    if high - low >= min_span:
        return None
    middle = 0.5 * (low + high)
    return middle - 0.5 * min_span, middle + 0.5 * min_span


def joints_figure(reader: EpisodeReader, measured: str = JOINTS, commanded: str = COMMAND):
    """One panel per joint group (the robot YAML's groups), in its unit; solid measured, dashed commanded."""
    plt = _pyplot()
    series = joint_series(reader, measured, commanded)
    groups, note = episode_joint_groups(reader, series.names)
    rows = len(groups)
    fig, axes = plt.subplots(rows, 1, figsize=(12, 1.9 * rows + 0.9), sharex=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, group in zip(axes[:, 0], groups):
        columns = list(group.indices)
        for k, (joint, j) in enumerate(zip(group.joints, columns)):
            color = colors[k % len(colors)]
            ax.plot(series.t, series.q[:, j], lw=1.1, color=color, label=joint)
            if series.q_cmd is not None:
                ax.plot(series.t_cmd, series.q_cmd[:, j], lw=0.9, color=color, ls="--", alpha=0.8)
        shown = [series.q[:, columns]] + ([series.q_cmd[:, columns]] if series.q_cmd is not None else [])
        limits = span_limits(np.concatenate([v.ravel() for v in shown]), group.min_span)
        if limits is not None:
            ax.set_ylim(*limits)
        # Offset notation ("1e-6+4.5e-2") hides the actual value of a nearly flat trace.
        ax.ticklabel_format(axis="both", style="plain", useOffset=False)
        ax.set_ylabel(group.label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    title = f"{reader.metadata.get('episode_id', reader.path.stem)}: joint positions by group"
    title += " (solid: measured, dashed: commanded)" if series.q_cmd is not None else " (measured)"
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
    # Fixed margins (in inches, as fractions): tight_layout measures every tick label of every panel.
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.8 / width, right=1 - 1.9 / width, bottom=0.5 / height, top=1 - 0.7 / height,
                        hspace=0.25)
    return fig


def _t0(reader: EpisodeReader) -> float:
    firsts = [reader.stamps(n)[0] for n in reader.streams if reader.count(n)]
    return float(min(firsts)) if firsts else 0.0


def timeline_figure(reader: EpisodeReader):
    plt = _pyplot()
    from collector.sync import stream_report

    names = sorted(reader.streams)
    counters = reader.counters
    t0 = _t0(reader)
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(names) + 1.4))
    labels = []
    for lane, name in enumerate(names):
        spec = reader.streams[name]
        t = reader.stamps(name) - t0
        counter = counters.get(name, {})
        label = f"{name} ({t.size}"
        if counter.get("dropped"):
            label += f", {counter['dropped']} dropped"
        if counter.get("rejected"):
            label += f", {counter['rejected']} rejected"
        labels.append(label + ")")
        if t.size:
            # Thin ticks for every sample: at high rates they merge into a bar, holes stay visible.
            ax.vlines(t, lane - 0.3, lane + 0.3, color="tab:blue", lw=0.4)
            report = stream_report(t + t0, name=name, nominal_rate_hz=spec.rate_hz,
                                   gap_periods=spec.tolerance * spec.rate_hz)
            for start, end in report.gaps:
                ax.axvspan(start - t0, end - t0, ymin=(lane + 0.1) / len(names), ymax=(lane + 0.9) / len(names),
                           color="tab:red", alpha=0.6)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel("time since the first sample (s)")
    ax.set_title("stream timelines: every sample; red = gap longer than the stream's tolerance", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def sync_figure(reader: EpisodeReader):
    plt = _pyplot()
    if not reader.has_aligned_view:
        raise DataError(f"{reader.path} has no aligned view (run `collector recover` on a partial episode)")
    names = reader.synced_streams
    t = reader.timestamps - _t0(reader)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 1.5 * len(names) + 0.8), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        sync = reader.sync(name)
        tolerance = float(reader.h5["sync"][name].attrs.get("tolerance_s", np.nan)) * 1e3
        error = sync["error"] * 1e3
        ax.plot(t, error, lw=0.8, color="tab:blue")
        bad = ~sync["valid"]
        if bad.any():
            ax.plot(t[bad], error[bad], "x", color="tab:red", ms=3, label="out of tolerance")
            ax.legend(fontsize=7)
        if np.isfinite(tolerance):
            ax.axhspan(-tolerance, tolerance, color="tab:green", alpha=0.08)
        ax.set_ylabel(f"{name}\nms", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("aligned row time (s)")
    fig.suptitle("sync error of each aligned row (sample stamp - row time); green band = tolerance", fontsize=10)
    fig.tight_layout()
    return fig


def contact_sheet(reader: EpisodeReader, columns: int = 6, cameras: Optional[List[str]] = None):
    plt = _pyplot()
    if not reader.has_aligned_view:
        raise DataError(f"{reader.path} has no aligned view")
    cams = cameras or reader.aligned_cameras
    if not cams:
        raise DataError(f"{reader.path}: no cameras to show")
    stamps = reader.timestamps
    rows_idx = np.unique(np.linspace(0, stamps.size - 1, min(columns, stamps.size)).round().astype(int))
    t0 = _t0(reader)
    fig, axes = plt.subplots(len(cams), rows_idx.size, figsize=(2.2 * rows_idx.size, 1.9 * len(cams) + 0.5),
                             squeeze=False)
    for r, cam in enumerate(cams):
        frames = reader.aligned_images(cam)
        for c, row in enumerate(rows_idx):
            ax = axes[r][c]
            ax.imshow(frames[int(row)])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={stamps[row] - t0:.2f} s", fontsize=8)
            if c == 0:
                ax.set_ylabel(cam, fontsize=8)
    fig.suptitle("camera frames at evenly spaced aligned rows", fontsize=10)
    fig.tight_layout()
    return fig


BUILDERS = {"joints": joints_figure, "timeline": timeline_figure, "sync": sync_figure, "frames": contact_sheet}


def _check_figures(which) -> None:
    unknown = set(which) - set(FIGURES)
    if unknown:
        raise ConfigError(f"unknown figure(s) {sorted(unknown)} (choose from {', '.join(FIGURES)})")


def make_figures(path, which=FIGURES) -> Dict[str, object]:
    _check_figures(which)
    figures = {}
    with EpisodeReader(path) as reader:
        for name in which:
            figures[name] = BUILDERS[name](reader)
        metadata = reader.metadata
    return {"figures": figures, "metadata": metadata}


def _png_bytes(fig, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_episode(path, out, which=FIGURES, dpi: int = 90) -> Path:
    """Write the figures to `out` (.png: stacked into one image; .html: one self-contained page in which
    the joint plot is interactive and the other figures are images)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".html"):
        raise ConfigError(f"{out}: the output must end in .png or .html")
    if out.suffix.lower() == ".png":
        return _write_png(path, out, which, dpi)
    return _write_html(path, out, which, dpi)


def _write_png(path, out: Path, which, dpi: int) -> Path:
    import cv2

    plt = _pyplot()
    made = make_figures(path, which)
    images = []
    for fig in made["figures"].values():
        images.append(cv2.imdecode(np.frombuffer(_png_bytes(fig, dpi), np.uint8), cv2.IMREAD_COLOR))
        plt.close(fig)
    width = max(image.shape[1] for image in images)
    images = [np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255) for image in images]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack(images)):
        raise DataError(f"{out}: could not write the PNG")
    return out


def _write_html(path, out: Path, which, dpi: int) -> Path:
    from collector.dataset.plot_html import joints_section

    plt = _pyplot()
    _check_figures(which)
    sections = []
    with EpisodeReader(path) as reader:
        metadata = reader.metadata
        for name in which:
            if name == "joints":
                series = joint_series(reader)
                sections.append(joints_section(series, *episode_joint_groups(reader, series.names)))
                continue
            fig = BUILDERS[name](reader)
            data = base64.b64encode(_png_bytes(fig, dpi)).decode()
            plt.close(fig)
            sections.append(f"<h2>{name}</h2><img alt='{name}' src='data:image/png;base64,{data}'>")
    conditions = metadata.get("conditions", {})
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_short(v))}</td></tr>"
                   for k, v in sorted(metadata.items()) if k not in ("conditions", "recorder_stats"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(str(metadata.get('episode_id')))}"
            "</title><style>body{font-family:sans-serif;margin:1em}img{max-width:100%}"
            "th{text-align:left;padding-right:1em}td,th{font-size:13px;vertical-align:top}</style></head><body>"
            f"<h1>{html.escape(str(metadata.get('episode_id', Path(path).stem)))}</h1><table>{rows}</table>"
            f"{''.join(sections)}"
            f"<h2>conditions</h2><pre>{html.escape(json.dumps(conditions, indent=2, default=str))}</pre></body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."
