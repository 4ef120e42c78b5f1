#!/usr/bin/env python3
"""Benchmark the review tools (issue 17): the review page's latency, saving labels, subtask suggestions
against the scripted operator's true phases, and the control loop with a live Rerun display.

    python benchmarks/bench_review.py [--quick] [--keep DIR]

Phases:
  dataset   one 10-minute episode (--quick: 2 minutes) with four 320x240 JPEG cameras at 30 fps and
            joints/command at 100 Hz, recorded by the real EpisodeWriter into a dataset with a
            catalogue (collector/dataset/synthetic.py).
  page      the review server (collector/review/server.py) started through its Python API in a child
            process; this process is the browser, over HTTP/1.1 keep-alive on loopback, one connection
            per camera as a browser's parallel image loads:
              first frame  a fresh server: GET /api/episode/ID (metadata, frame times) and
                           then frame 0 of every camera in parallel, until the last byte of the last
                           frame; the file is in the OS page cache (just written). Then the
                           suggestions (GET /api/episode/ID/suggestions), as the page asks for them.
              seek         a random frame of all four cameras in parallel, until the last byte
                           (200 seeks, --quick 100).
              save         POST /api/episode/ID/labels (six subtasks, two instructions): durable in the
                           review journal and mirrored in the catalogue when it answers (20 saves);
                           and save_labels() itself, journal only (the server's way) and with the fold
                           into the episode file (a copy of the whole file).
            (The server's sockets have TCP_NODELAY: http.server sends headers and body in two writes
            and with Nagle's algorithm every keep-alive answer waited ~40 ms for a delayed ACK; the
            first run of this benchmark found it: seek p50 48 ms before, 5 ms after.)
  suggest   scripted takes of both tasks, the whole plan each (3 per task, --quick 2), recorded through
            the loop and recorder with the operator's phases; the median, over every true boundary, of
            the distance to the suggested boundary of the same skill. Also suggest()'s time on a
            10-minute episode of the loop's streams (a scripted take's streams repeated).
  display   the realtime teleop loop (scripted operator over ZMQ, cameras rendering) with and without
            the live Rerun display (collector/review/live_display.py, written to an .rrd so no viewer
            competes for the cores), alternating, input->command p99 (2 runs each of 10 s, --quick 1
            of 4 s).
The last line printed is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import collector  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)

CAMERAS = ("head", "left_wrist", "right_wrist", "chest")
TOKEN = "bench-review-token-0123456789abcdef"


def pct(values, scale=1000.0) -> dict:
    if not len(values):
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    arr = np.asarray(values, dtype=float) * scale
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max()), "n": int(arr.size)}


# -- dataset --------------------------------------------------------------------------------------------

def make_dataset(root: Path, minutes: float):
    from collector.dataset.synthetic import write_synthetic_dataset
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout

    t0 = time.perf_counter()
    write_synthetic_dataset(root, 1, tasks=("pick_place",), duration_s=minutes * 60.0, cameras=CAMERAS,
                            camera_size=(240, 320), camera_fps=30.0)
    layout = DatasetLayout(root)
    (row,) = Catalog(layout.catalog_path).episodes()
    path = layout.absolute(row.path)
    return row.episode_id, path, time.perf_counter() - t0


# -- the page over HTTP ---------------------------------------------------------------------------------

def _serve(dataset: str, pipe) -> None:
    """Child process: the review server through its Python API until told to stop."""
    from collector.review.server import ReviewServer

    with ReviewServer(dataset, port=0, token=TOKEN, reviewer="bench") as server:
        pipe.send(server.port)
        pipe.recv()


class Browser:
    """Keep-alive HTTP connections with the review cookie, one per parallel request slot."""

    def __init__(self, port: int, slots: int):
        self.port = port
        self.cookie = self._login()
        self.connections = [self._connect() for _ in range(slots)]
        self.pool = ThreadPoolExecutor(slots)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("localhost", self.port, timeout=30)

    def _login(self) -> str:
        conn = self._connect()
        conn.request("GET", f"/?token={TOKEN}")
        response = conn.getresponse()
        response.read()
        conn.close()
        cookie = response.getheader("Set-Cookie") or ""
        if response.status != 303 or not cookie:
            raise RuntimeError(f"review server refused the token: {response.status}")
        return cookie.split(";")[0]

    def get(self, slot: int, path: str) -> bytes:
        conn = self.connections[slot]
        conn.request("GET", path, headers={"Cookie": self.cookie})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body

    def post(self, path: str, payload: dict) -> dict:
        conn = self.connections[0]
        conn.request("POST", path, body=json.dumps(payload).encode(),
                     headers={"Cookie": self.cookie, "X-Collector-Token": TOKEN, "Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status} {body[:200]!r}")
        return json.loads(body)

    def frames(self, episode_id: str, cameras, index: int) -> int:
        """Frame `index` of every camera in parallel; returns the bytes received."""
        futures = [self.pool.submit(self.get, slot, f"/api/episode/{episode_id}/frame/{cam}/{index}.jpg")
                   for slot, cam in enumerate(cameras)]
        return sum(len(f.result()) for f in futures)

    def close(self) -> None:
        self.pool.shutdown()
        for conn in self.connections:
            conn.close()


def bench_page(dataset: Path, episode_id: str, seeks: int, saves: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(str(dataset), child), daemon=True)
    server.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("review server did not start")
        port = parent.recv()
        browser = Browser(port, len(CAMERAS))
        t0 = time.perf_counter()
        view = json.loads(browser.get(0, f"/api/episode/{episode_id}"))
        t_view = time.perf_counter() - t0
        cameras = [c["name"] if isinstance(c, dict) else str(c) for c in view["cameras"]]
        counts = [int(c.get("count", 0)) if isinstance(c, dict) else 0 for c in view["cameras"]]
        first_bytes = browser.frames(episode_id, cameras, 0)
        first_frame = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:  # asked for by the page after the first frame (the server computes them on first request)
            suggestions = json.loads(browser.get(0, f"/api/episode/{episode_id}/suggestions"))
        except RuntimeError:  # a server without the endpoint carries them in the view
            suggestions = view.get("suggestions") or {}
        t_suggestions = time.perf_counter() - t0
        frames = min(counts) if counts and min(counts) > 0 else 1
        rng = random.Random(0)
        seek_s = []
        for _ in range(seeks):
            index = rng.randrange(frames)
            t0 = time.perf_counter()
            browser.frames(episode_id, cameras, index)
            seek_s.append(time.perf_counter() - t0)
        # A second open of the same episode (the view is cached by the server): what "back" costs.
        t0 = time.perf_counter()
        browser.get(0, f"/api/episode/{episode_id}")
        reopen = time.perf_counter() - t0
        save_s = []
        skills = ["reach", "grasp", "lift", "move", "place", "release"]
        for k in range(saves):
            labels = {"verdict": "accept" if k % 2 == 0 else "reject", "reasons": [] if k % 2 == 0 else ["collision"],
                      "subtasks": [{"name": s, "start_t": 10.0 * i + k * 0.01, "end_t": 10.0 * i + 9.0}
                                   for i, s in enumerate(skills)],
                      "instructions": ["pick up the cube and put it in the tray", "put the cube in the tray"],
                      "notes": f"save {k}"}
            t0 = time.perf_counter()
            answer = browser.post(f"/api/episode/{episode_id}/labels", labels)
            save_s.append(time.perf_counter() - t0)
            if not answer.get("ok"):
                raise RuntimeError(f"save refused: {answer}")
        browser.close()
    finally:
        parent.send("stop")
        server.join(timeout=120)
        if server.is_alive():
            server.terminate()
    return {"view_s": t_view, "first_frame_s": first_frame, "first_frame_bytes": first_bytes,
            "cameras": cameras, "frames_per_camera": frames, "seek_ms": pct(seek_s), "reopen_ms": reopen * 1000,
            "post_labels_ms": pct(save_s), "suggestions_ms": t_suggestions * 1000,
            "suggestions_available": bool(suggestions.get("available"))}


def bench_save_labels(path: Path, n: int) -> dict:
    from collector.review.annotations import Labels, Subtask, fold_journal, save_labels

    labels = Labels(reviewer="bench-direct", verdict="accept",
                    subtasks=[Subtask("reach", 1.0, 2.0), Subtask("grasp", 2.0, 3.0)],
                    instructions=["pick up the cube"])
    journal = []
    for _ in range(n):
        t0 = time.perf_counter()
        save_labels(path, labels, fold=False)
        journal.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    fold_journal(path)
    fold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    save_labels(path, labels, fold=True)
    folded_save_s = time.perf_counter() - t0
    return {"journal_ms": pct(journal), "fold_s": fold_s, "save_with_fold_s": folded_save_s,
            "file_mb": path.stat().st_size / 1e6}


# -- suggestions --------------------------------------------------------------------------------------

def scripted_take(out: Path, task: str, seed: int) -> Path:
    """A whole take of the scripted operator (not stopped at success), with its phases in the file."""
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.scripted import operator_phases_metadata
    from collector.teleop.rig import build_sim_rig

    config = load_teleop_config()
    rig = build_sim_rig(task=task, device="scripted", config=config, render=False, seed=seed)
    try:
        rig.backend.reset(seed=seed)
        writer = rig.recorder(out, f"{task}_{seed:06d}", {"task": task, "sim": True}, queue_seconds=120.0)
        result = rig.run_episode(60.0, sink=writer, seed=seed, stop_on_success=False)
        return writer.stop(outcome="success" if result.success else "failure",
                           metadata_updates=operator_phases_metadata(rig.device))
    finally:
        rig.close()


def bench_suggestions(out: Path, per_task: int) -> dict:
    from collector.review.suggestions import boundary_errors, suggest, truth

    rows = []
    errors = {"pick_place": [], "pour": []}
    for task, base in (("pick_place", 1000), ("pour", 2000)):
        for k in range(per_task):
            path = scripted_take(out, task, base + k)
            found = suggest(path)
            e = boundary_errors(found.subtasks, truth(path), until=found.end_t)
            errors[task].extend(e.tolist())
            rows.append({"take": path.name, "task": task, "boundaries": int(e.size),
                         "missed": int(np.isnan(e).sum()), "median_ms": float(np.nanmedian(e) * 1000),
                         "max_ms": float(np.nanmax(e) * 1000), "path": str(path)})
    every = np.asarray(errors["pick_place"] + errors["pour"], dtype=float)
    return {"takes": rows,
            "median_ms": {task: float(np.nanmedian(v) * 1000) for task, v in errors.items()},
            "p90_ms": {task: float(np.nanpercentile(v, 90) * 1000) for task, v in errors.items()},
            "missed": int(np.isnan(every).sum()), "boundaries": int(every.size),
            "all_median_ms": float(np.nanmedian(every) * 1000), "all_p90_ms": float(np.nanpercentile(every, 90) * 1000)}


def repeat_take(source: Path, out: Path, minutes: float) -> Path:
    """A long episode of the loop's non-camera streams: one scripted take's samples repeated end to end."""
    from collector.recorder import EpisodeReader, EpisodeWriter

    with EpisodeReader(source) as reader:
        specs = [spec for spec in reader.streams.values() if not spec.is_camera]
        data = {spec.name: (reader.stamps(spec.name),
                            {f: np.asarray(reader.raw(spec.name, f)[:reader.count(spec.name)]) for f in spec.fields})
                for spec in specs}
        metadata = {k: reader.metadata[k] for k in ("task", "sim", "joint_limits") if k in reader.metadata}
        span = float(reader.metadata["t_end"]) - float(reader.metadata["t_start"]) + 0.01
    repeats = int(math.ceil(minutes * 60.0 / span))
    writer = EpisodeWriter(out, f"long_{source.stem}", specs, metadata=metadata, queue_seconds=1e6, min_free_bytes=0)
    writer.start()
    for r in range(repeats):
        offset = r * span
        for name, (t, fields) in data.items():
            for i in range(len(t)):
                writer.push(name, float(t[i] + offset), **{f: v[i] for f, v in fields.items()})
    return writer.stop(outcome="success")


def bench_suggest_time(path: Path, runs: int = 5) -> dict:
    from collector.recorder import EpisodeReader
    from collector.review.suggestions import suggest

    with EpisodeReader(path) as reader:
        duration = float(reader.metadata["duration_s"])
        suggest(reader)
        times, cpu = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            suggest(reader)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    t0 = time.perf_counter()
    suggest(path)  # opening the file included
    with_open = time.perf_counter() - t0
    return {"episode_s": duration, "suggest_ms": pct(times), "cpu_ms": pct(cpu), "with_open_ms": with_open * 1000}


# -- display ------------------------------------------------------------------------------------------

def _display_run(ticks: int, display: bool, pipe) -> None:
    from collector.review.live_display import run_ticks

    try:
        pipe.send(run_ticks(ticks, display=display, realtime=True))
    except BaseException as exc:  # report, do not hang the parent
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})


def bench_display(ticks: int, runs: int) -> dict:
    """Each run in a fresh process (its own scheduler state and memory), on and off alternating."""
    ctx = multiprocessing.get_context("spawn")
    results = {"on": [], "off": []}
    for k in range(runs):
        for display in ((False, True) if k % 2 == 0 else (True, False)):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_display_run, args=(ticks, display, child))
            proc.start()
            report = parent.recv() if parent.poll(600) else {"error": "timed out"}
            proc.join(timeout=60)
            if "error" in report:
                raise RuntimeError(f"display run ({'on' if display else 'off'}): {report['error']}")
            results["on" if display else "off"].append(report)
    summary = {}
    for key, reports in results.items():
        summary[key] = {"input_to_command_p99_ms": [r["input_to_command_ms"]["p99"] for r in reports],
                        "input_to_command_p50_ms": [r["input_to_command_ms"]["p50"] for r in reports],
                        "jitter_p99_ms": [r["jitter_ms"]["p99"] for r in reports],
                        "control_hz": [r["control_hz"] for r in reports],
                        "realtime_scheduling": [r["realtime_scheduling"] for r in reports],
                        "display_logged": [sum((r.get("display_logged") or {}).values()) for r in reports],
                        "display_dropped": [r.get("display_dropped", 0) for r in reports]}
    return summary


# -- main ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2-minute episode, fewer seeks/takes/runs")
    parser.add_argument("--keep", metavar="DIR", help="write everything into DIR and keep it")
    parser.add_argument("--skip-display", action="store_true", help="leave out the live display runs")
    args = parser.parse_args()
    quick = args.quick
    minutes = 2.0 if quick else 10.0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-review-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"== dataset: one {minutes:g}-minute episode, {len(CAMERAS)} cameras 320x240 JPEG at 30 fps ==")
        episode_id, episode, made_s = make_dataset(root / "dataset", minutes)
        print(f"{episode.name}: {episode.stat().st_size / 1e6:.0f} MB, written in {made_s:.1f} s")

        print("\n== review page over HTTP on loopback (server in its own process) ==")
        page = bench_page(root / "dataset", episode_id, seeks=100 if quick else 200, saves=20)
        print(f"episode view (JSON)         {page['view_s'] * 1000:8.1f} ms")
        print(f"first frame, 4 cameras      {page['first_frame_s'] * 1000:8.1f} ms  "
              f"({page['first_frame_bytes']} bytes)")
        print(f"seek, 4 cameras in parallel p50 {page['seek_ms']['p50']:6.2f} ms  p95 {page['seek_ms']['p95']:6.2f} ms"
              f"  max {page['seek_ms']['max']:6.2f} ms  (n={page['seek_ms']['n']})")
        print(f"suggestions, then           {page['suggestions_ms']:8.1f} ms  (available: "
              f"{page['suggestions_available']})")
        print(f"episode view again          {page['reopen_ms']:8.1f} ms")
        print(f"POST labels                 p50 {page['post_labels_ms']['p50']:6.2f} ms  "
              f"p95 {page['post_labels_ms']['p95']:6.2f} ms")
        save = bench_save_labels(episode, 20)
        print(f"save_labels, journal only   p50 {save['journal_ms']['p50']:6.2f} ms  "
              f"p95 {save['journal_ms']['p95']:6.2f} ms")
        print(f"fold into the episode file  {save['fold_s']:8.2f} s   (a copy of {save['file_mb']:.0f} MB); "
              f"save_labels with fold {save['save_with_fold_s']:.2f} s")

        print(f"\n== suggestions vs the scripted operator's phases ({2 if quick else 3} whole takes per task) ==")
        sugg = bench_suggestions(root / "takes", per_task=2 if quick else 3)
        print(f"{'take':28s} {'task':10s} {'bounds':>6s} {'missed':>6s} {'median ms':>9s} {'max ms':>7s}")
        for row in sugg["takes"]:
            print(f"{row['take']:28s} {row['task']:10s} {row['boundaries']:6d} {row['missed']:6d} "
                  f"{row['median_ms']:9.1f} {row['max_ms']:7.1f}")
        print(f"median: pick_place {sugg['median_ms']['pick_place']:.1f} ms, pour {sugg['median_ms']['pour']:.1f} ms, "
              f"all {sugg['all_median_ms']:.1f} ms (p90 {sugg['all_p90_ms']:.1f} ms); "
              f"missed {sugg['missed']}/{sugg['boundaries']}")
        long_path = repeat_take(Path(sugg["takes"][-1]["path"]), root / "long", minutes)
        speed = bench_suggest_time(long_path)
        synthetic_speed = bench_suggest_time(episode)
        print(f"suggest() on {speed['episode_s'] / 60:.1f} min of the loop's streams: p50 "
              f"{speed['suggest_ms']['p50']:.1f} ms (CPU {speed['cpu_ms']['p50']:.1f} ms; with opening the file "
              f"{speed['with_open_ms']:.1f} ms); "
              f"on the synthetic 4-camera episode {synthetic_speed['suggest_ms']['p50']:.1f} ms")

        display = None
        if not args.skip_display:
            ticks, runs = (400, 1) if quick else (1000, 2)
            print(f"\n== teleop input->command with and without --display ({runs} x {ticks} ticks each) ==")
            display = bench_display(ticks, runs)
            for key in ("off", "on"):
                d = display[key]
                print(f"display {key:3s}  p99 {', '.join(f'{v:.2f}' for v in d['input_to_command_p99_ms'])} ms  "
                      f"p50 {', '.join(f'{v:.2f}' for v in d['input_to_command_p50_ms'])} ms  "
                      f"jitter p99 {', '.join(f'{v:.2f}' for v in d['jitter_p99_ms'])} ms  "
                      f"logged {d['display_logged']} dropped {d['display_dropped']}")

        print(f"\nmachine load average during the run: {os.getloadavg()} on {os.cpu_count()} CPUs")
        print(json.dumps({
            "first_frame_s": round(page["first_frame_s"], 4),
            "seek_p50_ms": round(page["seek_ms"]["p50"], 3),
            "seek_p95_ms": round(page["seek_ms"]["p95"], 3),
            "save_ms_p50": round(page["post_labels_ms"]["p50"], 3),
            "suggestions_request_ms": round(page["suggestions_ms"], 2),
            "save_labels_journal_ms_p50": round(save["journal_ms"]["p50"], 3),
            "fold_s": round(save["fold_s"], 3),
            "suggestion_median_error_ms": round(sugg["all_median_ms"], 2),
            "suggestion_median_error_ms_pick_place": round(sugg["median_ms"]["pick_place"], 2),
            "suggestion_median_error_ms_pour": round(sugg["median_ms"]["pour"], 2),
            "suggestion_p90_error_ms": round(sugg["all_p90_ms"], 2),
            "suggestion_boundaries": sugg["boundaries"], "suggestion_missed": sugg["missed"],
            "suggest_ms_p50": round(speed["suggest_ms"]["p50"], 2),
            "suggest_cpu_ms_p50": round(speed["cpu_ms"]["p50"], 2),
            "display_p99_ms_off": round(float(np.median(display["off"]["input_to_command_p99_ms"])), 3)
            if display else None,
            "display_p99_ms_on": round(float(np.median(display["on"]["input_to_command_p99_ms"])), 3)
            if display else None,
            "suggest_episode_minutes": round(speed["episode_s"] / 60.0, 2),
            "episode_minutes": minutes, "cameras": len(CAMERAS),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "quick": quick,
        }))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
