"""The service proxy: ClusterIP / NodePort / LoadBalancer forwarding on one machine, TCP here, UDP
in udp.py (SCTP is not supported: the reconcile pass says so in a Warning event and skips it).

One ``ServiceProxy`` runs on the daemon's event loop (uvloop when installed: the daemon
installs uvloop's policy; measured, a Protocol-based proxy on uvloop does about twice the
throughput of a streams-based one, see bench/proxy_bench.py). For each Service key it
listens on the addresses it is given (``clusterIP:port``, ``0.0.0.0:nodePort``,
``<host>:port`` for a LoadBalancer) and forwards every accepted TCP connection to one
backend (``podIP:targetPort``); a UDP Service port keeps a session per client (udp.py).

Design:

* asyncio *Protocols*, not streams: an accepted client transport and its backend
  transport are paired; bytes go from ``data_received`` straight to the peer's
  ``write``. Backpressure: when a transport's write buffer passes its high-water mark
  (``pause_writing``), the *peer* stops reading (``pause_reading``) until
  ``resume_writing``. Half-close: ``eof_received`` on one side becomes ``write_eof`` on
  the other; the pair is closed when both directions are done or either side is lost.
* Backend choice (balance.py): round robin over the current backend list; with
  ``affinity="ClientIP"`` a client IP stays on its backend while that backend is in the
  list and the client was seen within ``affinity_timeout`` seconds.
* Failover: if connecting to the chosen backend fails (refused, unreachable, or no
  answer within ``CONNECT_TIMEOUT`` seconds) the next backends are tried in round-robin
  order before giving up, so a pod that just stopped listening doesn't fail a request.
* No backends (or all failed): the client connection is reset at once (SO_LINGER 0 +
  abort), like kube-proxy's REJECT rule.
* ``set_service`` swaps the backend list atomically: new connections use the new list,
  established connections keep their backend and drain. It returns the listen addresses it
  could not bind (a port taken by another program: EADDRINUSE, EACCES), each with why; the
  next call tries them again, so the reconcile pass (which calls it every pass) can hold a
  LoadBalancer ``<pending>`` until its port is free. ``remove(key)`` stops listening
  and leaves established connections to finish; ``close()`` stops everything.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from typing import Any, cast

from .balance import Addr, Balancer
from .udp import Sweeper, UdpService

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


class _Service(Balancer):
    """A TCP Service port: its listeners, its backends (balance.py) and its counters."""

    def __init__(self, key: str, proxy: ServiceProxy):
        super().__init__()
        self.key = key
        self.proxy = proxy
        self.listeners: dict[Addr, asyncio.Server] = {}
        self.accepted = 0
        self.active = 0
        self.rejected = 0
        self.connect_failures = 0
        self.bytes_up = 0
        self.bytes_down = 0

    async def bind(self, addr: Addr) -> None:
        """Listen on ``addr`` (OSError if it cannot be bound)."""
        proxy = self.proxy
        self.listeners[addr] = await proxy._loop.create_server(
            lambda: _Client(proxy, self), addr[0], addr[1], reuse_address=True, reuse_port=True, backlog=proxy._backlog
        )

    def unbind(self, addr: Addr) -> None:
        """Stop listening on ``addr``; connections it accepted drain."""
        server = self.listeners.pop(addr, None)
        if server is not None:
            server.close()

    def close(self) -> None:
        for addr in list(self.listeners):
            self.unbind(addr)

    def stats(self) -> dict[str, Any]:
        return {
            "protocol": "TCP",
            "listen": [f"{h}:{p}" for h, p in self.listeners],
            "backends": [f"{h}:{p}" for h, p in self.backends],
            "affinity": self.affinity,
            "accepted": self.accepted,
            "active": self.active,
            "rejected": self.rejected,
            "connect_failures": self.connect_failures,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


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


PROTOCOLS = ("TCP", "UDP")


def bind_error(e: OSError) -> str:
    """Why a listener could not be bound, the same on every event loop: ``address already in use
    (EADDRINUSE)``, ``permission denied (EACCES)``."""
    if e.errno:
        return f"{os.strerror(e.errno).lower()} ({errno.errorcode.get(e.errno, e.errno)})"
    return str(e)


class ServiceProxy:
    """TCP and UDP proxy for Services. Create it on the running loop.

    ``key`` is any string naming a Service port (the daemon uses ``"<namespace>/<name>:<port>"``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, backlog: int = 1024):
        self._loop = loop or asyncio.get_running_loop()
        self._backlog = backlog
        self._services: dict[str, _Service] = {}
        self._udp: dict[str, UdpService] = {}
        self._sweeper = Sweeper(self._loop, self._udp)
        self._owner: dict[tuple[str, str, int], str] = {}  # (protocol, host, port) -> key
        self._conns: set[_Client] = set()

    def _service(self, key: str, protocol: str) -> _Service | UdpService:
        """The service of ``key``, made for ``protocol`` (a key that changed protocol starts anew)."""
        if protocol == "UDP":
            if key in self._services:
                self._drop(key)
            udp = self._udp.get(key)
            if udp is None:
                udp = self._udp[key] = UdpService(key, self._loop, self._sweeper)
            return udp
        if key in self._udp:
            self._drop(key)
        tcp = self._services.get(key)
        if tcp is None:
            tcp = self._services[key] = _Service(key, self)
        return tcp

    async def set_service(
        self,
        key: str,
        listen: list[tuple[str, int]],
        backends: list[tuple[str, int]],
        affinity: str = "None",
        affinity_timeout: int = 10800,
        protocol: str = "TCP",
    ) -> dict[Addr, str]:
        """Create missing listeners, close unwanted ones, swap backends atomically.

        Returns the listen addresses that could not be bound, each with why (``address already
        in use (EADDRINUSE)``, ``in use by service <key>``); the others work. A later call tries
        them again. Raises ``ValueError`` for an unsupported affinity or protocol."""
        if affinity not in ("None", "ClientIP"):
            raise ValueError(f"unsupported sessionAffinity {affinity!r}")
        proto = protocol.upper()
        if proto not in PROTOCOLS:
            raise ValueError(f"unsupported protocol {protocol!r}")
        svc = self._service(key, proto)
        svc.update(backends, affinity, affinity_timeout)
        wanted = [(h, int(p)) for h, p in listen]
        for addr in list(svc.listeners):
            if addr not in wanted:
                svc.unbind(addr)
                self._owner.pop((proto, *addr), None)
        failed: dict[Addr, str] = {}
        for addr in wanted:
            if addr in svc.listeners:
                continue
            owner = self._owner.get((proto, *addr))
            if owner is not None and owner != key:
                failed[addr] = f"in use by service {owner}"
                continue
            try:
                await svc.bind(addr)
            except OSError as e:
                failed[addr] = bind_error(e)
                continue
            self._owner[(proto, *addr)] = key
        return failed

    def listening(self, key: str) -> list[tuple[str, int]]:
        """The bound addresses of a service's listeners (port 0 → the actual port)."""
        out: list[tuple[str, int]] = []
        svc = self._services.get(key)
        if svc is not None:
            for server in svc.listeners.values():
                for s in server.sockets or ():
                    out.append(tuple(s.getsockname()[:2]))
        udp = self._udp.get(key)
        if udp is not None:
            for listener in udp.listeners.values():
                if listener.transport is not None:
                    out.append(tuple(listener.transport.get_extra_info("sockname")[:2]))
        return out

    def _drop(self, key: str) -> None:
        svc: _Service | UdpService | None = self._services.pop(key, None) or self._udp.pop(key, None)
        if svc is None:
            return
        proto = "UDP" if isinstance(svc, UdpService) else "TCP"
        for addr in svc.listeners:
            self._owner.pop((proto, *addr), None)
        svc.close()

    async def remove(self, key: str) -> None:
        """Stop listening for ``key``: its established TCP connections drain, its UDP sessions end."""
        self._drop(key)

    async def close(self) -> None:
        """Stop listening everywhere and reset every connection."""
        for key in [*self._services, *self._udp]:
            self._drop(key)
        self._sweeper.stop()
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()

    def stats(self) -> dict[str, Any]:
        """Per service port: protocol, listeners, backends and counters (TCP: accepted / active /
        rejected connections, backend connect failures; UDP: datagrams, sessions, dropped; both:
        bytes up (client→backend) and down)."""
        services: dict[str, Any] = {key: s.stats() for key, s in self._services.items()}
        services.update({key: s.stats() for key, s in self._udp.items()})
        return {"connections_active": len(self._conns), "services": services}


def install_uvloop() -> bool:
    """Install uvloop's event loop policy if uvloop is available (True when it is)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
