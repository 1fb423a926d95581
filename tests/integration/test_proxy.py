"""runtime.net.proxy.ServiceProxy against real backends on 127.244.0.x (uvloop when installed)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

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
        t0 = time.monotonic()
        assert [await fetch(addr) for _ in range(6)] == [b"good"] * 6
        assert time.monotonic() - t0 < 3
        assert proxy.stats()["services"]["default/f"]["connect_failures"] >= 4
        await proxy.close()
        good.close()

    run(main())


def test_no_backends_closes_immediately():
    async def main():
        proxy = ServiceProxy()
        await proxy.set_service("default/none", [(LISTEN, 0)], [])
        addr = proxy.listening("default/none")[0]
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection(*addr)
        try:
            data = await asyncio.wait_for(reader.read(), 2)
            assert data == b""
        except (ConnectionResetError, ConnectionAbortedError):
            pass
        assert time.monotonic() - t0 < 1
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
        with pytest.raises(ValueError):
            await proxy.set_service("default/other", [addrs[0]], [backend])
        await proxy.remove("default/echo")
        assert "default/echo" not in proxy.stats()["services"]
        await proxy.close()
        srv.close()

    run(main())
