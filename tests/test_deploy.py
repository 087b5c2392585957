"""deploy/: the container's start command run for real with environment-only configuration, the
alert rules and the dashboard checked by promtool, a live /metrics page linted by promtool, the
systemd unit verified by systemd-analyze, and the compose file's wiring."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from integration.app.cli import build_parser

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
RULES = DEPLOY / "prometheus" / "rc-clevertap.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "rc-clevertap.dashboard.json"
UNIT = DEPLOY / "rc-clevertap.service"
WEBHOOK = ROOT / "tests" / "integration" / "fixtures" / "webhooks" / "renewal.json"
DATA_DIR = "/var/lib/rc-clevertap"  # the image's volume, replaced by a temporary folder here
AUTHORIZATION = "Bearer deploy-test-authorization"
STARTUP_S = 30.0  # a bound, not a pause: the wait ends when /healthz answers


# ------------------------------------------------------------------ the container file


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a container file, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage, the one the image runs."""
    instructions = _instructions(DOCKERFILE)
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _one(word: str) -> str:
    values = [rest for w, rest in _runtime_stage() if w == word]
    assert len(values) == 1, f"one {word} expected in the runtime stage, got {values}"
    return values[0]


def _image_env() -> dict[str, str]:
    """The runtime stage's ENV, as the container starts with it."""
    env: dict[str, str] = {}
    for word, rest in _runtime_stage():
        if word == "ENV":
            env |= dict(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def _cmd() -> list[str]:
    command = json.loads(_one("CMD"))  # exec form: a JSON array, no shell in between
    assert isinstance(command, list)
    return command


def _healthcheck() -> list[str]:
    rest = _one("HEALTHCHECK")
    command = json.loads(rest[rest.index("CMD ") + 4 :])
    assert isinstance(command, list)
    return command


def test_container_builds_a_wheel_and_installs_it_with_postgres() -> None:
    """The container file has a builder stage making the wheel and a runtime stage installing
    it with the [postgres] extra, copied from the builder."""
    instructions = _instructions(DOCKERFILE)
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS builder")
    assert any(w == "RUN" and "build --wheel" in rest for w, rest in instructions)
    runtime = _runtime_stage()
    assert any(w == "COPY" and rest.startswith("--from=builder") for w, rest in runtime)
    assert any(w == "RUN" and "[postgres]" in rest for w, rest in runtime)


def test_container_runs_unprivileged_stops_on_sigterm_and_holds_no_secret() -> None:
    """The image runs as a non-root user, stops with SIGTERM, and its ENV sets no secret."""
    assert _one("USER").split(":")[0] not in ("root", "0")
    assert _one("STOPSIGNAL") == "SIGTERM"
    assert _cmd()[:2] == ["rc-clevertap", "serve"]
    assert _healthcheck()[0] == "python"  # slim images have no curl
    for key in _image_env():
        assert not re.search("PASSCODE|AUTHORIZATION|TOKEN|PASSWORD", key), key


def _with_port(command: list[str], port: str) -> list[str]:
    """``command`` with the value after ``--port`` replaced (by a free one: 8000 may be taken)."""
    index = command.index("--port") + 1
    return [*command[:index], port, *command[index + 1 :]]


def _container_env(data_dir: Path) -> dict[str, str]:
    """Only what the container has: the image's ENV (its volume moved to ``data_dir``),
    RC_CLEVERTAP_* variables, and a PATH that finds the installed console script."""
    env = {key: value.replace(DATA_DIR, str(data_dir)) for key, value in _image_env().items()}
    return env | {
        "PATH": str(Path(sys.executable).parent),
        "RC_CLEVERTAP_CLEVERTAP_ACCOUNT_ID": "DEPLOY-TEST-1",
        "RC_CLEVERTAP_CLEVERTAP_PASSCODE": "deploy-test-passcode",
        # Nothing listens on port 9 of the loopback: uploads fail and are retried, offline.
        "RC_CLEVERTAP_CLEVERTAP_BASE_URL": "http://127.0.0.1:9",
        "RC_CLEVERTAP_WEBHOOK_AUTHORIZATION": AUTHORIZATION,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """The container's CMD running as a subprocess, answering on ``url``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = data_dir / "stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                _with_port(_cmd(), str(self.port)),
                cwd=data_dir,  # the image's WORKDIR is its volume
                env=_container_env(data_dir),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + STARTUP_S
        while not self._answers():
            try:  # the pause between tries is a wait for the process to exit, which ends it
                status = self.process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                if time.monotonic() < deadline:
                    continue
                self.stop()
                pytest.fail(f"serve did not answer in {STARTUP_S} s: {self.stderr()}")
            pytest.fail(f"serve exited with status {status}: {self.stderr()}")

    def _answers(self) -> bool:
        try:
            httpx.get(f"{self.url}/healthz", timeout=5)
        except httpx.TransportError:
            return False
        return True

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, the container's STOPSIGNAL; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("container"))
    try:
        yield server
    finally:
        server.stop()


def test_container_command_answers_healthz(served: Served) -> None:
    """The CMD, run with only the image's ENV and RC_CLEVERTAP_* variables, answers /healthz."""
    response = httpx.get(f"{served.url}/healthz", timeout=10)
    assert response.status_code == 200


def test_container_outbox_is_where_the_image_env_puts_it(served: Served) -> None:
    """The SQLite outbox is created at the path of the image's RC_CLEVERTAP_OUTBOX_URL."""
    assert (served.data_dir / "outbox.db").is_file()


def test_container_healthcheck_passes_on_a_healthy_server(served: Served) -> None:
    """The HEALTHCHECK command exits 0 against the running server."""
    command = [part.replace(":8000/", f":{served.port}/") for part in _healthcheck()]
    command[0] = sys.executable  # the image's python
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_container_healthcheck_fails_without_a_server() -> None:
    """The HEALTHCHECK command exits non-zero when nothing answers."""
    command = [part.replace(":8000/", ":9/") for part in _healthcheck()]
    command[0] = sys.executable
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


def test_container_drains_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM, the STOPSIGNAL, stops the CMD with exit status 0 and no traceback."""
    server = Served(tmp_path)
    response = httpx.post(
        f"{server.url}/webhooks/revenuecat",
        content=json.dumps(json.loads(WEBHOOK.read_text())["webhook"]),
        headers={"Authorization": AUTHORIZATION, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert server.stop() == 0
    assert "Traceback" not in server.stderr()
    assert "deploy-test-passcode" not in server.stderr()


# ----------------------------------------------------------------------------- promtool


def _tool(name: str, package: str) -> str:
    """The path of a checking tool; in CI (``CI`` set) a missing one fails the test, since
    .ci/run installs it; elsewhere the test is skipped."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return path


def _promtool(*argv: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [_tool("promtool", "prometheus"), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the alert rules."""
    assert "SUCCESS" in _promtool("check", "rules", str(RULES))


def test_alert_rules_pass_their_unit_tests() -> None:
    """`promtool test rules` passes, with a firing case for every alert in the rules."""
    tests = RULES.with_name("rc-clevertap.rules.test.yml")
    _promtool("test", "rules", tests.name, cwd=tests.parent)
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    fired = {
        case["alertname"]
        for test in yaml.safe_load(tests.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == alerts


def test_prometheus_example_configuration_is_valid() -> None:
    """`promtool check config` accepts the example scrape configuration and its rule file."""
    _promtool("check", "config", "prometheus.yml", cwd=RULES.parent)


def _metrics_page(served: Served) -> str:
    response = httpx.get(f"{served.url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def test_live_metrics_pass_promtool_check_metrics(served: Served) -> None:
    """The /metrics page of the running container command passes `promtool check metrics`."""
    page = _metrics_page(served)
    output = _promtool("check", "metrics", stdin=page)
    assert output.strip() == "", output


def _exposed_names(page: str) -> set[str]:
    names = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\w+)$", page, flags=re.M):
        name, kind = kind_line
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alerts_and_dashboard_use_only_exposed_metrics(served: Served) -> None:
    """Every rc_clevertap_* name in the alert rules and the dashboard is on the live page."""
    exposed = _exposed_names(_metrics_page(served))
    used = set(re.findall(r"rc_clevertap_\w+", RULES.read_text()))
    used |= {name for expr in _dashboard_exprs() for name in re.findall(r"rc_clevertap_\w+", expr)}
    assert used and used <= exposed, sorted(used - exposed)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each dashboard query, with Grafana's variables filled in, parses as PromQL (promtool
    checks it as a recording rule)."""
    exprs = [
        expr.replace("$__rate_interval", "5m").replace("$job", ".*") for expr in _dashboard_exprs()
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in _promtool("check", "rules", str(path))


# ---------------------------------------------------------------------------- systemd


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning (ExecStart pointed at this
    machine's rc-clevertap, since verify checks that the binary exists)."""
    tool = _tool("systemd-analyze", "systemd")
    script = Path(sys.executable).with_name("rc-clevertap")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/rc-clevertap/bin/rc-clevertap", str(script)))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # Exposure 0 (locked down) to 10 (unprotected); the threshold is in tenths.
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-500:]


def _unit_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT.read_text(), flags=re.M)


def test_systemd_unit_runs_serve_as_its_own_user_with_a_state_directory() -> None:
    """The unit runs a `serve` the CLI accepts, as a dedicated user, restarting on failure,
    with an environment file, a state directory for SQLite and a SIGTERM stop."""
    argv = shlex.split(_unit_values("ExecStart")[0])
    assert Path(argv[0]).name == "rc-clevertap"
    assert build_parser().parse_args(argv[1:]).handler.__name__ == "cmd_serve"
    assert _unit_values("Type") == ["exec"]
    assert _unit_values("User") == ["rc-clevertap"]
    assert _unit_values("Restart") == ["on-failure"]
    assert _unit_values("KillSignal") == ["SIGTERM"]
    assert _unit_values("StateDirectory") == ["rc-clevertap"]
    assert _unit_values("EnvironmentFile") and _unit_values("LimitNOFILE")
    assert any(DATA_DIR in value for value in _unit_values("Environment"))


# ---------------------------------------------------------------------------- compose


def test_compose_runs_the_forwarder_on_a_healthy_postgres() -> None:
    """The compose file builds deploy/Dockerfile, points the outbox at its PostgreSQL service,
    and starts the forwarder only once PostgreSQL's healthcheck passes."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    forwarder, postgres = compose["services"]["forwarder"], compose["services"]["postgres"]
    context = (DEPLOY / forwarder["build"]["context"]).resolve()
    assert (context / forwarder["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert forwarder["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert forwarder["environment"]["RC_CLEVERTAP_OUTBOX_URL"].startswith("postgresql://")


def test_compose_takes_every_secret_from_the_environment() -> None:
    """Each secret in the compose file is a required ${VAR:?} reference, and every variable
    it references is listed in deploy/env.example."""
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if re.search("PASSCODE|AUTHORIZATION|PASSWORD", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), key
    referenced = set(re.findall(r"\$\{(\w+)", text))
    listed = set(re.findall(r"^(\w+)=", (DEPLOY / "env.example").read_text(), flags=re.M))
    assert referenced <= listed, sorted(referenced - listed)
