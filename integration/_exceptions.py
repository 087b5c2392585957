"""Every error the forwarding engine raises, in one tree.

Our exception hierarchy::

    IntegrationError
    ├── ConfigError            configuration: the file or an environment variable is invalid
    │                          (also a ValueError; the message names the key, never a secret)
    ├── InvalidWebhook         intake: a body that is not a RevenueCat event we can store
    │                          (also a ValueError; ``reason`` says why)
    └── OutboxError            the outbox cannot do what was asked
        ├── OutboxURLError     outbox.url names no backend, or is malformed (also a ValueError)
        ├── SQLiteOutboxError  bad settings, or the SQLite database failed
        └── PostgresOutboxError   bad settings, or PostgreSQL failed (``sqlstate`` when it said)

Delivery raises nothing: what CleverTap answers (or fails to) is a verdict
(:class:`integration.uploader.UploadResult`) that the dispatcher turns into delivered, retried
or dead-lettered rows.  Third-party errors (``sqlite3``, ``psycopg``, ``tomllib``) are
translated once, where they happen, with ``raise ... from exc``.  No message here contains a
passcode, a token or a database password.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "IntegrationError",
    "InvalidWebhook",
    "OutboxError",
    "OutboxURLError",
    "PostgresOutboxError",
    "SQLiteOutboxError",
]


class IntegrationError(Exception):
    """The root of every error :mod:`integration` raises."""


class ConfigError(IntegrationError, ValueError):
    """The configuration is invalid; each message names its key or variable, never a secret.

    ``problems`` holds every problem found, so that an operator fixes them in one go; ``str``
    joins them with ``"; "``.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems: tuple[str, ...] = problems


class InvalidWebhook(IntegrationError, ValueError):
    """The body is not a RevenueCat event this service can store; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboxError(IntegrationError):
    """The outbox cannot do what was asked."""


class OutboxURLError(OutboxError, ValueError):
    """The outbox URL names no backend this release has, or is malformed."""


class SQLiteOutboxError(OutboxError):
    """The SQLite outbox cannot do what was asked: bad settings, or the database failed."""


class PostgresOutboxError(OutboxError):
    """The PostgreSQL outbox cannot do what was asked: bad settings, or the database failed.

    Messages name the database by its redacted URL; the password never appears.
    ``sqlstate`` is PostgreSQL's error code when the database reported one.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
