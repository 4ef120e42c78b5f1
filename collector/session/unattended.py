"""Running a whole plan from the terminal (`collector demo`, `collector collect`).

Takes follow each other without button presses; a progress bar shows good takes against the plan.
On hardware the terminal asks the operator to set up each condition and to judge each take; an
optional dashboard (watch mode) shows the cameras, the coverage and the last QA result meanwhile.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from collector.errors import DeviceError
from collector.session.cells import Cell
from collector.session.catalog import EpisodeRow
from collector.session.plan import Plan
from collector.session.report import full_report, how_to_inspect
from collector.session.runner import SessionRunner


@dataclass
class RunSummary:
    out: Path
    plan: str
    session_id: str
    resumed: bool
    recorded_now: int
    recovered: int
    totals: dict
    coverage_done: int
    coverage_needed: int
    wall_s: float
    example_path: Optional[str] = None
    report: str = ""
    extra: dict = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps({
            "episodes": self.totals.get("episodes", 0),
            "succeeded": self.totals.get("succeeded", 0),
            "failed": self.totals.get("failed", 0),
            "failed_validation": self.totals.get("failed_validation", 0),
            "discarded": self.totals.get("discarded", 0),
            "interrupted": self.totals.get("interrupted", 0),
            "recorded_now": self.recorded_now,
            "recovered": self.recovered,
            "coverage_done": self.coverage_done,
            "coverage_needed": self.coverage_needed,
            "resumed": self.resumed,
            "plan": self.plan,
            "session_id": self.session_id,
            "wall_s": round(self.wall_s, 2),
            "out": str(self.out),
            **self.extra,
        })


def _prompt(text: str) -> str:
    try:
        return input(text)
    except EOFError:
        # No one at the terminal any more (stdin closed): stop cleanly; the same command resumes.
        raise DeviceError("standard input closed: nobody to answer the session's prompts; stopping "
                          "(run the same command again to resume)") from None


def _ask_outcome(row: EpisodeRow) -> Optional[str]:
    while True:
        answer = _prompt(f"{row.episode_id} ({row.task}): success? [y/n, Enter = decide later] ").strip().lower()
        if answer in ("y", "yes"):
            return "success"
        if answer in ("n", "no"):
            return "failure"
        if answer == "":
            return None


def _confirm_setup(cell: Cell, note: str) -> None:
    _prompt(f"\nnext take: {cell.label()}\n{note}. Press Enter when ready to record... ")


def run_unattended(runner: SessionRunner, *, max_takes: Optional[int] = None, progress: bool = True,
                   stream=sys.stderr) -> RunSummary:
    """Record until the plan is covered (or max_takes), with a progress bar; the runner must be open."""
    from tqdm import tqdm

    plan: Plan = runner.plan
    started = time.monotonic()
    coverage = runner.coverage()
    total = coverage.needed  # the plan's total, plus any extra takes its focus asks of weak cells
    bar = tqdm(total=total, initial=coverage.done, unit="take", desc=f"plan {plan.name}", file=stream,
               disable=not progress, dynamic_ncols=True, leave=True)
    # A person judges takes / resets the scene when the plan says so (always on hardware).
    ask_outcome = _ask_outcome if plan.outcome == "operator" else None
    confirm_setup = _confirm_setup if plan.reset.mode == "manual" else None

    def on_take(row: EpisodeRow) -> None:
        done = runner.coverage().done
        bar.update(done - bar.n)
        bar.set_postfix_str(f"{row.episode_id} {row.task}/{row.lighting}/{row.weight} {row.outcome} QA {row.qa}")

    try:
        recorded = runner.run_plan(max_takes=max_takes, on_take=on_take,
                                   ask_outcome=ask_outcome, confirm_setup=confirm_setup)
    finally:
        bar.close()
    return summarize(runner, len(recorded), time.monotonic() - started)


def summarize(runner: SessionRunner, recorded_now: int, wall_s: float) -> RunSummary:
    rows = runner.plan_rows()
    coverage = runner.coverage()
    kept = [r for r in rows if r.status in ("kept", "recovered") and r.path]
    example = str(runner.layout.absolute(kept[-1].path)) if kept else None
    return RunSummary(
        out=runner.layout.root, plan=runner.plan.name, session_id=runner.session_id, resumed=runner.resumed,
        recorded_now=recorded_now, recovered=sum(r.status == "recovered" for r in runner.recovered),
        totals=runner.totals(),
        coverage_done=coverage.done, coverage_needed=coverage.needed, wall_s=wall_s, example_path=example,
        report=full_report(coverage, rows))


def print_summary(summary: RunSummary, runner: SessionRunner) -> None:
    if runner.recovered:
        print(f"resumed: {len(runner.recovered)} interrupted take(s) settled: "
              + ", ".join(f"{r.episode_id} {r.status}" for r in runner.recovered))
    print()
    print(summary.report)
    print()
    print(how_to_inspect(summary.out, summary.example_path))
    print(summary.as_json(), flush=True)
