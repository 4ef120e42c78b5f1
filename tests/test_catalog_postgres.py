"""The catalogue on a real PostgreSQL server: schema versioning, a dataset folder bound to a server
(`--catalog`), `collector catalog migrate` from SQLite (nothing lost, refusals change nothing), and a
demo run recording into the server. Engine-independent behaviour is tested on both engines in
tests/test_catalog.py (the `catalog_location` fixture)."""
import hashlib
import json
import subprocess
import sys

import psycopg
import pytest

from collector.cli import main
from collector.errors import ConfigError, DataError
from collector.review.annotations import Labels, Subtask
from collector.session import catalog as catalog_module
from collector.session.catalog import SCHEMA_VERSION, Catalog
from collector.session.layout import DatasetLayout, StationLock
from collector.session.policy_records import evaluations, policies, record_checkpoint, record_evaluation


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _labels(reviewer, record_id, verdict, outcome=None):
    return Labels(reviewer, verdict=verdict, outcome=outcome, reasons=["slow"] if verdict == "reject" else [],
                  subtasks=[Subtask("reach", 0.0, 1.25)], instructions=["pour the water"], notes="n",
                  record_id=record_id, saved_at="2026-12-02T04:00:00.000+00:00", revision=1)


def _evaluation(sha, created):
    cells = [{"task": "pour", "lighting": "dim", "weight": "heavy", "theme": "", "rollouts": 4, "successes": 3,
              "episodes": ["a.hdf5"]}]
    return {"checkpoint": "/ckpt/act.pt", "checkpoint_sha256": sha, "policy": "act", "cells": cells,
            "success_rate": 0.75, "rollouts": 4, "created": created}


def _sqlite_dataset(tmp_path):
    """A folder with a SQLite catalogue holding every kind of row: episodes in several states, sessions,
    reviews (one overriding the outcome), a checkpoint and two evaluations."""
    layout = DatasetLayout(tmp_path / "data").ensure()
    catalog = Catalog(layout.catalog_path)
    catalog.open_session(session_id="s1", plan="demo", plan_fingerprint="f", station="st1", operator="ana",
                         host="h", pid=1)
    for k in range(12):
        row = catalog.allocate_episode(session_id="s1", plan="demo", task=("pour", "pick_place")[k % 2],
                                       lighting="dim", weight="heavy", station="st1", operator="ana",
                                       conditions={"lighting": {"lux": 80.5 + k}})
        if k % 4 != 3:
            catalog.update_episode(row.episode_index, status="kept", outcome="success", qa="pass",
                                   qa_problems=["gap"] if k == 2 else [], duration_s=3.25 + k,
                                   path=f"episodes/{row.episode_id}.hdf5")
    catalog.close_session("s1", "finished")
    catalog.record_review(1, [_labels("rita", "r1", "accept"), _labels("bo", "r2", "reject", "failure")])
    catalog.record_review(2, _labels("rita", "r3", "accept"))
    record_checkpoint(layout.root, "/ckpt/act.pt", policy="act", episodes=["episode_000001"],
                      checkpoint_sha256="ab" * 32, details={"steps": 300})
    record_evaluation(layout.root, _evaluation("ab" * 32, "2026-12-01T10:00:00Z"))
    record_evaluation(layout.root, _evaluation("ab" * 32, "2026-12-01T11:00:00Z"))
    return layout


def _everything(catalog, root):
    return {"episodes": [r.as_dict() for r in catalog.episodes()], "sessions": catalog.sessions(),
            "reviews": catalog.review_records(), "policies": policies(root), "evaluations": evaluations(root)}


def test_a_server_catalogue_keeps_its_schema_version_and_refuses_a_newer_one(postgres_url):
    Catalog(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM catalog_meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        kinds = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                                  " WHERE table_name='evaluations'").fetchall())
        assert kinds["success_rate"] == "double precision"  # not PostgreSQL's single-precision REAL
        conn.execute("UPDATE catalog_meta SET value='99' WHERE key='schema_version'")
    catalog_module._READY.clear()  # as a new process would: the schema is checked on its first open
    with pytest.raises(DataError, match="schema 99 is newer"):
        Catalog(postgres_url)


def test_a_schema_3_server_catalogue_is_upgraded_on_open(postgres_url):
    Catalog(postgres_url).allocate_episode(session_id="s", plan="p", task="pour", lighting="dim", weight="heavy")
    with psycopg.connect(postgres_url) as conn:  # what schema 3 had: no review columns, no reviews table
        for column in ("review_verdict", "reviewers", "recorded_outcome"):
            conn.execute(f"ALTER TABLE episodes DROP COLUMN {column}")
        conn.execute("DROP TABLE reviews")
        conn.execute("UPDATE catalog_meta SET value='3' WHERE key='schema_version'")
    catalog_module._READY.clear()
    (row,) = Catalog(postgres_url).episodes()
    assert (row.task, row.review_verdict, row.reviewers) == ("pour", "unreviewed", 0)
    Catalog(postgres_url).record_review(1, _labels("rita", "r1", "accept"))
    assert Catalog(postgres_url).episode(1).verdict == "accepted"


def test_migrate_copies_everything_and_the_folder_then_uses_the_server(tmp_path, postgres_url, capsys):
    layout = _sqlite_dataset(tmp_path)
    before = _everything(Catalog(layout.catalog_path), layout.root)
    digest = _sha(layout.catalog_path)

    assert main(["catalog", "migrate", str(layout.root), postgres_url]) == 0
    assert "12 episodes" in capsys.readouterr().out
    assert layout.catalog_url == postgres_url and _sha(layout.catalog_path) == digest  # the SQLite file untouched

    server = Catalog(layout.catalog_path)  # the folder's catalogue is now the server's
    assert server.is_postgres
    assert _everything(server, layout.root) == before
    assert server.episode(1).outcome == "failure" and server.episode(1).recorded_outcome == "success"

    # New rows continue the numbering: episode 13, the third evaluation, the fourth review record.
    row = server.allocate_episode(session_id="s2", plan="demo", task="pour", lighting="dim", weight="heavy")
    assert row.episode_id == "episode_000013"
    third = record_evaluation(layout.root, _evaluation("ab" * 32, "2026-12-02T09:00:00Z"))
    assert third == 3 and policies(layout.root)[0]["evaluations"] == 3
    server.record_review(2, _labels("bo", "r4", "reject"))
    assert [r["review_id"] for r in server.review_records()][-1] == 4
    assert server.episode(2).verdict == "disputed"

    assert main(["catalog", "list", str(layout.root), "--verdict", "disputed", "--json"]) == 0
    assert [r["episode_id"] for r in json.loads(capsys.readouterr().out)] == ["episode_000001", "episode_000002"]


def test_migrate_refuses_a_server_that_holds_data_and_changes_nothing(tmp_path, postgres_url, capsys):
    Catalog(postgres_url).allocate_episode(session_id="x", plan="other", task="pour", lighting="dim", weight="heavy")
    layout = _sqlite_dataset(tmp_path)
    digest = _sha(layout.catalog_path)
    assert main(["catalog", "migrate", str(layout.root), postgres_url]) == 2
    err = capsys.readouterr().err
    assert "already holds data (table episodes: 1 rows)" in err and "Traceback" not in err
    assert not layout.catalog_url_path.exists() and _sha(layout.catalog_path) == digest
    assert [r.plan for r in Catalog(postgres_url).episodes()] == ["other"]


def test_migrate_refuses_while_a_station_is_recording(tmp_path, postgres_url):
    from collector.fleet.migrate import migrate_catalog

    layout = _sqlite_dataset(tmp_path)
    with StationLock(layout, "st1"):
        with pytest.raises(ConfigError, match="station 'st1' is recording"):
            migrate_catalog(layout, postgres_url)
    assert not layout.catalog_url_path.exists()
    assert Catalog(postgres_url).episodes() == []
    assert "12 episodes" in str(migrate_catalog(layout, postgres_url))  # once it stopped


def test_binding_a_folder_is_refused_where_it_would_split_a_catalogue(tmp_path, postgres_server):
    first, second = postgres_server.new_database(), postgres_server.new_database()
    own = _sqlite_dataset(tmp_path)
    with pytest.raises(ConfigError, match="has its own catalogue"):
        own.bind_catalog(first)
    fresh = DatasetLayout(tmp_path / "fresh").bind_catalog(first)
    fresh.bind_catalog(first)  # the same URL again is fine
    with pytest.raises(ConfigError, match="is bound to the catalogue"):
        fresh.bind_catalog(second)
    with pytest.raises(ConfigError, match="not a catalogue URL"):
        DatasetLayout(tmp_path / "other").bind_catalog("mysql://x/y")
    assert main(["catalog", "rebuild", str(fresh.root)]) == 2  # a server catalogue is never rebuilt from one folder


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    out = subprocess.run([sys.executable, "-m", "collector", "catalog", "list", str(folder), "--catalog",
                          "postgresql://someone:secret@127.0.0.1:1/fleet"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("collector catalog: error: postgresql://someone:***@127.0.0.1:1/fleet: cannot open")
    assert "secret" not in out.stderr


def test_demo_records_into_a_server_catalogue(tmp_path, postgres_url):
    out = tmp_path / "data"
    run = subprocess.run([sys.executable, "-m", "collector", "demo", "--out", str(out), "--episodes", "1",
                          "--no-render", "--no-progress", "--catalog", postgres_url],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (out / "catalog.sqlite").exists() and (out / "catalog.url").read_text().strip() == postgres_url
    rows = Catalog(postgres_url).episodes()
    assert [r.status for r in rows] == ["kept"]
    assert all((out / r.path).is_file() for r in rows)  # the episodes stay in the dataset folder
    (session,) = Catalog(postgres_url).sessions()
    assert session["state"] == "stopped"  # one take of eight: the plan is not covered yet


def test_a_plan_names_its_catalogue_and_a_wrong_url_is_refused():
    from collector.session.plan import parse_plan

    base = ("robot: humanoid\nbackend: sim\ntasks: [pour]\nlighting: [dim]\nweights: [heavy]\n"
            "takes_per_cell: 1\nepisode_time_limit_s: 5\n")
    assert parse_plan(base + "catalog: postgresql://collector@db/fleet\n").catalog == "postgresql://collector@db/fleet"
    assert parse_plan(base).catalog is None
    with pytest.raises(ConfigError, match="catalog.*not a catalogue URL"):
        parse_plan(base + "catalog: mysql://db/fleet\n")


def test_a_server_lost_mid_session_is_one_clear_line(tmp_path):
    from helpers.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        catalog = Catalog(server.new_database())
        catalog.allocate_episode(session_id="s", plan="p", task="pour", lighting="dim", weight="heavy")
    finally:
        server.stop()
    where = r"postgresql://postgres@127\.0\.0\.1:\d+/catalog_\d+_1"
    with pytest.raises(DataError, match=where + ": (cannot open|catalogue error)"):
        catalog.episodes()
