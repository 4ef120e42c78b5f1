"""`collector scene-views OUT`: render labelled views of many new object layouts for `collector train
--scene-views OUT` (collector/policy/scene_views.py says why).

One layout per seed from --seed-base on (the lighting x weight presets in turn), --views views of each:
the robot at home, then in joint poses drawn from the recorded takes of --poses-from. Every robot
camera at the policy's --image-size, through the recorder's JPEG. Choose seeds no recording or
evaluation uses: `collector eval` refuses a checkpoint's scene view seeds as it refuses its training
seeds. Last line: one JSON object (file, views, layouts, wall_s).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_SEED_BASE = 2_000_000_000  # above every plan seed (plan seed x 1,000,003 + take) and collector eval's default


def run(args) -> int:
    from collector.commands.eval import _names
    from collector.commands.train import _image_size
    from collector.errors import ConfigError
    from collector.policy.scene_views import recorded_poses, render_scene_views
    from collector.sim.conditions import lighting_presets, weight_presets

    try:
        height, width = _image_size(args.image_size)
    except ValueError:
        raise ConfigError(f"--image-size {args.image_size!r}: expected WIDTHxHEIGHT, e.g. 80x60") from None
    if args.layouts < 1 or args.views < 1:
        raise ConfigError(f"--layouts and --views must be at least 1, got {args.layouts} and {args.views}")
    lighting = _names(args.lighting, list(lighting_presets()), "--lighting", list(lighting_presets()))
    weights = _names(args.weight, list(weight_presets()), "--weight", list(weight_presets()))
    poses = recorded_poses(args.poses_from) if args.poses_from else None
    started = time.perf_counter()
    step = max(1, args.layouts // 20)

    def progress(done: int) -> None:
        if done % step == 0 or done == args.layouts:
            print(f"  {done}/{args.layouts} layouts", file=sys.stderr, flush=True)

    out = render_scene_views(args.out, task=args.task, seeds=range(args.seed_base, args.seed_base + args.layouts),
                             lighting=lighting, weights=weights, image_size=(height, width),
                             views_per_layout=args.views, poses=poses, robot=args.robot, progress=progress)
    from collector.policy.scene_views import SceneViews

    views = len(SceneViews.load([out]))
    wall = time.perf_counter() - started
    print(f"wrote {views} views of {args.layouts} layouts to {out} in {wall:.0f} s")
    print(json.dumps({"file": str(out), "views": views, "layouts": args.layouts, "wall_s": round(wall, 1)}))
    return 0


def register(subparsers):
    parser = subparsers.add_parser("scene-views", help="render simulator-labelled views of new object layouts "
                                                       "(train a policy's object head on them)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT", help="the HDF5 file to write, e.g. views.h5")
    parser.add_argument("--task", default="pick_place", help="simulated task (default pick_place)")
    parser.add_argument("--robot", default="humanoid", help="robot (default humanoid)")
    parser.add_argument("--layouts", type=int, default=2000, help="layouts, one seed each (default 2000)")
    parser.add_argument("--seed-base", type=int, default=DEFAULT_SEED_BASE,
                        help=f"first seed (default {DEFAULT_SEED_BASE:,})")
    parser.add_argument("--views", type=int, default=3,
                        help="views a layout: home, then recorded poses (default 3; 1 without --poses-from)")
    parser.add_argument("--poses-from", nargs="+", metavar="DATASET",
                        help="dataset folders or episode files whose recorded joint poses the arm takes")
    parser.add_argument("--lighting", help="lighting presets, comma-separated, or all (default all)")
    parser.add_argument("--weight", help="weight presets, comma-separated, or all (default all)")
    parser.add_argument("--image-size", default="80x60", metavar="WxH",
                        help="the size the policy sees (collector train --image-size; default 80x60)")
    parser.set_defaults(func=run)
