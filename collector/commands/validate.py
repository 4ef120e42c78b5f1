"""`collector validate`: check episodes against the schema and the QA rules; non-zero exit on any problem."""
import json
from pathlib import Path

from collector.errors import ConfigError


def _load_limits(path):
    """Joint limits from a JSON or YAML file holding {"lower": [...], "upper": [...]}."""
    if path is None:
        return None
    from collector.yaml_files import parse_yaml, read_yaml_text

    # The shared YAML reader: binary garbage, a directory or a repeated key is a one-line error.
    data = parse_yaml(read_yaml_text(Path(path), "--limits"), f"--limits {path}")
    if not isinstance(data, dict) or "lower" not in data or "upper" not in data:
        raise ConfigError(f"--limits {path}: expected keys 'lower' and 'upper' (lists, one entry per joint)")
    return data


def run(args) -> int:
    from collector.recorder.qa import DEFAULT_REQUIRED_STREAMS, episode_files, validate_episode

    limits = _load_limits(args.limits)
    required = args.require if args.require is not None else DEFAULT_REQUIRED_STREAMS
    files = [f for path in args.paths for f in episode_files(path)]
    if not files:
        raise ConfigError(f"no episode files (*.hdf5, *.h5) in {', '.join(args.paths)}")
    results = {}
    for path in files:
        results[str(path)] = validate_episode(
            path, robot_limits=limits, required_streams=required, min_duration_s=args.min_duration,
            frozen_s=args.frozen_s, limit_margin=args.limit_margin)
    failed = sum(1 for problems in results.values() if problems)
    if args.json:
        print(json.dumps({"episodes": results, "failed": failed, "checked": len(files)}, indent=2))
    else:
        for path, problems in results.items():
            print(f"{'FAIL' if problems else 'ok  '}  {path}")
            for problem in problems:
                print(f"        - {problem}")
        print(f"{len(files) - failed} of {len(files)} episode(s) passed")
    return 1 if failed else 0


def register(subparsers):
    parser = subparsers.add_parser(
        "validate",
        help="check one episode or a folder of episodes against the schema and QA rules",
        description="Checks: the file is a finished episode of a readable schema version with the required "
                    "metadata (conditions with lighting and weights); required streams present and non-empty; "
                    "no gap between samples longer than the stream's tolerance; no camera frozen (identical "
                    "frames) for --frozen-s seconds; no NaN/inf; joint positions and actions inside the joint "
                    "limits (--limits, else the episode's joint_limits metadata); at least --min-duration "
                    "seconds; an aligned view whose rows are all within tolerance; every camera frame still "
                    "matching its stored CRC32 and decoding; the aligned view equal to the raw samples it names. "
                    "A damaged file (missing datasets, wrong dtypes or shapes, unreadable bytes) is one FAIL "
                    "naming what is wrong; the other files are still checked. Lists every problem and exits 1 "
                    "if any episode has one.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="an episode file or a folder (searched for *.hdf5 and *.h5)")
    parser.add_argument("--limits", metavar="FILE",
                        help='JSON/YAML file {"lower": [...], "upper": [...]} with joint position limits')
    parser.add_argument("--require", nargs="*", metavar="STREAM", default=None,
                        help="streams every episode must have (default: joints command)")
    parser.add_argument("--min-duration", type=float, default=1.0, metavar="S",
                        help="shortest acceptable episode in seconds (default 1.0)")
    parser.add_argument("--frozen-s", type=float, default=1.0, metavar="S",
                        help="a camera repeating one frame this long is frozen (default 1.0)")
    parser.add_argument("--limit-margin", type=float, default=1e-3, metavar="X",
                        help="how far past a joint limit still passes (default 0.001)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)
