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


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Row-level choices for training on corrections (HG-DAgger style): who must have commanded a row."""
    group = parser.add_argument_group("control source (who commanded each recorded row)")
    group.add_argument("--control", dest="control", action="append", metavar="SOURCE",
                       help="only rows this source commanded (operator, policy, ...; repeat to accept several): "
                            "--control operator trains on the operator's demonstrations and corrections only")
    group.add_argument("--operator-weight", type=float, default=1.0, metavar="W",
                       help="sample rows the operator commanded W times as often as the others (default 1)")


def control_from_args(args) -> dict:
    """EpisodeDataset keywords (control=, operator_weight=) from add_control_arguments' options."""
    return {"control": getattr(args, "control", None), "operator_weight": getattr(args, "operator_weight", 1.0)}


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
