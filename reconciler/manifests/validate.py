"""Kubernetes defaulting and validation of one object dict.

Where it sits: a pure module called by ``load.py`` for every document after the
kind/apiVersion check. It applies the API server's defaults (spec sections 1.1,
5.1-5.2, 7.4) and the validation rules of section 8, 3.4 and 4, and reports
problems as ``ManifestError`` with Kubernetes field paths
(``spec.template.spec.containers[0].image``) and Kubernetes-style messages.
Lines are left 0; ``load.py`` finds them from the YAML node tree only when
there is an error, so the happy path stays cheap.

``default_and_validate`` returns a new dict; ``default_and_validate_in_place``
(used by ``load.py`` on dicts it just parsed) skips the copy.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, TypeGuard

from reconciler import selectors
from reconciler.errors import ManifestError

# --------------------------------------------------------------------------- name formats

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?\Z")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?\Z")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+\Z")
_HAS_LETTER = re.compile(r"[a-z]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
_PERCENT = re.compile(r"[0-9]+%\Z")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
    "'-', and must start and end with an alphanumeric character (e.g. 'my-name', or "
    "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
    "with an alphabetic character, and end with an alphanumeric character (e.g. "
    "'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_ENV_VAR_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit"
)


def dns1123_label_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1123 label (<= 63), else None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1123_LABEL.match(value) else _DNS1123_LABEL_MSG


def dns1123_subdomain_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1123 subdomain (<= 253), else None."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    return None if selectors.is_dns1123_subdomain(value) else _DNS1123_SUBDOMAIN_MSG


def dns1035_label_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not a DNS-1035 label (Service names), else None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1035_LABEL.match(value) else _DNS1035_LABEL_MSG


def iana_svc_name_error(value: str) -> str | None:
    """Kubernetes' message when ``value`` is not an IANA service (port) name, else None."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not _HAS_LETTER.search(value):
        return "must contain at least one letter (a-z)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


# --------------------------------------------------------------------------- helpers

_PROTOCOLS = ("TCP", "UDP", "SCTP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_ANNOTATIONS_MAX = 256 * 1024
NODE_PORT_RANGE = (30000, 32767)


def _supported(value: Any, allowed: tuple[str, ...]) -> str:
    return f"Unsupported value: {value!r}: supported values: " + ", ".join(f'"{a}"' for a in allowed)


def _is_int(v: Any) -> TypeGuard[int]:
    return type(v) is int


def _is_dict(v: Any) -> TypeGuard[dict[str, Any]]:
    return type(v) is dict


def _is_list(v: Any) -> TypeGuard[list[Any]]:
    return type(v) is list


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(v), type(v).__name__
    )


def default_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged image without digest, else ``IfNotPresent``."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.rsplit(":", 1)[1]
    else:
        tag = "" if digest else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def deep_copy(value: Any) -> Any:
    """A fast copy of a JSON-shaped value (dicts, lists, scalars)."""
    t = type(value)
    if t is dict:
        return {k: deep_copy(v) for k, v in value.items()}
    if t is list:
        return [deep_copy(v) for v in value]
    return value


class _Ctx:
    """Collects errors for one document."""

    __slots__ = ("file", "document", "errors")

    def __init__(self, file: str, document: int) -> None:
        self.file = file
        self.document = document
        self.errors: list[ManifestError] = []

    def err(self, field: str, message: str) -> None:
        self.errors.append(ManifestError(self.file, message, 0, self.document, field))

    # typed getters: report a type error and return None when the value has the wrong type
    def int_field(
        self, obj: dict[str, Any], key: str, path: str, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        v = obj.get(key)
        if v is None:
            return None
        if not _is_int(v):
            self.err(f"{path}.{key}", f"must be an integer, not {_type_name(v)} {v!r}")
            return None
        if minimum is not None and v < minimum:
            self.err(f"{path}.{key}", f"Invalid value: {v}: must be greater than or equal to {minimum}")
        elif maximum is not None and v > maximum:
            self.err(f"{path}.{key}", f"Invalid value: {v}: must be less than or equal to {maximum}")
        return v

    def str_field(self, obj: dict[str, Any], key: str, path: str) -> str | None:
        v = obj.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            self.err(f"{path}.{key}", f"must be a string, not {_type_name(v)} {v!r}")
            return None
        return v

    def dict_field(self, obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
        v = obj.get(key)
        if v is None:
            return None
        if not _is_dict(v):
            self.err(f"{path}.{key}", f"must be an object, not {_type_name(v)}")
            return None
        return v

    def list_field(self, obj: dict[str, Any], key: str, path: str) -> list[Any] | None:
        v = obj.get(key)
        if v is None:
            return None
        if not _is_list(v):
            self.err(f"{path}.{key}", f"must be a list, not {_type_name(v)}")
            return None
        return v

    def bool_field(self, obj: dict[str, Any], key: str, path: str) -> bool | None:
        v = obj.get(key)
        if v is None:
            return None
        if type(v) is not bool:
            self.err(f"{path}.{key}", f"must be a boolean, not {_type_name(v)} {v!r}")
            return None
        return v

    def str_list_field(self, obj: dict[str, Any], key: str, path: str) -> None:
        v = self.list_field(obj, key, path)
        for i, item in enumerate(v or ()):
            if not isinstance(item, str):
                self.err(f"{path}.{key}[{i}]", f"must be a string, not {_type_name(item)} {item!r}")


# --------------------------------------------------------------------------- defaults


def _default_probe(probe: Any) -> None:
    if not _is_dict(probe):
        return
    probe.setdefault("initialDelaySeconds", 0)
    if not probe.get("periodSeconds"):
        probe["periodSeconds"] = 10
    if not probe.get("timeoutSeconds"):
        probe["timeoutSeconds"] = 1
    if not probe.get("successThreshold"):
        probe["successThreshold"] = 1
    if not probe.get("failureThreshold"):
        probe["failureThreshold"] = 3
    http = probe.get("httpGet")
    if _is_dict(http):
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"


def _default_container(c: Any) -> None:
    if not _is_dict(c):
        return
    image = c.get("image")
    if "imagePullPolicy" not in c and isinstance(image, str) and image:
        c["imagePullPolicy"] = default_pull_policy(image)
    ports = c.get("ports")
    if _is_list(ports):
        for p in ports:
            if _is_dict(p) and not p.get("protocol"):
                p["protocol"] = "TCP"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in c:
            _default_probe(c[probe])
    lifecycle = c.get("lifecycle")
    if _is_dict(lifecycle):
        for hook in lifecycle.values():
            if _is_dict(hook) and _is_dict(hook.get("httpGet")):
                http = hook["httpGet"]
                if not http.get("path"):
                    http["path"] = "/"
                if not http.get("scheme"):
                    http["scheme"] = "HTTP"


def _default_pod_spec(spec: Any) -> None:
    if not _is_dict(spec):
        return
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        cs = spec.get(key)
        if _is_list(cs):
            for c in cs:
                _default_container(c)


def _default_metadata(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    if meta is None:
        return
    if not _is_dict(meta):
        return
    if not meta.get("namespace"):
        meta["namespace"] = "default"
    if meta.get("labels") is None:
        meta["labels"] = {}
    if meta.get("annotations") is None:
        meta["annotations"] = {}


def _default_template(spec: dict[str, Any]) -> None:
    tmpl = spec.get("template")
    if _is_dict(tmpl):
        _default_pod_spec(tmpl.get("spec"))


def _default_workload(obj: dict[str, Any], deployment: bool) -> None:
    spec = obj.get("spec")
    if not _is_dict(spec):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("minReadySeconds", 0)
    if deployment:
        strategy = spec.get("strategy")
        if strategy is None:
            strategy = spec["strategy"] = {}
        if _is_dict(strategy):
            if not strategy.get("type"):
                strategy["type"] = "RollingUpdate"
            if strategy["type"] == "RollingUpdate":
                ru = strategy.get("rollingUpdate")
                if ru is None:
                    ru = strategy["rollingUpdate"] = {}
                if _is_dict(ru):
                    if ru.get("maxSurge") is None:
                        ru["maxSurge"] = "25%"
                    if ru.get("maxUnavailable") is None:
                        ru["maxUnavailable"] = "25%"
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("paused", False)
    _default_template(spec)


def _default_service(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if not _is_dict(spec):
        return
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    stype = spec["type"]
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "ClientIP":
        cfg = spec.setdefault("sessionAffinityConfig", {})
        if _is_dict(cfg):
            cip = cfg.setdefault("clientIP", {})
            if _is_dict(cip) and cip.get("timeoutSeconds") is None:
                cip["timeoutSeconds"] = 10800
    if stype in ("NodePort", "LoadBalancer") and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if stype != "ExternalName" and not spec.get("internalTrafficPolicy"):
        spec["internalTrafficPolicy"] = "Cluster"
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    ports = spec.get("ports")
    if _is_list(ports):
        for p in ports:
            if not _is_dict(p):
                continue
            if not p.get("protocol"):
                p["protocol"] = "TCP"
            tp = p.get("targetPort")
            if tp is None or tp == 0 or tp == "":
                if "port" in p:
                    p["targetPort"] = p["port"]


def _default_endpoints(obj: dict[str, Any]) -> None:
    subsets = obj.get("subsets")
    if subsets is None:
        obj["subsets"] = []
        return
    if not _is_list(subsets):
        return
    for s in subsets:
        if not _is_dict(s):
            continue
        for key in ("addresses", "ports"):
            if s.get(key) is None:
                s[key] = []
        if _is_list(s["ports"]):
            for p in s["ports"]:
                if _is_dict(p) and not p.get("protocol"):
                    p["protocol"] = "TCP"


def apply_defaults(obj: dict[str, Any]) -> None:
    """Apply Kubernetes defaults to ``obj`` in place (robust against wrong types)."""
    _default_metadata(obj)
    kind = obj.get("kind")
    if kind == "Pod":
        _default_pod_spec(obj.get("spec"))
    elif kind == "Deployment":
        _default_workload(obj, deployment=True)
    elif kind == "ReplicaSet":
        _default_workload(obj, deployment=False)
    elif kind == "Service":
        _default_service(obj)
    elif kind == "Endpoints":
        _default_endpoints(obj)


# --------------------------------------------------------------------------- validation


def _validate_labels(ctx: _Ctx, labels: Any, path: str) -> None:
    if labels is None:
        return
    if not _is_dict(labels):
        ctx.err(path, f"must be a map of label keys to string values, not {_type_name(labels)}")
        return
    for k, v in labels.items():
        e = selectors.validate_label_key(k)
        if e:
            ctx.err(path, f"Invalid value: {k!r}: {e}")
        e = selectors.validate_label_value(v)
        if e:
            if isinstance(v, (int, float, bool)) or v is None:
                ctx.err(f"{path}.{k}", f"must be a string (quote it in YAML), not {_type_name(v)} {v!r}")
            else:
                ctx.err(f"{path}.{k}", f"Invalid value: {v!r}: {e}")


def _validate_annotations(ctx: _Ctx, ann: Any, path: str) -> None:
    if ann is None:
        return
    if not _is_dict(ann):
        ctx.err(path, f"must be a map of keys to string values, not {_type_name(ann)}")
        return
    total = 0
    for k, v in ann.items():
        e = selectors.validate_label_key(k)
        if e:
            ctx.err(path, f"Invalid value: {k!r}: {e}")
        if not isinstance(v, str):
            ctx.err(f"{path}.{k}", f"must be a string (quote it in YAML), not {_type_name(v)} {v!r}")
            continue
        total += len(str(k)) + len(v)
    if total > _ANNOTATIONS_MAX:
        ctx.err(path, f"Too long: may not be more than {_ANNOTATIONS_MAX} bytes")


def _validate_metadata(ctx: _Ctx, obj: dict[str, Any], kind: str) -> None:
    meta = obj.get("metadata")
    if meta is None:
        ctx.err("metadata", "Required value")
        return
    if not _is_dict(meta):
        ctx.err("metadata", f"must be an object, not {_type_name(meta)}")
        return
    name = meta.get("name")
    if name is None or name == "":
        ctx.err("metadata.name", "Required value: name is required")
    elif not isinstance(name, str):
        ctx.err("metadata.name", f"must be a string, not {_type_name(name)} {name!r}")
    else:
        e = dns1035_label_error(name) if kind == "Service" else dns1123_subdomain_error(name)
        if e:
            ctx.err("metadata.name", f"Invalid value: {name!r}: {e}")
    ns = meta.get("namespace")
    if ns is not None:
        if not isinstance(ns, str):
            ctx.err("metadata.namespace", f"must be a string, not {_type_name(ns)} {ns!r}")
        else:
            e = dns1123_label_error(ns)
            if e:
                ctx.err("metadata.namespace", f"Invalid value: {ns!r}: {e}")
    _validate_labels(ctx, meta.get("labels"), "metadata.labels")
    _validate_annotations(ctx, meta.get("annotations"), "metadata.annotations")


def _validate_port_ref(ctx: _Ctx, value: Any, path: str, required: bool = True) -> None:
    """An IntOrString port: 1-65535 or an IANA service name."""
    if value is None:
        if required:
            ctx.err(path, "Required value")
        return
    if _is_int(value):
        if not 1 <= value <= 65535:
            ctx.err(path, f"Invalid value: {value}: must be between 1 and 65535, inclusive")
    elif isinstance(value, str):
        e = iana_svc_name_error(value)
        if e:
            ctx.err(path, f"Invalid value: {value!r}: {e}")
    else:
        ctx.err(path, f"must be an integer or a port name, not {_type_name(value)} {value!r}")


def _validate_handler(ctx: _Ctx, h: dict[str, Any], path: str, kinds: tuple[str, ...], what: str) -> None:
    present = [k for k in kinds if h.get(k) is not None]
    if not present:
        ctx.err(path, f"Required value: must specify a handler type ({', '.join(kinds)})")
        return
    if len(present) > 1:
        ctx.err(f"{path}.{present[1]}", f"Forbidden: may not specify more than 1 handler type for {what}")
        return
    k = present[0]
    body = h[k]
    p = f"{path}.{k}"
    if k == "sleep":
        if not _is_dict(body):
            ctx.err(p, f"must be an object, not {_type_name(body)}")
        else:
            sec = body.get("seconds")
            if sec is None:
                ctx.err(f"{p}.seconds", "Required value")
            else:
                ctx.int_field(body, "seconds", p, minimum=0)
        return
    if not _is_dict(body):
        ctx.err(p, f"must be an object, not {_type_name(body)}")
        return
    if k == "exec":
        cmd = body.get("command")
        if cmd is None or cmd == []:
            ctx.err(f"{p}.command", "Required value")
        else:
            ctx.str_list_field(body, "command", p)
    elif k in ("httpGet", "tcpSocket"):
        _validate_port_ref(ctx, body.get("port"), f"{p}.port")
        ctx.str_field(body, "host", p)
        if k == "httpGet":
            ctx.str_field(body, "path", p)
            scheme = body.get("scheme")
            if scheme is not None and scheme not in ("HTTP", "HTTPS"):
                ctx.err(f"{p}.scheme", _supported(scheme, ("HTTP", "HTTPS")))
            headers = ctx.list_field(body, "httpHeaders", p)
            for i, hd in enumerate(headers or ()):
                if not _is_dict(hd) or not isinstance(hd.get("name"), str) or not hd.get("name"):
                    ctx.err(f"{p}.httpHeaders[{i}].name", "Required value")
    elif k == "grpc":
        port = body.get("port")
        if not _is_int(port) or not 1 <= port <= 65535:
            ctx.err(f"{p}.port", f"Invalid value: {port!r}: must be between 1 and 65535, inclusive")


def _validate_probe(ctx: _Ctx, probe: Any, path: str, kind: str) -> None:
    if probe is None:
        return
    if not _is_dict(probe):
        ctx.err(path, f"must be an object, not {_type_name(probe)}")
        return
    _validate_handler(ctx, probe, path, _PROBE_HANDLERS, "a probe")
    ctx.int_field(probe, "initialDelaySeconds", path, minimum=0)
    for key in ("periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        ctx.int_field(probe, key, path, minimum=1)
    st = probe.get("successThreshold")
    if kind in ("livenessProbe", "startupProbe") and _is_int(st) and st != 1:
        ctx.err(f"{path}.successThreshold", f"Invalid value: {st}: must be 1")
    if probe.get("terminationGracePeriodSeconds") is not None:
        if kind == "readinessProbe":
            ctx.err(f"{path}.terminationGracePeriodSeconds", "Invalid value: must not be set for readinessProbes")
        else:
            ctx.int_field(probe, "terminationGracePeriodSeconds", path, minimum=1)


def _validate_container(ctx: _Ctx, c: Any, path: str, names: set[str], init: bool) -> None:
    if not _is_dict(c):
        ctx.err(path, f"must be an object, not {_type_name(c)}")
        return
    name = c.get("name")
    if name is None or name == "":
        ctx.err(f"{path}.name", "Required value")
    elif not isinstance(name, str):
        ctx.err(f"{path}.name", f"must be a string, not {_type_name(name)} {name!r}")
    else:
        e = dns1123_label_error(name)
        if e:
            ctx.err(f"{path}.name", f"Invalid value: {name!r}: {e}")
        elif name in names:
            ctx.err(f"{path}.name", f"Duplicate value: {name!r}")
        names.add(name)
    image = c.get("image")
    if image is None or (isinstance(image, str) and not image.strip()):
        ctx.err(f"{path}.image", "Required value")
    elif not isinstance(image, str):
        ctx.err(f"{path}.image", f"must be a string, not {_type_name(image)} {image!r}")
    elif image != image.strip():
        ctx.err(f"{path}.image", "Invalid value: must not have leading or trailing whitespace")
    ctx.str_list_field(c, "command", path)
    ctx.str_list_field(c, "args", path)
    ctx.str_field(c, "workingDir", path)
    ipp = c.get("imagePullPolicy")
    if ipp is not None and ipp not in _PULL_POLICIES:
        ctx.err(f"{path}.imagePullPolicy", _supported(ipp, _PULL_POLICIES))
    ports = ctx.list_field(c, "ports", path)
    port_names: set[str] = set()
    for i, p in enumerate(ports or ()):
        pp = f"{path}.ports[{i}]"
        if not _is_dict(p):
            ctx.err(pp, f"must be an object, not {_type_name(p)}")
            continue
        cp = p.get("containerPort")
        if cp is None:
            ctx.err(f"{pp}.containerPort", "Required value")
        else:
            ctx.int_field(p, "containerPort", pp, minimum=1, maximum=65535)
        ctx.int_field(p, "hostPort", pp, minimum=1, maximum=65535)
        proto = p.get("protocol")
        if proto is not None and proto not in _PROTOCOLS:
            ctx.err(f"{pp}.protocol", _supported(proto, _PROTOCOLS))
        pname = p.get("name")
        if pname is not None:
            if not isinstance(pname, str):
                ctx.err(f"{pp}.name", f"must be a string, not {_type_name(pname)} {pname!r}")
            else:
                e = iana_svc_name_error(pname)
                if e:
                    ctx.err(f"{pp}.name", f"Invalid value: {pname!r}: {e}")
                elif pname in port_names:
                    ctx.err(f"{pp}.name", f"Duplicate value: {pname!r}")
                port_names.add(pname)
    env = ctx.list_field(c, "env", path)
    for i, ev in enumerate(env or ()):
        ep = f"{path}.env[{i}]"
        if not _is_dict(ev):
            ctx.err(ep, f"must be an object, not {_type_name(ev)}")
            continue
        ename = ev.get("name")
        if ename is None or ename == "":
            ctx.err(f"{ep}.name", "Required value")
        elif not isinstance(ename, str):
            ctx.err(f"{ep}.name", f"must be a string, not {_type_name(ename)} {ename!r}")
        elif not _ENV_VAR_NAME.match(ename):
            ctx.err(f"{ep}.name", f"Invalid value: {ename!r}: {_ENV_VAR_MSG}")
        val = ev.get("value")
        if val is not None and not isinstance(val, str):
            ctx.err(f"{ep}.value", f"must be a string (quote it in YAML), not {_type_name(val)} {val!r}")
        if ev.get("valueFrom") is not None:
            if val:
                ctx.err(f"{ep}.valueFrom", "Invalid value: may not be specified when `value` is not empty")
            else:
                ctx.dict_field(ev, "valueFrom", ep)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if pr is not None and init:
            ctx.err(f"{path}.{probe}", "Forbidden: may not be set for init containers")
            continue
        _validate_probe(ctx, pr, f"{path}.{probe}", probe)
    lifecycle = ctx.dict_field(c, "lifecycle", path)
    if lifecycle:
        for hook in ("postStart", "preStop"):
            h = lifecycle.get(hook)
            if h is None:
                continue
            if not _is_dict(h):
                ctx.err(f"{path}.lifecycle.{hook}", f"must be an object, not {_type_name(h)}")
            else:
                _validate_handler(ctx, h, f"{path}.lifecycle.{hook}", _LIFECYCLE_HANDLERS, "a lifecycle hook")
    rp = c.get("restartPolicy")
    if rp is not None:
        if not init:
            ctx.err(f"{path}.restartPolicy", "Forbidden: may not be set for non-init containers")
        elif rp != "Always":
            ctx.err(f"{path}.restartPolicy", _supported(rp, ("Always",)))
    ctx.dict_field(c, "resources", path)


def _validate_pod_spec(ctx: _Ctx, spec: Any, path: str, template: bool) -> None:
    if spec is None:
        ctx.err(path, "Required value")
        return
    if not _is_dict(spec):
        ctx.err(path, f"must be an object, not {_type_name(spec)}")
        return
    names: set[str] = set()
    containers = spec.get("containers")
    if containers is None or containers == []:
        ctx.err(f"{path}.containers", "Required value")
    elif not _is_list(containers):
        ctx.err(f"{path}.containers", f"must be a list, not {_type_name(containers)}")
    else:
        init = ctx.list_field(spec, "initContainers", path)
        for i, c in enumerate(init or ()):
            _validate_container(ctx, c, f"{path}.initContainers[{i}]", names, init=True)
        for i, c in enumerate(containers):
            _validate_container(ctx, c, f"{path}.containers[{i}]", names, init=False)
    rp = spec.get("restartPolicy")
    if template:
        if rp != "Always":
            ctx.err(f"{path}.restartPolicy", _supported(rp, ("Always",)))
        if spec.get("activeDeadlineSeconds") is not None:
            ctx.err(f"{path}.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported")
    else:
        if rp not in _RESTART_POLICIES:
            ctx.err(f"{path}.restartPolicy", _supported(rp, _RESTART_POLICIES))
        ctx.int_field(spec, "activeDeadlineSeconds", path, minimum=1)
    ctx.int_field(spec, "terminationGracePeriodSeconds", path, minimum=0)
    dp = spec.get("dnsPolicy")
    if dp not in _DNS_POLICIES:
        ctx.err(f"{path}.dnsPolicy", _supported(dp, _DNS_POLICIES))
    ctx.bool_field(spec, "enableServiceLinks", path)
    for key in ("hostname", "subdomain"):
        v = ctx.str_field(spec, key, path)
        if v:
            e = dns1123_label_error(v)
            if e:
                ctx.err(f"{path}.{key}", f"Invalid value: {v!r}: {e}")
    volumes = ctx.list_field(spec, "volumes", path)
    vol_names: set[str] = set()
    for i, v in enumerate(volumes or ()):
        if not _is_dict(v) or not isinstance(v.get("name"), str) or not v.get("name"):
            ctx.err(f"{path}.volumes[{i}].name", "Required value")
            continue
        if v["name"] in vol_names:
            ctx.err(f"{path}.volumes[{i}].name", f"Duplicate value: {v['name']!r}")
        vol_names.add(v["name"])


def _validate_pod(ctx: _Ctx, obj: dict[str, Any]) -> None:
    _validate_pod_spec(ctx, obj.get("spec"), "spec", template=False)


def _int_or_percent(ctx: _Ctx, value: Any, path: str) -> int | None:
    """Validate an IntOrString ``maxSurge``/``maxUnavailable``; returns the number (percent or int)."""
    if _is_int(value):
        if value < 0:
            ctx.err(path, f"Invalid value: {value}: must be greater than or equal to 0")
            return None
        return value
    if isinstance(value, str):
        if not _PERCENT.match(value):
            ctx.err(
                path,
                f"Invalid value: {value!r}: a valid percent string must be a numeric string "
                "followed by an ending '%' (e.g. '1%', or '93%', regex used for validation "
                "is '[0-9]+%')",
            )
            return None
        return int(value[:-1])
    ctx.err(path, f"must be an integer or a percentage string, not {_type_name(value)} {value!r}")
    return None


def _validate_workload(ctx: _Ctx, obj: dict[str, Any], deployment: bool) -> None:
    spec = obj.get("spec")
    if spec is None:
        ctx.err("spec", "Required value")
        return
    if not _is_dict(spec):
        ctx.err("spec", f"must be an object, not {_type_name(spec)}")
        return
    ctx.int_field(spec, "replicas", "spec", minimum=0)
    mrs = ctx.int_field(spec, "minReadySeconds", "spec", minimum=0)
    sel = spec.get("selector")
    selector_ok = False
    if sel is None:
        ctx.err("spec.selector", "Required value")
    elif not _is_dict(sel):
        ctx.err("spec.selector", f"must be an object with matchLabels and/or matchExpressions, not {_type_name(sel)}")
    else:
        errs = selectors.validate_label_selector(sel, "spec.selector")
        for f, m in errs:
            ctx.err(f, m)
        if not errs:
            if not sel.get("matchLabels") and not sel.get("matchExpressions"):
                ctx.err(
                    "spec.selector",
                    "Invalid value: {}: empty selector is invalid for deployment"
                    if deployment
                    else "Invalid value: {}: empty selector is invalid for replicaset",
                )
            else:
                selector_ok = True
    tmpl = spec.get("template")
    if tmpl is None:
        ctx.err("spec.template", "Required value")
    elif not _is_dict(tmpl):
        ctx.err("spec.template", f"must be an object, not {_type_name(tmpl)}")
    else:
        tmeta = tmpl.get("metadata")
        labels: Any = None
        if tmeta is not None and not _is_dict(tmeta):
            ctx.err("spec.template.metadata", f"must be an object, not {_type_name(tmeta)}")
        elif tmeta is not None:
            labels = tmeta.get("labels")
            _validate_labels(ctx, labels, "spec.template.metadata.labels")
            _validate_annotations(ctx, tmeta.get("annotations"), "spec.template.metadata.annotations")
        if selector_ok:
            lab = labels if _is_dict(labels) else {}
            if not selectors.labels_match_selector(sel, lab):
                ctx.err(
                    "spec.template.metadata.labels",
                    f"Invalid value: {lab!r}: `selector` does not match template `labels`",
                )
        _validate_pod_spec(ctx, tmpl.get("spec"), "spec.template.spec", template=True)
    if not deployment:
        return
    rhl = ctx.int_field(spec, "revisionHistoryLimit", "spec", minimum=0)
    del rhl
    pds = ctx.int_field(spec, "progressDeadlineSeconds", "spec", minimum=0)
    if pds is not None and mrs is not None and pds <= mrs:
        ctx.err("spec.progressDeadlineSeconds", "Invalid value: must be greater than minReadySeconds")
    ctx.bool_field(spec, "paused", "spec")
    strategy = spec.get("strategy")
    if not _is_dict(strategy):
        ctx.err("spec.strategy", f"must be an object, not {_type_name(strategy)}")
        return
    stype = strategy.get("type")
    ru = strategy.get("rollingUpdate")
    if stype not in ("Recreate", "RollingUpdate"):
        ctx.err("spec.strategy.type", _supported(stype, ("Recreate", "RollingUpdate")))
        return
    if stype == "Recreate":
        if ru is not None:
            ctx.err("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'")
        return
    if not _is_dict(ru):
        ctx.err("spec.strategy.rollingUpdate", f"must be an object, not {_type_name(ru)}")
        return
    p = "spec.strategy.rollingUpdate"
    surge = _int_or_percent(ctx, ru.get("maxSurge"), f"{p}.maxSurge")
    unavail = _int_or_percent(ctx, ru.get("maxUnavailable"), f"{p}.maxUnavailable")
    if unavail is not None and isinstance(ru.get("maxUnavailable"), str) and unavail > 100:
        ctx.err(f"{p}.maxUnavailable", f"Invalid value: {ru['maxUnavailable']!r}: must not be greater than 100%")
    if surge == 0 and unavail == 0:
        ctx.err(f"{p}.maxUnavailable", f"Invalid value: {ru['maxUnavailable']!r}: may not be 0 when `maxSurge` is 0")


def _validate_service(ctx: _Ctx, obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not _is_dict(spec):
        ctx.err("spec", f"must be an object, not {_type_name(spec)}")
        return
    stype = spec.get("type")
    if stype not in _SERVICE_TYPES:
        ctx.err("spec.type", _supported(stype, _SERVICE_TYPES))
        return
    cip = spec.get("clusterIP")
    headless = cip == "None"
    if cip is not None and cip != "" and not headless:
        if not isinstance(cip, str):
            ctx.err("spec.clusterIP", f"must be a string, not {_type_name(cip)} {cip!r}")
        else:
            try:
                ipaddress.ip_address(cip)
            except ValueError:
                ctx.err("spec.clusterIP", f"Invalid value: {cip!r}: must be a valid IP address or 'None'")
    if headless and stype in ("NodePort", "LoadBalancer"):
        ctx.err("spec.clusterIP", f"Invalid value: 'None': may not be set to 'None' for {stype} services")
    if stype == "ExternalName":
        en = spec.get("externalName")
        if en is None or en == "":
            ctx.err("spec.externalName", "Required value")
        elif not isinstance(en, str):
            ctx.err("spec.externalName", f"must be a string, not {_type_name(en)} {en!r}")
        else:
            e = dns1123_subdomain_error(en[:-1] if en.endswith(".") else en)
            if e:
                ctx.err("spec.externalName", f"Invalid value: {en!r}: {e}")
        if cip not in (None, ""):
            ctx.err("spec.clusterIP", "Forbidden: may not be set for ExternalName services")
        for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(key):
                ctx.err(f"spec.{key}", "Forbidden: may not be set for ExternalName services")
    sa = spec.get("sessionAffinity")
    if sa not in ("None", "ClientIP"):
        ctx.err("spec.sessionAffinity", _supported(sa, ("None", "ClientIP")))
    elif sa == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        t = None
        if _is_dict(cfg) and _is_dict(cfg.get("clientIP")):
            t = cfg["clientIP"].get("timeoutSeconds")
        if not _is_int(t) or not 1 <= t <= 86400:
            ctx.err(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                f"Invalid value: {t!r}: must be greater than 0 and less than 86400",
            )
    elif spec.get("sessionAffinityConfig") is not None:
        ctx.err("spec.sessionAffinityConfig", "Forbidden: must not be set when `sessionAffinity` is None")
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        v = spec.get(key)
        if v is not None and v not in ("Cluster", "Local"):
            ctx.err(f"spec.{key}", _supported(v, ("Cluster", "Local")))
    if stype != "LoadBalancer":
        for key in ("loadBalancerSourceRanges", "allocateLoadBalancerNodePorts", "loadBalancerIP"):
            if spec.get(key) is not None:
                ctx.err(f"spec.{key}", "Forbidden: may only be used when `type` is 'LoadBalancer'")
    sel = spec.get("selector")
    if sel is not None:
        _validate_labels(ctx, sel, "spec.selector")
    ports = spec.get("ports")
    if ports is None or ports == []:
        if stype != "ExternalName" and not headless:
            ctx.err("spec.ports", "Required value")
        return
    if not _is_list(ports):
        ctx.err("spec.ports", f"must be a list, not {_type_name(ports)}")
        return
    names: set[str] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    seen_node_ports: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        pp = f"spec.ports[{i}]"
        if not _is_dict(p):
            ctx.err(pp, f"must be an object, not {_type_name(p)}")
            continue
        name = p.get("name")
        if name is None or name == "":
            if len(ports) > 1:
                ctx.err(f"{pp}.name", "Required value")
        elif not isinstance(name, str):
            ctx.err(f"{pp}.name", f"must be a string, not {_type_name(name)} {name!r}")
        else:
            e = dns1123_label_error(name)
            if e:
                ctx.err(f"{pp}.name", f"Invalid value: {name!r}: {e}")
            elif name in names:
                ctx.err(f"{pp}.name", f"Duplicate value: {name!r}")
            names.add(name)
        port = p.get("port")
        if port is None:
            ctx.err(f"{pp}.port", "Required value")
        else:
            port = ctx.int_field(p, "port", pp, minimum=1, maximum=65535)
        proto = p.get("protocol")
        if proto not in _PROTOCOLS:
            ctx.err(f"{pp}.protocol", _supported(proto, _PROTOCOLS))
        if port is not None:
            if (port, proto) in seen_ports:
                ctx.err(pp, f"Duplicate value: {{port: {port}, protocol: {proto}}}")
            seen_ports.add((port, proto))
            if stype == "LoadBalancer" and port == 10250:
                ctx.err(
                    f"{pp}.port",
                    "Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet",
                )
        if stype != "ExternalName":
            _validate_port_ref(ctx, p.get("targetPort"), f"{pp}.targetPort")
        np = p.get("nodePort")
        if np is not None and np != 0:
            if stype == "ClusterIP":
                ctx.err(f"{pp}.nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")
            elif not _is_int(np):
                ctx.err(f"{pp}.nodePort", f"must be an integer, not {_type_name(np)} {np!r}")
            elif not NODE_PORT_RANGE[0] <= np <= NODE_PORT_RANGE[1]:
                ctx.err(
                    f"{pp}.nodePort",
                    f"Invalid value: {np}: provided port is not in the valid range. "
                    f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}",
                )
            else:
                if (np, proto) in seen_node_ports:
                    ctx.err(f"{pp}.nodePort", f"Duplicate value: {np}")
                seen_node_ports.add((np, proto))


def _validate_endpoints(ctx: _Ctx, obj: dict[str, Any]) -> None:
    subsets = obj.get("subsets")
    if not _is_list(subsets):
        ctx.err("subsets", f"must be a list, not {_type_name(subsets)}")
        return
    for i, s in enumerate(subsets):
        sp = f"subsets[{i}]"
        if not _is_dict(s):
            ctx.err(sp, f"must be an object, not {_type_name(s)}")
            continue
        for key in ("addresses", "notReadyAddresses"):
            addrs = ctx.list_field(s, key, sp)
            for j, a in enumerate(addrs or ()):
                ap = f"{sp}.{key}[{j}]"
                if not _is_dict(a):
                    ctx.err(ap, f"must be an object, not {_type_name(a)}")
                    continue
                ip = a.get("ip")
                if ip is None or ip == "":
                    ctx.err(f"{ap}.ip", "Required value")
                    continue
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    ctx.err(f"{ap}.ip", f"Invalid value: {ip!r}: must be a valid IP address")
                ctx.str_field(a, "hostname", ap)
        ports = ctx.list_field(s, "ports", sp)
        names: set[str] = set()
        for j, p in enumerate(ports or ()):
            pp = f"{sp}.ports[{j}]"
            if not _is_dict(p):
                ctx.err(pp, f"must be an object, not {_type_name(p)}")
                continue
            if p.get("port") is None:
                ctx.err(f"{pp}.port", "Required value")
            else:
                ctx.int_field(p, "port", pp, minimum=1, maximum=65535)
            proto = p.get("protocol")
            if proto not in _PROTOCOLS:
                ctx.err(f"{pp}.protocol", _supported(proto, _PROTOCOLS))
            name = p.get("name")
            if name:
                if not isinstance(name, str) or dns1123_label_error(name):
                    ctx.err(f"{pp}.name", f"Invalid value: {name!r}: {_DNS1123_LABEL_MSG}")
                elif name in names:
                    ctx.err(f"{pp}.name", f"Duplicate value: {name!r}")
                else:
                    names.add(name)
            elif len(ports or ()) > 1:
                ctx.err(f"{pp}.name", "Required value")


_VALIDATORS = {
    "Pod": _validate_pod,
    "Deployment": lambda ctx, obj: _validate_workload(ctx, obj, deployment=True),
    "ReplicaSet": lambda ctx, obj: _validate_workload(ctx, obj, deployment=False),
    "Service": _validate_service,
    "Endpoints": _validate_endpoints,
}


def default_and_validate_in_place(obj: dict[str, Any], file: str, document: int) -> list[ManifestError]:
    """Default ``obj`` in place and return its validation errors (lines left 0).

    ``status`` is dropped: the API server ignores it on create, controllers own it.
    """
    obj.pop("status", None)
    apply_defaults(obj)
    ctx = _Ctx(file, document)
    kind = obj.get("kind")
    _validate_metadata(ctx, obj, kind if isinstance(kind, str) else "")
    validator = _VALIDATORS.get(kind) if isinstance(kind, str) else None
    if validator is not None:
        validator(ctx, obj)
    return ctx.errors


def default_and_validate(obj: dict[str, Any], file: str, document: int) -> tuple[dict[str, Any], list[ManifestError]]:
    """Return a NEW defaulted copy of ``obj`` and its validation errors (lines left 0)."""
    new = deep_copy(obj)
    return new, default_and_validate_in_place(new, file, document)
