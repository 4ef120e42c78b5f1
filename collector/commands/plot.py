"""`collector plot EPISODE`: a PNG (or self-contained HTML page) to check one take by eye.

Shows joint trajectories commanded vs measured (one panel per joint group of the robot, in rad or m),
stream timelines with gaps and drops, the sync error of every aligned row, and a contact sheet of
camera frames. In the HTML page the joint plot is interactive: hover for each joint's values, drag to
zoom into a time span, double-click to see the whole take again. The page needs no network.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from collector.dataset.plot import FIGURES


def run(args) -> int:
    from collector.dataset.plot import plot_episode

    out = Path(args.out) if args.out else Path(f"{Path(args.episode).stem}.{'html' if args.html else 'png'}")
    written = plot_episode(args.episode, out, which=args.figures, dpi=args.dpi)
    print(f"wrote {written}")
    return 0


def register(subparsers):
    parser = subparsers.add_parser("plot", help="plot an episode: joints, stream timelines, sync error, frames",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("episode", metavar="EPISODE", help="an episode file (.hdf5 or .h5)")
    parser.add_argument("--out", "-o", metavar="FILE",
                        help="output .png or .html (default: <episode>.png in the current folder)")
    parser.add_argument("--html", action="store_true", help="write a self-contained HTML page with an interactive joint plot (default name)")
    parser.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES), help="which figures")
    parser.add_argument("--dpi", type=int, default=90, help="resolution of the figures (default 90)")
    parser.set_defaults(func=run)
