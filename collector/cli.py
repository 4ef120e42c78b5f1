"""The `collector` command line: one entry point, one subcommand per module in collector/commands/."""
import argparse
import importlib
import logging
import pkgutil
import signal
import sys
import traceback

from collector import __version__, commands, interrupts
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


# Commands that run a plan: a signal finalizes the take in progress and the same command resumes.
_RESUMABLE = ("demo", "collect", "session")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # PyOpenGL's note that its optional C accelerator is absent: nothing a user can act on
        logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with interrupts.handled():
            return int(args.func(args) or 0)
    except CollectorError as exc:
        print(f"collector {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _report_interrupt(args.command, exc)
    except Exception as exc:  # the last resort: a bug, or a case no CollectorError covers yet
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split())
        print(f"collector {args.command}: error: unexpected {type(exc).__name__}"
              f"{': ' + message if message else ''} (run with -v for the traceback)", file=sys.stderr)
        return 1


def _report_interrupt(command: str, exc: KeyboardInterrupt) -> int:
    if not isinstance(exc, interrupts.Interrupted) or exc.signum == signal.SIGINT:
        print(f"collector {command}: interrupted", file=sys.stderr)
        return 130
    resume = "; any take in progress was finalized; run the same command again to resume" \
        if command in _RESUMABLE else ""
    print(f"collector {command}: stopped by {exc.signal_name}{resume}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
