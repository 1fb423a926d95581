"""Setting up a sandbox's namespaces from inside gitship: rtnetlink, setns, sethostname, mount.

Where it sits: sandbox.py starts the holder (``unshare ... -- sleep infinity``); once its
namespaces exist, ``configure`` (run in a thread of its own, see below) does the rest with
system calls instead of a chain of commands (ip, mount, hostname): one sandbox costs
about 3 ms less that way, and the work is a handful of syscalls, not five processes:

* host side (rtnetlink): the veth pair, its host end a port of the bridge and up (one
  RTM_NEWLINK, the peer created straight in the pod's netns as ``eth0``), hairpin on;
* UTS: ``setns`` + ``sethostname``;
* mount: ``unshare(CLONE_FS)`` (a thread shares its fs_struct with the process; setns into
  a mount namespace needs its own), ``setns``, ``/`` made a slave (so nothing mounted here
  ever reaches the host, even before unshare(1) made it one), the pod's resolv.conf and
  hosts bind-mounted over /etc's;
* network (rtnetlink inside the pod's netns): lo up, the pod IP on eth0, eth0 up, the
  default route via the gateway.

Namespaces are per thread, so ``configure`` runs on a thread made for it that ends
afterwards (``run_configure``); no thread of a pool is ever left in a pod's namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY, RTA_OIF = 5, 4
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
IFF_UP = 0x1
NLA_F_NESTED = 0x8000

T = TypeVar("T")


class SetupError(Exception):
    """A step of the sandbox's setup failed (the message names it)."""


# --- system calls ---------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int, what: str) -> None:
    _check(_c().setns(fd, nstype), f"setns({what})")


def unshare(flags: int, what: str) -> None:
    _check(_c().unshare(flags), f"unshare({what})")


def mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    _check(_c().mount(src, target.encode(), None, ctypes.c_ulong(flags), None), f"mount {source} on {target}")


# --- rtnetlink ---------------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


class Netlink:
    """A NETLINK_ROUTE socket in the calling thread's network namespace; each request waits for its ack."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.settimeout(5)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        self.seq += 1
        header = struct.pack("=LHHLL", 16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        self.sock.send(header + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=LHHLL", data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise SetupError(f"{what}: {os.strerror(-err)}")
                    return
                off += max(length + (-length % 4), 16)

    def link_up(self, index: int, what: str) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP), what)


def create_veth(nl: Netlink, host_end: str, bridge_index: int, peer_mac: str, netns_fd: int) -> None:
    """The veth pair: ``host_end`` here, a port of the bridge, up; its peer ``eth0`` in ``netns_fd``."""
    peer = _ifinfo() + _attr(IFLA_IFNAME, b"eth0\0") + _attr(IFLA_ADDRESS, bytes.fromhex(peer_mac.replace(":", "")))
    peer += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
    info = _nested(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth"), _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer)))
    body = _ifinfo(0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, host_end.encode() + b"\0")
    body += _attr(IFLA_MASTER, struct.pack("=I", bridge_index)) + info
    nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {host_end}")
    hairpin = _nested(IFLA_LINKINFO, _nested(IFLA_INFO_SLAVE_DATA, _attr(IFLA_BRPORT_MODE, b"\1")))
    nl.request(RTM_NEWLINK, 0, _ifinfo(socket.if_nametoindex(host_end)) + hairpin, f"hairpin on {host_end}")


def configure_eth0(nl: Netlink, ip: str, prefix: int, gateway: str) -> None:
    """In the pod's netns: lo up, ``ip/prefix`` on eth0, eth0 up, the default route via ``gateway``."""
    nl.link_up(socket.if_nametoindex("lo"), "lo up")
    eth0 = socket.if_nametoindex("eth0")
    addr = ipaddress.IPv4Address(ip).packed
    body = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, 0, eth0) + _attr(IFA_LOCAL, addr) + _attr(IFA_ADDRESS, addr)
    nl.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"address {ip}/{prefix} on eth0")
    nl.link_up(eth0, "eth0 up")
    rt = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0)
    rt += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed) + _attr(RTA_OIF, struct.pack("=I", eth0))
    nl.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rt, f"default route via {gateway}")


# --- the whole setup -----------------------------------------------------------------------


def configure(
    pid: int,
    *,
    hostname: str,
    binds: list[tuple[str, str]],
    veth: str,
    bridge: str,
    mac: str,
    ip: str,
    prefix: int,
    gateway: str,
) -> None:
    """Set up the namespaces of holder ``pid``. Changes the calling thread's namespaces: call it
    only through ``run_configure`` (a thread of its own)."""
    fds = {ns: os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in ("net", "uts", "mnt")}
    try:
        host = Netlink()
        try:
            create_veth(host, veth, socket.if_nametoindex(bridge), mac, fds["net"])
        finally:
            host.close()
        setns(fds["uts"], CLONE_NEWUTS, "uts")
        socket.sethostname(hostname)
        unshare(CLONE_FS, "fs")
        setns(fds["mnt"], CLONE_NEWNS, "mnt")
        mount(None, "/", MS_REC | MS_SLAVE)
        for source, target in binds:
            mount(source, target, MS_BIND)
        setns(fds["net"], CLONE_NEWNET, "net")
        pod = Netlink()
        try:
            configure_eth0(pod, ip, prefix, gateway)
        finally:
            pod.close()
    finally:
        for fd in fds.values():
            os.close(fd)


async def run_configure(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a new thread that ends with it (it may leave the thread in other namespaces)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def body() -> None:
        try:
            result: Any = fn()
            ok = True
        except BaseException as e:  # handed to the awaiting coroutine
            result, ok = e, False
        loop.call_soon_threadsafe(deliver, ok, result)

    threading.Thread(target=body, name="gitship-sandbox-setup", daemon=True).start()
    try:
        value: T = await asyncio.shield(fut)
    except asyncio.CancelledError:
        # the thread cannot be stopped: let it finish (it is short), so that whoever cleans up
        # after the cancelled caller does not race with a veth being made behind its back
        with contextlib.suppress(Exception):
            await fut
        raise
    return value
