"""The engine's counters, in memory, rendered as Prometheus text for ``GET /metrics``.

Names (all prefixed ``rc_clevertap_``)::

    webhooks_received_total                 webhooks stored in the outbox (answered 200)
    webhooks_duplicate_total                repeated event ids, answered 200, not stored again
    webhooks_rejected_total{reason}         unauthorized | too_large | invalid_body | unavailable
    events_skipped_total{reason}            acknowledged, not sent (a mapping.SKIP_CODES code)
    events_delivered_total{environment}     accepted by CleverTap
    backfill_events_delivered_total{environment}  of which derived from an export (issue 18)
    events_retried_total{environment}       sent back to the queue for another try
    events_dead_lettered_total{environment} moved to the dead-letter table
    event_properties_dropped_total{reason}  evtData keys left out: budget (the event name had
                                            no room) | core_only (sent again after a 522)
    uploads_total{environment,outcome}      upload attempts by outcome (ledger outcomes)
    upload_latency_seconds{environment}     histogram of upload round trips
    queue_depth{state}                      outbox rows pending | leased | dead (at scrape)
    oldest_pending_age_seconds              age of the oldest waiting event (at scrape)
    account_concurrency{account}            uploads allowed in flight now (AIMD)
    account_paused{account}                 1 while CleverTap refuses the credentials

Counters count since the process started, as Prometheus expects; the outbox holds the durable
totals (``rc-clevertap status``).  Label values are capped (:data:`MAX_LABEL_VALUES` per
metric, the rest counted under ``other``) so a stream of odd reasons cannot grow memory.
Text format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "MAX_LABEL_VALUES", "Metrics"]

PREFIX = "rc_clevertap_"
MAX_LABEL_VALUES = 100
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Counter:
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def add(self, labels: Labels, amount: float) -> None:
        if labels not in self.values and len(self.values) >= MAX_LABEL_VALUES:
            labels = tuple((k, "other") for k, _ in labels)
        self.values[labels] = self.values.get(labels, 0.0) + amount


@dataclass
class _Histogram:
    help: str
    counts: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=dict)

    def observe(self, labels: Labels, value: float) -> None:
        if labels not in self.counts:
            if len(self.counts) >= MAX_LABEL_VALUES:
                labels = tuple((k, "other") for k, _ in labels)
            self.counts.setdefault(labels, [0] * (len(LATENCY_BUCKETS) + 1))
            self.sums.setdefault(labels, 0.0)
        self.counts[labels][bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.sums[labels] += value


_COUNTERS = {
    "webhooks_received_total": "Webhooks stored in the outbox and answered 200.",
    "webhooks_duplicate_total": "Webhooks whose event id was already stored, answered 200.",
    "webhooks_rejected_total": "Webhooks refused, by reason.",
    "events_skipped_total": "Events acknowledged but not sent to CleverTap, by reason.",
    "events_delivered_total": "Events accepted by CleverTap.",
    "backfill_events_delivered_total": (
        "Events accepted by CleverTap that a backfill derived from an export (a share of "
        "events_delivered_total)."
    ),
    "events_retried_total": "Events put back in the queue for another attempt.",
    "events_dead_lettered_total": "Events moved to the dead-letter table.",
    "event_properties_dropped_total": (
        "Event properties left out to keep each event name within its property budget."
    ),
    "uploads_total": "Upload attempts, by outcome.",
}


class Metrics:
    """In-memory counters and a latency histogram, rendered in Prometheus text format.

    >>> metrics = Metrics()
    >>> metrics.inc("webhooks_received_total")
    >>> "rc_clevertap_webhooks_received_total 1" in metrics.render()
    True
    """

    def __init__(self) -> None:
        self._counters = {name: _Counter(text) for name, text in _COUNTERS.items()}
        self._latency = _Histogram("Upload round-trip time to CleverTap, in seconds.")

    def inc(self, name: str, amount: float = 1, /, **labels: str) -> None:
        """Add to the counter ``name`` (one of the names in the module docstring)."""
        self._counters[name].add(tuple(sorted(labels.items())), amount)

    def observe_latency(self, seconds: float, *, environment: str) -> None:
        self._latency.observe((("environment", environment),), seconds)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value for one label set (0 when never counted)."""
        return self._counters[name].values.get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """A counter's sum over all its label sets."""
        return sum(self._counters[name].values.values())

    def snapshot(self) -> dict[str, float]:
        """Every counter's total, keyed by name without the prefix."""
        return {name: self.total(name) for name in self._counters}

    def render(
        self,
        *,
        gauges: Iterable[tuple[str, str, Mapping[str, str], float]] = (),
    ) -> str:
        """The exposition text; ``gauges`` are ``(name, help, labels, value)`` read at scrape."""
        lines: list[str] = []
        for name, counter in self._counters.items():
            lines += [f"# HELP {PREFIX}{name} {counter.help}", f"# TYPE {PREFIX}{name} counter"]
            if not counter.values and not _labelled(name):
                lines.append(f"{PREFIX}{name} 0")
            for labels, value in sorted(counter.values.items()):
                lines.append(f"{PREFIX}{name}{_labels(labels)} {_number(value)}")
        name = f"{PREFIX}upload_latency_seconds"
        lines += [f"# HELP {name} {self._latency.help}", f"# TYPE {name} histogram"]
        for labels, counts in sorted(self._latency.counts.items()):
            running = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {running}")
            lines.append(f"{name}_sum{_labels(labels)} {_number(self._latency.sums[labels])}")
            lines.append(f"{name}_count{_labels(labels)} {running}")
        seen: set[str] = set()
        for gauge, help_text, gauge_labels, value in gauges:
            full = PREFIX + gauge
            if full not in seen:
                seen.add(full)
                lines += [f"# HELP {full} {help_text}", f"# TYPE {full} gauge"]
            lines.append(f"{full}{_labels(tuple(sorted(gauge_labels.items())))} {_number(value)}")
        return "\n".join(lines) + "\n"


def _labelled(name: str) -> bool:
    return name in (
        "webhooks_rejected_total",
        "events_skipped_total",
        "uploads_total",
        "event_properties_dropped_total",
    )


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
