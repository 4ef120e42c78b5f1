"""`collector inspect`: what is in an episode: metadata, conditions, streams, timing, drops, sync error."""
import json

from collector.recorder.schema import to_json
from collector.text_table import format_table, format_value


def _rejected(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "0"
    return str(value)


def print_summary(summary: dict) -> None:
    md = summary["metadata"]
    print(f"episode {md.get('episode_id', '?')}  status={md.get('status')}"
          f"{'  RECOVERED' if md.get('recovered') else ''}  {summary['path']}")
    for key in ("task", "instruction", "robot", "operator", "station", "session_id", "outcome", "sim",
                "started_at", "duration_s", "software_version", "robot_model_hash", "schema", "schema_version"):
        if key in md:
            value = md[key]
            print(f"  {key:<17} {format_value(value, 3) if isinstance(value, float) else value}")
    conditions = summary["conditions"]
    print("  conditions:")
    if not conditions:
        print("    (none recorded)")
    for key, value in conditions.items():
        print(f"    {key:<15} {json.dumps(value, sort_keys=True)}")
    print("  streams:")
    rows = [[name, s["kind"], s["count"], format_value(s["nominal_rate_hz"]), format_value(s.get("effective_rate_hz")),
             format_value(s.get("jitter_std_ms"), 2), format_value(s.get("jitter_p99_ms"), 2),
             format_value(s.get("gaps")), s["dropped"], _rejected(s["rejected"]),
             format_value(s.get("bytes_per_frame")) + (f" ({s['codec']})" if "codec" in s else "")]
            for name, s in summary["streams"].items()]
    print(format_table(["name", "kind", "count", "nominal", "eff Hz", "jit std", "jit p99", "gaps", "dropped",
                        "rejected", "bytes/frame"], rows, right="llrrrrrrrll", indent="    "))
    print("    (rates in Hz, jitter = std / p99 of sample intervals in ms, gaps = intervals over tolerance)")
    view = summary["aligned_view"]
    if view["rows"] is None:
        print("  aligned view: none (partial episode: run `collector recover`)")
    else:
        config = view["config"] or {}
        timeline = (f"stamps of {config['reference']}" if config.get("reference")
                    else f"{config.get('rate_hz')} Hz grid")
        print(f"  aligned view: {view['rows']} rows, {timeline}, images {config.get('image_format')}, "
              f"cameras {view['cameras']}, extra streams {config.get('extra_streams', [])}")
        rows = [[name, s["invalid_rows"], format_value(s["abs_error_mean_ms"], 2),
                 format_value(s["abs_error_p99_ms"], 2), format_value(s["abs_error_max_ms"], 2)]
                for name, s in summary["sync"].items()]
        print(format_table(["stream", "invalid", "|err| mean", "p99", "max ms"], rows, right="lrrrr", indent="    "))
    rec = summary["recorder"]
    if rec:
        latency = rec.get("write_latency") or {}
        print(f"  recorder: drops={rec.get('drops', 0)} rejected={rec.get('rejected', 0)} "
              f"write latency p99={format_value(latency.get('p99_ms'))} ms flushes={rec.get('flushes', '-')} "
              f"drain at stop={format_value(rec.get('drain_s'), 3)} s aligned view={format_value(rec.get('aligned_view_s'), 3)} s"
              f"{'  error: ' + rec['error'] if rec.get('error') else ''}")


def run(args) -> int:
    from collector.recorder import EpisodeReader
    from collector.recorder.summary import episode_summary

    with EpisodeReader(args.episode) as reader:
        summary = episode_summary(reader)
    if args.json:
        print(to_json(summary))
    else:
        print_summary(summary)
    return 0


def register(subparsers):
    parser = subparsers.add_parser(
        "inspect",
        help="show an episode's metadata, conditions, stream rates, jitter, gaps, drops and sync error",
        description="Print what an episode file holds: its metadata and recording conditions; per raw stream "
                    "the sample count, nominal and effective rate, jitter, gaps over tolerance, drops and "
                    "rejected samples (and bytes per frame for cameras); and for the aligned view, per stream "
                    "how far the chosen samples were from their rows. Works on partial files too.",
    )
    parser.add_argument("episode", metavar="EPISODE", help="episode file (.hdf5, .h5 or .partial.h5)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)
