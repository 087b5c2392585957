"""One-off helpers: a client opened and closed around a single call."""

from __future__ import annotations

import httpx

from client._base import DEFAULT_BASE_URL, DEFAULT_TIMEOUT
from client._client import RevenueCat
from client._retry import DEFAULT_MAX_RETRIES

__all__ = ["set_clevertap_id"]


def set_clevertap_id(
    app_user_id: str,
    clevertap_id: str | None,
    *,
    api_key: str,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    http_client: httpx.Client | None = None,
) -> None:
    """Set (or, with ``None`` or ``""``, delete) one customer's ``$clevertapId``.

    ```python
    import client
    client.set_clevertap_id("user-1", "ct-42", api_key="sk_...")
    ```

    For more than a few calls, keep a :class:`client.RevenueCat` open instead: this opens and
    closes a connection pool each time.
    """
    with RevenueCat(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=http_client,
    ) as rc:
        rc.set_clevertap_id(app_user_id, clevertap_id)
