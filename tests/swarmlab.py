"""A real multi-node Docker Swarm on this one Linux host, for the Swarm runtime's tests.

Every node is a network + UTS + mount namespace running its own ``dockerd`` (and the
containerd that dockerd manages); the nodes are joined by a Linux bridge living in a network
namespace of its own; this host joins that LAN through one veth (its end gets the LAN's ``.1``)
as an administrator's machine on the nodes' network would. Everything made is named from a
random suffix (``gsl<5 hex>``: netns ``gsl<sfx>n1..3`` and ``gsl<sfx>br``, veth ``gsl<sfx>h``,
cgroups ``/gsl<sfx>/...``, LAN ``10.250.X.0/24`` with a free X), so runs never collide, and
``down`` removes all of it, also after a failed test. The host's dockerd, its iptables and
root-namespace routes other than the LAN's are never touched.

Limits of this kernel (measured): no IPVS (no routing mesh, no service VIPs: use endpoint mode
``dnsrr`` and host-mode published ports), no IPsec ESP (no encrypted overlays). VXLAN overlays,
``tasks.<svc>`` DNS and host-mode ports work.

Images: no node can pull. ``load_image(tag)`` copies an image of the host's dockerd to every
node (``docker save | docker load``, same image ID everywhere); Swarm services must be created
without resolving the image (the Swarm runtime does), and the daemons run with
``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1``.

Use: the ``swarm_lab`` pytest fixture (module scoped: one Swarm per test module) or
``python -m tests.swarmlab up DIR`` / ``python -m tests.swarmlab down DIR`` (the lab's state is
kept in ``DIR/lab.json``); ``SwarmLab.kill(n)`` / ``stop(n)`` / ``start(n)`` crash, stop and
bring back node n's dockerd. Needs root, ``ip``, ``unshare``, ``docker`` and a dockerd binary;
the fixture skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TOOLS = ("ip", "unshare", "setsid", "docker", "dockerd", "containerd", "tar")

# runs inside "ip netns exec NS unshare --uts": hostname, the host's cgroup hierarchies re-mounted
# (ip netns exec mounts a fresh /sys that hides /sys/fs/cgroup), the daemon in the lab's cgroups
_INNER = r"""
set -e
hostname "$NODE"
mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
while read -r type mp opts; do
  mkdir -p "$mp"; mount -t "$type" -o "$opts" "$type" "$mp"
done < "$LAB/cgroup-mounts.txt"
while read -r type mp opts; do
  case "$type:$mp" in cgroup2:*|*/cpuset) continue;; esac
  mkdir -p "$mp/$CG/$NODE/daemon"; echo $$ > "$mp/$CG/$NODE/daemon/cgroup.procs"
done < "$LAB/cgroup-mounts.txt"
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
exec dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
  --pidfile "$D/dockerd.pid" -H "unix://$D/docker.sock" --cgroup-parent "/$CG/$NODE/ctr" \
  --storage-driver overlay2 --bip "$BIP"
"""


def missing_reason() -> str | None:
    """Why the lab cannot start here (None: it can)."""
    if os.geteuid() != 0:
        return "the Swarm lab needs root (network namespaces, a dockerd per node)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the Swarm lab needs {', '.join(missing)} on PATH"
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        return "the Swarm lab needs cgroup v1 hierarchies (/sys/fs/cgroup/pids)"
    return None


def _run(*args: str, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, timeout=timeout, text=True, capture_output=True, **kw)


def _free_lan() -> str:
    """A 10.250.X.0/24 no route of this host overlaps."""
    routes = _run("ip", "-4", "route", "show", "table", "all", check=False).stdout
    nets = []
    for line in routes.splitlines():
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(200):
        cand = ipaddress.ip_network(f"10.250.{secrets.randbelow(250) + 1}.0/24")
        if not any(n.prefixlen and n.overlaps(cand) for n in nets):
            return str(cand.network_address)[: -len(".0")]
    raise RuntimeError("no free 10.250.X.0/24 for the Swarm lab")


class SwarmLab:
    """One lab: ``up()`` builds it, ``down()`` removes everything (idempotent)."""

    def __init__(self, root: Path | str, nodes: int = 3, suffix: str | None = None, lan: str | None = None):
        self.root = Path(root).resolve()
        self.nodes = nodes
        self.suffix = suffix or secrets.token_hex(3)[:5]
        self.name = f"gsl{self.suffix}"
        self.lan = lan or ""
        self.t_up = 0.0

    # ------------------------------------------------------------------ names
    def ns(self, i: int) -> str:
        return f"{self.name}n{i}"

    @property
    def brns(self) -> str:
        return f"{self.name}br"

    @property
    def host_veth(self) -> str:
        return f"{self.name}h"

    def addr(self, i: int) -> str:
        """Node i's address on the LAN."""
        return f"{self.lan}.{10 + i}"

    @property
    def host_addr(self) -> str:
        return f"{self.lan}.1"

    def node_dir(self, i: int) -> Path:
        return self.root / f"node{i}"

    def sock(self, i: int) -> str:
        return f"unix://{self.node_dir(i)}/docker.sock"

    @property
    def manager(self) -> str:
        """DOCKER_HOST of the manager (node 1)."""
        return self.sock(1)

    def docker(self, i: int, *args: str, check: bool = True, timeout: float = 60) -> str:
        return _run("docker", "-H", self.sock(i), *args, check=check, timeout=timeout).stdout

    def save(self) -> None:
        (self.root / "lab.json").write_text(
            json.dumps({"suffix": self.suffix, "nodes": self.nodes, "lan": self.lan}), encoding="utf-8"
        )

    @classmethod
    def load(cls, root: Path | str) -> SwarmLab:
        d = json.loads((Path(root) / "lab.json").read_text(encoding="utf-8"))
        return cls(root, d["nodes"], d["suffix"], d["lan"])

    # ------------------------------------------------------------------ up
    def up(self, heartbeat: str = "1s") -> SwarmLab:
        """Build the lab (about 3 s); on any failure everything made so far is removed."""
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lan = self.lan or _free_lan()
        self.save()
        try:
            self._network()
            starters = [self._spawn(i) for i in range(1, self.nodes + 1)]
            for i in starters:
                self._wait_answer(i)
            self._swarm(heartbeat)
        except BaseException:
            self.down()
            raise
        self.t_up = time.monotonic() - t0
        return self

    def _network(self) -> None:
        with contextlib.suppress(OSError):
            if not os.path.ismount("/run/netns"):
                (self.root / ".created-run-netns").touch()
        ip = lambda *a: _run("ip", *a)  # noqa: E731
        ip("netns", "add", self.brns)
        ip("-n", self.brns, "link", "set", "lo", "up")
        ip("-n", self.brns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.brns, "link", "set", "br0", "up")
        for i in range(1, self.nodes + 1):
            ip("netns", "add", self.ns(i))
            ip("-n", self.ns(i), "link", "set", "lo", "up")
            ip("-n", self.ns(i), "link", "add", "eth0", "type", "veth", "peer", "name", f"n{i}", "netns", self.brns)
            ip("-n", self.brns, "link", "set", f"n{i}", "master", "br0", "up")
            ip("-n", self.ns(i), "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            ip("-n", self.ns(i), "link", "set", "eth0", "up")
        # this host on the LAN (its end of the veth; the other end on the lab's bridge)
        ip("link", "add", self.host_veth, "type", "veth", "peer", "name", "host", "netns", self.brns)
        ip("-n", self.brns, "link", "set", "host", "master", "br0", "up")
        ip("addr", "add", f"{self.host_addr}/24", "dev", self.host_veth)
        ip("link", "set", self.host_veth, "up")

    def _spawn(self, i: int) -> int:
        d = self.node_dir(i)
        (d / "data").mkdir(parents=True, exist_ok=True)
        (d / "exec").mkdir(parents=True, exist_ok=True)
        mounts = self.root / "cgroup-mounts.txt"
        if not mounts.exists():
            with open("/proc/self/mounts", encoding="ascii") as f:
                rows = [ln.split() for ln in f]
            mounts.write_text(
                "".join(f"{r[2]} {r[1]} {r[3]}\n" for r in rows if r[2] in ("cgroup", "cgroup2")), encoding="ascii"
            )
        # its own key (own daemon ID; a config-file-only option in 20.10), short shutdown
        cfg = {"deprecated-key-path": str(d / "key.json"), "shutdown-timeout": 2}
        (d / "daemon.json").write_text(json.dumps(cfg), encoding="utf-8")
        env = {
            **os.environ,
            "NODE": f"node{i}",
            "LAB": str(self.root),
            "CG": self.name,
            "D": str(d),
            "BIP": f"172.30.{i}.1/24",
        }
        log = open(d / "dockerd.log", "ab")  # noqa: SIM115 (the child keeps it)
        with log:
            subprocess.Popen(
                ["setsid", "ip", "netns", "exec", self.ns(i), "unshare", "--uts", "sh", "-c", _INNER],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return i

    def _wait_answer(self, i: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):  # a restarting engine may take a while
                if _run("docker", "-H", self.sock(i), "version", check=False, timeout=10).returncode == 0:
                    return
            time.sleep(0.1)
        tail = (self.node_dir(i) / "dockerd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"dockerd of node{i} did not come up:\n{tail}")

    def _swarm(self, heartbeat: str) -> None:
        self.docker(1, "swarm", "init", "--advertise-addr", self.addr(1), "--listen-addr", f"{self.addr(1)}:2377")
        if heartbeat:
            self.docker(1, "swarm", "update", "--dispatcher-heartbeat", heartbeat)
        token = self.docker(1, "swarm", "join-token", "-q", "worker").strip()
        for i in range(2, self.nodes + 1):
            self.docker(
                i,
                "swarm",
                "join",
                "--token",
                token,
                "--advertise-addr",
                self.addr(i),
                "--listen-addr",
                f"{self.addr(i)}:2377",
                f"{self.addr(1)}:2377",
            )
        self.wait_nodes_ready(self.nodes)

    def node_status(self) -> dict[str, str]:
        """{hostname: Ready|Down|...} as the manager sees them."""
        out = self.docker(1, "node", "ls", "--format", "{{.Hostname}} {{.Status}}", check=False, timeout=20)
        return dict(line.split(None, 1) for line in out.splitlines() if " " in line)

    def wait_nodes_ready(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if list(self.node_status().values()).count("Ready") >= n:
                return
            time.sleep(0.2)
        raise RuntimeError(f"swarm nodes not Ready: {self.node_status()}")

    # ------------------------------------------------------------------ images
    def load_image(self, *tags: str) -> None:
        """Copy images of the host's dockerd onto every node (``docker save | docker load``)."""
        tar = self.root / "images.tar"
        _run("docker", "save", "-o", str(tar), *tags, timeout=120)
        try:
            for i in range(1, self.nodes + 1):
                _run("docker", "-H", self.sock(i), "load", "-q", "-i", str(tar), timeout=120)
        finally:
            tar.unlink(missing_ok=True)

    # ------------------------------------------------------------------ node control
    def pid(self, i: int) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            p = int((self.node_dir(i) / "dockerd.pid").read_text().strip())
            with open(f"/proc/{p}/comm", encoding="ascii") as f:
                if f.read().strip() == "dockerd":
                    return p
        return None

    def kill(self, i: int) -> None:
        """Crash node i: SIGKILL its dockerd (its containers keep running as orphans)."""
        self._signal(i, signal.SIGKILL)

    def stop(self, i: int) -> None:
        self._signal(i, signal.SIGTERM)

    def _signal(self, i: int, sig: int) -> None:
        p = self.pid(i)
        if p is None:
            return
        os.kill(p, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{p}/status", encoding="ascii") as f:
                    if "\nState:\tZ" in f.read():
                        return
            except OSError:
                return
            time.sleep(0.05)

    def start(self, i: int) -> None:
        """Start node i's dockerd again (it rejoins the Swarm by itself)."""
        self._spawn(i)
        self._wait_answer(i)

    # ------------------------------------------------------------------ down
    def _cgroup_pids(self) -> set[int]:
        out: set[int] = set()
        base = Path("/sys/fs/cgroup/pids") / self.name
        if base.is_dir():
            for procs in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    out |= {int(x) for x in procs.read_text().split()}
        return out

    def _netns_pids(self) -> set[int]:
        out: set[int] = set()
        for ns in [self.brns, *(self.ns(i) for i in range(1, self.nodes + 1))]:
            r = _run("ip", "netns", "pids", ns, check=False)
            out |= {int(x) for x in r.stdout.split() if x.isdigit()}
        return out

    def down(self) -> list[str]:
        """Remove everything the lab made; returns what could not be removed (empty: all gone)."""
        socks = self._shim_sockets()
        self._stop_daemons()
        if self._kill_leftovers():
            for sock in socks:
                with contextlib.suppress(OSError):
                    os.unlink(sock)
        self._unmount()
        _run("ip", "link", "del", self.host_veth, check=False)
        for ns in [*(self.ns(i) for i in range(1, self.nodes + 1)), self.brns]:
            _run("ip", "netns", "del", ns, check=False)
        for h in Path("/sys/fs/cgroup").glob(f"*/{self.name}"):
            for d in sorted((p for p in h.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                h.rmdir()
        for i in range(1, self.nodes + 1):
            shutil.rmtree(self.node_dir(i), ignore_errors=True)
        (self.root / "cgroup-mounts.txt").unlink(missing_ok=True)
        if (self.root / ".created-run-netns").exists():
            with contextlib.suppress(OSError):
                if not os.listdir("/run/netns"):
                    _run("umount", "/run/netns", check=False)
                    os.rmdir("/run/netns")
            (self.root / ".created-run-netns").unlink(missing_ok=True)
        return self.leftovers()

    def _stop_daemons(self) -> None:
        for i in range(1, self.nodes + 1):  # containers first: else each task's stop grace period
            if self.pid(i) is not None:
                ids = self.docker(i, "ps", "-q", check=False, timeout=10).split()
                if ids:
                    self.docker(i, "kill", *ids, check=False, timeout=20)
        for i in range(1, self.nodes + 1):
            p = self.pid(i)
            if p is not None:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(self.pid(i) for i in range(1, self.nodes + 1)):
            time.sleep(0.2)

    def _kill_leftovers(self) -> bool:
        """SIGKILL what is provably the lab's (in its cgroups or its namespaces); whether any was left."""
        killed = False
        for _ in range(5):
            pids = self._cgroup_pids() | self._netns_pids()
            pids.discard(os.getpid())
            if not pids:
                break
            killed = True
            for p in pids:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.3)
        return killed

    def _shim_sockets(self) -> list[str]:
        import hashlib

        out = []
        for i in range(1, self.nodes + 1):
            addr = f"{self.node_dir(i)}/exec/containerd/containerd.sock"
            tasks = self.node_dir(i) / "exec/containerd/daemon/io.containerd.runtime.v2.task/moby"
            for t in tasks.glob("*") if tasks.is_dir() else []:
                h = hashlib.sha256(f"{addr}/moby/{t.name}".encode()).hexdigest()
                out.append(f"/run/containerd/s/{h}")
        return out

    def _unmount(self) -> None:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [ln.split()[4] for ln in f]
        for m in sorted((m for m in points if m.startswith(str(self.root) + "/node")), reverse=True):
            _run("umount", "-l", m, check=False)

    def leftovers(self) -> list[str]:
        left = []
        if self._cgroup_pids():
            left.append(f"processes in cgroup {self.name}")
        nss = _run("ip", "netns", "list", check=False).stdout
        left += [f"netns {ln.split()[0]}" for ln in nss.splitlines() if ln.startswith(self.name)]
        if _run("ip", "link", "show", self.host_veth, check=False).returncode == 0:
            left.append(f"link {self.host_veth}")
        left += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{self.name}")]
        return left


def wait_until(cond: Any, timeout: float = 60.0, interval: float = 0.2, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(interval)


def lab_or_skip(root: Path) -> Iterator[SwarmLab]:
    """Generator behind the fixtures: a lab that is up, removed afterwards (also on failure)."""
    import pytest

    why = missing_reason()
    if why:
        pytest.skip(why)
    lab = SwarmLab(root)
    try:
        lab.up()
    except Exception as exc:  # noqa: BLE001 (the reason is shown)
        pytest.skip(f"the Swarm lab did not start: {exc}")
    try:
        yield lab
    finally:
        left = lab.down()
        if left:
            print(f"swarm lab {lab.name}: left behind: {left}", file=sys.stderr)


try:
    import pytest as _pytest

    @_pytest.fixture(scope="module")
    def swarm_lab(tmp_path_factory: Any) -> Iterator[SwarmLab]:
        """A 3-node Swarm for the test module (``from tests.swarmlab import swarm_lab``)."""
        yield from lab_or_skip(tmp_path_factory.mktemp("swarmlab"))

except ImportError:  # pragma: no cover (the CLI needs no pytest)
    pass


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python -m tests.swarmlab up|down DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    if argv[0] == "up":
        why = missing_reason()
        if why:
            print(why, file=sys.stderr)
            return 1
        lab = SwarmLab(root).up()
        print(f"swarm lab {lab.name} up in {lab.t_up:.1f}s: DOCKER_HOST={lab.manager}; nodes {lab.node_status()}")
        print(f"this host is {lab.host_addr} on the nodes' LAN; node addresses {lab.addr(1)}..{lab.addr(lab.nodes)}")
        return 0
    left = SwarmLab.load(root).down()
    print("down: everything removed" if not left else f"down: left behind {left}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
