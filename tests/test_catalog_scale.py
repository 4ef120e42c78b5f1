"""The catalogue at a fleet's scale (issue 18), on both engines: schema 5 (episodes.location and the indexes
for a million episodes) and schema 6 (a station's, an operator's and the QA-failed lists' indexes) upgrade
an older catalogue, coverage is one GROUP BY equal to counting every row, the filtered lists are answered
by the new indexes, and lists filter on where an episode lives."""
import random
import sqlite3

import psycopg
import pytest

import collector.session.catalog as catalog_module
from collector.cli import main
from collector.review.annotations import Labels
from collector.session.catalog import SCHEMA_VERSION, Catalog, episode_id_for, utc_now
from collector.session.coverage import Coverage
from collector.session.plan import KnownNames, parse_plan

SCHEMA_5_INDEXES = {"episodes_condition", "episodes_plan_cell", "episodes_published"}  # and episodes_operator
SCHEMA_6_INDEXES = {"episodes_station", "episodes_operator_outcome", "episodes_qa_failed"}
OLD_INDEXES = {"episodes_cell", "episodes_station_status", "episodes_operator"}
TASKS, LIGHTS, WEIGHTS = ("pick_place", "pour", "wipe"), ("bright", "dim"), ("light", "heavy")


def _plan(count: str = "good"):
    known = KnownNames(tasks={t: "" for t in TASKS}, lighting={n: "" for n in LIGHTS},
                       weights={n: "" for n in WEIGHTS}, robots={"humanoid": ""})
    text = (f"name: p\nrobot: humanoid\ntasks: [pick_place, pour]\nlighting: [bright, dim]\nweights: [light, heavy]\n"
            f"takes_per_cell: 40\nmax_attempts_per_cell: 60\ncount: {count}\n")
    return parse_plan(text, "p.yaml", known)


def _fill(catalog, rows: int, seed: int = 3) -> None:
    """Rows of every status, outcome, QA state, verdict and interruption, over two plans and a task
    the plan does not have."""
    rng = random.Random(seed)
    now = utc_now()
    batch = []
    for index in range(1, rows + 1):
        status = rng.choice(("kept", "kept", "kept", "recovered", "interrupted", "discarded", "purged", "recording"))
        batch.append({
            "episode_index": index, "episode_id": episode_id_for(index), "session_id": "s",
            "plan": rng.choice(("p", "p", "q")), "task": rng.choice(TASKS), "lighting": rng.choice(LIGHTS),
            "weight": rng.choice(WEIGHTS), "status": status, "outcome": rng.choice(("success", "failure", "unknown")),
            "qa": rng.choice(("pass", "pass", "fail", "pending")),
            "review_verdict": rng.choice(("unreviewed", "accepted", "accepted", "rejected", "disputed")),
            "interrupted_by": rng.choice(("", "", "crash", "SIGINT")) if status != "discarded" else "",
            "operator": f"op{index % 7}", "station": f"st{index % 3}", "started_at": now})
    catalog.insert_episodes(batch)


def _downgrade(location, statements, version: int) -> None:
    if isinstance(location, str):
        with psycopg.connect(location) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"UPDATE catalog_meta SET value='{version}' WHERE key='schema_version'")
        catalog_module._READY.clear()  # as a new process would: the schema is checked on its first open
        return
    with sqlite3.connect(location) as conn:
        conn.executescript("; ".join(statements) + f"; PRAGMA user_version={version};")


def _downgrade_to_schema_5(location) -> None:
    """What a collector of schema 5 left: the station index without the task, the operator's alone."""
    _downgrade(location, [f"DROP INDEX {name}" for name in sorted(SCHEMA_6_INDEXES)] +
               ["CREATE INDEX episodes_station_status ON episodes (station, status)",
                "CREATE INDEX episodes_operator ON episodes (operator)"], 5)


def _downgrade_to_schema_4(location) -> None:
    """What a collector of schema 4 left: no location column, the old cell index, none of the new ones."""
    _downgrade_to_schema_5(location)
    _downgrade(location, [f"DROP INDEX {name}" for name in sorted(SCHEMA_5_INDEXES | {"episodes_operator"})] +
               ["CREATE INDEX episodes_cell ON episodes (plan, task, lighting, weight)",
                "ALTER TABLE episodes DROP COLUMN location"], 4)


def _indexes_and_version(location):
    if isinstance(location, str):
        with psycopg.connect(location) as conn:
            names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename='episodes'")}
            version = int(conn.execute("SELECT value FROM catalog_meta WHERE key='schema_version'").fetchone()[0])
        return names, version
    with sqlite3.connect(location) as conn:
        names = {r[1] for r in conn.execute("PRAGMA index_list(episodes)")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    return names, version


def test_a_schema_4_catalogue_gains_location_and_the_indexes_on_open(catalog_location):
    catalog = Catalog(catalog_location)
    _fill(catalog, 30)
    before = [r.as_dict() for r in catalog.episodes()]
    _downgrade_to_schema_4(catalog_location)
    names, version = _indexes_and_version(catalog_location)
    assert version == 4 and "episodes_cell" in names and not names & (SCHEMA_5_INDEXES | SCHEMA_6_INDEXES)

    upgraded = Catalog(catalog_location)
    names, version = _indexes_and_version(catalog_location)
    assert version == SCHEMA_VERSION == 6
    assert SCHEMA_5_INDEXES | SCHEMA_6_INDEXES <= names
    assert not names & OLD_INDEXES  # the new ones begin with their columns
    assert [r.as_dict() for r in upgraded.episodes()] == before  # every row as it was, location ''
    assert all(r.location == "" for r in upgraded.episodes())
    assert upgraded.set_location("episode_000002", "s3://hall/ds/episodes/episode_000002.hdf5")
    assert upgraded.episode(2).location == "s3://hall/ds/episodes/episode_000002.hdf5"


def test_a_schema_5_catalogue_gains_the_station_operator_and_qa_indexes_on_open(catalog_location):
    catalog = Catalog(catalog_location)
    _fill(catalog, 400)
    before = [r.as_dict() for r in catalog.episodes()]
    _downgrade_to_schema_5(catalog_location)
    names, version = _indexes_and_version(catalog_location)
    assert version == 5 and {"episodes_station_status", "episodes_operator"} <= names
    assert not names & SCHEMA_6_INDEXES

    upgraded = Catalog(catalog_location)
    names, version = _indexes_and_version(catalog_location)
    assert version == SCHEMA_VERSION == 6 and SCHEMA_6_INDEXES | SCHEMA_5_INDEXES <= names
    assert not names & OLD_INDEXES
    assert [r.as_dict() for r in upgraded.episodes()] == before
    failed = upgraded.episodes(task="pour", lighting="dim", qa="fail")
    assert failed and failed == [r for r in upgraded.episodes() if (r.task, r.lighting, r.qa) == ("pour", "dim", "fail")]
    assert Catalog(catalog_location).episodes(operator="op3", outcome="failure") == \
        [r for r in upgraded.episodes() if (r.operator, r.outcome) == ("op3", "failure")]


@pytest.mark.parametrize("count", ["good", "accepted"])
def test_coverage_from_one_group_by_equals_coverage_from_every_row(catalog_location, count):
    catalog = Catalog(catalog_location)
    _fill(catalog, 1500)
    plan = _plan(count)
    grouped = catalog.coverage(plan)
    counted = Coverage.from_rows(plan, catalog.episodes(plan="p"))
    assert grouped.good_counts == counted.good_counts and sum(counted.good_counts.values()) > 20
    assert grouped.attempt_counts == counted.attempt_counts
    assert grouped.capped_counts == counted.capped_counts
    assert grouped.capped_counts != grouped.attempt_counts  # interrupted takes are attempts, not capped ones
    assert grouped.as_dict() == counted.as_dict() and grouped.table() == counted.table()


def _plan_of(catalog, sql: str, params) -> str:
    with catalog.reading() as conn:
        if catalog.is_postgres:
            return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
        return "\n".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())


def test_the_filtered_list_and_coverage_are_answered_by_the_new_indexes(catalog_location):
    catalog = Catalog(catalog_location)
    _fill(catalog, 6000)
    if catalog.is_postgres:
        with catalog.reading() as conn:
            conn.execute("ANALYZE episodes")  # what autovacuum does: the planner knows the table's size
    where, params = catalog_module._where(dict(task="pour", lighting="dim", weight="heavy", outcome="success",
                                               verdict="accepted"))
    listed = _plan_of(catalog, f"SELECT * FROM episodes{where} ORDER BY episode_index", params)
    assert "episodes_condition" in listed, listed
    if not catalog.is_postgres:  # PostgreSQL rightly scans a table this small for half its rows
        grouped = _plan_of(catalog, "SELECT task, lighting, weight, SUM(CASE WHEN status='kept' THEN 1 ELSE 0 END)"
                           " FROM episodes WHERE plan=? GROUP BY task, lighting, weight", ("p",))
        assert "COVERING INDEX episodes_plan_cell" in grouped and "TEMP B-TREE" not in grouped, grouped
    if not catalog.is_postgres:  # the planner's choice on PostgreSQL depends on its statistics of a big table
        for filters, index in ((dict(station="st1", status="kept", task="pour"), "episodes_station"),
                               (dict(operator="op3", outcome="failure"), "episodes_operator_outcome"),
                               (dict(task="pour", lighting="dim", qa="fail"), "episodes_qa_failed")):
            where, params = catalog_module._where(filters)
            chosen = _plan_of(catalog, f"SELECT * FROM episodes{where} ORDER BY episode_index", params)
            assert index in chosen, (filters, chosen)
    found = catalog.episodes(task="pour", lighting="dim", weight="heavy", outcome="success", verdict="accepted")
    assert found and all((r.task, r.lighting, r.weight, r.outcome, r.verdict) ==
                         ("pour", "dim", "heavy", "success", "accepted") for r in found)


def test_lists_filter_on_where_episodes_live_and_reviews_on_their_episodes(catalog_location):
    catalog = Catalog(catalog_location)
    _fill(catalog, 12)
    url = "file:///mnt/share/hall/episodes/{}.hdf5"
    assert catalog.set_locations({3: url.format("episode_000003"), "episode_000005": url.format("episode_000005"),
                                  "episode_000099": url.format("nothing")}) == 2
    assert catalog.set_locations({3: url.format("episode_000003")}) == 0  # already there: unchanged
    assert [r.episode_index for r in catalog.episodes(published=True)] == [3, 5]
    assert len(catalog.episodes(published=False)) == 10
    assert [r.episode_index for r in catalog.episodes(location=url.format("episode_000005"))] == [5]
    assert catalog.values("location") == ["", url.format("episode_000003"), url.format("episode_000005")]
    assert catalog.values("verdict") == sorted({r.verdict for r in catalog.episodes()})
    for index, record in ((2, "r2"), (7, "r7")):
        catalog.record_review(index, Labels("ana", verdict="reject", reasons=["collision"], record_id=record,
                                            saved_at="2026-12-02T00:00:00Z", revision=1))
    task_of_7 = catalog.episode(7).task
    wanted = [r.episode_index for r in catalog.episodes(task=task_of_7, verdict="rejected")]
    assert [r["record_id"] for r in catalog.review_records(task=task_of_7, verdict="rejected")] == \
        [f"r{i}" for i in wanted if i in (2, 7)]
    assert [r["record_id"] for r in catalog.review_records()] == ["r2", "r7"]


def test_catalog_list_shows_and_filters_the_location(tmp_path, capsys):
    catalog = Catalog(tmp_path / "ds" / "catalog.sqlite")
    _fill(catalog, 4)
    catalog.set_location(2, "s3://hall/ds/episodes/episode_000002.hdf5")
    assert main(["catalog", "list", str(tmp_path / "ds"), "--published"]) == 0
    out = capsys.readouterr().out
    assert "location" in out.splitlines()[0] and "s3://hall/ds/episodes/episode_000002.hdf5" in out
    assert out.strip().endswith("1 episode(s)")
    assert main(["catalog", "list", str(tmp_path / "ds"), "--unpublished", "--json"]) == 0
    import json

    assert [r["episode_index"] for r in json.loads(capsys.readouterr().out)] == [1, 3, 4]
