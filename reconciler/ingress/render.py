"""PURE: HAProxy's configuration for the Ingress routing table (reconciler/controllers/ingress.py Table).

One frontend holds the HTTP and HTTPS listeners; requests are tried against the routes in the table's
order (most specific host, longest path, Exact before Prefix), each host's routes closed by a fall to
the default backend, so a request goes where ``controllers.ingress.match`` says. TLS hosts pick their
certificate by SNI from a crt-list; plain HTTP to a TLS host is redirected with 308. ``X-Forwarded-For``,
``-Proto``, ``-Host`` and ``-Port`` are set; keep-alive, WebSocket upgrades and streamed responses pass
through (HAProxy's HTTP mode, ``timeout tunnel``). A reload keeps idle client connections until their
next response (``idle-close-on-response``), and failed connects are retried on another server.

Everything here is text from plain data: the engine (reconciler/ingress/engine.py) writes the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.controllers.ingress import Route, Table

NOT_FOUND = "be_default_404"


@dataclass(frozen=True)
class Listen:
    """Where the engine listens and keeps its files."""

    http: tuple[str, int] | None  # (address, port); None: not bound
    https: tuple[str, int] | None
    admin_socket: str
    crt_list: str
    cert_dir: str


@dataclass(frozen=True)
class Rendered:
    config: str
    crt_list: str
    certs: dict[str, str]  # file name (in Listen.cert_dir) -> PEM (certificate and key)
    slots: Slots  # the servers by slot (assign_slots)
    structure: str  # the configuration without the servers' addresses: equal -> the runtime API will do


def backend_id(name: str) -> str:
    """A HAProxy backend name for ``ns/svc:port`` (letters, digits, ``-_.:``)."""
    return "be_" + re.sub(r"[^A-Za-z0-9_.:-]", "_", name.replace("/", "__"))


def _q(value: str) -> str:
    """A quoted argument (hosts and paths passed validation: no quotes or spaces, but be safe)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def host_acl(host: str) -> str:
    if host.startswith("*."):
        # single quotes: HAProxy expands no ``$`` and no backslash there
        return "{ var(txn.host) -m reg '^[^.]+" + re.escape(host[1:].lower()) + "$' }"
    return "{ var(txn.host) -m str " + _q(host.lower()) + " }"


def path_conditions(r: Route) -> list[str]:
    """Alternatives (ORed) of the path part; [""] when every path matches."""
    if r.path_type == "Exact":
        return ["{ path -m str " + _q(r.path) + " }"]
    prefix = r.path.rstrip("/")
    if not prefix:
        return [""]
    return ["{ path -m str " + _q(prefix) + " }", "{ path -m beg " + _q(prefix + "/") + " }"]


def _condition(host_part: str, paths: list[str]) -> str:
    alts = [" ".join(p for p in (host_part, path) if p) for path in paths]
    return " || ".join(a for a in alts if a)


def _routing(table: Table, default: str) -> list[str]:
    lines: list[str] = []
    hosts = list(dict.fromkeys(r.host for r in table.routes))
    for host in hosts:
        hacl = host_acl(host) if host else ""
        for r in (x for x in table.routes if x.host == host):
            be = backend_id(r.backend) if r.backend else NOT_FOUND
            cond = _condition(hacl, path_conditions(r))
            lines.append(f"    use_backend {be}" + (f" if {cond}" if cond else ""))
        if hacl:  # a host that matched but no path of it: the default backend, not a less specific host
            lines.append(f"    use_backend {default} if {hacl}")
    return lines


def _frontend(table: Table, listen: Listen) -> list[str]:
    out = ["frontend ingress"]
    if listen.http:
        out.append(f"    bind {listen.http[0]}:{listen.http[1]}")
    if listen.https and table.certs:
        out.append(f"    bind {listen.https[0]}:{listen.https[1]} ssl crt-list {listen.crt_list} alpn h2,http/1.1")
    out += [
        "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    http-request set-header X-Forwarded-Port %[dst_port]",
    ]
    if listen.https and table.certs:
        for host in table.redirect_hosts:
            out.append(f"    http-request redirect scheme https code 308 if !{{ ssl_fc }} {host_acl(host)}")
    default = backend_id(table.default_backend) if table.default_backend else NOT_FOUND
    out += _routing(table, default)
    out.append(f"    default_backend {default}")
    return out


GLOBAL = """global
    master-worker
    stats socket {sock} mode 600 level admin expose-fd listeners
    hard-stop-after 60s
    tune.ssl.default-dh-param 2048
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout tunnel 1h
    timeout client-fin 5s
    option idle-close-on-response
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
"""


def render(table: Table, listen: Listen, slots: Slots | None = None) -> Rendered:
    """The whole configuration, the crt-list and the certificate files for ``table``; servers in the
    slots ``assign_slots(slots, table)`` gives (the last ones, so a server keeps its slot)."""
    lines = [GLOBAL.format(sock=listen.admin_socket).rstrip("\n"), ""]
    lines += _frontend(table, listen)
    lines.append("")
    slots = assign_slots(slots or {}, table)
    for be in table.backends:
        lines.append(f"backend {backend_id(be.name)}")
        lines.append("    balance roundrobin")
        for i, server in enumerate(slots[be.name], 1):
            lines.append(server_line(i, server))
        lines.append("")
    lines += [
        f"backend {NOT_FOUND}",
        '    http-request return status 404 content-type text/plain string "404 page not found\\n"',
        "",
    ]
    certs: dict[str, str] = {}
    crt_lines: list[str] = []
    for i, cert in enumerate(table.certs):
        fname = f"cert-{i}.pem"
        certs[fname] = cert.pem
        crt_lines.append(f"{listen.cert_dir}/{fname} " + " ".join(h.lower() for h in cert.hosts))
    config = "\n".join(lines)
    structure = _SERVER_LINE.sub(r"\1", config)
    return Rendered(config, "\n".join(crt_lines) + ("\n" if crt_lines else ""), certs, slots, structure)


# -- server slots: endpoint changes through HAProxy's runtime API, without a reload ---------------

Server = tuple[str, int] | None  # None: an empty slot (in maintenance)
Slots = dict[str, list[Server]]  # backend name -> its servers by slot
MIN_SLOTS = 4
_SERVER_LINE = re.compile(r"^(    server s\d+) .*$", re.M)


def slot_count(n: int) -> int:
    """Slots for ``n`` servers: at least MIN_SLOTS, doubling, so scaling within them needs no reload."""
    k = MIN_SLOTS
    while k < n:
        k *= 2
    return k


def assign_slots(previous: Slots, table: Table) -> Slots:
    """Each backend's servers in slots: a server keeps the slot it had, new ones take free slots; the
    slot count grows (doubling) only when they do not fit, which changes the configuration's shape."""
    out: Slots = {}
    for be in table.backends:
        old = previous.get(be.name) or []
        want = set(be.servers)
        size = len(old) if old and len(want) <= len(old) else slot_count(len(want))
        kept: list[Server] = [s if s in want else None for s in old[:size]]
        kept += [None] * (size - len(kept))
        free = (i for i, s in enumerate(kept) if s is None)
        for server in sorted(want - set(kept)):
            kept[next(free)] = server
        out[be.name] = kept
    return out


def server_line(i: int, server: Server) -> str:
    if server is None:
        return f"    server s{i} 127.0.0.1:1 disabled"
    ip, port = server
    return f"    server s{i} {f'[{ip}]' if ':' in ip else ip}:{port}"


def slot_commands(old: Slots, new: Slots) -> list[str] | None:
    """The runtime API commands that turn the servers of ``old`` into ``new`` (same backends and slot
    counts: None otherwise, then a reload is needed). An emptied slot goes to maintenance (requests
    in flight finish), a filled one gets its address, then leaves maintenance."""
    if old.keys() != new.keys() or any(len(old[b]) != len(new[b]) for b in new):
        return None
    cmds: list[str] = []
    for b in sorted(new):
        for i, (was, now) in enumerate(zip(old[b], new[b], strict=True), 1):
            if was == now:
                continue
            name = f"{backend_id(b)}/s{i}"
            if now is None:
                cmds.append(f"set server {name} state maint")
            else:
                cmds.append(f"set server {name} addr {now[0]} port {now[1]}")
                cmds.append(f"set server {name} state ready")
    return cmds
