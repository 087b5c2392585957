"""Constants and small helpers shared by the RevenueCat mock tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

START_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
PUBLIC = "appl_test_public"
SECRET = "sk_test_secret_value"
V2 = "sk_test_v2_value"
PROJECT = "proj1ab2c3d4"
V1_SECRET = {"Authorization": f"Bearer {SECRET}"}
V1_PUBLIC = {"Authorization": f"Bearer {PUBLIC}"}
V2_AUTH = {"Authorization": f"Bearer {V2}"}


# Every field of RevenueCat's subscription lifecycle samples (sample-events_1..13), written out
# by hand: what each lifecycle event of the mock carries.
LIFECYCLE_FIELDS = frozenset({
    "type", "id", "app_id", "event_timestamp_ms", "app_user_id", "original_app_user_id",
    "aliases", "subscriber_attributes", "experiments", "product_id", "entitlement_ids",
    "entitlement_id", "period_type", "purchased_at_ms", "expiration_at_ms", "environment",
    "presented_offering_id", "transaction_id", "original_transaction_id", "is_family_share",
    "country_code", "currency", "price", "price_in_purchased_currency", "store",
    "takehome_percentage", "tax_percentage", "commission_percentage", "offer_code",
    "renewal_number",
})  # fmt: skip


def v2_url(customer_id: str, suffix: str = "") -> str:
    return f"/v2/projects/{PROJECT}/customers/{customer_id}{suffix}"


class Receiver:
    """An in-process webhook receiver answering with scripted statuses, recording each POST."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        *,
        on_request: Callable[[Request], Awaitable[None]] | None = None,
    ) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[dict[str, Any]] = []
        self.on_request = on_request
        self.app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if self.on_request is not None:
            await self.on_request(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://receiver"
        )
