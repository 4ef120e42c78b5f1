"""`collector demo`: the main job, headless, no hardware.

Runs the default plan (configs/plans/demo.yaml) in simulation: the scripted operator performs both
tasks through the full teleop loop (retargeting, mink IK, safety gate) into the crash-safe recorder,
under several lighting and weight presets. Then it prints the coverage table, success rates and the
QA summary, and where the dataset is and how to inspect and replay it. The last line is one JSON
object: episodes, succeeded, failed_validation, wall_s, out (and more).

Running it again on the same --out resumes (and, once the plan is covered, only reports).
"""
from __future__ import annotations

import argparse
import time

from collector.errors import ConfigError
from collector.session.cli_support import add_run_options, load_plan_arg, record_plan

DEFAULT_OUT = "data/demo"


def run(args) -> int:
    started = time.monotonic()
    plan = load_plan_arg(args.plan, args)
    if plan.backend != "sim":
        raise ConfigError(f"{args.plan}: backend: the demo runs in simulation only (got {plan.backend!r}); "
                          "use `collector collect` for hardware plans")
    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    return record_plan(plan, args, max_takes=args.episodes, started=started)  # wall time includes set-up


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="the main job: record a small plan in simulation with the scripted operator, then report",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, default_out=DEFAULT_OUT)
    parser.add_argument("--episodes", type=int, default=None, metavar="N",
                        help="record only N takes, spread over both tasks and the conditions (a smoke run)")
    parser.add_argument("--plan", default="demo", metavar="FILE",
                        help="plan YAML or a name in configs/plans/ (default: demo)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, operator_input=None)
