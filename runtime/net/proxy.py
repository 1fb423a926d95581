"""The service proxy: ClusterIP / NodePort / LoadBalancer TCP forwarding on one machine.

One ``ServiceProxy`` runs on the daemon's event loop (uvloop when installed: the daemon
installs uvloop's policy; measured, a Protocol-based proxy on uvloop does about twice the
throughput of a streams-based one, see bench/proxy_bench.py). For each Service key it
listens on the addresses it is given (``clusterIP:port``, ``0.0.0.0:nodePort``,
``<host>:port`` for a LoadBalancer) and forwards every accepted TCP connection to one
backend (``podIP:targetPort``).

Design:

* asyncio *Protocols*, not streams: an accepted client transport and its backend
  transport are paired; bytes go from ``data_received`` straight to the peer's
  ``write``. Backpressure: when a transport's write buffer passes its high-water mark
  (``pause_writing``), the *peer* stops reading (``pause_reading``) until
  ``resume_writing``. Half-close: ``eof_received`` on one side becomes ``write_eof`` on
  the other; the pair is closed when both directions are done or either side is lost.
* Backend choice: round robin over the current backend list; with
  ``affinity="ClientIP"`` a client IP stays on its backend while that backend is in the
  list and the client was seen within ``affinity_timeout`` seconds.
* Failover: if connecting to the chosen backend fails (refused, unreachable, or no
  answer within ``CONNECT_TIMEOUT`` seconds) the next backends are tried in round-robin
  order before giving up, so a pod that just stopped listening doesn't fail a request.
* No backends (or all failed): the client connection is reset at once (SO_LINGER 0 +
  abort), like kube-proxy's REJECT rule.
* ``set_service`` swaps the backend list atomically: new connections use the new list,
  established connections keep their backend and drain. ``remove(key)`` stops listening
  and leaves established connections to finish; ``close()`` stops everything.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, cast

CONNECT_TIMEOUT = 1.0
PENDING_LIMIT = 256 * 1024  # client bytes buffered while the backend connection is made
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close a TCP connection with RST (not FIN)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
    cast(asyncio.Transport, transport).abort()  # every caller hands over a TCP transport


@dataclass
class _Service:
    key: str
    backends: tuple[tuple[str, int], ...] = ()
    affinity: str = "None"
    affinity_timeout: float = 10800.0
    rr: int = 0
    sticky: dict[str, tuple[tuple[str, int], float]] = field(default_factory=dict)
    listeners: dict[tuple[str, int], asyncio.Server] = field(default_factory=dict)
    # counters
    accepted: int = 0
    active: int = 0
    rejected: int = 0
    connect_failures: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    def candidates(self, client_ip: str) -> list[tuple[str, int]]:
        """The backends to try for a new connection, first choice first."""
        backends = self.backends
        n = len(backends)
        if n == 0:
            return []
        if self.affinity == "ClientIP":
            now = time.monotonic()
            pinned = self.sticky.get(client_ip)
            if pinned is not None and now - pinned[1] <= self.affinity_timeout and pinned[0] in backends:
                first = backends.index(pinned[0])
                self.sticky[client_ip] = (pinned[0], now)
                return [backends[(first + i) % n] for i in range(n)]
        start = self.rr % n
        self.rr = start + 1
        if n == 1:
            return [backends[0]]
        return [backends[(start + i) % n] for i in range(n)]

    def connected(self, client_ip: str, backend: tuple[str, int]) -> None:
        if self.affinity == "ClientIP":
            self.sticky[client_ip] = (backend, time.monotonic())
            if len(self.sticky) > 4096:
                self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for ip, (_b, seen) in list(self.sticky.items()):
            if now - seen > self.affinity_timeout:
                del self.sticky[ip]


class _Backend(asyncio.Protocol):
    """The backend half of a pair."""

    __slots__ = ("client", "transport")

    def __init__(self, client: "_Client"):
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Pair right here rather than when _connect resumes: one loop iteration sooner.
        self.client.attach(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        c = self.client
        c.svc.bytes_down += len(data)
        c.transport.write(data)

    def eof_received(self) -> bool:
        self.client.backend_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.backend_lost(exc)

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class _Client(asyncio.Protocol):
    """The accepted (client) half of a pair; owns the pair's lifetime."""

    def __init__(self, proxy: "ServiceProxy", svc: _Service):
        self.proxy = proxy
        self.svc = svc
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.backend: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.client_eof = False
        self.backend_eof_seen = False
        self.closed = False
        self.paused = False
        self.timed_out = False
        self.pending_size = 0
        self.task: asyncio.Task[None] | None = None

    # ---- client side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        svc = self.svc
        svc.accepted += 1
        client_ip = ""
        if svc.affinity == "ClientIP":
            peer = transport.get_extra_info("peername")
            client_ip = peer[0] if peer else ""
        candidates = svc.candidates(client_ip)
        if not candidates:
            svc.rejected += 1
            self.closed = True
            _reset(transport)
            return
        svc.active += 1
        self.proxy._conns.add(self)
        # No pause_reading here (two syscalls per connection): the few bytes a client sends
        # before the backend answers are buffered; past PENDING_LIMIT reading is paused.
        self.task = self.proxy._loop.create_task(self._connect(client_ip, candidates))

    def _timeout(self) -> None:
        self.timed_out = True
        if self.task is not None:
            self.task.cancel()

    async def _connect(self, client_ip: str, candidates: list[tuple[str, int]]) -> None:
        loop = self.proxy._loop
        factory = lambda: _Backend(self)  # noqa: E731
        for backend in candidates:
            if self.closed:
                return
            self.timed_out = False
            timer = loop.call_later(CONNECT_TIMEOUT, self._timeout)
            try:
                await loop.create_connection(factory, backend[0], backend[1])
            except OSError:
                self.svc.connect_failures += 1
                continue
            except asyncio.CancelledError:
                if not self.timed_out:
                    raise
                if self.backend is not None:  # connected just as the timer fired
                    self.svc.connected(client_ip, backend)
                    return
                self.svc.connect_failures += 1
                continue
            finally:
                timer.cancel()
            self.svc.connected(client_ip, backend)
            return
        # every backend failed
        self.svc.rejected += 1
        self._finish(reset=True)

    def attach(self, transport: asyncio.Transport) -> None:
        """The backend connection is up (called from _Backend.connection_made)."""
        if self.closed:  # client went away while we were connecting
            transport.close()
            return
        self.backend = transport
        if self.pending:
            transport.write(b"".join(self.pending))
            self.pending.clear()
            if self.paused:
                self.paused = False
                self.transport.resume_reading()
        if self.client_eof:
            self._eof_to_backend()

    def data_received(self, data: bytes) -> None:
        self.svc.bytes_up += len(data)
        b = self.backend
        if b is not None:
            b.write(data)
        else:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > PENDING_LIMIT and not self.paused:
                self.paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.backend is not None:
            self._eof_to_backend()
        return True

    def _eof_to_backend(self) -> None:
        b = self.backend
        if b is None:
            return
        if self.backend_eof_seen:
            self._finish()
        elif b.can_write_eof():
            b.write_eof()
        else:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        b = self.backend
        if b is not None and not b.is_closing():
            if exc is None:
                b.close()  # flushes what we still had for it
            else:
                b.abort()
        self._done()

    def pause_writing(self) -> None:
        if self.backend is not None:
            self.backend.pause_reading()

    def resume_writing(self) -> None:
        if self.backend is not None:
            self.backend.resume_reading()

    # ---- backend side events
    def backend_eof(self) -> None:
        self.backend_eof_seen = True
        if self.client_eof:
            self._finish()
        elif self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self._finish()

    def backend_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        if exc is None:
            self.closed = True
            self.transport.close()  # flushes the response to the client
        else:
            self._finish(reset=True)

    def _finish(self, reset: bool = False) -> None:
        if not self.closed:
            self.closed = True
            if reset:
                _reset(self.transport)
            else:
                self.transport.close()
        b = self.backend
        if b is not None and not b.is_closing():
            b.abort() if reset else b.close()

    def _done(self) -> None:
        if self in self.proxy._conns:
            self.proxy._conns.discard(self)
            self.svc.active -= 1

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._finish(reset=True)


class ServiceProxy:
    """TCP proxy for Services. Create it on the running loop.

    ``key`` is any string naming a Service (the daemon uses ``"<namespace>/<name>"``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, backlog: int = 1024):
        self._loop = loop or asyncio.get_running_loop()
        self._backlog = backlog
        self._services: dict[str, _Service] = {}
        self._owner: dict[tuple[str, int], str] = {}
        self._conns: set[_Client] = set()

    async def set_service(
        self,
        key: str,
        listen: list[tuple[str, int]],
        backends: list[tuple[str, int]],
        affinity: str = "None",
        affinity_timeout: int = 10800,
    ) -> None:
        """Create missing listeners, close unwanted ones, swap backends atomically.

        Raises ``ValueError`` if a listen address belongs to another key and ``OSError``
        if it cannot be bound (the listeners created so far in this call stay; call again
        or ``remove``)."""
        if affinity not in ("None", "ClientIP"):
            raise ValueError(f"unsupported sessionAffinity {affinity!r}")
        svc = self._services.get(key)
        if svc is None:
            svc = self._services[key] = _Service(key)
        new_backends = tuple((h, int(p)) for h, p in backends)
        if svc.affinity != affinity or new_backends != svc.backends:
            live = set(new_backends)
            svc.sticky = {ip: v for ip, v in svc.sticky.items() if v[0] in live}
        svc.backends = new_backends
        svc.affinity = affinity
        svc.affinity_timeout = float(affinity_timeout)
        wanted = [(h, int(p)) for h, p in listen]
        for addr in wanted:
            owner = self._owner.get(addr)
            if owner is not None and owner != key:
                raise ValueError(f"{addr[0]}:{addr[1]} is already used by service {owner}")
        for addr in list(svc.listeners):
            if addr not in wanted:
                server = svc.listeners.pop(addr)
                self._owner.pop(addr, None)
                server.close()
        for addr in wanted:
            if addr in svc.listeners:
                continue
            server = await self._loop.create_server(
                lambda: _Client(self, svc), addr[0], addr[1], reuse_address=True, reuse_port=True, backlog=self._backlog
            )
            svc.listeners[addr] = server
            self._owner[addr] = key

    def listening(self, key: str) -> list[tuple[str, int]]:
        """The bound addresses of a service's listeners (port 0 → the actual port)."""
        svc = self._services.get(key)
        if svc is None:
            return []
        out = []
        for server in svc.listeners.values():
            for s in server.sockets or ():
                out.append(tuple(s.getsockname()[:2]))
        return out

    async def remove(self, key: str) -> None:
        """Stop listening for ``key``; its established connections drain."""
        svc = self._services.pop(key, None)
        if svc is None:
            return
        for addr, server in svc.listeners.items():
            self._owner.pop(addr, None)
            server.close()
        svc.listeners.clear()

    async def close(self) -> None:
        """Stop listening everywhere and reset every connection."""
        for key in list(self._services):
            await self.remove(key)
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()

    def stats(self) -> dict[str, Any]:
        """Per service: listeners, backends, accepted / active / rejected connections,
        backend connect failures, bytes up (client→backend) and down."""
        return {
            "connections_active": len(self._conns),
            "services": {
                key: {
                    "listen": [f"{h}:{p}" for h, p in s.listeners],
                    "backends": [f"{h}:{p}" for h, p in s.backends],
                    "affinity": s.affinity,
                    "accepted": s.accepted,
                    "active": s.active,
                    "rejected": s.rejected,
                    "connect_failures": s.connect_failures,
                    "bytes_up": s.bytes_up,
                    "bytes_down": s.bytes_down,
                }
                for key, s in self._services.items()
            },
        }


def install_uvloop() -> bool:
    """Install uvloop's event loop policy if uvloop is available (True when it is)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
