"""The forwarding engine: RevenueCat webhooks in, CleverTap Upload API events out.

Layers (enforced by import-linter, contracts in ``pyproject.toml``; see README, Architecture):

    app/        the applications: CLI, demo, LocalStack, uvicorn runner (they may use the mocks)
    backfill/   RevenueCat data exports -> derived events -> the outbox (rc-clevertap backfill)
    engine      the composition root: receiver + outbox + dispatcher + uploader, as one object
    admin       the operator's commands on the outbox alone (dlq, replay, status)
    receiver    outbox/    dispatcher    uploader    metrics      the pipeline's stages
    webhook     mapping    revenue    extras    config    _exceptions   pure logic, no I/O

Nothing here imports ``integration.app`` or ``mockserver``: a production forwarder needs
neither.  Import the local stack from ``integration.app.localstack``.
"""

from __future__ import annotations

from integration._exceptions import (
    IntegrationError,
    OutboxError,
    OutboxURLError,
    PostgresOutboxError,
    SQLiteOutboxError,
)
from integration.admin import (
    list_dead_letters,
    list_quarantined,
    read_status,
    replay_delivered,
    retry_dead_letters,
)
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
from integration.engine import Engine, EngineStatus
from integration.mapping import Mapped, Skipped, map_event, preview
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
from integration.webhook import InvalidWebhook, WebhookEnvelope, parse_webhook

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
    "IntegrationError",
    "InvalidWebhook",
    "Mapped",
    "Metrics",
    "Outbox",
    "OutboxConfig",
    "OutboxError",
    "OutboxStats",
    "OutboxURLError",
    "PostgresOutboxError",
    "Receiver",
    "RevenueConfig",
    "SQLiteOutbox",
    "SQLiteOutboxError",
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
    "parse_webhook",
    "preview",
    "read_status",
    "replay_delivered",
    "retry_dead_letters",
]
