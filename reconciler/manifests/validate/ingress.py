"""Ingresses and IngressClasses (networking.k8s.io/v1).

Kubernetes' rules, from kubernetes/kubernetes pkg/apis/networking/validation/validation.go
(``ValidateIngressSpec``, ``validateIngressRules``, ``validateHTTPIngressPath``,
``validateIngressBackend``, ``validateIngressTLS``, ``ValidateIngressClass``):

- an Ingress names a ``defaultBackend`` or at least one rule;
- a rule's ``host`` is a DNS-1123 subdomain, a ``*.`` wildcard only as its whole first label, never
  an IP address; an ``http`` rule lists at least one path;
- a path's ``pathType`` is required (Exact, Prefix or ImplementationSpecific); an Exact or Prefix
  path is absolute and holds no ``//``, ``/./``, ``/../``, ``%2f`` and does not end in ``/..`` or ``/.``;
- a backend is a Service (a DNS-1035 ``name`` and a port by ``number`` 1-65535 or IANA ``name``:
  exactly one) or a ``resource``, not both;
- a TLS entry's hosts are (wildcard) subdomains, its ``secretName`` a subdomain;
- an IngressClass names its ``spec.controller``, a domain-prefixed path of at most 250 characters.

No field is defaulted (v1 has no default pathType). Pure.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from reconciler.manifests.validate.common import Ctx, is_dict, is_int, is_list, supported, type_name
from reconciler.manifests.validate.names import dns1035_label_error, dns1123_subdomain_error, iana_svc_name_error
from reconciler.types import Obj

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
_BAD_PARTS = ("//", "/./", "/../", "%2f", "%2F")
_BAD_ENDS = ("/..", "/.")
_CONTROLLER = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[^\s]+")
MAX_CONTROLLER = 250


def host_error(host: str) -> str | None:
    """Why ``host`` is no valid rule or TLS host (None: valid): a DNS-1123 subdomain, or ``*.``
    followed by one (validation.go: IsWildcardDNS1123Subdomain); an IP address is refused."""
    try:
        ipaddress.ip_address(host)
        return f"Invalid value: {host!r}: must be a DNS name, not an IP address"
    except ValueError:
        pass
    rest = host[2:] if host.startswith("*.") else host
    if "*" in rest:
        return f"Invalid value: {host!r}: a wildcard DNS-1123 subdomain must start with '*.'"
    err = dns1123_subdomain_error(rest)
    return f"Invalid value: {host!r}: {err}" if err else None


def validate_ingress(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", "Required value" if spec is None else f"must be an object, not {type_name(spec)}")
        return
    rules = spec.get("rules")
    if spec.get("defaultBackend") is None and not rules:
        ctx.err("spec", "Invalid value: either `defaultBackend` or `rules` must be specified")
    if spec.get("defaultBackend") is not None:
        _backend(ctx, spec["defaultBackend"], "spec.defaultBackend")
    name = spec.get("ingressClassName")
    if name is not None:
        if not isinstance(name, str) or (err := dns1123_subdomain_error(name)):
            why = err if isinstance(name, str) else "must be a string"
            ctx.err("spec.ingressClassName", f"Invalid value: {name!r}: {why}")
    if rules is not None:
        if not is_list(rules):
            ctx.err("spec.rules", f"must be a list, not {type_name(rules)}")
        else:
            for i, rule in enumerate(rules):
                _rule(ctx, rule, f"spec.rules[{i}]")
    _tls(ctx, spec.get("tls"))


def _rule(ctx: Ctx, rule: Any, path: str) -> None:
    if not is_dict(rule):
        ctx.err(path, f"must be an object, not {type_name(rule)}")
        return
    host = rule.get("host")
    if host is not None and host != "":
        if not isinstance(host, str):
            ctx.err(f"{path}.host", f"must be a string, not {type_name(host)}")
        elif err := host_error(host):
            ctx.err(f"{path}.host", err)
    http = rule.get("http")
    if http is None:
        return
    if not is_dict(http):
        ctx.err(f"{path}.http", f"must be an object, not {type_name(http)}")
        return
    paths = http.get("paths")
    if not is_list(paths) or not paths:
        ctx.err(f"{path}.http.paths", "Required value")
        return
    for j, p in enumerate(paths):
        _path(ctx, p, f"{path}.http.paths[{j}]")


def _path(ctx: Ctx, p: Any, path: str) -> None:
    if not is_dict(p):
        ctx.err(path, f"must be an object, not {type_name(p)}")
        return
    ptype = p.get("pathType")
    value = p.get("path")
    if ptype is None:
        ctx.err(f"{path}.pathType", "Required value: pathType must be specified")
    elif ptype not in PATH_TYPES:
        ctx.err(f"{path}.pathType", supported(ptype, PATH_TYPES))
    if value is not None and not isinstance(value, str):
        ctx.err(f"{path}.path", f"must be a string, not {type_name(value)}")
        value = None
    if ptype in ("Exact", "Prefix"):
        if not value or not value.startswith("/"):
            ctx.err(f"{path}.path", f"Invalid value: {value or ''!r}: must be an absolute path")
        else:
            for bad in _BAD_PARTS:
                if bad in value:
                    ctx.err(f"{path}.path", f"Invalid value: {value!r}: must not contain '{bad}'")
            for bad in _BAD_ENDS:
                if value.endswith(bad):
                    ctx.err(f"{path}.path", f"Invalid value: {value!r}: cannot end with '{bad}'")
    elif value and not value.startswith("/"):
        ctx.err(f"{path}.path", f"Invalid value: {value!r}: must be an absolute path")
    if "backend" not in p:
        ctx.err(f"{path}.backend", "Required value")
    else:
        _backend(ctx, p["backend"], f"{path}.backend")


def _backend(ctx: Ctx, backend: Any, path: str) -> None:
    if not is_dict(backend):
        ctx.err(path, f"must be an object, not {type_name(backend)}")
        return
    svc, res = backend.get("service"), backend.get("resource")
    if svc is not None and res is not None:
        ctx.err(path, "Invalid value: cannot set both resource and service backends")
        return
    if svc is None and res is None:
        ctx.err(path, "Invalid value: resource or service backend is required")
        return
    if res is not None:
        if not is_dict(res) or not res.get("kind") or not res.get("name"):
            ctx.err(f"{path}.resource", "Required value: kind and name are required")
        return
    if not is_dict(svc):
        ctx.err(f"{path}.service", f"must be an object, not {type_name(svc)}")
        return
    name = svc.get("name")
    if not isinstance(name, str) or not name:
        ctx.err(f"{path}.service.name", "Required value")
    elif err := dns1035_label_error(name):
        ctx.err(f"{path}.service.name", f"Invalid value: {name!r}: {err}")
    _port(ctx, svc.get("port"), f"{path}.service.port")


def _port(ctx: Ctx, port: Any, path: str) -> None:
    if not is_dict(port):
        ctx.err(path, "Required value" if port is None else f"must be an object, not {type_name(port)}")
        return
    number, name = port.get("number"), port.get("name")
    if number is not None and name is not None:
        ctx.err(path, "Invalid value: cannot set both port name & port number")
    elif number is None and name is None:
        ctx.err(path, "Invalid value: port name or number is required")
    elif number is not None:
        if not is_int(number) or not 1 <= number <= 65535:
            ctx.err(f"{path}.number", f"Invalid value: {number!r}: must be between 1 and 65535, inclusive")
    elif not isinstance(name, str) or (err := iana_svc_name_error(name)):
        msg = err if isinstance(name, str) else "must be a string"
        ctx.err(f"{path}.name", f"Invalid value: {name!r}: {msg}")


def _tls(ctx: Ctx, tls: Any) -> None:
    if tls is None:
        return
    if not is_list(tls):
        ctx.err("spec.tls", f"must be a list, not {type_name(tls)}")
        return
    for i, entry in enumerate(tls):
        path = f"spec.tls[{i}]"
        if not is_dict(entry):
            ctx.err(path, f"must be an object, not {type_name(entry)}")
            continue
        hosts = entry.get("hosts") or []
        if not is_list(hosts):
            ctx.err(f"{path}.hosts", f"must be a list, not {type_name(hosts)}")
            hosts = []
        for j, host in enumerate(hosts):
            why = host_error(host) if isinstance(host, str) else "must be a string"
            if why:
                ctx.err(f"{path}.hosts[{j}]", why)
        secret = entry.get("secretName")
        if secret is not None:
            why = dns1123_subdomain_error(secret) if isinstance(secret, str) else "must be a string"
            if why:
                ctx.err(f"{path}.secretName", f"Invalid value: {secret!r}: {why}")


def validate_ingressclass(ctx: Ctx, obj: Obj) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        ctx.err("spec", "Required value" if spec is None else f"must be an object, not {type_name(spec)}")
        return
    controller = spec.get("controller")
    if not isinstance(controller, str) or not controller:
        ctx.err("spec.controller", "Required value")
    elif len(controller) > MAX_CONTROLLER:
        ctx.err("spec.controller", f"Too long: may not be longer than {MAX_CONTROLLER}")
    elif not _CONTROLLER.fullmatch(controller):
        why = "must be a domain-prefixed path (such as acme.io/foo)"
        ctx.err("spec.controller", f"Invalid value: {controller!r}: {why}")
    params = spec.get("parameters")
    if params is not None and (not is_dict(params) or not params.get("kind") or not params.get("name")):
        ctx.err("spec.parameters", "Required value: kind and name are required")
