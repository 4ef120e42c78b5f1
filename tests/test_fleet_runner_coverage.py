"""The runner's coverage and slot accounting from GROUP BYs (issue 18: a plan of a million rows took
37-44 s a take when every take read all of its rows) pick exactly the cells the row-by-row way picked.

Two real SQLite catalogues receive the same takes, outcomes and outside changes: the first is a real
SessionRunner's (coverage from Catalog.coverage, slots checked by counting), the second is worked the way
the runner did before (every row of the plan read, Coverage.from_rows, every slot reconciled against every
row). Both must claim the same cell at every step and keep the same number of done slots per cell.
"""
import random

import pytest

from collector.fleet.claims import CellClaims
from collector.session.catalog import Catalog
from collector.session.cells import Cell
from collector.session.coverage import Coverage, is_good
from collector.session.drivers import SimDriver
from collector.session.layout import DatasetLayout
from collector.session.plan import load_plan
from collector.session.runner import SessionRunner, ranked_cells

PLAN = """\
name: mixed
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place, pour]
lighting: [bright, dim, warm]
weights: [light, heavy]
takes_per_cell: 2
max_attempts_per_cell: 4
order: {order}
seed: 11
"""


def _take(catalog, cell, station, status, outcome, qa):
    row = catalog.allocate_episode(session_id=f"s-{station}", plan="mixed", task=cell[0], lighting=cell[1],
                                   weight=cell[2], station=station)
    interrupted = "crash" if status in ("recovered", "interrupted") else ""
    return catalog.update_episode(row.episode_index, status=status, outcome=outcome, qa=qa, interrupted_by=interrupted)


class RowByRow:
    """The runner's cell choice and slot accounting as they were: every row of the plan, every slot."""

    def __init__(self, catalog, plan, station):
        self.catalog, self.plan, self.station = catalog, plan, station
        self.claims = CellClaims(catalog, plan.name)
        self.claim = None

    def lay_out(self, cells):
        coverage = Coverage.from_rows(self.plan, self.catalog.episodes(plan=self.plan.name))
        self.claims.need([(tuple(cell), coverage.needed_for(cell)) for cell in cells], done={})

    def next_cell(self):
        rows, _ = self.claims.reconcile(lambda: self.catalog.episodes(plan=self.plan.name), self.station, self._good)
        preferred = ranked_cells(self.plan, Coverage.from_rows(self.plan, rows))
        if self.claim is not None:
            if Cell(*self.claim.cell) in preferred:
                return Cell(*self.claim.cell)
            self.claims.release(self.station, self.claim)
            self.claim = None
        if not preferred:
            return None
        self.claim = self.claims.claim(self.station, preferred)
        return Cell(*self.claim.cell) if self.claim is not None else None

    def settle(self, row):
        if self.claim is None:
            self.claims.reconcile(lambda: [row], self.station, self._good)
            return
        good = self._good(row)
        if not self.claims.finish(self.claim, good, row.episode_id) and good:
            self.claims.reconcile(lambda: [row], self.station, self._good)
        self.claim = None

    def _good(self, row):
        return is_good(row, self.plan.count)


def _done_per_cell(claims):
    return {cell: done for cell, (_, done) in claims.slot_counts().items()}


def _totals(rows):
    kept = [r for r in rows if r.status in ("kept", "recovered")]
    return {"episodes": len(kept), "succeeded": sum(r.outcome == "success" for r in kept),
            "failed": sum(r.outcome == "failure" for r in kept), "failed_validation": sum(r.qa == "fail" for r in kept),
            "discarded": sum(r.status in ("discarded", "purged") for r in rows),
            "interrupted": sum(r.status == "interrupted" for r in rows)}


@pytest.mark.parametrize("order", ["balanced", "sequential", "shuffled"])
def test_the_runner_picks_the_cells_the_row_by_row_coverage_picked(tmp_path, order):
    plan_file = tmp_path / "mixed.yaml"
    plan_file.write_text(PLAN.format(order=order))
    plan = load_plan(plan_file)
    runner = SessionRunner(plan, tmp_path / "new", SimDriver(plan, render=False), station="st1").open()
    reference_root = DatasetLayout(tmp_path / "old").ensure().root
    old_catalog = Catalog(reference_root / "catalog.sqlite")
    old = RowByRow(old_catalog, plan, "st1")
    old.lay_out(sorted({Cell(*cell) for cell in runner.claims.slot_counts()}))
    catalogs = (runner.catalog, old_catalog)
    rng = random.Random(order)
    picked, outside_changes = [], 0
    try:
        for _ in range(60):
            expected = old.next_cell()
            chosen = runner.next_cell()
            assert chosen == expected, f"take {len(picked) + 1}: {chosen} vs {expected} (so far {picked})"
            assert _done_per_cell(runner.claims) == _done_per_cell(old.claims)
            rows = old_catalog.episodes(plan="mixed")
            assert runner.coverage().as_dict() == Coverage.from_rows(plan, rows).as_dict()
            assert runner.totals() == _totals(rows)
            if chosen is None:
                break
            picked.append(chosen)
            take = (rng.choices(["kept", "recovered", "interrupted", "discarded"], [80, 6, 6, 8])[0],
                    rng.choices(["success", "failure"], [65, 35])[0], rng.choices(["pass", "fail"], [85, 15])[0])
            row_new, row_old = (_take(c, chosen, "st1", *take) for c in catalogs)
            assert row_new.episode_index == row_old.episode_index
            runner._settle_claim(row_new)
            old.settle(row_old)
            # Outside changes the station did not make: `catalog mark` of an older take, another
            # station's take recorded without a claim (an older collector).
            if rng.random() < 0.2:
                kept = [r.episode_index for r in rows if r.status == "kept"]
                if kept:
                    index, outcome = rng.choice(kept), rng.choice(["success", "failure"])
                    for catalog in catalogs:
                        catalog.update_episode(index, outcome=outcome)
                    outside_changes += 1
            if rng.random() < 0.1:
                cell = rng.choice(sorted(Cell(*c) for c in runner.claims.slot_counts()))
                for catalog in catalogs:
                    _take(catalog, cell, "st2", "kept", "success", "pass")
                outside_changes += 1
    finally:
        runner.close()
    assert chosen is None and len(picked) >= 24 and outside_changes >= 3  # the plan ran to its end
    assert len(set(picked)) == 12
