"""The in-memory metrics and their Prometheus text."""

from __future__ import annotations

from integration.metrics import MAX_LABEL_VALUES, Metrics


def test_unlabelled_counters_start_at_zero() -> None:
    """Every plain counter is rendered, at 0 before anything happened."""
    text = Metrics().render()
    assert "# TYPE rc_clevertap_webhooks_received_total counter" in text
    assert "rc_clevertap_webhooks_received_total 0\n" in text


def test_labelled_counters_render_each_label_set() -> None:
    """Counters with labels render one line per label set, values escaped."""
    metrics = Metrics()
    metrics.inc("events_skipped_total", reason='type "TEST"')
    metrics.inc("events_skipped_total", 2, reason="no user")
    text = metrics.render()
    assert 'rc_clevertap_events_skipped_total{reason="type \\"TEST\\""} 1\n' in text
    assert 'rc_clevertap_events_skipped_total{reason="no user"} 2\n' in text
    assert metrics.total("events_skipped_total") == 3


def test_latency_histogram_is_cumulative() -> None:
    """Latency buckets count observations at or below each bound, with sum and count."""
    metrics = Metrics()
    for seconds in (0.004, 0.2, 7.0, 100.0):
        metrics.observe_latency(seconds, environment="PRODUCTION")
    text = metrics.render()
    prefix = 'rc_clevertap_upload_latency_seconds_bucket{environment="PRODUCTION",le='
    assert f'{prefix}"0.005"}} 1\n' in text
    assert f'{prefix}"0.25"}} 2\n' in text
    assert f'{prefix}"10.0"}} 3\n' in text
    assert f'{prefix}"+Inf"}} 4\n' in text
    assert 'rc_clevertap_upload_latency_seconds_count{environment="PRODUCTION"} 4\n' in text


def test_label_values_are_capped() -> None:
    """Past the cap, new label values are counted under "other"."""
    metrics = Metrics()
    for i in range(MAX_LABEL_VALUES + 5):
        metrics.inc("events_skipped_total", reason=f"r{i}")
    assert metrics.value("events_skipped_total", reason="other") == 5


def test_gauges_are_rendered_with_their_type() -> None:
    """Gauges given at scrape time appear once typed, one line per label set."""
    text = Metrics().render(
        gauges=[
            ("queue_depth", "Rows.", {"state": "pending"}, 3),
            ("queue_depth", "Rows.", {"state": "dead"}, 1),
        ]
    )
    assert text.count("# TYPE rc_clevertap_queue_depth gauge") == 1
    assert 'rc_clevertap_queue_depth{state="dead"} 1\n' in text
