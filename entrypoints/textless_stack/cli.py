"""textless-stack: one command line, one subcommand per job."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="textless-stack", description=__doc__)
    ap.add_argument("--version", action="version", version=f"textless-stack {__version__}")
    ap.add_subparsers(dest="command", metavar="COMMAND")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
