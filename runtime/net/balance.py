"""Backend choice for one Service port, shared by the TCP proxy (proxy.py) and the UDP one (udp.py).

Round robin over the current backend list; with ``affinity="ClientIP"`` a client IP stays on
its backend while that backend is in the list and the client was seen within
``affinity_timeout`` seconds (kube-proxy's sessionAffinity: ClientIP).
"""

from __future__ import annotations

import time

Addr = tuple[str, int]

STICKY_SWEEP_AT = 4096  # client IPs remembered before expired ones are swept


class Balancer:
    """The backends of one Service port and the choice among them."""

    def __init__(self) -> None:
        self.backends: tuple[Addr, ...] = ()
        self.affinity = "None"
        self.affinity_timeout = 10800.0
        self.rr = 0
        self.sticky: dict[str, tuple[Addr, float]] = {}

    def update(self, backends: list[Addr], affinity: str, affinity_timeout: float) -> set[Addr]:
        """Swap the backend list (new choices use it at once); returns the backends removed."""
        new = tuple((h, int(p)) for h, p in backends)
        removed = set(self.backends) - set(new)
        if self.affinity != affinity or new != self.backends:
            live = set(new)
            self.sticky = {ip: v for ip, v in self.sticky.items() if v[0] in live}
        self.backends = new
        self.affinity = affinity
        self.affinity_timeout = float(affinity_timeout)
        return removed

    def candidates(self, client_ip: str) -> list[Addr]:
        """The backends to try for a new connection (or UDP session), first choice first."""
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

    def connected(self, client_ip: str, backend: Addr) -> None:
        """A client got ``backend``: with ClientIP affinity it stays there."""
        if self.affinity == "ClientIP":
            self.sticky[client_ip] = (backend, time.monotonic())
            if len(self.sticky) > STICKY_SWEEP_AT:
                self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for ip, (_b, seen) in list(self.sticky.items()):
            if now - seen > self.affinity_timeout:
                del self.sticky[ip]
