"""The ingress engine: HAProxy as gitship's supervised child, configured from each pass's routing table.

``IngressEngine.apply(table)`` renders the configuration (render.py). When only servers changed
(endpoints), it sets them in the running worker through the admin socket (render.slot_commands) and
writes the file; when the configuration's shape changed, it writes it (certificates under
``{state}/ingress/certs``, mode 0600, never logged) and starts HAProxy or reloads it: HAProxy runs in
master-worker mode (``-W``) as gitship's child; a reload (SIGUSR2 to the master) starts a new worker on
the same listening sockets and lets the old one finish its connections, so a reload drops nothing.
``apply`` returns once the servers are set or the new worker answers, so the executor stops a pod
only after the routing no longer sends it requests.

HAProxy starts with the first Ingress and stops when the last goes (it holds no port before). A port
that cannot be bound (taken, or below 1024 without the capability) is left out and tried again on
each apply; a missing binary, a refused configuration or a master that died are a status
(``info()``, shown by ``gitship status``), never an exception: a dead master is restarted with
back-off (1 s doubling to 30 s). ``close()`` stops it and removes its files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

from ..cluster import Cluster
from ..controllers.ingress import ICLASS, Table, build_table
from ..log import Logger
from .render import Listen, Rendered, Slots, render, slot_commands

BACKOFF_MAX = 30.0
READY_TIMEOUT = 10.0


def _bindable(addr: tuple[str, int]) -> str | None:
    """None when ``addr`` can be bound now, else why not."""
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        return None
    except OSError as e:
        return os.strerror(e.errno) if e.errno else str(e)
    finally:
        s.close()


class IngressEngine:
    """One HAProxy master for the node's Ingresses."""

    def __init__(
        self,
        state_dir: str,
        log: Logger,
        http: tuple[str, int] = ("0.0.0.0", 80),
        https: tuple[str, int] = ("0.0.0.0", 443),
        binary: str = "haproxy",
    ):
        self.dir = os.path.join(state_dir, "ingress")
        self.log = log
        self.want_http, self.want_https = http, https
        self.binary = shutil.which(binary)
        self.proc: asyncio.subprocess.Process | None = None
        self.rendered: tuple[str, str, dict[str, str]] | None = None  # the running configuration's shape
        self.slots: Slots = {}  # the servers HAProxy has, by slot (render.assign_slots)
        self.updates = 0  # server changes through the runtime API
        self.bound: set[tuple[str, int]] = set()
        self.bind_failed: dict[tuple[str, int], str] = {}
        self.error: str | None = None if self.binary else "haproxy is not installed"
        self.reloads = 0
        self._backoff = 1.0
        self._restart_at = 0.0
        self._lock = asyncio.Lock()
        self._table: Table | None = None
        self._swept = False
        self._leftover: int | None = None  # the master a daemon killed with -9 left: its sockets are taken over
        self._leftover_addrs: set[tuple[str, int]] = set()

    @property
    def admin_socket(self) -> str:
        return os.path.join(self.dir, "admin.sock")

    def info(self) -> dict[str, Any]:
        state = "idle"
        if self.proc is not None and self.proc.returncode is None:
            state = "running"
        if self.error:
            state = "failed"
        return {
            "engine": "haproxy",
            "state": state,
            "http": "%s:%d" % self.want_http,
            "https": "%s:%d" % self.want_https,
            "bound": sorted("%s:%d" % a for a in self.bound),
            "bindFailed": {"%s:%d" % a: why for a, why in sorted(self.bind_failed.items())},
            "error": self.error,
            "reloads": self.reloads,
            "serverUpdates": self.updates,
            "pid": self.proc.pid if self.proc is not None and self.proc.returncode is None else None,
        }

    # -- applying a table -----------------------------------------------------------------------
    async def program(self, cluster: Cluster) -> None:
        """The executor's ingress step: the table of the live objects the pass left, applied now (in
        the Service step, before the stops)."""
        ingresses = cluster.of_kind("Ingress")
        if not ingresses and self.proc is None and self._table is None:
            return  # the common case: no Ingress, nothing runs (one scan)
        kinds = (ICLASS, "Service", "Endpoints", "Secret")
        table = build_table(ingresses, *(cluster.of_kind(k) for k in kinds))
        await self.apply(table)

    async def apply(self, table: Table) -> None:
        async with self._lock:
            try:
                await self._apply(table)
            except Exception as e:  # the engine's failure is a status, never the daemon's
                self.error = str(e)
                self.log.warning("ingress_apply_failed", error=str(e))

    async def _apply(self, table: Table) -> None:
        self._table = None if table.empty else table
        if table.empty:
            await self._stop()
            return
        if self.binary is None:
            return
        if not self._swept:  # a master left by a daemon killed with -9 holds the ports: ours takes them over
            self._swept = True
            self._leftover = await asyncio.to_thread(_leftover_master, self.dir)
            self._leftover_addrs = _bound_in(self.dir) if self._leftover else set()
        self._check_ports(bool(table.certs))
        listen = Listen(
            http=self.want_http if self.want_http in self.bound else None,
            https=self.want_https if self.want_https in self.bound else None,
            admin_socket=self.admin_socket,
            crt_list=os.path.join(self.dir, "crt-list.txt"),
            cert_dir=os.path.join(self.dir, "certs"),
        )
        r = render(table, listen, self.slots)
        key = (r.structure, r.crt_list, r.certs)
        running = self.proc is not None and self.proc.returncode is None
        if running and key == self.rendered:
            if r.slots != self.slots:  # only servers changed: the runtime API, no reload
                await self._set_servers(r)
            return
        if not running and time.monotonic() < self._restart_at:
            return  # back-off after a crash
        await asyncio.to_thread(self._write, r.config, r.crt_list, r.certs)
        if not await self._check_config():
            return
        if running:
            await self._reload()
        else:
            await self._start()
        self.rendered, self.slots = key, r.slots

    async def _set_servers(self, r: Rendered) -> None:
        """Endpoint changes through the admin socket (``set server ... addr``, ``state``), then the file
        is made current for a later reload; a command refused: a reload does it instead."""
        cmds = slot_commands(self.slots, r.slots)
        out = await self._command(";".join(cmds)) if cmds else None
        bad = out is None or any(w in out for w in ("No such", "Unknown", "Require", "invalid", "failed"))
        await asyncio.to_thread(self._write, r.config, r.crt_list, r.certs)
        if bad:
            self.log.warning("ingress_server_update_failed", answer=(out or "")[:200])
            if await self._check_config():
                await self._reload()
        self.slots = r.slots
        self.updates += 1

    def _check_ports(self, tls: bool) -> None:
        """Ports we do not hold yet are tried (a listening HAProxy already holds ``self.bound``)."""
        running = self.proc is not None and self.proc.returncode is None
        for addr in (self.want_http, *((self.want_https,) if tls else ())):
            if (running and addr in self.bound) or (self._leftover and addr in self._leftover_addrs):
                self.bound.add(addr)  # ours, or the leftover master's to hand over (-x)
                continue
            why = _bindable(addr)
            if why is None:
                self.bound.add(addr)
                self.bind_failed.pop(addr, None)
            else:
                self.bound.discard(addr)
                if self.bind_failed.get(addr) != why:
                    self.log.warning("ingress_listen_failed", address="%s:%d" % addr, error=why)
                self.bind_failed[addr] = why

    def _write(self, config: str, crt_list: str, certs: dict[str, str]) -> None:
        cert_dir = os.path.join(self.dir, "certs")
        os.makedirs(cert_dir, mode=0o700, exist_ok=True)
        for name, pem in certs.items():
            _write_private(os.path.join(cert_dir, name), pem)
        for stale in set(os.listdir(cert_dir)) - set(certs):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(cert_dir, stale))
        _write_private(os.path.join(self.dir, "crt-list.txt"), crt_list)
        _write_private(os.path.join(self.dir, "haproxy.cfg"), config)

    async def _check_config(self) -> bool:
        assert self.binary
        p = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            "-q",
            "-f",
            os.path.join(self.dir, "haproxy.cfg"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await p.communicate()
        if p.returncode != 0:
            self.error = "configuration refused: " + out.decode(errors="replace").strip()[-500:]
            self.log.warning("ingress_config_refused", error=self.error)
            return False
        return True

    async def _start(self) -> None:
        """Start a master. With a leftover master (its daemon killed with -9, it kept serving), the new one
        takes its listening sockets over its admin socket (``-x``; ``expose-fd listeners``), so no
        connection is refused meanwhile, and the leftover is soft-stopped once the new worker answers."""
        assert self.binary
        leftover, self._leftover, self._leftover_addrs = self._leftover, None, set()
        old = await self._worker_pid() if leftover else None
        take = ["-x", self.admin_socket] if old else []
        if not take:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.admin_socket)
        with open(os.path.join(self.dir, "haproxy.log"), "ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-W",
                "-db",
                *take,
                "-f",
                os.path.join(self.dir, "haproxy.cfg"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
            )
        _write_private(os.path.join(self.dir, "haproxy.pid"), str(self.proc.pid))
        asyncio.get_running_loop().create_task(self._watch(self.proc))
        pid = await self._wait_worker(old)
        if leftover:
            await asyncio.to_thread(_stop_master, leftover)
        if pid is None:
            self.error = "haproxy did not start (see %s)" % os.path.join(self.dir, "haproxy.log")
            return
        self.error = None
        self._backoff = 1.0
        self.log.info("ingress_started", pid=self.proc.pid, bound=sorted("%s:%d" % a for a in self.bound))

    async def _reload(self) -> None:
        assert self.proc is not None
        old = await self._worker_pid()
        self.proc.send_signal(signal.SIGUSR2)
        pid = await self._wait_worker(old)
        self.reloads += 1
        if pid is None:
            self.error = "haproxy did not reload (see %s)" % os.path.join(self.dir, "haproxy.log")
        else:
            self.error = None

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if proc is not self.proc:
            return
        self.proc, self.rendered = None, None
        self.bound.clear()
        self.error = f"haproxy exited with code {code}; restarting in {self._backoff:.0f}s"
        self.log.warning("ingress_engine_exited", code=code, restart_in=self._backoff)
        self._restart_at = time.monotonic() + self._backoff
        delay, self._backoff = self._backoff, min(BACKOFF_MAX, self._backoff * 2)
        await asyncio.sleep(delay)
        if self._table is not None:
            await self.apply(self._table)

    # -- the admin socket ----------------------------------------------------------------------
    async def _command(self, cmd: str) -> str | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.admin_socket), 1.0)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            writer.write(cmd.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.read(), 2.0)).decode(errors="replace")
        except (OSError, asyncio.TimeoutError):
            return None
        finally:
            writer.close()

    async def _worker_pid(self) -> str | None:
        out = await self._command("show info")
        for line in (out or "").splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        return None

    async def _wait_worker(self, old: str | None) -> str | None:
        """The new worker's pid once it answers on the admin socket (None: it did not in time)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.returncode is not None:
                return None
            pid = await self._worker_pid()
            if pid is not None and pid != old:
                return pid
            await asyncio.sleep(0.02)
        return None

    # -- stopping ------------------------------------------------------------------------------
    async def _stop(self) -> None:
        proc, self.proc, self.rendered = self.proc, None, None
        self.bound.clear()
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGUSR1)  # soft stop: finish the connections it has
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        self.log.info("ingress_stopped")

    async def close(self) -> None:
        self._table = None
        async with self._lock:
            await self._stop()
        shutil.rmtree(os.path.join(self.dir, "certs"), ignore_errors=True)


def ingress_engine(daemon: Any) -> IngressEngine:
    """The daemon's engine: on its ``--node-address``, ports ``--ingress-http-port`` / ``--ingress-https-port``."""
    opts = daemon.opts
    host = opts.node_address or "0.0.0.0"
    http, https = opts.ingress_ports
    return IngressEngine(daemon.state_dir, daemon.log, (host, http), (host, https))


def _leftover_master(folder: str) -> int | None:
    """The HAProxy master a previous daemon of this state dir left (it was killed with -9; its HAProxy,
    in a session of its own, kept serving), if it still runs: a process whose command line names this
    state dir's configuration."""
    try:
        pid = int(Path(folder, "haproxy.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if os.path.join(folder, "haproxy.cfg").encode() not in cmdline or _zombie(pid):
        return None
    return pid


def _bound_in(folder: str) -> set[tuple[str, int]]:
    """The addresses the configuration in ``folder`` binds (render.py's ``bind HOST:PORT`` lines)."""
    out: set[tuple[str, int]] = set()
    with contextlib.suppress(OSError):
        for line in Path(folder, "haproxy.cfg").read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "bind" and ":" in words[1]:
                host, _, port = words[1].rpartition(":")
                with contextlib.suppress(ValueError):
                    out.add((host, int(port)))
    return out


def _stop_master(pid: int) -> None:
    """Soft stop (its listeners close, or pass to the new master; its connections finish), then
    SIGTERM and SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGUSR1, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                return
            time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _write_private(path: str, text: str) -> None:
    """Write ``path`` atomically with mode 0600 (it may hold private keys)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
