"""The built-in ingress controller's decisions: which Ingresses it serves, their routing table, TLS.

Pure. The engine (reconciler/ingress/render.py renders, reconciler/ingress/engine.py runs HAProxy) gets a
``Table`` built here from the live Ingresses, IngressClasses, Services, Endpoints and Secrets:

- **class**: an Ingress is gitship's when its ``spec.ingressClassName`` (or the older annotation
  ``kubernetes.io/ingress.class``) names an IngressClass whose ``spec.controller`` is
  ``gitship.io/ingress``; one without a class takes the default class (annotation
  ``ingressclass.kubernetes.io/is-default-class: "true"``; the newest when several are marked).
  gitship ships the IngressClass ``gitship``, marked default, as k3s ships Traefik's.
- **hosts**: exact (``foo.example.com``) or a ``*.`` wildcard matching exactly one label
  (``*.example.com`` matches ``a.example.com``, not ``example.com`` nor ``a.b.example.com``); a rule
  without a host matches every host. A request goes to the most specific host that matches (exact,
  then wildcard, then any host), as ingress-nginx picks its server block; then to its path.
- **paths**: ``Exact`` matches the path alone; ``Prefix`` matches element-wise on ``/``
  (``/foo`` matches ``/foo``, ``/foo/``, ``/foo/bar``, not ``/foobar``; a trailing ``/`` of the
  prefix is ignored); ``ImplementationSpecific`` is a ``Prefix`` here. The longest path wins; at
  equal length Exact before Prefix (Kubernetes docs, Ingress, "Examples").
- **no match**: the oldest gitship Ingress's ``defaultBackend``, else 404.
- **backends**: a Service port by number or name; its servers are the ready addresses of the
  Service's Endpoints for that port (pod IP : targetPort), so a pod leaves before its SIGTERM.
- **TLS**: each ``spec.tls`` entry's hosts (default: the rules' hosts) are served with the
  ``kubernetes.io/tls`` Secret it names, from the Ingress's namespace, chosen by SNI. Plain HTTP to a
  TLS host is redirected to HTTPS (308) unless the annotation ``gitship.io/ssl-redirect`` or
  ingress-nginx's ``nginx.ingress.kubernetes.io/ssl-redirect`` is ``"false"`` (ingress-nginx's default).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from ..types import NsName, Obj
from .podutil import Event, to_rfc3339

CONTROLLER = "gitship.io/ingress"
BUILTIN_CLASS = "gitship"
ICLASS = "IngressClass"
ANN_DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
ANN_LEGACY_CLASS = "kubernetes.io/ingress.class"
ANN_SSL_REDIRECT = "gitship.io/ssl-redirect"
ANN_NGINX_SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
TLS_SECRET_TYPE = "kubernetes.io/tls"
DEFAULT_BACKEND = "<default>"  # kubectl's word for an Ingress without rules


@dataclass(frozen=True)
class Backend:
    """One Service port as the engine sees it: a stable name and its ready servers."""

    name: str  # "<namespace>/<service>:<port name or number>"
    servers: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Route:
    """One path of one rule, in the order the engine tries them."""

    host: str  # "" (any host), "foo.example.com" or "*.example.com"
    path: str  # "/" for a rule path without one
    path_type: str  # "Exact" or "Prefix" (ImplementationSpecific is served as Prefix)
    backend: str  # a Backend's name
    ingress: NsName


@dataclass(frozen=True)
class Cert:
    """A TLS certificate from a Secret, for the hosts that name it (SNI)."""

    name: str  # "<namespace>/<secret>"
    hosts: tuple[str, ...]
    pem: str  # tls.crt then tls.key, as HAProxy reads a crt file


@dataclass(frozen=True)
class Table:
    routes: tuple[Route, ...] = ()
    backends: tuple[Backend, ...] = ()
    default_backend: str | None = None
    certs: tuple[Cert, ...] = ()
    redirect_hosts: tuple[str, ...] = ()  # hosts whose plain HTTP is redirected to HTTPS
    ingresses: tuple[NsName, ...] = ()  # the Ingresses served
    problems: tuple[tuple[NsName, str, str], ...] = field(default=(), compare=False)  # (ingress, reason, message)

    @property
    def empty(self) -> bool:
        return not self.ingresses


# -- classes ----------------------------------------------------------------------------------


def builtin_class(uid: str, now: float) -> Obj:
    """The IngressClass ``gitship`` gitship ships: its own controller, the default class."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": ICLASS,
        "metadata": {
            "name": BUILTIN_CLASS,
            "uid": uid,
            "creationTimestamp": to_rfc3339(now),
            "labels": {},
            "annotations": {ANN_DEFAULT_CLASS: "true"},
        },
        "spec": {"controller": CONTROLLER},
    }


def default_class(classes: list[Obj]) -> str | None:
    """The default IngressClass's name: the newest marked one (admission's rule for several)."""
    marked = [c for c in classes if ((c["metadata"].get("annotations") or {}).get(ANN_DEFAULT_CLASS)) == "true"]
    if not marked:
        return None
    marked.sort(key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))
    return str(marked[-1]["metadata"]["name"])


def class_of(ing: Obj, classes: list[Obj]) -> str | None:
    """The IngressClass an Ingress belongs to (None: none, and no default)."""
    name = (ing.get("spec") or {}).get("ingressClassName")
    if name:
        return str(name)
    legacy = (ing["metadata"].get("annotations") or {}).get(ANN_LEGACY_CLASS)
    if legacy:
        return str(legacy)
    return default_class(classes)


def ours(ing: Obj, classes: list[Obj]) -> bool:
    """Whether gitship's controller serves this Ingress."""
    name = class_of(ing, classes)
    for c in classes:
        if c["metadata"]["name"] == name:
            return bool((c.get("spec") or {}).get("controller") == CONTROLLER)
    return False


# -- matching (what the rendered configuration does; the unit tests hold both to it) -----------


def host_matches(rule_host: str, host: str) -> bool:
    host = host.lower()
    if not rule_host:
        return True
    if rule_host.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == rule_host[2:].lower()
    return host == rule_host.lower()


def path_matches(path_type: str, rule_path: str, path: str) -> bool:
    """Kubernetes' path matching: Exact is equality; Prefix compares path elements split by ``/``."""
    if path_type == "Exact":
        return path == rule_path
    prefix = [e for e in rule_path.split("/") if e]
    elems = [e for e in path.split("/") if e]
    return elems[: len(prefix)] == prefix


def host_rank(host: str) -> int:
    """0: an exact host, 1: a wildcard, 2: any host (the order hosts are tried in)."""
    return 2 if not host else 1 if host.startswith("*.") else 0


def route_order(r: Route) -> tuple[int, int, int, int, str]:
    """Most specific host first; then the longest path, Exact before Prefix at equal length."""
    plen = len(r.path.rstrip("/")) if r.path_type == "Prefix" else len(r.path)
    return (host_rank(r.host), -len(r.host), -plen, 0 if r.path_type == "Exact" else 1, r.host + r.path)


def match(table: Table, host: str, path: str) -> str | None:
    """The backend a request for ``host`` and ``path`` goes to (None: 404). The most specific matching
    host decides; a host that matches with no path falls to the default backend."""
    hosts = sorted({r.host for r in table.routes if host_matches(r.host, host)}, key=lambda h: (host_rank(h), -len(h)))
    if hosts:
        for r in table.routes:
            if r.host == hosts[0] and path_matches(r.path_type, r.path, path):
                return r.backend
    return table.default_backend


# -- the table --------------------------------------------------------------------------------


def _backend_name(ns: str, svc: Obj) -> str:
    port = svc.get("port") or {}
    return f"{ns}/{svc.get('name')}:{port.get('name') or port.get('number')}"


def resolve_backend(
    ns: str, backend: Obj, services: dict[NsName, Obj], endpoints: dict[NsName, Obj]
) -> tuple[Backend | None, str | None]:
    """A backend's servers: the Service port it names (by number or name), then the ready addresses of
    the Endpoints' subsets with that port (by the Service port's name). (None, why) when it has none."""
    svc_ref = backend.get("service")
    if not isinstance(svc_ref, dict):
        return None, "resource backends are not supported"
    name = str(svc_ref.get("name"))
    svc = services.get((ns, name))
    if svc is None:
        return Backend(_backend_name(ns, svc_ref), ()), f'service "{ns}/{name}" not found'
    want = svc_ref.get("port") or {}
    port = next(
        (
            p
            for p in (svc.get("spec") or {}).get("ports") or []
            if (want.get("number") is not None and p.get("port") == want.get("number"))
            or (want.get("name") is not None and p.get("name") == want.get("name"))
        ),
        None,
    )
    bname = _backend_name(ns, svc_ref)
    if port is None:
        return Backend(bname, ()), f'service "{ns}/{name}" does not have port {want.get("name") or want.get("number")}'
    servers: list[tuple[str, int]] = []
    ep = endpoints.get((ns, name)) or {}
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or []
        target = next(
            (p.get("port") for p in ports if len(ports) == 1 or p.get("name", "") == port.get("name", "")), None
        )
        if target is None:
            continue
        for addr in subset.get("addresses") or []:
            servers.append((str(addr["ip"]), int(target)))
    return Backend(bname, tuple(sorted(set(servers)))), None


def _secret_pem(secret: Obj | None) -> str | None:
    if secret is None:
        return None
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(data.get("tls.crt") or "").decode()
        key = base64.b64decode(data.get("tls.key") or "").decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if "BEGIN CERTIFICATE" not in crt or "PRIVATE KEY" not in key:
        return None
    return crt.rstrip("\n") + "\n" + key.rstrip("\n") + "\n"


def _ssl_redirect(ing: Obj) -> bool:
    ann = ing["metadata"].get("annotations") or {}
    value = ann.get(ANN_SSL_REDIRECT, ann.get(ANN_NGINX_SSL_REDIRECT, "true"))
    return str(value).lower() != "false"


class _Builder:
    def __init__(self, services: dict[NsName, Obj], endpoints: dict[NsName, Obj], secrets: dict[NsName, Obj]):
        self.services, self.endpoints, self.secrets = services, endpoints, secrets
        self.backends: dict[str, Backend] = {}
        self.routes: dict[tuple[str, str, str], Route] = {}
        self.certs: dict[str, Cert] = {}
        self.redirect: set[str] = set()
        self.problems: list[tuple[NsName, str, str]] = []
        self.default: str | None = None

    def backend(self, key: NsName, b: Obj) -> str | None:
        be, why = resolve_backend(key[0], b, self.services, self.endpoints)
        if why:
            self.problems.append((key, "BackendNotFound", why))
        if be is None:
            return None
        self.backends[be.name] = be
        return be.name

    def ingress(self, ing: Obj) -> None:
        meta, spec = ing["metadata"], ing.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        if spec.get("defaultBackend") and self.default is None:
            self.default = self.backend(key, spec["defaultBackend"])
        hosts: list[str] = []
        for rule in spec.get("rules") or []:
            host = str(rule.get("host") or "")
            hosts.append(host)
            for p in (rule.get("http") or {}).get("paths") or []:
                name = self.backend(key, p.get("backend") or {})
                ptype = "Exact" if p.get("pathType") == "Exact" else "Prefix"
                r = Route(host, str(p.get("path") or "/"), ptype, name or "", key)
                self.routes.setdefault((r.host, r.path, r.path_type), r)  # the oldest Ingress keeps a path
        for entry in spec.get("tls") or []:
            self.tls(key, entry, [h for h in hosts if h], _ssl_redirect(ing))

    def tls(self, key: NsName, entry: Obj, rule_hosts: list[str], redirect: bool) -> None:
        tls_hosts = [str(h) for h in entry.get("hosts") or rule_hosts]
        secret_name = entry.get("secretName")
        if not secret_name:
            return  # ingress-nginx serves such hosts with its default certificate; gitship has none
        sname = f"{key[0]}/{secret_name}"
        secret = self.secrets.get((key[0], str(secret_name)))
        pem = _secret_pem(secret)
        if pem is None:
            why = f'secret "{sname}" not found' if secret is None else f'secret "{sname}" is no valid kubernetes.io/tls'
            self.problems.append((key, "TLSSecretNotFound", why))
            return
        old = self.certs.get(sname)
        merged = tuple(dict.fromkeys((*(old.hosts if old else ()), *tls_hosts)))
        self.certs[sname] = Cert(sname, merged, pem)
        if redirect:
            self.redirect.update(tls_hosts)


def build_table(
    ingresses: list[Obj], classes: list[Obj], services: list[Obj], endpoints: list[Obj], secrets: list[Obj]
) -> Table:
    """The routing table of every Ingress gitship serves (oldest first: it keeps a contested path)."""
    mine = sorted(
        (i for i in ingresses if ours(i, classes) and not i["metadata"].get("deletionTimestamp")),
        key=lambda i: (i["metadata"].get("creationTimestamp") or "", i["metadata"]["namespace"], i["metadata"]["name"]),
    )

    def by_name(objs: list[Obj]) -> dict[NsName, Obj]:
        return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    b = _Builder(by_name(services), by_name(endpoints), by_name(secrets))
    for ing in mine:
        b.ingress(ing)
    return Table(
        routes=tuple(sorted(b.routes.values(), key=route_order)),
        backends=tuple(sorted(b.backends.values(), key=lambda x: x.name)),
        default_backend=b.default,
        certs=tuple(sorted(b.certs.values(), key=lambda c: c.name)),
        redirect_hosts=tuple(sorted(b.redirect)),
        ingresses=tuple((i["metadata"]["namespace"], i["metadata"]["name"]) for i in mine),
        problems=tuple(b.problems),
    )


# -- status and events ------------------------------------------------------------------------


def ingress_status(ip: str | None) -> Obj:
    """``status.loadBalancer`` as the controller writes it: the node's address (empty without one)."""
    return {"loadBalancer": {"ingress": [{"ip": ip}]} if ip else {}}


def sync_event(ing: Obj) -> Event:
    """ingress-nginx's event when it takes an Ingress (created or changed) into its configuration."""
    meta = ing["metadata"]
    return Event("Normal", "Sync", "Scheduled for sync", "Ingress", meta["namespace"], meta["name"])


def problem_event(key: NsName, reason: str, message: str) -> Event:
    return Event("Warning", reason, message, "Ingress", key[0], key[1])


def backend_text(backend: Any) -> str:
    """A backend as kubectl's describe prints it: ``svc:port`` (``svc:name``)."""
    if not isinstance(backend, dict):
        return ""
    svc = backend.get("service")
    if isinstance(svc, dict):
        port = svc.get("port") or {}
        return f"{svc.get('name')}:{port.get('number') or port.get('name')}"
    res = backend.get("resource") or {}
    return f"APIGroup: {res.get('apiGroup')}, Kind: {res.get('kind')}, Name: {res.get('name')}"
