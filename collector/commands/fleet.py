"""`collector fleet DATASET_OR_CATALOG_URL`: the floor manager's page (localhost, token), live.

    collector fleet data/hall                                   # a dataset folder (its own or its server's catalogue)
    collector fleet postgresql://collector@dbhost/hall --open   # the fleet's catalogue itself; opens a browser
    collector fleet data/hall --plan configs/plans/demo.yaml    # plan progress against the plan file

Shows every station (online or not, what it is doing: take, operator, cell, disk, upload backlog), takes
per hour, success and QA-failure rates per station, operator and condition, and each plan's progress,
updated as the stations write the catalogue (server-sent events). See docs/fleet.md.
From another machine: ssh -L 8791:localhost:8791 HOST, then open the printed URL there; or serve it on the
floor's network with `--listen 0.0.0.0 --tls-self-signed` (TLS, and a login of an admin account: docs/fleet.md).
"""
from __future__ import annotations

import argparse
import signal
import threading

from collector.errors import ConfigError

DEFAULT_PORT = 8791  # beside the dashboard's 8787 and the review page's 8790


def open_catalog(target: str):
    """The catalogue of a dataset folder (its catalog.sqlite or the server it is bound to) or of a URL."""
    from collector.session.catalog import Catalog
    from collector.session.catalog_engine import check_catalog_url
    from collector.session.layout import DatasetLayout

    if "://" in target:
        return Catalog(check_catalog_url(target, "DATASET_OR_CATALOG_URL"))
    layout = DatasetLayout(target)
    if not layout.exists():
        raise ConfigError(f"{layout.root}: not a dataset (no {layout.catalog_path.name} or catalog.url); "
                          "give a dataset folder or a postgresql:// URL")
    return Catalog(layout.catalog_location)


def run(args) -> int:
    from collector.accounts.floor import floor_access
    from collector.fleet.floor_server import FleetServer
    from collector.session.plan import load_plan
    from collector.web_auth import check_allowed_origin

    if args.offline_after <= 0 or args.interval <= 0:
        raise ConfigError("--offline-after and --interval must be > 0 seconds")
    origins = [check_allowed_origin(o) for o in args.allow_origin or ()]
    plans = [load_plan(path) for path in args.plan or ()]
    catalog = open_catalog(args.catalog)
    host, floor = floor_access(args, lambda: catalog)  # beyond loopback: TLS and accounts, or a refusal
    server = FleetServer(catalog, plans=plans, host=host, port=args.port, token=args.token, allowed_origins=origins,
                         offline_after_s=args.offline_after, interval_s=args.interval, floor=floor).start()
    try:
        print(f"fleet: {server.url}", flush=True)
        print(f"  catalogue: {server.catalog.path}", flush=True)
        if floor is None:
            print(f"  remote:    ssh -L {server.port}:localhost:{server.port} <this machine>, then open the URL above",
                  flush=True)
        else:
            print(f"  log in as an admin; TLS certificate {floor.certificate.cert_path}, SHA-256 "
                  f"{floor.certificate.sha256_fingerprint}", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        threading.Event().wait()
    except KeyboardInterrupt as exc:
        print("fleet: stopping", flush=True)
        if getattr(exc, "signum", signal.SIGINT) != signal.SIGINT:
            raise  # SIGTERM/SIGHUP: the CLI reports the signal and exits with its code
    finally:
        server.close()
    return 0


def register(subparsers):
    from collector.accounts.floor import add_listen_options

    parser = subparsers.add_parser(
        "fleet", help="the floor manager's page: stations, takes per hour, rates, plan progress (localhost, token)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalog", metavar="DATASET_OR_CATALOG_URL",
                        help="a dataset folder, or the fleet's catalogue URL (postgresql://...)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on localhost (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in this machine's web browser")
    parser.add_argument("--plan", action="append", metavar="PLAN",
                        help="a plan file whose progress to show from its own need (repeatable; without it,"
                             " progress comes from the cells the stations claimed)")
    parser.add_argument("--offline-after", type=float, default=30.0, metavar="S",
                        help="a station silent this long shows as offline (default 30 s)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="read the catalogue this often (default 1 s; slower when a read takes long)")
    parser.add_argument("--token", default=None, help="access token (default: a new random one each run)")
    parser.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                        help="also accept requests from pages at ORIGIN (scheme://host:port; repeatable)")
    add_listen_options(parser)
    parser.set_defaults(func=run)
