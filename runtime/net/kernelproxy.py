"""The kernel data plane for Services: nftables rules that carry ClusterIP, NodePort and LoadBalancer
traffic in the kernel, so Services keep working while the daemon is down (even after ``kill -9``).

runtime/net/nftables.py renders the table (its docstring describes the rules: dispatch maps,
per-Service and per-endpoint chains, random or ClientIP balancing, rejects for Services without
endpoints, masquerade with mark 0x01000000); this module does the I/O around it:

* ``apply(rules)`` takes the whole desired set each time. Bad data (an address that is not IPv4, a
  port out of range, an unknown protocol) raises ``ValueError`` naming the key before anything runs,
  and nothing in the kernel changes. Each listen address that is a port of this host (all but the
  ClusterIP) is checked with a test bind, as the Python proxy's own bind would fail: a port another
  program holds is left out of the rules and reported (``{(host, port, protocol): why}``, with
  ``in use by service <key>`` for an address two rules claim, and SCTP addresses), and tried again
  on the next call. The rendered text is loaded with ``nft -f -``: one transaction that replaces the
  table whole, atomically; unchanged rules are not loaded again (every ``RECHECK`` seconds a call
  with unchanged rules checks that the table is still there, and loads it again if someone deleted
  it, e.g. ``nft flush ruleset``). A failed load raises ``NftError`` (an ``OSError``) and leaves the
  previous table in force.
* Affinity survives a replacement: just before loading, the clients held in the affinity sets of
  the table in force (this process's, or one a killed daemon left) are read (``nft -j list table``)
  and written into the new table's sets of the same name, with the time they had left.
* Stale UDP conntrack entries are deleted after a load that changed a UDP Service's endpoints or
  addresses (``conntrack -L``, then ``conntrack -D`` per stale endpoint; which ones: nftables.py
  ``stale_udp``), so a client's next datagram goes to an endpoint that is still there. TCP
  connections are left alone: an established connection finishes on its endpoint (zero-drop
  rollouts rely on it). Without the ``conntrack`` binary this is skipped, logged once, and
  ``info()`` says so.
* A new ``KernelProxy`` on the same table name takes over the table a crashed daemon left (its first
  load replaces it: no duplicates); ``close()`` deletes the table (a clean stop).

nft and conntrack run as subprocesses (``asyncio.create_subprocess_exec``): the event loop never waits
on them. ``KernelProxy.unavailable()`` says why this data plane cannot be used here (not root, no
``nft``, or the kernel refuses the rules), so the daemon can fall back to the Python proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from . import nftables as nft
from .libnft import LibNft, open_library
from .nftables import Listen, ServiceRule
from .proxy import bind_error

log = structlog.get_logger("runtime.net")

TIMEOUT = 30.0  # seconds for one nft or conntrack run
RECHECK = 30.0  # seconds between checks that the table is still in the kernel
CONNTRACK_MISSING = "conntrack not found: stale UDP flows are not flushed when an endpoint goes"
_DELETED = re.compile(r"(\d+) flow entries have been deleted")


class NftError(OSError):
    """nft refused the rules or could not run; the table in force is unchanged."""


async def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """Run a command without blocking the loop: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NftError(f"{argv[0]} {argv[1]} did not finish within {timeout:g}s") from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def port_taken(host: str, port: int, protocol: str) -> str | None:
    """Why ``host:port`` cannot be listened on (another socket holds it), or None when it is free:
    a test bind, closed at once, as the Python proxy's listener would be bound."""
    kind = socket.SOCK_DGRAM if protocol == "UDP" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is no owner
        try:
            s.bind((host, port))
        except OSError as e:
            return bind_error(e)
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _probe_rules() -> list[ServiceRule]:
    """One of each construct the table uses, for ``unavailable``'s check transaction."""
    return [
        ServiceRule("probe:a", "TCP", (("10.0.0.1", 80), ("0.0.0.0", 30000)), (("10.0.0.2", 80), ("10.0.0.3", 80))),
        ServiceRule("probe:b", "UDP", (("10.0.0.4", 53),), (("10.0.0.5", 53),), "ClientIP", 10),
        ServiceRule("probe:c", "TCP", (("10.0.0.6", 80), ("0.0.0.0", 30001)), ()),
    ]


def delete_table(name: str) -> None:
    """Delete the table ``ip <name>`` if it exists (test clean-up; a daemon calls ``close()``)."""
    binary = shutil.which("nft")
    if binary is None:
        return
    subprocess.run([binary, "delete", "table", "ip", nft.validate_table(name)], capture_output=True, check=False)


class KernelProxy:
    """The Services' rules in one nftables table of our own, ``ip <table>`` (one table per daemon,
    e.g. ``gitship_1a2b3c4d``). Use it from one event loop."""

    def __init__(self, table: str) -> None:
        self.table = nft.validate_table(table)
        self._nft = shutil.which("nft") or "nft"
        self._lib: LibNft | None = open_library()  # in-process, without a new nft process per load
        self._conntrack = shutil.which("conntrack")
        self._lock = asyncio.Lock()
        self._text: str | None = None  # the last loaded table, without carried affinity elements
        self._rules: list[ServiceRule] = []  # the rules in force, as rendered
        self._owners: dict[Listen, str] = {}  # listen address -> the key that has it
        self._refused: dict[Listen, str] = {}
        self._loads = 0
        self._unchanged = 0
        self._flushed = 0
        self._nft_rules = 0
        self._last_load: float | None = None
        self._checked = time.monotonic()  # when _vanished last looked
        self._last_error: str | None = None
        self._conntrack_warned = False

    @staticmethod
    def unavailable() -> str | None:
        """None when this data plane works here; else why not (``not running as root``, ``nft not
        found``, or what nft said when a check transaction of our rules failed)."""
        if os.geteuid() != 0:
            return "not running as root"
        binary = shutil.which("nft")
        if binary is None:
            return "nft not found (install nftables)"
        text = nft.render(f"gitship_probe_{os.getpid()}", _probe_rules())
        try:
            proc = subprocess.run([binary, "-c", "-f", "-"], input=text, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            return f"nft could not run: {e}"
        if proc.returncode != 0:
            return f"nft refuses gitship's rules: {_first_line(proc.stderr) or f'exit {proc.returncode}'}"
        return None

    async def apply(self, rules: Sequence[ServiceRule]) -> dict[Listen, str]:
        """Make the table hold exactly ``rules``; returns the listen addresses left out, with why."""
        rules = list(rules)
        nft.validate(rules)
        async with self._lock:
            owners, refused = nft.claim(rules, self._owners)
            for item in nft.host_ports(rules, owners):
                why = port_taken(*item)
                if why is not None:
                    refused[item] = why
                    del owners[item]
            wanted = nft.effective(rules, owners)
            if self._text is not None and wanted == self._rules and not await self._vanished():
                self._unchanged += 1  # the same rules: not even rendered again
            else:
                if self._text is not None and wanted == self._rules:
                    log.warning("nftables_table_vanished", table=self.table)
                    self._text = None  # someone deleted it (`nft flush ruleset`): load it again
                # rendering a large table takes a while (about 0.1 s for 1000 Services): off the loop
                text = await asyncio.to_thread(nft.render, self.table, wanted)
                if text == self._text:
                    self._unchanged += 1
                else:
                    await self._load(text, wanted)
            self._owners, self._refused = owners, refused
            return dict(refused)

    async def _command(self, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        """``nft ARGS`` (``-f -`` reads ``stdin``) through libnftables, else the `nft` binary."""
        if self._lib is None:
            return await _run([self._nft, *args], stdin)
        json = args[:1] == ["-j"]
        rest = args[1:] if json else args
        text = (stdin or "") if rest == ["-f", "-"] else " ".join(rest)
        return await self._lib.run(text, json)

    async def _vanished(self) -> bool:
        """Every RECHECK seconds: is our table gone from the kernel (``nft flush ruleset``, as
        Debian's nftables.service runs on a reload)? Between checks, assume it is there."""
        now = time.monotonic()
        if now - self._checked < RECHECK:
            return False
        self._checked = now
        try:
            code, out, _err = await self._command(["list", "tables", "ip"])
        except OSError:
            return False
        return code == 0 and f"table ip {self.table}" not in out.splitlines()

    async def _load(self, text: str, wanted: list[ServiceRule]) -> None:
        names = nft.affinity_sets(wanted)
        carried = await self._affinity_clients(set(names)) if names else {}
        full = await asyncio.to_thread(nft.render, self.table, wanted, carried) if carried else text
        code, _out, err = await self._command(["-f", "-"], full)
        if code != 0:
            self._last_error = _first_line(err) or f"nft exit {code}"
            log.error("nftables_load_failed", table=self.table, error=err.strip())
            raise NftError(f"nft could not load table {self.table}: {self._last_error}")
        old = self._rules
        self._text, self._rules = text, wanted
        self._loads += 1
        self._nft_rules = nft.count_rules(text)
        self._last_load = time.time()
        self._checked = time.monotonic()
        self._last_error = None
        log.debug("nftables_loaded", table=self.table, services=len(wanted), rules=self._nft_rules)
        if nft.udp_shape(old) != nft.udp_shape(wanted):
            await self._flush_udp(old, wanted)

    async def _affinity_clients(self, names: set[str]) -> dict[str, list[tuple[str, int]]]:
        """The clients (address, seconds left) in the table's affinity sets named ``names``."""
        try:
            code, out, _err = await self._command(["-j", "list", "table", "ip", self.table])
        except OSError:
            return {}
        if code != 0:  # no table yet
            return {}
        try:
            objects = json.loads(out).get("nftables", [])
        except ValueError:
            return {}
        carried: dict[str, list[tuple[str, int]]] = {}
        for obj in objects:
            s = obj.get("set") if isinstance(obj, dict) else None
            if not isinstance(s, dict) or s.get("name") not in names:
                continue
            for e in s.get("elem") or []:
                elem = e.get("elem") if isinstance(e, dict) else None
                if isinstance(elem, dict) and isinstance(elem.get("val"), str):
                    carried.setdefault(s["name"], []).append((elem["val"], int(elem.get("expires") or 0)))
        return carried

    async def _flush_udp(self, old: list[ServiceRule], new: list[ServiceRule]) -> None:
        """Delete the UDP conntrack entries the change made stale (best effort: a failure is logged)."""
        if self._conntrack is None:
            if not self._conntrack_warned:
                self._conntrack_warned = True
                log.warning("conntrack_missing", table=self.table, detail=CONNTRACK_MISSING)
            return
        try:
            code, out, err = await _run([self._conntrack, "-L", "-p", "udp"])
            if code != 0:
                log.warning("conntrack_list_failed", error=_first_line(err))
                return
            for f in nft.stale_udp(nft.parse_conntrack(out), old, new):
                argv = [self._conntrack, "-D", "-p", "udp"]
                if f.dst is not None:
                    argv += ["--orig-dst", f.dst]
                argv += ["--orig-port-dst", str(f.dport), "--reply-src", f.reply_src]
                argv += ["--reply-port-src", str(f.reply_sport)]
                _code, _out, err = await _run(argv)  # exit 1 when nothing matched any more
                m = _DELETED.search(err)
                self._flushed += int(m.group(1)) if m else 0
        except OSError as e:
            log.warning("conntrack_flush_failed", error=str(e))

    async def close(self) -> None:
        """A clean stop: delete the table (established connections keep their NAT and finish)."""
        async with self._lock:
            code, _out, err = await self._command(["delete", "table", "ip", self.table])
            if code != 0 and "No such file" not in err:
                log.warning("nftables_delete_failed", table=self.table, error=_first_line(err))
            self._text, self._rules, self._owners, self._refused = None, [], {}, {}

    def info(self) -> dict[str, Any]:
        """What ``gitship status`` shows of the data plane."""
        return {
            "dataPlane": "nftables",
            "table": self.table,
            "rules": len(self._rules),
            "endpoints": sum(len(r.backends) for r in self._rules),
            "nftRules": self._nft_rules,
            "masqueradeMark": f"{nft.MASQUERADE_MARK:#010x}",
            "engine": "libnftables" if self._lib is not None else "nft",
            "loads": self._loads,
            "unchanged": self._unchanged,
            "lastLoad": self._last_load,
            "lastError": self._last_error,
            "conntrack": "conntrack" if self._conntrack else CONNTRACK_MISSING,
            "conntrackFlushed": self._flushed,
            "refused": _refused_view(self._refused),
        }


def _refused_view(refused: Mapping[Listen, str]) -> dict[str, str]:
    return {f"{h}:{p}/{proto}": why for (h, p, proto), why in sorted(refused.items())}
