"""The transform hook: your function between mapping and upload (``[transform] callable``).

The dispatcher maps each leased event to CleverTap records, then hands the route's transform
every event of the batch with its records; what it returns is what is uploaded::

    def transform(event: dict, route: str, records: list[dict]) -> list[dict]:
        ...  # change records, add some, or return [] to send nothing for this event

``event`` is the RevenueCat event object as received (a fresh copy per delivery), ``route``
the route's name (``"default"`` without ``[[routes]]``), ``records`` the records the mapping
made, which the function may change in place.  An ``async def`` function is awaited on the
event loop; a plain function runs in one of :data:`WORKER_THREADS` worker threads, so a slow
one never holds up the receiver.

What each outcome does to the event (the others of the batch are not affected)::

    a list of records   -> those are sent (property budget, chunks, verdicts as usual)
    []                  -> skipped, reason code "transform"
    raised              -> dead letter "transform raised <ExceptionType>" (never the message:
                           it may quote event data)
    not done within     -> dead letter "transform timed out"; [transform] timeout_s is the
    timeout_s              whole batch's allowance, counted from when its first call starts
    anything else       -> dead letter "transform returned ...: not a list of CleverTap records"

A record is checked minimally: a dict whose ``type`` is ``"event"`` (with a string ``evtName``
and a dict ``evtData``) or ``"profile"`` (with a dict ``profileData``), addressed by a string
``identity`` or ``objectId``.  CleverTap judges the rest, as for mapped records.

A plain function that never returns keeps its worker thread: Python cannot stop a thread.
Its event is dead-lettered at the deadline.  A batch goes to the workers as one job, which
:data:`JOB_WORKERS` of them share (each calls the next event not yet started), so a hung call
holds up only its own event while the job's other worker is free; when both are held, the
batch's events not yet started time out at the deadline, and once every worker is held, each
later event times out too, which the dead-letter reasons make visible.  The workers are daemon
threads, so such a function does not keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from integration._exceptions import ConfigError

__all__ = ["WORKER_THREADS", "Transform", "TransformResult", "checked_records", "load_callable"]

#: Worker threads shared by every plain (not async) transform function of one process.
WORKER_THREADS = 8
#: The skip code of an event its transform returned no records for.
SKIP_CODE = "transform"

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TransformResult:
    """One event's outcome: the records to send, or why it is dead-lettered."""

    records: list[Record] | None
    error: str | None = None


def load_callable(reference: str, key: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; a :class:`ConfigError` naming ``key`` otherwise."""
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # an import that fails for any reason is a start-up error
        raise ConfigError(
            f"{key}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{key}: module {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise ConfigError(f"{key}: {reference!r} is not callable")
    return target  # type: ignore[no-any-return]  # checked callable just above


def checked_records(result: object) -> TransformResult:
    """``result`` as the records to send, or the dead-letter reason it deserves."""
    if not isinstance(result, list):
        return TransformResult(
            None, f"transform returned {type(result).__name__}: not a list of CleverTap records"
        )
    for index, record in enumerate(result):
        problem = _record_problem(record)
        if problem is not None:
            return TransformResult(
                None, f"transform returned a list whose item {index} {problem}: not a list of "
                "CleverTap records",
            )  # fmt: skip
    return TransformResult(result)


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return f"is a {type(record).__name__}"
    kind = record.get("type")
    if kind == "event":
        if not isinstance(record.get("evtName"), str) or not isinstance(
            record.get("evtData"), dict
        ):
            return "is an event without a string evtName and a dict evtData"
    elif kind == "profile":
        if not isinstance(record.get("profileData"), dict):
            return "is a profile without a dict profileData"
    else:
        return 'has no type "event" or "profile"'
    # Written out, not a generator over the two keys: this runs for every record returned.
    if not (isinstance(record.get("identity"), str) or isinstance(record.get("objectId"), str)):
        return "has no string identity or objectId"
    return None


class Transform:
    """One configured transform function, run over a batch's events with a time limit.

    Example::

        transform = Transform(load_callable("myhooks:transform", "transform.callable"),
                              timeout_s=5.0)
        outcomes = await transform.apply([(event, records), ...], route="default")

    Parameters:
        function: called as ``function(event, route, records)``; sync or ``async def``.
        timeout_s: the whole batch's allowance (``[transform] timeout_s``).
    """

    def __init__(self, function: Callable[..., Any], *, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError("need timeout_s > 0")
        self.function = function
        self.timeout_s = timeout_s
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 (an async __call__ method)
        )

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", type(self.function).__qualname__)
        return f"Transform({name}, timeout_s={self.timeout_s})"

    async def apply(
        self, items: Sequence[tuple[dict[str, Any], list[Record]]], *, route: str
    ) -> list[TransformResult]:
        """Each ``(event, records)``'s outcome, in order (see the module docstring)."""
        if not items:
            return []
        if self.is_async:
            futures: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(self.function(event, route, records))
                for event, records in items
            ]
            _, late = await asyncio.wait(futures, timeout=self.timeout_s)
            for future in late:
                future.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
            outcomes: list[TransformResult] = []
            for future in futures:
                if future in late:
                    outcomes.append(TransformResult(None, "transform timed out"))
                elif (exc := future.exception()) is not None:
                    outcomes.append(_outcome(None, exc))
                else:
                    outcomes.append(_outcome(future.result(), None))
            return outcomes
        # A plain function: the whole batch is one job for the worker threads, handed back to
        # the event loop once, not once per event (issue 21: a thread hand-off per event cost
        # more than the mapping and the transform together).
        job = _WORKERS.submit(self.function, route, items)
        try:
            await asyncio.wait_for(asyncio.shield(job.done), timeout=self.timeout_s)
        except TimeoutError:
            pass  # what has not returned by now timed out
        finally:
            # At the deadline, or when the delivery is cancelled (shutdown): the events no
            # worker has started are not started any more.
            job.stop()
        return [
            TransformResult(None, "transform timed out") if outcome is None else _outcome(*outcome)
            for outcome in job.snapshot()
        ]


def _outcome(result: object, error: BaseException | None) -> TransformResult:
    if error is not None:
        return TransformResult(None, f"transform raised {type(error).__name__}")
    return checked_records(result)


#: Worker threads that take part in one batch's job: two, so that one event whose function
#: never returns does not hold up the rest of its batch (the other worker goes on with it).
JOB_WORKERS = 2

_Outcome = tuple[object, BaseException | None]


class _Job:
    """One batch for the worker threads: each worker takes the next event not yet started
    (a shared cursor), so a call that never returns holds only its own event.  The last
    event to finish resolves ``done`` on the event loop: one hand-off per batch.
    ``outcomes[i]`` is ``(result, error)`` once event ``i``'s call returned or raised.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        function: Callable[..., Any],
        route: str,
        items: Sequence[tuple[dict[str, Any], list[Record]]],
    ) -> None:
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.function = function
        self.route = route
        self.items = items
        self.outcomes: list[_Outcome | None] = [None] * len(items)
        self._lock = threading.Lock()
        self._next = 0
        self._left = len(items)
        self._stopped = False

    def take(self) -> int | None:
        """The index of the next event to call; None when none is left or the job stopped."""
        with self._lock:
            if self._stopped or self._next >= len(self.items):
                return None
            self._next += 1
            return self._next - 1

    def finish(self, index: int, result: object, error: BaseException | None) -> None:
        with self._lock:
            self.outcomes[index] = (result, error)
            self._left -= 1
            last = self._left == 0
        if last:
            # RuntimeError: the loop closed while the function ran; nobody waits for this.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def stop(self) -> None:
        """At the deadline: start no more of its events."""
        with self._lock:
            self._stopped = True

    def snapshot(self) -> list[_Outcome | None]:
        """The outcomes so far (None: not returned, which the caller calls timed out)."""
        with self._lock:
            return list(self.outcomes)


class _Workers:
    """Daemon worker threads for plain transform functions, started on first use.

    Not a ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one function
    that never returns would keep the process from ever exiting.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(
        self,
        function: Callable[..., Any],
        route: str,
        items: Sequence[tuple[dict[str, Any], list[Record]]],
    ) -> _Job:
        """Queue one batch; :data:`JOB_WORKERS` workers (or fewer for a short batch) take
        part in it."""
        job = _Job(asyncio.get_running_loop(), function, route, items)
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"rc-clevertap transform {len(self._threads)}",
                    daemon=True,
                )  # fmt: skip
                self._threads.append(thread)
                thread.start()
        for _ in range(min(JOB_WORKERS, len(items))):
            self._jobs.put(job)
        return job

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            while (index := job.take()) is not None:
                event, records = job.items[index]
                try:
                    result = job.function(event, job.route, records)
                except BaseException as exc:  # handed to the event loop, which names its type
                    job.finish(index, None, exc)
                else:
                    job.finish(index, result, None)


_WORKERS = _Workers(WORKER_THREADS)
