"""The ``rc-clevertap`` command line.

This is the only module that imports argparse and rich.  Each command is one function that
parses nothing itself: it takes the parsed options, calls into the packages, and prints
either a table or, with ``--json``, plain JSON on stdout.  Failures are one line on stderr
and a non-zero exit status, never a traceback:

    0  success
    1  the work ran and failed (a demo whose verification failed, an unreachable service)
    2  bad usage or bad input (unknown option, invalid config, invalid webhook body)

Commands import their packages lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure reported as one line, with an exit status."""

    def __init__(self, message: str, *, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


# --------------------------------------------------------------------------- map


def cmd_map(args: argparse.Namespace) -> int:
    """Read one webhook body on stdin and print what would be uploaded to CleverTap."""
    from integration.config import ConfigError, load_config
    from integration.mapping import InvalidWebhook, preview

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CommandError(f"invalid configuration: {exc}", status=EXIT_USAGE) from exc
    body = sys.stdin.buffer.read()
    try:
        result = preview(body, config)
    except InvalidWebhook as exc:
        raise CommandError(f"invalid webhook: {exc.reason}", status=EXIT_USAGE) from exc
    _print_json(result)
    return EXIT_OK


# ------------------------------------------------------------------------ parser


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print plain JSON for scripts")


def _add_config(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        required=required,
        help="TOML configuration file (RC_CLEVERTAP_* environment variables override it)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rc-clevertap",
        description="RevenueCat -> CleverTap: a client, a durable forwarder and local mocks.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser(
        "map",
        help="print the CleverTap upload for one webhook body read on stdin",
        description="Read one RevenueCat webhook body on stdin and print, as JSON, what would "
        'be uploaded: {"account_id": ..., "d": [...]} or {"d": [], "skipped": "<reason>"}.',
    )
    _add_config(p)
    p.set_defaults(handler=cmd_map)

    return parser


def _fail(message: str, status: int) -> NoReturn:
    _stderr().print(f"rc-clevertap: error: {message}", markup=False)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_OK
    try:
        return handler(args)
    except CommandError as exc:
        _fail(str(exc), exc.status)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_FAILED)
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_FAILED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
