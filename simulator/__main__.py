"""``python -m simulator simulate-upstream [flags]``: the simulator without the tokenrelay CLI."""

from __future__ import annotations

import argparse
import sys

from simulator.cli import add_parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand."""
    parser = argparse.ArgumentParser(prog="python -m simulator")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
