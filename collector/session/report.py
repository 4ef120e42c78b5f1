"""End-of-run summaries printed by `collector demo` and `collector collect`."""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List

from collector.session.catalog import EpisodeRow
from collector.session.cells import focus_note
from collector.session.coverage import Coverage

KEPT = ("kept", "recovered")


def success_rates(rows: List[EpisodeRow]) -> str:
    """Success rate per task, per lighting and per weight preset, over kept takes."""
    kept = [r for r in rows if r.status in KEPT]
    lines = []
    for label, key in (("task", "task"), ("lighting", "lighting"), ("weight", "weight")):
        groups: Dict[str, List[EpisodeRow]] = defaultdict(list)
        for row in kept:
            groups[getattr(row, key)].append(row)
        parts = [f"{name} {sum(r.outcome == 'success' for r in group)}/{len(group)}"
                 for name, group in sorted(groups.items())]
        lines.append(f"  by {label:<8} " + ", ".join(parts))
    total = sum(r.outcome == "success" for r in kept)
    lines.insert(0, f"success: {total}/{len(kept)} kept takes" + (f" ({100 * total / len(kept):.0f}%)" if kept else ""))
    return "\n".join(lines)


def qa_summary(rows: List[EpisodeRow], limit: int = 10) -> str:
    kept = [r for r in rows if r.status in KEPT]
    failed = [r for r in kept if r.qa == "fail"]
    lines = [f"QA: {len(kept) - len(failed)}/{len(kept)} episodes pass validation"]
    for row in failed[:limit]:
        lines.append(f"  {row.episode_id}: " + "; ".join(row.qa_problems[:3]))
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more (collector catalog list DIR --qa fail)")
    other = [r for r in rows if r.status not in KEPT]
    if other:
        counts = defaultdict(int)
        for row in other:
            counts[row.status] += 1
        lines.append("not kept: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)


def full_report(coverage: Coverage, rows: List[EpisodeRow]) -> str:
    parts = [coverage.table()]
    note = focus_note(coverage.plan, coverage)
    if note:
        parts.append(note)
    abandoned = coverage.abandoned_cells()
    if abandoned:
        parts.append("gave up after the attempt limit: " + ", ".join(c.label() for c in abandoned))
    parts += [success_rates(rows), qa_summary(rows)]
    return "\n\n".join(parts)


def how_to_inspect(dataset, example_path=None) -> str:
    lines = [f"dataset: {dataset}",
             f"  list episodes:     collector catalog list {dataset}",
             f"  query:             collector catalog list {dataset} --task pour --lighting dim --outcome success",
             f"  summary:           collector catalog summary {dataset}",
             f"  validate them all: collector validate {dataset}/episodes"]
    if example_path:
        lines.append(f"  look inside one:   collector inspect {example_path}")
        lines.append(f"  replay it (video): collector replay {example_path}")
    return "\n".join(lines)
