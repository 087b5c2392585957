"""The verdict table of integration/dispatcher.py's docstring, row by row, against plan_upload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

import integration.dispatcher
from integration.config import DispatcherConfig
from integration.outbox.base import OutboxEvent
from integration.policy import MIN_ATTEMPTS, Pause, Plan, Release, plan_retry, plan_upload
from integration.uploader import RecordFailure, UploadKind, UploadResult

NOW = 1_800_000_000.0
SETTINGS = DispatcherConfig(
    max_age_s=3600.0,
    backoff_initial_s=1.0,
    backoff_max_s=300.0,
    auth_pause_s=60.0,
    auth_pause_max_s=900.0,
)
NOT_PAUSED = Pause(until=0.0, next_s=60.0)
OLD = SETTINGS.max_age_s  # an age at which the maximum age applies


def event(row_id: int, *, attempts: int = 0, age: float = 0.0) -> OutboxEvent:
    """A leased row that failed ``attempts`` times and entered the queue ``age`` seconds ago."""
    queued_at = NOW - age
    return OutboxEvent(
        row_id, f"e{row_id}", "PRODUCTION", b"{}", queued_at, queued_at, attempts, None
    )


def ok(*failures: RecordFailure) -> UploadResult:
    return UploadResult("ok", 200, 0.01, "200", 0, failures)


def failed(kind: UploadKind, status: int | None, summary: str) -> UploadResult:
    return UploadResult(kind, status, 0.01, summary)


def fail(index: int | None, code: int, error: str = "misc", ambiguity: str = "") -> RecordFailure:
    return RecordFailure(index, code, error, ambiguity)


def retry(error: str, *due: tuple[float, tuple[int, ...]]) -> Release:
    """Rows due again at ``NOW + delay``, an attempt counted."""
    return Release(error, tuple((NOW + delay, rows) for delay, rows in due), counted=True)


E1, E2, E3 = event(1), event(2), event(3)
E1_OLD = event(1, attempts=MIN_ATTEMPTS - 1, age=OLD)
E1_OLD_YOUNG_TRIES = event(1, attempts=MIN_ATTEMPTS - 2, age=OLD)
HTTP_503 = failed("server-error", 503, "HTTP 503")


def row(
    name: str,
    result: UploadResult,
    events: Sequence[OutboxEvent],
    expected: Plan,
    *,
    owner: Sequence[int] | None = None,
    pause: Pause = NOT_PAUSED,
    draws: Sequence[float] = (),
) -> Any:
    """One table row; ``owner`` defaults to one record per event, ``draws`` are the jitter
    source's values (every one must be drawn, and no more)."""
    owners = list(range(len(events))) if owner is None else list(owner)
    return pytest.param(result, list(events), owners, pause, list(draws), expected, id=name)


TABLE = [
    # ok, no failures -> all delivered, limit grows
    row("ok-no-failures", ok(), [E1, E2], Plan("delivered", (1, 2), limit="grow")),
    # ok, record failures -> per event: a permanent code -> dead ("clevertap 513: ...")
    row(
        "ok-permanent-code-dead",
        ok(fail(1, 513, "restricted")),
        [E1, E2, E3],
        Plan("partial", (1, 3), ((E2, "clevertap 513: restricted"),), limit="grow"),
    ),
    row(
        "ok-permanent-code-every-event",
        ok(fail(0, 521, "bad"), fail(1, 513, "restricted")),
        [E1, E2],
        Plan(
            "dead",
            (),
            ((E1, "clevertap 521: bad"), (E2, "clevertap 513: restricted")),
            limit="grow",
        ),
    ),
    # ... 555 only -> retried
    row(
        "ok-555-only-retried",
        ok(fail(0, 555)),
        [E1, E2],
        Plan("partial", (2,), release=retry("clevertap 555: misc", (0.75, (1,))), limit="grow"),
        draws=[0.5],
    ),
    row(
        "ok-555-every-event",
        ok(fail(0, 555), fail(1, 555)),
        [E1, E2],
        Plan("retry", release=retry("clevertap 555: misc", (0.75, (1, 2))), limit="grow"),
        draws=[0.5],
    ),
    row(
        "ok-555-and-permanent-in-one-event-is-dead",
        ok(fail(0, 555), fail(1, 513, "restricted")),
        [E1, E2],
        Plan("partial", (2,), ((E1, "clevertap 513: restricted"),), limit="grow"),
        owner=[0, 0, 1],
    ),
    row(
        "ok-one-retry-one-dead",
        ok(fail(0, 513, "restricted"), fail(1, 555)),
        [E1, E2],
        Plan(
            "partial",
            (),
            ((E1, "clevertap 513: restricted"),),
            retry("clevertap 555: misc", (0.75, (2,))),
            limit="grow",
        ),
        draws=[0.5],
    ),
    # ... no failure -> delivered; a record's failure settles the event it came from
    row(
        "ok-failure-belongs-to-its-event",
        ok(fail(3, 521, "bad charged")),
        [E1, E2],
        Plan("partial", (1,), ((E2, "clevertap 521: bad charged"),), limit="grow"),
        owner=[0, 0, 1, 1],
    ),
    # ... 555 or no code only -> retried (an entry without a code says nothing of its record)
    row(
        "ok-555-or-no-code-retried",
        ok(fail(0, 0, "Skipped record number : 1")),
        [E1, E2],
        Plan(
            "partial",
            (2,),
            release=retry("clevertap 0: Skipped record number : 1", (0.75, (1,))),
            limit="grow",
        ),
        draws=[0.5],
    ),
    # ok, a failure not tied to a record -> several events: sent again in halves at once
    row(
        "ok-not-tied-several-events-split",
        ok(fail(None, 555, "?", "no record number")),
        [E1, E2],
        Plan("retry", split=True, limit="grow"),
    ),
    row(
        "ok-not-tied-index-past-the-upload-split",
        ok(fail(2, 513)),
        [E1, E2],
        Plan("retry", split=True, limit="grow"),
    ),
    row(
        "ok-not-tied-with-located-ones-split",
        ok(fail(0, 513, "restricted"), fail(None, 513, "restricted", "record 1 named twice")),
        [E1, E2, E3],
        Plan("retry", split=True, limit="grow"),
    ),
    # ... alone with its event: settles as above, the reason naming what was ambiguous
    row(
        "ok-not-tied-lone-event-dead",
        ok(fail(None, 513, "restricted", "no record number")),
        [E1],
        Plan(
            "dead",
            (),
            ((E1, "clevertap 513: restricted (record not identified: no record number)"),),
            limit="grow",
        ),
        owner=[0, 0],
    ),
    row(
        "ok-not-tied-lone-event-555-retried",
        ok(fail(None, 555, "misc", "record number 9, but 2 records were sent")),
        [E1],
        Plan(
            "retry",
            release=retry(
                "clevertap 555: misc (record not identified: record number 9, but 2 records "
                "were sent)",
                (0.75, (1,)),
            ),
            limit="grow",
        ),
        owner=[0, 0],
        draws=[0.5],
    ),
    # ... every record failed with one code: which is which does not matter
    row(
        "ok-all-same-code-unlocated",
        ok(fail(None, 523, "Missing identity"), fail(None, 523, "Missing identity")),
        [E1, E2],
        Plan(
            "dead",
            (),
            ((E1, "clevertap 523: Missing identity"), (E2, "clevertap 523: Missing identity")),
            limit="grow",
        ),
    ),
    # rate-limited (429) -> all retried, limit halves (AIMD)
    row(
        "rate-limited-retried-limit-halves",
        failed("rate-limited", 429, "HTTP 429"),
        [E1, E2],
        Plan("retry", release=retry("HTTP 429", (0.75, (1, 2))), limit="halve"),
        draws=[0.5],
    ),
    # 5xx, timeout, network, unreadable -> all retried
    row(
        "5xx-retried",
        HTTP_503,
        [E1, E2],
        Plan("retry", release=retry("HTTP 503", (0.75, (1, 2)))),
        draws=[0.5],
    ),
    row(
        "timeout-retried",
        failed("timeout", None, "timeout"),
        [E1],
        Plan("retry", release=retry("timeout", (0.75, (1,)))),
        draws=[0.5],
    ),
    row(
        "network-retried",
        failed("connection-error", None, "ConnectError"),
        [E1],
        Plan("retry", release=retry("ConnectError", (0.75, (1,)))),
        draws=[0.5],
    ),
    row(
        "bad-response-unreadable-retried",
        failed("bad-response", 200, "unreadable 200"),
        [E1],
        Plan("retry", release=retry("unreadable 200", (0.75, (1,)))),
        draws=[0.5],
    ),
    row(
        "bad-response-contradicting-200-retried-none-delivered",
        failed("bad-response", 200, "200 success: processed 45 and unprocessed 0 ..."),
        [E1, E2],
        Plan(
            "retry",
            release=retry("200 success: processed 45 and unprocessed 0 ...", (0.75, (1, 2))),
        ),
        draws=[0.5],
    ),
    # other 4xx -> a batch of several events is sent again in halves at once
    row(
        "4xx-several-events-split",
        failed("rejected", 400, "HTTP 400"),
        [E1, E2, E3],
        Plan("retry", split=True),
    ),
    # ... a single event is retried
    row(
        "4xx-single-event-retried",
        failed("rejected", 413, "HTTP 413"),
        [E1],
        Plan("retry", release=retry("HTTP 413", (0.75, (1,)))),
        draws=[0.5],
    ),
    # unauthorized (401/403) -> all released without an attempt counted; the account pauses
    row(
        "unauthorized-pauses-auth-pause-s",
        failed("unauthorized", 401, "HTTP 401"),
        [E1, E2],
        Plan(
            "paused",
            release=Release("paused: HTTP 401", ((NOW + 60.0, (1, 2)),), counted=False),
            pause=Pause(until=NOW + 60.0, next_s=120.0),
        ),
    ),
    row(
        "unauthorized-while-paused-pauses-once",
        failed("unauthorized", 403, "HTTP 403"),
        [E1],
        Plan("paused", release=Release("paused: HTTP 403", ((NOW + 30.0, (1,)),), counted=False)),
        pause=Pause(until=NOW + 30.0, next_s=120.0),
    ),
    # ... doubling to auth_pause_max_s while it lasts
    row(
        "unauthorized-doubling-capped-at-auth-pause-max-s",
        failed("unauthorized", 401, "HTTP 401"),
        [E1],
        Plan(
            "paused",
            release=Release("paused: HTTP 401", ((NOW + 600.0, (1,)),), counted=False),
            pause=Pause(until=NOW + 600.0, next_s=900.0),
        ),
        pause=Pause(until=NOW - 1.0, next_s=600.0),
    ),
    # ... also a 200 whose body is CleverTap's request-level fail with code 401
    row(
        "unauthorized-200-fail-401-pauses",
        failed("unauthorized", 200, "200 fail: Account suspended (code 401)"),
        [E1, E2],
        Plan(
            "paused",
            release=Release(
                "paused: 200 fail: Account suspended (code 401)",
                ((NOW + 60.0, (1, 2)),),
                counted=False,
            ),
            pause=Pause(until=NOW + 60.0, next_s=120.0),
        ),
    ),
    # misdirected (3xx, 404, ...) -> as unauthorized, never split
    row(
        "misdirected-302-pauses-without-splitting",
        failed("misdirected", 302, "HTTP 302 to https://eu1.api.clevertap.com/1/upload"),
        [E1, E2, E3],
        Plan(
            "paused",
            release=Release(
                "paused: HTTP 302 to https://eu1.api.clevertap.com/1/upload",
                ((NOW + 60.0, (1, 2, 3)),),
                counted=False,
            ),
            pause=Pause(until=NOW + 60.0, next_s=120.0),
        ),
    ),
    row(
        "misdirected-404-while-paused-pauses-once",
        failed("misdirected", 404, "HTTP 404"),
        [E1, E2],
        Plan("paused", release=Release("paused: HTTP 404", ((NOW + 30.0, (1, 2)),), counted=False)),
        pause=Pause(until=NOW + 30.0, next_s=120.0),
    ),
    # backoff_initial_s * 2**(attempts-1), times a jitter in [0.5, 1)
    row(
        "backoff-doubles-per-attempt",
        HTTP_503,
        [event(1, attempts=2)],
        Plan("retry", release=retry("HTTP 503", (4.0 * 0.75, (1,)))),
        draws=[0.5],
    ),
    # ... capped at backoff_max_s
    row(
        "backoff-capped-at-backoff-max-s",
        HTTP_503,
        [event(1, attempts=20)],
        Plan("retry", release=retry("HTTP 503", (300.0 * 0.5, (1,)))),
        draws=[0.0],
    ),
    # ... one jitter draw per attempts count: rows that failed together stay due together
    row(
        "jitter-drawn-once-per-attempts-count",
        HTTP_503,
        [event(1), event(2, attempts=1), event(3)],
        Plan("retry", release=retry("HTTP 503", (0.5, (1, 3)), (2.0 * 0.75, (2,)))),
        draws=[0.0, 0.5],
    ),
    # max_age_s after queued_at -> dead with the last error, once it had MIN_ATTEMPTS tries
    row(
        "max-age-dead-at-min-attempts",
        HTTP_503,
        [E1_OLD],
        Plan("dead", dead=((E1_OLD, "max age exceeded after 3 attempts: HTTP 503"),)),
    ),
    row(
        "max-age-retried-below-min-attempts",
        HTTP_503,
        [E1_OLD_YOUNG_TRIES],
        Plan("retry", release=retry("HTTP 503", (2.0 * 0.75, (1,)))),
        draws=[0.5],
    ),
    row(
        "max-age-some-dead-some-retried",
        HTTP_503,
        [E1_OLD, E2],
        Plan(
            "retry",
            dead=((E1_OLD, "max age exceeded after 3 attempts: HTTP 503"),),
            release=retry("HTTP 503", (0.75, (2,))),
        ),
        draws=[0.5],
    ),
    row(
        "max-age-of-a-555-keeps-the-retry-label",
        ok(fail(0, 555)),
        [E1_OLD],
        Plan(
            "retry",
            dead=((E1_OLD, "max age exceeded after 3 attempts: clevertap 555: misc"),),
            limit="grow",
        ),
    ),
]


def jitter_source(draws: list[float]) -> Callable[[], float]:
    """Returns ``draws`` in order; a draw beyond them fails the test."""

    def draw() -> float:
        assert draws, "the policy drew more jitter than the row expects"
        return draws.pop(0)

    return draw


@pytest.mark.parametrize(("result", "events", "owner", "pause", "draws", "expected"), TABLE)
def test_verdict_table(
    result: UploadResult,
    events: list[OutboxEvent],
    owner: list[int],
    pause: Pause,
    draws: list[float],
    expected: Plan,
) -> None:
    """Each row of the dispatcher's verdict table gives its plan, drawing its jitter only."""
    plan = plan_upload(
        result,
        events,
        owner,
        now=NOW,
        settings=SETTINGS,
        pause=pause,
        random=jitter_source(draws),
    )
    assert plan == expected
    assert draws == []


def test_a_delivery_that_raised_backs_off_like_a_failed_upload() -> None:
    """plan_retry gives rows whose delivery raised the same backoff and maximum age."""
    plan = plan_retry(
        [E1_OLD, E2],
        "delivery failed: RuntimeError",
        now=NOW,
        settings=SETTINGS,
        random=jitter_source([0.5]),
    )
    assert plan == Plan(
        "retry",
        dead=((E1_OLD, "max age exceeded after 3 attempts: delivery failed: RuntimeError"),),
        release=retry("delivery failed: RuntimeError", (0.75, (2,))),
    )


def test_retried_counts_only_rows_with_an_attempt_counted() -> None:
    """A backoff release counts its rows as retried; a pause release counts none."""
    assert retry("HTTP 503", (1.0, (1, 2)), (2.0, (3,))).retried == 3
    assert Release("paused: HTTP 401", ((NOW, (1, 2)),), counted=False).retried == 0


# Each verdict of the docstring's table, and the ids of the rows above that check it.
DOCSTRING_VERDICTS = {
    "ok, no failures": ("ok-no-failures",),
    "ok, record failures": ("ok-permanent", "ok-555", "ok-failure-belongs", "ok-all-same"),
    "ok, a failure not tied to a record": ("ok-not-tied-several", "ok-not-tied-lone"),
    "rate-limited (429)": ("rate-limited",),
    "5xx, timeout, network, bad response": ("5xx", "timeout", "network", "bad-response"),
    "other 4xx": ("4xx-several", "4xx-single"),
    "unauthorized (401/403)": ("unauthorized", "unauthorized-200-fail-401"),
    "misdirected (3xx, 404, 405, 407, 410, 421, 426)": ("misdirected-302", "misdirected-404"),
}


def docstring_verdicts() -> list[str]:
    """The left column of the table in integration.dispatcher's docstring."""
    doc = integration.dispatcher.__doc__ or ""
    table = doc.split("::\n", 1)[1].split("\n\n", 1)[0]
    verdicts: list[str] = []
    pending = ""
    for line in table.strip("\n").splitlines():
        if line.startswith(" " * 5):  # the right column's continuation
            continue
        if "->" not in line:  # a left column on several lines
            pending += line.strip() + " "
            continue
        verdicts.append(pending + line.split("->", 1)[0].strip())
        pending = ""
    return verdicts


def test_every_verdict_of_the_docstring_has_rows() -> None:
    """The table above checks every verdict the dispatcher's docstring lists, and no other."""
    assert docstring_verdicts() == list(DOCSTRING_VERDICTS)
    ids = [param.id or "" for param in TABLE]
    for prefixes in DOCSTRING_VERDICTS.values():
        for prefix in prefixes:
            assert any(name.startswith(prefix) for name in ids), prefix
