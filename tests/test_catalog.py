"""The catalogue on both engines (SQLite, PostgreSQL): numbering, updates, queries, and several station
processes writing at once."""
import json
import subprocess
import sys
import textwrap

import pytest

from collector.errors import DataError
from collector.session.catalog import Catalog, episode_id_for


def _add(catalog, task, lighting, weight, outcome="success", qa="pass", station="st1"):
    row = catalog.allocate_episode(session_id="s1", plan="p", task=task, lighting=lighting, weight=weight,
                                   station=station, operator="ana", conditions={"lighting": {"name": lighting}})
    return catalog.update_episode(row.episode_index, status="kept", outcome=outcome, qa=qa,
                                  path=f"episodes/{row.episode_id}.h5", duration_s=3.5)


def test_numbers_are_sequential_and_rows_round_trip(catalog_location):
    catalog = Catalog(catalog_location)
    first = _add(catalog, "pour", "dim", "heavy")
    second = _add(catalog, "pick_place", "bright", "light", outcome="failure")
    assert (first.episode_index, first.episode_id) == (1, "episode_000001")
    assert second.episode_id == episode_id_for(2)
    again = Catalog(catalog_location).episode("episode_000001")
    assert again.conditions == {"lighting": {"name": "dim"}} and again.duration_s == 3.5
    assert catalog.episode(2).outcome == "failure"
    with pytest.raises(DataError, match="no episode 'episode_000009'"):
        catalog.episode("episode_000009")
    with pytest.raises(DataError, match="no episode number 9"):
        catalog.update_episode(9, note="x")
    with pytest.raises(ValueError):
        catalog.update_episode(1, outcome="great")


def test_queries_like_successful_pours_under_dim_light(catalog_location):
    catalog = Catalog(catalog_location)
    _add(catalog, "pour", "dim", "light")
    _add(catalog, "pour", "dim", "heavy", outcome="failure")
    _add(catalog, "pour", "bright", "light")
    _add(catalog, "pick_place", "dim", "light")
    _add(catalog, "pour", "dim", "heavy", qa="fail")
    hits = catalog.episodes(task="pour", lighting="dim", outcome="success")
    assert [r.episode_index for r in hits] == [1, 5]
    assert [r.episode_index for r in catalog.episodes(task="pour", lighting="dim", outcome="success", qa="pass")] == [1]
    assert len(catalog.episodes(lighting=["dim", "bright"], weight="light")) == 3
    with pytest.raises(ValueError, match="cannot filter on 'colour'"):
        catalog.episodes(colour="red")


WORKER = textwrap.dedent("""
    import json, sys
    from collector.session.catalog import Catalog
    path, station, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    catalog = Catalog(path)
    mine = []
    for i in range(count):
        row = catalog.allocate_episode(session_id=station, plan="p", task="pour", lighting="dim",
                                       weight="light", station=station)
        catalog.update_episode(row.episode_index, status="kept", outcome="success", qa="pass",
                               path=f"episodes/{row.episode_id}.h5", note=f"{station}-{i}")
        mine.append(row.episode_index)
    print(json.dumps(mine))
""")


def test_several_station_processes_share_one_catalogue(catalog_location):
    path = catalog_location
    Catalog(path)
    stations, per_station = 4, 30
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), f"station{k}", str(per_station)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(stations)]
    allocated = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        allocated.extend(json.loads(out))
    total = stations * per_station
    # no number given twice, none skipped
    assert sorted(allocated) == list(range(1, total + 1))
    catalog = Catalog(path)
    assert catalog.integrity_ok()
    rows = catalog.episodes()
    assert len(rows) == total and all(r.status == "kept" for r in rows)
    for k in range(stations):
        notes = [r.note for r in catalog.episodes(station=f"station{k}")]
        assert notes == [f"station{k}-{i}" for i in range(per_station)]


def test_sessions_are_recorded_and_resumes_counted(catalog_location):
    catalog = Catalog(catalog_location)
    kwargs = dict(session_id="s1", plan="p", plan_fingerprint="abc", station="st", operator="ana", host="h", pid=1)
    assert catalog.open_session(**kwargs) is False
    catalog.close_session("s1", "interrupted")
    assert catalog.open_session(**kwargs) is True
    (session,) = catalog.sessions(station="st")
    assert session["state"] == "running" and session["resumed"] == 1


def test_a_corrupt_catalogue_file_is_a_clear_error(tmp_path):
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception) as info:
        Catalog(path)
    assert isinstance(info.value, DataError) and str(path) in str(info.value)


LOCK_HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE being_created (x)")
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
""")


def test_a_new_catalogue_opens_while_another_process_is_creating_it(tmp_path):
    # Two stations started together on a new folder: while one creates the file (still in rollback mode)
    # SQLite refuses the other's switch to WAL at once instead of waiting (a real bug: `database is locked`).
    path = tmp_path / "catalog.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        catalog = Catalog(path)
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
    with catalog.reading() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
    assert {"being_created", "episodes", "sessions"} <= tables  # both creators' work is in the file
    assert catalog.episodes() == []
