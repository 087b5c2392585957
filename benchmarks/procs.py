"""Child processes for the benchmarks: start, wait until they answer, kill, read their memory.

Every wait here is a condition with a deadline (an HTTP answer, a process exit), never a fixed
sleep; polls are 20 ms apart.  Output goes to a log file whose tail is shown when a child dies.

Example::

    engine = Service("engine", [sys.executable, "-m", "integration.app.cli", "serve", ...],
                     url="http://127.0.0.1:8123", ready_path="/healthz", log=workdir / "e.log")
    await engine.start()
    engine.kill()                      # SIGKILL, reaped
    await engine.start()               # same port, same outbox
    await engine.stop()                # SIGTERM: a clean shutdown
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx

__all__ = [
    "REPO",
    "Service",
    "beside_ceiling",
    "free_port",
    "peak_rss_mb",
    "per_s",
    "rss_mb",
    "wait_for",
]

REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.02


def free_port() -> int:
    """A loopback port free right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    what: str,
    poll_s: float = POLL_S,
) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` naming ``what`` after the deadline.

    Conditions that query the outbox (``/healthz`` counts rows) take a longer ``poll_s``, so
    the measuring does not compete with the work measured."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def rss_mb(pid: int) -> float:
    """Resident memory now (Linux ``VmRSS``), in MiB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory since the process started (Linux ``VmHWM``), in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


class Service:
    """One child process serving HTTP on loopback, restartable on the same port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        url: str,
        ready_path: str,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.url = url
        self.ready_path = ready_path
        self.log = log
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process without waiting for it (see :meth:`start`)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO
            )
        self.starts += 1

    async def start(self, *, timeout_s: float = 30.0) -> None:
        """Start the process and wait until ``ready_path`` answers 200."""
        self.spawn()
        async with httpx.AsyncClient(timeout=2.0) as http:

            async def ready() -> bool:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited at start-up:\n{self.tail()}")
                try:
                    answer = await http.get(self.url + self.ready_path)
                except httpx.TransportError:
                    return False
                return answer.status_code == 200

            await wait_for(ready, timeout_s=timeout_s, what=f"{self.name} to answer")

    def signal(self, number: int) -> None:
        """Send a signal to the running process (e.g. SIGUSR1 to ``servers.py engine --hold``)."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(number)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would, and reap the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def stop(self, *, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL if it has not exited by the deadline."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

            async def exited() -> bool:
                return proc.poll() is not None

            try:
                await wait_for(exited, timeout_s=timeout_s, what=f"{self.name} to exit")
            except TimeoutError:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def python(*args: str) -> list[str]:
    """A command line running this interpreter (the project's virtualenv)."""
    return [sys.executable, *args]


def per_s(count: float, seconds: float) -> float:
    """``count`` per second, rounded to 0.1 (0 for no time)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def beside_ceiling(key: str, count: float, ours_s: float, ceiling_s: float) -> dict[str, float]:
    """``{key: our rate, "ceiling_per_s": the ceiling's rate, "ratio": ours / ceiling}`` for
    ``count`` items done in ``ours_s`` by us and in ``ceiling_s`` by the ceiling."""
    ours = per_s(count, ours_s)
    ceiling = per_s(count, ceiling_s)
    return {
        key: ours,
        "ceiling_per_s": ceiling,
        "ratio": round(ours / ceiling, 3) if ceiling else 0.0,
    }
