"""The mocks' shared HTTP helpers: the endpoint wrapper, the JSON body reader, error rendering."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

import mockserver.faults as faults
from mockserver._http import ControlError, DumpsJSON, WireError, endpoint, read_json


class Teapot(WireError):
    status = 418

    def body(self) -> Any:
        return {"teapot": str(self)}

    def headers(self) -> dict[str, str]:
        return {"X-Brew": "no"}


def serve(handler: Any, **options: Any) -> TestClient:
    app = Starlette(routes=[Route("/", endpoint(handler, **options), methods=["GET", "POST"])])
    return TestClient(app, raise_server_exceptions=False)


def test_a_wire_error_answers_its_status_body_and_headers() -> None:
    """A raised WireError is rendered with its own status, body and headers."""

    async def handler(request: Request) -> Any:
        raise Teapot("short and stout")

    response = serve(handler).get("/")
    assert response.status_code == 418
    assert response.json() == {"teapot": "short and stout"}
    assert response.headers["x-brew"] == "no"


def test_another_listed_error_answers_400_with_the_control_shape() -> None:
    """A ValueError listed in errors answers 400 {"error": message}."""

    async def handler(request: Request) -> Any:
        raise ValueError("bad rule")

    response = serve(handler, errors=(ControlError, ValueError)).get("/")
    assert (response.status_code, response.json()) == (400, {"error": "bad rule"})


def test_an_unexpected_error_answers_the_crash_body() -> None:
    """Any other exception answers the crash error, when one is given."""

    async def handler(request: Request) -> Any:
        raise KeyError("oops")

    response = serve(handler, crash=Teapot("crashed")).get("/")
    assert (response.status_code, response.json()) == (418, {"teapot": "crashed"})


def test_headers_go_on_every_answer() -> None:
    """What the headers hook returns is on successes and on errors."""

    async def handler(request: Request) -> Any:
        if request.method == "POST":
            raise ControlError("no")
        return {"ok": True}

    client = serve(handler, headers=lambda request: {"X-Limit": "7"})
    assert client.get("/").headers["x-limit"] == "7"
    assert client.post("/").headers["x-limit"] == "7"


@pytest.mark.parametrize(
    ("body", "expected"), [(b"", {"error": "empty"}), (b"[1]", [1]), (b"{", {"error": "bad"})]
)
def test_read_json_parses_defaults_and_refuses(body: bytes, expected: Any) -> None:
    """An empty body gives the default, JSON is parsed, anything else is the mock's error."""

    async def handler(request: Request) -> Any:
        return await read_json(request, ControlError, invalid="bad", empty={"error": "empty"})

    assert serve(handler).post("/", content=body).json() == expected


def test_read_json_refuses_a_body_over_max_bytes() -> None:
    """A body larger than max_bytes is refused before it is parsed."""

    async def handler(request: Request) -> Any:
        return await read_json(request, ControlError, max_bytes=4)

    response = serve(handler).post("/", content=b'"12345"')
    assert response.json() == {"error": "The body is larger than 4 bytes."}


def test_dumps_json_writes_json_dumps_defaults() -> None:
    """DumpsJSON writes what json.dumps writes, spaces and ASCII escapes included."""
    assert DumpsJSON({"a": [1, "é"]}).body == b'{"a": [1, "\\u00e9"]}'


def test_the_faults_package_exports_its_names_sorted() -> None:
    """mockserver.faults re-exports every name of __all__ (sorted) and its constants."""
    assert list(faults.__all__) == sorted(faults.__all__)
    assert all(hasattr(faults, name) for name in faults.__all__)
    assert "flaky" in faults.PRESETS and "drop" in faults.KINDS and faults.REJECT_SCOPE_KEY
