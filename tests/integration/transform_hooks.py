"""Transform functions the transform tests configure by reference ("transform_hooks:...")."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

Records = list[dict[str, Any]]
#: Set by a test when it is done: the hanging function then returns, freeing its thread.
RELEASE = threading.Event()


def raise_for_bob(event: dict[str, Any], route: str, records: Records) -> Records:
    if event["app_user_id"] == "bob":
        raise ValueError("bob's secret address")
    return records


def hang_for_bob(event: dict[str, Any], route: str, records: Records) -> Records:
    if event["app_user_id"] == "bob":
        RELEASE.wait(timeout=30)
    return records


async def async_hang_for_bob(event: dict[str, Any], route: str, records: Records) -> Records:
    if event["app_user_id"] == "bob":
        await asyncio.Event().wait()
    return records


def not_a_list(event: dict[str, Any], route: str, records: Records) -> object:
    return {"d": records}


not_callable = 42
