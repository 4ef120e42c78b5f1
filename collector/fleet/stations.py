"""The fleet's stations: each registers what it is (robot, cameras, software version, host) and sends
heartbeats, on the catalogue's clock, so the floor can tell which stations are alive.

A running session sends them from a `Heartbeat` thread: every interval (a third of its claims' lease,
so two beats may be lost before a lease runs out) and at once when what it does changes, it writes
its state (collector/fleet/station_status.py) and renews the leases of the cells it holds, in one
transaction. The thread does the catalogue writes, so a take's control loop never waits on them.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable, Dict, List, Optional, Sequence

from collector.session.catalog import Catalog

log = logging.getLogger(__name__)

_TABLE = """
CREATE TABLE IF NOT EXISTS stations (
    station       TEXT PRIMARY KEY,
    robot         TEXT NOT NULL,
    cameras       TEXT NOT NULL DEFAULT '[]',
    version       TEXT NOT NULL,
    host          TEXT NOT NULL DEFAULT '',
    registered_at REAL NOT NULL,
    heartbeat_at  REAL NOT NULL,
    state         TEXT NOT NULL DEFAULT ''
)"""


class StationRegistry:
    def __init__(self, catalog: Catalog):
        self.db = catalog.db
        with self.db.writing() as conn:
            conn.execute(self.db.ddl(_TABLE))

    def register(self, station: str, *, robot: str, cameras: Sequence[str], version: str, host: str = "") -> None:
        """Record (or update, on a restart) what the station is; counts as a heartbeat."""
        now = self.db.now
        with self.db.writing(serialized=False) as conn:
            conn.execute(
                f"INSERT INTO stations (station, robot, cameras, version, host, registered_at, heartbeat_at)"
                f" VALUES (?,?,?,?,?,{now},{now}) ON CONFLICT (station) DO UPDATE SET robot=excluded.robot,"
                " cameras=excluded.cameras, version=excluded.version, host=excluded.host,"
                " heartbeat_at=excluded.heartbeat_at",
                (station, robot, json.dumps(list(cameras)), version, host))

    def heartbeat(self, station: str, state: str = "", claims=None) -> bool:
        """The station is alive (and what it is doing); False if it never registered. With `claims` (a
        CellClaims) the station's leases are renewed in the same transaction."""
        with self.db.writing(serialized=False) as conn:
            if claims is not None:
                claims.renew(station, conn)
            return conn.execute(f"UPDATE stations SET heartbeat_at={self.db.now}, state=? WHERE station=?",
                                (state, station)).rowcount == 1

    def stations(self, alive_within_s: float = 30.0) -> List[Dict]:
        """Every registered station with `alive` (a heartbeat within the window) and `silent_s`."""
        with self.db.reading() as conn:
            rows = conn.execute(f"SELECT *, {self.db.now} - heartbeat_at AS silent_s FROM stations"
                                " ORDER BY station").fetchall()
        out = []
        for row in rows:
            values = row.as_dict()
            values["cameras"] = json.loads(values["cameras"])
            values["alive"] = values["silent_s"] <= alive_within_s
            out.append(values)
        return out


class Heartbeat:
    """A daemon thread beating for `station`: `state()` gives the JSON-able state to write, and the leases
    the station holds in `claims` (a CellClaims, or None) are renewed with it. `beat_now()` wakes it
    after a change; changes within DEBOUNCE_S of each other make one beat (a take's start is several
    changes: resetting, idle, recording), written after the take's first moments rather than during them."""

    DEBOUNCE_S = 0.5

    def __init__(self, registry: StationRegistry, station: str, state: Callable[[], Dict], claims,
                 interval_s: float):
        self.registry = registry
        self.station = station
        self.state = state
        self.claims = claims
        self.interval_s = float(interval_s)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.beats = 0

    def start(self) -> "Heartbeat":
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.station}", daemon=True)
        self._thread.start()
        return self

    def beat_now(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and send one last beat (the caller's state says `stopped`)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
        self._beat()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._beat()
            if self._wake.wait(self.interval_s):
                self._stopping.wait(self.DEBOUNCE_S)
            self._wake.clear()

    def _beat(self) -> None:
        try:
            self.registry.heartbeat(self.station, json.dumps(self.state(), sort_keys=True), claims=self.claims)
            self.beats += 1
        except Exception as exc:  # the server is away for a moment: the next beat tries again
            log.warning("station %s: heartbeat failed: %s", self.station, exc)
