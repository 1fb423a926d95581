"""The Service data plane: what carries a Service's traffic to its ready endpoints.

Two engines behind one small interface, chosen when `gitship up` starts (``choose``):

* ``nftables``: rules in a table of gitship's own, in the kernel (runtime/net/kernelproxy.py),
  as kube-proxy's nftables mode does. The rules outlive the daemon, so Services keep
  working through a crash or a restart of gitship; it needs root and the ``nft`` binary.
* ``proxy``: gitship's userspace proxy (runtime/net/proxy.py), which lives in the daemon.
  The fallback without root or nftables.

The executor's Service step (servicenet.py) hands each pass's whole set of Service ports to
``apply``; the answer names the listen addresses that could not be served, and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from runtime.net.bridge import bridge_name
from runtime.net.kernelproxy import KernelProxy
from runtime.net.nftables import ServiceRule
from runtime.net.proxy import ServiceProxy

from .sync import Listener, ProxyRule

CHOICES = ("auto", "nftables", "proxy")


class DataPlane(Protocol):
    name: str

    async def apply(self, rules: Sequence[ProxyRule]) -> Mapping[Listener, str]:
        """Make the data plane carry exactly these Service ports; the listeners it could not serve."""
        ...

    async def close(self) -> None: ...

    def info(self) -> dict[str, Any]: ...


class ProxyPlane:
    """gitship's userspace proxy, one listener set per Service port (it lives in the daemon)."""

    name = "proxy"

    def __init__(self, proxy: ServiceProxy, reason: str = ""):
        self.proxy = proxy
        self.reason = reason
        self._keys: set[str] = set()

    async def apply(self, rules: Sequence[ProxyRule]) -> Mapping[Listener, str]:
        failed: dict[Listener, str] = {}
        wanted: set[str] = set()
        for rule in rules:
            wanted.add(rule.key)
            try:
                bad = await self.proxy.set_service(
                    rule.key,
                    list(rule.listen),
                    list(rule.backends),
                    rule.affinity,
                    rule.affinity_timeout,
                    rule.protocol,
                )
            except (OSError, ValueError) as e:  # not expected: the proxy reports listen failures
                bad = {addr: str(e) for addr in rule.listen}
            for addr, why in bad.items():
                failed[(rule.protocol, addr[0], addr[1])] = why
        for key in sorted(self._keys - wanted):
            await self.proxy.remove(key)
        self._keys = wanted
        return failed

    async def close(self) -> None:
        await self.proxy.close()

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataPlane": "proxy", "services": len(self._keys)}
        if self.reason:
            out["reason"] = self.reason
        return out


class NftPlane:
    """Rules in the kernel (nftables): traffic keeps flowing while the daemon is down."""

    name = "nftables"

    def __init__(self, kernel: KernelProxy):
        self.kernel = kernel

    async def apply(self, rules: Sequence[ProxyRule]) -> Mapping[Listener, str]:
        wanted = [
            ServiceRule(
                key=r.key,
                protocol=r.protocol,
                listen=tuple(r.listen),
                backends=tuple(r.backends),
                affinity=r.affinity,
                affinity_timeout=r.affinity_timeout,
                cluster_ip=r.cluster_ip,
            )
            for r in rules
        ]
        try:
            bad = await self.kernel.apply(wanted)
        except (OSError, ValueError) as e:  # nft refused the load: the table in force stays
            why = f"the nftables data plane refused the rules: {e}"
            return {(r.protocol, host, port): why for r in rules for host, port in r.listen}
        return {(proto, host, port): why for (host, port, proto), why in bad.items()}

    async def close(self) -> None:
        await self.kernel.close()

    def info(self) -> dict[str, Any]:
        return self.kernel.info()


def table_name(state_dir: str) -> str:
    """The nftables table of the daemon on this state dir (one daemon per state dir): "gitship_"
    and the hash digits of its bridge's name (runtime/net/bridge.py bridge_name)."""
    return "gitship_" + bridge_name(state_dir)[2:]


def choose(wanted: str, state_dir: str) -> DataPlane:
    """The data plane for ``--data-plane`` (auto: nftables where it can run, else the proxy)."""
    if wanted not in CHOICES:
        raise ValueError(f"unknown data plane {wanted!r} ({', '.join(CHOICES)})")
    why_not = KernelProxy.unavailable() if wanted != "proxy" else "--data-plane proxy"
    if why_not is None:
        return NftPlane(KernelProxy(table_name(state_dir)))
    if wanted == "nftables":
        raise ValueError(f"the nftables data plane cannot run here: {why_not}")
    return ProxyPlane(ServiceProxy(), why_not)
