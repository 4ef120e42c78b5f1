"""What the review page draws for one episode: cameras and their frame times, the timeline, events.

Everything is on the episode's own clock (the recorded stamps, the clock of /timestamps), so the
page can put a frame, a joint sample, a QA event and a subtask boundary under one playhead.
Timeline series are reduced to a min/max envelope per bucket: a spike a reviewer must see survives
the reduction, which plain decimation would drop.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np

from collector.recorder import EpisodeReader
from collector.recorder.vocabulary import COMMAND, CONTROL, JOINTS, SAFETY

log = logging.getLogger(__name__)

TIMELINE_BUCKETS = 600  # the page's canvas is ~1200 px wide: two points (min, max) a bucket
FROZEN_S = 1.0  # as collector.recorder.qa.validate_episode's default
UNSAFE_STATES = ("hold", "stopped")
DEFAULT_REASONS = ["collision", "dropped object", "idle too long", "camera frozen", "wrong object"]
DEFAULT_SKILLS = ["reach", "grasp", "lift", "move", "place", "release"]


def finite_list(values: np.ndarray, decimals: int = 4) -> list:
    """Rounded values as JSON-ready lists, NaN/inf as None (JSON has no NaN)."""
    values = np.round(np.asarray(values, dtype=np.float64), decimals)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out = values.astype(object)
    out[~finite] = None
    return out.tolist()


def envelope(t: np.ndarray, values: np.ndarray, buckets: int = TIMELINE_BUCKETS) -> Tuple[np.ndarray, np.ndarray]:
    """(t, values) with each bucket of samples reduced to its min and its max (2 rows a bucket)."""
    n = t.shape[0]
    if n <= 2 * buckets:
        return t, values
    starts = np.linspace(0, n, buckets + 1).astype(np.int64)[:-1]
    middles = starts + np.diff(np.append(starts, n)) // 2
    low = np.minimum.reduceat(values, starts, axis=0)
    high = np.maximum.reduceat(values, starts, axis=0)
    t_out = np.empty(2 * buckets)
    t_out[0::2], t_out[1::2] = t[starts], t[middles]
    v_out = np.empty((2 * buckets,) + values.shape[1:], dtype=np.float64)
    v_out[0::2], v_out[1::2] = low, high
    return t_out, v_out


def runs(mask: np.ndarray, t: np.ndarray) -> List[Tuple[float, float]]:
    """(first t, last t) of each run of True in `mask`."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, ends)]


def joint_lanes(joint_names: Sequence[str], robot: str) -> List[dict]:
    """One timeline lane per limb and unit (collector.robot.joint_groups, as plots and the dashboard
    group joints): {name, unit, indices, min_span}. One unitless lane when the robot is not loadable here."""
    from collector.robot.joint_groups import MIN_SPAN, OTHER_GROUP, robot_joint_groups

    try:
        return [group.as_dict() for group in robot_joint_groups(robot, list(joint_names))]
    except Exception as exc:  # a robot of another station, or no MJCF here: the joints still show
        log.info("review: robot %r not loadable (%s); one lane for every joint", robot, exc)
        return [{"name": OTHER_GROUP, "unit": "", "joints": list(joint_names), "indices": list(range(len(joint_names))),
                 "min_span": MIN_SPAN[""]}]


class EpisodeView:
    """Reads what the page needs from one open episode."""

    def __init__(self, reader: EpisodeReader):
        self.r = reader
        self.md = reader.metadata

    def cameras(self) -> List[dict]:
        out = []
        for stream, spec in sorted(self.r.streams.items()):
            if spec.is_camera and self.r.count(stream):
                out.append({"name": spec.camera_name, "count": self.r.count(stream),
                            "width": spec.fields["image"].shape[1] if "image" in spec.fields else None,
                            "height": spec.fields["image"].shape[0] if "image" in spec.fields else None,
                            "t": finite_list(self.r.stamps(stream), 4)})
        return out

    def span(self) -> Tuple[float, float]:
        ends = [self.r.stamps(s)[[0, -1]] for s in self.r.streams if self.r.count(s)]
        if not ends:
            return 0.0, 0.0
        return float(min(e[0] for e in ends)), float(max(e[1] for e in ends))

    def _series(self, stream: str, field: str) -> Optional[dict]:
        if stream not in self.r.streams or field not in self.r.streams[stream].fields or not self.r.count(stream):
            return None
        t, v = envelope(self.r.stamps(stream), self.r.raw(stream, field)[: self.r.count(stream)].astype(np.float64))
        return {"t": finite_list(t, 4), "v": [finite_list(column) for column in v.T]}

    def joints(self) -> Optional[dict]:
        if JOINTS not in self.r.streams:
            return None
        names = list((self.r.streams[JOINTS].attrs or {}).get("joint_names") or [])
        measured = self._series(JOINTS, "position")
        if measured is None:
            return None
        names = names or [f"joint {i}" for i in range(len(measured["v"]))]
        return {"names": names, "lanes": joint_lanes(names, str(self.md.get("robot") or "")),
                "measured": measured, "commanded": self._series(COMMAND, "position")}

    def control(self) -> List[dict]:
        """Who commanded the robot when: [{source, start_t, end_t}]."""
        if CONTROL not in self.r.streams or not self.r.count(CONTROL):
            return []
        codes = {int(v): k for k, v in ((self.r.streams[CONTROL].attrs or {}).get("sources") or {}).items()}
        source = self.r.raw(CONTROL, "source")[: self.r.count(CONTROL)]
        t = self.r.stamps(CONTROL)
        change = np.flatnonzero(source[1:] != source[:-1]) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [source.size]))
        return [{"source": codes.get(int(source[a]), f"source {int(source[a])}"), "start_t": float(t[a]),
                 "end_t": float(t[min(b, t.size - 1)])} for a, b in zip(starts, ends)]

    def events(self) -> List[dict]:
        """QA warnings and gaps where they happen: {kind, stream, start_t, end_t, message}."""
        events: List[dict] = []
        for stream, spec in sorted(self.r.streams.items()):
            if self.r.count(stream) >= 2:
                events += self._gaps(stream, spec)
                if spec.is_camera:
                    events += self._frozen(stream)
        events += self._limits()
        events += self._safety()
        return sorted(events, key=lambda e: e["start_t"])

    def _gaps(self, stream: str, spec) -> List[dict]:
        from collector.sync import stream_report

        t = self.r.stamps(stream)
        if not np.isfinite(t).all():
            return [{"kind": "gap", "stream": stream, "start_t": 0.0, "end_t": 0.0,
                     "message": f"{stream}: stamps are not all finite"}]
        report = stream_report(t, name=stream, nominal_rate_hz=spec.rate_hz,
                               gap_periods=spec.tolerance * spec.rate_hz)
        return [{"kind": "gap", "stream": stream, "start_t": float(a), "end_t": float(b),
                 "message": f"{stream}: no sample for {(b - a) * 1e3:.0f} ms"} for a, b in report.gaps]

    def _frozen(self, stream: str) -> List[dict]:
        crc, t = self.r.frame_crc32(stream), self.r.stamps(stream)
        same = np.concatenate(([False], crc[1:] == crc[:-1]))
        out = []
        for a, b in runs(same, t):
            start = float(t[max(0, np.searchsorted(t, a) - 1)])  # the run starts at the frame repeated
            if b - start >= FROZEN_S:
                out.append({"kind": "frozen", "stream": stream, "start_t": start, "end_t": b,
                            "message": f"{stream}: frozen for {b - start:.2f} s"})
        return out

    def _limits(self) -> List[dict]:
        limits = self.md.get("joint_limits")
        if not isinstance(limits, dict) or JOINTS not in self.r.streams or not self.r.count(JOINTS):
            return []
        try:
            lower = np.asarray(limits["lower"], dtype=np.float64)
            upper = np.asarray(limits["upper"], dtype=np.float64)
            tolerance = np.broadcast_to(np.asarray(limits.get("tolerance", 0.0), dtype=np.float64), lower.shape)
        except (KeyError, TypeError, ValueError):
            return []
        q = self.r.raw(JOINTS, "position")[: self.r.count(JOINTS)]
        if q.shape[1:] != lower.shape:
            return []
        over = np.maximum(q - upper, lower - q) > np.maximum(tolerance, 1e-3)
        names = list(limits.get("joint_names") or [])
        t = self.r.stamps(JOINTS)
        out = []
        for j in np.flatnonzero(over.any(axis=0)):
            name = names[j] if j < len(names) else f"joint {j}"
            out += [{"kind": "limit", "stream": JOINTS, "start_t": a, "end_t": b,
                     "message": f"{name} outside its limits"} for a, b in runs(over[:, j], t)]
        return out

    def _safety(self) -> List[dict]:
        if SAFETY not in self.r.streams or not self.r.count(SAFETY):
            return []
        states = (self.r.streams[SAFETY].attrs or {}).get("states") or {}
        state = self.r.raw(SAFETY, "state")[: self.r.count(SAFETY)]
        t = self.r.stamps(SAFETY)
        out = []
        for name in UNSAFE_STATES:
            if name in states:
                out += [{"kind": "safety", "stream": SAFETY, "start_t": a, "end_t": b,
                         "message": f"safety gate {name}"} for a, b in runs(state == int(states[name]), t)]
        return out


def suggestions_for(path) -> dict:
    """Subtask and idle suggestions (collector.review.suggestions), or none when they cannot be made."""
    try:
        from collector.review.suggestions import suggest
    except ImportError:
        return {"subtasks": [], "idle": [], "available": False}
    try:
        found = suggest(path)
    except Exception as exc:  # a suggestion is a help: the page must open without it
        log.warning("review: no suggestions for %s (%s: %s)", path, type(exc).__name__, exc)
        return {"subtasks": [], "idle": [], "available": False, "error": str(exc)}
    return {"available": True,
            "subtasks": [{"name": s.name, "start_t": float(s.start_t), "end_t": float(s.end_t)}
                         for s in found.subtasks],
            "idle": [[float(a), float(b)] for a, b in found.idle]}


def choices_for(task: str) -> dict:
    """Reject reasons and the task's skill names from configs/review.yaml (defaults if it is unreadable)."""
    try:
        from collector.review.config import review_config

        config = review_config(task)
        return {"reasons": list(config.reasons) or DEFAULT_REASONS, "skills": list(config.skills) or DEFAULT_SKILLS}
    except Exception as exc:
        log.warning("review: using default reasons and skills (%s)", exc)
        return {"reasons": DEFAULT_REASONS, "skills": DEFAULT_SKILLS}
