"""`collector launch FILE [name:=value ...]`: run a ROS 2 YAML launch file without `ros2 launch`."""
import argparse
import shlex
from pathlib import Path

from collector.errors import ConfigError
from collector.paths import launch_dir


def resolve_launch_file(name: str) -> Path:
    """A path as given, or the name of a shipped file in launch/ (with or without .launch.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"launch file {name!r} is a directory, not a launch file")
    for candidate in (launch_dir() / name, launch_dir() / f"{name}.launch.yaml"):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.name for p in launch_dir().glob("*.launch.yaml")) if launch_dir().is_dir() else []
    raise ConfigError(f"launch file {name!r} not found (shipped: {', '.join(shipped) or 'none'})")


def _add_options(parser) -> None:
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for every process (default: keep the environment's)")
    parser.add_argument("--keep-going", action="store_true",
                        help="keep the other processes running when one dies")
    parser.add_argument("--show-args", action="store_true", help="print the launch arguments and exit")
    parser.add_argument("--print", action="store_true", help="print the arguments and commands and exit")


def _merge_trailing_options(args) -> None:
    """Options may also follow the file and its name:=value arguments (`ros2 launch` style)."""
    trailing = argparse.ArgumentParser(prog="collector launch", add_help=False)
    _add_options(trailing)
    late, words = trailing.parse_known_args(args.arguments)
    for key, value in vars(late).items():
        if value not in (None, False):
            setattr(args, key, value)
    args.arguments = words


def run(args) -> int:
    from collector.ros.environment import ros_environment
    from collector.ros.launch_file import parse_launch_arguments, read_launch_file
    from collector.ros.process_group import ProcessGroup

    _merge_trailing_options(args)
    path = resolve_launch_file(args.file)
    env = ros_environment(domain_id=args.domain_id)
    plan = read_launch_file(path, parse_launch_arguments(args.arguments), base_env=env)
    if args.show_args or args.print:
        for name, value in plan.arguments.items():
            print(f"  {name}:={value}")
        if args.print:
            for spec in plan.processes:
                print(f"[{spec.name}] {shlex.join(spec.argv)}")
        return 0
    group = ProcessGroup(plan.processes, base_env=env, sigterm_timeout=plan.sigterm_timeout,
                         sigkill_timeout=plan.sigkill_timeout, stop_on_failure=not args.keep_going)
    for name in plan.undeclared:
        group.say(f"[launch] warning: argument {name!r} is not declared by {path.name}")
    group.say(f"[launch] {path} with ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID', '0')}, "
              f"discovery {env.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}")
    code = group.run()
    if group.failures:
        group.say(f"[launch] {len(group.failures)} process(es) failed: {'; '.join(group.failures)}")
    return code


def register(subparsers):
    parser = subparsers.add_parser(
        "launch",
        help="run a ROS 2 YAML launch file (sim hardware + teleop + recorder, ...) without ros2 launch",
        description="Start every process of a ROS 2 YAML launch file (the files in launch/ also work with "
                    "`ros2 launch`), print their output prefixed with their names, report a process that dies "
                    "(and stop the session unless --keep-going), and stop all cleanly on Ctrl-C "
                    "(SIGINT, then SIGTERM, then SIGKILL). DDS traffic is kept on this machine "
                    "(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) with the shipped Fast DDS profile.",
    )
    parser.add_argument("file", help="launch file path, or a shipped name such as sim_session")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, metavar="name:=value",
                        help="launch arguments (options may follow them too)")
    _add_options(parser)
    parser.set_defaults(func=run)
