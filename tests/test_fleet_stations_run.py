"""A fleet on one plan, for real: three `collector collect` processes (simulation, scripted operator) claim
the plan's cells through the catalogue, on SQLite (one dataset folder) and on a real PostgreSQL server
(one folder per station). No cell gets more good takes than the plan asks, no episode id is used twice,
every station registers and its heartbeat says what it does; a station killed with kill -9 mid-take
loses its cell to another station once its lease runs out, and on restart its partial take is recovered
and accounted without counting its cell twice."""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from collector.fleet.claims import CellClaims
from collector.fleet.station_status import KEYS
from collector.fleet.stations import StationRegistry
from collector.errors import DataError
from collector.session.catalog import Catalog
from helpers.session import recorded_seconds

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 5.0  # a live station on a starved machine must still renew in time (heartbeat every 1.7 s)
PLAN = """\
name: hall
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright, dim, warm]
weights: [light]
takes_per_cell: 1
max_attempts_per_cell: 3
episode_time_limit_s: 12
order: balanced
seed: 3
"""
CELLS = {("pick_place", light, "light") for light in ("bright", "dim", "warm")}


def start_station(plan: Path, out: Path, station: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.Popen([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--out", str(out),
                             "--no-render", "--no-progress", "--station", station, "--operator-name", f"op-{station}",
                             "--claim-lease", str(LEASE_S), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def watch_states(catalog: Catalog, procs, seen: list) -> None:
    """Collect the stations' heartbeat states until every process has ended."""
    registry = None
    while any(p.poll() is None for p in procs):
        try:
            registry = registry or StationRegistry(catalog)
            seen.extend(json.loads(s["state"]) for s in registry.stations() if s["state"])
        except Exception:  # the catalogue is being created by the stations
            pass
        time.sleep(0.1)


def check_fleet(catalog: Catalog, stations) -> list:
    """Every cell has exactly its one good take, episode numbers are unique and gapless, every station
    registered with a recent heartbeat carrying the dashboard's keys."""
    rows = catalog.episodes(plan="hall")
    assert [r.episode_index for r in rows] == list(range(1, len(rows) + 1))
    assert len({r.episode_id for r in rows}) == len(rows)
    good = [r for r in rows if r.status in ("kept", "recovered") and r.outcome == "success" and r.qa == "pass"]
    assert sorted((r.task, r.lighting, r.weight) for r in good) == sorted(CELLS), \
        [(r.episode_id, r.station, r.lighting, r.weight, r.status, r.outcome) for r in rows]
    slots = CellClaims(catalog, "hall").slots()
    assert len(slots) == 3 and all(s["done"] == 1 for s in slots)
    assert sorted(s["episode_id"] for s in slots) == sorted(r.episode_id for r in good)
    registered = StationRegistry(catalog).stations(alive_within_s=30.0)
    assert [s["station"] for s in registered] == sorted(stations)
    for station in registered:
        state = json.loads(station["state"])
        assert station["alive"] and station["robot"] == "humanoid" and station["version"], station
        assert set(state) == set(KEYS) and state["activity"] == "stopped", state
        assert state["plan"] == "hall" and state["operator"] == f"op-{station['station']}"
        assert state["disk_free_bytes"] > 0 and state["upload_backlog"] == 0 == state["upload_backlog_bytes"]
    return rows


def _slots(catalog: Catalog) -> list:
    """The plan's slots, read only (an empty list until a station laid them out)."""
    try:
        with catalog.reading() as conn:
            return [r.as_dict() for r in conn.execute("SELECT * FROM cell_slots").fetchall()]
    except DataError:
        return []


def check_recording_states(seen: list, rows) -> None:
    """While recording, a heartbeat named the take and its cell."""
    by_id = {r.episode_id: r for r in rows}
    recording = [s for s in seen if s["activity"] == "recording"]
    assert recording, seen[-5:]
    for state in recording:
        row = by_id[state["take"]]
        assert state["cell"] == {"task": row.task, "lighting": row.lighting, "weight": row.weight}
        assert state["operator"] == row.operator


def test_three_stations_on_one_sqlite_folder_collect_each_cell_once(tmp_path):
    plan = tmp_path / "hall.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "data"
    procs = [start_station(plan, out, name) for name in ("st1", "st2", "st3")]
    seen: list = []
    watch_states(Catalog(out / "catalog.sqlite"), procs, seen)
    summaries = [finish(p) for p in procs]
    assert sum(s["recorded_now"] for s in summaries) == 3  # without claims each station recorded all 3 cells
    rows = check_fleet(Catalog(out / "catalog.sqlite"), ["st1", "st2", "st3"])
    assert len(rows) == 3
    check_recording_states(seen, rows)


def test_a_station_killed_mid_take_loses_its_cell_after_the_lease_and_recovers_its_take(tmp_path, postgres_url):
    plan = tmp_path / "hall.yaml"
    plan.write_text(PLAN)
    outs = {name: tmp_path / name for name in ("st1", "st2", "st3")}
    catalog = Catalog(postgres_url)
    doomed = start_station(plan, outs["st1"], "st1", "--catalog", postgres_url)
    deadline = time.monotonic() + 120
    while not [s for s in _slots(catalog) if s["holder"] == "st1"]:  # st1 claimed its first cell
        assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()[1][-3000:]
        time.sleep(0.05)
    others = [start_station(plan, outs[name], name, "--catalog", postgres_url) for name in ("st2", "st3")]
    episodes = outs["st1"] / "episodes"
    partial = None
    while partial is None or recorded_seconds(partial) < 1.0:  # st1 is a second into that take
        assert doomed.poll() is None and time.monotonic() < deadline, doomed.communicate()[1][-3000:]
        partial = next(iter(episodes.glob("*.partial.h5")), None)
        time.sleep(0.05)
    (held,) = [s for s in CellClaims(catalog, "hall").slots() if s["holder"] == "st1" and not s["done"]]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    (lease,) = [s for s in _slots(catalog) if s["holder"] == "st1" and not s["done"]]  # st1's last word
    assert (lease["task"], lease["lighting"], lease["weight"]) == (held["task"], held["lighting"], held["weight"])
    seen: list = []
    watch_states(catalog, others, seen)
    for proc in others:
        finish(proc)

    cell = (held["task"], held["lighting"], held["weight"])
    (taker,) = [r for r in catalog.episodes(plan="hall") if (r.task, r.lighting, r.weight) == cell
                and r.station != "st1"]
    started = datetime.fromisoformat(taker.started_at).timestamp()
    assert started >= lease["lease_until"] - 0.05, started - lease["lease_until"]  # not before st1's lease ran out
    assert taker.status == "kept" and taker.outcome == "success"

    # st1 comes back: its partial take is recovered and accounted; the cell is not counted twice.
    summary = finish(start_station(plan, outs["st1"], "st1"))  # the folder remembers its catalogue
    assert summary["recovered"] == 1 and summary["recorded_now"] == 0, summary
    rows = check_fleet(catalog, ["st1", "st2", "st3"])
    (lost,) = [r for r in rows if r.station == "st1" and (r.task, r.lighting, r.weight) == cell]
    assert (lost.status, lost.interrupted_by, lost.outcome) == ("recovered", "crash", "unknown"), lost
    assert (outs["st1"] / lost.path).is_file() and not list(episodes.glob("*.partial*"))
    (slot,) = [s for s in CellClaims(catalog, "hall").slots() if (s["task"], s["lighting"], s["weight"]) == cell]
    assert (slot["episode_id"], slot["claims"]) == (taker.episode_id, 2)  # st1's claim, then the taker's
    check_recording_states(seen, rows)


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_lease_that_is_not_a_positive_number_of_seconds_is_refused_before_anything_starts(tmp_path, capsys,
                                                                                           value):
    from collector.cli import main

    plan = tmp_path / "hall.yaml"
    plan.write_text(PLAN)
    with pytest.raises(SystemExit) as stopped:
        main(["collect", "--plan", str(plan), "--out", str(tmp_path / "data"), "--claim-lease", value])
    assert stopped.value.code == 2
    assert "--claim-lease" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_the_heartbeat_state_counts_the_takes_waiting_for_the_stations_destination(tmp_path):
    from collector.fleet.station_status import station_state
    from collector.fleet.upload_queue import UploadQueue

    episodes = tmp_path / "episodes"
    episodes.mkdir()
    files = {}
    for name, size in (("episode_000001.hdf5", 1000), ("episode_000002.hdf5", 2500),
                       ("episode_000002.hdf5.review.jsonl", 10), ("episode_000003.hdf5", 700)):
        files[name] = episodes / name
        files[name].write_bytes(b"x" * size)
    queue = UploadQueue(tmp_path)
    for name, destination in (("episode_000001.hdf5", "file:///share"), ("episode_000002.hdf5", "file:///share"),
                              ("episode_000002.hdf5.review.jsonl", "file:///share"),
                              ("episode_000003.hdf5", "s3://elsewhere")):
        queue.add(destination, f"episodes/{name}", name[:14], files[name])
    (first,) = [u for u in queue.all("file:///share") if u.episode_id == "episode_000001"]
    queue.mark_verified(first, url="file:///share/episodes/episode_000001.hdf5", sha256="0" * 64, size=1000,
                        local_mtime_ns=0)
    cell = {"task": "pour", "lighting": "dim", "weight": "heavy"}
    state = station_state(activity="recording", plan="hall", take="episode_000004", cell=cell, operator="ana",
                          dataset=tmp_path, publish_to="file:///share")
    assert list(state) == list(KEYS)
    assert (state["upload_backlog"], state["upload_backlog_bytes"]) == (1, 2510)  # episode 2 and its journal
    assert state["cell"] == cell and state["take"] == "episode_000004" and state["disk_free_bytes"] > 0
    idle = station_state(activity="idle", plan="hall", operator="ana", dataset=tmp_path)  # not publishing
    assert (idle["upload_backlog"], idle["upload_backlog_bytes"], idle["cell"], idle["take"]) == (0, 0, {}, "")
    with pytest.raises(ValueError):
        station_state(activity="napping", plan="hall", dataset=tmp_path)
