"""Plan cells (task x lighting x weight) and the order a session walks them in.

The next cell is always chosen from the current coverage, never from a precomputed list, so a
session that is resumed after a crash (or shares the plan with another station) carries on with
exactly the cells that still need takes.

Orders:
  sequential  all takes of one cell before the next; conditions vary slowest-first (lighting, then
              weight, then task), because on hardware re-rigging lights is the most expensive change.
  shuffled    each take goes to a random unfinished cell; the choice is seeded by the plan seed and the
              number of takes so far, so a resumed session makes the same choices it would have made.
  balanced    the unfinished cell with the fewest good takes; ties go to the cell whose task, lighting and
              weight were used least so far, then to sequential order. Coverage grows evenly, so a session
              cut short (or a smoke run of a few takes) still has every task and condition represented.

A plan with `focus: weak_cells` first narrows the open cells to those where the latest policy
evaluation succeeded least (a cell the policy was never tried in counts as 0 %), then applies its
order among them: a session cut short has spent its takes where the policy needs data most. With no
evaluation in the catalogue the plan's order applies to every open cell (the session says so).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, List, NamedTuple, Optional

if TYPE_CHECKING:
    from collector.session.coverage import Coverage
    from collector.session.plan import Plan


class Cell(NamedTuple):
    task: str
    lighting: str
    weight: str

    def label(self) -> str:
        return f"{self.task} | light={self.lighting} | weight={self.weight}"


def plan_cells(plan: "Plan") -> List[Cell]:
    """Every cell of the plan in sequential order (lighting slowest, task fastest)."""
    return [
        Cell(task.name, lighting, weight)
        for lighting in plan.lighting
        for weight in plan.weights
        for task in plan.tasks
    ]


def next_cell(plan: "Plan", coverage: "Coverage") -> Optional[Cell]:
    """The cell the next take should go to, or None when the plan is finished (or every open cell gave up)."""
    open_cells = [cell for cell in plan_cells(plan) if coverage.is_open(cell)]
    if not open_cells:
        return None
    if plan.focus.weak_cells and coverage.policy:
        open_cells = weakest_cells(open_cells, coverage)
    if plan.order == "sequential":
        # Stay on a cell that already has takes so a condition is set up once.
        started = [cell for cell in open_cells if coverage.attempts(cell) > 0]
        return started[0] if started else open_cells[0]
    if plan.order == "shuffled":
        rng = random.Random(f"{plan.seed}:{coverage.total_attempts()}")
        return rng.choice(open_cells)
    return min(open_cells, key=lambda cell: (coverage.good(cell), _value_use(plan, coverage, cell)))


def weakest_cells(cells: List[Cell], coverage: "Coverage") -> List[Cell]:
    """The cells (in the given order) where the policy's success is lowest."""
    lowest = min(coverage.policy.rate(cell) for cell in cells)
    return [cell for cell in cells if coverage.policy.rate(cell) == lowest]


def focus_note(plan: "Plan", coverage: "Coverage") -> Optional[str]:
    """One line for the session's output saying how the plan's focus orders cells, if it has one."""
    if not plan.focus.weak_cells:
        return None
    if not coverage.policy:
        return (f"focus weak_cells: no policy evaluation in this dataset's catalogue; cells go in the plan's"
                f" {plan.order} order")
    extra = f", up to {plan.focus.extra_takes} extra take(s) where it fails" if plan.focus.extra_takes else ""
    return f"focus weak_cells: lowest policy success first{extra}, from {coverage.policy.describe()}"


def _value_use(plan: "Plan", coverage: "Coverage", cell: Cell) -> int:
    """How often this cell's task, lighting and weight values were already taken (any cell).

    Balanced order breaks ties with it, so the first takes of a session spread over every task and
    condition (a short session or smoke run still sees both tasks, several lights, several weights)."""
    used = 0
    for other in plan_cells(plan):
        attempts = coverage.attempts(other)
        if attempts:
            used += attempts * ((other.task == cell.task) + (other.lighting == cell.lighting)
                                + (other.weight == cell.weight))
    return used
