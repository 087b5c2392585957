"""Helpers for the client tests: a scripted HTTP server, a sleep recorder, a fixed clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

API_KEY = "sk_test_SuperSecretKey1234567890"
NOW = 1_700_000_000.0  # the fixed clock: seconds since the epoch
NOW_MS = 1_700_000_000_000

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler that records requests and plays back scripted replies.

    Each request takes the next reply; the last one repeats.  An exception is raised as if
    the transport failed.
    """

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [httpx.Response(200, json={})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        return self(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


class Sleeps:
    """Records the durations a client asked to sleep for, and returns at once."""

    def __init__(self) -> None:
        self.durations: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.durations.append(seconds)


def fixed_clock() -> float:
    return NOW
