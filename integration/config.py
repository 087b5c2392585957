"""Configuration: one TOML file, overridden by ``RC_CLEVERTAP_<SECTION>_<KEY>`` variables.

Every default lives in the dataclasses below; every check runs in their ``__post_init__``, so a
:class:`Config` built in Python is validated exactly like one read from a file.  The environment
is read in one place only, :func:`load_config`.

Errors are :class:`ConfigError` (a ``ValueError``) whose message names the key (``revenue.mode``)
or the environment variable (``RC_CLEVERTAP_REVENUE_MODE``) at fault.  Secret values (the
passcodes and the webhook ``Authorization`` value) are wrapped in :class:`Secret` and never
appear in a repr, a ``str`` or an error message.

Example::

    config = load_config("rc-clevertap.toml")  # then RC_CLEVERTAP_CLEVERTAP_PASSCODE=... wins
    account = config.clevertap.account_for("SANDBOX")  # None when no sandbox account is set
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from integration._exceptions import ConfigError

__all__ = [
    "CleverTapAccount",
    "CleverTapConfig",
    "Config",
    "ConfigError",
    "DispatcherConfig",
    "EventNames",
    "ExtrasConfig",
    "MetricsConfig",
    "OutboxConfig",
    "RevenueConfig",
    "Secret",
    "ServerConfig",
    "WebhookConfig",
    "config_from_mapping",
    "load_config",
]

Region = Literal["eu1", "in1", "us1", "sg1", "aps3", "mec1", "sk1"]
RevenueMode = Literal["gross", "after_store_commission", "after_store_commission_and_taxes"]
RevenueCurrency = Literal["purchased", "usd"]
RefundPolicy = Literal["zero", "negative"]

ENV_PREFIX = "RC_CLEVERTAP_"
# Names under the prefix that are not configuration keys.  RC_CLEVERTAP_CONFIG names the file.
ENV_CONFIG_FILE = "RC_CLEVERTAP_CONFIG"

# CleverTap's hosts are https://<region>.api.clevertap.com (clevertap.md §1.1).  sk1 is offered
# by CleverTap's own Go uploader and Segment's destination but is not in CleverTap's region list.
REGIONS: tuple[str, ...] = get_args(Region)

# CleverTap answers 513 for restricted system event names (clevertap.md §1.3); a configured name
# from this list would dead-letter every event of its type, so it is refused at start-up.  The
# server's full list is UNCONFIRMED: these are the SDKs' lists plus "Web Page Viewed" (observed).
RESTRICTED_EVENT_NAMES = frozenset(
    {
        "App Installed",
        "App Launched",
        "App Uninstalled",
        "Geocluster Entered",
        "Geocluster Exited",
        "Notification Bounced",
        "Notification Clicked",
        "Notification Sent",
        "Notification Viewed",
        "Reachable By",
        "SCCampaignOptOut",
        "SCEnd",
        "SCIncoming",
        "SCOutgoing",
        "Session Concluded",
        "Stayed",
        "UTM Visited",
        "Web Page Viewed",
        "wzrk_d",
    }
)
# Characters CleverTap's SDKs strip from event names before sending (clevertap.md §1.3); whether
# the server rejects them is UNCONFIRMED, so names containing them are refused.
_EVENT_NAME_FORBIDDEN = re.compile(r"""[.:$'"\\]""")
_EVENT_NAME_MAX = 512  # the Android SDK's limit; the server's is UNCONFIRMED
CLEVERTAP_MAX_CONCURRENCY = 15  # uploads in flight per account (clevertap.md §3.4)


class Secret:
    """A secret string that does not print itself, not even through ``dataclasses.asdict``.

    >>> Secret("hunter2")
    Secret('***')
    >>> Secret("hunter2").reveal()
    'hunter2'
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _check_range(
    section: str, name: str, value: float, low: float | None, high: float | None = None
) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise _fail(f"{section}.{name}", f"must be at least {low}, got {value}")
        raise _fail(f"{section}.{name}", f"must be between {low} and {high}, got {value}")


def _check_positive(section: str, name: str, value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise _fail(f"{section}.{name}", f"must be greater than 0, got {value}")


def _check_choice(section: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(f"{section}.{name}", f"must be one of {', '.join(choices)}; got {value!r}")


@dataclass(frozen=True)
class CleverTapAccount:
    """One CleverTap project's credentials: where a batch of records is uploaded."""

    account_id: str
    passcode: Secret


@dataclass(frozen=True, kw_only=True)
class CleverTapConfig:
    """The CleverTap accounts and where their API lives.

    ``base_url`` (e.g. ``http://127.0.0.1:8080`` for the mock) takes precedence over ``region``;
    it is the scheme and host only, the uploader appends ``/1/upload``.  SANDBOX events go to the
    sandbox account, and are skipped when none is configured (RevenueCat's CleverTap integration
    "Requires ID and Passcode" for sandbox, revenuecat.md §5.1).
    """

    account_id: str
    passcode: Secret
    region: Region = "eu1"
    base_url: str | None = None
    sandbox_account_id: str | None = None
    sandbox_passcode: Secret | None = None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        s = "clevertap"
        if not self.account_id.strip():
            raise _fail(f"{s}.account_id", "must not be empty")
        if not self.passcode.reveal():
            raise _fail(f"{s}.passcode", "must not be empty")
        _check_choice(s, "region", self.region, REGIONS)
        if self.base_url is not None:
            _check_base_url(self.base_url)
        if self.sandbox_account_id is not None and not self.sandbox_account_id.strip():
            raise _fail(f"{s}.sandbox_account_id", "must not be empty; omit it instead")
        if self.sandbox_passcode is not None and not self.sandbox_passcode.reveal():
            raise _fail(f"{s}.sandbox_passcode", "must not be empty; omit it instead")
        if (self.sandbox_account_id is None) != (self.sandbox_passcode is None):
            raise ConfigError(
                "clevertap.sandbox_account_id and clevertap.sandbox_passcode must be set together"
            )
        _check_positive(s, "timeout_s", self.timeout_s)

    def api_base_url(self) -> str:
        """The API root without the ``/1`` version path, e.g. ``https://eu1.api.clevertap.com``."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return f"https://{self.region}.api.clevertap.com"

    def account_for(self, environment: str) -> CleverTapAccount | None:
        """The account for ``"PRODUCTION"`` or ``"SANDBOX"`` events; ``None`` if there is none."""
        if environment == "PRODUCTION":
            return CleverTapAccount(self.account_id, self.passcode)
        if (
            environment == "SANDBOX"
            and self.sandbox_account_id is not None
            and self.sandbox_passcode is not None
        ):
            return CleverTapAccount(self.sandbox_account_id, self.sandbox_passcode)
        return None


def _check_base_url(url: str) -> None:
    key = "clevertap.base_url"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(key, "must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise _fail(key, "must not have a query or a fragment")
    if parts.path.rstrip("/").endswith("/1"):
        raise _fail(key, "must not end with the /1 API version path; it is added per request")


@dataclass(frozen=True, kw_only=True)
class WebhookConfig:
    """How the receiver authenticates RevenueCat.

    ``authorization`` is the exact ``Authorization`` header value set in RevenueCat's dashboard
    (sent verbatim, revenuecat.md §4.1); ``None`` accepts unauthenticated webhooks.
    """

    authorization: Secret | None = None
    max_body_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        if self.authorization is not None and not self.authorization.reveal():
            raise _fail("webhook.authorization", "must not be empty; omit it to disable the check")
        _check_range("webhook", "max_body_bytes", self.max_body_bytes, 1)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """What ``rc-clevertap serve`` enforces on every connection before the app sees it.

    A request whose request line and headers exceed ``max_header_bytes`` or that carries more
    than ``max_headers`` headers is answered 431 and closed; headers not complete within
    ``header_timeout_s`` of the connection (or of a kept-alive request's first byte), and a
    body not complete within ``body_timeout_s`` of its headers, close the connection; an idle
    kept-alive connection closes after ``keep_alive_s``; a connection past
    ``max_connections`` open at once is answered 503 and closed.  See integration/app/limits.py.
    """

    max_header_bytes: int = 16_384
    max_headers: int = 100
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        s = "server"
        _check_range(s, "max_header_bytes", self.max_header_bytes, 1024)
        _check_range(s, "max_headers", self.max_headers, 8)
        _check_positive(s, "header_timeout_s", self.header_timeout_s)
        _check_positive(s, "body_timeout_s", self.body_timeout_s)
        _check_positive(s, "keep_alive_s", self.keep_alive_s)
        _check_range(s, "max_connections", self.max_connections, 1)


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    """Who may read ``GET /metrics``: anyone (``token`` unset) or a bearer of ``token``.

    The page shows the CleverTap account ids and the traffic counts; with ``token`` set it is
    answered only to ``Authorization: Bearer <token>``, 401 otherwise.
    """

    token: Secret | None = None

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.reveal():
            raise _fail("metrics.token", "must not be empty; omit it to leave /metrics open")


@dataclass(frozen=True, kw_only=True)
class EventNames:
    """CleverTap event name per integration event; ``""`` means "don't send".

    The defaults are RevenueCat's (revenuecat.md §5.1).  Subscription Paused is not part of
    RevenueCat's CleverTap integration, so it is off unless given a name.
    """

    initial_purchase: str = "rc_initial_purchase_event"
    trial_started: str = "rc_trial_started_event"
    trial_converted: str = "rc_trial_converted_event"
    trial_cancelled: str = "rc_trial_cancelled_event"
    renewal: str = "rc_renewal_event"
    cancellation: str = "rc_cancellation_event"
    uncancellation: str = "rc_uncancellation_event"
    non_subscription_purchase: str = "rc_non_subscription_purchase_event"
    expiration: str = "rc_expiration_event"
    billing_issue: str = "rc_billing_issue_event"
    product_change: str = "rc_product_change_event"
    subscription_paused: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            name: str = getattr(self, f.name)
            if name == "":
                continue
            key = f"events.{f.name}"
            if name != name.strip():
                raise _fail(key, "must not start or end with whitespace")
            if len(name) > _EVENT_NAME_MAX:
                raise _fail(key, f"must be at most {_EVENT_NAME_MAX} characters")
            if _EVENT_NAME_FORBIDDEN.search(name):
                raise _fail(key, "must not contain any of . : $ ' \" \\")
            if name in RESTRICTED_EVENT_NAMES or name == "Charged":
                raise _fail(key, f"{name!r} is a CleverTap system event name")


@dataclass(frozen=True, kw_only=True)
class RevenueConfig:
    """How ``amount`` is computed (see ``integration/revenue.py``)."""

    mode: RevenueMode = "gross"
    currency: RevenueCurrency = "purchased"
    refunds: RefundPolicy = "zero"

    def __post_init__(self) -> None:
        _check_choice("revenue", "mode", self.mode, get_args(RevenueMode))
        _check_choice("revenue", "currency", self.currency, get_args(RevenueCurrency))
        _check_choice("revenue", "refunds", self.refunds, get_args(RefundPolicy))


@dataclass(frozen=True, kw_only=True)
class ExtrasConfig:
    """Records beyond RevenueCat's own integration, all off by default.

    ``profile_records`` adds a profile record with the subscription state to each event;
    ``charged_event`` adds CleverTap's ``Charged`` event beside each revenue event;
    ``max_event_properties`` caps ``evtData`` (CleverTap's default per-event limit is 100,
    clevertap.md §1.3); ``attribute_allowlist``, when set, names the only subscriber attributes
    sent as properties.  CleverTap counts distinct properties per event *type*, across all
    users, so customers with many different custom attributes can push an event type past its
    limit (522) even when each record is small: list the attributes you segment on.
    """

    profile_records: bool = False
    charged_event: bool = False
    max_event_properties: int = 100
    attribute_allowlist: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_range("extras", "max_event_properties", self.max_event_properties, 1, 1000)
        if self.attribute_allowlist is not None and not all(
            isinstance(key, str) and key.strip() for key in self.attribute_allowlist
        ):
            raise _fail("extras.attribute_allowlist", "must hold non-empty attribute names")


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    """Where accepted webhooks wait: ``sqlite:///path.db`` or ``postgresql://...``."""

    url: str = field(default="sqlite:///rc-clevertap.db", repr=False)  # may hold a password
    retention_s: float = 7 * 86400.0
    lease_s: float = 60.0
    quarantine_cap: int = 10_000
    # PostgreSQL: how long a request waits for a pooled connection before it is answered 503,
    # well below the 60 s after which RevenueCat gives up on a webhook (revenuecat.md §4.1).
    pool_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        scheme = self.url.partition("://")[0]
        if scheme not in ("sqlite", "postgresql", "postgres") or "://" not in self.url:
            raise _fail("outbox.url", "must start with sqlite:/// or postgresql://")
        if scheme == "sqlite" and not self.url.removeprefix("sqlite://").startswith("/"):
            raise _fail("outbox.url", "must look like sqlite:///relative.db or sqlite:////abs.db")
        _check_positive("outbox", "retention_s", self.retention_s)
        _check_positive("outbox", "lease_s", self.lease_s)
        _check_range("outbox", "quarantine_cap", self.quarantine_cap, 1)
        _check_range("outbox", "pool_timeout_s", self.pool_timeout_s, 0.1, 30.0)

    def __repr__(self) -> str:
        return (
            f"OutboxConfig(url={redacted_url(self.url)!r}, retention_s={self.retention_s!r}, "
            f"lease_s={self.lease_s!r}, quarantine_cap={self.quarantine_cap!r}, "
            f"pool_timeout_s={self.pool_timeout_s!r})"
        )


def redacted_url(url: str) -> str:
    """A database URL with its password (in the authority or in the query) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = "&".join(
        f"{key}=***" if key == "password" else f"{key}={value}" if value else key
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@dataclass(frozen=True, kw_only=True)
class DispatcherConfig:
    """Batching, concurrency, retry and pause limits; CleverTap takes at most 1000 records per
    request and 15 concurrent requests per account (clevertap.md §1.3, §2).

    ``auth_pause_s`` is how long an account pauses after CleverTap refuses its credentials,
    doubling up to ``auth_pause_max_s`` while the refusals last; ``poll_s`` is how often an idle
    lane looks for rows that became due; ``shutdown_grace_s`` is how long a stopping dispatcher
    lets uploads in flight finish (real seconds).
    """

    batch_size: int = 1000
    linger_s: float = 0.05
    concurrency: int = 4
    max_age_s: float = 86400.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    auth_pause_s: float = 60.0
    auth_pause_max_s: float = 900.0
    poll_s: float = 1.0
    shutdown_grace_s: float = 10.0

    def __post_init__(self) -> None:
        s = "dispatcher"
        _check_range(s, "batch_size", self.batch_size, 1, 1000)
        _check_range(s, "linger_s", self.linger_s, 0)
        _check_range(s, "concurrency", self.concurrency, 1, CLEVERTAP_MAX_CONCURRENCY)
        _check_positive(s, "max_age_s", self.max_age_s)
        _check_positive(s, "backoff_initial_s", self.backoff_initial_s)
        _check_positive(s, "backoff_max_s", self.backoff_max_s)
        if self.backoff_max_s < self.backoff_initial_s:
            raise _fail(f"{s}.backoff_max_s", "must be at least dispatcher.backoff_initial_s")
        _check_positive(s, "auth_pause_s", self.auth_pause_s)
        _check_positive(s, "auth_pause_max_s", self.auth_pause_max_s)
        if self.auth_pause_max_s < self.auth_pause_s:
            raise _fail(f"{s}.auth_pause_max_s", "must be at least dispatcher.auth_pause_s")
        _check_positive(s, "poll_s", self.poll_s)
        _check_range(s, "shutdown_grace_s", self.shutdown_grace_s, 0)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; only ``clevertap`` has no defaults."""

    clevertap: CleverTapConfig
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    events: EventNames = field(default_factory=EventNames)
    revenue: RevenueConfig = field(default_factory=RevenueConfig)
    extras: ExtrasConfig = field(default_factory=ExtrasConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


_SECTIONS: dict[str, type[Any]] = {
    "clevertap": CleverTapConfig,
    "webhook": WebhookConfig,
    "events": EventNames,
    "revenue": RevenueConfig,
    "extras": ExtrasConfig,
    "outbox": OutboxConfig,
    "dispatcher": DispatcherConfig,
    "server": ServerConfig,
    "metrics": MetricsConfig,
}

# The kind of each field, read from its annotation (a string, given the __future__ import).
_KINDS = {
    "str": "str",
    "str | None": "str?",
    "Secret": "secret",
    "Secret | None": "secret?",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "tuple[str, ...] | None": "strs?",
    "Region": "str",
    "RevenueMode": "str",
    "RevenueCurrency": "str",
    "RefundPolicy": "str",
}


def _kind(annotation: object) -> str:
    return _KINDS[str(annotation)]  # a KeyError here means a new annotation needs an entry


def _fields(section: str) -> dict[str, str]:
    return {f.name: _kind(f.type) for f in dataclasses.fields(_SECTIONS[section])}


_TYPE_NAMES = {"str": "a string", "secret": "a string", "int": "an integer"}
_TYPE_NAMES |= {"float": "a number", "bool": "true or false", "strs": "a list of strings"}


def _convert(key: str, kind: str, value: object) -> object:
    """Check one TOML value's type; secrets are wrapped, never echoed."""
    base = kind.rstrip("?")
    ok = {
        "str": isinstance(value, str),
        "secret": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "strs": isinstance(value, list | tuple) and all(isinstance(v, str) for v in value),
    }[base]
    if not ok:
        raise _fail(key, f"must be {_TYPE_NAMES[base]}, got {type(value).__name__}")
    if base == "secret":
        return Secret(str(value))
    if base == "float":
        return float(value)  # type: ignore[arg-type]  # checked just above
    if base == "strs":
        return tuple(value)  # type: ignore[arg-type]  # checked just above
    return value


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    """Build a validated :class:`Config` from parsed TOML (a mapping of section tables)."""
    sections: dict[str, Any] = {}
    for section, table in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section [{section}]; known: {', '.join(_SECTIONS)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{section}] must be a table")
        kinds = _fields(section)
        values: dict[str, object] = {}
        for key, value in table.items():
            if key not in kinds:
                raise _fail(f"{section}.{key}", f"unknown key; known: {', '.join(kinds)}")
            values[key] = _convert(f"{section}.{key}", kinds[key], value)
        sections[section] = values
    if "clevertap" not in sections:
        raise ConfigError("[clevertap] is required: account_id and passcode at least")
    for required in ("account_id", "passcode"):
        if required not in sections["clevertap"]:
            raise _fail(f"clevertap.{required}", "is required")
    built = {name: _SECTIONS[name](**values) for name, values in sections.items()}
    return Config(**built)


def _env_value(var: str, kind: str, raw: str) -> object:
    base = kind.rstrip("?")
    if base in ("str", "secret"):
        return raw
    if base == "strs":  # comma-separated; an empty variable is an empty list
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if base == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}: must be true or false")
    try:
        return int(raw) if base == "int" else float(raw)
    except ValueError:
        raise ConfigError(f"{var}: must be {_TYPE_NAMES[base]}") from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, object]]:
    """``RC_CLEVERTAP_<SECTION>_<KEY>`` values, typed like TOML values.

    Variables under the prefix that name no section (e.g. ``RC_CLEVERTAP_TEST_POSTGRES_URL``) are
    someone else's and left alone; a known section with an unknown key is an error.
    """
    overrides: dict[str, dict[str, object]] = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_CONFIG_FILE:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1 :]
        kinds = _fields(section)
        if key not in kinds:
            raise ConfigError(f"{var}: unknown key {section}.{key}; known: {', '.join(kinds)}")
        overrides.setdefault(section, {})[key] = _env_value(var, kinds[key], raw)
    return overrides


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the TOML file at ``path`` (or ``$RC_CLEVERTAP_CONFIG``), then apply the environment.

    ``environ`` defaults to ``os.environ``; this is the only place the environment is read.
    Without a file, the environment alone must supply the required keys.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get(ENV_CONFIG_FILE):
        path = env[ENV_CONFIG_FILE]
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{os.fspath(path)}: no such configuration file") from None
        except OSError as exc:
            raise ConfigError(f"{os.fspath(path)}: cannot read: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{os.fspath(path)}: invalid TOML: {exc}") from None
    overrides = _env_overrides(env)
    for section, values in overrides.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
        data[section] = {**table, **values}
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        # Name the variable when the refused value came from the environment.
        for section, values in overrides.items():
            for key in values:
                if str(exc).startswith(f"{section}.{key}:"):
                    var = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
                    raise ConfigError(f"{exc} (set by {var})") from None
        raise
