"""Coverage of a plan: for every cell, good takes done against takes needed.

A take is *good* when it was kept, the outcome is success and it passed QA. Failed or QA-failing
takes are kept in the dataset (they are data too) and count as attempts, so a cell the operator
cannot do is abandoned after `plan.attempts_cap` attempts instead of looping forever.
Discarded takes count as neither: the operator threw them away to re-record.
With the plan's `count: accepted` a take is good only once the reviewers accepted it too (the catalogue's
review_verdict, collector/review): an unreviewed or rejected take is an attempt, not a good take.
A take cut short by a crash, a signal or a full disk (`interrupted_by` set) is an attempt for the
order of cells, but not an operator's failed attempt: it never uses up the cell's attempt limit, so
a cell cannot be given up because the station crashed.

When the dataset's catalogue holds a policy evaluation, coverage carries its success per cell
(`policy`) and shows it beside the demonstrations. A plan with `focus: {by: weak_cells, extra_takes: N}`
asks a cell for up to N takes more than takes_per_cell, in proportion to how often the policy failed there.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional

from collector.session.cells import Cell, plan_cells
from collector.session.plan import Plan
from collector.session.policy_records import PolicySuccess

# Statuses of takes that were actually attempted on a cell (discarded ones were thrown away to re-record).
ATTEMPT_STATUSES = ("kept", "recovered", "interrupted")


def is_good(row: Mapping, count: str = "good") -> bool:
    """Does the take count toward its cell? count: the plan's `count` (good, or accepted by the reviewers)."""
    good = row["status"] in ("kept", "recovered") and row["outcome"] == "success" and row["qa"] == "pass"
    return good and (count != "accepted" or review_verdict(row) == "accepted")


def review_verdict(row: Mapping) -> str:
    """The reviewers' verdict of a row ('unreviewed' for rows from before reviews existed)."""
    try:
        return str(row["review_verdict"] or "unreviewed")
    except (KeyError, AttributeError):
        return "unreviewed"


def was_interrupted(row: Mapping) -> bool:
    """Cut short by a crash, a signal or a full disk (rows without the column: as their status says)."""
    try:
        return bool(row["interrupted_by"])
    except (KeyError, AttributeError):
        return row["status"] in ("recovered", "interrupted")


@dataclass
class Coverage:
    plan: Plan
    good_counts: Counter = field(default_factory=Counter)
    attempt_counts: Counter = field(default_factory=Counter)
    capped_counts: Counter = field(default_factory=Counter)  # attempts that count towards the limit
    policy: PolicySuccess = field(default_factory=PolicySuccess)  # latest evaluation's success per cell

    @classmethod
    def from_rows(cls, plan: Plan, rows: Iterable[Mapping], policy: Optional[PolicySuccess] = None) -> "Coverage":
        """Coverage from catalogue rows (dict-like: task, lighting, weight, status, outcome, qa)."""
        coverage = cls(plan, policy=policy or PolicySuccess())
        for row in rows:
            cell = Cell(row["task"], row["lighting"], row["weight"])
            if row["status"] in ATTEMPT_STATUSES:
                coverage.attempt_counts[cell] += 1
                if not was_interrupted(row):
                    coverage.capped_counts[cell] += 1
            if is_good(row, plan.count):
                coverage.good_counts[cell] += 1
        return coverage

    def good(self, cell: Cell) -> int:
        return self.good_counts[cell]

    def attempts(self, cell: Cell) -> int:
        return self.attempt_counts[cell]

    def total_attempts(self) -> int:
        return sum(self.attempt_counts[cell] for cell in plan_cells(self.plan))

    def needed_for(self, cell: Cell) -> int:
        """Good takes the cell needs: takes_per_cell, plus the focus's extra takes where the policy fails."""
        extra = self.plan.focus.extra_takes if self.plan.focus.weak_cells and self.policy else 0
        return self.plan.takes_per_cell + round(extra * (1.0 - self.policy.rate(cell)))

    def attempts_cap(self, cell: Cell) -> int:
        """Attempts before the cell is given up: as the plan says, but never fewer than the takes it needs."""
        if self.plan.max_attempts_per_cell:
            return max(self.plan.max_attempts_per_cell, self.needed_for(cell))
        return 3 * self.needed_for(cell)

    def is_done(self, cell: Cell) -> bool:
        return self.good(cell) >= self.needed_for(cell)

    def gave_up(self, cell: Cell) -> bool:
        return not self.is_done(cell) and self.capped_counts[cell] >= self.attempts_cap(cell)

    def is_open(self, cell: Cell) -> bool:
        return not self.is_done(cell) and not self.gave_up(cell)

    @property
    def done(self) -> int:
        return sum(min(self.good(c), self.needed_for(c)) for c in plan_cells(self.plan))

    @property
    def needed(self) -> int:
        return sum(self.needed_for(c) for c in plan_cells(self.plan))

    @property
    def complete(self) -> bool:
        return all(self.is_done(c) for c in plan_cells(self.plan))

    def abandoned_cells(self) -> List[Cell]:
        return [c for c in plan_cells(self.plan) if self.gave_up(c)]

    def as_dict(self) -> Dict:
        """JSON shape used by the dashboard and `collector session --json`."""
        return {
            "plan": self.plan.name,
            "tasks": [t.name for t in self.plan.tasks],
            "lighting": list(self.plan.lighting),
            "weights": list(self.plan.weights),
            "needed_per_cell": self.plan.takes_per_cell,
            "done": self.done,
            "needed": self.needed,
            "cells": [
                {"task": c.task, "lighting": c.lighting, "weight": c.weight, "good": self.good(c),
                 "attempts": self.attempts(c), "needed": self.needed_for(c),
                 "state": "done" if self.is_done(c) else ("gave_up" if self.gave_up(c) else "open"),
                 "policy_success": _policy_cell(self.policy.of(c))}
                for c in plan_cells(self.plan)
            ],
            "focus": self.plan.focus.by,
            "count": self.plan.count,
            "policy_evaluations": self.policy.evaluations,
        }

    def table(self) -> str:
        """A text matrix: one row per (task, weight), one column per lighting preset, cells 'good/needed'.

        A cell that was given up on shows its attempts with '!' (e.g. '0/2 !6'). When a policy was
        evaluated, each cell also shows its success there ('2/2 p 25%'; 'p -' where it was not tried)."""
        plan = self.plan
        row_labels = [f"{t.name} / {w}" for t in plan.tasks for w in plan.weights]
        first = max([len("task / weight")] + [len(label) for label in row_labels])
        cells_text = {}
        for task in plan.tasks:
            for weight in plan.weights:
                for light in plan.lighting:
                    cell = Cell(task.name, light, weight)
                    text = f"{self.good(cell)}/{self.needed_for(cell)}"
                    if self.gave_up(cell):
                        text += f" !{self.attempts(cell)}"
                    if self.policy:
                        text += f" p {_percent(self.policy.of(cell))}"
                    cells_text[cell] = text
        width = max([len(light) for light in plan.lighting] + [len(t) for t in cells_text.values()])
        lines = ["task / weight".ljust(first) + "  " + "  ".join(light.rjust(width) for light in plan.lighting)]
        lines.append("-" * len(lines[0]))
        for task in plan.tasks:
            for weight in plan.weights:
                label = f"{task.name} / {weight}"
                values = [cells_text[Cell(task.name, light, weight)].rjust(width) for light in plan.lighting]
                lines.append(label.ljust(first) + "  " + "  ".join(values))
        counted = "accepted" if self.plan.count == "accepted" else "good"
        lines.append(f"coverage: {self.done}/{self.needed} {counted} takes")
        if self.policy:
            lines.append(f"p: policy success in {self.policy.describe()}")
        return "\n".join(lines)


def _policy_cell(found: Optional[Dict]) -> Optional[Dict]:
    if found is None:
        return None
    return {"successes": found["successes"], "rollouts": found["rollouts"],
            "success_rate": round(found["success_rate"], 4)}


def _percent(found: Optional[Dict]) -> str:
    return f"{100 * found['success_rate']:.0f}%" if found else "-"
