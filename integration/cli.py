"""The ``rc-clevertap`` command line.

This is the only module that imports argparse and rich.  Each command is a small function
that parses its options, calls into the packages, and prints either a table or, with
``--json``, plain JSON.  Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rc-clevertap",
        description="RevenueCat -> CleverTap: a client, a durable forwarder and local mocks.",
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
