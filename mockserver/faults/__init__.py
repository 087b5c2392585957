"""Fault injection shared by both mocks: rules, presets, an ASGI middleware and HTTP control.

Modules: ``rules`` (:class:`FaultRule`, :data:`PRESETS`), ``injector`` (:class:`FaultInjector`,
its decisions), ``middleware`` (:class:`FaultMiddleware`, the error bodies), ``routes``
(:func:`fault_routes`, the control API under ``/_mock/faults``).

A :class:`FaultRule` picks requests (route glob, method, CleverTap account) and, with a
probability, does one thing to them.  Rules expire after ``count`` firings or ``ttl`` seconds
of the injector's clock, and every draw comes from one RNG seeded by the injector, so the same
seed and the same sequence of requests give the same faults.

Kinds::

    latency         sleep ``latency`` seconds, then serve normally (latency rules stack)
    timeout         sleep ``latency`` seconds (default 120, beyond a client's timeout), then
                    serve: the request is still processed, as a slow server would
    error           answer ``status`` (500, 502, 503, 504, ...) with the API's error body
    rate_limit      answer 429 with the API's body; ``burst`` makes it fire on that many
                    matching requests in a row once it fires
    drop            drop the connection: the client sees a transport error, nothing is stored
                    (``after=True``: the request is processed first, only the answer is lost)
    reject_records  serve the upload but reject a ``share`` of its valid records with ``code``
                    (555 retryable, or a permanent one such as 513); CleverTap uploads only
    slow_drip       serve the request, then send the answer's headers at once and its body
                    one byte per ``latency`` seconds (default 1) until done or the client
                    leaves: a client whose timeout bounds each read, not the request, waits
                    for the whole drip
    lying_200       answer 200 with a body that contradicts success, nothing stored:
                    ``lie`` "empty" (``{}``), "suspended" (``{"status": "fail", "error":
                    "Account suspended", "code": 401}``) or "short" (``success`` with a tenth
                    of the records missing from ``processed``); None draws one per request
    unlocatable_partial  as ``reject_records``, but no failure of the answer names its
                    record: each "Skipped record number : N" is dropped, pointed past the
                    upload or reworded; CleverTap uploads only
    redirect        answer ``status`` (default 302) with a ``Location`` to the same path over
                    https, nothing processed: a wrong base URL, or a proxy in between

For each request the middleware applies every matching latency rule, then the first matching
rule of any other kind.  Paths under ``/_mock`` are never faulted.

How a dropped connection is modelled (``drop``): the middleware starts a response (status 200,
a ``content-length`` it never fulfils) and raises :class:`ConnectionDropped`.

- Under uvicorn the headers are on the wire and the server, seeing the app fail after the
  response started, closes the connection: httpx raises ``RemoteProtocolError`` ("peer closed
  connection without sending complete message body").  A log filter keeps uvicorn from
  logging a traceback for these deliberate drops.
- In process, ``httpx.ASGITransport`` and Starlette's ``TestClient`` re-raise what the app
  raised.  :class:`ConnectionDropped` subclasses ``httpx.RemoteProtocolError``, so a client sees
  the same exception type as over a socket and its transport-error handling is exercised.

Starting the response first matters: Starlette's ``ServerErrorMiddleware`` turns an exception
raised before the response started into a 500, which is not a dropped connection.
"""

from __future__ import annotations

from mockserver.faults.injector import REJECT_SCOPE_KEY as REJECT_SCOPE_KEY
from mockserver.faults.injector import (
    Decision,
    FaultInjector,
    RecordRejection,
    forced_rejections,
)
from mockserver.faults.middleware import (
    ConnectionDropped,
    FaultMiddleware,
    error_body,
    lying_answer,
)
from mockserver.faults.routes import fault_routes
from mockserver.faults.rules import KINDS as KINDS
from mockserver.faults.rules import LIES as LIES
from mockserver.faults.rules import PRESETS as PRESETS
from mockserver.faults.rules import FaultKind, FaultRule, Preset

# Constants (KINDS, LIES, PRESETS, REJECT_SCOPE_KEY) are re-exported by alias and kept out of
# __all__, whose plain sorted() order the export tests check (as in mockserver.clevertap).

__all__ = [
    "ConnectionDropped",
    "Decision",
    "FaultInjector",
    "FaultKind",
    "FaultMiddleware",
    "FaultRule",
    "Preset",
    "RecordRejection",
    "error_body",
    "fault_routes",
    "forced_rejections",
    "lying_answer",
]
