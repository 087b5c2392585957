"""Configuration: one TOML file, overridden by ``RC_CLEVERTAP_<SECTION>_<KEY>`` variables.

Every default lives in the dataclasses below; every check runs in their ``__post_init__``, so a
:class:`Config` built in Python is validated exactly like one read from a file.  The environment
is read in one place only, :func:`load_config`.

Errors are one :class:`ConfigError` (a ``ValueError``) carrying every problem found, each naming
the key (``revenue.mode``) or the environment variable (``RC_CLEVERTAP_REVENUE_MODE``) at fault,
so that an operator fixes them in one go.  Secret values (the passcodes and the webhook
``Authorization`` value) are wrapped in :class:`Secret` and never appear in a repr, a ``str`` or
an error message.  A list in a variable is a JSON array (``["$email", "plan"]``) or
comma-separated (``$email,plan``); a table takes one variable per entry
(``RC_CLEVERTAP_EVENTS_STORES_RENEWAL`` sets ``[events.stores] renewal``).  Commands that
never call CleverTap load the configuration with ``require_clevertap=False`` and run without
its credentials.

The commented reference configuration, :func:`example_config`, is ``config.example.toml``
beside this module (``rc-clevertap config example`` prints it).

Example::

    config = load_config("rc-clevertap.toml")  # then RC_CLEVERTAP_CLEVERTAP_PASSCODE=... wins
    account = config.clevertap.account_for("SANDBOX")  # None when no sandbox account is set
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from integration._exceptions import ConfigError

__all__ = [
    "AdminConfig",
    "BudgetConfig",
    "CleverTapAccount",
    "CleverTapConfig",
    "Config",
    "ConfigError",
    "DispatcherConfig",
    "EventNames",
    "EventStores",
    "ExtrasConfig",
    "IdentityConfig",
    "MetricsConfig",
    "OutboxConfig",
    "RevenueConfig",
    "RouteConfig",
    "Secret",
    "ServerConfig",
    "TransformConfig",
    "WebhookConfig",
    "config_from_mapping",
    "example_config",
    "load_config",
]

Region = Literal["eu1", "in1", "us1", "sg1", "aps3", "mec1", "sk1"]
RevenueMode = Literal["gross", "after_store_commission", "after_store_commission_and_taxes"]
RevenueCurrency = Literal["purchased", "usd"]
RefundPolicy = Literal["zero", "negative"]
# [identity] (see IdentityConfig) and [events] stores (see EventStores).
ClevertapIdAs = Literal["objectId", "identity", "none"]
IdentityFallback = Literal["app_user_id", "original_app_user_id"]
AnonymousPolicy = Literal["send", "alias", "skip"]
# The webhook's `store` values (revenuecat.md §4.3).
Store = Literal[
    "AMAZON", "APP_STORE", "MAC_APP_STORE", "PADDLE", "PLAY_STORE", "PROMOTIONAL", "RC_BILLING",
    "ROKU", "STRIPE", "TEST_STORE",
]  # fmt: skip
STORES: tuple[str, ...] = get_args(Store)

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
# What config_from_mapping(require_clevertap=False) puts where no account id was given.
UNCONFIGURED_ACCOUNT_ID = "(not configured)"


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


class _UnsetSecret(Secret):
    """Stands in for a credential that a command does not use: revealing it is an error, so a
    configuration loaded without credentials can never send a request with a blank one."""

    __slots__ = ("_key",)
    _key: str

    def __init__(self, key: str) -> None:
        super().__init__("")
        object.__setattr__(self, "_key", key)

    def reveal(self) -> str:
        raise ConfigError(f"{self._key}: is required to call CleverTap")

    def __reduce__(self) -> tuple[type[_UnsetSecret], tuple[str]]:
        return (_UnsetSecret, (self._key,))


def _is_empty(secret: Secret) -> bool:
    return not isinstance(secret, _UnsetSecret) and not secret.reveal()


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


class _Problems:
    """Every problem of one value object, raised together so an operator fixes them in one go.

    >>> problems = _Problems("dispatcher")
    >>> problems.positive("poll_s", 0)
    >>> problems.messages
    ['dispatcher.poll_s: must be greater than 0, got 0']
    """

    def __init__(self, section: str) -> None:
        self.section = section
        self.messages: list[str] = []

    def add(self, name: str, message: str) -> None:
        self.messages.append(f"{self.section}.{name}: {message}")

    def range(self, name: str, value: float, low: float | None, high: float | None = None) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                self.add(name, f"must be at least {low}, got {value}")
            else:
                self.add(name, f"must be between {low} and {high}, got {value}")

    def positive(self, name: str, value: float) -> None:
        if not value > 0:  # also refuses NaN
            self.add(name, f"must be greater than 0, got {value}")

    def choice(self, name: str, value: str, choices: tuple[str, ...]) -> None:
        if value not in choices:
            self.add(name, f"must be one of {', '.join(choices)}; got {value!r}")

    def raise_any(self) -> None:
        if self.messages:
            raise ConfigError(*self.messages)


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
        problems = _Problems("clevertap")
        if not self.account_id.strip():
            problems.add("account_id", "must not be empty")
        if _is_empty(self.passcode):
            problems.add("passcode", "must not be empty")
        problems.choice("region", self.region, REGIONS)
        if self.base_url is not None and (problem := _base_url_problem(self.base_url)):
            problems.add("base_url", problem)
        if self.sandbox_account_id is not None and not self.sandbox_account_id.strip():
            problems.add("sandbox_account_id", "must not be empty; omit it instead")
        if self.sandbox_passcode is not None and _is_empty(self.sandbox_passcode):
            problems.add("sandbox_passcode", "must not be empty; omit it instead")
        if (self.sandbox_account_id is None) != (self.sandbox_passcode is None):
            problems.messages.append(
                "clevertap.sandbox_account_id and clevertap.sandbox_passcode must be set together"
            )
        problems.positive("timeout_s", self.timeout_s)
        problems.raise_any()

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


def _base_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    if parts.path.rstrip("/").endswith("/1"):
        return "must not end with the /1 API version path; it is added per request"
    return None


@dataclass(frozen=True, kw_only=True)
class WebhookConfig:
    """How the receiver authenticates RevenueCat.

    ``authorization`` is the exact ``Authorization`` header value set in RevenueCat's dashboard
    (sent verbatim, revenuecat.md §4.1); ``None`` accepts unauthenticated webhooks.
    """

    authorization: Secret | None = None
    max_body_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        problems = _Problems("webhook")
        if self.authorization is not None and _is_empty(self.authorization):
            problems.add("authorization", "must not be empty; omit it to disable the check")
        problems.range("max_body_bytes", self.max_body_bytes, 1)
        problems.raise_any()


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
        problems = _Problems("server")
        problems.range("max_header_bytes", self.max_header_bytes, 1024)
        problems.range("max_headers", self.max_headers, 8)
        problems.positive("header_timeout_s", self.header_timeout_s)
        problems.positive("body_timeout_s", self.body_timeout_s)
        problems.positive("keep_alive_s", self.keep_alive_s)
        problems.range("max_connections", self.max_connections, 1)
        problems.raise_any()


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    """Who may read ``GET /metrics``: anyone (``token`` unset) or a bearer of ``token``.

    The page shows the CleverTap account ids and the traffic counts; with ``token`` set it is
    answered only to ``Authorization: Bearer <token>``, 401 otherwise.
    """

    token: Secret | None = None

    def __post_init__(self) -> None:
        if self.token is not None and _is_empty(self.token):
            raise _fail("metrics.token", "must not be empty; omit it to leave /metrics open")


@dataclass(frozen=True, kw_only=True)
class AdminConfig:
    """Who may open the delivery dashboard at ``/ui``: nobody (``token`` unset) or a holder of
    ``token``.

    Without a token ``/ui`` and its JSON API answer 404; the webhook endpoint never depends on
    it.  The token is separate from ``webhook.authorization`` and ``metrics.token``: the
    dashboard shows subscriber attributes and can requeue, discard and replay events.
    """

    token: Secret | None = None
    session_s: float = 8 * 3600.0  # how long a login lasts

    def __post_init__(self) -> None:
        if self.token is not None and _is_empty(self.token):
            raise _fail("admin.token", "must not be empty; omit it to turn the dashboard off")
        if self.token is not None and len(self.token.reveal()) < 16:
            raise _fail("admin.token", "must be at least 16 characters (it guards the dashboard)")
        problems = _Problems("admin")
        problems.positive("session_s", self.session_s)
        problems.raise_any()


def _all_stores_but(*excluded: str) -> frozenset[str]:
    return frozenset(STORES).difference(excluded)


@dataclass(frozen=True, kw_only=True)
class EventStores:
    """The stores whose events are forwarded, per integration event (``[events.stores]``).

    The defaults are RevenueCat's CleverTap support matrix (revenuecat.md §5.1, columns App
    Store, Play Store, Amazon, Stripe, Promo): promotional grants are not sent as purchases,
    trials, renewals or billing issues, Stripe sends no uncancellation and Amazon no product
    change.  ``MAC_APP_STORE`` follows the App Store column (INFERRED).  ``PADDLE``,
    ``RC_BILLING``, ``ROKU`` and ``TEST_STORE`` are not in the matrix; they are forwarded for
    every event, as before stores were configurable (UNCONFIRMED what RevenueCat does).  An
    event whose ``store`` is missing or one this release does not know is forwarded (mapping).

    >>> "PROMOTIONAL" in EventStores().renewal
    False
    """

    initial_purchase: frozenset[str] = _all_stores_but("PROMOTIONAL")
    trial_started: frozenset[str] = _all_stores_but("PROMOTIONAL")
    trial_converted: frozenset[str] = _all_stores_but("PROMOTIONAL")
    trial_cancelled: frozenset[str] = _all_stores_but("PROMOTIONAL")
    renewal: frozenset[str] = _all_stores_but("PROMOTIONAL")
    cancellation: frozenset[str] = _all_stores_but()
    uncancellation: frozenset[str] = _all_stores_but("STRIPE", "PROMOTIONAL")
    non_subscription_purchase: frozenset[str] = _all_stores_but()
    expiration: frozenset[str] = _all_stores_but()
    billing_issue: frozenset[str] = _all_stores_but("PROMOTIONAL")
    product_change: frozenset[str] = _all_stores_but("AMAZON", "PROMOTIONAL")
    subscription_paused: frozenset[str] = _all_stores_but()  # not in the matrix (Play only)

    def __post_init__(self) -> None:
        problems = _Problems("events.stores")
        for f in dataclasses.fields(self):
            unknown = sorted(getattr(self, f.name) - frozenset(STORES))
            if unknown:
                problems.add(f.name, f"unknown store {unknown[0]!r}; known: {', '.join(STORES)}")
        problems.raise_any()

    @classmethod
    def from_table(cls, key: str, table: object) -> EventStores:
        """The rules from a TOML table ``{integration event: [store, ...]}``; events it does
        not name keep their defaults."""
        if not isinstance(table, Mapping):
            raise _fail(key, "must be a table of integration event = [store, ...]")
        events = [f.name for f in dataclasses.fields(cls)]
        problems: list[str] = []
        values: dict[str, frozenset[str]] = {}
        for event, stores in table.items():
            if event not in events:
                problems.append(
                    f"{key}.{event}: unknown integration event; known: {', '.join(events)}"
                )
            elif not isinstance(stores, list | tuple) or not all(
                isinstance(store, str) for store in stores
            ):
                problems.append(f"{key}.{event}: must be a list of store names")
            else:
                values[event] = frozenset(stores)
        try:
            rules = cls(**values)
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(*problems)
        return rules


@dataclass(frozen=True, kw_only=True)
class EventNames:
    """CleverTap event name per integration event; ``""`` means "don't send".

    The defaults are RevenueCat's (revenuecat.md §5.1).  Subscription Paused is not part of
    RevenueCat's CleverTap integration, so it is off unless given a name.  ``stores`` says
    which stores' events are forwarded (:class:`EventStores`).
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
    stores: EventStores = field(default_factory=EventStores)

    def __post_init__(self) -> None:
        problems = _Problems("events")
        for f in dataclasses.fields(self):
            if f.name == "stores":
                continue
            name: str = getattr(self, f.name)
            if name == "":
                continue
            if name != name.strip():
                problems.add(f.name, "must not start or end with whitespace")
            elif len(name) > _EVENT_NAME_MAX:
                problems.add(f.name, f"must be at most {_EVENT_NAME_MAX} characters")
            elif _EVENT_NAME_FORBIDDEN.search(name):
                problems.add(f.name, "must not contain any of . : $ ' \" \\")
            elif name in RESTRICTED_EVENT_NAMES or name == "Charged":
                problems.add(f.name, f"{name!r} is a CleverTap system event name")
        problems.raise_any()


@dataclass(frozen=True, kw_only=True)
class IdentityConfig:
    """Which CleverTap user an event is sent to (``[identity]``; README, "How events are mapped").

    ``clevertap_id_as``: where a usable ``$clevertapId`` attribute goes: ``objectId`` (the
    seed's sample, RevenueCat's Uncancellation sample), ``identity``, or ``none``: not used to
    address the record, as four of RevenueCat's samples show (it still rides in ``evtData``).
    ``fallback``: the id sent as ``identity`` otherwise: ``app_user_id`` (the seed's text) or
    ``original_app_user_id`` (what every RevenueCat sample carries).  ``anonymous``: what to do
    when that id is anonymous (``$RCAnonymousID:...``, a purchase before ``logIn()``): ``send``
    it as RevenueCat does, prefer the first non-anonymous id among the event's ``aliases``
    (``alias``; the anonymous id when there is none), or ``skip`` the event with a reason.
    """

    clevertap_id_as: ClevertapIdAs = "objectId"
    fallback: IdentityFallback = "app_user_id"
    anonymous: AnonymousPolicy = "send"

    def __post_init__(self) -> None:
        problems = _Problems("identity")
        problems.choice("clevertap_id_as", self.clevertap_id_as, get_args(ClevertapIdAs))
        problems.choice("fallback", self.fallback, get_args(IdentityFallback))
        problems.choice("anonymous", self.anonymous, get_args(AnonymousPolicy))
        problems.raise_any()


@dataclass(frozen=True, kw_only=True)
class RevenueConfig:
    """How ``amount`` is computed (see ``integration/revenue.py``)."""

    mode: RevenueMode = "gross"
    currency: RevenueCurrency = "purchased"
    refunds: RefundPolicy = "zero"

    def __post_init__(self) -> None:
        problems = _Problems("revenue")
        problems.choice("mode", self.mode, get_args(RevenueMode))
        problems.choice("currency", self.currency, get_args(RevenueCurrency))
        problems.choice("refunds", self.refunds, get_args(RefundPolicy))
        problems.raise_any()


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
        problems = _Problems("extras")
        problems.range("max_event_properties", self.max_event_properties, 1, 1000)
        if self.attribute_allowlist is not None and not all(
            isinstance(key, str) and key.strip() for key in self.attribute_allowlist
        ):
            problems.add("attribute_allowlist", "must hold non-empty attribute names")
        problems.raise_any()


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """CleverTap's limit of distinct properties per event name, over all its uploads.

    CleverTap allows 100 by default, configurable per account (clevertap.md §1.3, code 522
    beyond it).  ``max_event_properties_per_name`` is the budget of distinct ``evtData`` keys
    kept per event name for the production account, ``sandbox_max_event_properties_per_name``
    the sandbox account's (the production value when unset); ``context_properties`` sends the
    fixed context keys (``store``, ``environment``, ``period_type``, ``transaction_id``,
    ``entitlement_ids``, ``country_code``, ``renewal_number``), on by default; turned off,
    their share of the budget goes to subscriber attributes.  See integration/budget.py.
    """

    max_event_properties_per_name: int = 100
    sandbox_max_event_properties_per_name: int | None = None
    context_properties: bool = True

    def __post_init__(self) -> None:
        problems = _Problems("budget")
        problems.range("max_event_properties_per_name", self.max_event_properties_per_name, 1)
        if self.sandbox_max_event_properties_per_name is not None:
            problems.range(
                "sandbox_max_event_properties_per_name",
                self.sandbox_max_event_properties_per_name,
                1,
            )
        problems.raise_any()

    def limit_for(self, environment: str) -> int:
        """The budget of the account that ``environment``'s events go to."""
        sandbox = self.sandbox_max_event_properties_per_name
        if environment == "SANDBOX" and sandbox is not None:
            return sandbox
        return self.max_event_properties_per_name


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
        problems = _Problems("outbox")
        scheme = self.url.partition("://")[0]
        if scheme not in ("sqlite", "postgresql", "postgres") or "://" not in self.url:
            problems.add("url", "must start with sqlite:/// or postgresql://")
        elif scheme == "sqlite" and not self.url.removeprefix("sqlite://").startswith("/"):
            problems.add("url", "must look like sqlite:///relative.db or sqlite:////abs.db")
        problems.positive("retention_s", self.retention_s)
        problems.positive("lease_s", self.lease_s)
        problems.range("quarantine_cap", self.quarantine_cap, 1)
        problems.range("pool_timeout_s", self.pool_timeout_s, 0.1, 30.0)
        problems.raise_any()

    def __repr__(self) -> str:
        return (
            f"OutboxConfig(url={redacted_url(self.url)!r}, retention_s={self.retention_s!r}, "
            f"lease_s={self.lease_s!r}, quarantine_cap={self.quarantine_cap!r}, "
            f"pool_timeout_s={self.pool_timeout_s!r})"
        )


def redacted_url(url: str) -> str:
    """A database URL with its password (in the authority or in the query) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and "password" not in dict(parse_qsl(parts.query)):
        # Nothing to hide: the URL as written.  urlunsplit would turn sqlite:///x.db (an
        # empty authority) into sqlite:/x.db, which names another file.
        return url
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = "&".join(
        f"{key}=***" if key == "password" else f"{key}={value}" if value else key
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# "package.module:function" (dotted attributes after the colon allowed: "pkg.mod:Class.method").
_CALLABLE_REF = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


@dataclass(frozen=True, kw_only=True)
class TransformConfig:
    """A function of yours that sees, changes or drops each event's CleverTap records
    (``[transform]``, overridable per route; see integration/transform.py).

    ``callable`` is ``"package.module:function"``, imported at start-up; ``timeout_s`` is how
    long one batch's transforms may take together: an event whose transform has not returned
    by then is dead-lettered with the reason ``transform timed out``.
    """

    callable: str | None = None
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        problems = _Problems("transform")
        if self.callable is not None and not _CALLABLE_REF.match(self.callable):
            problems.add(
                "callable", f'must look like "package.module:function", got {self.callable!r}'
            )
        problems.positive("timeout_s", self.timeout_s)
        problems.raise_any()


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
        problems = _Problems("dispatcher")
        problems.range("batch_size", self.batch_size, 1, 1000)
        problems.range("linger_s", self.linger_s, 0)
        problems.range("concurrency", self.concurrency, 1, CLEVERTAP_MAX_CONCURRENCY)
        problems.positive("max_age_s", self.max_age_s)
        problems.positive("backoff_initial_s", self.backoff_initial_s)
        problems.positive("backoff_max_s", self.backoff_max_s)
        if self.backoff_max_s < self.backoff_initial_s:
            problems.add("backoff_max_s", "must be at least dispatcher.backoff_initial_s")
        problems.positive("auth_pause_s", self.auth_pause_s)
        problems.positive("auth_pause_max_s", self.auth_pause_max_s)
        if self.auth_pause_max_s < self.auth_pause_s:
            problems.add("auth_pause_max_s", "must be at least dispatcher.auth_pause_s")
        problems.positive("poll_s", self.poll_s)
        problems.range("shutdown_grace_s", self.shutdown_grace_s, 0)
        problems.raise_any()


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; only ``clevertap`` has no defaults."""

    clevertap: CleverTapConfig
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    events: EventNames = field(default_factory=EventNames)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    revenue: RevenueConfig = field(default_factory=RevenueConfig)
    extras: ExtrasConfig = field(default_factory=ExtrasConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    dispatcher: DispatcherConfig = field(default_factory=DispatcherConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    # [[routes]] (issue 16): each a name, how webhooks reach it and its own full Config.
    routes: tuple[RouteConfig, ...] = ()
    # Whether [clevertap] names an account: the implicit route "default" exists.  False only
    # when [[routes]] are configured and [clevertap] gives neither account_id nor passcode.
    default_route: bool = True

    def __post_init__(self) -> None:
        # clevertap.timeout_s is each upload's whole-request deadline; a lease ending first
        # would let another worker lease the rows and send them again while it still runs.
        lease_s, timeout_s = self.outbox.lease_s, self.clevertap.timeout_s
        if not lease_s > timeout_s:
            raise ConfigError(
                f"outbox.lease_s: must be greater than clevertap.timeout_s ({timeout_s:g}), "
                f"got {lease_s:g}: an upload still running when its lease ends is sent twice"
            )


#: The implicit route of the top-level [clevertap] account (today's single-account setup).
DEFAULT_ROUTE = "default"
# A route's name is a metrics label value and part of its variables' names.
_ROUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# A route's path is one URL segment under /webhooks/revenuecat/ (RFC 3986 unreserved chars).
_ROUTE_PATH = re.compile(r"[A-Za-z0-9._~-]{1,64}\Z")
# The keys of one [[routes]] table, and the sections it may override (inheriting the top level).
_ROUTE_KEYS = ("name", "path", "authorization", "app_ids", "environments", "account")
_ROUTE_SECTIONS = ("clevertap", "events", "identity", "revenue", "extras", "budget", "transform")
# What a route's [routes.clevertap] inherits from [clevertap]: where the API is, not whose.
_ROUTE_INHERITED_CLEVERTAP = ("region", "base_url", "timeout_s")
_ENVIRONMENTS = ("PRODUCTION", "SANDBOX")  # as integration.webhook.ENVIRONMENTS


@dataclass(frozen=True, kw_only=True)
class RouteConfig:
    """One ``[[routes]]`` entry: how webhooks reach it and the configuration they get.

    ``path`` is the URL segment it claims (``/webhooks/revenuecat/<path>``, answered only with
    ``authorization``, or ``[webhook] authorization`` when it has none); ``app_ids`` and
    ``environments`` are what it takes on the shared path ``/webhooks/revenuecat``.  ``config``
    is the route's whole :class:`Config`: its CleverTap account(s), and the top level's
    ``[events]``, ``[identity]``, ``[revenue]``, ``[extras]``, ``[budget]`` and ``[transform]``
    with the route's own keys over them.  ``transform_key`` names the key its transform came
    from (for start-up errors).
    """

    name: str
    path: str | None = None
    authorization: Secret | None = None
    app_ids: tuple[str, ...] = ()
    environments: tuple[str, ...] = _ENVIRONMENTS
    account: str | None = None  # the route (or "default") whose CleverTap accounts it shares
    config: Config
    transform_key: str = "transform.callable"

    def __repr__(self) -> str:
        return (
            f"RouteConfig(name={self.name!r}, path={self.path!r}, app_ids={self.app_ids!r}, "
            f"environments={self.environments!r}, account_id={self.config.clevertap.account_id!r})"
        )


_SECTIONS: dict[str, type[Any]] = {
    "clevertap": CleverTapConfig,
    "webhook": WebhookConfig,
    "events": EventNames,
    "identity": IdentityConfig,
    "revenue": RevenueConfig,
    "extras": ExtrasConfig,
    "budget": BudgetConfig,
    "outbox": OutboxConfig,
    "dispatcher": DispatcherConfig,
    "server": ServerConfig,
    "metrics": MetricsConfig,
    "admin": AdminConfig,
    "transform": TransformConfig,
}

# The kind of each field, read from its annotation (a string, given the __future__ import).
_KINDS = {
    "str": "str",
    "str | None": "str?",
    "Secret": "secret",
    "Secret | None": "secret?",
    "int": "int",
    "int | None": "int?",
    "float": "float",
    "bool": "bool",
    "tuple[str, ...] | None": "strs?",
    "Region": "str",
    "RevenueMode": "str",
    "RevenueCurrency": "str",
    "RefundPolicy": "str",
    "ClevertapIdAs": "str",
    "IdentityFallback": "str",
    "AnonymousPolicy": "str",
    "EventStores": "stores",  # a table: [events.stores]
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
    if base == "stores":
        return EventStores.from_table(key, value)
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


RequireCleverTap = bool | Literal["account"]


def config_from_mapping(
    data: Mapping[str, Any], *, require_clevertap: RequireCleverTap = True
) -> Config:
    """Build a validated :class:`Config` from parsed TOML (a mapping of section tables).

    ``require_clevertap`` is what the caller needs of ``[clevertap]``: ``True`` (anything that
    uploads) the account id and passcode; ``"account"`` (``rc-clevertap map``) the account ids
    only; ``False`` (commands that only read or change the outbox) neither.  A credential not
    required and not given is a stand-in that raises :class:`ConfigError` when revealed, and a
    missing account id becomes :data:`UNCONFIGURED_ACCOUNT_ID`.  With ``[[routes]]``,
    ``[clevertap]`` may give no account at all (then there is no route ``default``); each
    route's own account is required in the same way.  Every problem is raised at once.
    """
    problems: list[str] = []
    sections: dict[str, dict[str, object]] = {}
    route_tables = data.get("routes")
    for section, table in data.items():
        if section == "routes":
            continue
        if section not in _SECTIONS:
            known = ", ".join([*_SECTIONS, "[routes]"])
            problems.append(f"unknown section [{section}]; known: {known}")
            continue
        if not isinstance(table, Mapping):
            problems.append(f"[{section}] must be a table")
            continue
        sections[section], found = _convert_table(section, table)
        problems += found
    clevertap = sections.setdefault("clevertap", {})
    # With routes, a [clevertap] naming no account means: no route "default".
    default_route = route_tables is None or "account_id" in clevertap or "passcode" in clevertap
    missing = _complete_credentials(clevertap, require_clevertap if default_route else False)
    if missing:
        problems += missing
        del sections["clevertap"]  # cannot be built without them
    built: dict[str, Any] = {}
    for name, values in sections.items():
        try:
            built[name] = _SECTIONS[name](**values)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(*problems)
    config = Config(**built, default_route=default_route)
    if route_tables is None:
        return config
    routes = _routes(route_tables, data, config, require_clevertap)
    return dataclasses.replace(config, routes=routes)


def _convert_table(
    section: str, table: Mapping[str, object], prefix: str = ""
) -> tuple[dict[str, object], list[str]]:
    """One section's TOML values, typed (see :func:`_convert`), and the problems found."""
    kinds = _fields(section)
    values: dict[str, object] = {}
    problems: list[str] = []
    for key, value in table.items():
        if key not in kinds:
            problems.append(f"{prefix}{section}.{key}: unknown key; known: {', '.join(kinds)}")
            continue
        try:
            values[key] = _convert(f"{prefix}{section}.{key}", kinds[key], value)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return values, problems


def _complete_credentials(
    values: dict[str, object],
    require: RequireCleverTap,
    *,
    section: str = "clevertap",
    var_prefix: str = f"{ENV_PREFIX}CLEVERTAP_",
) -> list[str]:
    """The required CleverTap keys that are missing; stand-ins for those not required."""
    missing: list[str] = []
    for key in ("account_id", "passcode"):
        if key in values:
            continue
        if require is True or (require == "account" and key == "account_id"):
            var = f"{var_prefix}{key.upper()}"
            missing.append(f"{section}.{key}: is required (in the file or as {var})")
        elif key == "account_id":
            values[key] = UNCONFIGURED_ACCOUNT_ID
        else:
            values[key] = _UnsetSecret(f"{section}.passcode")
    if require is not True and "sandbox_account_id" in values:
        values.setdefault("sandbox_passcode", _UnsetSecret(f"{section}.sandbox_passcode"))
    return missing


def _route_var(name: str) -> str:
    return f"{ENV_PREFIX}ROUTES_{name.upper()}_"


def _routes(
    tables: object, data: Mapping[str, Any], top: Config, require: RequireCleverTap
) -> tuple[RouteConfig, ...]:
    """Every ``[[routes]]`` entry as a :class:`RouteConfig` on top of ``top``, checked alone
    and against each other (names, paths and app ids claimed once; accounts known)."""
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError("routes: must be an array of tables: [[routes]] name = ...")
    problems: list[str] = []
    routes: list[RouteConfig] = []
    for index, table in enumerate(tables, 1):
        name = table.get("name")
        if not isinstance(name, str) or not _ROUTE_NAME.match(name):
            problems.append(
                f"routes[{index}].name: must be lowercase letters, digits and _, starting with "
                f"a letter, at most 32 characters; got {name!r}"
            )
        elif name == DEFAULT_ROUTE:
            problems.append(
                f"routes.{name}.name: {DEFAULT_ROUTE!r} is the top-level [clevertap] account's "
                "route; choose another name"
            )
        elif any(route.name == name for route in routes):
            problems.append(f"routes.{name}.name: two routes are named {name!r}")
        else:
            try:
                routes.append(_route(name, table, data, top, require))
            except ConfigError as exc:
                problems.extend(exc.problems)
    routes = _shared_accounts(routes, top, problems)
    _claims(routes, problems)
    if problems:
        raise ConfigError(*problems)
    return tuple(routes)


def _route(
    name: str, table: Mapping[str, Any], data: Mapping[str, Any], top: Config, require: Any
) -> RouteConfig:
    key = f"routes.{name}"
    problems: list[str] = []
    for unknown in sorted(set(table) - {*_ROUTE_KEYS, *_ROUTE_SECTIONS}):
        known = ", ".join([*_ROUTE_KEYS, *_ROUTE_SECTIONS])
        problems.append(f"{key}.{unknown}: unknown key; known: {known}")
    path = table.get("path")
    if path is not None and (not isinstance(path, str) or not _ROUTE_PATH.match(path)):
        problems.append(
            f"{key}.path: must be one URL segment (letters, digits, . _ ~ -), the route then "
            f"answers /webhooks/revenuecat/<path>; got {path!r}"
        )
    authorization = table.get("authorization")
    if authorization is not None and (not isinstance(authorization, str) or not authorization):
        problems.append(f"{key}.authorization: must be a non-empty string")
    app_ids = table.get("app_ids", [])
    if not isinstance(app_ids, list) or not all(isinstance(a, str) and a for a in app_ids):
        problems.append(f"{key}.app_ids: must be a list of RevenueCat app ids")
        app_ids = []
    environments = table.get("environments", list(_ENVIRONMENTS))
    if (
        not isinstance(environments, list)
        or not environments
        or not set(environments) <= set(_ENVIRONMENTS)
    ):
        problems.append(f"{key}.environments: must be a list of PRODUCTION and/or SANDBOX")
        environments = list(_ENVIRONMENTS)
    if path is None and not app_ids:
        problems.append(f"{key}: claims no webhooks: give it a path, app_ids, or both")
    account = table.get("account")
    if account is not None and not isinstance(account, str):
        problems.append(f"{key}.account: must be the name of another route, or {DEFAULT_ROUTE!r}")
    if account is not None and "clevertap" in table:
        problems.append(
            f"{key}.account: a route shares another route's account or has its own "
            f"[{key}.clevertap], not both"
        )
    overrides: dict[str, Any] = {}
    for section in _ROUTE_SECTIONS:
        own = table.get(section)
        if section == "clevertap" and account is not None:
            continue  # the shared account is filled in by _shared_accounts
        if own is None and section != "clevertap":
            continue  # inherited as the top level built it
        own = {} if own is None else own
        if not isinstance(own, Mapping):
            problems.append(f"{key}.{section}: must be a table")
            continue
        top_table = data.get(section, {})
        if section == "clevertap":  # where the API is comes from the top; whose, never
            top_table = {k: v for k, v in top_table.items() if k in _ROUTE_INHERITED_CLEVERTAP}
        merged = _merged(top_table, own)
        values, found = _convert_table(section, merged, f"{key}.")
        if section == "clevertap":
            var_prefix = _route_var(name) + "CLEVERTAP_"
            found += _complete_credentials(
                values, require, section=f"{key}.clevertap", var_prefix=var_prefix
            )
        problems += found
        if found:
            continue
        try:
            overrides[section] = _SECTIONS[section](**values)
        except ConfigError as exc:
            problems += [f"{key}.{problem}" for problem in exc.problems]
    if problems:
        raise ConfigError(*problems)
    webhook = top.webhook
    if authorization is not None:
        webhook = dataclasses.replace(webhook, authorization=Secret(authorization))
    own_transform = table.get("transform")
    transform_key = (
        f"{key}.transform.callable"
        if isinstance(own_transform, Mapping) and "callable" in own_transform
        else "transform.callable"
    )
    try:
        config = dataclasses.replace(top, webhook=webhook, routes=(), **overrides)
    except ConfigError as exc:
        raise ConfigError(*(f"{key}: {problem}" for problem in exc.problems)) from None
    return RouteConfig(
        name=name,
        path=path,
        authorization=None if authorization is None else Secret(authorization),
        app_ids=tuple(app_ids),
        environments=tuple(environments),
        account=account,
        config=config,
        transform_key=transform_key,
    )


def _merged(top: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A route's section: the top level's keys with the route's over them (a table such as
    ``stores`` merged entry by entry)."""
    merged = dict(top)
    for name, value in own.items():
        old = merged.get(name)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[name] = {**old, **value}
        else:
            merged[name] = value
    return merged


def _shared_accounts(
    routes: list[RouteConfig], top: Config, problems: list[str]
) -> list[RouteConfig]:
    """Routes with ``account = "<route>"`` given that route's CleverTap accounts."""
    owners = {route.name: route.config.clevertap for route in routes if route.account is None}
    if top.default_route:
        owners[DEFAULT_ROUTE] = top.clevertap
    resolved: list[RouteConfig] = []
    for route in routes:
        if route.account is None:
            resolved.append(route)
            continue
        clevertap = owners.get(route.account)
        if clevertap is None:
            known = ", ".join(owners) or "none: no route has its own [routes.<name>.clevertap]"
            problems.append(
                f"routes.{route.name}.account: unknown account {route.account!r}; known: {known}"
            )
            continue
        config = dataclasses.replace(route.config, clevertap=clevertap)
        resolved.append(dataclasses.replace(route, config=config))
    return resolved


def _claims(routes: Sequence[RouteConfig], problems: list[str]) -> None:
    """Two routes may not claim one path, nor one app id in one environment."""
    paths: dict[str, str] = {}
    apps: dict[tuple[str, str], str] = {}
    for route in routes:
        if route.path is not None:
            other = paths.setdefault(route.path, route.name)
            if other != route.name:
                problems.append(
                    f"routes.{route.name}.path: {route.path!r} is claimed by route {other!r} too"
                )
        for app_id in route.app_ids:
            for environment in route.environments:
                other = apps.setdefault((app_id, environment), route.name)
                if other != route.name:
                    problems.append(
                        f"routes.{route.name}.app_ids: {app_id!r} ({environment}) is claimed "
                        f"by route {other!r} too"
                    )
                    break


def _env_list(var: str, raw: str) -> tuple[str, ...]:
    """A list from one variable: a JSON array of strings when it starts with ``[``
    (``["$email", "plan"]``), else comma-separated (``$email,plan``); empty is an empty list."""
    text = raw.strip()
    if not text.startswith("["):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{var}: invalid JSON array: {exc.msg} at character {exc.pos}") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{var}: must be a JSON array of strings")
    return tuple(items)


def _env_value(var: str, kind: str, raw: str) -> object:
    base = kind.rstrip("?")
    if base in ("str", "secret"):
        return raw
    if base == "strs":
        return _env_list(var, raw)
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


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, object]], list[str]]:
    """``RC_CLEVERTAP_<SECTION>_<KEY>`` values, typed like TOML values, and the problems found.

    Variables under the prefix that name no section (e.g. ``RC_CLEVERTAP_TEST_POSTGRES_URL``) are
    someone else's and left alone; a known section with an unknown key is an error.
    """
    overrides: dict[str, dict[str, object]] = {}
    problems: list[str] = []
    for var, raw in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX) or var == ENV_CONFIG_FILE:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1 :]
        kinds = _fields(section)
        # A table field takes one variable per entry: RC_CLEVERTAP_EVENTS_STORES_RENEWAL.
        table = next((n for n, k in kinds.items() if k == "stores" and key.startswith(n + "_")), "")
        if table:
            entries = overrides.setdefault(section, {}).setdefault(table, {})
            assert isinstance(entries, dict)
            try:
                entries[key[len(table) + 1 :]] = list(_env_list(var, raw))
            except ConfigError as exc:
                problems.extend(exc.problems)
            continue
        if key not in kinds:
            problems.append(f"{var}: unknown key {section}.{key}; known: {', '.join(kinds)}")
            continue
        try:
            overrides.setdefault(section, {})[key] = _env_value(var, kinds[key], raw)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return overrides, problems


def _route_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Apply ``RC_CLEVERTAP_ROUTES_<NAME>_AUTHORIZATION`` and
    ``RC_CLEVERTAP_ROUTES_<NAME>_CLEVERTAP_<KEY>`` to the file's ``[[routes]]`` tables (a
    route's secrets belong in the environment); the problems found.  A variable cannot add a
    route: one naming no route of the file is an error."""
    prefix = f"{ENV_PREFIX}ROUTES_"
    found = sorted((var, raw) for var, raw in environ.items() if var.startswith(prefix))
    if not found:
        return []
    tables = data.get("routes")
    named: dict[str, dict[str, Any]] = {}
    if isinstance(tables, list):
        for table in tables:
            if isinstance(table, dict) and isinstance(table.get("name"), str):
                named[table["name"].upper()] = table
    kinds = _fields("clevertap")
    problems: list[str] = []
    for var, raw in found:
        rest = var[len(prefix) :]
        longest_first = sorted(named, key=len, reverse=True)
        name = next((n for n in longest_first if rest.startswith(n + "_")), None)
        if name is None:
            known = ", ".join(sorted(named)) or "none"
            problems.append(f"{var}: names no [[routes]] entry of the file; routes: {known}")
            continue
        key = rest[len(name) + 1 :].lower()
        table = named[name]
        entry = key.removeprefix("clevertap_")
        if key == "authorization":
            table["authorization"] = raw
        elif key.startswith("clevertap_") and entry in kinds:
            own = table.get("clevertap", {})
            if not isinstance(own, dict):
                continue  # reported as "must be a table" with the route
            try:
                table["clevertap"] = {**own, entry: _env_value(var, kinds[entry], raw)}
            except ConfigError as exc:
                problems.extend(exc.problems)
        else:
            problems.append(
                f"{var}: unknown route key; known: AUTHORIZATION, "
                + ", ".join(f"CLEVERTAP_{k.upper()}" for k in kinds)
            )
    return problems


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    require_clevertap: RequireCleverTap = True,
) -> Config:
    """Read the TOML file at ``path`` (or ``$RC_CLEVERTAP_CONFIG``), then apply the environment.

    ``environ`` defaults to ``os.environ``; this is the only place the environment is read.
    Without a file, the environment alone must supply the required keys; ``require_clevertap``
    says which those are (see :func:`config_from_mapping`).  Every problem in the file and the
    environment is raised at once; one from a variable names it.
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
    overrides, problems = _env_overrides(env)
    problems += _route_env_overrides(data, env)
    for section, values in overrides.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"[{section}] must be a table")
            continue
        merged = dict(table)
        for key, value in values.items():  # a table's entries merge with the file's
            old = merged.get(key)
            both = isinstance(value, dict) and isinstance(old, dict)
            merged[key] = {**old, **value} if both else value  # type: ignore[dict-item]
        data[section] = merged
    try:
        config = config_from_mapping(data, require_clevertap=require_clevertap)
    except ConfigError as exc:
        named = [_name_variable(problem, overrides) for problem in exc.problems]
        raise ConfigError(*problems, *named) from None
    if problems:
        raise ConfigError(*problems)
    return config


def _name_variable(problem: str, overrides: Mapping[str, Mapping[str, object]]) -> str:
    """The problem, naming the variable when the refused value came from the environment."""
    for section, values in overrides.items():
        for key, value in values.items():
            names = [f"{key}.{entry}" for entry in value] if isinstance(value, dict) else [key]
            for name in names:
                if problem.startswith(f"{section}.{name}:"):
                    var = f"{ENV_PREFIX}{section}_{name}".upper().replace(".", "_")
                    return f"{problem} (set by {var})"
    return problem


def example_config() -> str:
    """The commented reference configuration: every key, its default and its meaning."""
    return resources.files(__package__).joinpath("config.example.toml").read_text("utf-8")
