"""The service proxy's UDP path: datagrams to a Service port reach one backend, replies come back.

UDP has no connections, so the proxy keeps *sessions*, as conntrack does for kube-proxy:

* a listener (an asyncio datagram endpoint on ``clusterIP:port``, ``node:nodePort`` or
  ``node:port``) keeps one session per client address; the first datagram of a client picks
  a backend (round robin, or the client IP's backend under ClientIP affinity: balance.py) and
  opens the session's own socket, connected to that backend;
* the client's datagrams go out of that socket; what the backend answers on it is sent back
  to the client from the listener's socket, so the reply comes from the address the client
  asked;
* a session idle for ``SESSION_TIMEOUT`` seconds (``STREAM_TIMEOUT`` once the backend has
  answered: conntrack's nf_conntrack_udp_timeout and nf_conntrack_udp_timeout_stream) is
  closed by a sweep that runs only while sessions exist;
* a backend leaving the list closes its sessions at once (kube-proxy clears their conntrack
  entries), so the client's next datagram goes to a backend that is still there; a backend
  that answers with ICMP port unreachable (refused) closes its session the same way.

Datagrams that cannot be sent (no backend, a full socket buffer) are dropped, as UDP may.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from .balance import Addr, Balancer

SESSION_TIMEOUT = 30.0
STREAM_TIMEOUT = 120.0
SWEEP_INTERVAL = 5.0
MAX_SESSIONS = 16384  # per listener; past it a new client's datagrams are dropped
READ_BATCH = 64  # datagrams read from one backend socket per wake-up
MAX_DATAGRAM = 65535


class _Session:
    """One client of one listener, with its own socket connected to the chosen backend."""

    __slots__ = ("backend", "client", "closed", "last", "listener", "replied", "sock")

    def __init__(self, listener: UdpListener, client: Any, backend: Addr, sock: socket.socket):
        self.listener = listener
        self.client = client
        self.backend = backend
        self.sock = sock
        self.last = time.monotonic()
        self.replied = False
        self.closed = False

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        try:
            self.sock.send(data)
        except BlockingIOError:
            self.listener.svc.dropped += 1
        except OSError:  # refused (an earlier ICMP port unreachable) or gone: the next datagram picks again
            self.listener.svc.dropped += 1
            self.close()

    def readable(self) -> None:
        svc = self.listener.svc
        transport = self.listener.transport
        for _ in range(READ_BATCH):
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                svc.connect_failures += 1
                self.close()
                return
            self.last = time.monotonic()
            self.replied = True
            svc.bytes_down += len(data)
            if transport is not None and not transport.is_closing():
                transport.sendto(data, self.client)

    def idle(self, now: float) -> bool:
        return now - self.last > (STREAM_TIMEOUT if self.replied else SESSION_TIMEOUT)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.listener.svc.loop
        loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self.listener.sessions.get(self.client) is self:
            del self.listener.sessions[self.client]


class UdpListener(asyncio.DatagramProtocol):
    """One listening address of a UDP Service port."""

    def __init__(self, svc: UdpService):
        self.svc = svc
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Any, _Session] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        svc = self.svc
        svc.datagrams += 1
        svc.bytes_up += len(data)
        session = self.sessions.get(addr)
        if session is None:
            session = svc.open_session(self, addr)
            if session is None:
                svc.dropped += 1
                return
        session.send(data)

    def error_received(self, exc: Exception) -> None:  # an ICMP error about a reply we sent
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_sessions()

    def close_sessions(self, backends: set[Addr] | None = None) -> None:
        """Close every session (or those on ``backends``)."""
        for s in list(self.sessions.values()):
            if backends is None or s.backend in backends:
                s.close()

    def close(self) -> None:
        self.close_sessions()
        if self.transport is not None:
            self.transport.close()


class UdpService(Balancer):
    """A UDP Service port: its listeners, its backends and their sessions."""

    def __init__(self, key: str, loop: asyncio.AbstractEventLoop, sweeper: Sweeper):
        super().__init__()
        self.key = key
        self.loop = loop
        self.sweeper = sweeper
        self.listeners: dict[Addr, UdpListener] = {}
        self.datagrams = 0
        self.sessions_opened = 0
        self.dropped = 0
        self.connect_failures = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def update(self, backends: list[Addr], affinity: str, affinity_timeout: float) -> set[Addr]:
        removed = super().update(backends, affinity, affinity_timeout)
        if removed:
            for listener in self.listeners.values():
                listener.close_sessions(removed)
        return removed

    async def bind(self, addr: Addr) -> None:
        """Listen on ``addr`` (OSError, with its errno, if it cannot be bound)."""
        sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # SO_REUSEPORT as for TCP: a nodePort on 0.0.0.0 and a ClusterIP on 127.96.x.y coexist
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
            sock.setblocking(False)
            _, listener = await self.loop.create_datagram_endpoint(lambda: UdpListener(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self.listeners[addr] = listener

    def unbind(self, addr: Addr) -> None:
        listener = self.listeners.pop(addr, None)
        if listener is not None:
            listener.close()

    def open_session(self, listener: UdpListener, client: Any) -> _Session | None:
        if len(listener.sessions) >= MAX_SESSIONS:
            return None
        client_ip = str(client[0])
        for backend in self.candidates(client_ip):
            family = socket.AF_INET6 if ":" in backend[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(backend)
            except OSError:
                sock.close()
                self.connect_failures += 1
                continue
            session = _Session(listener, client, backend, sock)
            listener.sessions[client] = session
            self.loop.add_reader(sock.fileno(), session.readable)
            self.sessions_opened += 1
            self.connected(client_ip, backend)
            self.sweeper.wake()
            return session
        return None

    def sessions(self) -> int:
        return sum(len(listener.sessions) for listener in self.listeners.values())

    def sweep(self, now: float) -> int:
        """Close idle sessions; returns how many are left."""
        left = 0
        for listener in self.listeners.values():
            for s in list(listener.sessions.values()):
                if s.idle(now):
                    s.close()
                else:
                    left += 1
        return left

    def close(self) -> None:
        for addr in list(self.listeners):
            self.unbind(addr)

    def stats(self) -> dict[str, Any]:
        return {
            "protocol": "UDP",
            "listen": [f"{h}:{p}" for h, p in self.listeners],
            "backends": [f"{h}:{p}" for h, p in self.backends],
            "affinity": self.affinity,
            "datagrams": self.datagrams,
            "sessions": self.sessions(),
            "sessions_opened": self.sessions_opened,
            "dropped": self.dropped,
            "connect_failures": self.connect_failures,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


class Sweeper:
    """Expires idle sessions of every UDP service every SWEEP_INTERVAL seconds, while any exist."""

    def __init__(self, loop: asyncio.AbstractEventLoop, services: dict[str, UdpService]):
        self.loop = loop
        self.services = services
        self.timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        if self.timer is None:
            self.timer = self.loop.call_later(SWEEP_INTERVAL, self.run)

    def run(self) -> None:
        self.timer = None
        now = time.monotonic()
        left = sum(svc.sweep(now) for svc in list(self.services.values()))
        if left:
            self.wake()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
