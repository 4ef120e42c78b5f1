"""The dataset catalogue: every episode and every session, in a dataset folder's SQLite file (the default)
or on a PostgreSQL server (a `postgresql://` URL, for a fleet); collector/session/catalog_engine.py holds
the little that differs between the two.

Several stations (processes, possibly on several machines) write one catalogue:
- readers (the dashboard, `collector catalog`) never block writers (SQLite in WAL mode; PostgreSQL MVCC);
- every write is one short transaction that takes the write lock up front (SQLite `BEGIN IMMEDIATE`
  with a generous busy timeout; PostgreSQL an advisory lock), so a second writer waits instead of failing;
- episode numbers are allocated inside such a transaction (max + 1), so two stations can never get the
  same number, and since rows are never deleted no number is ever reused or skipped.
Connections are per operation (SQLite) or pooled (PostgreSQL), so a Catalog object is safe to use from any
thread. A folder bound to a server (its catalog.url) opens the server's catalogue even when given the path.

Episode status (the lifecycle):
  recording   number allocated, take in progress (if its station is not running, the take was interrupted)
  kept        finished, file in episodes/
  recovered   interrupted, and its partial file was recovered into a valid episode in episodes/
  interrupted interrupted and nothing could be recovered (any partial file is in discarded/)
  discarded   thrown away by the operator, file moved to discarded/ (kept until `catalog clean`)
  purged      discarded and its file deleted by `catalog clean`

`interrupted_by` says why a take did not run to its own end: '' (it did), 'SIGINT'/'SIGTERM'/'SIGHUP'
(finalized early because the process was asked to stop), 'crash' (the process died; settled on
resume) or 'disk_full' (the recorder stopped itself for lack of space). Such takes are not an
operator's attempt at the cell, so they do not count towards `max_attempts_per_cell`.

Reviews (collector/review/annotations.py): every saved record of a reviewer's labels is one row of
`reviews` (unique by record_id, so mirroring a save twice changes nothing); the episode row carries what
they add up to: `review_verdict` (unreviewed/accepted/rejected/disputed), `reviewers` (how many gave
labels) and, when a reviewer overrode the outcome, `outcome` is the reviewer's word while
`recorded_outcome` keeps what was recorded ('' while no reviewer has overridden it).

`location` is where a published episode lives (the URL of its verified remote copy, set by
collector/fleet/publisher.py; '' while only the station's folder has it): a reader on another machine,
or after the local copy was deleted, finds the episode there.

At a fleet's scale (a million rows, issue 18) every list is one indexed query and coverage one
GROUP BY (`cell_counts`): the indexes below match the filters the tools use (a cell with its outcome
and verdict; a plan's cells with what coverage counts, so the GROUP BY reads the index only).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from sqlalchemy.exc import DBAPIError

from collector.errors import DataError
from collector.session.catalog_engine import (Connection, Database, bound_url, error_reason, is_catalog_url,
                                              public_url)

SCHEMA_VERSION = 6  # 2: episodes.interrupted_by; 3: policies, evaluations, evaluation_cells; 4: reviews;
# 5: episodes.location and the indexes for a million episodes; 6: indexes for a station's, an operator's
# and the QA-failed lists
STATUSES = ("recording", "kept", "recovered", "interrupted", "discarded", "purged")
OUTCOMES = ("success", "failure", "unknown")
QA_STATES = ("pending", "pass", "fail")
INTERRUPTIONS = ("", "SIGINT", "SIGTERM", "SIGHUP", "crash", "disk_full")
REVIEW_VERDICTS = ("unreviewed", "accepted", "rejected", "disputed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    episode_index INTEGER PRIMARY KEY,
    episode_id    TEXT NOT NULL UNIQUE,
    session_id    TEXT NOT NULL,
    plan          TEXT NOT NULL,
    task          TEXT NOT NULL,
    instruction   TEXT NOT NULL DEFAULT '',
    lighting      TEXT NOT NULL,
    weight        TEXT NOT NULL,
    operator      TEXT NOT NULL DEFAULT '',
    station       TEXT NOT NULL DEFAULT '',
    robot         TEXT NOT NULL DEFAULT '',
    backend       TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'recording',
    outcome       TEXT NOT NULL DEFAULT 'unknown',
    qa            TEXT NOT NULL DEFAULT 'pending',
    qa_problems   TEXT NOT NULL DEFAULT '[]',
    duration_s    REAL,
    path          TEXT,
    conditions    TEXT NOT NULL DEFAULT '{}',
    note          TEXT NOT NULL DEFAULT '',
    interrupted_by TEXT NOT NULL DEFAULT '',
    review_verdict TEXT NOT NULL DEFAULT 'unreviewed',
    reviewers     INTEGER NOT NULL DEFAULT 0,
    recorded_outcome TEXT NOT NULL DEFAULT '',
    location      TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    updated_at    TEXT NOT NULL
);
-- A station's takes by status and task (its kept pours, its takes left 'recording' after a crash).
CREATE INDEX IF NOT EXISTS episodes_station ON episodes (station, status, task);
-- A cell's takes by outcome and verdict ("successful pours under dim light with heavy objects, accepted").
CREATE INDEX IF NOT EXISTS episodes_condition ON episodes (task, lighting, weight, outcome, review_verdict);
-- Everything coverage counts, per plan and cell: its GROUP BY never touches the table.
CREATE INDEX IF NOT EXISTS episodes_plan_cell ON episodes
    (plan, task, lighting, weight, status, outcome, qa, review_verdict, interrupted_by);
-- An operator's takes by outcome (their failures).
CREATE INDEX IF NOT EXISTS episodes_operator_outcome ON episodes (operator, outcome);
-- Takes that failed QA, by cell: a few percent of the rows, so a partial index only they are in.
CREATE INDEX IF NOT EXISTS episodes_qa_failed ON episodes (task, lighting, weight) WHERE qa = 'fail';
-- Only published episodes carry a location: a partial index stays as small as they are few.
CREATE INDEX IF NOT EXISTS episodes_published ON episodes (location) WHERE location <> '';
CREATE TABLE IF NOT EXISTS sessions (
    session_id  TEXT PRIMARY KEY,
    plan        TEXT NOT NULL,
    plan_fingerprint TEXT NOT NULL,
    station     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    state       TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    resumed     INTEGER NOT NULL DEFAULT 0
);
-- Trained policies and their evaluations (collector/session/policy_records.py), so plans, the
-- dashboard and the next training run find which policy learnt from which episodes and how it fared.
CREATE TABLE IF NOT EXISTS policies (
    policy_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    checkpoint        TEXT NOT NULL,
    checkpoint_sha256 TEXT NOT NULL UNIQUE,
    policy            TEXT NOT NULL,
    episodes          TEXT NOT NULL DEFAULT '[]',
    details           TEXT NOT NULL DEFAULT '{}',
    created           TEXT NOT NULL,
    recorded_at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    evaluation_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id         INTEGER REFERENCES policies (policy_id),
    checkpoint        TEXT NOT NULL,
    checkpoint_sha256 TEXT NOT NULL,
    policy            TEXT NOT NULL,
    success_rate      REAL NOT NULL,
    rollouts          INTEGER NOT NULL,
    results           TEXT NOT NULL,
    created           TEXT NOT NULL,
    recorded_at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluation_cells (
    evaluation_id INTEGER NOT NULL REFERENCES evaluations (evaluation_id),
    task          TEXT NOT NULL,
    lighting      TEXT NOT NULL,
    weight        TEXT NOT NULL,
    theme         TEXT NOT NULL DEFAULT '',
    rollouts      INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    success_rate  REAL NOT NULL,
    episodes      TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS evaluation_cells_evaluation ON evaluation_cells (evaluation_id);
-- Reviewers' labels mirrored from the episode files, one row per saved record (the files stay the truth).
CREATE TABLE IF NOT EXISTS reviews (
    review_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    episode_index INTEGER NOT NULL REFERENCES episodes (episode_index),
    reviewer      TEXT NOT NULL,
    record_id     TEXT NOT NULL UNIQUE,
    revision      INTEGER NOT NULL DEFAULT 0,
    verdict       TEXT,
    reasons       TEXT NOT NULL DEFAULT '[]',
    outcome       TEXT,
    subtasks      TEXT NOT NULL DEFAULT '[]',
    instructions  TEXT NOT NULL DEFAULT '[]',
    notes         TEXT NOT NULL DEFAULT '',
    saved_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_episode ON reviews (episode_index);
"""

# Catalogues of schema 1 lack `interrupted_by`: opening one adds it, filled from what the rows say
# (recovered/interrupted rows were settled after a crash; a Ctrl-C'd take's note says so).
# Catalogues of schema 1 or 2 lack the policy tables: CREATE TABLE IF NOT EXISTS adds them on open.
_MIGRATE_TO_2 = (
    "ALTER TABLE episodes ADD COLUMN interrupted_by TEXT NOT NULL DEFAULT ''",
    "UPDATE episodes SET interrupted_by='crash' WHERE status IN ('recovered', 'interrupted')",
    "UPDATE episodes SET interrupted_by='SIGINT' WHERE status='kept' AND note LIKE '%interrupted by Ctrl-C%'",
)

# Catalogues of schema 1-3 lack the review columns (the reviews table comes with CREATE TABLE IF NOT EXISTS).
_MIGRATE_TO_4 = (
    "ALTER TABLE episodes ADD COLUMN review_verdict TEXT NOT NULL DEFAULT 'unreviewed'",
    "ALTER TABLE episodes ADD COLUMN reviewers INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE episodes ADD COLUMN recorded_outcome TEXT NOT NULL DEFAULT ''",
)

# Catalogues of schema 1-4 lack `location` (no episode of theirs was recorded as published) and the
# indexes for large catalogues (CREATE INDEX IF NOT EXISTS adds them); the plan-cell index replaces
# episodes_cell, whose columns it begins with.
_MIGRATE_TO_5 = (
    "ALTER TABLE episodes ADD COLUMN location TEXT NOT NULL DEFAULT ''",
    "DROP INDEX IF EXISTS episodes_cell",
)

# Catalogues of schema 1-5 have the narrower station and operator indexes that schema 6's begin with
# (CREATE INDEX IF NOT EXISTS adds the new ones; rows are untouched).
_MIGRATE_TO_6 = (
    "DROP INDEX IF EXISTS episodes_station_status",
    "DROP INDEX IF EXISTS episodes_operator",
)

# Columns a caller may change after the row exists (numbers, ids and cells never change).
_UPDATABLE = ("status", "outcome", "qa", "qa_problems", "duration_s", "path", "note", "finished_at", "conditions",
              "interrupted_by", "location")
_FILTERABLE = ("plan", "task", "lighting", "weight", "operator", "station", "robot", "backend", "status",
               "outcome", "qa", "session_id", "interrupted_by", "review_verdict", "location")
# Columns whose values come from a fixed vocabulary.
_VOCABULARIES = {"status": STATUSES, "outcome": OUTCOMES, "qa": QA_STATES, "review_verdict": REVIEW_VERDICTS}
# Filter names that differ from their column (`verdict` reads better on the command line).
_FILTER_COLUMNS = {"verdict": "review_verdict"}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def episode_id_for(index: int) -> str:
    return f"episode_{index:06d}"


@dataclass(frozen=True)
class EpisodeRow:
    episode_index: int
    episode_id: str
    session_id: str
    plan: str
    task: str
    instruction: str
    lighting: str
    weight: str
    operator: str
    station: str
    robot: str
    backend: str
    status: str
    outcome: str
    qa: str
    qa_problems: List[str]
    duration_s: Optional[float]
    path: Optional[str]
    conditions: Dict[str, Any]
    note: str
    interrupted_by: str
    started_at: str
    finished_at: Optional[str]
    updated_at: str
    review_verdict: str = "unreviewed"
    reviewers: int = 0
    recorded_outcome: str = ""
    location: str = ""

    @property
    def verdict(self) -> str:
        return self.review_verdict

    def __getitem__(self, key):  # lets Coverage read rows and plain dicts alike
        return getattr(self, key)

    def __getattr__(self, name):
        # Only for attributes not set: `conditions` of a row read from the catalogue, decoded when first
        # asked for. A recorded take's conditions are kilobytes of JSON (lights, layout, masses) that
        # most lists never look at; decoding them all made up most of a long list's time.
        text = self.__dict__.get("_conditions_json") if name == "conditions" else None
        if text is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = self.__dict__["conditions"] = _json_or(text, "{}", dict)
        return value

    def as_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in _ROW_FIELDS}

    @classmethod
    def from_sql(cls, row) -> "EpisodeRow":
        return cls.from_values(row.as_dict())

    @classmethod
    def from_values(cls, values: Dict[str, Any]) -> "EpisodeRow":
        """A row from its column values (a dict it may keep)."""
        values["qa_problems"] = _json_or(values["qa_problems"], "[]", list)
        values["_conditions_json"] = values.pop("conditions")
        # A list may return thousands of rows: the fields are set at once, not by the frozen
        # dataclass's __init__ (one object.__setattr__ per field made it 3x slower; no field validates).
        episode = cls.__new__(cls)
        episode.__dict__.update(values)
        return episode


_ROW_FIELDS = tuple(f.name for f in fields(EpisodeRow))


class Catalog:
    """A dataset's catalogue: a SQLite file (a Path) or a PostgreSQL database (a `postgresql://` URL)."""

    def __init__(self, target: Union[Path, str]):
        if not is_catalog_url(target):
            target = bound_url(Path(target)) or Path(target)  # a folder bound to a server opens the server's
        if is_catalog_url(target):
            self.path = public_url(str(target))  # what messages name (never the password)
        else:
            self.path = Path(target)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(str(target) if is_catalog_url(target) else self.path)
        try:
            self._create_schema()
        except DBAPIError as exc:
            raise DataError(f"{self.path}: not a usable catalogue ({error_reason(exc)}); restore it from a backup"
                            " or move it away (`collector catalog rebuild` re-creates it from the episode files)"
                            ) from None

    @property
    def is_postgres(self) -> bool:
        return self.db.is_postgres

    def _create_schema(self) -> None:
        key = ("schema", self.db.where)
        if self.is_postgres and key in _READY:
            return  # one check per process: a server catalogue is opened by many short-lived Catalog objects
        self.db.prepare_file()
        with self.db.writing() as conn:
            version = self.db.schema_version(conn)
            if version > SCHEMA_VERSION:
                raise DataError(f"{self.path}: catalogue schema {version} is newer than this collector "
                                f"understands ({SCHEMA_VERSION}); upgrade collector")
            columns = self.db.columns(conn, "episodes")
            if columns and "interrupted_by" not in columns:
                for statement in _MIGRATE_TO_2:
                    conn.execute(statement)
            if columns and "review_verdict" not in columns:
                for statement in _MIGRATE_TO_4:
                    conn.execute(statement)
            if columns and "location" not in columns:
                for statement in _MIGRATE_TO_5:
                    conn.execute(statement)
            if columns and version < 6:
                for statement in _MIGRATE_TO_6:
                    conn.execute(statement)
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(self.db.ddl(statement))
            if version != SCHEMA_VERSION:
                self.db.set_schema_version(conn, SCHEMA_VERSION)
        _READY.add(key)

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction, the write lock taken up front (SQLite BEGIN IMMEDIATE, PostgreSQL an
        advisory lock). Statements use `?` placeholders; rows read as row[0] or row["name"]."""
        with self.db.writing() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for queries only (it never blocks a writer)."""
        with self.db.reading() as conn:
            yield conn

    # -- episodes ------------------------------------------------------------------------------
    def allocate_episode(self, *, session_id: str, plan: str, task: str, lighting: str, weight: str,
                         instruction: str = "", operator: str = "", station: str = "", robot: str = "",
                         backend: str = "", conditions: Optional[Dict] = None) -> EpisodeRow:
        """Reserve the next episode number for a take that is about to start (status 'recording')."""
        now = utc_now()
        with self.transaction() as conn:
            index = conn.execute("SELECT COALESCE(MAX(episode_index), 0) + 1 FROM episodes").fetchone()[0]
            row = conn.execute(
                "INSERT INTO episodes (episode_index, episode_id, session_id, plan, task, instruction, lighting,"
                " weight, operator, station, robot, backend, conditions, started_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING *",
                (index, episode_id_for(index), session_id, plan, task, instruction, lighting, weight, operator,
                 station, robot, backend, json.dumps(conditions or {}, sort_keys=True, default=str), now, now),
            ).fetchone()
        return EpisodeRow.from_sql(row)

    def insert_episode(self, row: Dict[str, Any]) -> None:
        """Insert a complete row as is (used by `catalog rebuild`, which takes numbers from the files)."""
        self.insert_episodes([row])

    def insert_episodes(self, rows: Sequence[Dict[str, Any]]) -> None:
        """Insert complete rows as they are, in one transaction (rows with the same columns)."""
        prepared = [_episode_values(row) for row in rows]
        if not prepared:
            return
        columns = list(prepared[0])
        with self.transaction() as conn:
            conn.executemany(f"INSERT INTO episodes ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                             [tuple(values[c] for c in columns) for values in prepared])

    def update_episode(self, episode_index: int, **fields: Any) -> EpisodeRow:
        unknown = set(fields) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        _check_value("status", fields.get("status"), STATUSES)
        _check_value("outcome", fields.get("outcome"), OUTCOMES)
        _check_value("qa", fields.get("qa"), QA_STATES)
        _check_value("interrupted_by", fields.get("interrupted_by"), INTERRUPTIONS)
        if "qa_problems" in fields:
            fields["qa_problems"] = json.dumps(list(fields["qa_problems"]))
        if "conditions" in fields:
            fields["conditions"] = json.dumps(fields["conditions"], sort_keys=True, default=str)
        fields["updated_at"] = utc_now()
        assignments = ", ".join(f"{name}=?" for name in fields)
        with self.transaction() as conn:
            row = conn.execute(f"UPDATE episodes SET {assignments} WHERE episode_index=? RETURNING *",
                               (*fields.values(), episode_index)).fetchone()
            if row is None:
                raise DataError(f"{self.path}: no episode number {episode_index} in the catalogue")
        return EpisodeRow.from_sql(row)

    def episode(self, key) -> EpisodeRow:
        """One episode by number (int or digits) or id ('episode_000007')."""
        with self.reading() as conn:
            if isinstance(key, int) or str(key).isdigit():
                row = conn.execute("SELECT * FROM episodes WHERE episode_index=?", (int(key),)).fetchone()
            else:
                row = conn.execute("SELECT * FROM episodes WHERE episode_id=?", (str(key),)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: no episode {key!r} in the catalogue")
        return EpisodeRow.from_sql(row)

    def episodes(self, order: str = "episode_index", **filters: Any) -> List[EpisodeRow]:
        """Episodes matching every filter; a filter value may be a single value or a list of values.
        `published=True/False`: only episodes with (without) a location on shared storage.

        e.g. episodes(task="pour", lighting="dim", outcome="success")"""
        where, params = _where(filters)
        if order not in ("episode_index", "started_at"):
            raise ValueError(order)
        with self.reading() as conn:
            rows = conn.execute(f"SELECT * FROM episodes{where} ORDER BY {order}", params).dicts()
        return [EpisodeRow.from_values(r) for r in rows]

    def values(self, name: str) -> List[str]:
        """Distinct values of one filterable column (every status), sorted."""
        name = _FILTER_COLUMNS.get(name, name)
        if name not in _FILTERABLE:
            raise ValueError(f"cannot list values of {name!r} (one of: {', '.join(_FILTERABLE)})")
        with self.reading() as conn:
            return sorted(str(r[0]) for r in conn.execute(f"SELECT DISTINCT {name} FROM episodes").fetchall())

    def cell_counts(self, plan: str, count: str = "good") -> Dict[tuple, Dict[str, int]]:
        """Per (task, lighting, weight) of a plan: its good takes, attempts and the attempts that count
        towards the cell's limit, as collector/session/coverage.py defines them, in one GROUP BY."""
        attempted = "status IN ('kept', 'recovered', 'interrupted')"
        good = good_sql(count)
        with self.reading() as conn:
            rows = conn.execute(
                f"SELECT task, lighting, weight, SUM(CASE WHEN {good} THEN 1 ELSE 0 END),"
                f" SUM(CASE WHEN {attempted} THEN 1 ELSE 0 END),"
                f" SUM(CASE WHEN {attempted} AND interrupted_by = '' THEN 1 ELSE 0 END)"
                " FROM episodes WHERE plan=? GROUP BY task, lighting, weight", (plan,)).fetchall()
        return {(r[0], r[1], r[2]): {"good": int(r[3]), "attempts": int(r[4]), "capped": int(r[5])} for r in rows}

    def totals(self, plan: str) -> Dict[str, int]:
        """A plan's takes by what became of them (the session's totals), in one GROUP BY on the plan-cell index."""
        kept = "status IN ('kept', 'recovered')"
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT COUNT(CASE WHEN {kept} THEN 1 END), COUNT(CASE WHEN {kept} AND outcome = 'success' THEN 1 END),"
                f" COUNT(CASE WHEN {kept} AND outcome = 'failure' THEN 1 END),"
                f" COUNT(CASE WHEN {kept} AND qa = 'fail' THEN 1 END),"
                " COUNT(CASE WHEN status IN ('discarded', 'purged') THEN 1 END),"
                " COUNT(CASE WHEN status = 'interrupted' THEN 1 END) FROM episodes WHERE plan=?", (plan,)).fetchone()
        return dict(zip(("episodes", "succeeded", "failed", "failed_validation", "discarded", "interrupted"),
                        (int(value) for value in row)))

    def coverage(self, plan, policy=None):
        """The plan's Coverage (collector/session/coverage.py) from one GROUP BY, not from every row:
        equal to Coverage.from_rows(plan, episodes(plan=plan.name), policy)."""
        from collector.session.cells import Cell
        from collector.session.coverage import Coverage

        coverage = Coverage(plan) if policy is None else Coverage(plan, policy=policy)
        for (task, lighting, weight), counts in self.cell_counts(plan.name, plan.count).items():
            cell = Cell(task, lighting, weight)
            for counter, key in ((coverage.good_counts, "good"), (coverage.attempt_counts, "attempts"),
                                 (coverage.capped_counts, "capped")):
                if counts[key]:
                    counter[cell] = counts[key]
        return coverage

    def set_location(self, episode, url: str) -> bool:
        """Record where the episode (number or id) now lives on shared storage; False if no such episode."""
        return self.set_locations({episode: url}) == 1

    def set_locations(self, locations: Dict[Any, str]) -> int:
        """set_location for many episodes in one transaction (rows already there are left alone);
        how many rows changed."""
        changed = 0
        now = utc_now()
        with self.transaction() as conn:
            for episode, url in locations.items():
                by_number = isinstance(episode, int) or str(episode).isdigit()
                key = "episode_index" if by_number else "episode_id"
                changed += conn.execute(f"UPDATE episodes SET location=?, updated_at=? WHERE {key}=? AND location<>?",
                                        (url, now, int(episode) if by_number else str(episode), url)).rowcount
        return changed

    def last_episode(self, session_id: str) -> Optional[EpisodeRow]:
        with self.reading() as conn:
            row = conn.execute("SELECT * FROM episodes WHERE session_id=? ORDER BY episode_index DESC LIMIT 1",
                               (session_id,)).fetchone()
        return EpisodeRow.from_sql(row) if row else None

    # -- reviews -------------------------------------------------------------------------------
    def record_review(self, episode, review) -> EpisodeRow:
        """Mirror a reviewer's saved labels (a saved `Labels`, a list of them, or a whole `Review`) into
        the catalogue and update the episode's verdict, reviewer count and outcome.

        `episode` is the episode number or id. Records already here (same record_id) are left as they
        are, so calling this again after every save, or on a rebuild, is harmless."""
        records = _records_of(review)
        row = self.episode(episode)
        with self.transaction() as conn:
            for labels in records:
                if not getattr(labels, "record_id", ""):
                    raise DataError(f"{self.path}: {row.episode_id}: a review record without record_id "
                                    "(record what save_labels returned)")
                conn.execute(
                    "INSERT INTO reviews (episode_index, reviewer, record_id, revision, verdict, reasons,"
                    " outcome, subtasks, instructions, notes, saved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (record_id) DO NOTHING",
                    (row.episode_index, labels.reviewer, labels.record_id, int(labels.revision), labels.verdict,
                     json.dumps(list(labels.reasons)), labels.outcome,
                     json.dumps([_subtask_json(s) for s in labels.subtasks]), json.dumps(list(labels.instructions)),
                     labels.notes or "", labels.saved_at or utc_now()))
            summary = _review_of(_review_rows(conn, row.episode_index))
            fields = {"review_verdict": summary.verdict, "reviewers": len(summary.latest())}
            current = conn.execute("SELECT outcome, recorded_outcome FROM episodes WHERE episode_index=?",
                                   (row.episode_index,)).fetchone()
            override = summary.outcome
            if override:  # the reviewer's word; what was recorded stays beside it
                fields.update(outcome=override, recorded_outcome=current["recorded_outcome"] or current["outcome"])
            elif current["recorded_outcome"]:  # the override was withdrawn: back to the recorded outcome
                fields.update(outcome=current["recorded_outcome"], recorded_outcome="")
            fields["updated_at"] = utc_now()
            updated = conn.execute(f"UPDATE episodes SET {', '.join(f'{k}=?' for k in fields)}"
                                   " WHERE episode_index=? RETURNING *",
                                   (*fields.values(), row.episode_index)).fetchone()
        return EpisodeRow.from_sql(updated)

    def review(self, episode):
        """The episode's labels as the catalogue mirrors them: a collector.review.annotations.Review."""
        row = self.episode(episode)
        with self.reading() as conn:
            return _review_of(_review_rows(conn, row.episode_index))

    def review_records(self, **filters: Any) -> List[Dict[str, Any]]:
        """Every mirrored review record (JSON columns decoded), oldest first, of the episodes matching filters."""
        where, params = _where(filters, table="episodes.")
        with self.reading() as conn:
            rows = conn.execute("SELECT reviews.*, episodes.episode_id FROM reviews JOIN episodes USING"
                                f" (episode_index){where} ORDER BY episode_index, revision, saved_at",
                                params).fetchall()
        return [_decoded_review(r) for r in rows]

    # -- sessions ------------------------------------------------------------------------------
    def open_session(self, *, session_id: str, plan: str, plan_fingerprint: str, station: str, operator: str,
                     host: str, pid: int) -> bool:
        """Record a session as running. Returns True if it existed already (a resume)."""
        now = utc_now()
        with self.transaction() as conn:
            existing = conn.execute("SELECT 1 FROM sessions WHERE session_id=?", (session_id,)).fetchone()
            if existing:
                conn.execute("UPDATE sessions SET state='running', host=?, pid=?, updated_at=?, resumed=resumed+1"
                             " WHERE session_id=?", (host, pid, now, session_id))
            else:
                conn.execute("INSERT INTO sessions (session_id, plan, plan_fingerprint, station, operator, state,"
                             " host, pid, started_at, updated_at, resumed) VALUES (?,?,?,?,?,'running',?,?,?,?,0)",
                             (session_id, plan, plan_fingerprint, station, operator, host, pid, now, now))
        return bool(existing)

    def close_session(self, session_id: str, state: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE sessions SET state=?, updated_at=? WHERE session_id=?",
                         (state, utc_now(), session_id))

    def sessions(self, **filters: Any) -> List[Dict[str, Any]]:
        unknown = set(filters) - set(_SESSION_COLUMNS)
        if unknown:
            raise ValueError(f"cannot filter sessions on {sorted(unknown)}")
        clauses = " AND ".join(f"{k}=?" for k in filters)
        with self.reading() as conn:
            rows = conn.execute(f"SELECT * FROM sessions{' WHERE ' + clauses if clauses else ''}"
                                " ORDER BY started_at", tuple(filters.values())).fetchall()
        return [dict(r) for r in rows]

    def integrity_ok(self) -> bool:
        return self.db.integrity_ok()


# Schema checks done in this process, per PostgreSQL catalogue (SQLite files are checked on every open,
# as before: a file can be replaced under a running process by `catalog rebuild`).
_READY: set = set()
_SESSION_COLUMNS = ("session_id", "plan", "plan_fingerprint", "station", "operator", "state", "host", "pid",
                    "started_at", "updated_at", "resumed")


def good_sql(count: str = "good", table: str = "") -> str:
    """SQL true for a good take, as collector/session/coverage.py's is_good defines it (`count`: the plan's)."""
    good = (f"{table}status IN ('kept', 'recovered') AND {table}outcome = 'success' AND {table}qa = 'pass'")
    return good + (f" AND {table}review_verdict = 'accepted'" if count == "accepted" else "")


def _where(filters: Dict[str, Any], table: str = "") -> tuple:
    """The WHERE clause and parameters of episodes(**filters): every filter an `IN`, so one indexed query."""
    clauses, params = [], []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "published":
            clauses.append(f"{table}location {'<>' if value else '='} ''")
            continue
        name = _FILTER_COLUMNS.get(name, name)
        if name not in _FILTERABLE:
            raise ValueError(f"cannot filter on {name!r} (one of: {', '.join(_FILTERABLE)}, published)")
        values = [value] if isinstance(value, (str, int)) else list(value)
        vocabulary = _VOCABULARIES.get(name, ())
        if values and all(isinstance(v, str) and v in vocabulary for v in values):
            # The catalogue's own words, written into the statement (from the vocabulary, never the
            # caller's string): a partial index on one of them (qa = 'fail') is then one the planner can use.
            words = [f"'{word}'" for word in vocabulary if word in values]
            clauses.append(f"{table}{name} = {words[0]}" if len(words) == 1 else f"{table}{name} IN ({', '.join(words)})")
            continue
        clauses.append(f"{table}{name} IN ({','.join('?' * len(values))})" if values else "1=0")
        params.extend(values)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _json_or(text: Optional[str], empty: str, kind):
    """Decoded JSON; the empty value without parsing (most rows have no QA problems)."""
    return kind() if not text or text == empty else json.loads(text)


def _episode_values(row: Dict[str, Any]) -> Dict[str, Any]:
    values = dict(row)
    values["qa_problems"] = json.dumps(list(values.get("qa_problems", [])))
    values["conditions"] = json.dumps(values.get("conditions", {}), sort_keys=True, default=str)
    values.setdefault("updated_at", utc_now())
    return values


def _records_of(review) -> List[Any]:
    """The saved Labels in what record_review was given: a Review, a list of Labels, one Labels or None."""
    if review is None:
        return []
    if hasattr(review, "records"):
        return list(review.records)
    if isinstance(review, (list, tuple)):
        return list(review)
    return [review]


def _subtask_json(subtask) -> Dict[str, Any]:
    return {"name": subtask.name, "start_t": float(subtask.start_t), "end_t": float(subtask.end_t)}


def _review_rows(conn, episode_index: int) -> list:
    return conn.execute("SELECT * FROM reviews WHERE episode_index=? ORDER BY revision, saved_at",
                        (episode_index,)).fetchall()


def _decoded_review(row) -> Dict[str, Any]:
    values = dict(row)
    for key in ("reasons", "subtasks", "instructions"):
        values[key] = json.loads(values[key] or "[]")
    return values


def _review_of(rows: Sequence):
    """The rows as a Review, so the catalogue adds labels up exactly as the episode file's reader does."""
    from collector.review.annotations import Labels, Review

    return Review([Labels.from_json(_decoded_review(r)) for r in rows])


def _check_value(name: str, value, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"{name} {value!r} not in {allowed}")
