"""`collector recover`: finish the partial file of a recording whose writer was killed or ran out of disk."""
from pathlib import Path

from collector.errors import CollectorError, DataError
from collector.recorder import schema


def _targets(paths):
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob(f"*{schema.PARTIAL_SUFFIX}"))
            if not found:
                print(f"no partial episodes (*{schema.PARTIAL_SUFFIX}) under {path}")
            yield from found
        else:
            yield path


def run(args) -> int:
    from collector.recorder import recover_episode

    targets = list(_targets(args.paths))
    if len(targets) == 1 and len(args.paths) == 1 and not Path(args.paths[0]).is_dir():
        final = recover_episode(targets[0])  # a single file: errors go through the CLI's one-line report
        print(f"recovered {targets[0]} -> {final}")
        return 0
    failed = 0
    for path in targets:
        try:
            final = recover_episode(path)
            print(f"recovered {path} -> {final}")
        except CollectorError as exc:
            failed += 1
            print(f"FAILED    {path}: {exc}")
    if failed:
        raise DataError(f"{failed} of {len(targets)} partial episode(s) could not be recovered")
    return 0


def register(subparsers):
    parser = subparsers.add_parser(
        "recover",
        help="turn partial episodes (writer killed, disk full) into valid episodes marked recovered",
        description="A recording whose process was killed or that stopped on a full disk leaves "
                    f"<episode>{schema.PARTIAL_SUFFIX}, readable up to its last flush (at most a second "
                    "before the end). This trims every raw stream to its complete rows, writes the "
                    "aligned view, marks the episode recovered (root attributes status=recovered, "
                    "recovered=true) and renames it to <episode>.hdf5. Existing episodes are never touched.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help=f"a partial episode file, or a folder to search for *{schema.PARTIAL_SUFFIX}")
    parser.set_defaults(func=run)
