"""Options and set-up shared by the commands that run plans (demo, collect, session)."""
from __future__ import annotations

import argparse
import getpass
import logging
import math
import time
from pathlib import Path

from collector.session.plan import OPERATORS, Plan, load_plan
from collector.session.runner import SessionRunner, default_station


def add_run_options(parser: argparse.ArgumentParser, default_out=None) -> None:
    parser.add_argument("--out", default=default_out, required=default_out is None, metavar="DIR",
                        help="dataset folder (created if needed; running again resumes the plan there)"
                             + (f"; default {default_out}" if default_out else ""))
    parser.add_argument("--input", dest="operator_input", choices=OPERATORS, default=None,
                        help="operator input device (default: the plan's `operator`)")
    parser.add_argument("--station", default=None,
                        help="station name recorded with every episode (default: this host's name)")
    parser.add_argument("--operator-name", default=None,
                        help="who is operating, recorded with every episode (default: your user name)")
    parser.add_argument("--no-render", action="store_true",
                        help="simulation without cameras (faster; episodes then have no images)")
    parser.add_argument("--catalog", default=None, metavar="URL",
                        help="keep the catalogue on this PostgreSQL server (postgresql://USER@HOST/DB) instead of"
                             " the folder's catalog.sqlite; the folder remembers it (docs/fleet.md)")
    parser.add_argument("--teleop-config", default=None, metavar="FILE",
                        help="teleop YAML for this run's control loop and operator devices (default "
                             "configs/teleop.yaml), e.g. the scripted operator's near misses")
    parser.add_argument("--claim-lease", type=_lease_seconds, default=None, metavar="S",
                        help="how long a cell this station claimed stays its own after its last heartbeat"
                             " (default 60 s; docs/fleet.md)")


def _lease_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def open_runner(plan: Plan, args, live=None) -> SessionRunner:
    """Build the driver for the plan's backend and open the runner (lock, resume, recovery)."""
    from collector.session.drivers import make_driver

    from collector.session.layout import DatasetLayout
    from collector.teleop.config import load_teleop_config

    # A wrong teleop file fails before the dataset folder or its catalogue is touched.
    teleop_config = load_teleop_config(args.teleop_config) if getattr(args, "teleop_config", None) else None
    # Before the driver starts, so a bad URL fails fast; --catalog wins over the plan's `catalog:`.
    DatasetLayout(args.out).bind_catalog(getattr(args, "catalog", None) or plan.catalog,
                                         "--catalog" if getattr(args, "catalog", None) else f"{plan.name}: catalog")
    operator_input = args.operator_input or plan.operator
    driver = make_driver(plan, operator=operator_input, render=not args.no_render,
                         policy=getattr(args, "policy", None), teleop_config=teleop_config)
    runner = SessionRunner(plan, Path(args.out), driver, station=args.station or default_station(),
                           operator=args.operator_name or _user(), live=live,
                           lease_s=getattr(args, "claim_lease", None))
    try:
        if getattr(args, "display", None) is not None:  # collect/session --display
            from collector.review.live_display import open_display

            runner.display = open_display(args.display, robot=plan.robot)
        return runner.open()
    except BaseException:
        if runner.display is not None:
            runner.display.close()
        driver.close()
        raise


def record_plan(plan: Plan, args, max_takes=None, started=None) -> int:
    """Open the runner, record takes without a dashboard until the plan is covered (or max_takes),
    close it (a take cut short by an exception is settled as interrupted) and print the summary.
    `started` (monotonic) makes the reported wall time include the caller's own set-up."""
    from collector.session.hand_calibration import calibrate_before_first_take
    from collector.session.unattended import print_summary, run_unattended

    runner = open_runner(plan, args)
    state = "interrupted"
    try:
        calibrate_before_first_take(runner, args.operator_input or plan.operator)  # hands + VR only
        summary = run_unattended(runner, max_takes=max_takes, progress=not args.no_progress)
        state = None
    finally:
        runner.close(state)
    if started is not None:
        summary.wall_s = time.monotonic() - started
    print_summary(summary, runner)
    return 0


def load_plan_arg(value: str, args=None) -> Plan:
    if args is not None and not getattr(args, "verbose", False):
        # The progress bar / dashboard is the interface: INFO lines (recorder, OpenGL set-up...) would
        # only interleave with it. `collector -v ...` shows them.
        logging.getLogger().setLevel(logging.WARNING)
    return load_plan(value)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "operator"
