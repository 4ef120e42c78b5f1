"""Coverage of a plan: for every cell, good takes done against takes needed.

A take is *good* when it was kept, the outcome is success and it passed QA. Failed or QA-failing
takes are kept in the dataset (they are data too) and count as attempts, so a cell the operator
cannot do is abandoned after `plan.attempts_cap` attempts instead of looping forever.
Discarded takes count as neither: the operator threw them away to re-record.
A take cut short by a crash, a signal or a full disk (`interrupted_by` set) is an attempt for the
order of cells, but not an operator's failed attempt: it never uses up the cell's attempt limit, so
a cell cannot be given up because the station crashed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping

from collector.session.cells import Cell, plan_cells
from collector.session.plan import Plan

# Statuses of takes that were actually attempted on a cell (discarded ones were thrown away to re-record).
ATTEMPT_STATUSES = ("kept", "recovered", "interrupted")


def is_good(row: Mapping) -> bool:
    return row["status"] in ("kept", "recovered") and row["outcome"] == "success" and row["qa"] == "pass"


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

    @classmethod
    def from_rows(cls, plan: Plan, rows: Iterable[Mapping]) -> "Coverage":
        """Coverage from catalogue rows (dict-like: task, lighting, weight, status, outcome, qa)."""
        coverage = cls(plan)
        for row in rows:
            cell = Cell(row["task"], row["lighting"], row["weight"])
            if row["status"] in ATTEMPT_STATUSES:
                coverage.attempt_counts[cell] += 1
                if not was_interrupted(row):
                    coverage.capped_counts[cell] += 1
            if is_good(row):
                coverage.good_counts[cell] += 1
        return coverage

    def good(self, cell: Cell) -> int:
        return self.good_counts[cell]

    def attempts(self, cell: Cell) -> int:
        return self.attempt_counts[cell]

    def total_attempts(self) -> int:
        return sum(self.attempt_counts[cell] for cell in plan_cells(self.plan))

    def is_done(self, cell: Cell) -> bool:
        return self.good(cell) >= self.plan.takes_per_cell

    def gave_up(self, cell: Cell) -> bool:
        return not self.is_done(cell) and self.capped_counts[cell] >= self.plan.attempts_cap

    def is_open(self, cell: Cell) -> bool:
        return not self.is_done(cell) and not self.gave_up(cell)

    @property
    def done(self) -> int:
        return sum(min(self.good(c), self.plan.takes_per_cell) for c in plan_cells(self.plan))

    @property
    def needed(self) -> int:
        return self.plan.total_needed

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
                 "attempts": self.attempts(c), "needed": self.plan.takes_per_cell,
                 "state": "done" if self.is_done(c) else ("gave_up" if self.gave_up(c) else "open")}
                for c in plan_cells(self.plan)
            ],
        }

    def table(self) -> str:
        """A text matrix: one row per (task, weight), one column per lighting preset, cells 'good/needed'.

        A cell that was given up on shows its attempts with '!' (e.g. '0/2 !6')."""
        plan = self.plan
        row_labels = [f"{t.name} / {w}" for t in plan.tasks for w in plan.weights]
        first = max([len("task / weight")] + [len(label) for label in row_labels])
        cells_text = {}
        for task in plan.tasks:
            for weight in plan.weights:
                for light in plan.lighting:
                    cell = Cell(task.name, light, weight)
                    text = f"{self.good(cell)}/{plan.takes_per_cell}"
                    if self.gave_up(cell):
                        text += f" !{self.attempts(cell)}"
                    cells_text[cell] = text
        width = max([len(light) for light in plan.lighting] + [len(t) for t in cells_text.values()])
        lines = ["task / weight".ljust(first) + "  " + "  ".join(light.rjust(width) for light in plan.lighting)]
        lines.append("-" * len(lines[0]))
        for task in plan.tasks:
            for weight in plan.weights:
                label = f"{task.name} / {weight}"
                values = [cells_text[Cell(task.name, light, weight)].rjust(width) for light in plan.lighting]
                lines.append(label.ljust(first) + "  " + "  ".join(values))
        lines.append(f"coverage: {self.done}/{self.needed} good takes")
        return "\n".join(lines)
