"""`collector collect --plan FILE --out DIR`: run a collection plan from the terminal.

Any plan, any backend (sim or ROS 2) and any operator input (scripted, keyboard, gamepad, VR).
Takes follow each other until every cell of the plan has its good takes; on hardware the terminal
asks for each condition to be set up and for each take's outcome. Stop with Ctrl-C at any time:
the take in progress is finalized, and running the same command again resumes the plan.
For the operator's web dashboard with buttons, use `collector session`.

With --policy CHECKPOINT the policy drives each take from its start while the operator holds the
deadman; the takeover button hands control to the operator and back (VR: left thumbstick click,
gamepad: Y, keyboard: p). Each attempt is one episode whose `control` stream says who commanded
every tick. `--input scripted` is then the scripted corrector: it takes over when the policy stalls
or drifts and finishes the task.
"""
from __future__ import annotations

import argparse

from collector.session.cli_support import add_run_options, load_plan_arg, record_plan


def run(args) -> int:
    plan = load_plan_arg(args.plan, args)  # fails on a bad plan before anything is opened or started
    return record_plan(plan, args, max_takes=args.max_takes)


def register(subparsers):
    parser = subparsers.add_parser(
        "collect", help="run a collection plan (any backend, any operator input) from the terminal",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", required=True, metavar="FILE",
                        help="plan YAML (or the name of one in configs/plans/, e.g. demo)")
    add_run_options(parser)
    parser.add_argument("--policy", default=None, metavar="CHECKPOINT",
                        help="a trained policy (collector train) drives; the operator takes over with one button")
    parser.add_argument("--max-takes", type=int, default=None, metavar="N", help="stop after N takes")
    parser.add_argument("--display", nargs="?", const="viewer", metavar="TARGET",
                        help="stream each live take to Rerun: a spawned viewer (no value), a rerun+http:// viewer "
                             "URL, or a .rrd file (one per take: FILE.rrd, FILE-2.rrd...); the control loop's "
                             "timing is unchanged")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
