"""Command-line options shared by the dataset commands: episode filters and the job engine."""
from __future__ import annotations

import argparse

from collector.dataset.jobs.engine import ENGINES, JobEngine
from collector.dataset.selection import FILTER_NAMES, Filters


def add_source_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="+", metavar="DATASET",
                        help="a dataset folder (its catalogue is used), a folder of episode files, or episode files")


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("episode filters (repeat a filter to accept several values)")
    for name in FILTER_NAMES:
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, dest=f"filter_{name}", action="append", metavar=name.upper(),
                           help=f"only episodes whose {name.replace('_', ' ')} is this")


def filters_from_args(args) -> Filters:
    return Filters.from_kwargs(**{name: getattr(args, f"filter_{name}", None) for name in FILTER_NAMES})


def add_engine_arguments(parser: argparse.ArgumentParser, default_workers: int = 2) -> None:
    group = parser.add_argument_group("job engine")
    group.add_argument("--engine", choices=ENGINES, default="dask",
                       help="dask: a pool of worker processes (default); inline: this process only")
    group.add_argument("--workers", type=int, default=default_workers, metavar="N",
                       help=f"worker processes of the local Dask cluster (default {default_workers})")
    group.add_argument("--address", metavar="tcp://HOST:PORT",
                       help="use a running Dask cluster's scheduler instead of a local one "
                            "(workers must see the dataset paths)")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bars (they are shown when stderr is a terminal)")


def engine_from_args(args) -> JobEngine:
    engine = "dask" if args.address else args.engine
    return JobEngine(engine, workers=args.workers, address=args.address,
                     progress=False if args.no_progress else None)


def sources(args):
    return args.source[0] if len(args.source) == 1 else args.source
