"""Episodes in the Rerun viewer (`collector view`), and the entity layout the live display shares.

One episode is one Rerun recording (application `collector`, recording id = the episode id), on one
timeline `time`: the recorded stamps in seconds (a duration from the episode's clock origin; stamps
that are seconds since the epoch, as ROS recordings may hold, become a timestamp timeline).

    cameras/<camera>                    EncodedImage: the recorded JPEG bytes as they are
    joints/<limb>/<joint>/measured      Scalars (the unit, rad or m, in the series name)
    joints/<limb>/<joint>/commanded     Scalars
    world/objects/<object>              Transform3D (+ axes): each task object's recorded pose
    world/ee_target/<side>              Transform3D (+ axes): the end-effector pose IK was asked to reach
    world/poses/<name>                  Transform3D: any other recorded pose stream
    status/control, status/safety       StateChange: who commanded, the safety gate's state
    sensors/illuminance                 Scalars (lux)
    annotations/subtask                 StateChange: the reviewers' subtask segments
    episode, annotations/review         TextDocument: metadata, conditions, review labels
and the recording's properties `episode`, `conditions` and `review` (the viewer's recording panel).

The episode records the end-effector *targets* (ik_target), not measured end-effector poses: the
measured side is in the joints. Limbs and units are the robot's joint groups and MJCF joint types
(collector/robot/joint_groups.py, as `collector plot` draws them) when the robot is installed here,
else guessed from the joint names (left_/right_ arm or hand, waist, head; fingers in m).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from collector.errors import CollectorError, DataError
from collector.recorder import vocabulary
from collector.recorder.streams import StreamSpec

APPLICATION_ID = "collector"
TIMELINE = "time"
EPOCH_STAMPS_S = 1e8  # stamps above this are seconds since the epoch (ROS clocks), not since the episode start
AXIS_LENGTH_M = 0.06
FRAME_BATCH = 256  # camera frames per logging call
VIEWER_PORT = 9876  # rerun's default: a viewer already running there is reused
VIEWER_FLUSH_TIMEOUT_S = 120.0
GRIPPER_WORDS = ("finger", "gripper", "hand", "thumb")


def rerun():
    """The rerun module, or a one-line error naming the extra that installs it."""
    try:
        import rerun as rr
    except ImportError as exc:
        raise DataError(f"the Rerun viewer needs rerun-sdk (pip install -e '.[view]'): {exc}") from exc
    return rr


# -- names -----------------------------------------------------------------------------------------

def camera_entity(camera: str) -> str:
    return f"cameras/{camera}"


def joint_entity(limb: str, joint: str, which: str) -> str:
    """which: measured | commanded."""
    return f"joints/{limb}/{joint}/{which}"


def guess_limb(joint: str) -> Tuple[str, str]:
    """(limb, unit) from a joint's name alone, for a robot not described here: left_elbow -> left_arm
    (rad), right_finger_a -> right_hand (m: gripper fingers slide), waist_yaw -> waist (rad)."""
    name = joint.lower()
    gripper = any(w in name for w in GRIPPER_WORDS)
    unit = "m" if gripper else "rad"
    for side in ("left", "right"):
        if name.startswith(side) or side in name.split("_"):
            return f"{side}_{'hand' if gripper else 'arm'}", unit
    return name.split("_")[0] or "joints", unit


def joint_layout(joint_names: Sequence[str], robot: Optional[str] = None) -> Dict[str, Tuple[str, str]]:
    """joint -> (limb, unit): the robot's joint groups and MJCF joint types when the robot is known here
    (collector/robot/joint_groups.py), else guessed from the names, so any recorded file can be viewed."""
    layout = {}
    if robot:
        try:
            from collector.robot.joint_groups import OTHER_GROUP, robot_joint_groups

            for group in robot_joint_groups(robot, list(joint_names)):
                if group.name != OTHER_GROUP:
                    layout.update({joint: (group.name.replace(" ", "_"), group.unit) for joint in group.joints})
        except (ImportError, CollectorError):
            layout = {}
    return {joint: layout.get(joint) or guess_limb(joint) for joint in joint_names}


# -- time ------------------------------------------------------------------------------------------

def time_column(rr, t: np.ndarray, epoch: bool):
    """The recorded stamps, to the nanosecond (rerun's own float path truncates)."""
    nanos = np.round(np.asarray(t, np.float64) * 1e9).astype(np.int64)
    if epoch:
        return rr.TimeColumn(TIMELINE, timestamp=nanos.astype("datetime64[ns]"))
    return rr.TimeColumn(TIMELINE, duration=nanos.astype("timedelta64[ns]"))


def set_time(rec, t: float, epoch: bool) -> None:
    nanos = int(round(float(t) * 1e9))
    if epoch:
        rec.set_time(TIMELINE, timestamp=np.datetime64(nanos, "ns"))
    else:
        rec.set_time(TIMELINE, duration=np.timedelta64(nanos, "ns"))


# -- streams -> entities ---------------------------------------------------------------------------

class StreamLogger:
    """Logs batches of one recorded stream (stamps + field arrays) to a recording, in the layout above.

    The offline viewer hands it whole streams read from the file; the live display hands it the
    samples its thread drained since the last batch. Camera batches carry `jpeg` (encoded bytes per
    frame) or `image` (pixels); other streams carry their recorded fields."""

    def __init__(self, rec, specs: Iterable[StreamSpec], robot: Optional[str] = None, epoch: bool = False):
        self.rr = rerun()
        self.rec = rec
        self.specs: Dict[str, StreamSpec] = {s.name: s for s in specs}
        self.epoch = epoch
        self.limbs: Dict[str, Dict[str, Tuple[str, str]]] = {}  # stream -> joint -> (limb, unit)
        for name in (vocabulary.JOINTS, vocabulary.COMMAND):
            spec = self.specs.get(name)
            if spec is not None:
                self.limbs[name] = joint_layout(self.joint_names(spec), robot)

    # -- what the layout will hold (for the blueprint and the static series names) -----------------
    @staticmethod
    def joint_names(spec: StreamSpec) -> List[str]:
        names = list(spec.attrs.get("joint_names") or [])
        field = spec.fields.get("position")
        width = int(field.shape[0]) if field is not None and field.shape else 1
        return names if len(names) == width else [f"joint_{i}" for i in range(width)]

    @property
    def cameras(self) -> List[str]:
        return sorted(s.camera_name for s in self.specs.values() if s.is_camera)

    @property
    def limb_names(self) -> List[str]:
        seen: List[str] = []
        for limbs in self.limbs.values():
            seen.extend(limb for limb, _ in limbs.values() if limb not in seen)
        return seen

    @property
    def has_world(self) -> bool:
        return any(self._pose_entity(name) for name in self.specs)

    def declare(self) -> None:
        """Static parts: series names with units, axes on every pose, state names. Once per recording."""
        rr = self.rr
        which_of = {vocabulary.JOINTS: "measured", vocabulary.COMMAND: "commanded"}
        for stream, limbs in self.limbs.items():
            for joint, (limb, unit) in limbs.items():
                which = which_of[stream]
                label = f"{joint} {which}" + (f" ({unit})" if unit else "")
                self.rec.log(joint_entity(limb, joint, which), rr.SeriesLines(names=label), static=True)
        for name in self.specs:
            entity = self._pose_entity(name)
            if entity and name == vocabulary.IK_TARGET:
                for side in self.specs[name].attrs.get("sides") or []:
                    self.rec.log(f"{entity}/{side}", rr.TransformAxes3D(AXIS_LENGTH_M), static=True)
            elif entity:
                self.rec.log(entity, rr.TransformAxes3D(AXIS_LENGTH_M), static=True)
        if vocabulary.ILLUMINANCE in self.specs:
            self.rec.log("sensors/illuminance", rr.SeriesLines(names="illuminance (lux)"), static=True)

    @staticmethod
    def _pose_entity(stream: str) -> Optional[str]:
        if stream == vocabulary.IK_TARGET:
            return "world/ee_target"
        obj = vocabulary.object_of_pose_stream(stream)
        if obj is not None:
            return f"world/objects/{obj}"
        if stream.startswith(vocabulary.POSE_PREFIX):
            return f"world/poses/{stream[len(vocabulary.POSE_PREFIX):]}"
        return None

    # -- batches -------------------------------------------------------------------------------------
    def shows(self, stream: str) -> bool:
        """Whether `stream` has a place in the layout (input and sim_state have none)."""
        spec = self.specs.get(stream)
        return spec is not None and (spec.is_camera or stream in self.limbs or bool(self._pose_entity(stream))
                                     or stream in (vocabulary.CONTROL, vocabulary.SAFETY, vocabulary.ILLUMINANCE))

    def log(self, stream: str, t: np.ndarray, fields: Mapping[str, object]) -> int:
        """Log one batch of `stream`; returns how many samples were logged (0: a stream not shown)."""
        spec = self.specs.get(stream)
        t = np.asarray(t, np.float64).reshape(-1)
        if spec is None or t.size == 0:
            return 0
        if spec.is_camera:
            return self._camera(spec.camera_name, t, fields)
        if stream in self.limbs:
            return self._joints(stream, t, fields)
        if self._pose_entity(stream):
            return self._poses(stream, t, fields)
        if stream in (vocabulary.CONTROL, vocabulary.SAFETY):
            return self._states(spec, t, fields)
        if stream == vocabulary.ILLUMINANCE:
            self._send("sensors/illuminance", indexes=[self._time(t)],
                       columns=self.rr.Scalars.columns(scalars=np.asarray(fields["value"], np.float64)))
            return t.size
        return 0

    def _send(self, entity: str, indexes, columns) -> None:
        self.rec.send_columns(entity, indexes=indexes, columns=columns)

    def _time(self, t: np.ndarray):
        return time_column(self.rr, t, self.epoch)

    def _camera(self, camera: str, t: np.ndarray, fields: Mapping[str, object]) -> int:
        rr = self.rr
        entity = camera_entity(camera)
        if "jpeg" in fields:
            blobs = [bytes(b) for b in fields["jpeg"]]
            self._send(entity, indexes=[self._time(t)],
                                  columns=rr.EncodedImage.columns(blob=blobs, media_type=["image/jpeg"] * len(blobs)))
            return len(blobs)
        images = np.asarray(fields["image"])
        for stamp, image in zip(t, images):  # pixels: one frame per call (no column form for raw images)
            set_time(self.rec, stamp, self.epoch)
            self.rec.log(entity, rr.Image(image, color_model="RGB"))
        return len(images)

    def _joints(self, stream: str, t: np.ndarray, fields: Mapping[str, object]) -> int:
        position = np.asarray(fields["position"], np.float64).reshape(t.size, -1)
        which = "measured" if stream == vocabulary.JOINTS else "commanded"
        index = self._time(t)
        for column, (joint, (limb, _)) in enumerate(self.limbs[stream].items()):
            if column >= position.shape[1]:
                break
            self._send(joint_entity(limb, joint, which), indexes=[index],
                                  columns=self.rr.Scalars.columns(scalars=position[:, column]))
        return t.size

    def _poses(self, stream: str, t: np.ndarray, fields: Mapping[str, object]) -> int:
        entity = self._pose_entity(stream)
        if stream == vocabulary.IK_TARGET:
            for side in self.specs[stream].attrs.get("sides") or []:
                if side in fields:
                    self._send_poses(f"{entity}/{side}", t, fields[side])
        else:
            self._send_poses(entity, t, fields["pose"])
        return t.size

    def _send_poses(self, entity: str, t: np.ndarray, poses) -> None:
        poses = np.asarray(poses, np.float64).reshape(t.size, 7)  # x y z qw qx qy qz
        xyzw = np.concatenate([poses[:, 4:7], poses[:, 3:4]], axis=1)  # rerun's quaternion order
        self._send(entity, indexes=[self._time(t)],
                              columns=self.rr.Transform3D.columns(translation=poses[:, :3], quaternion=xyzw))

    def _states(self, spec: StreamSpec, t: np.ndarray, fields: Mapping[str, object]) -> int:
        key, table = ("source", "sources") if spec.name == vocabulary.CONTROL else ("state", "states")
        names = {int(code): str(name) for name, code in (spec.attrs.get(table) or {}).items()}
        codes = np.asarray(fields[key]).reshape(-1).astype(np.int64)
        changes = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])  # a state lane needs only its changes
        labels = [names.get(int(codes[i]), str(int(codes[i]))) for i in changes]
        self._send(f"status/{spec.name}", indexes=[self._time(t[changes])],
                              columns=self.rr.StateChange.columns(state=labels))
        return t.size


def blueprint(logger: StreamLogger):
    """Cameras in a grid, one time-series panel per limb, the 3D world, the state lanes."""
    import rerun.blueprint as rrb

    cameras = [rrb.Spatial2DView(origin=camera_entity(c), name=c) for c in logger.cameras]
    limbs = [rrb.TimeSeriesView(origin=f"joints/{limb}", name=limb) for limb in logger.limb_names]
    left = [rrb.Grid(*cameras)] if cameras else []
    if logger.has_world:
        left.append(rrb.Spatial3DView(origin="world", name="world"))
    left.append(rrb.StateTimelineView(origin="/", name="control, safety, subtasks"))
    right = limbs or [rrb.TextDocumentView(origin="episode", name="episode")]
    return rrb.Blueprint(rrb.Horizontal(rrb.Vertical(*left), rrb.Vertical(*right), column_shares=[3, 2]),
                         collapse_panels=False)


# -- one episode file ------------------------------------------------------------------------------

def log_episode(rec, path, true_colors: bool = False) -> Dict[str, int]:
    """Log a whole episode file to `rec`; returns samples logged per stream."""
    from collector.recorder import EpisodeReader

    rr = rerun()
    counts: Dict[str, int] = {}
    with EpisodeReader(path) as reader:
        metadata = reader.metadata
        streams = reader.streams
        epoch = _epoch_clock(reader, streams)
        logger = StreamLogger(rec, streams.values(), robot=metadata.get("robot"), epoch=epoch)
        rec.send_blueprint(blueprint(logger), make_active=True)
        _log_metadata(rr, rec, metadata)
        logger.declare()
        for name, spec in streams.items():
            if not logger.shows(name):
                continue
            t = reader.stamps(name)
            if spec.is_camera:
                logged = sum(logger.log(name, t[a:b], fields)
                             for a, b, fields in _camera_batches(reader, spec, true_colors))
            else:
                logged = logger.log(name, t, {f: reader.raw(name, f)[: t.size] for f in spec.fields})
            if logged:
                counts[name] = logged
    _log_review(rr, rec, path, epoch)
    return counts


def _epoch_clock(reader, streams) -> bool:
    firsts = [reader.stamps(n)[:1] for n in streams if reader.count(n)]
    return bool(firsts) and float(np.min(np.concatenate(firsts))) > EPOCH_STAMPS_S


def _camera_batches(reader, spec: StreamSpec, true_colors: bool):
    """(first, end, fields) per block of FRAME_BATCH frames: a long take's frames never sit in memory
    all at once (a 10-minute take of four cameras holds about a gigabyte of JPEG)."""
    frames = reader.images(spec.camera_name)
    for start in range(0, len(frames), FRAME_BATCH):
        end = min(start + FRAME_BATCH, len(frames))
        if not frames.is_jpeg:
            yield start, end, {"image": frames[start:end]}
        elif true_colors:
            # The recorded JPEGs follow ALOHA's convention (RGB handed to an encoder that expects BGR), so
            # any standard decoder, Rerun's included, swaps red and blue; this re-encodes each frame.
            from collector.episodes.topics import viewer_jpeg

            yield start, end, {"jpeg": [viewer_jpeg(frames[i], spec.jpeg_quality) for i in range(start, end)]}
        else:
            yield start, end, {"jpeg": [frames.encoded(i) for i in range(start, end)]}


def _log_metadata(rr, rec, metadata: dict) -> None:
    conditions = metadata.get("conditions") if isinstance(metadata.get("conditions"), dict) else {}
    facts = {k: metadata[k] for k in ("episode_id", "task", "instruction", "outcome", "operator", "station",
                                      "robot", "session_id", "started_at", "duration_s", "status", "qa")
             if k in metadata}
    rec.send_recording_name(" ".join(str(facts[k]) for k in ("episode_id", "task", "outcome") if k in facts))
    rec.send_property("episode", rr.AnyValues(**_flat(facts)))
    if conditions:
        rec.send_property("conditions", rr.AnyValues(**_flat(conditions)))
    lines = [f"# {facts.get('episode_id', 'episode')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += ["", "## conditions", ""]
    lines += [f"- **{k}**: `{json.dumps(v, sort_keys=True)}`" for k, v in conditions.items()]
    rec.log("episode", rr.TextDocument("\n".join(lines), media_type="text/markdown"), static=True)


def _flat(values: dict) -> dict:
    """Property values rerun can show: numbers and text as they are, anything nested as JSON."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, (bool, int, float, str)) and value is not None:
            flat[str(key)] = value
        else:
            flat[str(key)] = json.dumps(value, sort_keys=True, default=str)
    return flat


def _log_review(rr, rec, path, epoch: bool) -> None:
    try:
        from collector.review.annotations import read_review
    except ImportError:  # the annotation store is not installed in this tree: nothing to show
        return
    review = read_review(path)
    if not review:
        return
    latest = review.latest()
    rec.send_property("review", rr.AnyValues(**_flat({
        "verdict": review.verdict, "reviewers": sorted(latest), "instructions": list(review.instructions),
        "subtasks": [[s.name, s.start_t, s.end_t] for s in review.subtasks]})))
    lines = [f"# review: {review.verdict}", ""]
    for reviewer, labels in sorted(latest.items()):
        reasons = f" ({', '.join(labels.reasons)})" if labels.reasons else ""
        lines.append(f"- **{reviewer}**: {labels.verdict or 'undecided'}{reasons}"
                     f"{'; outcome ' + labels.outcome if labels.outcome else ''}"
                     f"{'; ' + labels.notes if labels.notes else ''}")
    if review.instructions:
        lines += ["", "## instructions", ""] + [f"- {text}" for text in review.instructions]
    rec.log("annotations/review", rr.TextDocument("\n".join(lines), media_type="text/markdown"), static=True)
    segments = sorted(review.subtasks, key=lambda s: s.start_t)
    for segment in segments:  # each segment starts its state; the lane is cleared where it ends
        set_time(rec, segment.start_t, epoch)
        rec.log("annotations/subtask", rr.StateChange(state=segment.name))
        set_time(rec, segment.end_t, epoch)
        if not any(other.start_t == segment.end_t for other in segments):
            rec.log("annotations/subtask", rr.StateChange(state=""))  # "" ends the lane
    rec.reset_time()


# -- episodes of a file, folder or dataset -> viewer or .rrd -------------------------------------

def episode_paths(source, episodes: Sequence[str] = ()) -> List[Tuple[str, Path]]:
    """(episode id, file) for one episode file, a folder of them or a dataset folder; `episodes` keeps only
    those whose catalogue number or id is listed."""
    from collector.dataset.selection import select_episodes

    refs = select_episodes(source)
    if episodes:
        wanted = {str(e) for e in episodes}
        picked = [r for r in refs if r.episode_id in wanted or (r.index is not None and str(r.index) in wanted)
                  or _number_of(r.episode_id) in wanted]
        if not picked:
            known = ", ".join(r.episode_id if r.index is None else f"{r.index} ({r.episode_id})" for r in refs)
            raise DataError(f"{source}: no episode {', '.join(sorted(wanted))} (episodes: {known})")
        refs = picked
    return [(r.episode_id, r.path) for r in refs]


def _number_of(episode_id: str) -> str:
    digits = episode_id.rsplit("_", 1)[-1]
    return str(int(digits)) if digits.isdigit() else episode_id


def new_recording(episode_id: str):
    rr = rerun()
    return rr.RecordingStream(APPLICATION_ID, recording_id=episode_id, send_properties=True)


def save_rrd(items: Sequence[Tuple[str, Path]], out: Path, true_colors: bool = False,
             progress: Optional[Callable[[str, Dict[str, int]], None]] = None) -> Path:
    """Write each episode as its own recording into one .rrd file (atomically: a failure leaves no file)."""
    out = Path(out)
    if out.suffix != ".rrd":
        raise DataError(f"--save {out}: the recording file must end in .rrd")
    if not out.parent.is_dir():
        raise DataError(f"--save {out}: folder {out.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix=".view-", dir=out.parent) as tmp:
        parts = []
        for episode_id, path in items:
            part = Path(tmp) / f"{len(parts):06d}.rrd"
            rec = new_recording(episode_id)
            rec.save(part)
            counts = log_episode(rec, path, true_colors)
            rec.flush()
            rec.disconnect()
            parts.append(part)
            if progress is not None:
                progress(episode_id, counts)
        staged = Path(tmp) / "all.rrd"
        if len(parts) == 1:
            os.replace(parts[0], staged)
        else:
            _merge_rrd(parts, staged)
        os.replace(staged, out)
    return out


def _merge_rrd(parts: Sequence[Path], out: Path) -> None:
    # Several recordings in one file: rerun's own `rrd merge` keeps each its own store (concatenating
    # the files would not: every file ends in its own footer).
    command = [sys.executable, "-m", "rerun_cli", "rrd", "merge", *map(str, parts), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"rerun rrd merge failed ({last})")


def stream_to_viewer(items: Sequence[Tuple[str, Path]], url: Optional[str] = None, true_colors: bool = False,
                     progress: Optional[Callable[[str, Dict[str, int]], None]] = None) -> None:
    """Stream each episode as its own recording to the viewer at `url` (rerun+http://host:port/proxy),
    or to a viewer started here (url None)."""
    if url:
        check_viewer_url(url)
    for number, (episode_id, path) in enumerate(items):
        rec = new_recording(episode_id)
        if url:
            rec.connect_grpc(url)
        elif number == 0:
            spawn(rec)  # starts the viewer once; the next recordings connect to it
        else:
            rec.connect_grpc()
        counts = log_episode(rec, path, true_colors)
        try:
            rec.flush(timeout_sec=VIEWER_FLUSH_TIMEOUT_S)
        except Exception as exc:  # the viewer was closed, or stopped reading
            raise DataError(f"the Rerun viewer did not take {episode_id} within {VIEWER_FLUSH_TIMEOUT_S:.0f} s "
                            f"({type(exc).__name__}); was it closed?") from exc
        if progress is not None:
            progress(episode_id, counts)


def check_viewer_url(url: str) -> None:
    """A one-line error now for a viewer URL nothing answers at (data sent there would wait forever)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not parts.scheme.startswith("rerun") or not host or not port:
        raise DataError(f"{url}: not a Rerun viewer URL (rerun+http://HOST:PORT/proxy)")
    try:
        socket.create_connection((host, port), timeout=3.0).close()
    except OSError as exc:
        raise DataError(f"{url}: no Rerun viewer answers there ({exc.strerror or exc})") from exc


def spawn(rec) -> None:
    """Start the Rerun viewer (the one rerun-sdk installs beside this Python, even when its bin folder
    is not on PATH, as when a venv's `collector` is run by its path) and connect `rec` to it."""
    rr = rerun()
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DataError("no display here for the Rerun viewer (DISPLAY and WAYLAND_DISPLAY are unset): write a "
                        "file instead (view: --save FILE.rrd; teleop/collect/session: --display FILE.rrd) and open "
                        "it with `rerun FILE.rrd` where there is a screen, or stream to a viewer running elsewhere "
                        "(view: --connect URL; --display URL)")
    beside = Path(sys.executable).parent / "rerun"
    executable = shutil.which("rerun") or (str(beside) if beside.is_file() else None)
    if executable is None:
        raise DataError("no Rerun viewer found (rerun-sdk installs one: pip install -e '.[view]'); "
                        "or write a file with --save and open it elsewhere")
    try:
        rr.spawn(recording=rec, executable_path=executable, port=VIEWER_PORT)
    except RuntimeError as exc:
        raise DataError(f"cannot start the Rerun viewer ({' '.join(str(exc).split())[:200]})") from exc
    try:  # rerun only warns when the viewer never came up; data sent to nobody would wait forever
        socket.create_connection(("127.0.0.1", VIEWER_PORT), timeout=2.0).close()
    except OSError as exc:
        raise DataError(f"the Rerun viewer did not start (nothing listens on port {VIEWER_PORT}: "
                        f"{exc.strerror or exc}); see its messages above") from exc
