"""Serving ASGI apps on real loopback sockets (these tests are about sockets)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mockserver.serving import BackgroundServer, LoopThread


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _app() -> Starlette:
    return Starlette(routes=[Route("/", _hello)])


async def test_background_server_binds_a_free_port_and_serves() -> None:
    """A server started on port 0 reports the port it bound and answers there."""
    server = BackgroundServer(_app())
    url = await server.start()
    try:
        assert server.port != 0
        async with httpx.AsyncClient() as http:
            response = await http.get(url + "/")
        assert response.text == "hello"
    finally:
        await server.stop()


def test_loop_thread_runs_a_server_for_synchronous_callers() -> None:
    """Synchronous code can start a server in a loop thread and call it with a blocking client."""
    loop = LoopThread()
    server = BackgroundServer(_app())
    try:
        url = loop.run(server.start())
        assert httpx.get(url + "/").text == "hello"
    finally:
        loop.run(server.stop())
        loop.close()
