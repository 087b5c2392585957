"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

Each test runs the local stack (engine with the dashboard, CleverTap mock) on loopback ports,
on SQLite and, with ``RC_CLEVERTAP_TEST_POSTGRES_URL`` set, on PostgreSQL.  Nothing waits for
a fixed time: Playwright's assertions wait for the page to show what they expect, and
``wait_settled`` waits for the engine to hold nothing pending.

Select them with ``-m browser``.  Without ``/usr/bin/chromium`` (Debian package ``chromium``)
they are skipped, except in CI (``CI`` set), where ``.ci/run`` installs it and they fail.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator

import httpx
import pytest
from engine_helpers import OUTBOX_BACKENDS, drop_postgres_schema, postgres_outbox_url, webhook
from playwright.sync_api import Browser, Page, expect, sync_playwright

from integration.app.localstack import WEBHOOK_AUTHORIZATION, LocalStack
from integration.config import Config, OutboxConfig
from mockserver.faults import FaultRule

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Root in a container has no user namespace for Chromium's sandbox; the rest keep a headless
# run from reaching the network on its own (updates, sync, field trials).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Playwright's waits, in milliseconds: generous for a busy two-core CI machine.
WAIT_MS = 20_000


def chromium_path() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(params=OUTBOX_BACKENDS)
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The local stack with no population, on a SQLite or PostgreSQL outbox."""
    schema = f"rc_test_{uuid.uuid4().hex[:16]}"

    def on_postgres(config: Config) -> Config:
        outbox = OutboxConfig(url=postgres_outbox_url(schema), lease_s=config.outbox.lease_s)
        return dataclasses.replace(config, outbox=outbox)

    options = {"config": on_postgres} if request.param == "postgres" else {}
    try:
        with LocalStack(users=0, **options) as local:
            yield local
    finally:
        if request.param == "postgres":
            drop_postgres_schema(schema)


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.engine_url)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def post_webhooks(stack: LocalStack, *bodies: bytes) -> None:
    with httpx.Client(base_url=stack.engine_url, timeout=10) as client:
        for body in bodies:
            response = client.post(
                "/webhooks/revenuecat",
                content=body,
                headers={"Authorization": WEBHOOK_AUTHORIZATION},
            )
            assert response.status_code == 200


def log_in(page: Page, stack: LocalStack) -> None:
    page.goto("/ui")
    page.get_by_label("Admin token").fill(stack.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()


def test_overview_counts_change_while_the_engine_delivers(page: Page, stack: LocalStack) -> None:
    """Logged in, the overview's numbers follow deliveries without the page reloading."""
    log_in(page, stack)
    delivered = page.locator('[data-count="delivered"]')
    expect(delivered).to_have_text("0")
    page.evaluate("window.notReloaded = true")
    post_webhooks(stack, *(webhook(f"live-{i}", user=f"user-{i}") for i in range(5)))
    expect(delivered).to_have_text("5")
    expect(page.locator('[data-count="received"]')).to_have_text("5")
    assert page.evaluate("window.notReloaded") is True
    account = page.locator('tr[data-account="LOCAL-PROD-0001"]')
    expect(account).to_contain_text("ms")  # its upload latency, from the ledger


def test_an_event_opens_with_its_body_and_its_upload_response(
    page: Page, stack: LocalStack
) -> None:
    """From the feed, one event shows its RevenueCat body and CleverTap's answer."""
    post_webhooks(stack, webhook("open-me", user="ada"), webhook("other", user="bob"))
    stack.wait_settled(timeout=30)
    log_in(page, stack)
    page.get_by_role("link", name="Events").click()
    page.get_by_label("App user id").fill("ada")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.feed tbody tr")).to_have_count(1)
    page.get_by_role("link", name="open-me").click()
    expect(page.locator('[data-field="body"]')).to_contain_text('"app_user_id": "ada"')
    expect(page.locator('[data-field="status"]')).to_have_text("200")
    expect(page.locator('[data-field="state"]')).to_have_text("delivered")


def test_retrying_a_dead_letter_delivers_it(page: Page, stack: LocalStack) -> None:
    """A dead letter, selected, retried and confirmed, is delivered on the next upload."""
    stack.faults.add(FaultRule("reject_records", route="/1/upload", code=513, share=1.0, count=1))
    post_webhooks(stack, webhook("doomed", user="cy"))
    stack.wait_settled(timeout=30)
    log_in(page, stack)
    page.get_by_role("link", name="Dead letters").click()
    page.get_by_label("select doomed").check()
    page.get_by_role("button", name="Retry selected").click()
    expect(page.locator(".question")).to_have_text("Retry 1 dead letter?")
    page.get_by_role("button", name="Yes, do it").click()
    expect(page.get_by_role("status")).to_have_text("Requeued: 1.")
    stack.wait_settled(timeout=30)
    page.get_by_role("link", name="Events").click()
    page.get_by_role("link", name="doomed").click()
    expect(page.locator('[data-field="state"]')).to_have_text("delivered")
    statuses = page.locator('[data-field="status"]')
    expect(statuses).to_have_count(2)  # the refused upload and the one that delivered it
    assert stack.dead_letters() == []


def test_without_the_token_nothing_opens(page: Page, stack: LocalStack) -> None:
    """A wrong token is refused on the login page and the API answers 401."""
    page.goto("/ui")
    page.get_by_label("Admin token").fill("not-the-admin-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
    assert page.context.cookies() == []
    response = page.goto("/ui/api/overview")
    assert response is not None and response.status == 401
