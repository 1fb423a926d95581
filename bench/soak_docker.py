"""The soak's own Docker engine (bench/soak.py ``--runtime docker``): a dockerd of its own, so that it can be
killed with ``-9`` and started again without touching the machine's dockerd (other tests use that one).

It runs in the host's network namespace (gitship reaches pod IPs on its bridge directly, as with the
machine's engine) with its own ``--data-root``, ``--exec-root``, pidfile and socket, no default bridge
(``--bridge=none``), no iptables rules (``--iptables=false``: the load comes from the host, so nothing
crosses the FORWARD chain) and an address pool of its own (a free 10.x.0.0/16, bench.common.free_ranges),
so the network gitship creates on it overlaps nothing. Live restore is off (Docker's default): when the
engine dies, its containers die with it (the restarted engine finds them exited); the soak measures that.

Images: gitship-test/kubia:v1 and v2 built in it from the host's busybox (tests/dockerimages.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

IMAGE = "gitship-test/kubia:v1"


def unavailable() -> str | None:
    """Why the soak cannot run its own dockerd here (None: it can)."""
    if os.geteuid() != 0:
        return "an own dockerd needs root"
    for tool in ("dockerd", "containerd", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker SDK is not installed"
    from runtime.docker import BUSYBOX

    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} is needed to build the kubia images"
    return None


class OwnDockerd:
    """One dockerd under ``/tmp/gss-<id>`` (a short path: unix socket paths are limited to 108 bytes)."""

    def __init__(self) -> None:
        from bench.common import free_ranges

        self.root = Path(f"/tmp/gss-{uuid.uuid4().hex[:8]}")
        self.cgroup = self.root.name  # its containers' cgroup parent: their processes can be found and killed
        pod_cidr, _ = free_ranges()
        self.pool = pod_cidr.replace("/17", "/16")
        self.sock = str(self.root / "docker.sock")
        self.host = "unix://" + self.sock
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> "OwnDockerd":
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "exec").mkdir(parents=True, exist_ok=True)
        cfg = self.root / "daemon.json"
        cfg.write_text(json.dumps({"shutdown-timeout": 2, "live-restore": False}))
        args = [
            "dockerd",
            "--config-file", str(cfg),
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "-H", self.host,
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--default-address-pool", f"base={self.pool},size=24",
            "--storage-driver", "overlay2",
            "--cgroup-parent", "/" + self.cgroup,
        ]  # fmt: skip
        with open(self.root / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.answers():
                return self
            time.sleep(0.1)
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the soak's dockerd did not come up:\n{tail}")

    def answers(self) -> bool:
        try:
            r = subprocess.run(["docker", "-H", self.host, "version"], capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:  # a restarting engine may take a while
            return False
        return r.returncode == 0

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def build_images(self) -> None:
        """gitship-test/kubia:v1 and :v2 in this engine (tests/dockerimages.py)."""
        from tests.dockerimages import ensure_test_images

        c = self.client()
        try:
            ensure_test_images(c)
        finally:
            c.close()

    def kill9(self) -> None:
        """SIGKILL the engine (not its containerd: dockerd's managed containerd is its child and goes with
        it when dockerd is gone for good; the containers' shims stay)."""
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def restart(self) -> None:
        """Start the engine again. Its old containerd dies with it (a parent-death signal) but may stay a
        zombie here (no init reaps it): dockerd would then take it for alive and wait for its socket, so a
        pidfile naming a dead or zombie process is removed first."""
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        deadline = time.monotonic() + 10
        while pidfile.exists() and time.monotonic() < deadline:
            try:
                pid = int(pidfile.read_text().strip())
                with open(f"/proc/{pid}/status") as f:
                    alive = "\nState:\tZ" not in f.read()
            except (OSError, ValueError):
                alive = False
            if not alive:
                pidfile.unlink(missing_ok=True)
                break
            time.sleep(0.05)
        self.start()

    def containers(self, label: str = "gitship.instance") -> list[str]:
        """Ids of every container (running or not) with ``label``."""
        if not self.proc or self.proc.poll() is not None:
            return []
        r = subprocess.run(
            ["docker", "-H", self.host, "ps", "-aq", "--filter", f"label={label}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return r.stdout.split()

    def stop(self) -> None:
        """Stop the engine (its containers first) and remove its folder, its mounts and its processes."""
        if self.proc and self.proc.poll() is None:
            ids = subprocess.run(
                ["docker", "-H", self.host, "ps", "-q"], capture_output=True, text=True, timeout=30
            ).stdout.split()
            if ids:
                subprocess.run(["docker", "-H", self.host, "kill", *ids], capture_output=True, timeout=60)
            subprocess.run(["docker", "-H", self.host, "network", "prune", "-f"], capture_output=True, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._kill_left()
        self.remove_cgroups()
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f]
        for m in sorted((m for m in points if m.startswith(str(self.root) + "/")), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        for link in self.bridges():
            subprocess.run(["ip", "link", "del", link], capture_output=True)

    def bridges(self) -> list[str]:
        """Links with an address in this engine's pool (its networks' bridges)."""
        import ipaddress

        pool = ipaddress.ip_network(self.pool)
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
        links = []
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts and ipaddress.ip_interface(parts[parts.index("inet") + 1]).ip in pool:
                links.append(parts[1])
        return links

    def _kill_left(self) -> None:
        """SIGKILL processes whose command line names this engine's folder (its containerd and shims) and
        those in its containers' cgroups (a container whose engine was killed and not restarted outlives
        its shim), then remove those cgroups."""
        for _ in range(5):
            left = self.processes() + self.container_processes()
            if not left:
                return
            for p in left:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.3)

    def container_processes(self) -> list[int]:
        """Live processes in this engine's containers' cgroups (zombies are not counted)."""
        out: set[int] = set()
        for procs in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup}/**/cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                out |= {int(x) for x in procs.read_text().split()}
        live = []
        for p in out:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    live.append(p)
        return live

    def remove_cgroups(self) -> None:
        for top in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup}"):
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()

    def processes(self) -> list[int]:
        out = []
        needle = str(self.root).encode()
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if needle in f.read():
                        out.append(int(p))
        return out
