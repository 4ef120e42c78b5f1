#!/usr/bin/env python3
"""Benchmark a fleet's parts (issue 18): the catalogue at a million episodes, cell claims, shared storage.

    python benchmarks/bench_fleet.py [--quick] [--rows 1000000] [--stations 20] [--catalog URL]
                                     [--episode FILE] [--cameras 4] [--no-upload] [--baseline]

Catalogue (`catalogue_part`), on PostgreSQL (a throw-away server started in a temporary folder as the
tests do, tests/helpers/postgres.py: loopback, fsync off; or `--catalog URL`, an empty database) and
on SQLite (a dataset folder's catalog.sqlite):
  fill      a synthetic catalogue of --rows episodes (skewed distributions over plans, tasks, lighting,
            weights, stations, operators, statuses, outcomes, QA and review verdicts; most published),
            written through each engine's fast path (PostgreSQL COPY, SQLite one executemany per 50,000
            rows) into the catalogue's own schema and indexes: rows/s
  take      the normal path of a station's take on that catalogue (allocate_episode + update_episode):
            p50/p95 ms and takes/s, one after another
  query     "successful pours under dim light with heavy objects, accepted by review" through
            Catalog.episodes(), repeated with varied tasks, lighting, weights, outcomes and verdicts (p50/p95
            ms, rows returned); `mixed` adds by-station, by-operator and unpublished filters (bigger answers)
  coverage  Catalog.coverage(plan) of the largest plan (its Coverage from one GROUP BY): median s
  claims    --stations processes claiming and completing cell slots at once (collector/fleet/claims.py
            CellClaims on the same catalogue), all starting together, each claiming again after a take of
            about --take-s (0.2 s: a real take lasts 10-60 s, so this asks ~100x a floor's claim rate):
            p50/p99 ms per claim; and back to back (no take between: the server's and this machine's
            saturation, since 20 station processes share its cores here but not on a floor); and with
            ranked cells (each claim names the plan's cells in one order all stations share, as a
            session's runner does: all of them want the same cell first)
--baseline measures what the catalogue did before schema 5 (only the old indexes; coverage from every
row, Coverage.from_rows) beside it; use it with --quick, it reads every row of the plan into Python.

Shared storage (`upload_part`): can uploads keep up with what a floor of stations records?
Upload throughput: `collector publish`'s publisher (upload, read back, SHA-256 compare, queue update)
on copies of one recorded episode, to a folder (file://) and to S3 (moto's standalone server on a
loopback port: the S3 wire protocol; a real store's throughput is the network's, moto's is its own
Python's, so this is a floor). MB/s is over the whole publish, verification included.

Recorder's write rate: the episode's bytes / its recorded duration, scaled to --cameras (camera data
dominates a file) and multiplied by --stations. Each station runs its own publisher, so uploads keep
up when one publisher outruns one station's write rate (`uploads_keep_up`, `headroom_per_station_*`);
`one_publisher_for_floor_*` says whether a single publisher could carry all stations' takes; the default episode is a fresh `collector demo
--episodes 1` take (the humanoid's cameras, JPEG). `--episode` takes another (e.g. one kept by
bench_recorder.py --keep at 640x480).
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def record_demo_episode(work: Path) -> Path:
    from collector.recorder import schema

    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "collector", "demo", "--episodes", "1", "--no-progress", "--out",
                    str(work / "demo")], cwd=work, env=env, check=True, capture_output=True, timeout=900)
    (take,) = schema.episode_files_under(work / "demo" / "episodes", final_only=True)
    return take


def recorder_write_rate(episode: Path, stations: int, cameras: int) -> dict:
    """Bytes per second one station writes, from a recorded episode, and for the whole floor."""
    from collector.recorder.reader import EpisodeReader
    from collector.recorder.vocabulary import camera_of_stream

    with EpisodeReader(episode) as reader:
        recorded_cameras = [name for name in reader.streams if camera_of_stream(name)]
        spans = [float(s[-1] - s[0]) for s in (reader.stamps(name) for name in reader.streams) if len(s) > 1]
        duration = float(reader.metadata.get("duration_s") or max(spans))
    size = episode.stat().st_size
    per_station = size / duration * (cameras / max(1, len(recorded_cameras)))
    return {"episode_bytes": size, "episode_duration_s": round(duration, 2), "episode_cameras": len(recorded_cameras),
            "station_write_MBps": round(per_station / 1e6, 3),
            "floor_write_MBps": round(per_station * stations / 1e6, 3)}


def make_dataset(root: Path, episode: Path, copies: int) -> Path:
    episodes = root / "episodes"
    episodes.mkdir(parents=True)
    for i in range(copies):
        shutil.copyfile(episode, episodes / f"episode_{i + 1:06d}.hdf5")
    return root


def publish_throughput(dataset: Path, destination: str) -> dict:
    from collector.fleet.publisher import Publisher

    started = time.monotonic()
    summary = Publisher(dataset, destination, report=lambda text: None).run_once()
    wall = time.monotonic() - started
    if summary.failed:
        raise SystemExit(f"publishing to {destination} failed: {summary.failed}")
    return {"files": summary.published, "MB": round(summary.bytes / 1e6, 1), "wall_s": round(wall, 2),
            "MBps": round(summary.bytes / 1e6 / wall, 1)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple:
    import fsspec

    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.config.conf["s3"] = {"endpoint_url": f"http://127.0.0.1:{port}"}
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench")
    return server, port


def upload_part(episode: Path, copies: int, stations: int, cameras: int, work: Path) -> dict:
    rate = recorder_write_rate(episode, stations, cameras)
    to_folder = publish_throughput(make_dataset(work / "ds_file", episode, copies), f"file://{work / 'share'}")
    server, _ = start_moto()
    try:
        to_s3 = publish_throughput(make_dataset(work / "ds_s3", episode, copies), "s3://bench/ds")
    finally:
        server.terminate()
        server.wait(10)
    # Each station publishes its own takes, so one publisher must outrun one station; the store (or
    # folder) must take the floor's sum, which this one machine cannot show for a real store.
    station, floor = rate["station_write_MBps"], rate["floor_write_MBps"]
    return {**rate, "upload_file": to_folder, "upload_s3_moto": to_s3,
            "upload_file_MBps": to_folder["MBps"], "upload_s3_MBps": to_s3["MBps"],
            "uploads_keep_up": to_folder["MBps"] >= station and to_s3["MBps"] >= station,
            "headroom_per_station_file": round(to_folder["MBps"] / station, 1),
            "headroom_per_station_s3_moto": round(to_s3["MBps"] / station, 1),
            "one_publisher_for_floor_file": to_folder["MBps"] >= floor,
            "one_publisher_for_floor_s3_moto": to_s3["MBps"] >= floor}


# -- the catalogue at a fleet's scale ------------------------------------------------------------------

PLANS = tuple(f"plan_{i:02d}" for i in range(12))
TASKS = ("pour", "pick_place", "wipe", "stack", "fold_towel", "open_drawer", "close_drawer", "hang_mug",
         "insert_peg", "sort_items", "pack_box", "unscrew_cap", "handover", "press_button", "scoop", "sweep")
TASKS_PER_PLAN = 6
LIGHTS = ("bright", "dim", "warm", "low_light")
LIGHT_P = (0.45, 0.2, 0.25, 0.1)
WEIGHTS = ("light", "medium", "heavy")
WEIGHT_P = (0.4, 0.35, 0.25)
STATUSES = ("kept", "discarded", "purged", "recovered", "interrupted")
STATUS_P = (0.89, 0.05, 0.02, 0.02, 0.02)
OUTCOMES = ("success", "failure", "unknown")
OUTCOME_P = (0.72, 0.25, 0.03)
QAS = ("pass", "fail", "pending")
QA_P = (0.9, 0.08, 0.02)
VERDICTS = ("unreviewed", "accepted", "rejected", "disputed")
VERDICT_P = (0.55, 0.35, 0.08, 0.02)
STATION_COUNT, OPERATOR_COUNT, SESSION_ROWS = 100, 300, 40
PUBLISHED_P = 0.6
COLUMNS = ("episode_index", "episode_id", "session_id", "plan", "task", "instruction", "lighting", "weight",
           "operator", "station", "robot", "backend", "status", "outcome", "qa", "qa_problems", "duration_s", "path",
           "conditions", "note", "interrupted_by", "review_verdict", "reviewers", "recorded_outcome", "location",
           "started_at", "finished_at", "updated_at")
FILL_CHUNK = 50_000


def _zipf(count: int, exponent: float = 1.0):
    import numpy as np

    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def plan_tasks():
    """Each plan's tasks: six of the sixteen, pour in the largest plan (plan_00) and in several others."""
    import numpy as np

    rng = np.random.default_rng(18)
    chosen = [rng.choice(len(TASKS), TASKS_PER_PLAN, replace=False) for _ in PLANS]
    chosen[0][0] = 0 if 0 not in chosen[0] else chosen[0][0]
    return np.array(chosen)


def synthetic_rows(first: int, count: int, seed: int) -> list:
    """`count` catalogue rows numbered from `first`: one plan per station session, skewed over plans
    (Zipf), tasks (within the plan's six), stations and operators; conditions, outcomes, QA and review
    verdicts as a floor's might be (most takes kept, 72% successful, a third accepted by review)."""
    import numpy as np
    from datetime import datetime, timedelta, timezone

    rng = np.random.default_rng(seed)
    tasks_of = plan_tasks()
    plan = rng.choice(len(PLANS), count, p=_zipf(len(PLANS)))
    task = tasks_of[plan, rng.choice(TASKS_PER_PLAN, count, p=_zipf(TASKS_PER_PLAN, 0.5))]
    light = rng.choice(len(LIGHTS), count, p=LIGHT_P)
    weight = rng.choice(len(WEIGHTS), count, p=WEIGHT_P)
    status = rng.choice(len(STATUSES), count, p=STATUS_P)
    outcome = rng.choice(len(OUTCOMES), count, p=OUTCOME_P)
    qa = rng.choice(len(QAS), count, p=QA_P)
    verdict = rng.choice(len(VERDICTS), count, p=VERDICT_P)
    station = rng.choice(STATION_COUNT, count, p=_zipf(STATION_COUNT, 0.3))
    operator = (station * 3 + rng.integers(0, 3, count)) % OPERATOR_COUNT
    published = rng.random(count) < PUBLISHED_P
    duration = np.round(rng.gamma(4.0, 4.0, count), 2)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    conditions = {(li, wi): json.dumps({"lighting": LIGHTS[li], "weight": WEIGHTS[wi]}, sort_keys=True)
                  for li in range(len(LIGHTS)) for wi in range(len(WEIGHTS))}
    rows = []
    for k in range(count):
        index = first + k
        episode_id = f"episode_{index:07d}"
        when = (start + timedelta(seconds=30 * index)).isoformat(timespec="milliseconds")
        st = STATUSES[status[k]]
        interrupted = "crash" if st in ("recovered", "interrupted") else ""
        verdict_name = VERDICTS[verdict[k]]
        rows.append((
            index, episode_id, f"st{station[k]:03d}-{index // SESSION_ROWS // STATION_COUNT:05d}", PLANS[plan[k]],
            TASKS[task[k]], "", LIGHTS[light[k]], WEIGHTS[weight[k]], f"op{operator[k]:03d}", f"st{station[k]:03d}",
            "humanoid", "ros2", st, OUTCOMES[outcome[k]], QAS[qa[k]], "[]" if qa[k] != 1 else '["frame_gap"]',
            float(duration[k]), f"episodes/{episode_id}.hdf5", conditions[(light[k], weight[k])], "", interrupted,
            verdict_name, 0 if verdict_name == "unreviewed" else 1 + int(verdict_name == "disputed"), "",
            f"s3://hall/ds/episodes/{episode_id}.hdf5" if published[k] and st in ("kept", "recovered") else "",
            when, when, when))
    return rows


def fill_sqlite(catalog, rows: int) -> dict:
    """Fill through SQLite's fast path: one executemany per chunk, in one transaction each."""
    statement = f"INSERT INTO episodes ({', '.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"
    seconds = 0.0
    for first in range(1, rows + 1, FILL_CHUNK):
        chunk = synthetic_rows(first, min(FILL_CHUNK, rows + 1 - first), seed=first)
        started = time.perf_counter()
        with catalog.transaction() as conn:
            conn.executemany(statement, chunk)
        seconds += time.perf_counter() - started
    return {"rows": rows, "insert_s": round(seconds, 1), "insert_rows_per_s": round(rows / seconds)}


def fill_postgres(url: str, rows: int) -> dict:
    """Fill through PostgreSQL's fast path: COPY ... FROM STDIN, a chunk per transaction; then ANALYZE
    (what autovacuum does after a bulk load; timed separately)."""
    import psycopg

    seconds = 0.0
    with psycopg.connect(url) as conn:
        for first in range(1, rows + 1, FILL_CHUNK):
            chunk = synthetic_rows(first, min(FILL_CHUNK, rows + 1 - first), seed=first)
            started = time.perf_counter()
            with conn.cursor() as cursor, cursor.copy(f"COPY episodes ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            conn.commit()
            seconds += time.perf_counter() - started
        conn.autocommit = True
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE episodes")
        analyze = time.perf_counter() - started
    return {"rows": rows, "insert_s": round(seconds, 1), "insert_rows_per_s": round(rows / seconds),
            "vacuum_analyze_s": round(analyze, 1)}


def _percentile_ms(samples, q: float) -> float:
    ordered = sorted(samples)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def measure_takes(catalog, takes: int) -> dict:
    """The normal path of a take on the full catalogue: allocate its number, then keep it."""
    times = []
    for _ in range(takes):
        started = time.perf_counter()
        row = catalog.allocate_episode(session_id="bench", plan="bench_takes", task="pour", lighting="dim",
                                       weight="heavy", station="bench", operator="bench")
        catalog.update_episode(row.episode_index, status="kept", outcome="success", qa="pass",
                               path=f"episodes/{row.episode_id}.hdf5", duration_s=10.0)
        times.append(time.perf_counter() - started)
    return {"take_p50_ms": _percentile_ms(times, 0.5), "take_p95_ms": _percentile_ms(times, 0.95),
            "takes_per_s": round(len(times) / sum(times), 1)}


def headline_filters(count: int, seed: int = 5) -> list:
    """The issue's query and its siblings: a cell (task, lighting, weight) with an outcome and a verdict."""
    import random

    rng = random.Random(seed)
    filters = [dict(task="pour", lighting="dim", weight="heavy", outcome="success", verdict="accepted")]
    while len(filters) < count:
        filters.append(dict(task=rng.choice(TASKS), lighting=rng.choice(LIGHTS), weight=rng.choice(WEIGHTS),
                            outcome=rng.choice(("success", "success", "failure")),
                            verdict=rng.choice(("accepted", "accepted", "rejected"))))
    return filters


def mixed_filters(count: int, seed: int = 6) -> list:
    """Other lists the tools ask for: one station's kept takes of a task, an operator's failures,
    a cell's unpublished takes, QA failures of a task under a light."""
    import random

    rng = random.Random(seed)
    shapes = (lambda: dict(station=f"st{rng.randrange(STATION_COUNT):03d}", status="kept", task=rng.choice(TASKS)),
              lambda: dict(operator=f"op{rng.randrange(OPERATOR_COUNT):03d}", outcome="failure"),
              lambda: dict(task=rng.choice(TASKS), lighting=rng.choice(LIGHTS), weight=rng.choice(WEIGHTS),
                           status="kept", published=False),
              lambda: dict(task=rng.choice(TASKS), lighting=rng.choice(LIGHTS), qa="fail"))
    return [shapes[i % len(shapes)]() for i in range(count)]


def measure_queries(catalog, filters: list) -> dict:
    catalog.episodes(**filters[0])  # warm: the first query of a process pays for its imports and connection
    times, sizes = [], []
    for chosen in filters:
        started = time.perf_counter()
        rows = catalog.episodes(**chosen)
        times.append(time.perf_counter() - started)
        sizes.append(len(rows))
    return {"p50_ms": _percentile_ms(times, 0.5), "p95_ms": _percentile_ms(times, 0.95), "queries": len(times),
            "rows_mean": round(sum(sizes) / len(sizes), 1), "rows_max": max(sizes), "headline_rows": sizes[0]}


def largest_plan():
    """plan_00 (the largest, about a third of the catalogue) as a Plan: its six tasks x 4 lights x 3 weights."""
    from collector.session.plan import KnownNames, parse_plan

    tasks = [TASKS[i] for i in plan_tasks()[0]]
    known = KnownNames(tasks={t: "" for t in TASKS}, lighting={n: "" for n in LIGHTS},
                       weights={n: "" for n in WEIGHTS}, robots={"humanoid": ""})
    text = (f"name: {PLANS[0]}\nrobot: humanoid\nbackend: ros2\noperator: vr\ntasks: [{', '.join(tasks)}]\n"
            f"lighting: [{', '.join(LIGHTS)}]\nweights: [{', '.join(WEIGHTS)}]\ntakes_per_cell: 2000\n")
    return parse_plan(text, "bench_plan.yaml", known)


def measure_coverage(catalog, plan, repeats: int = 5) -> dict:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        coverage = catalog.coverage(plan)
        times.append(time.perf_counter() - started)
    return {"coverage_s": round(statistics.median(times), 3), "coverage_max_s": round(max(times), 3),
            "coverage_done": coverage.done, "coverage_needed": coverage.needed}


def measure_coverage_from_rows(catalog, plan) -> dict:
    """The pre-schema-5 way (what the runner did on every take until schema 6): every row of the plan into Python."""
    from collector.session.coverage import Coverage

    started = time.perf_counter()
    coverage = Coverage.from_rows(plan, catalog.episodes(plan=plan.name))
    return {"coverage_from_rows_s": round(time.perf_counter() - started, 3), "coverage_done": coverage.done}


NEW_INDEXES = ("episodes_condition", "episodes_plan_cell", "episodes_operator", "episodes_published",  # schema 5
               "episodes_station", "episodes_operator_outcome", "episodes_qa_failed")  # schema 6


def to_baseline_indexes(catalog) -> None:
    """The catalogue's indexes as schema 4 had them (for --baseline)."""
    with catalog.transaction() as conn:
        for name in NEW_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute("CREATE INDEX IF NOT EXISTS episodes_cell ON episodes (plan, task, lighting, weight)")
        conn.execute("CREATE INDEX IF NOT EXISTS episodes_station_status ON episodes (station, status)")
    if catalog.is_postgres:
        with catalog.reading() as conn:
            conn.sa.connection.driver_connection.autocommit = True
            conn.execute("ANALYZE episodes")


# -- cell claims from many station processes -----------------------------------------------------------

CLAIM_PLAN = "claims_bench"


def claim_worker(target: str, plan: str, station: str, claims: int, take_s: float, barrier, results,
                 ranked=None) -> None:
    """One station process: open the catalogue and its claims, wait for the others, then claim a slot,
    "record" for about take_s (a sleep: a station's own work is on its own machine in a fleet), complete
    it, and again, `claims` times; each claim timed. take_s=0: claim after claim, as fast as it can.
    `ranked`: claim the first of these cells with a free slot, as a session's runner does (every station
    on one plan ranks the cells alike, so all of them want the same cell first); else any cell."""
    import random

    sys.path.insert(0, str(REPO))
    from collector.fleet.claims import CellClaims
    from collector.session.catalog import Catalog

    target = target if "://" in target else Path(target)
    cells = CellClaims(Catalog(target), plan)
    cells.renew(station)  # opens this process's connection before the clock starts
    pause = random.Random(station).uniform
    barrier.wait()
    times = []
    for n in range(claims):
        started = time.perf_counter()
        claim = cells.claim(station, ranked)
        times.append(time.perf_counter() - started)
        if claim is None:
            break
        if take_s:
            time.sleep(pause(0.5 * take_s, 1.5 * take_s))
        cells.finish(claim, good=True, episode_id=f"{station}-{n}")
    results.put((station, times))


def measure_claims(catalog, target: str, stations: int, claims_per_station: int, take_s: float,
                   ranked: bool = False) -> dict:
    """`stations` processes claiming at once (all start together: a shift's first claims are a burst),
    each then claiming again after every simulated take; p50/p99 over every claim. `ranked`: each
    claim names the plan's cells in one order shared by every station (the runner's path)."""
    import multiprocessing

    from collector.fleet.claims import CellClaims

    plan = f"{CLAIM_PLAN}_{'paced' if take_s else 'tight'}{'_ranked' if ranked else ''}"
    tasks = [TASKS[i] for i in plan_tasks()[0]]
    cells = [(t, li, w) for t in tasks for li in LIGHTS for w in WEIGHTS]
    per_cell = -(-stations * claims_per_station // len(cells)) + 1  # more slots than all claims together
    CellClaims(catalog, plan).need([(cell, per_cell) for cell in cells])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(stations + 1)
    results = context.Queue()
    workers = [context.Process(target=claim_worker, args=(target, plan, f"station_{i:02d}", claims_per_station,
                                                          take_s, barrier, results, cells if ranked else None))
               for i in range(stations)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=600)
    started = time.perf_counter()
    gathered = [results.get(timeout=1200) for _ in workers]
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join(60)
    times = [t for _, samples in gathered for t in samples]
    slots = CellClaims(catalog, plan).slots()
    taken = [s for s in slots if s["done"]]
    holders = {(s["task"], s["lighting"], s["weight"], s["slot"]) for s in taken}
    if len(taken) != len(times) or len(holders) != len(taken):
        raise SystemExit(f"claims: {len(times)} claims but {len(taken)} completed slots")
    return {"p50_ms": _percentile_ms(times, 0.5), "p99_ms": _percentile_ms(times, 0.99), "claims": len(times),
            "claims_per_s": round(len(times) / wall, 1), "stations": stations, "take_s": take_s, "ranked": ranked}


# -- both engines --------------------------------------------------------------------------------------

def engine_part(catalog, target: str, fill, args, label: str) -> dict:
    """Every catalogue measurement on one engine's catalogue (filled by `fill`)."""
    print(f"{label}: filling {args.rows:,} episodes...", flush=True)
    result = {"fill": fill()}
    print(f"{label}: {result['fill']}", flush=True)
    plan = largest_plan()
    queries = 40 if args.quick else 200
    if args.baseline:
        to_baseline_indexes(catalog)
        result["baseline"] = {"query": measure_queries(catalog, headline_filters(queries)),
                              "mixed": measure_queries(catalog, mixed_filters(queries // 2)),
                              **measure_coverage_from_rows(catalog, plan)}
        print(f"{label} baseline (schema 4 indexes, coverage from rows): {result['baseline']}", flush=True)
        from collector.session.catalog import _SCHEMA

        with catalog.transaction() as conn:  # back to this collector's indexes
            conn.execute("DROP INDEX IF EXISTS episodes_cell")
            conn.execute("DROP INDEX IF EXISTS episodes_station_status")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                if "CREATE INDEX" in statement:
                    conn.execute(statement)
        if catalog.is_postgres:
            with catalog.reading() as conn:
                conn.sa.connection.driver_connection.autocommit = True
                conn.execute("ANALYZE episodes")
    result["query"] = measure_queries(catalog, headline_filters(queries))
    result["mixed"] = measure_queries(catalog, mixed_filters(queries // 2))
    print(f"{label}: query {result['query']}; mixed {result['mixed']}", flush=True)
    result.update(measure_coverage(catalog, plan))
    print(f"{label}: coverage {result['coverage_s']} s (max {result['coverage_max_s']})", flush=True)
    result.update(measure_takes(catalog, 50 if args.quick else 200))
    print(f"{label}: take p50 {result['take_p50_ms']} ms, p95 {result['take_p95_ms']} ms", flush=True)
    claims = 20 if args.quick else 50
    paced = measure_claims(catalog, target, args.stations, claims, args.take_s)
    tight = measure_claims(catalog, target, args.stations, claims, 0.0)
    ranked = measure_claims(catalog, target, args.stations, claims, args.take_s, ranked=True)
    result.update(claim_p50_ms=paced["p50_ms"], claim_p99_ms=paced["p99_ms"], claims=paced, claims_tight=tight,
                  claims_ranked=ranked)
    print(f"{label}: {args.stations} stations claim p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms"
          f" (a claim per {args.take_s} s take); back to back: p50 {tight['p50_ms']} ms, p99 {tight['p99_ms']} ms;"
          f" ranked cells (the runner's path): p50 {ranked['p50_ms']} ms, p99 {ranked['p99_ms']} ms", flush=True)
    return result


def catalogue_part(args, work: Path) -> dict:
    from collector.session.catalog import Catalog

    server = None
    url = args.catalog
    if url is None:
        sys.path.insert(0, str(REPO / "tests"))
        from helpers.postgres import PostgresServer

        server = PostgresServer().start()
        url = server.new_database()
    try:
        postgres = Catalog(url)
        pg = engine_part(postgres, url, lambda: fill_postgres(url, args.rows), args, "postgres")
    finally:
        if server is not None:
            server.stop()
    path = work / "sqlite_dataset" / "catalog.sqlite"
    sqlite = Catalog(path)
    lite = engine_part(sqlite, str(path), lambda: fill_sqlite(sqlite, args.rows), args, "sqlite")
    summary = {"rows": args.rows, "stations": args.stations,
               "query_p95_ms_postgres": pg["query"]["p95_ms"], "query_p95_ms_sqlite": lite["query"]["p95_ms"],
               "query_p50_ms_postgres": pg["query"]["p50_ms"], "query_p50_ms_sqlite": lite["query"]["p50_ms"],
               "coverage_s": max(pg["coverage_s"], lite["coverage_s"]),
               "coverage_s_postgres": pg["coverage_s"], "coverage_s_sqlite": lite["coverage_s"],
               "claim_p99_ms": pg["claim_p99_ms"], "claim_p50_ms": pg["claim_p50_ms"],
               "claim_p99_ms_sqlite": lite["claim_p99_ms"], "claim_p50_ms_sqlite": lite["claim_p50_ms"],
               "claim_p99_ms_back_to_back": pg["claims_tight"]["p99_ms"],
               "claim_p99_ms_back_to_back_sqlite": lite["claims_tight"]["p99_ms"],
               "claim_p99_ms_ranked": pg["claims_ranked"]["p99_ms"], "claim_p50_ms_ranked": pg["claims_ranked"]["p50_ms"],
               "claim_p99_ms_ranked_sqlite": lite["claims_ranked"]["p99_ms"],
               "claims_per_s_back_to_back": pg["claims_tight"]["claims_per_s"], "take_s": args.take_s,
               "insert_rows_per_s_postgres": pg["fill"]["insert_rows_per_s"],
               "insert_rows_per_s_sqlite": lite["fill"]["insert_rows_per_s"],
               "take_p50_ms_postgres": pg["take_p50_ms"], "take_p95_ms_postgres": pg["take_p95_ms"],
               "take_p50_ms_sqlite": lite["take_p50_ms"], "take_p95_ms_sqlite": lite["take_p95_ms"],
               "takes_per_s_postgres": pg["takes_per_s"], "takes_per_s_sqlite": lite["takes_per_s"]}
    summary["goals_met"] = (summary["query_p95_ms_postgres"] <= 100 and summary["query_p95_ms_sqlite"] <= 100
                            and summary["coverage_s"] <= 1.0 and summary["claim_p99_ms"] <= 50)
    return {**summary, "postgres": pg, "sqlite": lite}


def print_catalogue_table(result: dict) -> None:
    pg, lite = result["postgres"], result["sqlite"]
    rows = [("insert, fast path (rows/s)", pg["fill"]["insert_rows_per_s"], lite["fill"]["insert_rows_per_s"]),
            ("take: allocate+keep p50 / p95 (ms)", f"{pg['take_p50_ms']} / {pg['take_p95_ms']}",
             f"{lite['take_p50_ms']} / {lite['take_p95_ms']}"),
            ("filtered query p50 / p95 (ms)", f"{pg['query']['p50_ms']} / {pg['query']['p95_ms']}",
             f"{lite['query']['p50_ms']} / {lite['query']['p95_ms']}"),
            ("  rows returned (headline / mean)", f"{pg['query']['headline_rows']} / {pg['query']['rows_mean']}",
             f"{lite['query']['headline_rows']} / {lite['query']['rows_mean']}"),
            ("other lists p50 / p95 (ms)", f"{pg['mixed']['p50_ms']} / {pg['mixed']['p95_ms']}",
             f"{lite['mixed']['p50_ms']} / {lite['mixed']['p95_ms']}"),
            ("coverage, largest plan (s)", pg["coverage_s"], lite["coverage_s"]),
            (f"claim p50 / p99, {result['stations']} stations (ms)", f"{pg['claim_p50_ms']} / {pg['claim_p99_ms']}",
             f"{lite['claim_p50_ms']} / {lite['claim_p99_ms']}"),
            ("  back to back (no take between)", f"{pg['claims_tight']['p50_ms']} / {pg['claims_tight']['p99_ms']}",
             f"{lite['claims_tight']['p50_ms']} / {lite['claims_tight']['p99_ms']}"),
            ("  ranked cells (the runner's path)", f"{pg['claims_ranked']['p50_ms']} / {pg['claims_ranked']['p99_ms']}",
             f"{lite['claims_ranked']['p50_ms']} / {lite['claims_ranked']['p99_ms']}")]
    if "baseline" in pg:
        rows += [("before (schema 4): query p95 (ms)", pg["baseline"]["query"]["p95_ms"],
                  lite["baseline"]["query"]["p95_ms"]),
                 ("before: other lists p95 (ms)", pg["baseline"]["mixed"]["p95_ms"], lite["baseline"]["mixed"]["p95_ms"]),
                 ("before: coverage from rows (s)", pg["baseline"]["coverage_from_rows_s"],
                  lite["baseline"]["coverage_from_rows_s"])]
    first = max(len(r[0]) for r in rows)
    print(f"\ncatalogue of {result['rows']:,} episodes".ljust(first + 1) + f"  {'PostgreSQL':>18}  {'SQLite':>18}")
    for label, a, b in rows:
        print(f"{label.ljust(first)}  {str(a):>18}  {str(b):>18}")
    print(f"goals (query p95 <= 100 ms both, coverage <= 1 s, claim p99 <= 50 ms): "
          f"{'met' if result['goals_met'] else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 5 stations, fewer episode copies")
    parser.add_argument("--rows", type=int, help="catalogue rows (default 1,000,000; --quick 100,000)")
    parser.add_argument("--catalog", metavar="URL", help="an empty PostgreSQL database (default: a throw-away server)")
    parser.add_argument("--baseline", action="store_true", help="also measure the schema-4 catalogue (before)")
    parser.add_argument("--no-upload", action="store_true", help="skip the shared-storage part")
    parser.add_argument("--no-catalogue", action="store_true", help="skip the catalogue part")
    parser.add_argument("--episode", type=Path, help="a recorded episode (default: record a demo take)")
    parser.add_argument("--stations", type=int, help="stations (default 20; --quick 5)")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--take-s", type=float, default=0.2,
                        help="seconds a station 'records' between claims in the claims part (default 0.2)")
    parser.add_argument("--copies", type=int, help="episode copies to publish (default 20, --quick 5)")
    args = parser.parse_args()
    args.rows = args.rows or (100_000 if args.quick else 1_000_000)
    args.stations = args.stations or (5 if args.quick else 20)
    copies = args.copies or (5 if args.quick else 20)
    result = {"stations": args.stations, "load_avg_start": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmp:
        work = Path(tmp)
        if not args.no_catalogue:
            result.update(catalogue_part(args, work))
            print_catalogue_table(result)
        if not args.no_upload:
            episode = args.episode or record_demo_episode(work)
            upload = upload_part(episode, copies, args.stations, args.cameras, work)
            result.update({**upload, "cameras_per_station": args.cameras, "copies": copies})
            print(f"recorder: {upload['station_write_MBps']} MB/s per station ({args.cameras} cameras), "
                  f"{upload['floor_write_MBps']} MB/s for {args.stations} stations")
            print(f"publish to file://: {upload['upload_file_MBps']} MB/s; to S3 (moto): {upload['upload_s3_MBps']} MB/s"
                  f" (verified, {copies} x {upload['episode_bytes'] / 1e6:.1f} MB)")
    result["load_avg_end"] = round(os.getloadavg()[0], 1)  # the machine is shared: its load, beside the figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
