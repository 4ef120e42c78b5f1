"""`collector review DATASET`: the reviewer's page (localhost, token): watch each take, accept or reject it,
cut it into subtasks, give it instructions. See docs/review.md.

    collector review data/demo                       # prints the URL (with its token) to open
    collector review data/demo --reviewer ana --port 8790

Labels are saved into each episode file (its /annotations group, through a journal beside it) and
mirrored into the catalogue. Ctrl-C stops the server after folding every saved review into its file.
From another machine: ssh -L 8790:localhost:8790 STATION, then open the printed URL there, or serve it on
the floor's network with accounts and TLS (labels then name the logged-in reviewer; docs/fleet.md):

    collector review data/hall --listen 0.0.0.0 --tls-self-signed
"""
from __future__ import annotations

import argparse
import signal
import threading


def run(args) -> int:
    from collector.accounts.floor import floor_access
    from collector.review.server import ReviewServer
    from collector.web_auth import check_allowed_origin

    origins = [check_allowed_origin(o) for o in args.allow_origin or ()]
    host, floor = floor_access(args, lambda: _catalog_of(args.dataset))
    server = ReviewServer(args.dataset, host=host, port=args.port, token=args.token, reviewer=args.reviewer,
                          allowed_origins=origins, floor=floor).start()
    try:
        print(f"review: {server.url}", flush=True)
        if floor is None:
            print(f"  reviewer: {server.reviewer}   dataset: {server.layout.root}", flush=True)
            print(f"  remote:   ssh -L {server.port}:localhost:{server.port} <this station>, then open the URL "
                  "above", flush=True)
        else:
            print(f"  log in as a reviewer or admin; labels name who is logged in   dataset: {server.layout.root}",
                  flush=True)
            print(f"  TLS certificate {floor.certificate.cert_path}, SHA-256 {floor.certificate.sha256_fingerprint}",
                  flush=True)
        threading.Event().wait()
    except KeyboardInterrupt as exc:
        print("review: stopping (saved labels are folded into their episode files)", flush=True)
        if getattr(exc, "signum", signal.SIGINT) != signal.SIGINT:
            raise  # SIGTERM/SIGHUP: the CLI reports the signal and exits with its code
    finally:
        server.close()
    return 0  # Ctrl-C is how a reviewer ends the page


def _catalog_of(dataset):
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout

    layout = DatasetLayout(dataset)
    return Catalog(layout.catalog_path) if layout.exists() else None


def register(subparsers):
    from collector.accounts.floor import add_listen_options

    from collector.review.server import default_reviewer

    parser = subparsers.add_parser(
        "review", help="the reviewer's page: accept/reject takes, subtasks, instructions (localhost, token)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="dataset folder (with catalog.sqlite)")
    parser.add_argument("--port", type=int, default=8790, help="port on localhost (0: any free port)")
    parser.add_argument("--token", default=None, help="access token (default: a new random one each run)")
    parser.add_argument("--reviewer", default=default_reviewer(),
                        help="the name labels are saved under (default: $USER, else 'reviewer')")
    parser.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                        help="also accept requests from pages at ORIGIN (scheme://host:port; repeatable)")
    add_listen_options(parser)
    parser.set_defaults(func=run)
