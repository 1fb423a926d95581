"""A pod's sandbox on the in-process runtime: a holder process that owns the pod's namespaces.

Where it sits: when gitship runs as root with a routable pod CIDR, every pod (except
``hostNetwork`` ones) gets a sandbox before its containers start (isolation.py decides
and drives; this module does the mechanics). Like Docker's pause container, the holder
does nothing but keep the pod's **network, UTS, IPC and mount namespaces** alive, so the
pod's containers share them and a restarted container rejoins them (same IP, hostname,
files).

The holder
    ``unshare --net --uts --ipc --mount --propagation slave -- sh -c SCRIPT``: the shell
    sets the hostname (``/proc/sys/kernel/hostname`` is per UTS namespace),
    bind-mounts the pod's own ``resolv.conf`` and ``hosts`` (written under
    ``{state_dir}/sandboxes/{uid}/``) over ``/etc/resolv.conf`` and ``/etc/hosts`` (one
    ``mount --all --fstab`` of a two-line fstab: 1.3 ms less than two mounts), runs
    ``ip -batch`` to create the veth pair (``eth0`` inside with the pod IP and a default
    route via the gateway, the other end created straight in the host's namespace), prints
    ``ready`` and ``exec``s ``sleep infinity``. unshare needs no fork for these namespaces,
    so the holder's pid is the Popen's pid throughout. ``slave`` propagation: the host's
    later mounts (and unmounts) still reach the pod, the pod's bind mounts never reach the
    host. A shell and coreutils measured ~5 ms to ready; a Python holder costs ~20 ms of
    interpreter start alone. The holder is started with ``start_new_session`` (it outlives
    gitship) and ``GITSHIP_POD_UID`` in its environment (procid.is_ours knows it after a
    restart).

Containers
    ``nsenter --target <holder> --net --uts --ipc --mount --wd=<cwd> -- argv``: without
    ``--pid`` nsenter execs in place, so the Popen's pid *is* the container's process (exit
    codes, SIGTERM and the grace period, pidfd, killpg all work as in host mode).
    ``--wd`` because entering a mount namespace resets the working directory.

No PID namespace
    Joining a PID namespace only takes effect for children: nsenter (or the holder) would
    have to fork and stay as the container's parent, so gitship would watch, signal and
    reap a middleman instead of the container (exit codes and the SIGTERM grace period go
    through a relay). Pods see the host's processes, as with ``shareProcessNamespace``
    across pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..net import bridge
from . import procid

READY = "gitship-sandbox-ready"
READY_TIMEOUT = 10.0
SANDBOX_ENV = "GITSHIP_SANDBOX"

# $1 hostname, $2 fstab (the two bind mounts: one mount process), $3 ip batch file, $4 mount, $5 ip, $6 sleep
HOLDER_SCRIPT = (
    'set -e; echo "$1" > /proc/sys/kernel/hostname; "$4" --all --fstab "$2"; "$5" -batch "$3"; '
    "echo " + READY + '; exec "$6" infinity </dev/null >/dev/null 2>&1'
)
TOOLS = ("unshare", "nsenter", "ip", "mount", "sh", "sleep")


class SandboxError(Exception):
    """The sandbox could not be made (the kubelet's FailedCreatePodSandBox)."""


@dataclass(frozen=True)
class Tools:
    unshare: str
    nsenter: str
    ip: str
    mount: str
    sh: str
    sleep: str


def find_tools() -> tuple[Tools | None, str | None]:
    """(the binaries a sandbox needs, None) or (None, the name of the first one missing)."""
    found: dict[str, str] = {}
    for name in TOOLS:
        exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if exe is None:
            return None, name
        found[name] = exe
    return Tools(**found), None


@dataclass
class Sandbox:
    """One pod's sandbox as recorded in its state file (``sandbox`` key)."""

    holder: procid.ProcessIdentity
    veth: str
    ip: str
    hostname: str
    ready: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.holder.to_json(),
            "veth": self.veth,
            "ip": self.ip,
            "hostname": self.hostname,
            "ready": self.ready,
        }

    @classmethod
    def from_json(cls, d: Any) -> Sandbox | None:
        if not isinstance(d, Mapping):
            return None
        ident = procid.ProcessIdentity.from_json(d.get("process"))
        if ident is None or not d.get("veth"):
            return None
        return cls(ident, str(d["veth"]), str(d.get("ip") or ""), str(d.get("hostname") or ""), bool(d.get("ready")))


def sandbox_dir(state_dir: str, uid: str) -> str:
    return os.path.join(state_dir, "sandboxes", uid)


def enter_argv(tools: Tools, holder_pid: int, cwd: str | None) -> list[str]:
    """The prefix that runs a command inside the sandbox of ``holder_pid`` (nsenter execs in place)."""
    argv = [tools.nsenter, f"--target={holder_pid}", "--net", "--uts", "--ipc", "--mount"]
    if cwd:
        argv.append(f"--wd={cwd}")
    return [*argv, "--"]


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _fstab_escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def write_files(directory: str, resolv: str, hosts: str, batch: str) -> tuple[str, str]:
    """The pod's files under ``directory``; returns (fstab, ip batch) for the holder."""
    os.makedirs(directory, exist_ok=True)
    resolv_path, hosts_path = os.path.join(directory, "resolv.conf"), os.path.join(directory, "hosts")
    fstab = "".join(
        f"{_fstab_escape(src)} {dst} none bind 0 0\n"
        for src, dst in ((resolv_path, "/etc/resolv.conf"), (hosts_path, "/etc/hosts"))
    )
    paths = (resolv_path, hosts_path, os.path.join(directory, "fstab"), os.path.join(directory, "net"))
    for path, text in zip(paths, (resolv, hosts, fstab, batch)):
        _write(path, text)
    return paths[2], paths[3]


def pod_mac(ip: str) -> str:
    """eth0's MAC: 0a:58 and the four bytes of the pod IP. A pod whose sandbox is made again keeps
    its IP *and* MAC, so the neighbour caches of the host and of other pods stay right (with a
    random MAC, traffic to the pod goes to the old address until the cache entry expires, ~30 s)."""
    return "0a:58:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def net_batch(veth: str, ip: str, prefix: int, gw: str) -> str:
    """What ``ip -batch`` runs inside the new network namespace."""
    return (
        f"link add eth0 address {pod_mac(ip)} type veth peer name {veth} netns {os.getpid()}\n"
        "link set dev lo up\n"
        f"addr add {ip}/{prefix} dev eth0\n"
        "link set dev eth0 up\n"
        f"route add default via {gw} dev eth0\n"
    )


def spawn_holder(tools: Tools, uid: str, paths: tuple[str, str], hostname: str) -> subprocess.Popen[bytes]:
    fstab, batch = paths
    env = {"PATH": os.environ.get("PATH", os.defpath), procid.UID_ENV: uid, SANDBOX_ENV: "1"}
    argv = [tools.unshare, "--net", "--uts", "--ipc", "--mount", "--propagation", "slave", "--"]
    argv += [tools.sh, "-c", HOLDER_SCRIPT, "gitship-sandbox", hostname, fstab, batch]
    argv += [tools.mount, tools.ip, tools.sleep]
    return subprocess.Popen(
        argv,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd="/",  # the holder pins no directory of the host
        close_fds=True,
    )


async def wait_ready(proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT) -> None:
    """Read the holder's output until EOF (its shell exec'd sleep with stdout on /dev/null, or it died).

    Raises SandboxError with what it printed unless it printed the ready line and still runs."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        raise SandboxError(f"the sandbox was not ready after {timeout:g}s") from None
    finally:
        loop.remove_reader(fd)
        proc.stdout.close()
    out = b"".join(chunks).decode(errors="replace").strip()
    if READY not in out.splitlines() or proc.poll() is not None:
        msg = "\n".join(line for line in out.splitlines() if line != READY)
        raise SandboxError(msg or f"the sandbox's holder exited with {proc.returncode}")


def kill_holder(ident: procid.ProcessIdentity, uid: str) -> bool:
    """SIGKILL the holder if it is still ours. True if a signal was sent."""
    if not procid.is_ours(ident, uid):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(ident.pid, signal.SIGKILL)
        return True
    return False


def sweep(state_dir: str) -> list[int]:
    """Kill every sandbox holder and container process recorded under ``state_dir`` (if still
    ours) and delete their veths. For tests and tools that clean up after a daemon killed -9;
    never needed by gitship itself. Returns the pids signalled."""
    killed: list[int] = []
    for uid, st in procid.read_states(os.path.abspath(state_dir)).items():
        for rec in (st.get("containers") or {}).values():
            ident = procid.ProcessIdentity.from_json((rec or {}).get("process")) if isinstance(rec, dict) else None
            if ident is not None and procid.is_ours(ident, uid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(ident.pid, signal.SIGKILL)
                    killed.append(ident.pid)
        sb = Sandbox.from_json(st.get("sandbox"))
        if sb is None:
            continue
        if kill_holder(sb.holder, uid):
            killed.append(sb.holder.pid)
        bridge.delete_link_sync(sb.veth)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in killed):
        time.sleep(0.01)
    return killed


def _alive(pid: int) -> bool:
    st = procid.read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")
