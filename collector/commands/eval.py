"""`collector eval CHECKPOINT`: roll a trained policy out in simulation over a grid of conditions.

Every cell of task x lighting preset x weight preset x theme gets --seeds rollouts, with held-out
seeds from --seed-base on (a seed that recorded one of the checkpoint's training or validation
episodes is refused). The policy drives the ordinary control loop as the command source `policy`
(every command through the safety gate), success is the simulator's own task check, and each
rollout is saved as an ordinary episode (OUT/episodes/*.hdf5, operator and control source `policy`)
that inspect, replay, plot and validate read. Rollouts run in lockstep and are deterministic.

Defaults: the tasks and the lighting and weight presets the policy was trained on, the scene's
default theme, 3 seeds. Prints a success table per cell and per condition value, writes
OUT/results.json and OUT/heatmap.png, records the evaluation in the catalogue of the dataset folder
the policy was trained on (when it has one), and prints one JSON object last. --grasp-gate-mm holds
each gripper open until its hand is down at the policy's estimate of the target
(collector/policy/grasp_gate.py); --steer-hands sends each hand near the target to the policy's
estimate of it plus the policy's predicted offset, through the IK (collector/policy/hand_steering.py);
--hold-estimate-mm makes both act on the estimate seen while the hands were farther than that from the
target (collector/policy/held_estimate.py).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import List, Optional

from collector.errors import CollectorError, ConfigError

DEFAULT_SEEDS = 3


def _names(value: Optional[str], known: List[str], flag: str, default: List[str]) -> List[str]:
    """A comma-separated list of known names, or 'all'; None gives the default."""
    if value is None:
        return list(default)
    if value.strip() == "all":
        return list(known)
    names = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"{flag}: unknown value(s) {', '.join(unknown) or repr(value)} "
                          f"(known: {', '.join(known)}, or all)")
    return names


def _trained(checkpoint, key: str, known: List[str], fallback: List[str]) -> List[str]:
    """The values of `key` among the checkpoint's training episodes, in the presets' order."""
    seen = {str(e.get(key) or "") for e in checkpoint.provenance.get("episodes") or []}
    return [k for k in known if k in seen] or fallback


def _grid(args, checkpoint):
    from collector.policy.evaluate import grid
    from collector.sim.conditions import lighting_presets, themes, weight_presets
    from collector.sim.tasks import TASKS

    tasks = _names(args.task, list(TASKS), "--task",
                   [t for t in checkpoint.vocabulary.tasks if t in TASKS] or ["pick_place"])
    lightings = _names(args.lighting, list(lighting_presets()), "--lighting",
                       _trained(checkpoint, "lighting", list(lighting_presets()), ["bright"]))
    weights = _names(args.weight, list(weight_presets()), "--weight",
                     _trained(checkpoint, "weight", list(weight_presets()), ["medium"]))
    theme_names = _names(args.theme, list(themes()), "--theme", [None])
    return grid(tasks, lightings, weights, theme_names)


def _check_out(out: Path) -> None:
    """Never add to or overwrite an earlier evaluation's files."""
    episodes = out / "episodes"
    from collector.policy.evaluate import RESULTS_FILE

    if (out / RESULTS_FILE).exists() or (episodes.is_dir() and any(episodes.iterdir())):
        raise ConfigError(f"{out}: already holds an evaluation (results.json or episodes/); choose another --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")


def _rate(ok: int, n: int) -> str:
    return f"{ok}/{n} ({100.0 * ok / n:.0f}%)" if n else "-"


def _print_tables(results: dict) -> None:
    from collector.text_table import format_table

    rows = [[c["task"], c["lighting"], c["weight"], c["theme"], _rate(c["successes"], c["rollouts"])]
            for c in results["cells"]]
    print(format_table(["task", "lighting", "weight", "theme", "success"], rows, rule=True))
    for key, values in results["by_condition"].items():
        print()
        print(format_table([key, "success"], [[value, _rate(v["successes"], v["rollouts"])]
                                               for value, v in values.items()], rule=True))


def _progress(result) -> None:
    c = result.cell
    outcome = "success" if result.success else ("not run: " + result.untold if result.untold else "failure")
    print(f"  {c.task} {c.lighting} {c.weight} {c.theme} seed {result.seed}: {outcome}"
          + ("" if result.untold else f" ({result.duration_s:.1f} s)"), flush=True)


def _register(results: dict, checkpoint) -> list:
    """Record the evaluation in the catalogue of each dataset folder the policy was trained on.

    results.json is already written, so a catalogue that cannot take it is a warning, not a failure."""
    from collector.session.policy_records import has_catalogue, record_evaluation

    registered = []
    for root in checkpoint.provenance.get("dataset_roots") or []:
        if not has_catalogue(root):
            continue
        try:
            registered.append({"dataset": root, "evaluation_id": record_evaluation(root, results)})
        except CollectorError as exc:
            print(f"collector eval: warning: not recorded in {root}'s catalogue: {exc}", file=sys.stderr)
    return registered


def _metres(mm: Optional[float], flag: str) -> Optional[float]:
    if mm is None:
        return None
    if not (math.isfinite(mm) and mm > 0):
        raise ConfigError(f"{flag} must be a positive number of millimetres, got {mm:g}")
    return mm / 1000.0


def _assists(args):
    from collector.policy.assists import Assists

    gate_m = _metres(args.grasp_gate_mm, "--grasp-gate-mm")
    hold_m = _metres(args.hold_estimate_mm, "--hold-estimate-mm")
    if hold_m is not None and gate_m is None and not args.steer_hands:  # said with the flags' names
        raise ConfigError("--hold-estimate-mm needs --grasp-gate-mm or --steer-hands, which read the estimate")
    return Assists(grasp_gate_m=gate_m, steer_hands=args.steer_hands, hold_estimate_m=hold_m)


def run(args) -> int:
    import torch

    from collector.policy.evaluate import HEATMAP_FILE, RESULTS_FILE, check_held_out, evaluate, load_checkpoint

    started = time.monotonic()
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if not args.max_seconds > 0:
        raise ConfigError(f"--max-seconds must be positive, got {args.max_seconds}")
    torch.set_num_threads(max(1, args.threads))
    checkpoint = load_checkpoint(args.checkpoint)
    cells = _grid(args, checkpoint)
    seeds = [args.seed_base + i for i in range(args.seeds)]
    check_held_out(checkpoint, seeds)
    out = Path(args.out) if args.out else Path("eval") / Path(args.checkpoint).stem
    _check_out(out)
    print(f"evaluating {checkpoint.describe()}: {len(cells)} cell(s) x {len(seeds)} seed(s) "
          f"from {seeds[0]}, up to {args.max_seconds:g} s each", flush=True)
    results = evaluate(checkpoint, cells, seeds, out, max_seconds=args.max_seconds, robot=args.robot,
                       device=args.device, schedule=args.schedule, progress=_progress,
                       frozen=not args.eager, assists=_assists(args))
    results_path, heatmap = out / RESULTS_FILE, out / HEATMAP_FILE
    print()
    _print_tables(results)
    if results["untold"]:
        print(f"\n{results['untold']} rollout(s) did not run: their instruction names a task or object the policy "
              f"was never trained on (counted as failures, no episode recorded)")
    registered = _register(results, checkpoint)
    print(f"\nresults: {results_path}   heat map: {heatmap}   episodes: {out / 'episodes'}"
          + "".join(f"\nrecorded as evaluation {r['evaluation_id']} in {r['dataset']}" for r in registered))
    print(json.dumps({"rollouts": results["rollouts"], "successes": sum(c["successes"] for c in results["cells"]),
                      "success_rate": results["success_rate"], "untold": results["untold"],
                      "by_lighting": {k: v["success_rate"] for k, v in results["by_condition"]["lighting"].items()},
                      "by_weight": {k: v["success_rate"] for k, v in results["by_condition"]["weight"].items()},
                      "inference_p50_ms": results["inference_ms"]["p50"],
                      "inference_p99_ms": results["inference_ms"]["p99"], "tick_p99_ms": results["tick_ms"]["p99"],
                      "network": results["network"], "grasp_gate_m": results["grasp_gate_m"],
                      "steer_hands": results["steer_hands"], "hold_estimate_m": results["hold_estimate_m"],
                      "results": str(results_path), "heatmap": str(heatmap),
                      "episodes": str(out / "episodes"),
                      "catalogued": [r["dataset"] for r in registered],
                      "wall_s": round(time.monotonic() - started, 1)}))
    return 0


def register(subparsers):
    from collector.policy.evaluate import DEFAULT_MAX_SECONDS, DEFAULT_SEED_BASE

    parser = subparsers.add_parser(
        "eval", help="roll a trained policy out in simulation over a grid of conditions; success per cell",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint written by `collector train`")
    parser.add_argument("--task", default=None, metavar="T[,T]|all", help="tasks (default: the policy's)")
    parser.add_argument("--lighting", default=None, metavar="L[,L]|all",
                        help="lighting presets (default: those of the training episodes)")
    parser.add_argument("--weight", default=None, metavar="W[,W]|all",
                        help="weight presets (default: those of the training episodes)")
    parser.add_argument("--theme", default=None, metavar="TH[,TH]|all", help="scene themes (default: the scene's)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"rollouts per cell, seeds SEED_BASE..SEED_BASE+N-1 (default {DEFAULT_SEEDS})")
    parser.add_argument("--seed-base", type=int, default=DEFAULT_SEED_BASE, metavar="SEED_BASE",
                        help=f"first held-out seed (default {DEFAULT_SEED_BASE}, far from plan seeds)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, metavar="S",
                        help=f"sim seconds per rollout before it counts as a failure (default {DEFAULT_MAX_SECONDS:g})")
    parser.add_argument("--out", default=None, metavar="DIR", help="results folder (default eval/<checkpoint name>)")
    parser.add_argument("--robot", default="humanoid", help="robot (default humanoid)")
    parser.add_argument("--schedule", choices=("ensemble", "queue"), default="ensemble",
                        help="action chunks: ACT's temporal ensembling (default) or a chunk queue")
    parser.add_argument("--eager", action="store_true",
                        help="run the network eagerly, not as its frozen TorchScript trace (same commands, slower)")
    parser.add_argument("--grasp-gate-mm", type=float, default=None, metavar="MM",
                        help="hold each gripper open while its hand is more than MM above the policy's estimate of "
                             "the target, until a close goes through (a baseline with object_loss and ee_to_head)")
    parser.add_argument("--steer-hands", action="store_true",
                        help="send each hand near the target to the policy's estimate of it plus the policy's "
                             "predicted offset from it, through the IK (a baseline trained with hand_offsets)")
    parser.add_argument("--hold-estimate-mm", type=float, default=None, metavar="MM",
                        help="the gate and the steering act on the policy's estimate of the target seen while both "
                             "hands were farther than MM from it, held while one is nearer (the study: 120)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.set_defaults(func=run)
