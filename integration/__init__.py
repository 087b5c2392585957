"""The forwarding engine: RevenueCat webhooks in, CleverTap Upload API events out."""

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
from integration.mapping import (
    InvalidWebhook,
    Mapped,
    Skipped,
    WebhookEnvelope,
    map_event,
    parse_webhook,
    preview,
)

__all__ = [
    "CleverTapAccount",
    "CleverTapConfig",
    "Config",
    "ConfigError",
    "DispatcherConfig",
    "EventNames",
    "ExtrasConfig",
    "InvalidWebhook",
    "Mapped",
    "OutboxConfig",
    "RevenueConfig",
    "Secret",
    "Skipped",
    "WebhookConfig",
    "WebhookEnvelope",
    "config_from_mapping",
    "load_config",
    "map_event",
    "parse_webhook",
    "preview",
]
