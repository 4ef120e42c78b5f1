"""`collector session --plan FILE --out DIR`: a collection session driven from the operator's web dashboard.

Serves the dashboard on localhost (token-protected; the URL with the token is printed): live camera
views, robot state, the current task, its instruction and the condition it needs, the episode timer,
the coverage matrix (task x lighting x weight), the last episode's QA result, and buttons with
keyboard shortcuts: Start (S), Stop (Space), Success (Y), Failure (N), Discard (D), Re-record (R).

From another machine: ssh -L 8787:localhost:8787 STATION, then open the printed URL there, or serve the
dashboard on the floor's network with `--listen 0.0.0.0 --tls-self-signed` (needs accounts in the catalogue:
`collector accounts`; each take then records the logged-in operator who started it; docs/fleet.md).
Ctrl-C ends the session (a take in progress is finalized); the same command resumes it.
"""
from __future__ import annotations

import argparse
import logging
import threading

from collector.accounts.floor import add_listen_options
from collector.session.cli_support import add_run_options, load_plan_arg, open_runner
from collector.session.dashboard import DashboardServer
from collector.session.interactive import InteractiveSession
from collector.session.live import LiveState
from collector.session.unattended import summarize
from collector.session.vr_link import VrSessionLink
from collector.session.report import full_report

log = logging.getLogger(__name__)


def run(args) -> int:
    from collector.accounts.floor import floor_access
    from collector.web_auth import check_allowed_origin

    origins = [check_allowed_origin(o) for o in args.allow_origin or ()]  # before anything is created
    plan = load_plan_arg(args.plan, args)
    host, floor = floor_access(args, lambda: _catalog_of(args, plan))
    live = LiveState()
    runner = open_runner(plan, args, live=live)
    session = InteractiveSession(runner, auto_start=args.auto)
    recent = (lambda limit: [r.as_dict() for r in runner.catalog.episodes(plan=plan.name)[-limit:]])
    state = "interrupted"
    try:
        with DashboardServer(live, session.handle, host=host, port=args.port, token=args.token,
                             recent_episodes=recent, allowed_origins=origins, floor=floor,
                             take_operator=runner.set_operator) as dash:
            print(f"dashboard: {dash.url}", flush=True)
            if floor is None:
                print(f"  remote:  ssh -L {dash.port}:localhost:{dash.port} <this station>, then open the URL above",
                      flush=True)
            else:
                print(f"  log in as an operator or admin; TLS certificate SHA-256 "
                      f"{floor.certificate.sha256_fingerprint}", flush=True)
            if runner.recovered:
                print("resumed: " + ", ".join(f"{r.episode_id} {r.status}" for r in runner.recovered), flush=True)
            if args.exit_when_done:
                threading.Thread(target=_quit_when_done, args=(session,), daemon=True).start()
            vr_link = None
            if (args.operator_input or plan.operator) == "vr":
                # Start/stop/discard from the headset act like the dashboard's buttons.
                vr_link = VrSessionLink(session).start()
                print("VR: headset episode controls and status feed connected to the VR server", flush=True)
            try:
                session.run()
            finally:
                if vr_link is not None:
                    vr_link.close()
            state = None
    finally:
        runner.close(state)
    print(full_report(runner.coverage(), runner.plan_rows()))
    print(summarize(runner, 0, 0.0).as_json())
    return 0


def _catalog_of(args, plan):
    """The catalogue the session will use, if it exists yet (the accounts live there); None otherwise."""
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout

    url = args.catalog or plan.catalog
    if url:
        return Catalog(url)
    layout = DatasetLayout(args.out)
    return Catalog(layout.catalog_location) if layout.exists() else None


def _quit_when_done(session: InteractiveSession) -> None:
    while not session.finished.is_set():
        snapshot = session.live.snapshot()
        if snapshot["phase"] == "done":
            session.shutdown()
            return
        session.live.wait_for_change(snapshot["version"], 1.0)


def register(subparsers):
    parser = subparsers.add_parser(
        "session", help="run a collection session from the operator's web dashboard (localhost, token)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", required=True, metavar="FILE", help="plan YAML or a name in configs/plans/")
    add_run_options(parser)
    parser.add_argument("--port", type=int, default=8787, help="dashboard port on localhost (0: any free port)")
    parser.add_argument("--token", default=None, help="access token (default: a new random one each run)")
    parser.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                        help="also accept dashboard requests from pages at ORIGIN (scheme://host:port; repeatable)")
    add_listen_options(parser)
    parser.add_argument("--auto", action="store_true",
                        help="start each take without pressing Start (watch a scripted run on the dashboard)")
    parser.add_argument("--exit-when-done", action="store_true", help="end the session when the plan is covered")
    parser.add_argument("--display", nargs="?", const="viewer", metavar="TARGET",
                        help="stream each live take to Rerun: a spawned viewer (no value), a rerun+http:// viewer "
                             "URL, or a .rrd file (one per take: FILE.rrd, FILE-2.rrd...); the control loop's "
                             "timing is unchanged")
    parser.set_defaults(func=run)
