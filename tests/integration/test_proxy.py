"""runtime.net.proxy.ServiceProxy against real backends on 127.244.0.x (uvloop when installed), TCP and UDP."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from runtime.net.proxy import ServiceProxy
from tests.conftest import async_wait_for

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

LISTEN = "127.96.200.1"


def run(coro):
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


async def name_server(host: str, name: str) -> tuple[asyncio.AbstractServer, tuple[str, int]]:
    """A backend that answers its own name and closes."""

    async def handle(reader, writer):
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, (host, server.sockets[0].getsockname()[1])


async def fetch(addr, local_host: str | None = None) -> bytes:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(addr[0], addr[1], local_addr=(local_host, 0) if local_host else None), 5
    )
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def free_refusing_port(host: str) -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def setup_three():
    servers, addrs = [], []
    for i in (1, 2, 3):
        srv, addr = await name_server(f"127.244.0.{10 + i}", f"b{i}")
        servers.append(srv)
        addrs.append(addr)
    proxy = ServiceProxy()
    await proxy.set_service("default/web", [(LISTEN, 0)], addrs)
    return proxy, servers, addrs, proxy.listening("default/web")[0]


def test_round_robin_across_three_backends():
    async def main():
        proxy, servers, _, addr = await setup_three()
        got = [await fetch(addr) for _ in range(6)]
        assert got == [b"b1", b"b2", b"b3", b"b1", b"b2", b"b3"]
        st = proxy.stats()["services"]["default/web"]
        assert st["accepted"] == 6 and st["rejected"] == 0
        await proxy.close()
        for s in servers:
            s.close()

    run(main())


def test_client_ip_affinity():
    async def main():
        proxy, servers, addrs, _ = await setup_three()
        await proxy.set_service("default/web", [(LISTEN, 0)], addrs, affinity="ClientIP", affinity_timeout=60)
        addr = proxy.listening("default/web")[0]
        first = {await fetch(addr, "127.0.0.2") for _ in range(5)}
        assert len(first) == 1
        second = {await fetch(addr, "127.0.0.3") for _ in range(5)}
        assert len(second) == 1
        # the pinned backend goes away: the client moves, then sticks to the new one
        pinned = int(first.pop()[1:]) - 1
        await proxy.set_service(
            "default/web", [(LISTEN, 0)], [a for i, a in enumerate(addrs) if i != pinned], affinity="ClientIP"
        )
        moved = {await fetch(addr, "127.0.0.2") for _ in range(5)}
        assert len(moved) == 1 and moved != {f"b{pinned + 1}".encode()}
        await proxy.close()
        for s in servers:
            s.close()

    run(main())


def test_backend_swap_drains_established_connection():
    async def main():
        stop = asyncio.Event()

        async def stream(reader, writer):
            while not stop.is_set():
                writer.write(b"old " * 256)
                await writer.drain()
                await asyncio.sleep(0)  # yield: the proxy shares this loop (no wait)
            writer.close()

        old = await asyncio.start_server(stream, "127.244.0.21", 0)
        new, new_addr = await name_server("127.244.0.22", "new")
        proxy = ServiceProxy()
        await proxy.set_service("default/s", [(LISTEN, 0)], [("127.244.0.21", old.sockets[0].getsockname()[1])])
        addr = proxy.listening("default/s")[0]
        reader, writer = await asyncio.open_connection(*addr)
        assert (await asyncio.wait_for(reader.readexactly(1024), 5)).startswith(b"old")
        await proxy.set_service("default/s", [(LISTEN, 0)], [new_addr])
        assert proxy.listening("default/s")[0] == addr  # same listener kept
        assert await fetch(addr) == b"new"
        total = 0
        while total < 256 * 1024:  # the long connection keeps streaming from the old backend
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk and b"new" not in chunk
            total += len(chunk)
        stop.set()
        writer.close()
        await proxy.close()
        old.close()
        new.close()

    run(main())


def test_failover_when_backend_refuses():
    async def main():
        good, good_addr = await name_server("127.244.0.31", "good")
        dead = ("127.244.0.32", free_refusing_port("127.244.0.32"))
        proxy = ServiceProxy()
        await proxy.set_service("default/f", [(LISTEN, 0)], [dead, good_addr, dead])
        addr = proxy.listening("default/f")[0]
        assert [await fetch(addr) for _ in range(6)] == [b"good"] * 6
        assert proxy.stats()["services"]["default/f"]["connect_failures"] >= 4
        await proxy.close()
        good.close()

    run(main())


def test_no_backends_closes_immediately():
    async def main():
        proxy = ServiceProxy()
        await proxy.set_service("default/none", [(LISTEN, 0)], [])
        addr = proxy.listening("default/none")[0]
        reader, writer = await asyncio.open_connection(*addr)
        try:  # closed, not left hanging: the read ends well inside its 2 s bound
            data = await asyncio.wait_for(reader.read(), 2)
            assert data == b""
        except (ConnectionResetError, ConnectionAbortedError):
            pass
        writer.close()
        # all backends refusing: also closed, after trying each
        dead = ("127.244.0.41", free_refusing_port("127.244.0.41"))
        await proxy.set_service("default/none", [(LISTEN, 0)], [dead])
        try:
            assert await fetch(addr) == b""
        except (ConnectionResetError, ConnectionAbortedError):
            pass
        await async_wait_for(
            lambda: proxy.stats()["services"]["default/none"]["rejected"] == 2, 5, what="two rejected connections"
        )
        await proxy.close()

    run(main())


def test_bulk_echo_half_close_and_listener_changes():
    async def main():
        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()  # after the client's EOF
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(echo, "127.244.0.51", 0)
        backend = ("127.244.0.51", srv.sockets[0].getsockname()[1])
        proxy = ServiceProxy()
        await proxy.set_service("default/echo", [(LISTEN, 0), ("127.96.200.2", 0)], [backend])
        addrs = proxy.listening("default/echo")
        assert len(addrs) == 2
        payload = os.urandom(8 * 1024 * 1024)
        reader, writer = await asyncio.open_connection(*addrs[1])

        async def send():
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        got = await asyncio.wait_for(reader.read(-1), 20)  # reads to EOF
        await sender
        assert got == payload
        writer.close()
        # dropping a listener closes it; the other stays
        await proxy.set_service("default/echo", [addrs[0]], [backend])
        assert proxy.listening("default/echo") == [addrs[0]]
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection(*addrs[1]), 2)
        # an address another key holds is reported, not taken
        failed = await proxy.set_service("default/other", [addrs[0]], [backend])
        assert failed == {addrs[0]: "in use by service default/echo"}
        assert proxy.listening("default/other") == []
        await proxy.remove("default/echo")
        assert "default/echo" not in proxy.stats()["services"]
        await proxy.close()
        srv.close()

    run(main())


# --------------------------------------------------------------------------- issue 11: taken ports, UDP


def test_taken_port_is_reported_and_bound_once_free():
    """A listener that cannot be bound is reported with why; the others work; a later call binds it."""

    async def main():
        srv, backend = await name_server("127.244.0.61", "b1")
        holder = socket.socket()
        holder.bind(("127.96.200.3", 0))  # no SO_REUSEPORT: the proxy cannot share it
        holder.listen()
        taken = holder.getsockname()
        proxy = ServiceProxy()
        failed = await proxy.set_service("default/lb", [(LISTEN, 0), taken], [backend])
        assert failed == {taken: "address already in use (EADDRINUSE)"}
        assert len(proxy.listening("default/lb")) == 1
        assert await fetch(proxy.listening("default/lb")[0]) == b"b1"
        assert await proxy.set_service("default/lb", [(LISTEN, 0), taken], [backend]) == {taken: failed[taken]}
        holder.close()
        assert await proxy.set_service("default/lb", [(LISTEN, 0), taken], [backend]) == {}
        assert await fetch(taken) == b"b1"
        await proxy.close()
        srv.close()

    run(main())


class _Echo(asyncio.DatagramProtocol):
    """A UDP backend answering "<name> <datagram>"; counts what it saw from where."""

    def __init__(self, name: bytes):
        self.name = name
        self.peers: set = set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.peers.add(addr)
        self.transport.sendto(self.name + b" " + data, addr)


async def udp_backend(host: str, name: str):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: _Echo(name.encode()), local_addr=(host, 0))
    return transport, proto, transport.get_extra_info("sockname")[:2]


class _Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.got: asyncio.Queue = asyncio.Queue()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got.put_nowait((data, addr))


async def udp_client(local: str = "127.0.0.1"):
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(_Client, local_addr=(local, 0))
    return proto


async def ask(client: _Client, addr, payload: bytes) -> tuple[bytes, tuple]:
    client.transport.sendto(payload, addr)
    return await asyncio.wait_for(client.got.get(), 5)


def test_udp_sessions_round_robin_and_replies_from_the_service_address():
    async def main():
        backends = [await udp_backend(f"127.244.0.{70 + i}", f"u{i}") for i in (1, 2)]
        proxy = ServiceProxy()
        assert await proxy.set_service("default/dns:53", [(LISTEN, 0)], [b[2] for b in backends], protocol="UDP") == {}
        addr = proxy.listening("default/dns:53")[0]
        # a TCP listener on the very same address and port coexists (DNS: 53/UDP and 53/TCP)
        srv, tcp_backend = await name_server("127.244.0.73", "t1")
        assert await proxy.set_service("default/dns:dns-tcp", [addr], [tcp_backend]) == {}
        assert await fetch(addr) == b"t1"
        # every client address is a session: round robin over the backends
        names = set()
        clients = [await udp_client() for _ in range(4)]
        for i, c in enumerate(clients):
            data, src = await ask(c, addr, b"q%d" % i)
            assert src[:2] == addr  # the reply comes from the address the client asked
            name, _, rest = data.partition(b" ")
            assert rest == b"q%d" % i
            names.add(name)
        assert names == {b"u1", b"u2"}
        # one client stays on its session's backend
        first = (await ask(clients[0], addr, b"again"))[0].split(b" ")[0]
        assert {(await ask(clients[0], addr, b"x"))[0].split(b" ")[0] for _ in range(5)} == {first}
        assert proxy.stats()["services"]["default/dns:53"]["sessions"] == 4
        # a backend leaving the list drops its sessions: that client's next datagram goes to the other
        gone = next(b for b in backends if b[1].name == first)
        stay = next(b for b in backends if b[1].name != first)
        await proxy.set_service("default/dns:53", [addr], [stay[2]], protocol="UDP")
        assert (await ask(clients[0], addr, b"moved"))[0] == stay[1].name + b" moved"
        assert all(s["backend"] != gone[2] for s in _sessions(proxy, "default/dns:53"))
        # removing the service ends its sessions and its listener; the TCP one stays
        await proxy.remove("default/dns:53")
        assert proxy.listening("default/dns:53") == []
        assert await fetch(addr) == b"t1"
        await proxy.close()
        srv.close()
        for t, _, _ in backends:
            t.close()

    run(main())


def _sessions(proxy: ServiceProxy, key: str) -> list[dict]:
    svc = proxy._udp[key]
    return [{"client": s.client, "backend": s.backend} for lst in svc.listeners.values() for s in lst.sessions.values()]


def test_udp_client_ip_affinity_and_idle_expiry(monkeypatch):
    from runtime.net import udp

    monkeypatch.setattr(udp, "SESSION_TIMEOUT", 0.2)
    monkeypatch.setattr(udp, "STREAM_TIMEOUT", 0.3)
    monkeypatch.setattr(udp, "SWEEP_INTERVAL", 0.1)

    async def main():
        backends = [await udp_backend(f"127.244.0.{80 + i}", f"a{i}") for i in (1, 2, 3)]
        proxy = ServiceProxy()
        await proxy.set_service("default/sticky", [(LISTEN, 0)], [b[2] for b in backends], "ClientIP", 60, "UDP")
        addr = proxy.listening("default/sticky")[0]
        # several client sockets of one IP: one backend (ClientIP affinity)
        clients = [await udp_client("127.0.0.5") for _ in range(4)]
        assert len({(await ask(c, addr, b"hi"))[0].split(b" ")[0] for c in clients}) == 1
        # idle sessions expire
        assert proxy.stats()["services"]["default/sticky"]["sessions"] == 4
        await async_wait_for(
            lambda: proxy.stats()["services"]["default/sticky"]["sessions"] == 0, 5, what="idle sessions expired"
        )
        # and a client that comes back gets a new session
        assert (await ask(clients[0], addr, b"back"))[0].endswith(b" back")
        await proxy.close()
        for t, _, _ in backends:
            t.close()

    run(main())


def test_udp_no_backend_drops_and_port_conflict_is_reported():
    async def main():
        proxy = ServiceProxy()
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.96.200.4", 0))
        taken = holder.getsockname()
        failed = await proxy.set_service("default/u", [(LISTEN, 0), taken], [], protocol="UDP")
        assert failed == {taken: "address already in use (EADDRINUSE)"}
        addr = proxy.listening("default/u")[0]
        c = await udp_client()
        c.transport.sendto(b"nobody", addr)
        await async_wait_for(lambda: proxy.stats()["services"]["default/u"]["dropped"] == 1, 5, what="dropped")
        holder.close()
        assert await proxy.set_service("default/u", [(LISTEN, 0), taken], [], protocol="UDP") == {}
        with pytest.raises(ValueError):
            await proxy.set_service("default/s", [(LISTEN, 0)], [], protocol="SCTP")
        await proxy.close()

    run(main())


def test_bind_errors_read_the_same_on_every_loop():
    import errno

    from runtime.net.proxy import bind_error

    assert bind_error(PermissionError(errno.EACCES, "bind")) == "permission denied (EACCES)"
    assert bind_error(OSError(errno.EADDRINUSE, "error while attempting to bind")) == (
        "address already in use (EADDRINUSE)"
    )
