"""`collector stats DATASET`: dataset-wide statistics on the job engine.

Prints how much data there is (episodes, frames, hours), coverage per task x lighting x weight x
outcome, per-stream samples, drops, gaps and worst sync error, and per-feature statistics (mean,
std, min, max of qpos, qvel, effort, action, and per-channel pixel statistics of each camera).
`--out stats.json` writes it all, the feature statistics in LeRobot's stats.json layout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from collector.dataset.cli_options import (add_engine_arguments, add_filter_arguments, add_source_argument,
                                           engine_from_args, filters_from_args, sources)
from collector.errors import DataError
from collector.text_table import format_table


def compute(args):
    from collector.dataset.jobs.tasks import reduce_statistics, statistics_task
    from collector.dataset.selection import select_episodes

    filters = filters_from_args(args)
    refs = select_episodes(sources(args), filters)
    with engine_from_args(args) as engine:
        outcomes = engine.map(statistics_task, refs, desc="statistics", images=not args.no_images,
                              image_samples=args.image_samples)
    failed = [o for o in outcomes if not o.ok]
    good = [o.value for o in outcomes if o.ok]
    if not good:
        raise DataError(f"statistics failed for every one of the {len(failed)} episode(s); first error: "
                        f"{failed[0].error}")
    result = reduce_statistics(good)
    ids = [o.item.episode_id for o in failed]
    # Keyed by episode id, or by id and file where several failed files carry one id (copies).
    result["failed"] = {(o.item.episode_id if ids.count(o.item.episode_id) == 1 else f"{o.item.episode_id} "
                         f"({o.item.path})"): o.error for o in failed}
    result["filters"] = filters.describe()
    return result


def print_report(result) -> None:
    print(f"{result['episodes']} episode(s), {result['frames']} aligned frames, "
          f"{result['duration_s'] / 3600:.3f} h recorded (filters: {result['filters']})")
    if result["episode_duration_s"]:
        d = result["episode_duration_s"]
        print(f"episode length: min {d['min']:.2f} s, mean {d['mean']:.2f} s, max {d['max']:.2f} s")
    print()
    print(format_table(["task", "lighting", "weight", "outcome", "episodes"],
                       [[c["task"], c["lighting"] or "-", c["weight"] or "-", c["outcome"], c["episodes"]]
                        for c in result["coverage"]], rule=True))
    print()
    rows = [[name, s["samples"], s["dropped"], s["gaps"],
             "-" if s["sync_max_ms"] is None else f"{s['sync_max_ms']:.2f}", s["sync_invalid_rows"]]
            for name, s in sorted(result["streams"].items())]
    print(format_table(["stream", "samples", "dropped", "gaps", "sync max ms", "rows out of tolerance"], rows, rule=True))
    print()
    from collector.dataset.statistics import summary_rows

    print(format_table(["feature", "count", "dims", "mean", "std", "min", "max"], summary_rows(result["_feature_stats"]),
                       rule=True))
    for episode_id, error in result["failed"].items():
        print(f"FAILED {episode_id}: {error}")


def run(args) -> int:
    result = compute(args)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=2))
    else:
        print_report(result)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result["features"], indent=2))
        if not args.json:
            print(f"feature statistics written to {out}")
    return 1 if result["failed"] else 0


def register(subparsers):
    parser = subparsers.add_parser("stats", help="dataset-wide statistics: coverage, drops, sync error, features",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_argument(parser)
    add_filter_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--no-images", action="store_true", help="skip the per-camera pixel statistics")
    parser.add_argument("--image-samples", type=int, default=16, metavar="N",
                        help="frames per episode and camera sampled for pixel statistics (default 16)")
    parser.add_argument("--out", metavar="FILE", help="write the feature statistics (stats.json layout) here")
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.set_defaults(func=run)
