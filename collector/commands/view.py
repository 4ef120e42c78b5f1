"""`collector view EPISODE_OR_DATASET`: open episodes in the Rerun viewer, or write them to a .rrd file.

Every camera (the recorded JPEG frames), joints measured and commanded as time series grouped by
limb, end-effector targets and object poses in 3D, the control source and safety state, conditions
and review annotations, all on the recorded timestamps. Each episode is its own recording (the
viewer lists them; a dataset's episodes are switched there).

    collector view data/demo                                 # every kept episode of the dataset
    collector view data/demo --episode 3 --episode 5         # by catalogue number or episode id
    collector view data/demo/episodes/episode_000001.hdf5 --save take.rrd   # no viewer: a file
    collector view data/demo --connect rerun+http://laptop:9876/proxy        # a viewer running elsewhere
    rerun take.rrd                                           # open it later, anywhere

The recorded JPEGs follow ALOHA's channel convention (a standard decoder, Rerun's included, would show
red and blue swapped), so each frame is re-encoded for the viewer, about 1.5 ms a frame; --recorded-jpeg
logs the recorded bytes as they are (fast; colours swapped).
"""
from __future__ import annotations

import argparse
import sys


def run(args) -> int:
    from collector.errors import ConfigError
    from collector.review.rerun_view import episode_paths, save_rrd, stream_to_viewer

    if args.save and args.connect:
        raise ConfigError("--save and --connect: choose one (a file, or a running viewer)")

    items = episode_paths(args.source, args.episode or ())

    def progress(episode_id, counts):
        if not args.quiet:
            print(f"{episode_id}: {sum(counts.values())} samples from {len(counts)} streams", file=sys.stderr)

    if args.save:
        out = save_rrd(items, args.save, true_colors=not args.recorded_jpeg, progress=progress)
        print(f"wrote {out} ({len(items)} episode{'s' if len(items) != 1 else ''}; open it with: rerun {out})")
    else:
        stream_to_viewer(items, url=args.connect, true_colors=not args.recorded_jpeg, progress=progress)
    return 0


def register(subparsers):
    parser = subparsers.add_parser("view", help="open episodes in the Rerun viewer (or --save a .rrd file)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="EPISODE_OR_DATASET",
                        help="an episode file, a folder of episode files, or a dataset folder (its catalogue)")
    parser.add_argument("--save", metavar="FILE.rrd", help="write a Rerun recording file instead of opening a viewer")
    parser.add_argument("--connect", metavar="URL",
                        help="stream to a viewer already running, e.g. on your laptop: rerun+http://HOST:9876/proxy")
    parser.add_argument("--episode", action="append", metavar="N",
                        help="only this episode: catalogue number, file number or episode id (repeatable)")
    parser.add_argument("--recorded-jpeg", action="store_true",
                        help="log the recorded JPEG bytes unchanged: fast, but red and blue show swapped "
                             "(the recorder keeps ALOHA's channel convention)")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress lines")
    parser.set_defaults(func=run)
