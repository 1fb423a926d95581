"""The executor's Service step: ClusterIPs made reachable, the data plane's rules, the DNS zone, the
Ingress routing (reconciler/ingress/engine.py: the live Ingresses' table applied to HAProxy).

reconciler/reconcile.py carries a pass's ``Changes`` out in order; this is its step 2 (after
the live objects are in the store, before the runtime's stops and starts). It also keeps the
proxy's answer (which listeners it bound, which it could not and why) for the next pass's
input, and asks for that pass at once when the answer changed: reconciler/sync/netstatus.py
turns it into a LoadBalancer's address and Warning events.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from runtime.base import Runtime
from runtime.net.dns import Zone, build_zone

from . import sync
from .cluster import Cluster
from .dataplane import DataPlane
from .ingress.engine import IngressEngine
from .log import Logger


def _zone_key(z: sync.ZoneInput) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]:
    """What the DNS zone is built from: Services and Endpoints whole, of each pod its namespace and IPs
    (runtime/net/dns.py _add_pod reads nothing else)."""
    pods = []
    for p in z.pods:
        status = p.get("status") or {}
        ips = tuple(str(i.get("ip")) for i in status.get("podIPs") or []) or (str(status.get("podIP")),)
        pods.append((str((p.get("metadata") or {}).get("namespace")), ips))
    return json.dumps([z.services, z.endpoints], sort_keys=True, default=str), tuple(pods), tuple(z.namespaces)


class ServiceNetwork:
    """Programs the data plane and the DNS zone from each pass's Changes; remembers its answer."""

    def __init__(
        self,
        runtime: Runtime,
        plane: DataPlane,
        publish_zone: Callable[[Zone], None],
        log: Logger,
        kick: Callable[[], None],
        cluster: Cluster | None = None,
    ):
        self.runtime = runtime
        self.plane = plane
        self.publish_zone = publish_zone
        self.log = log
        self.kick = kick
        self.listening: frozenset[sync.Listener] = frozenset()  # -> Observed.listening
        self.listen_failed: dict[sync.Listener, str] = {}  # -> Observed.listen_failed
        self.net_warned: frozenset[str] = frozenset()  # -> Memory.net_warned
        self._exposed: set[str] = set()
        self._zone_key: tuple[str, tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]] | None = None
        self.cluster = cluster
        self.ingress: IngressEngine | None = None  # the Ingress step's engine (set by the daemon)

    async def program(self, changes: sync.Changes) -> None:
        # the runtime makes each ClusterIP an address of this host (a userspace proxy binds it;
        # with kernel rules, traffic to a ClusterIP no rule serves stays on this machine)
        for ip in changes.service_ips:
            await self._expose_ip(ip)
        failed = dict(await self.plane.apply(changes.proxy))
        listening = {
            (rule.protocol, host, port)
            for rule in changes.proxy
            for host, port in rule.listen
            if (rule.protocol, host, port) not in failed
        }
        self.net_warned = changes.net_warned
        self._answered(frozenset(listening), failed)
        z = changes.zone
        key = _zone_key(z)
        if key != self._zone_key:  # rebuilt only when it changed (every pass, it was 16 % of an idle pass)
            self._zone_key = key
            self.publish_zone(build_zone(z.services, z.endpoints, z.pods, namespaces=z.namespaces))
        if self.ingress is not None and self.cluster is not None:  # the Ingress routing: before the stops too
            await self.ingress.program(self.cluster)

    async def close(self) -> None:
        if self.ingress is not None:
            await self.ingress.close()

    def _answered(self, listening: frozenset[sync.Listener], failed: dict[sync.Listener, str]) -> None:
        """Keep the proxy's answer for the next pass; when it changed, run that pass now (a
        LoadBalancer shows its address as soon as its port is bound). An unchanged answer (a
        port still taken) waits for the next timed pass: the proxy tries again each pass."""
        for (proto, host, port), why in sorted(failed.items()):
            if self.listen_failed.get((proto, host, port)) != why:
                self.log.warning("service_listen_failed", address=f"{host}:{port}/{proto}", error=why)
        if listening != self.listening or failed != self.listen_failed:
            self.listening, self.listen_failed = listening, failed
            self.kick()

    async def _expose_ip(self, ip: str) -> None:
        """Let the runtime make a ClusterIP reachable from its pods (Docker: an address on its bridge)."""
        if ip in self._exposed:
            return
        try:
            await self.runtime.expose_service_ip(ip)
            self._exposed.add(ip)
        except Exception as e:
            self.log.warning("service_ip_expose_failed", ip=ip, error=str(e))
