"""Plan cells claimed with a lease, so any number of stations on one plan never over-collect a cell.

A plan's need is laid out as slots: one row per take a cell still needs (cell_slots). A station claims
one free slot at a time; the claim is a lease on the catalogue's own clock (one clock for every
station) that its heartbeats renew. A good take completes the slot; a failed take frees it again
(and counts the attempt). A station that dies stops renewing, its lease runs out and the next
station to ask takes the slot.

The claim is one short write transaction on either engine: on PostgreSQL it locks only the slot it
picks (`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent stations pick different slots without
waiting for each other); on SQLite the transaction's BEGIN IMMEDIATE already serializes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from collector.session.catalog import Catalog

DEFAULT_LEASE_S = 60.0

_TABLE = """
CREATE TABLE IF NOT EXISTS cell_slots (
    plan        TEXT NOT NULL,
    task        TEXT NOT NULL,
    lighting    TEXT NOT NULL,
    weight      TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    holder      TEXT,
    lease_until REAL,
    claims      INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,
    episode_id  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, task, lighting, weight, slot)
)"""

Cell = Tuple[str, str, str]


@dataclass(frozen=True)
class Claim:
    plan: str
    task: str
    lighting: str
    weight: str
    slot: int
    holder: str
    lease_until: float

    @property
    def cell(self) -> Cell:
        return (self.task, self.lighting, self.weight)


class CellClaims:
    def __init__(self, catalog: Catalog, plan: str, lease_s: float = DEFAULT_LEASE_S):
        self.db = catalog.db
        self.plan = plan
        self.lease_s = float(lease_s)
        with self.db.writing() as conn:
            conn.execute(self.db.ddl(_TABLE))

    def need(self, needs: Iterable[Tuple[Cell, int]]) -> None:
        """Lay out the slots: `needs` gives each cell's takes still wanted. Idempotent, so every station
        may call it on start; slots already laid out (claimed or done) are left as they are."""
        rows = [(self.plan, *cell, slot) for cell, count in needs for slot in range(int(count))]
        with self.db.writing() as conn:
            conn.executemany("INSERT INTO cell_slots (plan, task, lighting, weight, slot) VALUES (?,?,?,?,?)"
                             " ON CONFLICT (plan, task, lighting, weight, slot) DO NOTHING", rows)

    def claim(self, station: str) -> Optional[Claim]:
        """The next free slot (never held, or its lease ran out) for `station`; None when none is left."""
        now = self.db.now
        with self.db.writing(serialized=False) as conn:
            free = conn.execute(
                f"SELECT task, lighting, weight, slot FROM cell_slots WHERE plan=? AND done=0"
                f" AND (holder IS NULL OR lease_until < {now})"
                f" ORDER BY attempts, task, lighting, weight, slot LIMIT 1{self.db.skip_locked}",
                (self.plan,)).fetchone()
            if free is None:
                return None
            row = conn.execute(
                f"UPDATE cell_slots SET holder=?, lease_until={now} + ?, claims=claims+1"
                " WHERE plan=? AND task=? AND lighting=? AND weight=? AND slot=? RETURNING lease_until",
                (station, self.lease_s, self.plan, *free)).fetchone()
        return Claim(self.plan, free[0], free[1], free[2], int(free[3]), station, float(row[0]))

    def renew(self, station: str) -> int:
        """Extend every lease `station` holds (its heartbeat); how many it holds."""
        with self.db.writing(serialized=False) as conn:
            return conn.execute(f"UPDATE cell_slots SET lease_until={self.db.now} + ? WHERE plan=? AND holder=?"
                                " AND done=0", (self.lease_s, self.plan, station)).rowcount

    def finish(self, claim: Claim, good: bool, episode_id: str = "") -> bool:
        """A good take completes the slot, any other frees it for the next claim. False if the claim
        was no longer this station's (its lease ran out and another station took the slot)."""
        done = ", done=1, episode_id=?" if good else ", holder=NULL, lease_until=NULL"
        params = (episode_id,) if good else ()
        with self.db.writing(serialized=False) as conn:
            return conn.execute(
                f"UPDATE cell_slots SET attempts=attempts+1{done} WHERE plan=? AND task=? AND lighting=? AND"
                " weight=? AND slot=? AND holder=? AND done=0",
                (*params, self.plan, *claim.cell, claim.slot, claim.holder)).rowcount == 1

    def slots(self) -> List[dict]:
        with self.db.reading() as conn:
            rows = conn.execute("SELECT * FROM cell_slots WHERE plan=? ORDER BY task, lighting, weight, slot",
                                (self.plan,)).fetchall()
        return [r.as_dict() for r in rows]
