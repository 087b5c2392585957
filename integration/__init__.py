"""The forwarding engine: RevenueCat webhooks in, CleverTap Upload API events out.

The local stack (``integration.localstack.LocalStack``) and the demo (``integration.demo``)
are not imported here: they pull in both mocks, which a production forwarder does not need.
"""

from __future__ import annotations

from integration.config import (
    CleverTapAccount,
    CleverTapConfig,
    Config,
    ConfigError,
    DispatcherConfig,
    EventNames,
    ExtrasConfig,
    OutboxConfig,
    RevenueConfig,
    Secret,
    WebhookConfig,
    config_from_mapping,
    load_config,
)
from integration.dispatcher import Dispatcher
from integration.engine import (
    Engine,
    EngineStatus,
    list_dead_letters,
    list_quarantined,
    parse_since,
    read_status,
    replay_delivered,
    retry_dead_letters,
    run_server,
    serve,
)
from integration.mapping import (
    InvalidWebhook,
    Mapped,
    Skipped,
    WebhookEnvelope,
    map_event,
    parse_webhook,
    preview,
)
from integration.metrics import Metrics
from integration.outbox import (
    DeadLetter,
    DeliveryAttempt,
    Outbox,
    OutboxStats,
    SQLiteOutbox,
    open_outbox,
)
from integration.receiver import Receiver
from integration.uploader import Uploader

__all__ = [
    "CleverTapAccount",
    "CleverTapConfig",
    "Config",
    "ConfigError",
    "DeadLetter",
    "DeliveryAttempt",
    "Dispatcher",
    "DispatcherConfig",
    "Engine",
    "EngineStatus",
    "EventNames",
    "ExtrasConfig",
    "InvalidWebhook",
    "Mapped",
    "Metrics",
    "Outbox",
    "OutboxConfig",
    "OutboxStats",
    "Receiver",
    "RevenueConfig",
    "SQLiteOutbox",
    "Secret",
    "Skipped",
    "Uploader",
    "WebhookConfig",
    "WebhookEnvelope",
    "config_from_mapping",
    "list_dead_letters",
    "list_quarantined",
    "load_config",
    "map_event",
    "open_outbox",
    "parse_since",
    "parse_webhook",
    "preview",
    "read_status",
    "replay_delivered",
    "retry_dead_letters",
    "run_server",
    "serve",
]
