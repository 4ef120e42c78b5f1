"""`collector export DATASET --to mcap|robomimic|lerobot --out PATH`: convert episodes for other tools.

  mcap       one .mcap per episode (ROS 2 CDR messages; Foxglove opens them): every raw sample on its
             ROS 2 topic, episode metadata and conditions as an MCAP metadata record. One episode to
             a file (--out x.mcap), several to a folder.
  robomimic  one HDF5 file: data/demo_N (obs, next_obs, actions, rewards, dones, states), mask/ filter
             keys (train/valid split by episode, per task, lighting, weight, outcome), env_args. Actions
             scaled to [-1, 1] (raw = actions * action_scale + action_offset) unless --raw-actions.
  lerobot    a LeRobot v3.0 dataset folder: parquet frames, MP4 per camera (PyAV), meta/info.json,
             stats.json, tasks and episodes tables.
Every format keeps each episode's conditions and provenance (episode id, source file, operator,
session, outcome). Episodes are converted in parallel on the job engine, with a progress bar; the
output appears under its name only once complete.

Episodes whose catalogue QA failed (unless selected with --qa fail) and episodes the format cannot
take (no aligned view, no samples, unreadable) are skipped: one warning line each on stderr naming
the episode and why, and the others are exported (exit 0). --strict refuses the export instead.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from collector.dataset.cli_options import (add_engine_arguments, add_filter_arguments, add_source_argument,
                                           engine_from_args, filters_from_args, sources)
from collector.errors import ConfigError, DataError

FORMATS = ("mcap", "robomimic", "lerobot")


def run(args) -> int:
    from collector.dataset.selection import select_episodes

    from collector.dataset.exports.common import view_camera_names

    filters = filters_from_args(args)
    selected = select_episodes(sources(args), filters)
    args.cameras = view_camera_names(selected, args.cameras)
    refs, skipped = _screen(selected, args, filters)
    source = " ".join(args.source)
    started = time.monotonic()
    with engine_from_args(args) as engine:
        if args.to == "mcap":
            from collector.dataset.exports.mcap import export_mcap

            if args.cameras:
                raise ConfigError("--cameras applies to robomimic and lerobot; MCAP takes --streams")
            result = export_mcap(refs, args.out, engine, streams=args.streams, jpeg_quality=args.jpeg_quality,
                                 overwrite=args.overwrite, source=source, filters=filters.describe())
        elif args.to == "robomimic":
            from collector.dataset.exports.robomimic import export_robomimic

            result = export_robomimic(refs, args.out, engine, cameras=args.cameras, val_fraction=args.val_fraction,
                                      seed=args.seed, overwrite=args.overwrite, source=source,
                                      filters=filters.describe(), raw_actions=args.raw_actions)
        else:
            from collector.dataset.exports.lerobot import export_lerobot

            result = export_lerobot(refs, args.out, engine, cameras=args.cameras, codec=args.codec, crf=args.crf,
                                    overwrite=args.overwrite, source=source, filters=filters.describe())
    wall = time.monotonic() - started
    result.update({"format": args.to, "episodes_in": len(refs), "wall_s": round(wall, 3),
                   "s_per_episode": round(wall / len(refs), 4),
                   "skipped": [{"episode_id": ref.episode_id, "path": str(ref.path), "reason": reason}
                               for ref, reason in skipped]})
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"exported {len(refs)} episode(s) to {args.to} at {args.out} in {wall:.1f} s "
              f"({wall / len(refs):.2f} s per episode)")
    return 0


def _screen(refs, args, filters):
    """The episodes to export, after warning about each one skipped (or refusing, with --strict)."""
    from collector.dataset.exports.common import screen_episodes

    good, skipped = screen_episodes(refs, args.to, keep_qa_failed="fail" in filters.qa,
                                    cameras=args.cameras if args.to != "mcap" else None)
    if skipped and args.strict:
        listed = "; ".join(f"{ref.episode_id}: {reason}" for ref, reason in skipped)
        raise DataError(f"--strict: {len(skipped)} of {len(refs)} episode(s) cannot be exported: {listed}")
    for ref, reason in skipped:
        print(f"collector export: warning: skipped {ref.episode_id} ({ref.path}): {reason}", file=sys.stderr)
    if not good:
        raise DataError(f"nothing to export: all {len(refs)} selected episode(s) were skipped (see the warnings)")
    return good, skipped


def register(subparsers):
    parser = subparsers.add_parser("export", help="export episodes to MCAP, robomimic or LeRobot v3",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_argument(parser)
    parser.add_argument("--to", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--out", "-o", required=True, metavar="PATH",
                        help="output: a .mcap file or folder (mcap), an .hdf5 file (robomimic), a folder (lerobot)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--strict", action="store_true",
                        help="fail when an episode would be skipped (QA failed, or unusable for the format) "
                             "instead of warning and exporting the others")
    parser.add_argument("--cameras", nargs="+", metavar="CAM", help="cameras to include (default: all recorded)")
    parser.add_argument("--streams", nargs="+", metavar="STREAM", help="mcap: streams to include (default: all)")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q", help="mcap: JPEG quality of images")
    parser.add_argument("--codec", choices=("h264", "av1", "hevc"), default="h264",
                        help="lerobot: video codec (default h264: fastest to decode)")
    parser.add_argument("--crf", type=int, default=23, help="lerobot: video quality (lower is better, default 23)")
    parser.add_argument("--raw-actions", action="store_true",
                        help="robomimic: keep actions in joint units (default: scaled to [-1, 1] by the robot's "
                             "joint limits; data attrs action_scale/action_offset undo it)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="robomimic: share of episodes in the 'valid' filter key (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="robomimic: seed of the train/valid split")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_filter_arguments(parser)
    add_engine_arguments(parser)
    parser.set_defaults(func=run)
