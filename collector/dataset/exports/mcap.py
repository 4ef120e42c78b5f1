"""Export episodes to MCAP with ROS 2 (CDR) message encodings, which Foxglove opens as is.

One .mcap per episode: every raw sample of every stream at its recorded time, on the topics a ROS 2
replay would use (collector.episodes.topics), plus
- an MCAP metadata record "collector.episode": every root attribute of the episode (conditions
  JSON, task, operator, outcome, robot, ...) and the export's provenance;
- the same as JSON on /collector/episode (std_msgs/String) at the first timestamp, for viewers that
  show topics only;
- who commands the robot as a source id ("policy", "operator", ...) on /collector/control_source
  (std_msgs/String) at the first control tick and at every handover: a state topic, as Foxglove's
  State Transitions panel shows it; the per-tick code stays on /collector/control/source, and the
  metadata record's `control_sources` is the take's {source id: code} map;
- the hand streams of a robot with hands (hand_touch, grasp_force, hand_tracking, retarget_residual) on
  /collector/<stream>/<side or field> (std_msgs/Float64MultiArray), their entries named in the metadata
  record's `topic_entry_names` ({topic: [names]});
- for a reviewed episode, the reviewers' labels (collector/review) as an MCAP metadata record
  "collector.annotations" (verdict, reviewers, reasons, outcome override, instructions and subtasks as
  JSON, every saved record), the same JSON on /collector/annotations (std_msgs/String) at the first
  timestamp, and the subtask being done on /collector/subtask (std_msgs/String): its name at each
  segment's start, "" at an end no segment follows (a state topic, like the control source).
Times: the session clock is mapped onto wall-clock time with the episode's `started_at` (UTC) at its
first stamp, so Foxglove shows when the take happened; the offset is stored in the metadata
(`session_clock_offset_ns`) to get session-clock stamps back.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from collector.dataset.control import source_ids, source_name
from collector.dataset.exports.common import atomic_output, dumps, export_header, instructions_of, provenance
from collector.dataset.episode import AlignedEpisode
from collector.dataset.selection import EpisodeRef
from collector.episodes.ros2_msgdefs import msgdef
from collector.episodes.schedule import SampleSource, Schedule
from collector.episodes.topics import METADATA_TOPIC, NANOS, message_dict, routes_for
from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader
from collector.recorder.vocabulary import CONTROL

METADATA_NAME = "collector.episode"
ANNOTATIONS_NAME = "collector.annotations"
CONTROL_SOURCE_TOPIC = "/collector/control_source"
ANNOTATIONS_TOPIC = "/collector/annotations"
SUBTASK_TOPIC = "/collector/subtask"


def _writer_class():
    try:
        from mcap_ros2.writer import Writer
    except ImportError as exc:
        raise ConfigError("the MCAP export needs mcap and mcap-ros2-support: "
                          "pip install mcap mcap-ros2-support") from exc
    return Writer


def clock_offset_ns(metadata: Dict, t_first: float) -> int:
    """Add to a session-clock time (in ns) to get UTC epoch ns: started_at is the first stamp's wall time."""
    started = metadata.get("started_at")
    try:
        epoch = datetime.fromisoformat(str(started)).timestamp()
    except (TypeError, ValueError):
        epoch = 0.0  # no usable start time: keep session-clock times
    return int(round(epoch * NANOS)) - int(round(t_first * NANOS))


def export_episode_mcap(ref: EpisodeRef, out_path, streams: Optional[Sequence[str]] = None, jpeg_quality: int = 90,
                        ros_config=None, overwrite: bool = False, source: str = "", filters: str = "") -> Dict:
    """Write one episode's raw streams to `out_path`. Returns {"path", "messages", "topics"}."""
    Writer = _writer_class()
    out_path = Path(out_path)
    with EpisodeReader(ref.path) as reader, AlignedEpisode(ref.path) as episode:
        if reader.is_partial:
            raise DataError(f"{ref.path} is a partial episode; run `collector recover` on it first")
        metadata = reader.metadata
        routes = routes_for(reader.streams, ros_config, streams=streams)
        source_rows = SampleSource(reader)
        names = source_rows.streams_with_data(sorted({r.stream for r in routes}))
        if not names:
            raise DataError(f"{ref.path}: no recorded samples to export")
        schedule = Schedule(reader, names)
        offset = clock_offset_ns(metadata, schedule.t_first)
        record = provenance(ref, episode)
        by_stream: Dict[str, list] = {}
        for route in routes:
            by_stream.setdefault(route.stream, []).append(route)
        counts: Dict[str, int] = {}
        with atomic_output(out_path, overwrite=overwrite, is_dir=False) as tmp, open(tmp, "wb") as stream:
            writer = Writer(stream)
            schemas = {}
            for route in routes:
                if route.ros_type not in schemas:
                    schemas[route.ros_type] = writer.register_msgdef(route.ros_type.replace("/msg/", "/msg/"),
                                                                     msgdef(route.ros_type))
            string_schema = writer.register_msgdef("std_msgs/msg/String", msgdef("std_msgs/msg/String"))
            info = {key: _text(value) for key, value in metadata.items()}
            info.update({"session_clock_offset_ns": str(offset), "source_path": str(ref.path.resolve()),
                         "export": dumps(export_header(source, filters, "mcap")), "provenance": dumps(record)})
            control_names = source_ids(reader.streams[CONTROL].attrs or {}) if CONTROL in names else None
            entry_names = _topic_entry_names(reader.streams, routes)
            if entry_names:
                info["topic_entry_names"] = dumps(entry_names)
            if control_names is not None:
                info["control_sources"] = dumps({name: code for code, name in sorted(control_names.items())})
            in_control = None
            writer.add_metadata(METADATA_NAME, info)
            review = record.get("review") or {}
            if review:  # an episode nobody reviewed has no annotations to carry
                writer.add_metadata(ANNOTATIONS_NAME, _annotation_metadata(record))
            first_ns = int(round(schedule.t_first * NANOS)) + offset
            writer.write_message(METADATA_TOPIC, string_schema, {"data": dumps({"metadata": metadata,
                                                                                 "provenance": record})},
                                 log_time=first_ns, publish_time=first_ns)
            if review:
                writer.write_message(ANNOTATIONS_TOPIC, string_schema, {"data": dumps(review)},
                                     log_time=first_ns, publish_time=first_ns)
                counts[ANNOTATIONS_TOPIC] = 1
            pending = _subtask_changes(review.get("subtasks") or [])

            def write_subtasks_until(t: float) -> None:
                while pending and pending[0][0] <= t:
                    when, text = pending.pop(0)
                    stamp = max(int(round(when * NANOS)) + offset, first_ns)
                    writer.write_message(SUBTASK_TOPIC, string_schema, {"data": text}, log_time=stamp,
                                         publish_time=stamp)
                    counts[SUBTASK_TOPIC] = counts.get(SUBTASK_TOPIC, 0) + 1

            for t, name, row in schedule:
                write_subtasks_until(t)  # in time order with the recorded messages
                sample = source_rows.sample(name, row)
                stamp_ns = int(round(t * NANOS)) + offset
                for route in by_stream[name]:
                    writer.write_message(route.topic, schemas[route.ros_type],
                                         message_dict(route, stamp_ns, sample, jpeg_quality),
                                         log_time=stamp_ns, publish_time=stamp_ns)
                    counts[route.topic] = counts.get(route.topic, 0) + 1
                if name == CONTROL and control_names is not None:
                    now = source_name(control_names, int(np.asarray(sample["source"]).reshape(-1)[0]))
                    if now != in_control:  # the first tick, then each handover
                        writer.write_message(CONTROL_SOURCE_TOPIC, string_schema, {"data": now},
                                             log_time=stamp_ns, publish_time=stamp_ns)
                        counts[CONTROL_SOURCE_TOPIC] = counts.get(CONTROL_SOURCE_TOPIC, 0) + 1
                        in_control = now
            write_subtasks_until(float("inf"))
            writer.finish()
    return {"path": str(out_path), "messages": sum(counts.values()) + 1, "topics": counts}


def _topic_entry_names(specs, routes) -> Dict[str, list]:
    """{topic: entry names} of the per-field array topics whose stream names its entries (the hand streams:
    attrs names/sides), since a Float64MultiArray only labels its dimensions."""
    out = {}
    for route in routes:
        attrs = specs[route.stream].attrs or {}
        if route.ros_type != "std_msgs/msg/Float64MultiArray" or len(route.fields) != 1:
            continue
        names = (attrs.get("names") or {}).get(route.fields[0]) if isinstance(attrs.get("names"), dict) else None
        names = names or attrs.get("sides")
        if names:
            out[route.topic] = list(names)
    return out


def _annotation_metadata(record: Dict) -> Dict[str, str]:
    """The review as an MCAP metadata record (string values only, as the format requires)."""
    review = record.get("review") or {}
    return {"verdict": str(record.get("review_verdict") or "unreviewed"),
            "reviewers": str(review.get("reviewers", 0)),
            "reasons": dumps(review.get("reasons") or []), "outcome": str(review.get("outcome") or ""),
            "instructions": dumps(instructions_of(record)), "subtasks": dumps(review.get("subtasks") or []),
            "agreement": dumps(review.get("agreement") or {}), "records": dumps(review.get("records") or [])}


def _subtask_changes(subtasks) -> list:
    """(time, name) whenever the subtask being done changes: a name at a segment's start, "" at an end
    that no other segment starts at. Times are on the episode clock, as the segments are."""
    changes = []
    ordered = sorted(subtasks, key=lambda s: s["start_t"])
    for i, segment in enumerate(ordered):
        changes.append((float(segment["start_t"]), str(segment["name"])))
        following = ordered[i + 1]["start_t"] if i + 1 < len(ordered) else None
        if following is None or following > segment["end_t"]:
            changes.append((float(segment["end_t"]), ""))
    return sorted(changes, key=lambda change: change[0])


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def export_mcap_task(item, out_dir: str, streams, jpeg_quality: int, source: str, filters: str,
                     overwrite: bool) -> Dict:
    """Job-engine task: one episode -> <out_dir>/<episode_id>.mcap."""
    ref: EpisodeRef = item
    return export_episode_mcap(ref, Path(out_dir) / f"{ref.episode_id}.mcap", streams=streams,
                               jpeg_quality=jpeg_quality, overwrite=overwrite, source=source, filters=filters)


def export_mcap(refs: Sequence[EpisodeRef], out, engine, *, streams=None, jpeg_quality: int = 90,
                overwrite: bool = False, source: str = "", filters: str = "") -> Dict:
    """One episode to the file `out`, or many to `out`/<episode_id>.mcap (in parallel on the engine)."""
    out = Path(out)
    if len(refs) == 1 and out.suffix == ".mcap":
        result = export_episode_mcap(refs[0], out, streams, jpeg_quality, overwrite=overwrite, source=source,
                                     filters=filters)
        return {"files": [result["path"]], "messages": result["messages"]}
    if out.suffix == ".mcap":
        raise ConfigError(f"{out}: {len(refs)} episodes export to a folder of .mcap files; give a folder name")
    out.mkdir(parents=True, exist_ok=True)
    outcomes = engine.map(export_mcap_task, list(refs), desc="mcap export", out_dir=str(out), streams=streams,
                          jpeg_quality=jpeg_quality, source=str(source), filters=filters, overwrite=overwrite)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        listed = "; ".join(f"{o.item.path.name}: {o.error}" for o in bad[:5])
        raise DataError(f"MCAP export failed for {len(bad)} of {len(refs)} episode(s): {listed}")
    return {"files": [o.value["path"] for o in outcomes], "messages": sum(o.value["messages"] for o in outcomes)}
