"""`collector publish DATASET --to URL`: copy the dataset's kept episodes to shared storage.

URL is a mounted folder (a path or file:///mnt/share/ds) or an object store (s3://bucket/ds,
gs://bucket/ds; credentials and endpoints as the store's client takes them, e.g. AWS_* variables and
FSSPEC_S3_ENDPOINT_URL). Every kept episode not yet published there, and any review journal waiting
beside it, is uploaded to URL/episodes/, read back and checked against its SHA-256. The queue lives in
DATASET/publish.sqlite, so an interrupted run (even kill -9) resumes where it stopped, and nothing is
counted as published before its remote copy is verified. With --delete-local a local episode file is
deleted once its remote copy is verified. Without --once it keeps watching for new takes until stopped.
Exits 1 when some file could not be published.
"""
from __future__ import annotations

import argparse
import threading

from collector.errors import ConfigError


def run(args) -> int:
    from collector.fleet.publisher import Publisher

    if args.retries < 0 or args.backoff <= 0:
        raise ConfigError("--retries must be >= 0 and --backoff > 0")
    stop = threading.Event()
    publisher = Publisher(args.dataset, args.to, keep_local=args.keep_local, retries=args.retries,
                          backoff_s=args.backoff, report=lambda text: print(text, flush=True), stop=stop)
    if args.retry_failed:
        publisher.queue.retry_failed(publisher.destination)
    summary = publisher.run_once(verify_remote=args.verify_remote)
    print(summary.line(publisher.destination), flush=True)
    while not args.once:  # watch for new takes; a signal ends the wait (the CLI reports it)
        stop.wait(args.poll)
        publisher.queue.retry_failed(publisher.destination)
        summary = publisher.run_once()
        if summary.published or summary.failed:
            print(summary.line(publisher.destination), flush=True)
    return 1 if summary.failed else 0


def register(subparsers):
    parser = subparsers.add_parser("publish", help="copy kept episodes to a shared folder or object store, verified",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", metavar="DATASET", help="the dataset folder")
    parser.add_argument("--to", required=True, metavar="URL", help="file:///path, a path, s3://bucket/prefix, gs://...")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--keep-local", dest="keep_local", action="store_true", default=True,
                      help="keep the local episode files (default)")
    keep.add_argument("--delete-local", dest="keep_local", action="store_false",
                      help="delete each local episode file once its remote copy is verified")
    parser.add_argument("--once", action="store_true", help="publish what is there now and exit")
    parser.add_argument("--verify-remote", action="store_true",
                        help="first read back every published copy; one that no longer matches is uploaded again")
    parser.add_argument("--retry-failed", action="store_true", help="try again the files an earlier run gave up on")
    parser.add_argument("--retries", type=int, default=5, metavar="N", help="retries per file (default 5)")
    parser.add_argument("--backoff", type=float, default=0.5, metavar="S",
                        help="first retry delay, doubled on each retry up to 30 s (default 0.5)")
    parser.add_argument("--poll", type=float, default=10.0, metavar="S",
                        help="without --once: look for new takes this often (default 10 s)")
    parser.set_defaults(func=run)
