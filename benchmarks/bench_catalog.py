#!/usr/bin/env python3
"""Benchmark the catalogue's common operations on SQLite (a dataset folder's catalog.sqlite) and, given a
URL, on PostgreSQL (issue 18):

    python benchmarks/bench_catalog.py [--rows 20000] [--takes 300] [--url postgresql://... | --temp-server]

  take      allocate_episode + update_episode (status kept, outcome, QA), what a station does per take
            (--takes of them, one after another; p50/p95 of the pair in ms)
  list      episodes(task=..., lighting=..., outcome=...) on a catalogue of --rows rows (p50/p95 ms)
  coverage  Coverage.from_rows(plan, episodes(plan=...)) over the whole catalogue (p50 ms)

The catalogue is filled with insert_episode (one transaction per row, as `catalog rebuild` does) up to
--rows before the list and coverage timings. --temp-server starts a throw-away PostgreSQL server as the
tests do (tests/helpers/postgres.py: loopback, fsync off). The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from collector.session.catalog import Catalog, episode_id_for, utc_now
from collector.session.coverage import Coverage
from collector.session.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
TASKS, LIGHTS, WEIGHTS = ("pick_place", "pour"), ("bright", "dim"), ("light", "heavy")


def _ms(samples, q):
    samples = sorted(samples)
    return round(1000 * samples[min(len(samples) - 1, int(q * len(samples)))], 3)


def _fill(catalog: Catalog, rows: int) -> None:
    start = len(catalog.episodes())
    for index in range(start + 1, rows + 1):
        now = utc_now()
        catalog.insert_episode({
            "episode_index": index, "episode_id": episode_id_for(index), "session_id": "bench", "plan": "demo",
            "task": TASKS[index % 2], "lighting": LIGHTS[(index // 2) % 2], "weight": WEIGHTS[(index // 4) % 2],
            "status": "kept", "outcome": "success" if index % 3 else "failure", "qa": "pass",
            "path": f"episodes/{episode_id_for(index)}.hdf5", "duration_s": 10.0, "started_at": now,
            "finished_at": now})


def measure(catalog: Catalog, rows: int, takes: int) -> dict:
    take_times = []
    for _ in range(takes):
        start = time.perf_counter()
        row = catalog.allocate_episode(session_id="bench", plan="demo", task="pour", lighting="dim",
                                       weight="heavy", station="bench")
        catalog.update_episode(row.episode_index, status="kept", outcome="success", qa="pass",
                               path=f"episodes/{row.episode_id}.hdf5", duration_s=10.0)
        take_times.append(time.perf_counter() - start)
    _fill(catalog, rows)
    list_times, coverage_times = [], []
    for _ in range(20):
        start = time.perf_counter()
        catalog.episodes(task="pour", lighting="dim", outcome="success")
        list_times.append(time.perf_counter() - start)
    plan = load_plan(ROOT / "configs" / "plans" / "demo.yaml")
    for _ in range(5):
        start = time.perf_counter()
        Coverage.from_rows(plan, catalog.episodes(plan="demo"))
        coverage_times.append(time.perf_counter() - start)
    return {"take_p50_ms": _ms(take_times, 0.5), "take_p95_ms": _ms(take_times, 0.95),
            "list_p50_ms": _ms(list_times, 0.5), "list_p95_ms": _ms(list_times, 0.95),
            "coverage_p50_ms": round(1000 * statistics.median(coverage_times), 1), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--takes", type=int, default=300)
    parser.add_argument("--url", help="also measure a PostgreSQL catalogue at this (empty) database URL")
    parser.add_argument("--temp-server", action="store_true", help="also measure on a throw-away local server")
    args = parser.parse_args()
    server = None
    if args.temp_server:
        import sys

        sys.path.insert(0, str(ROOT / "tests"))
        from helpers.postgres import PostgresServer

        server = PostgresServer().start()
        args.url = server.new_database()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(Catalog(Path(folder) / "catalog.sqlite"), args.rows, args.takes)
        print("sqlite", results["sqlite"], flush=True)
    try:
        if args.url:
            results["postgres"] = measure(Catalog(args.url), args.rows, args.takes)
            print("postgres", results["postgres"], flush=True)
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
