"""kubectl's `get` columns and describe page of Ingresses and IngressClasses
(kubernetes/kubernetes pkg/printers/internalversion/printers.go printIngress, printIngressClass;
staging/src/k8s.io/kubectl/pkg/describe IngressDescriber). Pure, beside printers.py, which adds
these tables to its own (rows take the AGE text, as printers_kinds.py's do); cli/get.py adds the
Rules table, which needs the Services and Endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .controllers.ingress import DEFAULT_BACKEND, backend_text, resolve_backend
from .printers_kinds import KindColumns
from .types import NsName, Obj


def _hosts(o: Obj) -> str:
    """printers.go formatHosts: the rules' hosts, three at most, ``*`` for none."""
    hosts = [str(r.get("host")) for r in (o.get("spec") or {}).get("rules") or [] if r.get("host")]
    if not hosts:
        return "*"
    text = ",".join(hosts[:3])
    return text + (f" + {len(hosts) - 3} more..." if len(hosts) > 3 else "")


def address(o: Obj) -> str:
    ing = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(str(i.get("ip") or i.get("hostname") or "") for i in ing)


def _ports(o: Obj) -> str:
    return "80, 443" if (o.get("spec") or {}).get("tls") else "80"


def _ing_row(o: Obj, age: str) -> list[Any]:
    cls = (o.get("spec") or {}).get("ingressClassName") or "<none>"
    return [o["metadata"]["name"], cls, _hosts(o), address(o), _ports(o), age]


def _iclass_row(o: Obj, age: str) -> list[Any]:
    spec = o.get("spec") or {}
    p = spec.get("parameters")
    params = f"{p.get('apiGroup') or ''}/{p.get('kind')}/{p.get('name')}".lstrip("/") if p else "<none>"
    return [o["metadata"]["name"], spec.get("controller", ""), params, age]


def _no_wide(o: Obj) -> list[Any]:
    return []


INGRESS_COLUMNS: dict[str, KindColumns] = {
    "Ingress": KindColumns(["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], _ing_row, [], _no_wide),
    "IngressClass": KindColumns(["NAME", "CONTROLLER", "PARAMETERS", "AGE"], _iclass_row, [], _no_wide),
}


def _describe_ingress(o: Obj) -> list[str]:
    spec = o.get("spec") or {}
    lines = [
        f"Address:        {address(o)}",
        f"Ingress Class:  {spec.get('ingressClassName') or '<none>'}",
        f"Default backend:  {backend_text(spec.get('defaultBackend')) or DEFAULT_BACKEND}",
    ]
    tls = spec.get("tls") or []
    if tls:
        lines.append("TLS:")
        for t in tls:
            lines.append(f"  {t.get('secretName') or ''} terminates {','.join(t.get('hosts') or [])}")
    return lines


def _describe_iclass(o: Obj) -> list[str]:
    spec = o.get("spec") or {}
    lines = [f"Controller:     {spec.get('controller', '')}"]
    p = spec.get("parameters")
    if p:
        lines += ["Parameters:", f"  APIGroup:  {p.get('apiGroup', '')}", f"  Kind:      {p.get('kind')}"]
        lines.append(f"  Name:      {p.get('name')}")
    return lines


INGRESS_DESCRIBE: dict[str, Callable[[Obj], list[str]]] = {
    "Ingress": _describe_ingress,
    "IngressClass": _describe_iclass,
}


def _backend_with_endpoints(ns: str, backend: Obj, services: dict[NsName, Obj], endpoints: dict[NsName, Obj]) -> str:
    """``svc:port (ip:port,ip:port)`` as kubectl's backendStringer, with an error for a missing Service."""
    text = backend_text(backend)
    be, why = resolve_backend(ns, backend, services, endpoints)
    if why:
        return f"{text} (<error: {why}>)"
    servers = ",".join(f"{ip}:{port}" for ip, port in (be.servers if be else ()))
    return f"{text} ({servers or '<none>'})"


def ingress_rules(o: Obj, services: list[Obj], endpoints: list[Obj]) -> str:
    """describe's Rules table: Host, Path, Backends (each with its endpoints)."""
    ns = o["metadata"]["namespace"]
    svcs = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints}
    rows: list[list[str]] = []
    spec = o.get("spec") or {}
    for rule in spec.get("rules") or []:
        rows.append([str(rule.get("host") or "*"), "", ""])
        for p in (rule.get("http") or {}).get("paths") or []:
            rows.append(["", str(p.get("path") or ""), _backend_with_endpoints(ns, p.get("backend") or {}, svcs, eps)])
    if not rows and spec.get("defaultBackend"):
        rows.append(["*", "*", _backend_with_endpoints(ns, spec["defaultBackend"], svcs, eps)])
    widths = [max(len(r[i]) for r in [["Host", "Path", "Backends"], *rows]) for i in range(3)]
    out = [""]
    for r in [["Host", "Path", "Backends"], ["----", "----", "--------"], *rows]:
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)
