"""Pod IP allocation for the in-process runtime.

Where it sits: the supervisor gives each pod one address from ``pod_cidr``
(default ``127.244.0.0/16``). Linux routes all of 127.0.0.0/8 to the loopback
interface, so a process can bind any 127.x.y.z with no setup; two pods can both
listen on port 8080, each on its own address.

Allocations are persisted in ``{state_dir}/ipam.json`` ({ip: uid}) before an
address is handed out, so an adopted pod keeps its IP and a new pod never gets
an address that is in use. Addresses are handed out round-robin from a cursor
(also persisted) so a just-released address is not reused at once.

Skipped: the network and broadcast addresses, the first host address (the
".1" gateway by convention), every address whose last octet is 0 or 255, and
the host IP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os

from .procid import atomic_write_json


class IPAllocationError(Exception):
    pass


class IPAllocator:
    def __init__(self, cidr: str, state_dir: str, host_ip: str = "127.0.0.1"):
        self.network = ipaddress.ip_network(cidr, strict=False)
        if self.network.version != 4:
            raise ValueError(f"pod CIDR must be IPv4: {cidr}")
        self.path = os.path.join(state_dir, "ipam.json")
        self.host_ip = host_ip
        self._by_ip: dict[str, str] = {}
        self._cursor = 0
        self._load()

    # -- persistence
    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            self._by_ip = {str(k): str(v) for k, v in dict(data.get("allocations", {})).items()}
            self._cursor = int(data.get("cursor", 0))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError):
            self._by_ip, self._cursor = {}, 0

    def _save(self) -> None:
        atomic_write_json(self.path, {"cidr": str(self.network), "cursor": self._cursor, "allocations": self._by_ip})

    # -- queries
    def allocations(self) -> dict[str, str]:
        return dict(self._by_ip)

    def ip_of(self, uid: str) -> str | None:
        for ip, owner in self._by_ip.items():
            if owner == uid:
                return ip
        return None

    def usable(self, ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        if a not in self.network or a == self.network.network_address or a == self.network.broadcast_address:
            return False
        if int(a) - int(self.network.network_address) == 1:
            return False
        last = int(a) & 0xFF
        return last not in (0, 255) and ip != self.host_ip

    # -- changes
    def allocate(self, uid: str) -> str:
        """The pod's address (idempotent by uid), persisted before it is returned."""
        have = self.ip_of(uid)
        if have is not None:
            return have
        base = int(self.network.network_address)
        size = self.network.num_addresses
        for step in range(size):
            off = (self._cursor + step) % size
            ip = str(ipaddress.ip_address(base + off))
            if ip in self._by_ip or not self.usable(ip):
                continue
            self._by_ip[ip] = uid
            self._cursor = (off + 1) % size
            self._save()
            return ip
        raise IPAllocationError(f"pod CIDR {self.network} is exhausted")

    def reserve(self, uid: str, ip: str) -> bool:
        """Record an adopted pod's address; False if another pod holds it."""
        owner = self._by_ip.get(ip)
        if owner is not None and owner != uid:
            return False
        for other in [k for k, v in self._by_ip.items() if v == uid and k != ip]:
            del self._by_ip[other]
        self._by_ip[ip] = uid
        self._save()
        return True

    def release(self, uid: str) -> None:
        gone = [ip for ip, owner in self._by_ip.items() if owner == uid]
        for ip in gone:
            del self._by_ip[ip]
        if gone:
            self._save()

    def retain_only(self, uids: set[str]) -> None:
        """Drop allocations of pods that have no state file (a crash between allocating and launching)."""
        before = len(self._by_ip)
        self._by_ip = {ip: u for ip, u in self._by_ip.items() if u in uids}
        if len(self._by_ip) != before:
            with contextlib.suppress(OSError):
                self._save()
