"""The fleet's stations: each registers what it is (robot, cameras, software version, host) and sends
heartbeats, on the catalogue's clock, so the floor can tell which stations are alive."""
from __future__ import annotations

import json
from typing import Dict, List, Sequence

from collector.session.catalog import Catalog

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

    def heartbeat(self, station: str, state: str = "") -> bool:
        """The station is alive (and what it is doing); False if it never registered."""
        with self.db.writing(serialized=False) as conn:
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
