"""Trained policies and their evaluations, catalogued beside the episodes they learnt from.

`collector train` records each checkpoint it writes (which policy, trained on which episodes) in the
catalogue of the dataset folder it read; `collector eval` records its results.json there. Plans read
the latest evaluation to aim collection at the policy's weak cells, and coverage shows its success
next to the demonstrations of each cell.

Tables (collector/session/catalog.py): `policies` (one row per checkpoint file content, keyed by its
SHA-256, so re-registering the same file is harmless and a resumed run that rewrote the file is a new
row), `evaluations` (the whole results.json, plus the fields one filters on) and `evaluation_cells`
(one row per task x lighting x weight x theme cell of an evaluation).
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from collector.errors import DataError
from collector.file_digest import file_sha256
from collector.session.catalog import Catalog, utc_now
from collector.session.layout import DatasetLayout

CellKey = Tuple[str, str, str]  # (task, lighting, weight): a plan's cell, whatever the theme


def has_catalogue(dataset_dir) -> bool:
    return DatasetLayout(dataset_dir).exists()


def record_checkpoint(dataset_dir, checkpoint_path, *, policy: str, episodes: Iterable[str],
                      created: Optional[str] = None, checkpoint_sha256: Optional[str] = None,
                      details: Optional[Dict[str, Any]] = None) -> int:
    """Register a checkpoint trained on `episodes` (ids) of this dataset folder; returns its policy_id.

    `details` is free-form (steps, final loss, conditioning, filters) and is kept as JSON."""
    path = Path(checkpoint_path).expanduser().resolve()
    if checkpoint_sha256 is None:
        if not path.is_file():
            raise DataError(f"{path}: checkpoint file not found; cannot register it")
        checkpoint_sha256 = file_sha256(path)
    created = _utc_stamp(created or utc_now(), f"{path}: created")
    row = (str(path), checkpoint_sha256, str(policy), json.dumps(sorted(set(map(str, episodes)))),
           json.dumps(details or {}, sort_keys=True, default=str), created, utc_now())
    with _catalogue(dataset_dir).transaction() as conn:
        conn.execute(
            "INSERT INTO policies (checkpoint, checkpoint_sha256, policy, episodes, details, created, recorded_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT (checkpoint_sha256) DO UPDATE SET checkpoint=excluded.checkpoint,"
            " policy=excluded.policy, episodes=excluded.episodes, details=excluded.details,"
            " recorded_at=excluded.recorded_at", row)
        return conn.execute("SELECT policy_id FROM policies WHERE checkpoint_sha256=?",
                            (checkpoint_sha256,)).fetchone()[0]


def record_evaluation(dataset_dir, results: Dict[str, Any]) -> int:
    """Store one evaluation (the results.json dict of `collector eval`); returns its evaluation_id."""
    cells = _checked_results(results)
    created = _utc_stamp(results["created"], "evaluation results: created")
    with _catalogue(dataset_dir).transaction() as conn:
        known = conn.execute("SELECT policy_id FROM policies WHERE checkpoint_sha256=?",
                             (results["checkpoint_sha256"],)).fetchone()
        evaluation_id = conn.execute(
            "INSERT INTO evaluations (policy_id, checkpoint, checkpoint_sha256, policy, success_rate, rollouts,"
            " results, created, recorded_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING evaluation_id",
            (known[0] if known else None, results["checkpoint"], results["checkpoint_sha256"], results["policy"],
             float(results["success_rate"]), int(results["rollouts"]),
             json.dumps(results, sort_keys=True, default=str), created, utc_now())).fetchone()[0]
        conn.executemany(
            "INSERT INTO evaluation_cells (evaluation_id, task, lighting, weight, theme, rollouts, successes,"
            " success_rate, episodes) VALUES (?,?,?,?,?,?,?,?,?)",
            [(evaluation_id, c["task"], c["lighting"], c["weight"], c["theme"], c["rollouts"], c["successes"],
              c["success_rate"], json.dumps(c["episodes"])) for c in cells])
    return evaluation_id


def latest_evaluation(dataset_dir, task: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The newest evaluation (by its `created` stamp), or the newest with a cell of `task`; None if none.

    Returns the results dict as recorded, plus `evaluation_id`, `policy_id` and `recorded_at`."""
    if not has_catalogue(dataset_dir):
        return None
    where = " WHERE evaluation_id IN (SELECT evaluation_id FROM evaluation_cells WHERE task=?)" if task else ""
    with _catalogue(dataset_dir).reading() as conn:
        row = conn.execute(f"SELECT * FROM evaluations{where} ORDER BY created DESC, evaluation_id DESC LIMIT 1",
                           (task,) if task else ()).fetchone()
    return _evaluation_from_row(row) if row else None


@dataclass(frozen=True)
class PolicySuccess:
    """The latest evaluation's success per plan cell, for ordering cells and showing coverage.

    `evaluations` maps each task to a summary of the evaluation its cells come from; a task that
    was never evaluated is absent, and so are its cells."""

    cells: Dict[CellKey, Dict[str, Any]] = field(default_factory=dict)
    evaluations: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.evaluations)

    def of(self, cell) -> Optional[Dict[str, Any]]:
        return self.cells.get(tuple(cell))

    def rate(self, cell) -> float:
        """Success rate in the cell; a cell the policy was never tried in counts as 0 (nothing shows it works)."""
        found = self.of(cell)
        return found["success_rate"] if found else 0.0

    def describe(self) -> str:
        by_evaluation: Dict[int, List[str]] = {}
        for task, summary in self.evaluations.items():
            by_evaluation.setdefault(summary["evaluation_id"], []).append(task)
        parts = []
        for evaluation_id, tasks in by_evaluation.items():
            summary = self.evaluations[tasks[0]]
            parts.append(f"evaluation {evaluation_id} of {summary['policy']} {Path(summary['checkpoint']).name}"
                         f" ({summary['created'][:16].replace('T', ' ')} UTC, {', '.join(tasks)}:"
                         f" {100 * summary['success_rate']:.0f}% of {summary['rollouts']} rollouts)")
        return "; ".join(parts)


def policy_success(dataset_dir, tasks: Iterable[str]) -> PolicySuccess:
    """Per plan cell, the latest evaluation's success for that cell's task, summed over themes.

    Each task reads its own latest evaluation, so a pour-only evaluation does not hide an older
    pick-and-place one."""
    cells: Dict[CellKey, Dict[str, Any]] = {}
    summaries: Dict[str, Dict[str, Any]] = {}
    for task in dict.fromkeys(tasks):
        evaluation = latest_evaluation(dataset_dir, task)
        if evaluation is None:
            continue
        with _catalogue(dataset_dir).reading() as conn:
            rows = conn.execute("SELECT lighting, weight, SUM(successes), SUM(rollouts) FROM evaluation_cells"
                                " WHERE evaluation_id=? AND task=? GROUP BY lighting, weight",
                                (evaluation["evaluation_id"], task)).fetchall()
        for lighting, weight, successes, rollouts in rows:
            cells[(task, lighting, weight)] = {
                "successes": int(successes), "rollouts": int(rollouts),
                "success_rate": successes / rollouts if rollouts else 0.0,
                "evaluation_id": evaluation["evaluation_id"]}
        task_rollouts = sum(int(r[3]) for r in rows)
        summaries[task] = {
            "evaluation_id": evaluation["evaluation_id"], "policy": evaluation["policy"],
            "checkpoint": evaluation["checkpoint"], "created": evaluation["created"],
            "rollouts": task_rollouts,
            "success_rate": sum(int(r[2]) for r in rows) / task_rollouts if task_rollouts else 0.0}
    return PolicySuccess(cells, summaries)


def policies(dataset_dir) -> List[Dict[str, Any]]:
    """Registered checkpoints, oldest first, each with its evaluation count and latest success rate."""
    if not has_catalogue(dataset_dir):
        return []
    with _catalogue(dataset_dir).reading() as conn:
        rows = conn.execute(
            "SELECT p.*, (SELECT COUNT(*) FROM evaluations e WHERE e.checkpoint_sha256=p.checkpoint_sha256)"
            " AS evaluations, (SELECT e.success_rate FROM evaluations e WHERE e.checkpoint_sha256="
            "p.checkpoint_sha256 ORDER BY e.created DESC, e.evaluation_id DESC LIMIT 1) AS latest_success"
            " FROM policies p ORDER BY p.created, p.policy_id").fetchall()
    out = []
    for row in rows:
        values = dict(row)
        values["episodes"] = json.loads(values["episodes"])
        values["details"] = json.loads(values["details"])
        out.append(values)
    return out


def evaluations(dataset_dir) -> List[Dict[str, Any]]:
    """Every evaluation, oldest first (results dicts as in latest_evaluation)."""
    if not has_catalogue(dataset_dir):
        return []
    with _catalogue(dataset_dir).reading() as conn:
        rows = conn.execute("SELECT * FROM evaluations ORDER BY created, evaluation_id").fetchall()
    return [_evaluation_from_row(row) for row in rows]


# -- helpers ---------------------------------------------------------------------------------------
def _catalogue(dataset_dir) -> Catalog:
    layout = DatasetLayout(dataset_dir)
    if not layout.exists():
        raise DataError(f"{layout.root}: no catalogue ({layout.catalog_path.name}) in this folder;"
                        " policies and evaluations are recorded beside a session's episodes")
    return Catalog(layout.catalog_path)


def _evaluation_from_row(row) -> Dict[str, Any]:
    results = json.loads(row["results"])
    results.update(evaluation_id=row["evaluation_id"], policy_id=row["policy_id"], recorded_at=row["recorded_at"])
    return results


def _checked_results(results) -> List[Dict[str, Any]]:
    """The results' cells, normalized; a DataError naming the first field that is missing or wrong."""
    if not isinstance(results, dict):
        raise DataError(f"evaluation results: expected a JSON object, got {type(results).__name__}")
    for name, kind in (("checkpoint", str), ("checkpoint_sha256", str), ("policy", str), ("created", str),
                       ("rollouts", numbers.Integral), ("success_rate", numbers.Real), ("cells", list)):
        _require(results, name, kind, "evaluation results")
    cells = []
    for number, cell in enumerate(results["cells"]):
        where = f"evaluation results: cells[{number}]"
        if not isinstance(cell, dict):
            raise DataError(f"{where}: expected an object, got {type(cell).__name__}")
        for name, kind in (("task", str), ("lighting", str), ("weight", str), ("rollouts", numbers.Integral),
                           ("successes", numbers.Integral)):
            _require(cell, name, kind, where)
        if not 0 <= cell["successes"] <= cell["rollouts"]:
            raise DataError(f"{where}: successes {cell['successes']} not within 0..rollouts ({cell['rollouts']})")
        cells.append({"task": cell["task"], "lighting": cell["lighting"], "weight": cell["weight"],
                      "theme": str(cell.get("theme") or ""), "rollouts": int(cell["rollouts"]),
                      "successes": int(cell["successes"]),
                      "success_rate": cell["successes"] / cell["rollouts"] if cell["rollouts"] else 0.0,
                      "episodes": [str(e) for e in cell.get("episodes") or []]})
    return cells


def _require(mapping: dict, name: str, kind, where: str) -> None:
    value = mapping.get(name)
    wrong_type = not isinstance(value, kind) or isinstance(value, bool)
    if value is None or wrong_type or (isinstance(value, float) and not math.isfinite(value)):
        expected = {str: "a string", numbers.Integral: "an integer", list: "a list"}.get(kind, "a number")
        raise DataError(f"{where}: field {name!r} must be {expected}, got {value!r:.60}")


def _utc_stamp(text: str, where: str) -> str:
    """ISO-8601 normalized to UTC milliseconds, so stamps sort as text whatever their writer's format."""
    try:
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{where}: {text!r} is not an ISO-8601 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).isoformat(timespec="milliseconds")
