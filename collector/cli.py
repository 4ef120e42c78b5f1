"""The `collector` command line: one entry point, one subcommand per module in collector/commands/."""
import argparse
import importlib
import logging
import pkgutil
import sys

from collector import __version__, commands
from collector.errors import CollectorError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collector",
        description="Humanoid teleoperation data collection for imitation learning.",
    )
    parser.add_argument("--version", action="version", version=f"collector {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
        except ImportError as exc:
            # One command whose optional dependency is missing must not take the whole CLI down.
            _register_unavailable(subparsers, info.name, exc)
            continue
        module.register(subparsers)
    return parser


def _register_unavailable(subparsers, name: str, exc: ImportError) -> None:
    reason = f"{type(exc).__name__}: {exc}"
    parser = subparsers.add_parser(name, help=f"(unavailable: {reason})")

    def run(args):
        raise CollectorError(f"this command cannot run here ({reason}); check the install (collector doctor)")

    parser.set_defaults(func=run)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CollectorError as exc:
        print(f"collector {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"collector {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
