"""``rc-clevertap set-id --from FILE | --from-clevertap | --demo N``, minus the terminal.

The command line (``cli.py``) parses the options into :class:`BulkOptions`, draws the
progress bar from ``on_progress`` and prints the :class:`BulkOutcome`; this module does the
rest: it finds the mapping (a file, standard input or CleverTap's profiles, the last two
spooled to a temporary file so the run knows its total and ``--verify`` can read it again),
refuses missing columns before anything is sent, runs
:meth:`client.AttributeSyncer.set_clevertap_ids` on the SQLite state file, writes the report
of refused users, and verifies.

Report file: JSON lines, one per user not set, ``{"line", "app_user_id", "outcome", "reason",
"errors"}`` where ``outcome`` is ``refused`` (malformed, or RevenueCat said no: not resent)
or ``failed`` (left pending: the next run sends it); ``line`` is the input line (for
``--from-clevertap``, the profile's place in CleverTap's results), ``null`` for a user an
earlier run staged.  It never holds a key: reasons come from the client's scrubbed errors.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

import client
from client import BulkProgress, BulkRefusal, BulkReport, VerifyReport

__all__ = [
    "DEFAULT_STATE",
    "BulkInputError",
    "BulkInterrupted",
    "BulkOptions",
    "BulkOutcome",
    "CleverTapUnreachable",
    "run_bulk",
]

Source = Literal["file", "clevertap", "demo"]

DEFAULT_STATE = Path("rc-clevertap-set-id.sqlite3")


class BulkInputError(Exception):
    """The mapping or the options cannot be used; nothing was sent (exit status 2)."""


class BulkInterrupted(Exception):
    """Ctrl-C or SIGTERM: requests in flight finished; the same command resumes."""

    def __init__(self, progress: BulkProgress, state: Path) -> None:
        super().__init__(
            f"interrupted after {progress.sent} users set; run the same command again to "
            f"resume (state in {state})"
        )
        self.progress = progress


@dataclass(frozen=True, kw_only=True)
class BulkOptions:
    """Everything one bulk run needs; see ``rc-clevertap set-id --help``."""

    source: Source
    path: str | None = None  # "-": standard input
    format: Literal["csv", "jsonl"] | None = None
    user_column: str = client.DEFAULT_USER_COLUMN
    id_column: str = client.DEFAULT_ID_COLUMN
    api_key: str | None = None
    base_url: str = client.DEFAULT_BASE_URL
    project_id: str | None = None
    state: Path | None = None  # default: DEFAULT_STATE, or a temporary file for --demo
    concurrency: int = 8
    dry_run: bool = False
    report: Path | None = None
    verify: int | Literal["all"] | None = None
    clevertap_base_url: str | None = None
    clevertap_account_id: str | None = None
    clevertap_passcode: str | None = field(default=None, repr=False)
    clevertap_query: Mapping[str, Any] | None = None
    demo_users: int = 10_000
    demo_speed: float = 60.0


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What the run did, for the summary and ``--json``."""

    report: BulkReport
    unreadable_rows: int
    total: int
    verify: VerifyReport | None
    elapsed_s: float
    state: Path
    report_path: Path | None
    api: str
    virtual_s: float | None = None  # --demo: seconds on the mock's clock
    floor_s: float | None = None  # --demo: users / (limit per second), the limit's own floor

    @property
    def ok(self) -> bool:
        verified = self.verify is None or self.verify.ok
        return self.report.ok and self.unreadable_rows == 0 and verified


def run_bulk(
    options: BulkOptions,
    *,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[BulkProgress], None] | None = None,
) -> BulkOutcome:
    """Run the migration; ``on_start`` gets the number of rows once it is known."""
    # A dry run sends nothing, so it needs no key; the client still wants a non-empty one.
    api_key = options.api_key or ("unused-by-a-dry-run" if options.dry_run else None)
    if not api_key and options.source != "demo":
        raise BulkInputError("no API key: pass --api-key or set REVENUECAT_API_KEY")
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rc-clevertap-")))
        reporter = stack.enter_context(_Reporter(options.report))
        demo = None
        if options.source == "demo":
            from integration.app.bulk_demo import demo_revenuecat

            demo = stack.enter_context(
                demo_revenuecat(options.demo_users, work, speed=options.demo_speed)
            )
            options = _demo_options(options, demo.project_id, work)
            mapping, fmt = demo.mapping, options.format
        else:
            mapping, fmt = _mapping(options, work, reporter)
        pairs = _open(stack, mapping, fmt, options, reporter)  # columns checked here
        total = _rows(mapping, fmt)
        if on_start is not None:
            on_start(total)
        rc = client.RevenueCat(
            api_key=demo.api_key if demo is not None else str(api_key),
            base_url=str(demo.http.base_url) if demo is not None else options.base_url,
            http_client=demo.http if demo is not None else None,
            sleep=demo.sleep if demo is not None else None,
            clock=demo.now if demo is not None else None,
        )
        stack.callback(rc.close)
        state = options.state or DEFAULT_STATE
        # A dry run changes nothing, not even by creating the state file.
        store = client.MemoryAttributeStore() if options.dry_run else _store(state)
        syncer = client.AttributeSyncer(
            rc,
            store=store,
            max_concurrency=options.concurrency,
            clock=demo.now if demo is not None else None,
        )
        # Closed without the final sync: the bulk run settles every request it sends itself.
        stack.callback(syncer.close, sync=False)
        started, virtual_start = time.monotonic(), demo.now() if demo is not None else 0.0
        last = [BulkProgress()]

        def progress(counts: BulkProgress) -> None:
            last[0] = counts
            if on_progress is not None:
                on_progress(counts)

        try:
            report = syncer.set_clevertap_ids(
                pairs,
                project_id=options.project_id,
                dry_run=options.dry_run,
                on_progress=progress,
                on_refusal=reporter.write,
            )
        except KeyboardInterrupt:
            raise BulkInterrupted(last[0], state) from None
        verified = None
        if options.verify is not None and not options.dry_run:
            sample = None if options.verify == "all" else options.verify
            with mapping.open(newline="", encoding="utf-8") as again:
                source = client.read_identities(
                    again, format=fmt, user_column=options.user_column, id_column=options.id_column
                )
                verified = syncer.verify_clevertap_ids(
                    source, project_id=options.project_id, sample=sample, seed=0
                )
        return BulkOutcome(
            report=report,
            unreadable_rows=reporter.unreadable,
            total=total,
            verify=verified,
            elapsed_s=round(time.monotonic() - started, 3),
            state=state,
            report_path=options.report,
            api="v1" if options.project_id is None else "v2",
            virtual_s=round(demo.now() - virtual_start, 3) if demo is not None else None,
            floor_s=round(total / (demo.rate_limit / 60), 3) if demo is not None else None,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _demo_options(options: BulkOptions, project_id: str, work: Path) -> BulkOptions:
    from dataclasses import replace

    # The demo's users are the mock's: its state is thrown away with it unless named.
    state = options.state or work / "demo-state.sqlite3"
    return replace(options, project_id=project_id, format="csv", state=state)


def _store(path: Path) -> client.AttributeStore:
    try:
        return client.SQLiteAttributeStore(path)
    except Exception as exc:  # sqlite3.Error: a folder that does not exist, a file not SQLite
        raise BulkInputError(f"cannot open the state file {path}: {exc}") from exc


class _Reporter:
    """Writes the report file (if any) and counts rows the reader could not use."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.unreadable = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> _Reporter:
        if self.path is not None:
            try:
                self._file = self.path.open("w", encoding="utf-8")
            except OSError as exc:
                raise BulkInputError(f"cannot write the report {self.path}: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, refusal: BulkRefusal) -> None:
        if self._file is None:
            return
        record = {
            "line": refusal.line,
            "app_user_id": refusal.app_user_id,
            "outcome": "failed" if refusal.pending else "refused",
            "reason": refusal.reason,
            "errors": [{"key_name": e.key_name, "message": e.message} for e in refusal.errors],
        }
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def unreadable_row(self, line: int, reason: str) -> None:
        self.unreadable += 1
        self.write(BulkRefusal(line, "", reason))


def _mapping(
    options: BulkOptions, work: Path, reporter: _Reporter
) -> tuple[Path, Literal["csv", "jsonl"] | None]:
    """The mapping as a file on disk: the given one, or standard input / CleverTap spooled."""
    if options.source == "clevertap":
        return _spool_clevertap(options, work, reporter), "jsonl"
    assert options.path is not None
    if options.path == "-":
        spooled = work / "stdin"
        with spooled.open("w", encoding="utf-8", newline="") as out:
            shutil.copyfileobj(sys.stdin, out)
        return spooled, options.format
    path = Path(options.path)
    if not path.is_file():
        raise BulkInputError(f"no such file: {path}")
    fmt = options.format
    if fmt is None and path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        fmt = "jsonl"
    elif fmt is None and path.suffix.lower() == ".csv":
        fmt = "csv"
    return path, fmt


def _spool_clevertap(options: BulkOptions, work: Path, reporter: _Reporter) -> Path:
    from integration.app.profiles import CleverTapReadError, clevertap_identities

    assert options.clevertap_query is not None
    if not (options.clevertap_account_id and options.clevertap_passcode):
        raise BulkInputError("--from-clevertap needs the CleverTap account id and passcode")
    spooled = work / "clevertap.jsonl"
    with (
        httpx.Client(base_url=options.clevertap_base_url or "", timeout=60.0) as http,
        spooled.open("w", encoding="utf-8") as out,
    ):
        try:
            pairs = clevertap_identities(
                http,
                account_id=options.clevertap_account_id,
                passcode=options.clevertap_passcode,
                query=options.clevertap_query,
                on_problem=reporter.unreadable_row,
            )
            for pair in pairs:
                line = {"app_user_id": pair.app_user_id, "clevertap_id": pair.clevertap_id}
                out.write(json.dumps(line) + "\n")
        except httpx.HTTPError as exc:
            raise CleverTapUnreachable(f"CleverTap unreachable: {type(exc).__name__}") from exc
        except CleverTapReadError as exc:
            raise CleverTapUnreachable(str(exc)) from exc
    if spooled.stat().st_size == 0:
        raise BulkInputError("CleverTap's profiles read matched no profile with an identity")
    return spooled


class CleverTapUnreachable(Exception):
    """The profiles read failed (exit status 1); nothing was sent to RevenueCat."""


def _open(
    stack: contextlib.ExitStack,
    path: Path,
    fmt: Literal["csv", "jsonl"] | None,
    options: BulkOptions,
    reporter: _Reporter,
) -> Iterator[client.IdentityPair]:
    source = stack.enter_context(path.open(newline="", encoding="utf-8"))
    try:
        return client.read_identities(
            source,
            format=fmt,
            user_column=options.user_column,
            id_column=options.id_column,
            on_problem=reporter.unreadable_row,
        )
    except client.IdentityFileError as exc:
        raise BulkInputError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BulkInputError(f"{path} is not UTF-8 text: {exc.reason}") from exc


def _rows(path: Path, fmt: Literal["csv", "jsonl"] | None) -> int:
    """How many rows the mapping holds (non-blank lines, less a CSV header), for the ETA."""
    with path.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    with path.open("rb") as f:
        first = next((line for line in f if line.strip()), b"")
    is_json = fmt == "jsonl" or (fmt is None and first.lstrip().startswith(b"{"))
    return lines if is_json else max(lines - 1, 0)
