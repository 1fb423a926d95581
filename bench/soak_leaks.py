"""What a soak's daemon may leave behind once stopped cleanly (bench/soak.py): processes, containers,
nftables tables and rules, network namespaces and links, mounts, loopback addresses. Every check looks
only for what this soak made (its work folder, its pods' uids, its state dir's table and bridge, its
engine), never at the machine's totals: other tests run at the same time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from typing import Any


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def processes(work: str, pod_uids: set[str]) -> list[str]:
    """Processes run from ``work`` (in their command line, or their cwd under it) or carrying one of the
    soak's pods' uids in their environment (GITSHIP_POD_UID: pods' containers and sandbox holders).
    Zombies are not counted (their parent has not reaped them yet; they hold nothing)."""
    needles = [f"GITSHIP_POD_UID={u}".encode() for u in pod_uids]
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            stat = _read(f"/proc/{p}/stat").rsplit(b") ", 1)[1]
            if stat[:1] in (b"Z", b"X"):
                continue
            cmd = _read(f"/proc/{p}/cmdline")
            cwd = os.readlink(f"/proc/{p}/cwd")
            env = _read(f"/proc/{p}/environ") if needles else b""
        except OSError:
            continue
        if work.encode() in cmd or cwd == work or cwd.startswith(work + "/") or any(n in env for n in needles):
            out.append(p + " " + cmd.replace(b"\0", b" ").decode(errors="replace")[:80])
    return out


def mounts(work: str) -> list[str]:
    """Mounts (of any kind: bind, tmpfs, nsfs) whose mount point or source is under ``work``."""
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if work in line]


def nft(state_dir: str, cidrs: list[str]) -> list[str]:
    """The daemon's nftables table if it still exists, and rules anywhere naming one of ``cidrs``'
    networks (the pod and Service ranges of this soak, unique to it)."""
    if shutil.which("nft") is None or os.geteuid() != 0:
        return []
    from reconciler.dataplane import table_name

    out = []
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if table_name(state_dir) in tables.split():
        out.append(f"table {table_name(state_dir)}")
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    prefixes = [c.split("/")[0].rsplit(".", 2)[0] + "." for c in cidrs]  # "10.243." of 10.243.0.0/17
    out += [f"rule: {ln.strip()[:100]}" for ln in ruleset.splitlines() if any(p in ln for p in prefixes)]
    return out


def links(state_dir: str, pod_uids: set[str]) -> list[str]:
    """The daemon's bridge and the host ends of its pods' veths, if still there (a pod's network
    namespace lives as long as its holder process, checked by ``processes``; its veth goes with it)."""
    from runtime.net.bridge import bridge_name, veth_name

    names = {bridge_name(state_dir), *(veth_name(u) for u in pod_uids)}
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [
        n for n in (line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line) if n in names
    ]


def netns(work: str) -> list[str]:
    """Named network namespaces (``ip netns``) that name this soak's folder's hash, and nsfs mounts under
    it (a namespace kept without a process)."""
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    tag = os.path.basename(work)
    return [ln for ln in ns.splitlines() if tag and tag in ln] + [m for m in mounts(work) if " nsfs " in m]


def loopback_addresses(service_cidr: str) -> list[str]:
    """Addresses of the Service range still on ``lo`` (the Docker runtime exposes ClusterIPs there)."""
    import ipaddress

    net = ipaddress.ip_network(service_cidr)
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    left = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            if iface.ip in net:
                left.append(str(iface))
    return left


def all_leaks(d: Any, work: str, pod_uids: set[str], engine: Any = None) -> dict[str, list[str]]:
    """Every check, for a stopped daemon ``d`` (bench.common.Daemon) and, on Docker, its engine."""
    out = {
        "processes": processes(work, pod_uids),
        "mounts": mounts(work),
        "nftables": nft(d.state_dir, [d.pod_cidr, d.service_cidr]),
        "links": links(d.state_dir, pod_uids),
        "namespaces": netns(work),
        "loopback addresses": loopback_addresses(d.service_cidr),
    }
    if engine is not None:
        with contextlib.suppress(Exception):
            out["containers"] = engine.containers()
        out["container processes"] = [str(p) for p in engine.container_processes()]
    return out
