"""`collector catalog`: query and maintain a dataset's episode catalogue.

    collector catalog list data/ --task pour --lighting dim --outcome success   # successful pours in dim light
    collector catalog list data/ --qa fail --json
    collector catalog list data/ --verdict accepted       # takes the reviewers accepted (--unreviewed: not yet)
    collector catalog list data/ --unpublished            # takes not yet on shared storage (--published: are)
    collector catalog reviews data/             # every reviewed take, and how far two reviewers agree
    collector catalog summary data/
    collector catalog mark data/ episode_000012 failure
    collector catalog discard data/ 12          # file moves to discarded/, row stays
    collector catalog restore data/ 12          # also recovers an interrupted take kept in discarded/
    collector catalog clean data/ --yes         # delete the files of discarded takes for good
    collector catalog policies data/            # checkpoints trained on it and their evaluations
    collector catalog add-evaluation data/ eval/results.json   # catalogue an evaluation after the fact
    collector catalog migrate data/ postgresql://collector@dbhost/fleet   # the catalogue onto a server
    collector catalog list data/ --catalog postgresql://...   # every action takes --catalog (docs/fleet.md)
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

from collector.errors import ConfigError, DataError
from collector.review.annotations import review_sidecars
from collector.session.catalog import OUTCOMES, QA_STATES, REVIEW_VERDICTS, STATUSES, Catalog
from collector.session.layout import DatasetLayout
from collector.text_table import format_table, format_value

LIST_COLUMNS = ("episode_id", "task", "lighting", "weight", "outcome", "qa", "verdict", "status", "duration_s",
                "operator", "station", "path", "location")


def _open(dataset: str, url=None):
    """The dataset's layout and catalogue: the folder's own, or the server it is bound to (or `url`, which
    binds a folder that has no catalogue yet)."""
    layout = DatasetLayout(dataset)
    if url is not None:
        if not layout.root.is_dir():
            raise ConfigError(f"{layout.root}: not a dataset folder")
        layout.bind_catalog(url)
    if not layout.exists():
        raise ConfigError(f"{layout.root}: not a dataset (no {layout.catalog_path.name}); "
                          "record one with `collector demo` or `collector collect`")
    return layout, Catalog(layout.catalog_location)


def _filters(args) -> dict:
    filters = {name: getattr(args, name) for name in ("task", "lighting", "weight", "outcome", "qa", "status",
                                                       "operator", "station", "plan", "session_id", "verdict")
               if getattr(args, name, None)}
    reviewed = getattr(args, "reviewed", None)
    if reviewed is not None:
        if "verdict" in filters:
            raise ConfigError("give either --verdict or --reviewed/--unreviewed, not both")
        filters["verdict"] = [v for v in REVIEW_VERDICTS if (v != "unreviewed") == reviewed]
    if getattr(args, "published", None) is not None:
        filters["published"] = args.published  # has (or lacks) a location on shared storage
    return filters


def _format_table(rows, columns) -> str:
    return format_table(columns, [[format_value(getattr(r, c)) for c in columns] for r in rows])


def run_list(args) -> int:
    from collector.dataset.selection import catalog_values, check_filter_values

    layout, catalog = _open(args.dataset, args.catalog)
    check_filter_values(_filters(args), lambda name: catalog_values(catalog, name))  # a typo is named, not "no match"
    rows = catalog.episodes(**_filters(args))
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    elif args.paths:
        for row in rows:
            if row.path:
                print(layout.absolute(row.path))
    else:
        print(_format_table(rows, LIST_COLUMNS) if rows else "no episodes match")
        if rows:
            print(f"{len(rows)} episode(s)")
    return 0


def run_summary(args) -> int:
    _, catalog = _open(args.dataset, args.catalog)
    rows = catalog.episodes(**_filters(args))
    kept = [r for r in rows if r.status in ("kept", "recovered")]
    print(f"{len(rows)} episode numbers: " + ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in rows).items())))
    if kept:
        total = sum(r.duration_s or 0 for r in kept)
        print(f"kept: {len(kept)} ({total / 60:.1f} min), outcomes: "
              + ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in kept).items()))
              + ", QA: " + ", ".join(f"{n} {q}" for q, n in sorted(Counter(r.qa for r in kept).items())))
        print("reviews: " + ", ".join(f"{n} {v}" for v, n in sorted(Counter(r.verdict for r in kept).items())))
        by_cell = Counter((r.task, r.lighting, r.weight, r.outcome) for r in kept)
        print(_format_table([_Row(task=t, lighting=l, weight=w, outcome=o, episodes=n)
                             for (t, l, w, o), n in sorted(by_cell.items())],
                            ("task", "lighting", "weight", "outcome", "episodes")))
    sessions = catalog.sessions()
    if sessions:
        print(f"sessions: {len(sessions)} (" + ", ".join(f"{s['session_id']} {s['state']}" for s in sessions[-5:]) + ")")
    return 0


class _Row:
    def __init__(self, **values):
        self.__dict__.update(values)


def _lifecycle(layout, catalog, row):
    from collector.session.lifecycle import EpisodeLifecycle
    from collector.session.plan import Plan

    # Maintenance acts on one row; the plan is only needed for recording, so a stand-in name is enough.
    plan = Plan(name=row.plan, robot=row.robot, backend=row.backend or "sim", tasks=(), lighting=(), weights=(),
                takes_per_cell=1, episode_time_limit_s=1.0)
    return EpisodeLifecycle(layout, catalog, plan, session_id=row.session_id, station=row.station,
                            operator=row.operator)


def run_mark(args) -> int:
    layout, catalog = _open(args.dataset, args.catalog)
    row = catalog.episode(args.episode)
    row = _lifecycle(layout, catalog, row).mark(row.episode_index, args.outcome)
    print(f"{row.episode_id}: outcome {row.outcome}")
    return 0


def run_discard(args) -> int:
    layout, catalog = _open(args.dataset, args.catalog)
    row = catalog.episode(args.episode)
    row = _lifecycle(layout, catalog, row).discard(row.episode_index, args.reason)
    print(f"{row.episode_id}: discarded, file kept at {row.path or '(no file)'} until `collector catalog clean`")
    return 0


def run_restore(args) -> int:
    layout, catalog = _open(args.dataset, args.catalog)
    row = catalog.episode(args.episode)
    row = _lifecycle(layout, catalog, row).restore(row.episode_index)
    recovered = " and recovered up to the last flush" if row.status == "recovered" else ""
    print(f"{row.episode_id}: restored{recovered} to {row.path} (outcome {row.outcome}, QA {row.qa})")
    return 0


def run_clean(args) -> int:
    layout, catalog = _open(args.dataset, args.catalog)
    rows = [r for r in catalog.episodes(status="discarded") if r.path]
    if not rows:
        print("nothing to clean: no discarded files")
        return 0
    size = sum(layout.absolute(r.path).stat().st_size for r in rows if layout.absolute(r.path).exists())
    if not args.yes:
        print(f"{len(rows)} discarded file(s), {size / 1e6:.1f} MB: run again with --yes to delete them")
        return 1
    for row in rows:
        path = layout.absolute(row.path)
        if path.parent != layout.discard_dir:
            raise DataError(f"{row.episode_id}: refusing to delete {path}, which is not in {layout.discard_dir}")
        for sidecar in review_sidecars(path):  # labels not yet folded into the file go with it
            sidecar.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        catalog.update_episode(row.episode_index, status="purged", path=None,
                               note=(row.note + "; " if row.note else "") + "file deleted by catalog clean")
    print(f"deleted {len(rows)} discarded file(s), {size / 1e6:.1f} MB")
    return 0


def run_reviews(args) -> int:
    """Every reviewed take: verdict, reviewers, and where two reviewers labelled it, how far they agree."""
    _, catalog = _open(args.dataset, args.catalog)
    rows = [r for r in catalog.episodes(**_filters(args)) if r.reviewers]
    agreements = {r.episode_index: catalog.review(r.episode_index).agreement() for r in rows}
    summary = review_agreement(agreements.values())
    if args.json:
        print(json.dumps({"episodes": [{**_review_row(r), **agreements[r.episode_index]} for r in rows],
                          "agreement": summary}, indent=1))
        return 0
    if not rows:
        print("no reviewed episodes (`collector review DATASET` labels them)")
        return 0
    table = [[r.episode_id, r.task, r.verdict, r.reviewers, _agreed(agreements[r.episode_index]),
              _seconds(agreements[r.episode_index]["boundary_mean_diff_s"]),
              format_value(agreements[r.episode_index]["segment_iou"]), r.outcome,
              r.recorded_outcome or "-"] for r in rows]
    print(format_table(("episode_id", "task", "verdict", "reviewers", "agree", "boundary diff", "segment IoU",
                        "outcome", "recorded"), table))
    verdicts = Counter(r.verdict for r in rows)
    print(f"{len(rows)} reviewed episode(s): " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
    if summary["compared"]:
        print(f"two reviewers on {summary['compared']} episode(s): verdicts agree on "
              f"{100 * summary['verdict_agreement_rate']:.0f}%"
              + (f", subtask boundaries differ by {summary['boundary_mean_diff_s']:.2f} s on average"
                 if summary["boundary_mean_diff_s"] is not None else ""))
    return 0


def review_agreement(agreements) -> dict:
    """Dataset-wide agreement from per-episode Review.agreement() dicts: the share of doubly reviewed
    episodes whose verdicts agree, and the mean boundary difference over those with two segmentations."""
    agreements = list(agreements)
    verdicts = [a["verdict_agreement"] for a in agreements if a["verdict_agreement"] is not None]
    diffs = [a["boundary_mean_diff_s"] for a in agreements if a["boundary_mean_diff_s"] is not None]
    ious = [a["segment_iou"] for a in agreements if a["segment_iou"] is not None]
    return {"compared": len(verdicts),
            "verdict_agreement_rate": (sum(verdicts) / len(verdicts)) if verdicts else None,
            "boundary_mean_diff_s": (sum(diffs) / len(diffs)) if diffs else None,
            "segment_iou": (sum(ious) / len(ious)) if ious else None}


def _review_row(row) -> dict:
    return {"episode_id": row.episode_id, "task": row.task, "verdict": row.verdict, "reviewers": row.reviewers,
            "outcome": row.outcome, "recorded_outcome": row.recorded_outcome}


def _agreed(agreement: dict) -> str:
    value = agreement["verdict_agreement"]
    return "-" if value is None else ("yes" if value else "no")


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.2f} s"


def run_policies(args) -> int:
    from pathlib import Path

    from collector.session.policy_records import evaluations, policies

    layout, _ = _open(args.dataset, args.catalog)
    trained, evaluated = policies(layout.root), evaluations(layout.root)
    if args.json:
        print(json.dumps({"policies": trained, "evaluations": evaluated}, indent=1, default=str))
        return 0
    if not trained and not evaluated:
        print("no policies or evaluations catalogued (`collector train` and `collector eval` record them)")
        return 0
    print(f"{len(trained)} policy checkpoint(s)")
    if trained:
        print(format_table(("policy_id", "policy", "checkpoint", "episodes", "steps", "created", "evaluations",
                            "latest success"),
                           [[p["policy_id"], p["policy"], Path(p["checkpoint"]).name, len(p["episodes"]),
                             format_value(p["details"].get("steps")), p["created"][:19].replace("T", " "),
                             p["evaluations"], _percent(p["latest_success"])] for p in trained]))
    print(f"{len(evaluated)} evaluation(s)")
    if evaluated:
        print(format_table(("evaluation_id", "policy_id", "checkpoint", "rollouts", "success", "created"),
                           [[e["evaluation_id"], format_value(e["policy_id"]), Path(e["checkpoint"]).name,
                             e["rollouts"], _percent(e["success_rate"]), str(e["created"])[:19].replace("T", " ")]
                            for e in evaluated]))
    return 0


def run_add_evaluation(args) -> int:
    from pathlib import Path

    from collector.session.policy_records import record_evaluation

    layout, _ = _open(args.dataset, args.catalog)
    path = Path(args.results)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read evaluation results: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    try:
        evaluation_id = record_evaluation(layout.root, results)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    print(f"catalogued {path} as evaluation {evaluation_id} ({results['rollouts']} rollouts,"
          f" {100 * results['success_rate']:.0f}% success)")
    return 0


def _percent(rate) -> str:
    return "-" if rate is None else f"{100 * rate:.0f}%"


def run_migrate(args) -> int:
    from collector.fleet.migrate import migrate_catalog

    print(migrate_catalog(DatasetLayout(args.dataset), args.url))
    return 0


def run_rebuild(args) -> int:
    from collector.session.rebuild import rebuild_catalog

    report = rebuild_catalog(DatasetLayout(args.dataset), force=args.force)
    print(report)
    return 0


def _catalog_option(parser) -> None:
    parser.add_argument("--catalog", metavar="URL", default=None,
                        help="the dataset's PostgreSQL catalogue (postgresql://...); a folder bound to one"
                             " (catalog.url) finds it without this")


def register(subparsers):
    parser = subparsers.add_parser(
        "catalog", help="query and maintain a dataset's episode catalogue (SQLite or PostgreSQL)",
        description="Query and maintain the episode catalogue of a dataset folder.",
        epilog="example: collector catalog list data/ --task pour --lighting dim --outcome success",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="catalog_action", metavar="ACTION", required=True)

    def filtered(name, help_text, func):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("dataset", help="dataset folder (holds catalog.sqlite)")
        _catalog_option(sub)
        sub.add_argument("--task")
        sub.add_argument("--lighting", help="lighting preset name")
        sub.add_argument("--weight", help="weight preset name")
        sub.add_argument("--outcome", choices=OUTCOMES)
        sub.add_argument("--qa", choices=QA_STATES, help="QA result")
        sub.add_argument("--status", choices=STATUSES)
        sub.add_argument("--operator")
        sub.add_argument("--station")
        sub.add_argument("--plan")
        sub.add_argument("--session", dest="session_id")
        sub.add_argument("--verdict", choices=REVIEW_VERDICTS, help="the reviewers' verdict")
        reviewed = sub.add_mutually_exclusive_group()
        reviewed.add_argument("--reviewed", dest="reviewed", action="store_const", const=True,
                              help="only episodes a reviewer gave a verdict")
        reviewed.add_argument("--unreviewed", dest="reviewed", action="store_const", const=False,
                              help="only episodes no reviewer gave a verdict yet")
        published = sub.add_mutually_exclusive_group()
        published.add_argument("--published", dest="published", action="store_const", const=True,
                               help="only episodes on shared storage (their location is set: collector publish)")
        published.add_argument("--unpublished", dest="published", action="store_const", const=False,
                               help="only episodes not yet published")
        sub.set_defaults(func=func)
        return sub

    listing = filtered("list", "list episodes matching every filter given", run_list)
    shape = listing.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print the rows as JSON")
    shape.add_argument("--paths", action="store_true", help="print only the episode file paths")
    filtered("summary", "counts by status, outcome, QA and cell", run_summary)
    filtered("reviews", "reviewed episodes: verdicts, reviewers and their agreement", run_reviews).add_argument(
        "--json", action="store_true", help="print the episodes and the agreement as JSON")

    def one(name, help_text, func):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("dataset", help="dataset folder")
        sub.add_argument("episode", help="episode id (episode_000012) or number (12)")
        _catalog_option(sub)
        sub.set_defaults(func=func)
        return sub

    one("mark", "set a kept episode's outcome", run_mark).add_argument("outcome", choices=("success", "failure"))
    one("discard", "move an episode's file to discarded/ (kept until clean)", run_discard).add_argument(
        "--reason", default="discarded from the command line")
    one("restore", "bring a discarded episode back (or recover an interrupted one kept in discarded/)",
        run_restore)
    clean = actions.add_parser("clean", help="delete the files of discarded takes",
                               description="Delete the files of discarded takes (their catalogue rows stay, "
                                           "status 'purged', so episode numbers remain accounted for).")
    clean.add_argument("dataset")
    _catalog_option(clean)
    clean.add_argument("--yes", action="store_true", help="really delete (otherwise only report)")
    clean.set_defaults(func=run_clean)
    migrate = actions.add_parser("migrate", help="copy the folder's SQLite catalogue into a PostgreSQL server",
                                 description="Copy catalog.sqlite into an empty PostgreSQL catalogue, check every "
                                             "row, and make the folder use the server from then on (catalog.sqlite"
                                             " is kept, unchanged, as a backup). Stop the stations first.")
    migrate.add_argument("dataset")
    migrate.add_argument("url", help="postgresql://USER@HOST[:PORT]/DATABASE (an empty database)")
    migrate.set_defaults(func=run_migrate)
    rebuild = actions.add_parser("rebuild", help="re-create the catalogue from the episode files",
                                 description="Re-create catalog.sqlite from the episode files' own metadata "
                                             "(after the catalogue was lost or corrupted).")
    rebuild.add_argument("dataset")
    rebuild.add_argument("--force", action="store_true", help="move an existing catalogue aside first")
    rebuild.set_defaults(func=run_rebuild)
    listed = actions.add_parser("policies", help="list the policy checkpoints and evaluations catalogued here",
                                description="Policy checkpoints trained on this dataset (`collector train`) and "
                                            "their evaluations (`collector eval`), oldest first.")
    listed.add_argument("dataset")
    _catalog_option(listed)
    listed.add_argument("--json", action="store_true", help="print them as JSON")
    listed.set_defaults(func=run_policies)
    added = actions.add_parser("add-evaluation", help="catalogue a `collector eval` results.json here",
                               description="Record an evaluation's results.json in this dataset's catalogue "
                                           "(`collector eval` does it itself when the dataset has a catalogue).")
    added.add_argument("dataset")
    _catalog_option(added)
    added.add_argument("results", help="results.json written by `collector eval`")
    added.set_defaults(func=run_add_evaluation)
