"""Plan cells claimed with a lease, so any number of stations on one plan never over-collect a cell.

A plan's need is laid out as slots: one row per good take a cell needs (cell_slots). A station claims
one free slot at a time, among the cells its plan's order prefers (`cells`, best first); the claim is
a lease on the catalogue's own clock (one clock for every station) that its heartbeats renew. A good
take completes the slot; any other take frees it again (and counts the attempt). A station that dies
stops renewing, its lease runs out and the next station to ask takes the slot.

The claim is one short write transaction on either engine: on PostgreSQL it locks only the slot it
picks (`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent stations pick different slots without
waiting for each other); on SQLite the transaction's BEGIN IMMEDIATE already serializes them.

The slots follow the catalogue, which stays the truth about takes (`reconcile`): a slot whose take is no
longer good (discarded, marked failed, overridden by a reviewer) is free again, and a good take of this
station that holds no slot (recovered after a crash, or judged good after its claim ended) completes a
free slot of its cell if one is left; if none is, it is an extra take: kept, counted, never lost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

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
# The slots still to take, per cell: a claim walks only these (a big plan's done slots are most of them).
_FREE_INDEX = "CREATE INDEX IF NOT EXISTS cell_slots_open ON cell_slots (plan, task, lighting, weight, slot) WHERE done = 0"

Cell = Tuple[str, str, str]
_CELL = "task=? AND lighting=? AND weight=?"


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


@dataclass(frozen=True)
class Reconciled:
    reopened: List[str]  # episodes whose slots were freed (no longer good takes)
    completed: List[str]  # this station's good takes that completed a free slot
    extra: List[str]  # this station's good takes with no slot left for them


class CellClaims:
    def __init__(self, catalog: Catalog, plan: str, lease_s: float = DEFAULT_LEASE_S):
        self.db = catalog.db
        self.plan = plan
        self.lease_s = float(lease_s)
        with self.db.writing() as conn:
            conn.execute(self.db.ddl(_TABLE))
            conn.execute(_FREE_INDEX)

    def need(self, needs: Iterable[Tuple[Cell, int]],
             done: Union[None, Mapping[Cell, Sequence[str]], Callable[[], Mapping[Cell, Sequence[str]]]] = None) -> None:
        """Lay out the slots: `needs` gives each cell's good takes wanted. Idempotent, so every station
        may call it on start; slots already laid out (claimed or done) are left as they are, free slots
        beyond a cell's need (the plan asks fewer now) are dropped.

        `done`: good takes the catalogue already holds per cell (a dataset recorded before claims, or a
        catalogue rebuilt): they complete the first slots, but only when the plan is laid out for the
        first time; afterwards each station accounts its own takes (`reconcile`). A callable is called
        only then (reading a big plan's good takes is worth saving on every later start)."""
        needs = [(tuple(cell), int(count)) for cell, count in needs]
        with self.db.writing() as conn:
            # Cells already laid out as slots 0..count-1 are left alone: a big plan's restart writes nothing.
            laid_out = {(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in conn.execute(
                "SELECT task, lighting, weight, COUNT(*), MAX(slot) FROM cell_slots WHERE plan=?"
                " GROUP BY task, lighting, weight", (self.plan,)).fetchall()}
            fresh = not laid_out
            if callable(done):
                done = done() if fresh else None
            rows = []
            for cell, count in needs:
                if laid_out.get(cell, (0, -1)) == (count, count - 1):
                    continue
                taken = list((done or {}).get(cell, ()))[:count] if fresh else []
                rows += [(self.plan, *cell, slot, 1 if slot < len(taken) else 0,
                          taken[slot] if slot < len(taken) else "") for slot in range(count)]
            conn.executemany("INSERT INTO cell_slots (plan, task, lighting, weight, slot, done, episode_id)"
                             " VALUES (?,?,?,?,?,?,?) ON CONFLICT (plan, task, lighting, weight, slot) DO NOTHING",
                             rows)
            conn.executemany(f"DELETE FROM cell_slots WHERE plan=? AND {_CELL} AND slot>=? AND done=0 AND"
                             " holder IS NULL", [(self.plan, *cell, count) for cell, count in needs
                                                 if laid_out.get(cell, (0, -1))[1] >= count])

    def claim(self, station: str, cells: Optional[Sequence[Cell]] = None) -> Optional[Claim]:
        """The next free slot (never held, or its lease ran out) for `station`; None when none is left.

        `cells`: only these cells, the first that has a free slot (the plan's order of preference);
        without it, any cell (fewest attempts first).

        One statement: it picks the slot (ranking the wanted cells in a VALUES list joined on the slots'
        key, so only their open slots are read), locks it (PostgreSQL: rows another station is claiming
        this instant are skipped, not waited for) and takes it."""
        now = self.db.now
        open_slot = f"s.plan=? AND s.done=0 AND (s.holder IS NULL OR s.lease_until < {now})"
        if cells is None:
            wanted, params = "", ()
            pick = (f"SELECT s.plan AS p_plan, s.task AS p_task, s.lighting AS p_lighting, s.weight AS p_weight,"
                    f" s.slot AS p_slot FROM cell_slots s WHERE {open_slot}"
                    f" ORDER BY s.attempts, s.task, s.lighting, s.weight, s.slot LIMIT 1{self.db.skip_locked_of('s')}")
        else:
            cells = [tuple(cell) for cell in cells]
            if not cells:
                return None
            wanted = ("WITH wanted (task, lighting, weight, rank) AS (VALUES "
                      + ", ".join(["(?, ?, ?, ?)"] * len(cells)) + ") ")
            params = tuple(value for rank, cell in enumerate(cells) for value in (*cell, rank))
            pick = (f"SELECT s.plan AS p_plan, s.task AS p_task, s.lighting AS p_lighting, s.weight AS p_weight,"
                    f" s.slot AS p_slot FROM wanted w JOIN cell_slots s ON s.task=w.task AND s.lighting=w.lighting"
                    f" AND s.weight=w.weight WHERE {open_slot}"
                    f" ORDER BY w.rank, s.slot LIMIT 1{self.db.skip_locked_of('s')}")
        with self.db.one_statement() as conn:
            row = conn.execute(
                f"{wanted}UPDATE cell_slots SET holder=?, lease_until={now} + ?, claims=claims+1 FROM ({pick}) AS picked"
                " WHERE plan=p_plan AND task=p_task AND lighting=p_lighting AND weight=p_weight AND slot=p_slot"
                " RETURNING task, lighting, weight, slot, lease_until",
                (*params, station, self.lease_s, self.plan)).fetchone()
        if row is None:
            return None
        return Claim(self.plan, row[0], row[1], row[2], int(row[3]), station, float(row[4]))

    def renew(self, station: str, conn=None) -> int:
        """Extend every lease `station` holds (its heartbeat); how many it holds. `conn`: inside that
        write transaction (the heartbeat's), else in one of its own."""
        if conn is None:
            with self.db.writing(serialized=False) as conn:
                return self.renew(station, conn)
        return conn.execute(f"UPDATE cell_slots SET lease_until={self.db.now} + ? WHERE plan=? AND holder=?"
                            " AND done=0", (self.lease_s, self.plan, station)).rowcount

    def finish(self, claim: Claim, good: bool, episode_id: str = "") -> bool:
        """A good take completes the slot, any other frees it for the next claim. False if the claim
        was no longer this station's (its lease ran out and another station took the slot)."""
        done = ", done=1, episode_id=?" if good else ", holder=NULL, lease_until=NULL"
        params = (episode_id,) if good else ()
        with self.db.writing(serialized=False) as conn:
            return conn.execute(
                f"UPDATE cell_slots SET attempts=attempts+1{done} WHERE plan=? AND {_CELL}"
                " AND slot=? AND holder=? AND done=0",
                (*params, self.plan, *claim.cell, claim.slot, claim.holder)).rowcount == 1

    def release(self, station: str, claim: Optional[Claim] = None) -> int:
        """Free `claim` (or every slot `station` holds) without counting an attempt: the station stops,
        or restarts after a crash and settles its takes anew. How many were freed."""
        which, params = "", ()
        if claim is not None:
            which, params = f" AND {_CELL} AND slot=?", (*claim.cell, claim.slot)
        with self.db.writing(serialized=False) as conn:
            return conn.execute(f"UPDATE cell_slots SET holder=NULL, lease_until=NULL WHERE plan=? AND holder=?"
                                f" AND done=0{which}", (self.plan, station, *params)).rowcount

    def reconcile(self, rows: Callable[[], Iterable[Mapping]], station: str,
                  good: Callable[[Mapping], bool], cell: Optional[Cell] = None) -> Tuple[List[Mapping], Reconciled]:
        """Bring the slots in line with the catalogue (see the module's docstring); returns the plan's rows
        (`rows()` reads them) and what changed. Writes only when something changed. `cell`: only that
        cell's slots (`rows()` then reads that cell's rows).

        The slots are read before the rows: a slot completed by another station's take is then never
        judged against a row read before that take ended (it would look unfinished, hence not good)."""
        which, params = (f" AND {_CELL}", tuple(cell)) if cell is not None else ("", ())
        with self.db.reading() as conn:
            done = {r[0] for r in conn.execute(f"SELECT episode_id FROM cell_slots WHERE plan=? AND done=1{which}",
                                               (self.plan, *params)).fetchall()}
        rows = list(rows())
        lost = [r["episode_id"] for r in rows if r["episode_id"] in done and not good(r)]
        mine = [r for r in rows if r["station"] == station and r["episode_id"] not in done and good(r)]
        completed, extra = [], []
        if lost:
            with self.db.writing(serialized=False) as conn:
                conn.executemany("UPDATE cell_slots SET done=0, episode_id='', holder=NULL, lease_until=NULL"
                                 " WHERE plan=? AND done=1 AND episode_id=?", [(self.plan, e) for e in lost])
        for row in mine:
            cell = (row["task"], row["lighting"], row["weight"])
            (completed if self.complete(cell, row["episode_id"]) else extra).append(row["episode_id"])
        return rows, Reconciled(lost, completed, extra)

    def slot_counts(self) -> Dict[Cell, Tuple[int, int]]:
        """Per cell: its slots and how many of them are done, in one GROUP BY over the plan's key."""
        with self.db.reading() as conn:
            rows = conn.execute("SELECT task, lighting, weight, COUNT(*), SUM(done) FROM cell_slots WHERE plan=?"
                                " GROUP BY task, lighting, weight", (self.plan,)).fetchall()
        return {(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in rows}

    def complete(self, cell: Cell, episode_id: str) -> bool:
        """A good take recorded without a claim completes a free slot of its cell; False if none is free."""
        now = self.db.now
        with self.db.writing(serialized=False) as conn:
            free = conn.execute(f"SELECT slot FROM cell_slots WHERE plan=? AND {_CELL} AND done=0 AND"
                                f" (holder IS NULL OR lease_until < {now}) ORDER BY slot LIMIT 1{self.db.skip_locked}",
                                (self.plan, *cell)).fetchone()
            if free is None:
                return False
            conn.execute(f"UPDATE cell_slots SET done=1, episode_id=?, holder=NULL, lease_until=NULL WHERE plan=?"
                         f" AND {_CELL} AND slot=?", (episode_id, self.plan, *cell, free[0]))
        return True

    def slots(self) -> List[dict]:
        with self.db.reading() as conn:
            rows = conn.execute("SELECT * FROM cell_slots WHERE plan=? ORDER BY task, lighting, weight, slot",
                                (self.plan,)).fetchall()
        return [r.as_dict() for r in rows]

    def held(self) -> Dict[Cell, List[str]]:
        """Who holds a live lease on which cell (for waiting stations and the floor's view)."""
        with self.db.reading() as conn:
            rows = conn.execute(f"SELECT task, lighting, weight, holder FROM cell_slots WHERE plan=? AND done=0"
                                f" AND holder IS NOT NULL AND lease_until >= {self.db.now}", (self.plan,)).fetchall()
        held: Dict[Cell, List[str]] = {}
        for row in rows:
            held.setdefault((row[0], row[1], row[2]), []).append(row[3])
        return held
