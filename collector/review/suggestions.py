"""Subtask suggestions a reviewer confirms or moves, and idle stretches, from what an episode recorded.

    s = suggest("data/demo/episodes/episode_000001.hdf5")
    s.subtasks                 # [Subtask("reach", 0.52, 2.15), Subtask("grasp", 2.15, 3.02), ...]
    s.idle                     # [(start_t, end_t), ...] where nothing moved for more than 1.5 s
    true = truth(path)         # the scripted operator's own phases as subtasks (None for other takes)
    boundary_errors(s.subtasks, true, until=s.end_t)   # seconds, one per true boundary

How: a person's hand moves in strokes, each a bell-shaped speed profile that starts and ends at rest
(Flash & Hogan's minimum-jerk reaches). The hand's speed (the commanded end-effector pose, `ik_target`;
joint speeds when an episode has none) is cut into strokes at its pauses and at the dips between
strokes made back to back; a stroke's start is extrapolated from its rising flank (where it crosses
half and nine tenths of its peak), so it is not late by the time the speed takes to clear the noise
floor. The gripper command gives the grasp and release instants. Strokes are then named by when they
happen and what they do: before the gripper closes (reach), after it (lift, upward strokes), carrying
(move), setting down (place, downward strokes) or, for a pour, rotations (tilt, pour) until the
stroke that tips the pitcher back (return). Idle: no commanded joint and no recorded object moving
(0.1 s means) for more than IDLE_MIN_S. Everything is numpy over whole streams; loops run over strokes
and events, never over samples.
"""
from __future__ import annotations

import functools
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from collector.review.annotations import Subtask
from collector.review.phases import OPERATOR_PHASES, phases_to_subtasks

IDLE_MIN_S = 1.5  # "nothing moves for longer than this" is an idle stretch
SMOOTH_S = 0.2  # hand position smoothing: removes physiological tremor (4-11 Hz), keeps strokes
LEVER_M = 0.1  # a hand turning at 1 rad/s counts as moving 0.1 m/s (a pour is a rotation)
STROKE_ON_M_S = 0.03  # a hand faster than this is moving
SPLIT_DIP = 0.5  # a dip below half the smaller neighbouring peak separates two strokes
MIN_PEAK_M_S = 0.05  # slower "strokes" are noise
IDLE_JOINT_RAD_S = 0.05  # commanded joints slower than this (0.1 s means) ...
IDLE_OBJECT_M_S = 0.02  # ... and objects slower than this: nothing moves
IDLE_STEP_S = 0.1  # idle is judged on 0.1 s block means (smooths tremor, and 10x less to look at)
FLANK_MAX_S = 3.0  # a stroke's flank is looked for this far from its peak at most
GRIP_LOW, GRIP_HIGH = 0.005, 0.995  # gripper command at rest: within 0.5 % of open or closed
# Minimum-jerk speed reaches 1/2 and 9/10 of its peak at 22.97 % and 38.69 % of the stroke: the start
# lies 1.461 times their gap before the half-peak crossing.
ONSET_FACTOR = 0.2297 / (0.3869 - 0.2297)


@dataclass
class Suggestions:
    task: str
    subtasks: List[Subtask]
    idle: List[Tuple[float, float]]
    end_t: float  # the episode's last instant (subtasks cut by the episode's end end here)
    events: Dict[str, List[float]] = field(default_factory=dict)  # gripper closed/opened, stroke starts

    def to_json(self) -> dict:
        return {"task": self.task, "end_t": self.end_t,
                "subtasks": [{"name": s.name, "start_t": s.start_t, "end_t": s.end_t} for s in self.subtasks],
                "idle": [[a, b] for a, b in self.idle], "events": self.events}


@dataclass
class Stroke:
    start_t: float
    end_t: float
    peak_t: float
    displacement: np.ndarray  # hand translation over the stroke (m, world frame; zeros without poses)
    rotation: float  # hand rotation over the stroke (rad)
    tilt_change: float  # change of the hand's angle from its orientation at the grasp (rad)
    tilt: float  # the hand's angle from its orientation at the grasp when the stroke ends (rad)


# -- reading -----------------------------------------------------------------------------------------

def _open(episode):
    """A context giving an EpisodeReader for a path, or the reader given (left open)."""
    from collector.recorder import EpisodeReader

    return nullcontext(episode) if isinstance(episode, EpisodeReader) else EpisodeReader(episode)


def _stream(reader, name: str, fields: Sequence[str]):
    if name not in reader.streams:
        return None
    n = reader.count(name)
    return reader.stamps(name)[:n], [np.asarray(reader.raw(name, f)[:n], dtype=float) for f in fields]


def truth(episode) -> Optional[List[Subtask]]:
    """The scripted operator's phases as the task's subtasks, or None for a take without them."""
    with _open(episode) as reader:
        metadata = reader.metadata
    phases = metadata.get(OPERATOR_PHASES)
    if not phases:
        return None
    return phases_to_subtasks(str(metadata.get("task", "")), phases)


# -- signals -----------------------------------------------------------------------------------------

def _smooth(x: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average over about window_s (cumulative sums; edges average what exists)."""
    if len(t) < 3:
        return x
    dt = float(np.median(np.diff(t)))
    half = max(1, int(round(window_s / max(dt, 1e-6) / 2)))
    n = len(x)
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    width = (hi - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return (csum[hi] - csum[lo]) / width


def _speed(position: np.ndarray, t: np.ndarray) -> np.ndarray:
    if len(t) < 2:
        return np.zeros(len(t))
    return np.linalg.norm(np.gradient(position, t, axis=0), axis=-1)


def _quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle between unit quaternions, row by row (w x y z)."""
    dot = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


@dataclass
class Hand:
    """The working hand's motion: stamps, smoothed position (or None), orientation (or None), speed."""

    t: np.ndarray
    position: Optional[np.ndarray]
    orientation: Optional[np.ndarray]
    speed: np.ndarray  # m/s, translation plus LEVER_M x rotation rate
    side: str = ""


def _hand(reader, side_hint: Optional[str]) -> Optional[Hand]:
    """From the commanded end-effector poses (ik_target), the side that moves most (or side_hint)."""
    spec = reader.streams.get("ik_target")
    if spec is not None:
        sides = [s for s in spec.attrs.get("sides", []) if s in spec.fields]
        data = _stream(reader, "ik_target", sides)
        if data is not None and len(data[0]) > 3:
            t, poses = data
            by_side = dict(zip(sides, poses))
            if side_hint not in by_side:
                side_hint = max(by_side, key=lambda s: float(np.sum(np.linalg.norm(np.diff(by_side[s][:, :3], axis=0),
                                                                                 axis=1))))
            pose = by_side[side_hint]
            position = _smooth(pose[:, :3], t, SMOOTH_S)
            turn = np.zeros(len(t))
            turn[1:] = _quat_angle(pose[1:, 3:7], pose[:-1, 3:7]) / np.maximum(np.diff(t), 1e-6)
            speed = _speed(position, t) + LEVER_M * _smooth(turn, t, SMOOTH_S / 4)
            return Hand(t, position, pose[:, 3:7], speed, side_hint)
    data = _stream(reader, "joints", ["position"])
    if data is None or len(data[0]) < 4:
        return None
    t, (q,) = data
    names = list(reader.streams["joints"].attrs.get("joint_names") or [])
    arm = [i for i, n in enumerate(names) if not _is_gripper_joint(n)] or list(range(q.shape[1]))
    # Joint speed through a ~0.3 m arm: comparable thresholds to the hand's speed in m/s.
    return Hand(t, None, None, 0.3 * _speed(_smooth(q[:, arm], t, SMOOTH_S), t))


HAND_JOINT_WORDS = ("finger", "gripper", "thumb", "index", "middle", "ring", "little", "pinky")


def _is_gripper_joint(name: str) -> bool:
    """A gripper's or a multi-finger hand's joint, by the names robots give them."""
    return any(word in name for word in HAND_JOINT_WORDS)


@dataclass
class Grip:
    closed: List[float]  # instants the gripper started closing
    closed_done: List[float]  # ... and reached closed
    opened: List[float]  # instants it started opening
    opened_done: List[float]
    side: str = ""


def _joint_positions(reader):
    """(stream, stamps, positions, joint names) of the command (else the measured joints), or None."""
    for name in ("command", "joints"):
        data = _stream(reader, name, ["position"])
        if data is not None and len(data[0]) >= 2:
            return name, data[0], data[1][0], list(reader.streams[name].attrs.get("joint_names") or [])
    return None


def _grip(joints) -> Grip:
    """Gripper events from the finger joints' positions (the joint that moves most)."""
    if joints is None:
        return Grip([], [], [], [])
    _, t, q, names = joints
    fingers = [i for i, n in enumerate(names) if _is_gripper_joint(n)]
    if not fingers:
        return Grip([], [], [], [])
    span = np.ptp(q[:, fingers], axis=0)
    k = int(np.argmax(span))
    if span[k] < 1e-4:
        return Grip([], [], [], [])
    joint = fingers[k]
    closure = np.abs(q[:, joint] - q[0, joint]) / span[k]
    side = "left" if "left" in names[joint] else "right" if "right" in names[joint] else ""
    return Grip(*_transitions(t, closure), side=side)


def _transitions(t: np.ndarray, x: np.ndarray):
    """Rising and falling half-way crossings of x in [0, 1], each with where it left rest and reached rest."""
    idx = np.arange(len(x))
    above = x >= 0.5
    cross = np.flatnonzero(above[1:] != above[:-1]) + 1
    last_low = np.maximum.accumulate(np.where(x <= GRIP_LOW, idx, 0))
    last_high = np.maximum.accumulate(np.where(x >= GRIP_HIGH, idx, 0))
    next_low = np.minimum.accumulate(np.where(x <= GRIP_LOW, idx, len(x) - 1)[::-1])[::-1]
    next_high = np.minimum.accumulate(np.where(x >= GRIP_HIGH, idx, len(x) - 1)[::-1])[::-1]
    rising = cross[above[cross]]
    falling = cross[~above[cross]]
    return ([float(t[last_low[i]]) for i in rising], [float(t[next_high[i]]) for i in rising],
            [float(t[last_high[i]]) for i in falling], [float(t[next_low[i]]) for i in falling])


# -- strokes -----------------------------------------------------------------------------------------

def _strokes(hand: Hand, grasp_t: Optional[float]) -> List[Stroke]:
    t, v = hand.t, hand.speed
    pieces = [(a, b, a + int(np.argmax(v[a:b])), split_start, split_end) for a, b, split_start, split_end in _pieces(v)]
    pieces = [p for p in pieces if v[p[2]] >= MIN_PEAK_M_S]  # slower "strokes" are noise
    if not pieces:
        return []
    a, b, peak, split_start, split_end = (np.asarray(column) for column in zip(*pieces))
    starts = np.where(split_start, t[a], _flank_onsets(t, v, peak, -1))
    ends = np.where(split_end, t[b - 1], _flank_onsets(t, v, peak, +1))
    peaks = t[peak]
    i1 = np.minimum(np.searchsorted(t, ends), len(t) - 1)
    i0 = np.minimum(np.searchsorted(t, starts), i1)
    displacement = (hand.position[i1] - hand.position[i0]) if hand.position is not None else np.zeros((len(i0), 3))
    rotation = tilt_change = tilt = np.zeros(len(i0))
    if hand.orientation is not None:
        g = int(np.searchsorted(t, grasp_t)) if grasp_t is not None else 0
        reference = hand.orientation[min(g, len(t) - 1)][None, :]
        q0, q1 = hand.orientation[i0], hand.orientation[i1]
        rotation = _quat_angle(q0, q1)
        tilt = _quat_angle(q1, reference)
        tilt_change = tilt - _quat_angle(q0, reference)
    return [Stroke(float(starts[k]), float(ends[k]), float(peaks[k]), displacement[k], float(rotation[k]),
                   float(tilt_change[k]), float(tilt[k])) for k in range(len(peak))]


def _pieces(v: np.ndarray):
    """Runs of motion cut at dips well below both neighbouring peaks: [(a, b, starts_at_dip, ends_at_dip)].

    Vectorized over the whole episode: each sample's peak so far in its run (and still to come) comes
    from one running maximum, offset per run so that runs do not see each other's peaks."""
    moving = v > STROKE_ON_M_S
    edges = np.diff(moving.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # runs [a, b)
    if len(starts) == 0:
        return []
    run = np.cumsum(edges[:-1] == 1)  # 1-based id of the run each sample is in (or follows)
    big = float(v.max()) + 1.0
    before = np.maximum.accumulate(np.where(moving, v, 0.0) + run * big) - run * big
    later = len(starts) + 1 - run
    after = (np.maximum.accumulate((np.where(moving, v, 0.0) + later * big)[::-1]) - (later * big)[::-1])[::-1]
    dip = np.zeros(len(v), bool)
    dip[1:-1] = (v[1:-1] <= v[:-2]) & (v[1:-1] < v[2:]) & moving[:-2] & moving[1:-1] & moving[2:]
    dip &= v < SPLIT_DIP * np.minimum(before, after)
    cuts = np.flatnonzero(dip)
    pieces = []
    for a, b in zip(starts, stops):
        bounds = [a]
        for m in cuts[(cuts > a) & (cuts < b)]:
            # Two dips with nothing between them worth a stroke are one dip: keep the first.
            if v[bounds[-1]:m].max() * SPLIT_DIP > v[m]:
                bounds.append(int(m))
        bounds.append(b)
        pieces += [(bounds[i], bounds[i + 1], i > 0, i < len(bounds) - 2) for i in range(len(bounds) - 1)]
    return pieces


def _flank_onsets(t: np.ndarray, v: np.ndarray, peaks: np.ndarray, direction: int) -> np.ndarray:
    """Where strokes started (direction -1) or ended (+1), extrapolated from their flanks' shape: all
    strokes at once, each looking at most FLANK_MAX_S from its peak."""
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    width = max(2, int(FLANK_MAX_S / max(dt, 1e-6)))
    index = np.clip(peaks[:, None] + direction * np.arange(width)[None, :], 0, len(t) - 1)
    flank_t, flank_v = t[index], v[index]
    top = v[peaks][:, None]
    t_half, t_90 = _crossings(flank_t, flank_v, 0.5 * top), _crossings(flank_t, flank_v, 0.9 * top)
    onset = t_half + direction * ONSET_FACTOR * np.abs(t_half - t_90)
    return np.where(np.isfinite(onset), onset, flank_t[:, -1])


def _crossings(t: np.ndarray, v: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row: the first time v (walking away from the peak) falls below level, interpolated (NaN: never)."""
    below = v < level
    i = np.argmax(below, axis=1)
    rows = np.arange(len(v))
    prev = np.maximum(i - 1, 0)
    v0, v1 = v[rows, prev], v[rows, i]
    frac = np.clip((v0 - level[:, 0]) / np.maximum(v0 - v1, 1e-12), 0.0, 1.0)
    out = t[rows, prev] + frac * (t[rows, i] - t[rows, prev])
    return np.where(below[rows, i], out, np.nan)


# -- naming ------------------------------------------------------------------------------------------

def _first(values: Sequence[float], after: float = -math.inf, before: float = math.inf) -> Optional[float]:
    for value in values:
        if after <= value < before:
            return value
    return None


def _segments(bounds: Sequence[Tuple[str, Optional[float]]], end_t: float, skills: Sequence[str]) -> List[Subtask]:
    """[(skill, start)] in order -> subtasks, each ending where the next known one starts."""
    known = [(name, start) for name, start in bounds if start is not None and name in skills]
    out = []
    for i, (name, start) in enumerate(known):
        end = known[i + 1][1] if i + 1 < len(known) else end_t
        if end > start:
            out.append(Subtask(name, float(start), float(end)))
    return out


def _pick_place(strokes: List[Stroke], grip: Grip, end_t: float, skills: Sequence[str]):
    close = _first(grip.closed)
    if close is None:  # nothing was grasped: no skill can be told apart
        return []
    close_done = _first(grip.closed_done, after=close)
    open_t = _first(grip.opened, after=close)
    open_done = _first(grip.opened_done, after=open_t) if open_t is not None else None
    reach = _first([s.start_t for s in strokes], before=close)
    held_from = close_done if close_done is not None else close
    carrying = [s for s in strokes if held_from <= s.peak_t < (open_t if open_t is not None else math.inf)]
    lift = place = move = None
    if carrying:
        ups = _leading(carrying, lambda s: s.displacement[2] > 0.7 * np.linalg.norm(s.displacement[:2]))
        downs = _leading(carrying[len(ups):][::-1],
                         lambda s: -s.displacement[2] > 0.7 * np.linalg.norm(s.displacement[:2]))
        if open_t is None and len(downs) == len(carrying) - len(ups):
            downs = []  # still carrying when the take ended: nothing was set down
        lift = carrying[0].start_t
        middle = carrying[max(len(ups), 1): len(carrying) - len(downs)]
        move = middle[0].start_t if middle else None
        if downs:
            place = downs[-1].start_t
    after_release = _first([s.start_t for s in strokes], after=open_done) if open_done is not None else None
    bounds = [("reach", reach), ("grasp", close), ("lift", lift), ("move", move), ("place", place),
              ("release", open_t)]
    if after_release is not None:
        bounds.append(("", after_release))
    return [s for s in _segments(bounds, end_t, list(skills) + [""]) if s.name]


def _leading(strokes: Sequence[Stroke], test) -> List[Stroke]:
    out = []
    for s in strokes:
        if not test(s):
            break
        out.append(s)
    return out


def _pour(strokes: List[Stroke], grip: Grip, end_t: float, skills: Sequence[str]):
    close = _first(grip.closed)
    if close is None:  # nothing was grasped: no skill can be told apart
        return []
    first = strokes[0].start_t if strokes else None
    close_done = _first(grip.closed_done, after=close)
    close_done = close if close_done is None else close_done
    open_t = _first(grip.opened, after=close)
    open_done = _first(grip.opened_done, after=open_t) if open_t is not None else None
    grasp = _first([s.start_t for s in strokes], before=close)
    carrying = [s for s in strokes if close_done <= s.peak_t < (open_t if open_t is not None else math.inf)]
    lift = carrying[0].start_t if carrying else None
    turns = [i for i, s in enumerate(carrying) if LEVER_M * s.rotation > np.linalg.norm(s.displacement)]
    tilt = pour = back = None
    if turns:
        tilt = carrying[turns[0]].start_t
        # Tipping back: the first turn that undoes a third of the deepest tilt or more (a shake undoes less).
        deepest = max(s.tilt for s in carrying)
        back_index = next((i for i in turns[1:] if carrying[i].tilt_change < -deepest / 3), None)
        following = [i for i in turns[1:] if back_index is None or i < back_index]
        pour = carrying[following[0]].start_t if following else carrying[turns[0]].end_t
        if back_index is not None:
            back = carrying[back_index].start_t
    after_release = _first([s.start_t for s in strokes], after=open_done) if open_done is not None else None
    bounds = [("grasp", grasp if grasp is not None else first), ("lift", lift), ("tilt", tilt), ("pour", pour),
              ("return", back if back is not None else open_t)]
    if after_release is not None:
        bounds.append(("", after_release))
    return [s for s in _segments(bounds, end_t, list(skills) + [""]) if s.name]


# -- idle --------------------------------------------------------------------------------------------

def _idle(reader, joints) -> List[Tuple[float, float]]:
    """Stretches longer than IDLE_MIN_S where no joint is commanded to move and no recorded object moves."""
    if joints is None or len(joints[1]) < 8:
        return []
    _, t, q, _ = joints
    t, q = _blocks(t, q, IDLE_STEP_S)
    if len(t) < 3:
        return []
    still = np.max(np.abs(np.gradient(q, t, axis=0)), axis=1) < IDLE_JOINT_RAD_S
    for name in reader.streams:
        if not name.startswith("pose_objects_"):
            continue
        obj = _stream(reader, name, ["pose"])
        if obj is None or len(obj[0]) < 8:
            continue
        ot, pose = _blocks(obj[0], obj[1][0][:, :3], IDLE_STEP_S)
        if len(ot) < 3:
            continue
        moving = (_speed(pose, ot) > IDLE_OBJECT_M_S).astype(float)
        still &= np.interp(t, ot, moving) < 0.5
    edges = np.diff(still.astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, ends) if t[b] - t[a] > IDLE_MIN_S]


def _blocks(t: np.ndarray, x: np.ndarray, step_s: float):
    """Means over consecutive blocks of about step_s: a cheap low-pass and a smaller array."""
    dt = float(np.median(np.diff(t))) if len(t) > 1 else step_s
    k = max(1, int(round(step_s / max(dt, 1e-6))))
    n = (len(t) // k) * k
    if n == 0:
        return t[:0], x[:0]
    return t[:n].reshape(-1, k).mean(axis=1), x[:n].reshape((-1, k) + x.shape[1:]).mean(axis=1)


# -- the API -----------------------------------------------------------------------------------------

def suggest(episode, skills: Optional[Sequence[str]] = None) -> Suggestions:
    """Suggested subtasks (names from the task's skills) and idle stretches of one episode.

    episode: a path or an open EpisodeReader. skills: default the task's from configs/review.yaml."""
    with _open(episode) as reader:
        task = str(reader.metadata.get("task", ""))
        if skills is None:
            skills = _skills(task)
        end_t = _end_time(reader)
        joints = _joint_positions(reader)
        grip = _grip(joints)
        hand = _hand(reader, grip.side or None)
        grasped = _first(grip.closed_done)
        grasped = _first(grip.closed) if grasped is None else grasped
        strokes = _strokes(hand, grasped) if hand is not None else []
        if task == "pour" or "tilt" in skills:
            subtasks = _pour(strokes, grip, end_t, skills)
        else:
            subtasks = _pick_place(strokes, grip, end_t, skills)
        idle = _idle(reader, joints)
    events = {"gripper_closed": grip.closed, "gripper_opened": grip.opened,
              "stroke_starts": [round(s.start_t, 4) for s in strokes]}
    return Suggestions(task, subtasks, idle, end_t, events)


def _skills(task: str) -> List[str]:
    """The task's skills from configs/review.yaml, read again only when the file changes."""
    from collector.paths import configs_dir

    path = configs_dir() / "review.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return list(_skills_cached(task, stamp))


@functools.lru_cache(maxsize=32)
def _skills_cached(task: str, stamp) -> tuple:
    from collector.review.config import review_config

    return tuple(review_config(task).skills)


def _end_time(reader) -> float:
    if reader.has_aligned_view:
        stamps = reader.timestamps
        if len(stamps):
            return float(stamps[-1])
    ends = [float(reader.stamps(name)[-1]) for name in reader.streams if reader.count(name)]
    return max(ends, default=0.0)


def boundary_errors(suggested: Sequence[Subtask], truth: Sequence[Subtask],
                    until: Optional[float] = None) -> np.ndarray:
    """Seconds from each true boundary to the nearest suggested boundary of the same skill (NaN: none).

    The true boundaries are every subtask's start, and its end where no other subtask starts (a gap);
    an end at or after `until` (the episode's end, a subtask the take was cut in) is no boundary."""
    starts = {}
    ends = {}
    for s in suggested:
        starts.setdefault(s.name, []).append(s.start_t)
        ends.setdefault(s.name, []).append(s.end_t)
    true_starts = [s.start_t for s in truth]
    errors = []
    for s in truth:
        errors.append(_nearest(starts.get(s.name), s.start_t))
        followed = any(abs(s.end_t - t) < 1e-6 for t in true_starts)
        if not followed and (until is None or s.end_t < until - 1e-6):
            errors.append(_nearest(ends.get(s.name), s.end_t))
    return np.asarray(errors, dtype=float)


def _nearest(candidates: Optional[List[float]], t: float) -> float:
    if not candidates:
        return math.nan
    return float(np.min(np.abs(np.asarray(candidates) - t)))
