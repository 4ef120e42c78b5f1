"""What the floor manager's dashboard shows (`collector fleet`), computed from the catalogue.

`floor_snapshot` reads the catalogue with a few queries (the stations, the takes finished in the window
and the good takes per plan cell through a TakeReader, the claims' slots) and hands the rows to the pure
functions below, so every figure is a function of rows that a test can write and check by hand.

Definitions (docs/fleet.md, "The floor manager's dashboard"):
- a *take* is an attempted episode (status kept, recovered or interrupted; discarded ones were thrown
  away to re-record), counted in the hour its take finished;
- success rate: takes whose outcome is success / takes; QA-failure rate: takes that failed QA / takes
  whose QA was done (pass or fail). A rate over no takes is None (shown as "–"), never NaN;
- a station is online when its last heartbeat is at most `offline_after_s` old (the catalogue's clock);
- plan progress: good takes (coverage.is_good, capped at each cell's need) against the takes wanted,
  from the plan file when the dashboard was given it, else from the cell slots the stations claim.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from collector.session.cells import Cell, plan_cells
from collector.session.coverage import ATTEMPT_STATUSES, Coverage

ACTIVITIES = ("idle", "recording", "resetting", "stopped")
# The keys of a heartbeat's state (written by the session runner) and what an old station lacks.
STATE_DEFAULTS: Dict[str, Any] = {"activity": "unknown", "plan": "", "take": "", "cell": {}, "operator": "",
                                  "disk_free_bytes": None, "upload_backlog": None, "upload_backlog_bytes": None}
RATE_GROUPS = ("station", "operator", "task", "lighting", "weight")
SPARKLINE_HOURS = 12
# Up to this many recent rows, good takes are counted in Python over a primary-key range; beyond (numbers
# that do not follow time), the database counts them.
ROWS_BY_HAND = 50_000
TAKE_COLUMNS = ("episode_index, plan, station, operator, task, lighting, weight, status, outcome, qa, review_verdict,"
                " finished_at")


# -- stations ------------------------------------------------------------------------------------
def station_state(text: Optional[str]) -> Dict[str, Any]:
    """A heartbeat's state as a dict with every known key: a station that sends nothing, old text or
    broken JSON shows as 'unknown' rather than stopping the page."""
    try:
        found = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        found = {}
    if not isinstance(found, dict):
        found = {}
    state = dict(STATE_DEFAULTS)
    for key, default in STATE_DEFAULTS.items():
        value = found.get(key, default)
        if isinstance(default, str):
            state[key] = value if isinstance(value, str) else default
        elif isinstance(default, dict):
            state[key] = {str(k): _plain(v) for k, v in value.items()} if isinstance(value, dict) else {}
        else:
            state[key] = _count(value)
    if state["activity"] not in ACTIVITIES:
        state["activity"] = "unknown"
    return state


def station_cards(stations: Iterable[Mapping], offline_after_s: float) -> List[Dict[str, Any]]:
    """One card per registered station: what it is, whether it is online and what it is doing."""
    cards = []
    for row in stations:
        silent = _finite(row.get("silent_s"))
        online = silent is not None and silent <= offline_after_s
        state = station_state(row.get("state"))
        cards.append({"station": row["station"], "robot": row.get("robot", ""), "host": row.get("host", ""),
                      "version": row.get("version", ""), "cameras": list(row.get("cameras") or []),
                      "online": online, "silent_s": None if silent is None else round(silent, 1),
                      **state, "activity": state["activity"] if online else "offline"})
    return cards


# -- takes ---------------------------------------------------------------------------------------
def is_take(row: Mapping) -> bool:
    return row["status"] in ATTEMPT_STATUSES


def rates(rows: Iterable[Mapping], by: str) -> List[Dict[str, Any]]:
    """Takes, successes and QA failures per value of the column `by`, most takes first."""
    tallies: Dict[str, List[int]] = defaultdict(lambda: [0, 0, 0, 0])  # takes, successes, QA done, QA failed
    for row in rows:
        if not is_take(row):
            continue
        tally, qa = tallies[str(row[by] or "")], row["qa"]
        tally[0] += 1
        tally[1] += row["outcome"] == "success"
        tally[2] += qa == "pass" or qa == "fail"
        tally[3] += qa == "fail"
    out = [{"value": value, "takes": takes, "successes": good, "qa_checked": checked, "qa_failures": failed,
            "success_rate": _ratio(good, takes), "qa_failure_rate": _ratio(failed, checked)}
           for value, (takes, good, checked, failed) in tallies.items()]
    return sorted(out, key=lambda g: (-g["takes"], g["value"]))


def takes_per_hour(rows: Iterable[Mapping], now: datetime, hours: int = SPARKLINE_HOURS) -> List[int]:
    """Takes finished in each of the last `hours` hours, oldest first: the last entry is the last hour."""
    counts = [0] * hours
    for row in rows:
        finished = _when(row["finished_at"])
        if finished is None or not is_take(row):
            continue
        age_h = (now - finished).total_seconds() / 3600.0
        if 0.0 <= age_h < hours:
            counts[hours - 1 - int(age_h)] += 1
    return counts


# -- plans ---------------------------------------------------------------------------------------
def plan_progress(good_by_cell: Mapping[tuple, int], slots: Iterable[Mapping], plans: Sequence = ()) -> List[Dict]:
    """Per plan: good takes against takes wanted.

    good_by_cell: {(plan, task, lighting, weight, counted): good takes}, where counted is 'accepted' for
    takes the reviewers accepted and 'good' otherwise; slots: per plan `wanted`, `done` and `claimed`
    (the claims' cell slots); plans: Plan objects the dashboard was given (their file says what is wanted)."""
    by_plan: Dict[str, Dict[str, Any]] = {}
    for (plan, *_cell, _counted), good in good_by_cell.items():
        entry = by_plan.setdefault(plan, _progress(plan))
        entry["good"] += good
    for slot in slots:
        entry = by_plan.setdefault(slot["plan"], _progress(slot["plan"]))
        entry.update(wanted=int(slot["wanted"]), good=int(slot["done"] or 0), claimed=int(slot["claimed"] or 0),
                     source="claims")
    for plan in plans:
        coverage = Coverage(plan, good_counts=_plan_good(plan, good_by_cell))
        entry = by_plan.setdefault(plan.name, _progress(plan.name))
        entry.update(wanted=coverage.needed, good=coverage.done, source="plan",
                     cells_done=sum(coverage.is_done(c) for c in plan_cells(plan)), cells=len(plan_cells(plan)))
    for entry in by_plan.values():
        entry["fraction"] = _ratio(min(entry["good"], entry["wanted"]), entry["wanted"]) if entry["wanted"] else None
    return sorted(by_plan.values(), key=lambda e: e["plan"])


def _progress(plan: str) -> Dict[str, Any]:
    return {"plan": plan, "good": 0, "wanted": None, "claimed": 0, "source": None}


def _plan_good(plan, good_by_cell: Mapping[tuple, int]) -> Counter:
    good: Counter = Counter()
    for (name, task, lighting, weight, counted), count in good_by_cell.items():
        if name == plan.name and (plan.count != "accepted" or counted == "accepted"):
            good[Cell(task, lighting, weight)] += count
    return good


# -- the snapshot --------------------------------------------------------------------------------
def floor_snapshot(catalog, registry, *, plans: Sequence = (), offline_after_s: float = 30.0,
                   hours: int = SPARKLINE_HOURS, now: Optional[datetime] = None,
                   reader: Optional["TakeReader"] = None) -> Dict[str, Any]:
    """Everything the page shows, as plain JSON data. `registry`: the StationRegistry, None while no station
    has registered. A server passes its `reader` to read less each time."""
    now = now or datetime.now(timezone.utc)
    takes, good_by_cell = (reader or TakeReader(catalog, hours)).read(now)
    registered = registry.stations(alive_within_s=offline_after_s) if registry is not None else []
    stations = station_cards(registered, offline_after_s)
    hourly = takes_per_hour(takes, now, hours)
    return {
        "stations": stations,
        "online": sum(s["online"] for s in stations),
        "takes_last_hour": hourly[-1],
        "takes_per_hour": hourly,
        "hours": hours,
        "rates": {by: rates(takes, by) for by in RATE_GROUPS},
        "plans": plan_progress(good_by_cell, claim_slots(catalog), plans),
    }


class TakeReader:
    """The window's takes and every plan cell's good takes, read so that repeating it every second stays
    cheap on a catalogue of a million takes.

    Episode numbers only grow, so the rows that can still change what the window shows are the ones from
    a boundary number on: the first take that is unfinished (started in the last day) or finished in the
    window. Every `settle_s` one full pass finds the boundary and counts the good takes below it (one
    GROUP BY); in between, each read fetches only the rows from the boundary on (a primary-key range).
    A change to a take older than the boundary (a review, `catalog mark`) shows at the next full pass."""

    def __init__(self, catalog, hours: int = SPARKLINE_HOURS, settle_s: float = 60.0):
        self.catalog = catalog
        self.hours = hours
        self.settle_s = settle_s
        self._boundary: Optional[int] = None
        self._settled_good: Dict[tuple, int] = {}
        self._settled_at = float("-inf")  # time.monotonic() of the last full pass

    def read(self, now: datetime):
        """(the window's takes, {(plan, task, lighting, weight, 'accepted'|'good'): good takes})."""
        since = now - timedelta(hours=self.hours)
        if self._boundary is None or time.monotonic() - self._settled_at >= self.settle_s:
            self._settle(since)
        with self.catalog.reading() as conn:
            rows = conn.execute(f"SELECT {TAKE_COLUMNS} FROM episodes WHERE episode_index >= ? AND finished_at >= ?"
                                f" AND status IN ({','.join('?' * len(ATTEMPT_STATUSES))})",
                                (self._boundary, _iso(since), *ATTEMPT_STATUSES)).fetchall()
            last = conn.execute("SELECT COALESCE(MAX(episode_index), 0) FROM episodes").fetchone()[0]
            recent_good = _good_takes(conn, ">=", self._boundary, grouped=last - self._boundary > ROWS_BY_HAND)
        takes = [r.as_dict() for r in rows]
        good = Counter(self._settled_good)
        good.update(recent_good)
        return [t for t in takes if _finished_since(t, since)], dict(good)

    def _settle(self, since: datetime) -> None:
        with self.catalog.reading() as conn:
            first = conn.execute(
                "SELECT MIN(episode_index) FROM episodes WHERE finished_at >= ? OR (finished_at IS NULL AND"
                " started_at >= ?)", (_iso(since), _iso(since - timedelta(days=1)))).fetchone()[0]
            if first is None:  # nothing in the window: from the next number on
                first = conn.execute("SELECT COALESCE(MAX(episode_index), 0) + 1 FROM episodes").fetchone()[0]
            self._settled_good = _good_takes(conn, "<", first)
        self._boundary, self._settled_at = int(first), time.monotonic()


_GOOD = "status IN ('kept', 'recovered') AND outcome = 'success' AND qa = 'pass'"  # coverage.is_good in SQL


def _good_takes(conn, side: str, boundary: int, grouped: bool = True) -> Dict[tuple, int]:
    """Good takes per plan cell and verdict, of the episodes numbered below (`<`) or from (`>=`) boundary:
    counted by the database (its covering index serves a GROUP BY, but reads it whole), or, for a short
    range of recent numbers, by hand over that primary-key range."""
    good: Counter = Counter()
    if grouped:
        for row in conn.execute("SELECT plan, task, lighting, weight, review_verdict, COUNT(*) AS good FROM episodes"
                                f" WHERE episode_index {side} ? AND {_GOOD} GROUP BY plan, task, lighting, weight,"
                                " review_verdict", (boundary,)).fetchall():
            good[_good_key(row)] += int(row["good"])
    else:
        for row in conn.execute("SELECT plan, task, lighting, weight, review_verdict FROM episodes"
                                f" WHERE episode_index {side} ? AND {_GOOD}", (boundary,)).fetchall():
            good[_good_key(row)] += 1
    return dict(good)


def _finished_since(row, since: datetime) -> bool:
    finished = _when(row["finished_at"])
    return finished is not None and finished >= since


def _good_key(row) -> tuple:
    return (row["plan"], row["task"], row["lighting"], row["weight"],
            "accepted" if row["review_verdict"] == "accepted" else "good")


def has_table(catalog, table: str) -> bool:
    """Whether a fleet table exists yet (the page reads, it never creates them)."""
    with catalog.db.reading() as conn:
        return table in catalog.db.tables(conn)


def claim_slots(catalog) -> List[Dict[str, Any]]:
    """Per plan with cell slots: slots laid out, done, and held under a live lease (none before a fleet runs)."""
    if not has_table(catalog, "cell_slots"):
        return []
    db = catalog.db
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT plan, COUNT(*) AS wanted, SUM(done) AS done, SUM(CASE WHEN done = 0 AND holder IS NOT NULL"
            f" AND lease_until >= {db.now} THEN 1 ELSE 0 END) AS claimed FROM cell_slots GROUP BY plan").fetchall()
    return [r.as_dict() for r in rows]


# -- small helpers -------------------------------------------------------------------------------
def _ratio(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def _finite(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _count(value) -> Optional[int]:
    """A non-negative whole number from a station's report, or None (missing, text, NaN, negative)."""
    number = _finite(value)
    return int(number) if number is not None and number >= 0 and not isinstance(value, bool) else None


def _plain(value):
    return value if isinstance(value, (str, int, bool)) or value is None else (
        _finite(value) if isinstance(value, float) else str(value))


def _when(text) -> Optional[datetime]:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)



def _iso(moment: datetime) -> str:
    """A time as the catalogue writes it (utc_now), so the database compares it with its text."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
