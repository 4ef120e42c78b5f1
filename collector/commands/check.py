"""`collector check DATASET`: validate every selected episode on the job engine.

The same QA rules as `collector validate` (schema, metadata, streams, gaps, frozen cameras, NaN,
joint limits, duration, aligned view), run in parallel over a whole dataset with the catalogue's
filters, and with `--update-catalog` the verdicts written back into the catalogue's QA columns.
Exits 1 when any episode has a problem.
"""
from __future__ import annotations

import argparse
import json

from collector.dataset.cli_options import (add_engine_arguments, add_filter_arguments, add_source_argument,
                                           engine_from_args, filters_from_args, sources)
from collector.errors import ConfigError


def run(args) -> int:
    from collector.dataset.jobs.tasks import validate_task
    from collector.dataset.selection import select_episodes

    limits = None
    if args.limits:
        from collector.commands.validate import _load_limits

        limits = _load_limits(args.limits)
    refs = select_episodes(sources(args), filters_from_args(args))
    with engine_from_args(args) as engine:
        outcomes = engine.map(validate_task, refs, desc="validate", limits=limits, required_streams=args.require,
                              min_duration_s=args.min_duration, frozen_s=args.frozen_s)
    # Keyed by file: two files can carry one episode id (a copy, a restored take), and each is checked.
    results = {}
    for outcome in outcomes:
        results[str(outcome.item.path)] = outcome.value if outcome.ok else [f"cannot be checked: {outcome.error}"]
    if args.update_catalog:
        _update_catalog(refs, results)
    failed = sum(1 for problems in results.values() if problems)
    if args.json:
        by_label = {label: results[str(ref.path)] for ref, label in zip(refs, _labels(refs))}
        print(json.dumps({"episodes": by_label, "failed": failed, "checked": len(results)}, indent=2))
    else:
        for ref in refs:
            problems = results[str(ref.path)]
            print(f"{'FAIL' if problems else 'ok  '}  {ref.episode_id}  {ref.path}")
            for problem in problems:
                print(f"        - {problem}")
        print(f"{len(results) - failed} of {len(results)} episode(s) passed")
    return 1 if failed else 0


def _labels(refs):
    """Each episode's id, or "<id> (<file>)" where several selected files carry the same id."""
    counts = {}
    for ref in refs:
        counts[ref.episode_id] = counts.get(ref.episode_id, 0) + 1
    return [ref.episode_id if counts[ref.episode_id] == 1 else f"{ref.episode_id} ({ref.path})" for ref in refs]


def _update_catalog(refs, results) -> None:
    from collector.session.catalog import Catalog

    catalogs = {}
    for ref in refs:
        if ref.index is None or ref.dataset_root is None:
            raise ConfigError("--update-catalog needs episodes selected through a dataset folder's catalogue")
        root = ref.dataset_root
        catalog = catalogs.setdefault(root, Catalog(root / "catalog.sqlite"))
        problems = results[str(ref.path)]
        catalog.update_episode(ref.index, qa="fail" if problems else "pass", qa_problems=problems)


def register(subparsers):
    parser = subparsers.add_parser("check", help="validate a whole dataset in parallel (QA rules of `validate`)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_argument(parser)
    add_filter_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--limits", metavar="FILE", help="joint limits (JSON/YAML with lower and upper lists)")
    parser.add_argument("--require", nargs="*", metavar="STREAM", default=None,
                        help="streams every episode must have (default: joints command)")
    parser.add_argument("--min-duration", type=float, default=1.0, metavar="S", help="shortest acceptable take (s)")
    parser.add_argument("--frozen-s", type=float, default=1.0, metavar="S",
                        help="a camera repeating one frame this long is frozen")
    parser.add_argument("--update-catalog", action="store_true",
                        help="write pass/fail and the problems into the catalogue's QA columns")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)
