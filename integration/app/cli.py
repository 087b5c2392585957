"""The ``rc-clevertap`` command line.

This is the only module that imports argparse and rich.  Each command is one function that
parses nothing itself: it takes the parsed options, calls into the packages, and prints
either a table or, with ``--json``, plain JSON on stdout.  Failures are one line on stderr
and a non-zero exit status, never a traceback:

    0    success (and ``serve`` or ``mock`` stopped by SIGINT or SIGTERM, after draining)
    1    the work ran and failed (a demo whose verification failed, an unreachable service,
         an outbox that cannot be opened, unknown dead-letter ids)
    2    bad usage or bad input (unknown option, invalid config, invalid webhook body)
    130  a finite command (``demo``, ``replay``, ...) interrupted by SIGINT or SIGTERM

Commands import their packages lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


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


#: Column names an operator copies from: never wrapped or cut (the other columns fold).
_WHOLE = re.compile(r"\bid\b|since|time|event|account|outbox|log$", re.IGNORECASE)


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        if _WHOLE.search(column):
            table.add_column(column, no_wrap=True, overflow="ignore")
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


# --------------------------------------------------------------------------- map


def cmd_map(args: argparse.Namespace) -> int:
    """Read one webhook body on stdin and print what would be uploaded to CleverTap."""
    from integration.config import ConfigError, load_config
    from integration.routes import Routes, preview_route
    from integration.webhook import InvalidWebhook

    try:
        # The account ids decide where (and whether) an event goes; no passcode is needed.
        config = load_config(args.config, require_clevertap="account")
        routes = Routes(config)  # imports the transforms, as serve does
    except ConfigError as exc:
        raise CommandError(f"invalid configuration: {exc}", status=EXIT_USAGE) from exc
    if args.route is not None and routes.get(args.route) is None:
        known = ", ".join(routes.names)
        raise CommandError(
            f"--route: unknown route {args.route!r}; known: {known}", status=EXIT_USAGE
        )
    body = sys.stdin.buffer.read()
    try:
        result = asyncio.run(preview_route(body, routes, route=args.route))
    except InvalidWebhook as exc:
        raise CommandError(f"invalid webhook: {exc.reason}", status=EXIT_USAGE) from exc
    _print_json(result)
    return EXIT_OK


# ------------------------------------------------------------------------ config


def cmd_config_example(args: argparse.Namespace) -> int:
    """Print the commented reference configuration shipped with the package."""
    from integration.config import example_config

    sys.stdout.write(example_config())
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    """Load the configuration as ``serve`` does; every problem is reported at once."""
    from integration.config import ConfigError
    from integration.routes import Routes

    config = _load(args, clevertap=True)
    try:
        Routes(config)  # imports the transforms, as serve does at start-up
    except ConfigError as exc:
        raise CommandError(f"invalid configuration: {exc}", status=EXIT_USAGE) from exc
    _stdout().print("configuration is valid", markup=False)
    return EXIT_OK


# -------------------------------------------------------------------------- mock


def _mock_backends(args: argparse.Namespace) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Build both mock backends and the fault injector from the command-line options."""
    from mockserver.clevertap import DEFAULT_ACCOUNT, Account, CleverTapBackend
    from mockserver.faults import FaultInjector
    from mockserver.revenuecat import RevenueCatBackend, WebhookTarget
    from mockserver.revenuecat.backend import DEFAULT_PROJECT_ID
    from mockserver.revenuecat.keys import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, DEFAULT_V2_KEY

    try:
        revenuecat = RevenueCatBackend(
            public_keys=args.rc_public_key or [DEFAULT_PUBLIC_KEY],
            secret_keys=args.rc_secret_key or [DEFAULT_SECRET_KEY],
            v2_keys=args.rc_v2_key or [DEFAULT_V2_KEY],
            project_id=args.rc_project_id or DEFAULT_PROJECT_ID,
            webhooks=[
                WebhookTarget(url, authorization=args.webhook_auth)
                for url in args.webhook_url or []
            ],
            time_scale=args.time_scale,
            v2_rate_limit=None if args.rc_rate_limit == "off" else int(args.rc_rate_limit),
            seed=args.seed,
        )
        account = Account(
            args.ct_account_id or DEFAULT_ACCOUNT.account_id,
            tuple(args.ct_passcode or DEFAULT_ACCOUNT.passcodes),
            region=args.ct_region,
        )
        clevertap = CleverTapBackend(accounts=[account], seed=args.seed or 0)
        faults = FaultInjector(seed=args.seed or 0)
        if args.faults:
            faults.apply_preset(args.faults)
    except ValueError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    rc_defaults = not (args.rc_public_key or args.rc_secret_key or args.rc_v2_key)
    ct_defaults = not (args.ct_account_id or args.ct_passcode)
    described = {
        "revenuecat": revenuecat.describe(reveal_keys=rc_defaults),
        "clevertap": clevertap.describe(reveal_passcodes=ct_defaults),
        "faults": args.faults or "none",
    }
    return revenuecat, clevertap, faults, described


def cmd_mock(args: argparse.Namespace) -> int:
    """Serve the RevenueCat and CleverTap mocks until interrupted."""
    import uvicorn

    from mockserver import create_app

    revenuecat, clevertap, faults, described = _mock_backends(args)
    app = create_app(revenuecat_backend=revenuecat, clevertap_backend=clevertap, faults=faults)
    _setup_logging(args)
    sock = _bind(args.host, args.port)
    base = _url(sock)
    if args.json:
        _print_json({"url": base, **described})
    else:
        out = _stdout()
        out.print(f"rc-clevertap mock on {base}", markup=False)
        out.print(f"  RevenueCat  {base}/v1  {base}/v2   control {base}/_mock/revenuecat")
        out.print(f"  CleverTap   {base}/1                 control {base}/_mock/clevertap")
        out.print(f"  Faults      {base}/_mock/faults      preset: {described['faults']}")
        _print_json(described)
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, log_config=None)
    )
    with _signals_stop(serving=[True]):
        server.run(sockets=[sock])
    return EXIT_OK


# -------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole flow locally and verify it from CleverTap's read APIs."""
    if args.backfill:
        return _demo_backfill(args)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _KnownTotal(ProgressColumn):
        """A column shown only for tasks whose total is known."""

        def __init__(self, column: ProgressColumn) -> None:
            super().__init__()
            self._column = column

        def render(self, task: Task) -> Text:
            shown = None if task.total is None else self._column(task)
            return shown if isinstance(shown, Text) else Text("")

    from integration.app.demo import run_demo
    from integration.app.localstack import StackProgress

    quiet = args.json or not sys.stderr.isatty()
    # Counts and the time left only once the total is known (the delivery step): set-up steps
    # show their elapsed time alone instead of "0/?".
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        _KnownTotal(MofNCompleteColumn()),
        TimeElapsedColumn(),
        _KnownTotal(TimeRemainingColumn()),
    )
    last_step: list[str] = []
    with Progress(*columns, console=_stderr(), disable=quiet, transient=True) as bar:
        task = bar.add_task("starting the local stack", total=None)

        def on_progress(step: str, progress: StackProgress | None) -> None:
            if progress is None:
                bar.update(task, description=step)
            else:
                bar.update(
                    task,
                    description=f"{step}: webhooks {progress.webhooks_settled}/"
                    f"{progress.webhooks_total}, events settled",
                    total=progress.webhooks_total,
                    completed=progress.engine_settled,
                )
            if quiet and not args.json and last_step[-1:] != [step]:
                _stderr().print(step, markup=False)  # no terminal: one line per step
            last_step[:] = [step]

        def on_dashboard(url: str, token: str) -> None:
            if not args.json:  # the admin token guards only this run's mocks
                _stderr().print(f"dashboard: {url} (admin token {token})", markup=False)

        served: list[bool] = []

        def serve(report: Any) -> None:
            """--keep: the report now, then the stack and its dashboard until Ctrl-C."""
            bar.stop()
            _print_demo_report(args, report)
            served.append(True)
            _stderr().print(
                f"serving the dashboard at {report.dashboard_url} until Ctrl-C", markup=False
            )
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                _stderr().print("stopping the local stack", markup=False)

        try:
            report = run_demo(
                users=args.users,
                seed=args.seed,
                faults=args.faults,
                workdir=args.workdir,
                timeout=args.timeout,
                on_progress=on_progress,
                keep=args.keep,
                on_dashboard=on_dashboard,
                serve=serve if args.keep else None,
            )
        except ValueError as exc:  # an unknown fault preset, a bad size
            raise CommandError(str(exc), status=EXIT_USAGE) from exc
        except TimeoutError as exc:
            raise CommandError(str(exc)) from exc
    if not served:
        _print_demo_report(args, report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_demo_report(args: argparse.Namespace, report: Any) -> None:
    if args.json:
        import dataclasses

        _print_json({"ok": report.ok, **dataclasses.asdict(report)})
    else:
        _print_demo(report)


def _plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _print_demo(report: Any) -> None:
    out = _stdout()
    out.print(
        f"rc-clevertap demo: {report.users} users ({report.clevertap_ids_set} with a CleverTap "
        f"ID), {report.webhooks} webhooks, faults: {report.faults or 'none'}, "
        f"{report.elapsed_s:.1f} s",
        markup=False,
    )
    out.print(
        _table("CleverTap events by name", ("event", "count"), list(report.events_by_name.items()))
    )
    out.print(
        _table(
            "Revenue by currency (gross)",
            ("currency", "amount"),
            list(report.revenue_by_currency.items()),
        )
    )
    if report.skipped_by_reason:
        out.print(
            _table(
                "Skipped, by reason", ("reason", "count"), list(report.skipped_by_reason.items())
            )
        )
    delivery = [
        ("uploads", report.uploads),
        ("retried uploads", report.retries),
        ("dead letters", len(report.dead_letters)),
        ("duplicates in CleverTap", report.duplicates),
        ("latency p50 (webhook 200 -> CleverTap)", _ms(report.latency_p50_ms)),
        ("latency p99", _ms(report.latency_p99_ms)),
    ]
    if report.kept:
        delivery += [("outbox (SQLite)", report.outbox_path), ("log", report.log_path)]
    else:
        delivery.append(("outbox and log", "removed at exit (--keep or --workdir keeps them)"))
    out.print(_table("Delivery", ("", "value"), delivery))
    for dead in report.dead_letters[:10]:
        out.print(f"dead letter {dead['event_id']}: {dead['reason']}", markup=False)
    if report.ok:
        out.print("verification passed: every event is accounted for under the right identity")
    else:
        out.print(f"verification FAILED ({len(report.problems)} problems):", markup=False)
        for problem in report.problems[:20]:
            out.print(f"  - {problem}", markup=False)


def _demo_backfill(args: argparse.Namespace) -> int:
    """demo --backfill: a history exported, backfilled and verified, then live (demo_backfill)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from integration.app.demo_backfill import run_backfill_demo
    from integration.backfill import BackfillError
    from mockserver.revenuecat import ExportError

    if args.faults:
        raise CommandError("--faults does not apply to demo --backfill", status=EXIT_USAGE)
    quiet = args.json or not sys.stderr.isatty()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    last_step: list[str] = []
    with Progress(*columns, console=_stderr(), disable=quiet, transient=True) as bar:
        task = bar.add_task("starting the local stack", total=None)

        def on_progress(step: str, progress: Any) -> None:
            settled = "" if progress is None else f": {progress.engine_settled} events settled"
            bar.update(task, description=step + settled)
            if quiet and not args.json and last_step[-1:] != [step]:
                _stderr().print(step, markup=False)  # no terminal: one line per step
            last_step[:] = [step]

        try:
            report = run_backfill_demo(
                users=args.users, seed=args.seed, workdir=args.workdir, timeout=args.timeout,
                on_progress=on_progress, keep=args.keep, version=args.export_version,
                fmt=args.export_format,
            )  # fmt: skip
        except (ExportError, BackfillError, TimeoutError) as exc:  # e.g. Parquet, no pyarrow
            raise CommandError(str(exc)) from exc
    if args.json:
        import dataclasses

        _print_json({"ok": report.ok, **dataclasses.asdict(report)})
    else:
        _print_backfill_demo(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_backfill_demo(report: Any) -> None:
    out = _stdout()
    out.print(
        f"rc-clevertap demo --backfill: {report.users} users ({report.clevertap_ids_set} with a "
        f"CleverTap ID), {report.history_events} events simulated with webhooks off, exported "
        f"as v{report.export_version} {report.export_format} ({report.export_rows} rows), "
        f"{report.elapsed_s:.1f} s",
        markup=False,
    )
    first, second = report.first_run, report.second_run
    runs = [
        ("rows read", first["rows_read"], second["rows_read"]),
        ("events derived", first["events_derived"], second["events_derived"]),
        ("enqueued", first["enqueued"], second["enqueued"]),
        ("already in the outbox", first["already_stored"], second["already_stored"]),
        ("delivered live already", first["skipped_live"], second["skipped_live"]),
        ("malformed rows", first["rows_malformed"], second["rows_malformed"]),
    ]
    title = "Backfill: the export, then it again with the live changes"
    out.print(_table(title, ("", "first", "second"), runs))
    names = sorted(set(report.expected_by_name) | set(report.held_by_name))
    rows = [(n, report.expected_by_name.get(n, 0), report.held_by_name.get(n, 0)) for n in names]
    out.print(_table("CleverTap events by name", ("event", "happened", "backfilled"), rows))
    out.print(
        _table(
            "Revenue backfilled, by currency (gross)",
            ("currency", "amount"),
            list(report.revenue_by_currency.items()),
        )
    )
    notes: list[tuple[str, Any]] = list(report.not_in_exports.items())
    notes += [
        ("EXPIRATION of a subscription ended otherwise (sent)", report.inferred_expirations),
        ("EXPIRATION before a resubscription (from the gap)", report.gap_expirations),
        (f"live webhooks after the backfill ({report.live_events}) sent twice", report.sent_twice),
    ]
    out.print(_table("What an export does and does not carry", ("", "count"), notes))
    if report.kept:
        out.print(f"exports, outbox and log kept in {report.workdir}", markup=False)
    if report.ok:
        out.print("verification passed: CleverTap holds what happened, per person and event")
    else:
        out.print(f"verification FAILED ({len(report.problems)} problems):", markup=False)
        for problem in report.problems[:20]:
            out.print(f"  - {problem}", markup=False)


# ----------------------------------------------------------- serve and operating


def _load(args: argparse.Namespace, *, clevertap: bool = False) -> Any:
    """The configuration; CleverTap's credentials are required only when ``clevertap``."""
    from integration.config import ConfigError, load_config

    try:
        return load_config(args.config, require_clevertap=clevertap)
    except ConfigError as exc:
        raise CommandError(f"invalid configuration: {exc}", status=EXIT_USAGE) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the receiver and the dispatcher in this process until interrupted."""
    from integration.app.server import run_server
    from integration.config import redacted_url

    config = _load(args, clevertap=True)
    _setup_logging(args)  # the receiver warns (once, logged) when authorization is not set
    sock = _bind(args.host, args.port)
    base = _url(sock)
    serving: list[bool] = []

    def ready() -> None:  # the engine runs and its outbox is open: say where to send
        serving.append(True)
        _stdout().print(
            f"rc-clevertap serve: listening on {base}: POST {base}/webhooks/revenuecat -> "
            f"{config.clevertap.api_base_url()}/1/upload (outbox "
            f"{redacted_url(config.outbox.url)})",
            markup=False,
        )
        sys.stdout.flush()

    with _signals_stop(serving=serving):
        run_server(
            config,
            log_level=args.log_level,
            access_log=args.access_log,
            sock=sock,
            on_ready=ready,
            uvicorn_logging=False,
        )
    return EXIT_OK


def _setup_logging(args: argparse.Namespace) -> None:
    from integration.app.logs import setup_logging

    setup_logging(level=args.log_level, fmt=getattr(args, "log_format", "text"))


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port), before anything is served,
    so that the port printed is the one bound and a bind error is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host "
            "or --port"
        ) from exc


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def _signals_stop(*, serving: list[bool]) -> Iterator[None]:
    """SIGINT and SIGTERM as a server expects them: before ``serving`` is set they interrupt
    (exit 130); after, uvicorn owns them while it serves, drains, then raises the signal it
    caught again once its own handlers are gone, which lands here and means "done" (exit 0)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not serving:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _when(epoch: float | None) -> str:
    from datetime import UTC, datetime

    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_status(args: argparse.Namespace) -> int:
    """Queue depth, oldest pending event, dead letters and the last upload result."""
    import dataclasses

    from integration.admin import read_backfill_counts, read_status, read_unrouted

    config = _load(args)
    stats = asyncio.run(read_status(config))
    backfilled = asyncio.run(read_backfill_counts(config))  # of the counts above (issue 18)
    routes = _routes_shown(config)  # [[routes]] (issue 16): only when configured
    unrouted = asyncio.run(read_unrouted(config))  # waiting for a route no longer configured
    if args.json:
        document = {**dataclasses.asdict(stats), "backfilled": backfilled}
        document |= {"routes": routes} if routes else {}
        _print_json(document | ({"unrouted": unrouted} if unrouted else {}))
        return EXIT_OK
    last = stats.last_attempt
    rows = [
        ("pending", stats.pending),
        ("leased (in flight)", stats.leased),
        ("delivered (kept for replay)", stats.delivered),
        ("skipped", stats.skipped),
        ("dead letters", stats.dead),
        ("quarantined bodies", stats.quarantined),
        ("oldest pending since", _when(stats.oldest_pending_at)),
        (
            "last upload",
            "-"
            if last is None
            else f"{_when(last.at)} {last.account_id} HTTP {last.status} {last.outcome} "
            f"({last.records} records, {last.latency_ms:.0f} ms)",
        ),
    ]
    rows += [(f"skipped: {reason}", count) for reason, count in stats.skipped_by_reason.items()]
    rows += [(f"of which backfilled: {state}", n) for state, n in sorted(backfilled.items())]
    for route in routes:
        takes = [f"path {route['path']}"] if route["path"] else []
        if route["app_ids"]:
            takes.append(f"app_ids {', '.join(route['app_ids'])}")
        accounts = ", ".join(a for a in (route["account_id"], route["sandbox_account_id"]) if a)
        transform = f", transform {route['transform']}" if route["transform"] else ""
        rows.append((f"route {route['name']}", f"{'; '.join(takes)} -> {accounts}{transform}"))
    rows += [(f"waiting for route {name} (not configured)", n) for name, n in unrouted.items()]
    _stdout().print(_table("rc-clevertap status", ("", "value"), rows))
    if unrouted:
        names = ", ".join(unrouted)
        _stdout().print(
            f"{_plural(sum(unrouted.values()), 'event')} wait for routes no longer configured "
            f"({names}): no lane delivers them until [[routes]] names them again; they are "
            "never dead-lettered for it",
            markup=False,
        )
    return EXIT_OK


def _routes_shown(config: Any) -> list[dict[str, Any]]:
    """What status shows of each configured route (none without [[routes]]): how webhooks
    reach it, its accounts and its transform; never a secret."""
    if not config.routes:
        return []
    shown: list[dict[str, Any]] = []
    default = [("default", None, (), config)] if config.default_route else []
    entries = [(r.name, r.path, r.app_ids, r.config) for r in config.routes]
    for name, path, app_ids, route_config in [*default, *entries]:
        clevertap = route_config.clevertap
        shown.append(
            {
                "name": name,
                "path": f"/webhooks/revenuecat/{path}" if path else None,
                "app_ids": list(app_ids) or (["(any other)"] if name == "default" else []),
                "account_id": clevertap.account_id,
                "sandbox_account_id": clevertap.sandbox_account_id,
                "transform": route_config.transform.callable,
            }
        )
    return shown


def cmd_dlq_list(args: argparse.Namespace) -> int:
    """List dead letters with their reasons, oldest first."""
    import dataclasses

    from integration.admin import list_dead_letters

    dead = asyncio.run(list_dead_letters(_load(args), limit=args.limit))
    if args.json:
        _print_json([dataclasses.asdict(d) for d in dead])
        return EXIT_OK
    rows = [
        (d.row_id, d.event_id, d.environment, d.attempts, _when(d.dead_at), d.reason) for d in dead
    ]
    columns = ("id", "event id", "environment", "attempts", "dead since", "reason")
    _stdout().print(_table(_plural(len(dead), "dead letter"), columns, rows))
    return EXIT_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    """List quarantined bodies (authenticated but invalid webhooks), newest first."""
    from integration.admin import list_quarantined

    bodies = asyncio.run(list_quarantined(_load(args), limit=args.limit))
    if args.json:
        _print_json(
            [
                {
                    "id": b.quarantine_id,
                    "reason": b.reason,
                    "received_at": b.received_at,
                    "bytes": len(b.body),
                }
                for b in bodies
            ]
        )
        return EXIT_OK
    rows = [(b.quarantine_id, _when(b.received_at), len(b.body), b.reason) for b in bodies]
    columns = ("id", "received time", "bytes", "reason")
    _stdout().print(_table(_plural(len(bodies), "quarantined body"), columns, rows))
    return EXIT_OK


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    """Write one quarantined body, exactly as received, to stdout."""
    from integration.admin import show_quarantined

    body = asyncio.run(show_quarantined(_load(args), args.id))
    sys.stdout.buffer.write(body.body)
    sys.stdout.flush()
    return EXIT_OK


def cmd_quarantine_requeue(args: argparse.Namespace) -> int:
    """Queue quarantined bodies as events, read again with today's parser (all or none)."""
    from integration.admin import requeue_quarantined

    count = asyncio.run(requeue_quarantined(_load(args), args.ids))
    if args.json:
        _print_json({"requeued": count})
    else:
        _stdout().print(
            f"requeued {_plural(count, 'quarantined body', 'quarantined bodies')}; "
            "a running engine sends them next"
        )
    return EXIT_OK


def cmd_quarantine_discard(args: argparse.Namespace) -> int:
    """Delete quarantined bodies for good."""
    from integration.admin import discard_quarantined

    config = _load(args)
    _confirm(
        f"discard deletes {_plural(len(args.ids), 'quarantined body', 'quarantined bodies')} "
        "for good",
        args.yes,
        "discard cancelled; nothing was deleted",
    )
    count = asyncio.run(discard_quarantined(config, args.ids))
    if args.json:
        _print_json({"discarded": count})
    else:
        _stdout().print(f"discarded {_plural(count, 'quarantined body', 'quarantined bodies')}")
    return EXIT_OK


def cmd_dlq_discard(args: argparse.Namespace) -> int:
    """Delete dead letters for good (their events are never sent)."""
    from integration.admin import discard_dead_letters

    config = _load(args)
    ids = _dead_letter_ids(args.ids)
    _confirm(
        f"discard deletes {_plural(len(ids), 'dead letter')} for good: CleverTap will never "
        "receive those events",
        args.yes,
        "discard cancelled; nothing was deleted",
    )
    count = asyncio.run(discard_dead_letters(config, ids))
    if args.json:
        _print_json({"discarded": count})
    else:
        _stdout().print(f"discarded {_plural(count, 'dead letter')}")
    return EXIT_OK


def _dead_letter_ids(given: Sequence[str]) -> list[int | str]:
    """Row ids (ASCII digits) as numbers, anything else as an event id."""
    return [int(i) if i.isascii() and i.isdigit() else i for i in given]


def _confirm(
    warning: str, yes: bool, cancelled: str, *, hint: str = "pass --yes to confirm"
) -> None:
    """Ask before a change that cannot be undone: on a terminal, or ``--yes`` (exit 2 else)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{warning}; {hint}", status=EXIT_USAGE)
    answer = input(f"{warning}. Continue? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError(cancelled)


def cmd_dlq_retry(args: argparse.Namespace) -> int:
    """Send dead letters again (all of them, or the given ids)."""
    from integration.admin import retry_dead_letters

    if not args.all and not args.ids:
        raise CommandError("name dead-letter ids, or pass --all", status=EXIT_USAGE)
    ids = None if args.all else _dead_letter_ids(args.ids)
    count = asyncio.run(retry_dead_letters(_load(args), ids))
    if args.json:
        _print_json({"requeued": count})
    else:
        _stdout().print(
            f"requeued {_plural(count, 'dead letter')}; a running engine sends them next"
        )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Send again every event delivered in a time range, mapped with the current configuration."""
    from integration.admin import replay_delivered

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    until = _window(args, "until")
    if until is not None and until <= since:
        raise CommandError(
            f"--until ({_when(until)}) must be after --since ({_when(since)})", status=EXIT_USAGE
        )
    config = _load(args)
    if args.dry_run:
        return _replay_dry_run(config, since, until, args)
    warning = (
        f"replay sends every event delivered {_span(since, until)} to CleverTap again: "
        "CleverTap will receive (and keep) them a second time"
    )
    _confirm(
        warning,
        args.yes,
        "replay cancelled; nothing was requeued",
        hint="pass --yes to confirm, or --dry-run to list them",
    )
    count = asyncio.run(replay_delivered(config, since=since, until=until))
    if args.json:
        _print_json({"requeued": count, "since": since, "until": until})
    else:
        _stdout().print(f"requeued {_plural(count, 'event')} delivered {_span(since, until)}")
    return EXIT_OK


def _span(since: float, until: float | None) -> str:
    """The replay's range in words: ``since T`` or ``from T to U`` (``until`` excluded)."""
    if until is None:
        return f"since {_when(since)}"
    return f"from {_when(since)} to {_when(until)}"


def _replay_dry_run(
    config: Any, since: float, until: float | None, args: argparse.Namespace
) -> int:
    """What replay would send: each delivered event mapped with the current configuration."""
    from integration.admin import delivered_since
    from integration.mapping import preview

    events = asyncio.run(delivered_since(config, since=since, until=until, limit=args.limit))
    rows: list[dict[str, Any]] = []
    for event in events:
        try:
            upload = preview(event.body, config)
        except Exception as exc:  # a stored body the current mapping refuses: say so
            upload = {"d": [], "skipped": f"cannot map: {type(exc).__name__}"}
        names = [str(r.get("evtName", r.get("type"))) for r in upload.get("d", [])]
        rows.append(
            {
                "event_id": event.event_id,
                "environment": event.environment,
                "account_id": upload.get("account_id"),
                "records": names,
                "skipped": upload.get("skipped"),
            }
        )
    if args.json:
        _print_json({"since": since, "until": until, "would_requeue": rows})
        return EXIT_OK

    def names_of(row: dict[str, Any]) -> list[str]:
        return list(row["records"])

    table = _table(
        f"replay --dry-run: {_plural(len(rows), 'event')} delivered {_span(since, until)} "
        "would be sent again (nothing changed)",
        ("event id", "environment", "account", "CleverTap records"),
        [
            (
                r["event_id"],
                r["environment"],
                r["account_id"] or "-",
                ", ".join(names_of(r)) or f"skipped: {r['skipped']}",
            )
            for r in rows
        ],
    )
    table.columns[0].no_wrap = True
    _stdout().print(table)
    return EXIT_OK


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``--since``: a duration back from now (``90s``, ``30m``, ``2h``,
    ``7d``, ``1w``), an ISO 8601 time (``2026-11-26T10:00:00Z``; naive means UTC), or epoch
    seconds.  Raises ``ValueError`` with the accepted forms."""
    value = text.strip()
    current = time.time() if now is None else now
    match = _RELATIVE.fullmatch(value)
    if match:
        return current - float(match.group(1)) * _UNIT_S[match.group(2)]
    with contextlib.suppress(ValueError):
        return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else _iso(value)
    raise ValueError(
        f"--since must be a duration (30m, 2h, 7d), an ISO 8601 time or epoch seconds, got {text!r}"
    )


def _iso(value: str) -> float:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# ---------------------------------------------------------------------- backfill


def cmd_backfill(args: argparse.Namespace) -> int:
    """Derive events from RevenueCat's transaction exports and enqueue them (or deliver)."""
    from integration.backfill import BackfillError, TruncatedExport
    from integration.config import ConfigError, load_config

    since, until = _window(args, "since"), _window(args, "until")
    try:
        # --deliver uploads, so it needs the passcodes; otherwise the account ids name routes.
        config = load_config(args.config, require_clevertap=True if args.deliver else "account")
    except ConfigError as exc:
        raise CommandError(f"invalid configuration: {exc}", status=EXIT_USAGE) from exc
    progress, on_rows, on_delivery = _backfill_progress(
        "silent" if args.json else "bar" if sys.stderr.isatty() else "lines"
    )
    try:
        with progress:
            if args.deliver:
                from integration.backfill import backfill_and_deliver

                delivery = backfill_and_deliver(
                    config, args.paths, since=since, until=until, route=args.route,
                    on_progress=on_rows, on_delivery=on_delivery,
                )  # fmt: skip
                settled = asyncio.run(delivery)
                report = settled.backfill
            else:
                report = asyncio.run(_backfill_only(config, args, since, until, on_rows))
                settled = None
    except TruncatedExport as exc:
        raise CommandError(
            f"{exc}; what was read before is enqueued: run the same command again to resume"
        ) from exc
    except BackfillError as exc:  # not an export, --since after --until, Parquet without pyarrow
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    except KeyboardInterrupt:
        raise CommandError(
            "interrupted: what was enqueued is durable; run the same command again to resume",
            status=EXIT_INTERRUPTED,
        ) from None
    _print_backfill(args, report, settled)
    return EXIT_OK


def _window(args: argparse.Namespace, name: str) -> float | None:
    text = getattr(args, name)
    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        message = str(exc).replace("--since", f"--{name}")
        raise CommandError(message, status=EXIT_USAGE) from exc


async def _backfill_only(
    config: Any, args: argparse.Namespace, since: float | None, until: float | None, on_rows: Any
) -> Any:
    """Enqueue (or, dry, only count) into the configured outbox, which must exist: a backfill
    into a new, mistyped outbox would wait for a ``serve`` that never reads it."""
    from integration.admin import outbox_for
    from integration.backfill import backfill
    from integration.outbox import SQLiteOutbox

    outbox: Any = outbox_for(config, create=False)
    if args.dry_run and isinstance(outbox, SQLiteOutbox) and not outbox.path.exists():
        outbox = None  # nothing stored yet: nothing to deduplicate against
    if outbox is not None:
        await outbox.open()
    try:
        return await backfill(
            outbox, args.paths, config=config, dry_run=args.dry_run, since=since, until=until,
            route=args.route, on_progress=on_rows,
        )  # fmt: skip
    finally:
        if outbox is not None:
            await outbox.close()


def _backfill_progress(mode: str) -> tuple[Any, Callable[[Any], None], Callable[[Any], None]]:
    """A progress display and its two callbacks (rows read, then delivery): a bar on a
    terminal (rows by bytes of the files read, rate and ETA), a line every 10 s elsewhere
    (the first after the first batch is durable), nothing for ``--json``."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if mode == "silent":
        return contextlib.nullcontext(), lambda _: None, lambda _: None
    if mode == "lines":
        return contextlib.nullcontext(), *_progress_lines()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
    )
    reading = bar.add_task("reading exports", total=None, detail="")
    delivering: list[Any] = []
    started = time.monotonic()

    def on_rows(progress: Any) -> None:
        rate = progress.rows_read / max(time.monotonic() - started, 1e-6)
        bar.update(
            reading,
            total=progress.bytes_total,
            completed=progress.bytes_done,
            detail=f"{progress.rows_read:,} rows ({rate:,.0f}/s), "
            f"{progress.enqueued:,} events enqueued",
        )

    def on_delivery(progress: Any) -> None:
        if not delivering:
            bar.update(reading, completed=bar.tasks[0].total or 0)
            delivering.append(bar.add_task("delivering", total=progress.enqueued, detail=""))
        settled = progress.delivered + progress.skipped + progress.dead
        bar.update(
            delivering[0],
            completed=min(settled, progress.enqueued),
            detail=f"{progress.delivered:,} delivered, {progress.skipped:,} skipped, "
            f"{progress.dead:,} dead, {progress.waiting:,} waiting",
        )

    return bar, on_rows, on_delivery


def _progress_lines(every_s: float = 10.0) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    last: dict[str, float] = {}

    def due(kind: str) -> bool:
        now = time.monotonic()
        if now - last.get(kind, -every_s) < every_s:
            return False
        last[kind] = now
        return True

    def on_rows(progress: Any) -> None:
        if progress.enqueued and due("rows"):
            _stderr().print(f"backfill: {progress.rows_read:,} rows read, "
                            f"{progress.enqueued:,} events enqueued", markup=False)  # fmt: skip

    def on_delivery(progress: Any) -> None:
        if due("delivery"):
            _stderr().print(f"backfill: {progress.delivered:,} delivered, "
                            f"{progress.waiting:,} waiting", markup=False)  # fmt: skip

    return on_rows, on_delivery


def _print_backfill(args: argparse.Namespace, report: Any, settled: Any) -> None:
    data = report.as_dict()
    if settled is not None:
        data["settled"] = {
            "delivered": settled.delivered,
            "skipped": settled.skipped,
            "dead": settled.dead,
        }
    if args.json:
        _print_json(data)
        return
    err = _stderr()
    for problem in report.problems[:10]:
        err.print(f"skipped malformed row: {problem}", markup=False)
    if report.rows_malformed > 10:
        err.print(f"... and {report.rows_malformed - 10} more malformed rows", markup=False)
    sent = "would enqueue (dry run, nothing written)" if report.dry_run else "enqueued"
    rows: list[tuple[str, Any]] = [
        ("files", len(report.files)),
        ("rows read", report.rows_read),
        ("malformed rows skipped", report.rows_malformed),
        ("events derived", report.events_derived),
        ("outside --since/--until", report.outside_window),
        ("already in the outbox", report.already_stored),
        ("sent live already (skipped)", report.skipped_live),
        (sent, report.enqueued if not report.dry_run else sum(report.by_type.values())),
    ]
    rows += [(f"type: {name}", count) for name, count in sorted(report.by_type.items())]
    rows += [(f"environment: {name}", n) for name, n in sorted(report.by_environment.items())]
    rows += [(f"route: {name}", count) for name, count in sorted(report.by_route.items())]
    rows += [(f"revenue {cur}", amount) for cur, amount in data["revenue_by_currency"].items()]
    if settled is not None:
        rows += [("delivered", settled.delivered), ("skipped by the mapping", settled.skipped),
                 ("dead letters", settled.dead)]  # fmt: skip
    elif not report.dry_run and report.enqueued:
        rows.append(("delivery", "by a running rc-clevertap serve on this outbox (or --deliver)"))
    _stdout().print(_table("rc-clevertap backfill", ("", "value"), rows))


# ------------------------------------------------------------------------ set-id


def cmd_set_id(args: argparse.Namespace) -> int:
    """Set (or, with no id, clear) a user's CleverTap ID on RevenueCat; or many (--from)."""
    import client

    bulk = args.from_file is not None or args.from_clevertap or args.demo is not None
    if bulk:
        return _set_id_bulk(args)
    if args.app_user_id is None:
        raise CommandError(
            "give APP_USER_ID [CLEVERTAP_ID], or --from FILE, --from-clevertap or --demo N",
            status=EXIT_USAGE,
        )
    api_key = args.api_key or os.environ.get("REVENUECAT_API_KEY")
    if not api_key:
        raise CommandError(
            "no API key: pass --api-key or set REVENUECAT_API_KEY", status=EXIT_USAGE
        )
    try:
        client.set_clevertap_id(
            args.app_user_id, args.clevertap_id, api_key=api_key, base_url=args.base_url
        )
    except client.InvalidAttributeError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    except client.RevenueCatError as exc:
        raise CommandError(f"RevenueCat refused or was unreachable: {exc}") from exc
    action = "cleared" if not args.clevertap_id else f"set to {args.clevertap_id}"
    if args.json:
        _print_json({"app_user_id": args.app_user_id, "clevertap_id": args.clevertap_id or None})
    else:
        _stdout().print(f"$clevertapId of {args.app_user_id} {action}", markup=False)
    return EXIT_OK


def _set_id_bulk(args: argparse.Namespace) -> int:
    """set-id --from FILE / --from-clevertap / --demo N: the bulk migration (setid.py)."""
    from pathlib import Path

    import client
    from integration.app.setid import (
        BulkInputError,
        BulkInterrupted,
        BulkOptions,
        CleverTapUnreachable,
        run_bulk,
    )

    sources = [args.from_file is not None, args.from_clevertap, args.demo is not None]
    if sum(sources) > 1 or args.app_user_id is not None:
        raise CommandError(
            "--from, --from-clevertap and --demo exclude each other and APP_USER_ID",
            status=EXIT_USAGE,
        )
    options = BulkOptions(
        source="file" if sources[0] else "clevertap" if sources[1] else "demo",
        path=args.from_file,
        format=args.format,
        user_column=args.user_column,
        id_column=args.id_column,
        api_key=args.api_key or os.environ.get("REVENUECAT_API_KEY"),
        base_url=args.base_url,
        project_id=args.project_id,
        state=Path(args.state) if args.state else None,
        concurrency=args.concurrency,
        dry_run=args.dry_run,
        report=Path(args.report) if args.report else None,
        verify=args.verify,
        demo_users=args.demo or 0,
        demo_speed=args.demo_speed,
        **(_clevertap_source(args) if args.from_clevertap else {}),
    )
    quiet = args.json or not sys.stderr.isatty()
    try:
        with _bulk_progress(quiet) as (on_start, on_progress):
            outcome = run_bulk(options, on_start=on_start, on_progress=on_progress)
    except BulkInputError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    except BulkInterrupted as exc:
        raise CommandError(str(exc), status=EXIT_INTERRUPTED) from exc
    except CleverTapUnreachable as exc:
        raise CommandError(f"{exc}; nothing was sent to RevenueCat") from exc
    except client.AuthenticationError as exc:
        raise CommandError(
            f"RevenueCat refused the API key ({exc}); stopped at once, the users staged stay "
            f"pending in {options.state or 'rc-clevertap-set-id.sqlite3'}"
        ) from exc
    except client.RevenueCatError as exc:  # a project id or option the client refuses
        raise CommandError(str(exc), status=EXIT_USAGE) from exc
    _print_bulk(args, outcome)
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _clevertap_source(args: argparse.Namespace) -> dict[str, Any]:
    """The CleverTap account (from the configuration) and the profiles query."""
    if not args.ct_query:
        raise CommandError(
            "--from-clevertap needs --ct-query, e.g. "
            """'{"event_name": "App Launched", "from": 20240101, "to": 20241231}'""",
            status=EXIT_USAGE,
        )
    try:
        query = json.loads(args.ct_query)
    except ValueError as exc:
        raise CommandError(f"--ct-query is not JSON: {exc}", status=EXIT_USAGE) from exc
    if not isinstance(query, dict):
        raise CommandError("--ct-query must be a JSON object", status=EXIT_USAGE)
    config = _load(args, clevertap=True).clevertap
    return {
        "clevertap_base_url": config.api_base_url(),
        "clevertap_account_id": config.account_id,
        "clevertap_passcode": config.passcode.reveal(),
        "clevertap_query": query,
    }


@contextlib.contextmanager
def _bulk_progress(quiet: bool) -> Iterator[tuple[Callable[[int], None], Callable[[Any], None]]]:
    """A bar on stderr: done of total, users per second, ETA, and the rate-limit waits."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("set-id"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[left]} left"),
        TextColumn("{task.fields[rate]}/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[waits]}"),
    )
    started = time.monotonic()
    with Progress(*columns, console=_stderr(), disable=quiet, transient=True) as bar:
        task = bar.add_task("set-id", total=None, rate="-", waits="", left="?")
        totals: list[int] = []

        def on_start(total: int) -> None:
            totals.append(total)
            bar.update(task, total=total, left=total)

        def on_progress(counts: Any) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            waits = (
                f"rate-limit waits {counts.rate_limit_waits} ({counts.waited_s:.0f} s)"
                if counts.rate_limit_waits
                else ""
            )
            left = max(totals[0] - counts.done, 0) if totals else "?"
            bar.update(
                task,
                completed=counts.done,
                rate=f"{counts.done / elapsed:.0f}",
                waits=waits,
                left=left,
            )

        yield on_start, on_progress


def _print_bulk(args: argparse.Namespace, outcome: Any) -> None:
    progress = outcome.report.progress
    summary: dict[str, Any] = {
        "ok": outcome.ok,
        "dry_run": outcome.report.dry_run,
        "api": outcome.api,
        "rows": outcome.total,
        "sent": progress.sent,
        "unchanged": progress.unchanged,
        "refused": progress.refused + outcome.unreadable_rows,
        "failed": progress.failed,
        "resumed": progress.resumed,
        "rate_limit_waits": progress.rate_limit_waits,
        "waited_s": progress.waited_s,
        "elapsed_s": outcome.elapsed_s,
        "state": str(outcome.state),
        "report": str(outcome.report_path) if outcome.report_path else None,
    }
    if outcome.virtual_s is not None:
        summary |= {"virtual_s": outcome.virtual_s, "floor_s": outcome.floor_s}
    if outcome.verify is not None:
        summary["verify"] = {
            "checked": outcome.verify.checked,
            "mismatches": [
                {"app_user_id": m.app_user_id, "expected": m.expected, "found": m.found}
                for m in outcome.verify.mismatches
            ],
            "unreadable": len(outcome.verify.unreadable),
        }
    if args.json:
        _print_json(summary)
        return
    rows = [
        (key.replace("_", " "), "-" if value is None else value)
        for key, value in summary.items()
        if key not in ("verify", "ok")
    ]
    title = f"set-id: {progress.sent} of {outcome.total} users set"
    if outcome.report.dry_run:
        valid = progress.read - progress.refused
        title = f"set-id --dry-run: {valid} of {outcome.total} rows usable; nothing was sent"
    _stdout().print(_table(title, ("what", "value"), rows))
    if outcome.verify is not None:
        v = outcome.verify
        _stdout().print(
            f"verified {v.checked}: {len(v.mismatches)} mismatched, {len(v.unreadable)} unreadable",
            markup=False,
        )
        for m in v.mismatches[:20]:
            line = f"  {m.app_user_id}: expected {m.expected}, found {m.found}"
            _stdout().print(line, markup=False)
    if not outcome.ok and outcome.report_path is None:
        _stdout().print("users not set are listed with --report FILE", markup=False)


# ------------------------------------------------------------------------ parser


def _count(text: str) -> int:
    """argparse type for a size: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _sample(text: str) -> int | str:
    """argparse type for ``--verify``: ``all`` or a sample size of 1 or more."""
    return "all" if text == "all" else _count(text)


def _presets() -> str:
    from mockserver.faults import PRESETS

    return ", ".join(sorted(PRESETS))


def _port(text: str) -> int:
    """argparse type for ``--port``: an integer from 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def _add_logging(parser: argparse.ArgumentParser, *, level: str) -> None:
    from integration.app.logs import FORMATS, LEVELS

    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=level,
        help=f"least severe level logged (default {level})",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text lines, or one JSON object per line for a log pipeline (default text)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print plain JSON for scripts")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default $RC_CLEVERTAP_CONFIG, else the environment "
        "alone; RC_CLEVERTAP_* variables override the file)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rc-clevertap")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rc-clevertap",
        description="RevenueCat -> CleverTap: a client, a durable forwarder and local mocks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser(
        "demo",
        help="run the whole flow locally and verify it (no configuration, no network)",
        description="Start the RevenueCat mock, the CleverTap mock and the engine on free "
        "loopback ports, create a seeded population, set CleverTap IDs through the client, "
        "play their subscription lifecycles, wait until every event is delivered, skipped or "
        "dead-lettered, and verify from CleverTap's read APIs.  Exit 0 only if it passes.",
    )
    p.add_argument(
        "--users", type=_count, default=200, help="population size, 1 or more (default 200)"
    )
    p.add_argument("--seed", type=int, default=7, help="population and fault seed (default 7)")
    p.add_argument("--faults", metavar="PRESET", help=f"CleverTap misbehaves: {_presets()}")
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help="where the outbox and log go, kept afterwards; a reused folder's outbox is "
        "replaced (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder, and the stack with its dashboard running after the "
        "report until Ctrl-C",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    p.add_argument(
        "--backfill",
        action="store_true",
        help="instead: simulate a history with webhooks off, export it as RevenueCat's "
        "Scheduled Data Export, backfill it, verify CleverTap holds what happened, then play "
        "new events live and show nothing is sent twice",
    )
    p.add_argument(
        "--export-version",
        type=int,
        choices=(3, 4, 5, 6, 7),
        default=7,
        help="--backfill: the export's format version (default 7)",
    )
    p.add_argument(
        "--export-format",
        choices=("csv", "parquet"),
        default="csv",
        help="--backfill: gzip CSV, or Parquet (needs the exports extra; default csv)",
    )
    _add_json(p)
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser(
        "map",
        help="print the CleverTap upload for one webhook body read on stdin",
        description="Read one RevenueCat webhook body on stdin and print, as JSON, what would "
        'be uploaded: {"account_id": ..., "d": [...]} or {"d": [], "skipped": "<reason>"}; '
        'with [[routes]], also the "route" it takes; after the route\'s [transform].',
    )
    _add_config(p)
    p.add_argument(
        "--route",
        metavar="NAME",
        help="map as if posted to this route's own path (default: the route the shared "
        "path /webhooks/revenuecat would pick by app_id)",
    )
    p.set_defaults(handler=cmd_map)

    p = commands.add_parser(
        "config",
        help="print the reference configuration, or check yours",
        description="Configuration is one TOML file (--config or $RC_CLEVERTAP_CONFIG) and "
        "RC_CLEVERTAP_<SECTION>_<KEY> environment variables, which override it; either alone "
        "is enough.",
    )
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = actions.add_parser(
        "example",
        help="print the commented reference configuration",
        description="Print every key with its default and meaning, as TOML to start from.",
    )
    q.set_defaults(handler=cmd_config_example)
    q = actions.add_parser(
        "check",
        help="validate the configuration serve would run with",
        description="Load the configuration as serve does and report every problem at once.",
    )
    _add_config(q)
    q.set_defaults(handler=cmd_config_check)

    p = commands.add_parser(
        "mock",
        help="serve the RevenueCat and CleverTap mocks on one port",
        description="Serve RevenueCat under /v1 and /v2, CleverTap under /1, and their control "
        "and fault-injection routes under /_mock.  Defaults are printed at start-up.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8080, help="port to bind, 0 for any free one (default 8080)"
    )
    rc = p.add_argument_group("RevenueCat")
    rc.add_argument("--rc-public-key", action="append", metavar="KEY", help="public key (repeat)")
    rc.add_argument("--rc-secret-key", action="append", metavar="KEY", help="secret key sk_...")
    rc.add_argument("--rc-v2-key", action="append", metavar="KEY", help="API v2 key (repeat)")
    rc.add_argument("--rc-project-id", metavar="ID", help="API v2 project id")
    rc.add_argument(
        "--rc-rate-limit",
        default="480",
        metavar="N|off",
        help="API v2 requests per minute per key (default 480)",
    )
    rc.add_argument("--webhook-url", action="append", metavar="URL", help="webhook target")
    rc.add_argument("--webhook-auth", metavar="VALUE", help="Authorization header, verbatim")
    rc.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="virtual seconds per real second for webhook retries (default 1; 600 plays "
        "RevenueCat's 2.6-hour retry schedule in 15.5 s)",
    )
    ct = p.add_argument_group("CleverTap")
    ct.add_argument("--ct-account-id", metavar="ID", help="account id (default TEST-RCC-MOCK)")
    ct.add_argument("--ct-passcode", action="append", metavar="CODE", help="passcode (repeat)")
    ct.add_argument("--ct-region", default="eu1", help="account region (default eu1)")
    p.add_argument(
        "--faults", metavar="PRESET", help=f"fault preset for CleverTap's upload API: {_presets()}"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for faults and simulation")
    _add_logging(p, level="warning")
    _add_json(p)
    p.set_defaults(handler=cmd_mock)

    p = commands.add_parser(
        "serve",
        help="run the forwarder: webhooks in, CleverTap uploads out",
        description="Run the receiver (POST /webhooks/revenuecat, GET /healthz, GET /metrics) "
        "and the dispatcher in one process until interrupted.",
    )
    _add_config(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8000, help="port to bind, 0 for any free one (default 8000)"
    )
    _add_logging(p, level="info")
    p.add_argument(
        "--access-log",
        action="store_true",
        help="log every request, as uvicorn does (off: one line per webhook is costly)",
    )
    p.set_defaults(handler=cmd_serve)

    p = commands.add_parser(
        "status",
        help="queue depth, dead letters and the last upload",
        description="Read the configured outbox (never creating it): rows by state, the "
        "oldest pending event, dead letters, quarantined bodies and the last upload result.",
    )
    _add_config(p)
    _add_json(p)
    p.set_defaults(handler=cmd_status)

    p = commands.add_parser(
        "dlq",
        help="list, retry or discard dead letters",
        description="Events CleverTap refused for good, or that outlived dispatcher.max_age_s.",
    )
    dlq = p.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    q = dlq.add_parser(
        "list",
        help="dead letters with their reasons, oldest first",
        description="Each dead letter's row id, event id, attempts, time and reason.",
    )
    _add_config(q)
    q.add_argument("--limit", type=int, default=100, help="how many to show (default 100)")
    _add_json(q)
    q.set_defaults(handler=cmd_dlq_list)
    q = dlq.add_parser(
        "retry",
        help="send dead letters again",
        description="Requeue the named dead letters (row ids or event ids), or --all; an id "
        "that names no dead letter is an error and nothing is requeued.",
    )
    _add_config(q)
    which = q.add_mutually_exclusive_group()
    which.add_argument(
        "ids", nargs="*", default=[], metavar="ID", help="dead-letter row ids or event ids"
    )
    which.add_argument("--all", action="store_true", help="retry every dead letter")
    _add_json(q)
    q.set_defaults(handler=cmd_dlq_retry)
    q = dlq.add_parser(
        "discard",
        help="delete dead letters for good",
        description="Delete the named dead letters (row ids or event ids): CleverTap never "
        "receives those events.  Asks on a terminal; --yes otherwise.  An id that names no "
        "dead letter is an error and nothing is deleted.",
    )
    _add_config(q)
    q.add_argument("ids", nargs="+", metavar="ID", help="dead-letter row ids or event ids")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_json(q)
    q.set_defaults(handler=cmd_dlq_discard)

    p = commands.add_parser(
        "quarantine",
        help="list, show, requeue or discard quarantined bodies",
        description="Webhooks that carried the right Authorization but were not RevenueCat "
        "events (answered 400), kept up to outbox.quarantine_cap.",
    )
    quarantine = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    q = quarantine.add_parser(
        "list",
        help="quarantined bodies with their reasons, newest first",
        description="Each quarantined body's id, time, size and why it was refused.",
    )
    _add_config(q)
    q.add_argument("--limit", type=int, default=100, help="how many to show (default 100)")
    _add_json(q)
    q.set_defaults(handler=cmd_quarantine_list)
    q = quarantine.add_parser(
        "show",
        help="write one quarantined body to stdout",
        description="Write the body exactly as received, e.g. to inspect it or to pipe it "
        "into rc-clevertap map.",
    )
    _add_config(q)
    q.add_argument("id", type=int, metavar="ID", help="quarantined body id")
    q.set_defaults(handler=cmd_quarantine_show)
    q = quarantine.add_parser(
        "requeue",
        help="queue quarantined bodies as events",
        description="Read the named bodies again with this release's webhook parser and queue "
        "them for delivery; if any id is unknown or any body is still not a RevenueCat event, "
        "nothing is requeued.",
    )
    _add_config(q)
    q.add_argument("ids", nargs="+", type=int, metavar="ID", help="quarantined body ids")
    _add_json(q)
    q.set_defaults(handler=cmd_quarantine_requeue)
    q = quarantine.add_parser(
        "discard",
        help="delete quarantined bodies for good",
        description="Delete the named quarantined bodies.  Asks on a terminal; --yes "
        "otherwise.  An unknown id is an error and nothing is deleted.",
    )
    _add_config(q)
    q.add_argument("ids", nargs="+", type=int, metavar="ID", help="quarantined body ids")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add_json(q)
    q.set_defaults(handler=cmd_quarantine_discard)

    p = commands.add_parser(
        "replay",
        help="send again the events delivered since a time",
        description="Requeue every event delivered since --since (and before --until); the "
        "stored webhook bodies are mapped again with the current configuration.",
    )
    _add_config(p)
    p.add_argument("--since", required=True, help="30m, 2h, 7d, an ISO 8601 time or epoch seconds")
    p.add_argument("--until", help="only events delivered before: 1h, an ISO 8601 time, epoch s")
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be sent again, change nothing"
    )
    p.add_argument("--limit", type=int, default=100, help="events --dry-run lists (default 100)")
    p.add_argument(
        "--yes",
        action="store_true",
        help="confirm without a prompt: CleverTap receives the events again",
    )
    _add_json(p)
    p.set_defaults(handler=cmd_replay)

    p = commands.add_parser(
        "backfill",
        help="send a customer's history from RevenueCat's data exports to CleverTap",
        description="Read RevenueCat Scheduled Data Exports (transactions; .csv, .csv.gz or "
        ".parquet files, folders or globs), derive the events the webhooks would have carried "
        "and enqueue them in the outbox, marked rc_backfill.  Safe to run again: what is stored "
        "already, or was sent live, is skipped; an interrupted run resumes.",
    )
    _add_config(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="export files, folders or globs")
    p.add_argument("--since", help="only events at or after: 30d, an ISO 8601 time, epoch s")
    p.add_argument("--until", help="only events before: 30d, an ISO 8601 time, epoch s")
    p.add_argument(
        "--route", metavar="NAME",
        help="the [[routes]] entry the events go to (default: the top-level [clevertap] one)",
    )  # fmt: skip
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true",
        help="count what would be sent (types, environments, routes, revenue), write nothing",
    )  # fmt: skip
    mode.add_argument(
        "--deliver", action="store_true",
        help="also run the dispatcher until every event is delivered, skipped or dead-lettered",
    )  # fmt: skip
    _add_json(p)
    p.set_defaults(handler=cmd_backfill)

    p = commands.add_parser(
        "set-id",
        help="set or clear a user's CleverTap ID on RevenueCat, or many users' (--from)",
        description="Set the $clevertapId attribute of APP_USER_ID on RevenueCat; without "
        "CLEVERTAP_ID the attribute is deleted.  With --from FILE (CSV or JSON lines), "
        "--from-clevertap or --demo N, set it for many users: resumable (the --state file), "
        "within RevenueCat's rate limit, each user sent once; exit 1 unless every user was "
        "set (and verified).  The API key comes from --api-key or the REVENUECAT_API_KEY "
        "environment variable.",
    )
    p.add_argument("app_user_id", metavar="APP_USER_ID", nargs="?", default=None)
    p.add_argument("clevertap_id", metavar="CLEVERTAP_ID", nargs="?", default=None)
    p.add_argument("--api-key", help="RevenueCat API key (prefer REVENUECAT_API_KEY)")
    p.add_argument(
        "--base-url",
        default="https://api.revenuecat.com",
        help="RevenueCat's address, e.g. http://127.0.0.1:8080 for the mock",
    )
    _add_json(p)
    bulk = p.add_argument_group("many users")
    bulk.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="the mapping, CSV or JSON lines; - reads stdin",
    )
    bulk.add_argument(
        "--format", choices=("csv", "jsonl"), help="default: from the name or content"
    )
    bulk.add_argument(
        "--user-column", default="app_user_id", metavar="NAME", help="default app_user_id"
    )
    bulk.add_argument(
        "--id-column", default="clevertap_id", metavar="NAME", help="default clevertap_id"
    )
    bulk.add_argument("--project-id", metavar="ID", help="send with API v2 (a v2 key), not v1")
    bulk.add_argument(
        "--state",
        metavar="FILE",
        help="SQLite file that makes a rerun resume and skip users already set "
        "(default rc-clevertap-set-id.sqlite3; --demo: a temporary one)",
    )
    bulk.add_argument(
        "--concurrency", type=_count, default=8, help="requests in flight (default 8)"
    )
    bulk.add_argument("--dry-run", action="store_true", help="check the mapping, send nothing")
    bulk.add_argument(
        "--report", metavar="FILE", help="JSON lines of the users not set, with the reasons"
    )
    bulk.add_argument(
        "--verify",
        type=_sample,
        metavar="N|all",
        help="read back N random users (or all) afterwards and report mismatches",
    )
    bulk.add_argument(
        "--from-clevertap",
        action="store_true",
        help="build the mapping from CleverTap's profiles (identity = app user id); the "
        "account comes from the configuration (--config, RC_CLEVERTAP_CLEVERTAP_*)",
    )
    bulk.add_argument("--ct-query", metavar="JSON", help="Get User Profiles query for it")
    _add_config(p)
    bulk.add_argument(
        "--demo",
        type=_count,
        metavar="N",
        help="migrate N users of an in-process RevenueCat mock (API v2, 480 a minute)",
    )
    bulk.add_argument(
        "--demo-speed",
        type=float,
        default=60.0,
        metavar="X",
        help="--demo: virtual seconds of rate-limit wait per real second (default 60; 0: none)",
    )
    p.set_defaults(handler=cmd_set_id)

    return parser


def _fail(message: str, status: int) -> NoReturn:
    _stderr().print(f"rc-clevertap: error: {_one_line(message)}", markup=False)
    raise SystemExit(status)


def _one_line(text: str) -> str:
    """libpq's and others' messages carry hints on further lines: one line for an operator."""
    return " ".join(text.split())


def _error_line(exc: Exception) -> tuple[str, int]:
    """The one line and exit status for an error a command did not turn into CommandError."""
    from integration import ConfigError, IntegrationError, OutboxError

    if isinstance(exc, ConfigError):
        return f"invalid configuration: {exc}", EXIT_USAGE
    if isinstance(exc, OutboxError):
        message = f"outbox unavailable: {exc}"
        if "rc-clevertap serve" not in message:  # the outbox's own message names no remedy
            message += "; check [outbox] url (RC_CLEVERTAP_OUTBOX_URL) and that it is reachable"
        return message, EXIT_FAILED
    if isinstance(exc, IntegrationError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return (f"{reason}: {exc.filename}" if exc.filename else reason), EXIT_FAILED
    return (
        f"unexpected {type(exc).__name__}: {exc} (this is a bug in rc-clevertap; please "
        "report it with the command you ran)",
        EXIT_FAILED,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_OK
    # A finite command stops on SIGTERM as on Ctrl-C (serve and mock install their own).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return handler(args)
    except CommandError as exc:
        _fail(str(exc), exc.status)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # an operator gets one line, never a traceback
        _fail(*_error_line(exc))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
