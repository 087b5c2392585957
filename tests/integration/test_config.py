"""Configuration: TOML, environment overrides, validation messages, and secrets kept secret."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

import integration.config
from integration.config import (
    UNCONFIGURED_ACCOUNT_ID,
    CleverTapAccount,
    CleverTapConfig,
    Config,
    ConfigError,
    DispatcherConfig,
    EventNames,
    ExtrasConfig,
    MetricsConfig,
    OutboxConfig,
    RevenueConfig,
    Secret,
    ServerConfig,
    WebhookConfig,
    config_from_mapping,
    example_config,
    load_config,
)

FULL_TOML = """
[clevertap]
account_id = "ACC-1"
passcode = "prod-passcode-value"
region = "in1"
sandbox_account_id = "SBX-1"
sandbox_passcode = "sandbox-passcode-value"
timeout_s = 10

[webhook]
authorization = "Bearer webhook-auth-value"

[events]
initial_purchase = "Subscribed"
expiration = ""

[revenue]
mode = "after_store_commission_and_taxes"
currency = "usd"
refunds = "negative"

[extras]
profile_records = true
charged_event = true
max_event_properties = 50
attribute_allowlist = ["$email", "plan"]

[outbox]
url = "postgresql://postgres@127.0.0.1:5432/test"
retention_s = 3600

[dispatcher]
batch_size = 500
concurrency = 8
"""
SECRETS = ("prod-passcode-value", "sandbox-passcode-value", "webhook-auth-value")
# The reference configuration ships in the package, beside the loader (rc-clevertap config example).
EXAMPLE = Path(integration.config.__file__).with_name("config.example.toml")
MINIMAL = {"clevertap": {"account_id": "ACC-1", "passcode": "pw"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rc-clevertap.toml"
    path.write_text(text, encoding="utf-8")
    return path


def with_section(section: str, **values: Any) -> dict[str, Any]:
    data: dict[str, Any] = {name: dict(table) for name, table in MINIMAL.items()}
    data.setdefault(section, {}).update(values)
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data)
    return str(caught.value)


def test_full_file_is_read(tmp_path: Path) -> None:
    """Every section of a TOML file lands in its value object."""
    config = load_config(write(tmp_path, FULL_TOML), environ={})
    assert config.clevertap.api_base_url() == "https://in1.api.clevertap.com"
    assert config.clevertap.timeout_s == 10.0
    assert config.webhook.authorization == Secret("Bearer webhook-auth-value")
    assert (config.events.initial_purchase, config.events.expiration) == ("Subscribed", "")
    assert config.events.renewal == "rc_renewal_event"
    assert config.revenue == RevenueConfig(
        mode="after_store_commission_and_taxes", currency="usd", refunds="negative"
    )
    assert config.extras == ExtrasConfig(
        profile_records=True,
        charged_event=True,
        max_event_properties=50,
        attribute_allowlist=("$email", "plan"),
    )
    assert config.outbox.url.startswith("postgresql://") and config.outbox.retention_s == 3600
    assert (config.dispatcher.batch_size, config.dispatcher.concurrency) == (500, 8)


def test_defaults() -> None:
    """A minimal configuration gets every documented default."""
    config = config_from_mapping(MINIMAL)
    assert config == Config(clevertap=CleverTapConfig(account_id="ACC-1", passcode=Secret("pw")))
    assert config.clevertap.api_base_url() == "https://eu1.api.clevertap.com"
    assert config.webhook == WebhookConfig(authorization=None, max_body_bytes=1_048_576)
    assert config.events.subscription_paused == ""
    assert config.revenue == RevenueConfig(mode="gross", currency="purchased", refunds="zero")
    assert config.outbox == OutboxConfig(url="sqlite:///rc-clevertap.db", retention_s=604800.0)
    assert config.dispatcher == DispatcherConfig(batch_size=1000, concurrency=4, linger_s=0.05)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """RC_CLEVERTAP_<SECTION>_<KEY> variables win over the file, typed like the key."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "from-env",
        "RC_CLEVERTAP_OUTBOX_URL": "sqlite:///other.db",
        "RC_CLEVERTAP_DISPATCHER_BATCH_SIZE": "250",
        "RC_CLEVERTAP_DISPATCHER_LINGER_S": "0.5",
        "RC_CLEVERTAP_EXTRAS_CHARGED_EVENT": "false",
        "RC_CLEVERTAP_EVENTS_SUBSCRIPTION_PAUSED": "rc_subscription_paused_event",
        "RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST": "$email, plan,",
    }
    config = load_config(write(tmp_path, FULL_TOML), environ=environ)
    assert config.clevertap.passcode.reveal() == "from-env"
    assert config.clevertap.account_id == "ACC-1"
    assert config.outbox.url == "sqlite:///other.db"
    assert (config.dispatcher.batch_size, config.dispatcher.linger_s) == (250, 0.5)
    assert config.extras.charged_event is False
    assert config.events.subscription_paused == "rc_subscription_paused_event"
    assert config.extras.attribute_allowlist == ("$email", "plan")


def test_environment_alone_is_enough() -> None:
    """Without a file, the environment can supply the whole configuration."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-9",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "pw",
        "RC_CLEVERTAP_CLEVERTAP_BASE_URL": "http://127.0.0.1:8080/",
    }
    config = load_config(environ=environ)
    assert config.clevertap.api_base_url() == "http://127.0.0.1:8080"


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    """RC_CLEVERTAP_CONFIG names the file when no path is given."""
    path = write(tmp_path, FULL_TOML)
    assert load_config(environ={"RC_CLEVERTAP_CONFIG": str(path)}).clevertap.region == "in1"


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit environ, os.environ is read."""
    monkeypatch.setenv("RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID", "ACC-OS")
    monkeypatch.setenv("RC_CLEVERTAP_CLEVERTAP_PASSCODE", "pw")
    monkeypatch.delenv("RC_CLEVERTAP_CONFIG", raising=False)
    assert load_config().clevertap.account_id == "ACC-OS"


def test_unrelated_prefixed_variables_are_ignored() -> None:
    """Variables under the prefix that name no section belong to others and are ignored."""
    environ = {"RC_CLEVERTAP_TEST_POSTGRES_URL": "postgresql://x", "RC_CLEVERTAP_CI_VENV": "v"}
    environ |= {"RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "A", "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "p"}
    assert load_config(environ=environ).clevertap.account_id == "A"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RC_CLEVERTAP_OUTBOX_URLL": "x"}, "RC_CLEVERTAP_OUTBOX_URLL: unknown key outbox.urll"),
        (
            {"RC_CLEVERTAP_DISPATCHER_BATCH_SIZE": "lots"},
            "RC_CLEVERTAP_DISPATCHER_BATCH_SIZE: must be an integer",
        ),
        (
            {"RC_CLEVERTAP_DISPATCHER_LINGER_S": "soon"},
            "RC_CLEVERTAP_DISPATCHER_LINGER_S: must be a number",
        ),
        (
            {"RC_CLEVERTAP_EXTRAS_PROFILE_RECORDS": "maybe"},
            "RC_CLEVERTAP_EXTRAS_PROFILE_RECORDS: must be true or false",
        ),
    ],
)
def test_bad_environment_names_the_variable(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    """A bad override is reported with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, FULL_TOML), environ=environ)
    assert str(caught.value).startswith(message)


def test_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    """A value from the environment that fails validation names its variable too."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, FULL_TOML), environ={"RC_CLEVERTAP_REVENUE_MODE": "net"})
    assert str(caught.value).startswith("revenue.mode: must be one of")
    assert str(caught.value).endswith("(set by RC_CLEVERTAP_REVENUE_MODE)")


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml", environ={})


def test_invalid_toml(tmp_path: Path) -> None:
    """A file that is not TOML is a ConfigError with the parser's position."""
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 2"):
        load_config(write(tmp_path, "[clevertap]\naccount_id = \n"), environ={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "clevertap.account_id: is required (in the file or as RC_CLEVERTAP_CLEVERTAP_"),
        ({"clevertap": {"passcode": "pw"}}, "clevertap.account_id: is required"),
        ({"clevertap": {"account_id": "A"}}, "clevertap.passcode: is required"),
        ({**MINIMAL, "extra": {}}, "unknown section [extra]"),
        ({**MINIMAL, "revenue": 3}, "[revenue] must be a table"),
        (with_section("revenue", moed="gross"), "revenue.moed: unknown key"),
        (with_section("clevertap", account_id=""), "clevertap.account_id: must not be empty"),
        (with_section("clevertap", passcode=""), "clevertap.passcode: must not be empty"),
        (
            with_section("clevertap", account_id=7),
            "clevertap.account_id: must be a string, got int",
        ),
        (with_section("clevertap", region="eu2"), "clevertap.region: must be one of eu1, in1"),
        (with_section("clevertap", base_url="ftp://x"), "clevertap.base_url: must be an http://"),
        (with_section("clevertap", base_url="http://h/1"), "clevertap.base_url: must not end with"),
        (with_section("clevertap", base_url="http://h?x=1"), "clevertap.base_url: must not have"),
        (
            with_section("clevertap", sandbox_account_id="S"),
            "clevertap.sandbox_account_id and clevertap.sandbox_passcode must be set together",
        ),
        (
            with_section("clevertap", sandbox_passcode="p"),
            "clevertap.sandbox_account_id and clevertap.sandbox_passcode must be set together",
        ),
        (with_section("clevertap", timeout_s=0), "clevertap.timeout_s: must be greater than 0"),
        (
            with_section("clevertap", timeout_s="5"),
            "clevertap.timeout_s: must be a number, got str",
        ),
        (with_section("webhook", authorization=""), "webhook.authorization: must not be empty"),
        (with_section("webhook", max_body_bytes=0), "webhook.max_body_bytes: must be at least 1"),
        (with_section("server", max_header_bytes=100), "server.max_header_bytes: must be at"),
        (with_section("server", max_headers=2), "server.max_headers: must be at least 8"),
        (with_section("server", header_timeout_s=0), "server.header_timeout_s: must be greater"),
        (with_section("server", body_timeout_s=-1), "server.body_timeout_s: must be greater"),
        (with_section("server", keep_alive_s=0), "server.keep_alive_s: must be greater"),
        (with_section("server", max_connections=0), "server.max_connections: must be at least"),
        (with_section("metrics", token=""), "metrics.token: must not be empty"),
        (with_section("outbox", pool_timeout_s=60), "outbox.pool_timeout_s: must be between"),
        (with_section("events", renewal=5), "events.renewal: must be a string, got int"),
        (with_section("events", renewal="App Launched"), "events.renewal: 'App Launched' is a"),
        (with_section("events", renewal="Charged"), "events.renewal: 'Charged' is a CleverTap"),
        (with_section("events", renewal="rc.renewal"), "events.renewal: must not contain"),
        (with_section("events", renewal=" padded"), "events.renewal: must not start or end"),
        (with_section("events", renewal="x" * 513), "events.renewal: must be at most 512"),
        (with_section("events", refund="x"), "events.refund: unknown key"),
        (with_section("revenue", mode="net"), "revenue.mode: must be one of gross, after_store"),
        (with_section("revenue", currency="eur"), "revenue.currency: must be one of purchased"),
        (with_section("revenue", refunds="skip"), "revenue.refunds: must be one of zero, negative"),
        (
            with_section("extras", charged_event="yes"),
            "extras.charged_event: must be true or false",
        ),
        (with_section("extras", max_event_properties=0), "extras.max_event_properties: must be"),
        (
            with_section("extras", max_event_properties=True),
            "extras.max_event_properties: must be an",
        ),
        (
            with_section("extras", attribute_allowlist="$email"),
            "extras.attribute_allowlist: must be a list of strings, got str",
        ),
        (
            with_section("extras", attribute_allowlist=[""]),
            "extras.attribute_allowlist: must hold non-empty attribute names",
        ),
        (with_section("outbox", url="mysql://x"), "outbox.url: must start with sqlite:///"),
        (with_section("outbox", url="sqlite://x.db"), "outbox.url: must look like sqlite:///"),
        (with_section("outbox", lease_s=-1), "outbox.lease_s: must be greater than 0"),
        (with_section("outbox", quarantine_cap=0), "outbox.quarantine_cap: must be at least 1"),
        (
            with_section("dispatcher", batch_size=1001),
            "dispatcher.batch_size: must be between 1 and",
        ),
        (
            with_section("dispatcher", concurrency=16),
            "dispatcher.concurrency: must be between 1 and 15",
        ),
        (with_section("dispatcher", linger_s=-0.1), "dispatcher.linger_s: must be at least 0"),
        (with_section("dispatcher", max_age_s=0), "dispatcher.max_age_s: must be greater than 0"),
        (
            with_section("dispatcher", backoff_initial_s=10, backoff_max_s=5),
            "dispatcher.backoff_max_s: must be at least dispatcher.backoff_initial_s",
        ),
        (
            with_section("dispatcher", auth_pause_s=0),
            "dispatcher.auth_pause_s: must be greater than 0",
        ),
        (
            with_section("dispatcher", auth_pause_s=120, auth_pause_max_s=60),
            "dispatcher.auth_pause_max_s: must be at least dispatcher.auth_pause_s",
        ),
        (with_section("dispatcher", poll_s=0), "dispatcher.poll_s: must be greater than 0"),
        (
            with_section("dispatcher", shutdown_grace_s=-1),
            "dispatcher.shutdown_grace_s: must be at least 0",
        ),
    ],
)
def test_validation_messages(data: dict[str, Any], message: str) -> None:
    """Each invalid setting is refused with a message naming the key."""
    assert message in error_of(data)


def test_value_objects_validate_when_built_directly() -> None:
    """Building a value object in Python runs the same checks as reading a file."""
    with pytest.raises(ConfigError, match=r"dispatcher\.concurrency"):
        DispatcherConfig(concurrency=0)


def test_value_objects_are_immutable() -> None:
    """Configuration objects cannot be changed after construction."""
    config = config_from_mapping(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.revenue.mode = "usd"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.clevertap.passcode._value = "x"  # type: ignore[misc]


def test_value_objects_are_keyword_only() -> None:
    """Configuration objects take keyword arguments only."""
    with pytest.raises(TypeError):
        RevenueConfig("gross")  # type: ignore[misc]


def test_base_url_wins_over_region() -> None:
    """With base_url set, the region is not used for the API address."""
    clevertap = CleverTapConfig(
        account_id="A", passcode=Secret("p"), region="us1", base_url="http://127.0.0.1:9/"
    )
    assert clevertap.api_base_url() == "http://127.0.0.1:9"


@pytest.mark.parametrize("region", ["eu1", "in1", "us1", "sg1", "aps3", "mec1", "sk1"])
def test_every_region_has_its_host(region: str) -> None:
    """Each region maps to https://<region>.api.clevertap.com."""
    clevertap = CleverTapConfig(account_id="A", passcode=Secret("p"), region=region)  # type: ignore[arg-type]
    assert clevertap.api_base_url() == f"https://{region}.api.clevertap.com"


def test_account_for_each_environment() -> None:
    """PRODUCTION and SANDBOX pick their accounts; anything else has none."""
    clevertap = config_from_mapping(
        with_section("clevertap", sandbox_account_id="S", sandbox_passcode="sp")
    ).clevertap
    assert clevertap.account_for("PRODUCTION") == CleverTapAccount("ACC-1", Secret("pw"))
    assert clevertap.account_for("SANDBOX") == CleverTapAccount("S", Secret("sp"))
    assert clevertap.account_for("STAGING") is None


def test_no_sandbox_account_by_default() -> None:
    """Without sandbox credentials, SANDBOX has no account."""
    assert config_from_mapping(MINIMAL).clevertap.account_for("SANDBOX") is None


def test_event_names_empty_means_off() -> None:
    """Every event name may be empty, meaning don't send."""
    names = {f.name: "" for f in dataclasses.fields(EventNames) if f.name != "stores"}
    assert config_from_mapping(with_section("events", **names)).events == EventNames(**names)


def test_secret_does_not_print() -> None:
    """A Secret shows stars in repr, str and f-strings, and reveals on request."""
    secret = Secret("s3cr3t")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert secret.reveal() == "s3cr3t"


def test_secret_survives_copies_masked() -> None:
    """asdict and deep copies keep a Secret a Secret."""
    config = config_from_mapping(MINIMAL)
    assert "pw" not in repr(dataclasses.asdict(config))
    copied = copy.deepcopy(config)
    assert copied == config and repr(copied.clevertap.passcode) == "Secret('***')"


def test_secrets_never_in_config_repr(tmp_path: Path) -> None:
    """No secret value appears in the repr or str of a loaded configuration."""
    config = load_config(write(tmp_path, FULL_TOML), environ={})
    for text in (repr(config), str(config), repr(config.clevertap.account_for("SANDBOX"))):
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.parametrize(
    "data",
    [
        with_section("clevertap", passcode=12345678),
        with_section("clevertap", sandbox_account_id="S", sandbox_passcode=["hunter2"]),
        with_section("webhook", authorization=4242),
    ],
)
def test_secrets_never_in_type_errors(data: dict[str, Any]) -> None:
    """A secret of the wrong type is reported without its value."""
    message = error_of(data)
    for leaked in ("12345678", "hunter2", "4242"):
        assert leaked not in message


def test_secrets_never_in_error_messages(tmp_path: Path) -> None:
    """Validation errors in a file that holds secrets never quote them."""
    bad = FULL_TOML.replace('region = "in1"', 'region = "mars"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad), environ={})
    assert "'mars'" in str(caught.value)
    assert not any(secret in str(caught.value) for secret in SECRETS)
    environ = {"RC_CLEVERTAP_CLEVERTAP_PASSCODE": "env-secret", "RC_CLEVERTAP_OUTBOX_X": "1"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, FULL_TOML), environ=environ)
    assert "env-secret" not in str(caught.value)


def test_example_configuration_is_valid() -> None:
    """The commented example configuration shipped in the package loads as documented."""
    config = load_config(EXAMPLE, environ={})
    assert config.clevertap.account_for("SANDBOX") is not None
    assert config.events == EventNames()
    assert config.revenue == RevenueConfig()


def test_example_config_is_the_shipped_file() -> None:
    """example_config() returns the package's config.example.toml, the one source of it."""
    assert example_config() == EXAMPLE.read_text(encoding="utf-8")


def test_example_configuration_shows_the_dispatcher_defaults() -> None:
    """The example's [dispatcher] section lists every dispatcher key with its default."""
    assert load_config(EXAMPLE, environ={}).dispatcher == DispatcherConfig()


def test_dispatcher_pause_and_poll_defaults() -> None:
    """Pauses start at 60 s and double up to 900 s; idle lanes poll every second; a stop
    waits 10 s for uploads in flight."""
    settings = config_from_mapping(MINIMAL).dispatcher
    assert (settings.auth_pause_s, settings.auth_pause_max_s) == (60.0, 900.0)
    assert (settings.poll_s, settings.shutdown_grace_s) == (1.0, 10.0)


def test_dispatcher_pause_and_poll_come_from_file_and_environment(tmp_path: Path) -> None:
    """The pause, poll and grace keys are read from [dispatcher] and from the environment."""
    text = FULL_TOML + "auth_pause_s = 30\nauth_pause_max_s = 120\npoll_s = 0.5\n"
    environ = {"RC_CLEVERTAP_DISPATCHER_SHUTDOWN_GRACE_S": "2.5"}
    settings = load_config(write(tmp_path, text), environ=environ).dispatcher
    assert (settings.auth_pause_s, settings.auth_pause_max_s) == (30.0, 120.0)
    assert (settings.poll_s, settings.shutdown_grace_s) == (0.5, 2.5)


def test_outbox_repr_hides_a_database_password() -> None:
    """The repr of an outbox configuration shows the database URL without its password."""
    from integration.config import OutboxConfig

    outbox = OutboxConfig(url="postgresql://forwarder:hunter2@db:5432/rc?password=other&schema=x")
    shown = repr(outbox)
    assert "hunter2" not in shown
    assert "other" not in shown
    assert "postgresql://forwarder:***@db:5432/rc?password=***&schema=x" in shown


def test_example_configuration_shows_the_server_and_metrics_defaults() -> None:
    """The example's [server] and [metrics] sections list every key with its default."""
    config = load_config(EXAMPLE, environ={})
    assert (config.server, config.metrics) == (ServerConfig(), MetricsConfig())
    assert config.outbox.pool_timeout_s == OutboxConfig().pool_timeout_s


def test_server_limits_and_metrics_token_come_from_the_environment() -> None:
    """[server] limits and the metrics token are read from RC_CLEVERTAP_SERVER_* and _METRICS_*."""
    environ = {
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "ACC-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "pw",
        "RC_CLEVERTAP_SERVER_HEADER_TIMEOUT_S": "1.5",
        "RC_CLEVERTAP_SERVER_MAX_CONNECTIONS": "64",
        "RC_CLEVERTAP_METRICS_TOKEN": "metrics-token-value",
    }
    config = load_config(environ=environ)
    assert (config.server.header_timeout_s, config.server.max_connections) == (1.5, 64)
    assert config.metrics.token == Secret("metrics-token-value")
    assert "metrics-token-value" not in repr(config)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Problems in several sections, several keys of one section and the environment are raised
    together, each naming its key or variable."""
    text = FULL_TOML.replace('region = "in1"', 'region = "mars"').replace(
        "batch_size = 500", "batch_size = 5000\npoll_s = 0\nlinger = 1"
    )
    environ = {"RC_CLEVERTAP_REVENUE_MODE": "net", "RC_CLEVERTAP_OUTBOX_LEASE_S": "soon"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ=environ)
    problems = caught.value.problems
    assert [problem.partition(":")[0] for problem in problems] == [
        "RC_CLEVERTAP_OUTBOX_LEASE_S",
        "dispatcher.linger",
        "clevertap.region",
        "revenue.mode",
        "dispatcher.batch_size",
        "dispatcher.poll_s",
    ]
    assert problems[3].endswith("(set by RC_CLEVERTAP_REVENUE_MODE)")
    assert str(caught.value) == "; ".join(problems)


def test_missing_credentials_are_reported_together() -> None:
    """An empty configuration names both required keys and their variables."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={})
    assert caught.value.problems == (
        "clevertap.account_id: is required (in the file or as RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID)",
        "clevertap.passcode: is required (in the file or as RC_CLEVERTAP_CLEVERTAP_PASSCODE)",
    )


def test_outbox_commands_need_no_clevertap_settings() -> None:
    """With require_clevertap=False the environment's outbox URL alone is a configuration."""
    environ = {"RC_CLEVERTAP_OUTBOX_URL": "sqlite:///elsewhere.db"}
    config = load_config(environ=environ, require_clevertap=False)
    assert config.outbox.url == "sqlite:///elsewhere.db"
    assert config.clevertap.account_id == UNCONFIGURED_ACCOUNT_ID


def test_a_credential_not_loaded_cannot_be_used() -> None:
    """A passcode stand-in raises, naming its key, when anything tries to send it."""
    config = load_config(environ={}, require_clevertap=False)
    with pytest.raises(ConfigError, match=r"^clevertap\.passcode: is required to call CleverTap"):
        config.clevertap.passcode.reveal()
    with pytest.raises(ConfigError, match=r"clevertap\.passcode"):
        copy.deepcopy(config).clevertap.passcode.reveal()


def test_given_credentials_are_kept_when_not_required() -> None:
    """A command that does not need the passcode still gets the one configured."""
    environ = {"RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "A", "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "p"}
    config = load_config(environ=environ, require_clevertap=False)
    assert config.clevertap.account_for("PRODUCTION") == CleverTapAccount("A", Secret("p"))


def test_account_mode_needs_the_account_ids_only() -> None:
    """require_clevertap="account" routes events by account id without any passcode."""
    data = {"clevertap": {"account_id": "A", "sandbox_account_id": "S"}}
    clevertap = config_from_mapping(data, require_clevertap="account").clevertap
    assert clevertap.account_for("SANDBOX") is not None
    assert clevertap.account_for("SANDBOX").account_id == "S"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"clevertap\.account_id: is required"):
        config_from_mapping({}, require_clevertap="account")


@pytest.mark.parametrize(
    "raw", ['["$email", "plan"]', "$email,plan", " $email , plan ,", '  ["$email","plan"]  ']
)
def test_list_variables_take_json_or_commas(raw: str) -> None:
    """A list variable is read as a JSON array when it starts with [, else comma-separated."""
    environ = {"RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST": raw}
    config = load_config(environ=environ, require_clevertap=False)
    assert config.extras.attribute_allowlist == ("$email", "plan")


def test_json_list_keeps_commas_inside_names() -> None:
    """A JSON array carries names that hold a comma, which the comma form cannot."""
    environ = {"RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST": '["a,b"]'}
    config = load_config(environ=environ, require_clevertap=False)
    assert config.extras.attribute_allowlist == ("a,b",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('["$email"', "RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST: invalid JSON array: "),
        ("[1, 2]", "RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST: must be a JSON array of strings"),
    ],
)
def test_bad_json_list_names_the_variable(raw: str, message: str) -> None:
    """A list variable that starts with [ but is no JSON array of strings is refused."""
    environ = {"RC_CLEVERTAP_EXTRAS_ATTRIBUTE_ALLOWLIST": raw}
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ, require_clevertap=False)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("lease_s", [5.0, 10.0])
def test_a_lease_not_longer_than_the_upload_deadline_is_refused(lease_s: float) -> None:
    """outbox.lease_s at or below clevertap.timeout_s is a configuration error naming both."""
    data = with_section("outbox", lease_s=lease_s)
    data["clevertap"] = {**data["clevertap"], "timeout_s": 10.0}
    message = error_of(data)
    assert message.startswith("outbox.lease_s: must be greater than clevertap.timeout_s (10)")


def test_a_short_lease_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    """A lease set below the deadline by a variable is reported with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, FULL_TOML), environ={"RC_CLEVERTAP_OUTBOX_LEASE_S": "1"})
    assert str(caught.value).startswith("outbox.lease_s: must be greater than clevertap.timeout_s")
    assert str(caught.value).endswith("(set by RC_CLEVERTAP_OUTBOX_LEASE_S)")


def test_the_shipped_and_local_stack_leases_outlast_their_deadlines() -> None:
    """The defaults (60 s lease, 30 s deadline) and the local stack's (30 s, 5 s) are valid."""
    defaults = config_from_mapping(MINIMAL)
    assert defaults.outbox.lease_s > defaults.clevertap.timeout_s
    config_from_mapping(
        with_section("outbox", lease_s=30.0)
        | {"clevertap": {**MINIMAL["clevertap"], "timeout_s": 5.0}}
    )
