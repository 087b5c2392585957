"""State and rules of the CleverTap mock, in plain Python (the routes are thin).

The backend owns the configured accounts, each account's :class:`~.store.AccountStore`, the
concurrency slots, the bounded request journal and the counters.  Everything here is
synchronous; the only ``await`` is the test hook ``on_upload``.  The routes run on the server's
event loop while tests, notebooks and the local stack inspect from other threads, so every
method that reads or changes stored state holds :attr:`CleverTapBackend.lock` (one lock per
batch, not per record).

What a stored event looks like (``backend.events(account_id)``): the record as uploaded, with
``ts`` filled in with the receive time (epoch seconds) when it was omitted, as CleverTap does
(reference §1.3), and three keys the mock adds:

- ``_object_id``: the CleverTap ID of the profile the event landed on;
- ``_received_at``: the mock's clock at receipt (epoch seconds, float);
- ``_upload``: the id of the upload request (its journal entry).

Caps (all constructor arguments; STYLE 12): ``max_events_per_account`` (default 200,000,
oldest dropped), ``max_profiles_per_account`` (100,000, oldest evicted), ``journal_size``
(1,000 entries, oldest dropped) and ``max_cursors`` (100 open read cursors, oldest
forgotten; each holds references to its matches, see :mod:`.reads`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mockserver._http import parse_json
from mockserver.clevertap import reads
from mockserver.clevertap.accounts import DEFAULT_ACCOUNT, Account, AccountBook, redact
from mockserver.clevertap.errors import MALFORMED_REQUEST, TOO_MANY_CONCURRENT, CleverTapError
from mockserver.clevertap.reads import Cursors, Query
from mockserver.clevertap.store import AccountStore, Profile
from mockserver.clevertap.validation import Limits, check_record, error_text

#: The APIs whose in-flight requests are limited, each on its own (reference §3.4: "per
#: account, per API"): uploads, and each read API (Get User Profile, Get Events, Get User
#: Profiles, the two counts, Delete User Profiles).
Api = Literal["upload", "profile", "events", "profiles", "event_counts", "profile_counts", "delete"]
READ_APIS: tuple[Api, ...] = (
    "profile", "events", "profiles", "event_counts", "profile_counts", "delete"
)  # fmt: skip
#: What a read API reads: ``events.json`` and ``counts/events.json``, or the profiles ones.
ReadKind = Literal["events", "profiles"]


@dataclass(slots=True)
class AccountCounters:
    """Running totals for one account (reset by :meth:`CleverTapBackend.reset`)."""

    uploads: int = 0
    dry_runs: int = 0
    records_received: int = 0
    records_processed: int = 0
    rejected_by_code: Counter[int] = field(default_factory=Counter)
    reads: int = 0
    refused_concurrency: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "uploads": self.uploads,
            "dry_runs": self.dry_runs,
            "records_received": self.records_received,
            "records_processed": self.records_processed,
            "records_rejected": sum(self.rejected_by_code.values()),
            "rejected_by_code": {str(c): n for c, n in sorted(self.rejected_by_code.items())},
            "reads": self.reads,
            "refused_concurrency": self.refused_concurrency,
        }


class CleverTapBackend:
    """The CleverTap mock's state: accounts, profiles, events, limits, journal.

    >>> backend = CleverTapBackend(accounts=[Account("W9R-486-4W5Z", ("pass",))])
    >>> backend.upload("W9R-486-4W5Z", [{"type": "event", "identity": "u1",
    ...     "evtName": "Signed Up", "evtData": {}}])["status"]
    'success'

    Parameters:
        accounts: the accounts served; by default one, :data:`~.accounts.DEFAULT_ACCOUNT`
            (id ``TEST-RCC-MOCK``, passcode ``mock-passcode``, region ``eu1``).
        limits: validation limits (:class:`~.validation.Limits`).
        max_concurrent_uploads: uploads in flight per account before 429 (DOC-LIM: 15).
        max_concurrent_reads: requests of one read API in flight per account before 429
            (DOC-LIM: 3); each read API has its own 3, as CleverTap documents (reference §3.4).
        max_events_per_account, max_profiles_per_account, journal_size: memory caps.
        max_cursors: open read cursors kept (oldest forgotten).
        counts_deferred: counts answer ``partial`` with a ``req_id`` first, to be polled (the
            flow SUP-CNT documents); off by default: counts answer ``success`` at once.
        clock: epoch seconds, injectable.
        seed: seeds generated CleverTap IDs and cursor ids, so runs are reproducible.
        on_upload: awaited once per upload after its concurrency slot is taken and before the
            batch is processed; tests use it to hold uploads in flight.
    """

    def __init__(
        self,
        *,
        accounts: Sequence[Account] = (DEFAULT_ACCOUNT,),
        limits: Limits | None = None,
        max_concurrent_uploads: int = 15,
        max_concurrent_reads: int = 3,
        max_events_per_account: int = 200_000,
        max_profiles_per_account: int = 100_000,
        journal_size: int = 1_000,
        max_cursors: int = 100,
        counts_deferred: bool = False,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        on_upload: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        for name, value in (
            ("max_concurrent_uploads", max_concurrent_uploads),
            ("max_concurrent_reads", max_concurrent_reads),
            ("max_events_per_account", max_events_per_account),
            ("max_profiles_per_account", max_profiles_per_account),
            ("journal_size", journal_size),
            ("max_cursors", max_cursors),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.accounts = AccountBook(accounts)
        self.limits = limits if limits is not None else Limits()
        self.max_concurrent_uploads = max_concurrent_uploads
        self.max_concurrent_reads = max_concurrent_reads
        self.max_events_per_account = max_events_per_account
        self.max_profiles_per_account = max_profiles_per_account
        self.journal_size = journal_size
        self.max_cursors = max_cursors
        self.counts_deferred = counts_deferred
        self.clock = clock
        self.seed = seed
        self.on_upload = on_upload
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every profile, event, cursor, journal entry and counter (accounts stay)."""
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self._rng = random.Random(self.seed)
        self._stores = {
            account.account_id: AccountStore(
                max_events=self.max_events_per_account,
                max_profiles=self.max_profiles_per_account,
                max_multi_values=self.limits.max_multi_values,
                rng=self._rng,
            )
            for account in self.accounts
        }
        self._counters = {account.account_id: AccountCounters() for account in self.accounts}
        self._journal: deque[dict[str, Any]] = deque(maxlen=self.journal_size)
        self._request_ids = 0
        self.unauthorized = 0
        self.cursors = Cursors(max_cursors=self.max_cursors, rng=self._rng)

    def describe(self, *, reveal_passcodes: bool = False) -> dict[str, Any]:
        """The effective configuration, for ``rc-clevertap mock`` to print at start-up.

        Passcodes are redacted unless ``reveal_passcodes`` (the CLI may reveal the built-in
        default, which is documented and not secret).
        """
        limits = self.limits
        return {
            "accounts": [
                {
                    "account_id": a.account_id,
                    "region": a.region,
                    "passcodes": [p if reveal_passcodes else redact(p) for p in a.passcodes],
                }
                for a in self.accounts
            ],
            "max_concurrent_uploads": self.max_concurrent_uploads,
            "max_concurrent_reads": self.max_concurrent_reads,
            "max_records_per_upload": limits.max_records,
            "max_event_properties": limits.max_event_properties,
            "max_event_names": limits.max_event_names,
            "milliseconds_ts": limits.milliseconds_ts,
            "max_events_per_account": self.max_events_per_account,
            "max_profiles_per_account": self.max_profiles_per_account,
            "journal_size": self.journal_size,
            "seed": self.seed,
        }

    # -- requests -----------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], host: str = "") -> Account:
        """The account a request's headers name, or a 401 :class:`CleverTapError`."""
        try:
            return self.accounts.authenticate(headers, host)
        except CleverTapError:
            self.unauthorized += 1
            raise

    @contextlib.contextmanager
    def slot(self, account_id: str, api: Api) -> Iterator[None]:
        """Hold one of the account's concurrent-request slots, or raise 429.

        CleverTap limits in-flight requests per account and per API, not requests per unit of
        time (reference §3.4): 15 for uploads, 3 for each read API (three Get Events requests
        in flight leave Get User Profiles free).  The 429 body's shape is UNCONFIRMED; the mock
        uses CleverTap's request-level fail body (reference §3.3).  A read request is counted
        (``reads``) once it holds its slot.
        """
        key = (account_id, api)
        limit = self.max_concurrent_uploads if api == "upload" else self.max_concurrent_reads
        if self._in_flight[key] >= limit:
            self._counters[account_id].refused_concurrency += 1
            raise CleverTapError(429, TOO_MANY_CONCURRENT)
        if api != "upload":
            self._counters[account_id].reads += 1
        self._in_flight[key] += 1
        try:
            yield
        finally:
            self._in_flight[key] -= 1

    def in_flight(self, account_id: str, api: Api) -> int:
        """Requests of ``api`` now in flight for the account."""
        return self._in_flight[(account_id, api)]

    def parse_upload(self, body: bytes) -> list[Any]:
        """The ``d`` array of an upload body, or a 400 :class:`CleverTapError`.

        Unparseable JSON is ``Malformed request`` (reference §3.3, GOCT).  A missing ``d`` and
        more than ``max_records`` records have no documented answer (UNCONFIRMED, reference
        §3.3); the mock refuses them whole with 400 and a message starting the same way.
        """
        payload = parse_json(body, lambda: CleverTapError(400, MALFORMED_REQUEST))
        if type(payload) is not dict or type(payload.get("d")) is not list:
            raise CleverTapError(400, f'{MALFORMED_REQUEST}. The body must be {{"d": [records]}}')
        records: list[Any] = payload["d"]
        limit = self.limits.max_records
        if len(records) > limit:
            raise CleverTapError(
                400, f"{MALFORMED_REQUEST}. At most {limit} records per request, got {len(records)}"
            )
        return records

    def next_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    def upload(
        self,
        account_id: str,
        records: Sequence[Any],
        *,
        dry_run: bool = False,
        forced: Mapping[int, int] | None = None,
        request_id: int = 0,
    ) -> dict[str, Any]:
        """Validate and store one batch; CleverTap's HTTP 200 body (reference §3.1).

        Parameters:
            dry_run: validate without storing (``?dryRun=1``; its semantics are UNCONFIRMED,
                reference §3.5: the answer has the usual shape and nothing is kept).
            forced: 0-based record index -> code, for records the fault injector rejects even
                though they are valid (a share of a batch refused with 555 or 513).
        """
        with self.lock:
            return self._upload(account_id, records, dry_run, forced, request_id)

    def _upload(
        self,
        account_id: str,
        records: Sequence[Any],
        dry_run: bool,
        forced: Mapping[int, int] | None,
        request_id: int,
    ) -> dict[str, Any]:
        store = self._store(account_id)
        counters = self._counters[account_id]
        limits = self.limits
        now = self.clock()
        received_ts = int(now)
        unprocessed: list[dict[str, Any]] = []
        processed = 0
        for position, record in enumerate(records):
            code = check_record(record, limits)
            if not code and forced:
                code = forced.get(position, 0)
            if not code and record["type"] == "event":
                code = store.check_event_type(record, limits, apply=not dry_run)
            if code:
                counters.rejected_by_code[code] += 1
                unprocessed.append(
                    {
                        "status": "fail",
                        "code": code,
                        "error": error_text(code, position + 1),
                        "record": record,
                    }
                )
                continue
            processed += 1
            if not dry_run:
                store.store_record(record, now, received_ts, request_id)
        counters.records_received += len(records)
        if dry_run:
            counters.dry_runs += 1
        else:
            counters.uploads += 1
            counters.records_processed += processed
        if not unprocessed:
            status = "success"
        elif processed:
            status = "partial"
        else:
            status = "fail"
        return {"status": status, "processed": processed, "unprocessed": unprocessed}

    # -- read APIs ----------------------------------------------------------------------------

    def open_cursor(
        self, account_id: str, kind: ReadKind, query: Query, batch_size: int
    ) -> tuple[str, int]:
        """``events.json``/``profiles.json`` with a query: a cursor, and how many matched."""
        with self.lock:
            store = self._store(account_id)
            found: list[Any]
            if kind == "events":
                found, render = reads.matching_events(store, query), reads.event_renderer(store)
            else:
                found, render = reads.profiles_with(store, query), reads.profile_record
            return self.cursors.open(account_id, found, batch_size, render), len(found)

    def next_page(self, account_id: str, cursor: str) -> dict[str, Any]:
        """``GET ...?cursor=``: the cursor's next page (with ``next_cursor`` unless the last)."""
        with self.lock:
            return self.cursors.step(account_id, cursor)

    def count(self, account_id: str, kind: ReadKind, query: Query) -> tuple[dict[str, Any], int]:
        """``counts/*.json``: the answer (``partial`` with a ``req_id`` when counts are
        deferred), and the count."""
        with self.lock:
            store = self._store(account_id)
            if kind == "events":
                count = len(reads.matching_events(store, query))
            else:
                count = len(reads.profiles_with(store, query))
            if self.counts_deferred:
                ticket = self.cursors.defer_count(account_id, count)
                return {"status": "partial", "req_id": ticket}, count
        return {"status": "success", "count": count}, count

    def collect_count(self, account_id: str, req_id: str) -> int:
        """A deferred count by its ``req_id``."""
        with self.lock:
            return self.cursors.collect_count(account_id, req_id)

    def read_profile(self, account_id: str, key: str, value: str) -> dict[str, Any] | None:
        """``profile.json``: the profile ``key`` (identity, objectId, email) names, or None."""
        with self.lock:
            found = self._store(account_id).find(key, value)
            return None if found is None else reads.profile_record(found)

    def delete_profiles(self, account_id: str, body: object) -> int:
        """``delete/profiles.json``: delete by identity or guid; how many were deleted."""
        with self.lock:
            return reads.delete_profiles(self._store(account_id), body)

    # -- journal ------------------------------------------------------------------------------

    def journal_append(self, entry: dict[str, Any]) -> None:
        """Record one request (no credentials: callers pass the account id only)."""
        entry.setdefault("at", self.clock())
        with self.lock:
            self._journal.append(entry)

    def journal(self) -> list[dict[str, Any]]:
        """The newest ``journal_size`` requests, oldest first."""
        with self.lock:
            return list(self._journal)

    # -- inspection ---------------------------------------------------------------------------

    def _store(self, account_id: str) -> AccountStore:
        try:
            return self._stores[account_id]
        except KeyError:
            raise LookupError(f"unknown CleverTap account {account_id!r}") from None

    def store(self, account_id: str) -> AccountStore:
        """The account's store (profiles, identity index, events)."""
        return self._store(account_id)

    def events(self, account_id: str) -> list[dict[str, Any]]:
        """Every stored event of the account, in arrival order (see the module docstring)."""
        with self.lock:
            return list(self._store(account_id).events)

    def events_for(
        self, account_id: str, *, identity: str | None = None, object_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The stored events of one user, found by ``identity`` or by CleverTap ID."""
        with self.lock:
            profile = self._find(account_id, identity=identity, object_id=object_id)
            return [] if profile is None else self._store(account_id).events_of(profile)

    def profiles(self, account_id: str) -> list[dict[str, Any]]:
        """Every profile of the account, in creation order, as JSON-ready dicts."""
        with self.lock:
            return [p.as_dict() for p in self._store(account_id).profiles.values()]

    def profile(
        self,
        account_id: str,
        *,
        identity: str | None = None,
        object_id: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any] | None:
        """One profile as a dict, or None when no profile matches."""
        with self.lock:
            found = self._find(account_id, identity=identity, object_id=object_id, email=email)
            return None if found is None else found.as_dict()

    def _find(
        self,
        account_id: str,
        *,
        identity: str | None = None,
        object_id: str | None = None,
        email: str | None = None,
    ) -> Profile | None:
        given = [
            (k, v)
            for k, v in (("identity", identity), ("objectId", object_id), ("email", email))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of identity, object_id, email")
        ((key, value),) = given
        return self._store(account_id).find(key, value)

    def counters(self, account_id: str | None = None) -> dict[str, Any]:
        """Counters of one account, or of all accounts keyed by id (plus ``unauthorized``)."""
        with self.lock:
            if account_id is not None:
                self._store(account_id)
                return self._counters_of(account_id)
            return {
                "accounts": {a: self._counters_of(a) for a in self._counters},
                "unauthorized": self.unauthorized,
            }

    def _counters_of(self, account_id: str) -> dict[str, Any]:
        store = self._stores[account_id]
        summary = self._counters[account_id].as_dict()
        summary.update(
            events_stored=len(store.events),
            events_dropped=store.events_dropped,
            profiles=len(store.profiles),
            profiles_evicted=store.profiles_evicted,
            event_names=len(store.event_names),
            uploads_in_flight=self.in_flight(account_id, "upload"),
            reads_in_flight=sum(self.in_flight(account_id, api) for api in READ_APIS),
        )
        return summary
