"""The whole flow on one machine: RevenueCat mock -> webhook -> engine -> CleverTap mock.

One object starts the three parts on free loopback ports, in an event loop of their own in
a background thread, so that a notebook, a test or ``rc-clevertap demo`` can drive it with
plain synchronous calls::

    with LocalStack(users=50) as stack:
        stack.rc.set_clevertap_id("user-1", "ct-1")   # a RevenueCat client on the mock
        stack.play()                                   # the seeded population's lifecycles
        stack.wait_settled()                           # every webhook acknowledged, every event
                                                       # delivered, skipped or dead-lettered
        stack.clevertap_events()                       # what arrived, as dicts
        stack.dataframe("clevertap_events")            # ... or as a pandas DataFrame

Parts and addresses::

    mock_url    RevenueCat (/v1, /v2), CleverTap (/1), control (/_mock) - one server
    engine_url  POST /webhooks/revenuecat, GET /healthz, GET /metrics
    dashboard_url  the delivery dashboard (engine_url + /ui), logged in with admin_token

The RevenueCat mock's clock runs ``time_scale`` times faster than real time, so a webhook
that fails is retried on RevenueCat's schedule (5, 10, 20, 40, 80 minutes) in seconds.
Delivery latency is measured from the engine's commit of the webhook (the outbox row's
``received_at``, taken just before the 200 is sent) to CleverTap's receipt, both on this
machine's wall clock.  The RevenueCat mock's ``Delivery.acked_at`` is later: the engine may
upload an event before the mock has read the 200, which would show as a negative latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from client import RevenueCat
from integration.app.dashboard import with_dashboard
from integration.config import (
    AdminConfig,
    CleverTapConfig,
    Config,
    DispatcherConfig,
    OutboxConfig,
    Secret,
    WebhookConfig,
)
from integration.engine import Engine
from mockserver.app import create_app
from mockserver.clevertap import Account, CleverTapBackend
from mockserver.faults import FaultInjector
from mockserver.revenuecat import DeliveryState, PopulationPlan, RevenueCatBackend, WebhookTarget
from mockserver.revenuecat.keys import DEFAULT_SECRET_KEY
from mockserver.serving import BackgroundServer, LoopThread

__all__ = ["LocalStack", "StackProgress"]

T = TypeVar("T")

#: Credentials of the local stack's parts.  They are the mocks' own and guard nothing.
PRODUCTION_ACCOUNT = Account("LOCAL-PROD-0001", ("local-prod-passcode",), region="eu1")
SANDBOX_ACCOUNT = Account("LOCAL-SBOX-0001", ("local-sandbox-passcode",), region="eu1")
WEBHOOK_AUTHORIZATION = "Bearer local-stack-webhook"

#: Real seconds the engine has to acknowledge a webhook (RevenueCat's own limit is 60 s).
RESPONSE_LIMIT_REAL_S = 60.0

#: How often ``wait_settled`` looks at the parts, in seconds.
POLL_S = 0.05

#: Seconds a stopping mock lets its requests finish before cancelling them: a backstop, since
#: ``close`` first ends the fault rules' stalls (see ``_fault_sleep``).
MOCK_SHUTDOWN_S = 2

#: Seconds a stopping engine lets its uploads in flight finish (then releases their rows).
ENGINE_SHUTDOWN_S = 1.0

#: Files of the outbox in ``workdir``: the SQLite database and its write-ahead log.
OUTBOX_FILES = ("outbox.db", "outbox.db-wal", "outbox.db-shm")

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class StackProgress:
    """Where the flow stands: webhooks sent by RevenueCat, events settled by the engine."""

    webhooks_total: int
    webhooks_settled: int  # acknowledged with a 200, or given up by RevenueCat's schedule
    webhooks_failed: int  # given up after RevenueCat's last retry
    engine_pending: int  # stored, not yet delivered, skipped or dead-lettered
    engine_settled: int

    @property
    def done(self) -> bool:
        return self.webhooks_settled == self.webhooks_total and self.engine_pending == 0


class LocalStack:
    """RevenueCat mock, CleverTap mock and the forwarding engine, running in the background.

    Parameters:
        users: size of the seeded population :meth:`play` runs (0: none; drive it yourself).
        seed: seeds the population and the fault rules.
        faults: a fault preset for CleverTap's upload API (see ``mockserver.faults.PRESETS``).
        workdir: where the outbox database and the log file go (default: a new temp folder,
            removed by :meth:`close` unless ``keep``).  A reused folder's outbox is replaced
            at start: the mocks start empty, so an old queue would match nothing in them.
        keep: keep the temporary folder after :meth:`close` (a ``workdir`` is always kept).
        time_scale: virtual seconds per real second on the RevenueCat mock's clock.
        config: a function given the stack's default :class:`Config` that returns the one to
            use (for example with another revenue mode); the CleverTap address is the mock's.
    """

    def __init__(
        self,
        *,
        users: int = 0,
        seed: int = 7,
        faults: str | None = None,
        workdir: str | Path | None = None,
        time_scale: float = 600.0,
        config: Callable[[Config], Config] | None = None,
        keep: bool = False,
    ) -> None:
        self.users = users
        self.seed = seed
        self.faults_preset = faults
        self._temporary = workdir is None and not keep
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp("-rcct"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.outbox_path = self.workdir / "outbox.db"
        self.log_path = self.workdir / "rc-clevertap.log"
        self._time_scale = time_scale
        self._customise = config
        # The dashboard's admin token, new for each stack: it guards only this stack's mocks.
        self.admin_token = secrets.token_urlsafe(24)
        self.plan: PopulationPlan | None = None
        self._loop: LoopThread | None = None
        self._servers: list[BackgroundServer] = []
        self._log_handler: logging.Handler | None = None
        self._root_level = logging.NOTSET

    # -- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the engine, then the mocks (whose webhooks point at the engine)."""
        for name in OUTBOX_FILES:
            (self.workdir / name).unlink(missing_ok=True)
        self._log_handler = logging.FileHandler(self.log_path)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(self._log_handler)
        self._root_level = root.level
        root.setLevel(min(root.level or 100, logging.INFO))
        self._loop = LoopThread(name="rc-clevertap-localstack")
        try:
            self._run(self._start())
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        self.clevertap = CleverTapBackend(accounts=[PRODUCTION_ACCOUNT, SANDBOX_ACCOUNT])
        self._stopping = asyncio.Event()
        self.faults = FaultInjector(seed=self.seed, sleep=self._fault_sleep)
        if self.faults_preset:
            self.faults.apply_preset(self.faults_preset)
        # The mock server starts first on a free port; RevenueCat's webhook target is set
        # once the engine's port is known (the emitter reads its targets at send time).
        # RevenueCat gives a receiver 60 s to answer; on a clock running ``time_scale`` times
        # faster that is a few real milliseconds, and a busy laptop would look like an outage.
        # The stack keeps RevenueCat's limit in *real* seconds instead.
        self.revenuecat = RevenueCatBackend(
            time_scale=self._time_scale,
            seed=self.seed,
            webhook_concurrency=32,
            webhook_response_timeout_s=RESPONSE_LIMIT_REAL_S * self._time_scale,
        )
        mock_server = BackgroundServer(
            create_app(
                revenuecat_backend=self.revenuecat,
                clevertap_backend=self.clevertap,
                faults=self.faults,
            ),
            timeout_graceful_shutdown=MOCK_SHUTDOWN_S,
        )
        self.mock_url = await mock_server.start()
        self._servers.append(mock_server)

        self.config = self._default_config(self.mock_url)
        if self._customise is not None:
            self.config = self._customise(self.config)
        self.engine = Engine(self.config, poll_s=POLL_S, shutdown_grace_s=ENGINE_SHUTDOWN_S)
        engine_server = BackgroundServer(with_dashboard(self.engine))
        self.engine_url = await engine_server.start()
        self.dashboard_url = f"{self.engine_url}/ui"
        self._servers.append(engine_server)
        self.revenuecat.add_webhook_target(
            WebhookTarget(
                f"{self.engine_url}/webhooks/revenuecat", authorization=WEBHOOK_AUTHORIZATION
            )
        )
        self.rc = RevenueCat(api_key=DEFAULT_SECRET_KEY, base_url=self.mock_url)

    async def _fault_sleep(self, seconds: float) -> None:
        """The fault rules' stalls, cut short when the stack stops.  The ``timeouts`` preset
        holds uploads for 120 s, long after the engine gave up on them; a mock that waited
        for those to finish would keep ``close`` from returning for minutes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _release_stalls(self) -> None:
        self._stopping.set()

    def _default_config(self, clevertap_url: str) -> Config:
        return Config(
            clevertap=CleverTapConfig(
                account_id=PRODUCTION_ACCOUNT.account_id,
                passcode=Secret(PRODUCTION_ACCOUNT.passcodes[0]),
                base_url=clevertap_url,
                sandbox_account_id=SANDBOX_ACCOUNT.account_id,
                sandbox_passcode=Secret(SANDBOX_ACCOUNT.passcodes[0]),
                timeout_s=5.0,
            ),
            webhook=WebhookConfig(authorization=Secret(WEBHOOK_AUTHORIZATION)),
            outbox=OutboxConfig(url=f"sqlite:///{self.outbox_path}", lease_s=30.0),
            dispatcher=DispatcherConfig(backoff_initial_s=0.2, backoff_max_s=2.0),
            admin=AdminConfig(token=Secret(self.admin_token)),
        )

    def close(self) -> None:
        """Stop every part (the engine releases what it holds) and the background loop, then
        remove the temporary folder (unless ``keep``)."""
        if self._loop is not None:
            if hasattr(self, "rc"):
                self.rc.close()
            if hasattr(self, "_stopping"):
                self._run(self._release_stalls())
            for server in reversed(self._servers):
                try:
                    self._run(server.stop(), timeout=30)
                except Exception:
                    logger.exception("stopping a local stack server failed")
            self._servers.clear()
            # Whatever is left (a server that did not stop in time) is cancelled on its own
            # loop, so closing the loop destroys no pending task.
            with contextlib.suppress(Exception):
                self._run(_cancel_others(), timeout=5)
            self._loop.close()
            self._loop = None
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            logging.getLogger().setLevel(self._root_level)
            self._log_handler.close()
            self._log_handler = None
        if self._temporary:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._temporary = False

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the stack's loop, where the engine, its outbox and the mocks live
        (``rc-clevertap demo --backfill`` runs the backfill on ``stack.engine.outbox`` so)."""
        return self._run(coro, timeout=timeout)

    def _run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the local stack is not running; use it in a with block")
        return self._loop.run(coro, timeout=timeout)

    # -- driving -----------------------------------------------------------------------------

    def plan_population(self, users: int | None = None) -> PopulationPlan:
        """The seeded population (``users`` of them), created on the RevenueCat mock."""

        async def create() -> PopulationPlan:
            plan = self.revenuecat.plan_population(users or self.users, seed=self.seed)
            for user in plan.users:
                self.revenuecat.create_customer(**user.customer_kwargs())
            return plan

        self.plan = self._run(create())
        return self.plan

    def set_clevertap_ids(self, plan: PopulationPlan | None = None) -> int:
        """Set each planned user's CleverTap ID through the client, as a backend would."""
        plan = plan or self.plan or self.plan_population()
        count = 0
        for user in plan.users:
            if user.clevertap_id:
                self.rc.set_clevertap_id(user.app_user_id, user.clevertap_id)
                count += 1
        return count

    def play_lifecycles(self, plan: PopulationPlan | None = None, *, chunk: int = 200) -> int:
        """Run the plan's steps on the RevenueCat mock; each emits its webhooks."""
        plan = plan or self.plan or self.plan_population()
        steps = list(plan.steps)

        async def apply(part: list[Any]) -> None:
            for step in part:
                self.revenuecat.apply(step)

        for start in range(0, len(steps), chunk):  # yield the loop between chunks
            self._run(apply(steps[start : start + chunk]))
        return len(steps)

    def simulate(self, operation: str, app_user_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Run one store operation on the RevenueCat mock; returns the events it emitted.

        ``operation`` is one of ``mockserver.revenuecat.STORE_OPERATIONS``: ``start_trial``,
        ``buy``, ``convert_trial``, ``renew``, ``cancel``, ``uncancel``, ``refund``,
        ``billing_issue``, ``expire``, ``change_product``, ``buy_non_renewing``, ``transfer``,
        ``pause``; another name raises ``ValueError``.
        """

        async def run() -> list[Any]:
            return self.revenuecat.simulate(operation, app_user_id, *args, **kwargs)

        return self._run(run())

    def play(self, users: int | None = None) -> PopulationPlan:
        """Create the population, set most users' CleverTap IDs, play their lifecycles."""
        plan = self.plan_population(users)
        self.set_clevertap_ids(plan)
        self.play_lifecycles(plan)
        return plan

    def progress(self) -> StackProgress:
        return self._run(self._progress())

    async def _progress(self) -> StackProgress:
        deliveries = self.revenuecat.webhooks.deliveries()
        states = Counter(d.state for d in deliveries)
        stats = await self.engine.outbox.stats()
        failed = states[DeliveryState.FAILED] + states[DeliveryState.DROPPED]
        return StackProgress(
            webhooks_total=len(deliveries),
            webhooks_settled=states[DeliveryState.DELIVERED] + failed,
            webhooks_failed=failed,
            engine_pending=stats.pending + stats.leased,
            engine_settled=stats.delivered + stats.skipped + stats.dead,
        )

    def wait_settled(
        self,
        *,
        timeout: float = 120.0,
        on_progress: Callable[[StackProgress], None] | None = None,
    ) -> StackProgress:
        """Block until every webhook is settled and the engine holds nothing pending.

        Raises ``TimeoutError`` after ``timeout`` real seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress()
            if on_progress is not None:
                on_progress(progress)
            if progress.done and self._run(self.engine.idle()):
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local stack did not settle in {timeout:.0f} s")
            time.sleep(POLL_S)  # real time: this waits on real servers in another thread

    # -- what happened -----------------------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook the RevenueCat mock sent (or tried to), with its attempts."""

        async def read() -> list[dict[str, Any]]:
            return [d.to_json(include_event=True) for d in self.revenuecat.webhooks.deliveries()]

        return self._run(read())

    def clevertap_events(self) -> list[dict[str, Any]]:
        """Every event CleverTap stored, in both accounts, with the account id and latency."""

        async def read() -> list[dict[str, Any]]:
            stored = await self.engine.outbox.delivered_since(since=0.0, limit=10_000_000)
            acked = {event.event_id: event.received_at for event in stored}
            rows = []
            for account in (PRODUCTION_ACCOUNT, SANDBOX_ACCOUNT):
                for event in self.clevertap.events(account.account_id):
                    row = {"account_id": account.account_id, **event}
                    at = acked.get(str(event["evtData"].get("rc_event_id")))
                    row["latency_ms"] = (
                        None if at is None else (event["_received_at"] - at) * 1000.0
                    )
                    rows.append(row)
            return rows

        return self._run(read())

    def ledger(self, *, limit: int = 100_000) -> list[dict[str, Any]]:
        """The engine's delivery ledger: one row per upload attempt, newest first."""

        async def read() -> list[dict[str, Any]]:
            attempts = await self.engine.outbox.attempts(limit=limit)
            return [dataclasses.asdict(a) for a in attempts]

        return self._run(read())

    def status(self) -> dict[str, Any]:
        """The engine's status: outbox counts, accounts, counters."""

        async def read() -> dict[str, Any]:
            return dataclasses.asdict(await self.engine.status())

        return self._run(read())

    def dead_letters(self) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            return [dataclasses.asdict(d) for d in await self.engine.dead_letters(limit=100_000)]

        return self._run(read())

    def read_api(self) -> httpx.Client:
        """An HTTP client for the CleverTap mock's read APIs, production account headers set."""
        return httpx.Client(
            base_url=self.mock_url,
            headers={
                "X-CleverTap-Account-Id": PRODUCTION_ACCOUNT.account_id,
                "X-CleverTap-Passcode": PRODUCTION_ACCOUNT.passcodes[0],
            },
        )

    def dataframe(self, what: str) -> Any:
        """``webhooks``, ``clevertap_events`` or ``ledger`` as a pandas DataFrame."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "pandas is not installed: pip install 'rc-clevertap[notebooks]'"
            ) from exc
        rows: list[dict[str, Any]] = getattr(self, what)()
        return pd.json_normalize(rows)


async def _cancel_others() -> None:
    """Cancel every other task of the running loop and wait for them to finish."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
