"""REST connections: a cap on how many are open (below the descriptor limit), an idle timeout
for connections with no request in progress, and a header timeout for a request whose headers
never finish (slowloris); plus the memory budget for request bodies being received, and log
lines that repeat at most once per interval per condition.

aiohttp's own keep-alive timeout starts only after a first answer and has no header timeout, so
each accepted socket is wrapped in ``_Guarded``, a protocol that forwards to aiohttp's and
tells the guard when bytes arrive; ``middleware`` tells it when a request's headers are in
and when its answer is done. One sweep a fraction of a second closes what is overdue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

import grpc

from .errors import ServingError, unavailable
from .limits import SMALL_REQUEST_BYTES

log = logging.getLogger("inception.serving")

IDLE, HEADERS, BUSY = "idle", "headers", "busy"


def _reply(status: str, message: str) -> bytes:
    body = ('{"error": "' + message.replace('"', "'") + '"}').encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    )
    return head.encode() + body


class RateLimitedLog:
    """``warning(key, ...)`` logs at most once per ``interval`` seconds per ``key``; the next
    line says how many were left out meanwhile."""

    def __init__(self, interval: float):
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: collections.Counter = collections.Counter()

    def warning(self, key: str, message: str, *args) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.interval:
            self._skipped[key] += 1
            return False
        self._last[key] = now
        skipped = self._skipped.pop(key, 0)
        suffix = f" ({skipped} more like this in the last {self.interval:g} s)" if skipped else ""
        log.warning(message + suffix, *args)
        return True


class _Conn:
    __slots__ = ("transport", "state", "since")

    def __init__(self, transport):
        self.transport, self.state, self.since = transport, IDLE, time.monotonic()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one socket, created only once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard, factory):
        self.guard, self.factory, self.inner, self.conn = guard, factory, None, None

    def connection_made(self, transport):
        self.conn = self.guard.admit(transport)
        if self.conn is None:
            return
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def data_received(self, data):
        if self.inner is None:
            return
        if self.conn.state == IDLE:
            self.conn.state, self.conn.since = HEADERS, time.monotonic()
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc):
        if self.inner is None:
            return
        self.guard.lost(self.conn)
        self.inner.connection_lost(exc)
        self.inner = None  # aiohttp's handler (and what it buffered) goes now, not at a GC

    def pause_writing(self):
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self):
        if self.inner is not None:
            self.inner.resume_writing()


class ConnectionGuard:
    """Open REST connections: at most ``max_connections`` (more are answered 503 and closed at
    once), idle ones closed after ``idle_timeout`` s, and requests whose headers have not all
    arrived ``header_timeout`` s after their first byte answered 408 and closed."""

    def __init__(self, max_connections: int, idle_timeout: float, header_timeout: float, logs):
        self.max_connections = max_connections
        self.idle_timeout, self.header_timeout = idle_timeout, header_timeout
        self.logs = logs
        self.open: dict[object, _Conn] = {}
        self.closed = collections.Counter()  # why connections were closed (for tests, metrics)
        self._sweeper = None

    def protocol_factory(self, factory):
        return lambda: _Guarded(self, factory)

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def admit(self, transport) -> _Conn | None:
        if len(self.open) >= self.max_connections:
            self.closed["over the cap"] += 1
            self.logs.warning(
                "connections",
                "REST connection refused: %d open, the most allowed (--max-connections)",
                len(self.open),
            )
            with contextlib.suppress(Exception):
                transport.write(
                    _reply(
                        "503 Service Unavailable",
                        f"the server has {len(self.open)} connections open, its most "
                        "(--max-connections); retry later.",
                    )
                )
            transport.close()
            return None
        conn = self.open[transport] = _Conn(transport)
        return conn

    def lost(self, conn: _Conn) -> None:
        self.open.pop(conn.transport, None)

    def busy(self, transport) -> None:
        """A request's headers are in (its body and the model are timed elsewhere)."""
        conn = self.open.get(transport)
        if conn is not None:
            conn.state = BUSY

    def done(self, transport) -> None:
        """A request was answered: the connection is idle until the next one starts."""
        conn = self.open.get(transport)
        if conn is not None:
            conn.state, conn.since = IDLE, time.monotonic()

    async def _sweep(self) -> None:
        every = max(0.05, min(1.0, self.idle_timeout / 4, self.header_timeout / 4))
        while True:
            await asyncio.sleep(every)
            self.sweep()

    def sweep(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for conn in list(self.open.values()):
            if conn.state == IDLE and now - conn.since > self.idle_timeout:
                self.closed["idle"] += 1
                self._close(conn)
            elif conn.state == HEADERS and now - conn.since > self.header_timeout:
                self.closed["headers too slow"] += 1
                self.logs.warning(
                    "headers",
                    "REST connection closed: request headers not complete within %g s "
                    "(--header-timeout-seconds)",
                    self.header_timeout,
                )
                with contextlib.suppress(Exception):
                    conn.transport.write(
                        _reply(
                            "408 Request Timeout",
                            f"the request headers did not arrive within {self.header_timeout:g}"
                            " s (--header-timeout-seconds).",
                        )
                    )
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self.open.pop(conn.transport, None)
        conn.transport.close()


class ReceiveBudget:
    """The bytes of all request bodies in flight, from the first byte received to the answer:
    a request takes its declared length (or the request limit when it declares none) before
    its body is read and gives it back when answered. Bodies over ``small`` bytes queue first
    come first served for all but ``reserve`` bytes, which stay for small bodies (a JPEG or
    two), so that clients holding large bodies open cannot make every small request wait."""

    def __init__(self, limit: int, small: int = SMALL_REQUEST_BYTES, reserve: int | None = None):
        self.limit, self.small = limit, small
        self.reserve = limit // 8 if reserve is None else reserve
        self.used = 0
        self._waiters: collections.deque = collections.deque()

    def _fits(self, size: int) -> bool:
        room = self.limit if size <= self.small else self.limit - self.reserve
        return self.used + size <= room

    async def take(self, size: int, timeout: float, gone=lambda: False) -> int:
        """Waits up to ``timeout`` s for ``size`` bytes (UNAVAILABLE after that; CANCELLED as
        soon as ``gone()`` says the client left)."""
        queued = any(s > self.small for s, _ in self._waiters)
        if self._fits(size) and (size <= self.small or not queued):
            self.used += size
            return size
        waiter = asyncio.get_running_loop().create_future()
        entry = [size, waiter]
        self._waiters.append(entry)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), 0.25)
                    return size
                if gone():
                    raise ServingError(
                        grpc.StatusCode.CANCELLED,
                        "the client closed the connection while its body waited.",
                    )
                if time.monotonic() > deadline:
                    raise unavailable(
                        f"the server is receiving {self.used} bytes of other requests, its "
                        f"most (--max-receive-bytes {self.limit}); retry shortly."
                    )
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give(size)  # granted just as this wait ended
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()
            raise

    def give(self, size: int) -> None:
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        """Grants waiting bodies in order: large ones one after the other (the first that does
        not fit holds the later large ones back), small ones whenever they fit."""
        blocked = False
        for entry in list(self._waiters):
            size, waiter = entry
            if waiter.done():
                self._waiters.remove(entry)
                continue
            large = size > self.small
            if (large and blocked) or not self._fits(size):
                blocked = blocked or large
                continue
            self._waiters.remove(entry)
            self.used += size
            waiter.set_result(None)
