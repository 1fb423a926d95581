"""Pods, their containers, probes and lifecycle handlers (docs/kubernetes.md §8).

The rules and messages are those of kubernetes/kubernetes pkg/apis/core/validation
(validation.go: ValidatePodSpec, validateContainers, validateProbe, validateHandler).
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.validate.common import PROTOCOLS, Ctx, is_dict, is_int, is_list, supported, type_name
from reconciler.manifests.validate.names import (
    dns1123_label_error,
    env_var_name_error,
    iana_svc_name_error,
    unique_name,
    validate_port_ref,
)
from reconciler.manifests.validate.volumepaths import validate_volume_paths
from reconciler.types import Obj

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


# --------------------------------------------------------------------------- handlers and probes


def _validate_sleep(ctx: Ctx, body: Any, p: str) -> None:
    if not is_dict(body):
        ctx.err(p, f"must be an object, not {type_name(body)}")
    elif body.get("seconds") is None:
        ctx.err(f"{p}.seconds", "Required value")
    else:
        ctx.int_field(body, "seconds", p, minimum=0)


def _validate_exec(ctx: Ctx, body: Obj, p: str) -> None:
    cmd = body.get("command")
    if cmd is None or cmd == []:
        ctx.err(f"{p}.command", "Required value")
    else:
        ctx.str_list_field(body, "command", p)


def _validate_socket(ctx: Ctx, body: Obj, p: str, http: bool) -> None:
    validate_port_ref(ctx, body.get("port"), f"{p}.port")
    ctx.str_field(body, "host", p)
    if not http:
        return
    ctx.str_field(body, "path", p)
    scheme = body.get("scheme")
    if scheme is not None and scheme not in ("HTTP", "HTTPS"):
        ctx.err(f"{p}.scheme", supported(scheme, ("HTTP", "HTTPS")))
    headers = ctx.list_field(body, "httpHeaders", p)
    for i, hd in enumerate(headers or ()):
        if not is_dict(hd) or not isinstance(hd.get("name"), str) or not hd.get("name"):
            ctx.err(f"{p}.httpHeaders[{i}].name", "Required value")


def _validate_grpc(ctx: Ctx, body: Obj, p: str) -> None:
    port = body.get("port")
    if not is_int(port) or not 1 <= port <= 65535:
        ctx.err(f"{p}.port", f"Invalid value: {port!r}: must be between 1 and 65535, inclusive")


def _validate_handler(ctx: Ctx, h: Obj, path: str, kinds: tuple[str, ...], what: str) -> None:
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
        _validate_sleep(ctx, body, p)
    elif not is_dict(body):
        ctx.err(p, f"must be an object, not {type_name(body)}")
    elif k == "exec":
        _validate_exec(ctx, body, p)
    elif k in ("httpGet", "tcpSocket"):
        _validate_socket(ctx, body, p, http=k == "httpGet")
    elif k == "grpc":
        _validate_grpc(ctx, body, p)


def _validate_probe(ctx: Ctx, probe: Any, path: str, kind: str) -> None:
    if probe is None:
        return
    if not is_dict(probe):
        ctx.err(path, f"must be an object, not {type_name(probe)}")
        return
    _validate_handler(ctx, probe, path, _PROBE_HANDLERS, "a probe")
    ctx.int_field(probe, "initialDelaySeconds", path, minimum=0)
    for key in ("periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        ctx.int_field(probe, key, path, minimum=1)
    st = probe.get("successThreshold")
    if kind in ("livenessProbe", "startupProbe") and is_int(st) and st != 1:
        ctx.err(f"{path}.successThreshold", f"Invalid value: {st}: must be 1")
    if probe.get("terminationGracePeriodSeconds") is not None:
        if kind == "readinessProbe":
            ctx.err(f"{path}.terminationGracePeriodSeconds", "Invalid value: must not be set for readinessProbes")
        else:
            ctx.int_field(probe, "terminationGracePeriodSeconds", path, minimum=1)


# --------------------------------------------------------------------------- containers


def _validate_image(ctx: Ctx, image: Any, path: str) -> None:
    if image is None or (isinstance(image, str) and not image.strip()):
        ctx.err(f"{path}.image", "Required value")
    elif not isinstance(image, str):
        ctx.err(f"{path}.image", f"must be a string, not {type_name(image)} {image!r}")
    elif image != image.strip():
        ctx.err(f"{path}.image", "Invalid value: must not have leading or trailing whitespace")


def _validate_container_ports(ctx: Ctx, c: Obj, path: str) -> None:
    ports = ctx.list_field(c, "ports", path)
    port_names: set[str] = set()
    for i, p in enumerate(ports or ()):
        pp = f"{path}.ports[{i}]"
        if not is_dict(p):
            ctx.err(pp, f"must be an object, not {type_name(p)}")
            continue
        if p.get("containerPort") is None:
            ctx.err(f"{pp}.containerPort", "Required value")
        else:
            ctx.int_field(p, "containerPort", pp, minimum=1, maximum=65535)
        # 0 means "no host port", as Kubernetes reads it (validateContainerPorts checks only non-zero values)
        if not (type(p.get("hostPort")) is int and p["hostPort"] == 0):
            ctx.int_field(p, "hostPort", pp, minimum=1, maximum=65535)
        proto = p.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            ctx.err(f"{pp}.protocol", supported(proto, PROTOCOLS))
        if p.get("name") is not None:
            unique_name(ctx, p["name"], f"{pp}.name", port_names, iana_svc_name_error)


def _validate_env_var(ctx: Ctx, ev: Any, ep: str) -> None:
    if not is_dict(ev):
        ctx.err(ep, f"must be an object, not {type_name(ev)}")
        return
    ename = ev.get("name")
    if ename is None or ename == "":
        ctx.err(f"{ep}.name", "Required value")
    elif not isinstance(ename, str):
        ctx.err(f"{ep}.name", f"must be a string, not {type_name(ename)} {ename!r}")
    else:
        e = env_var_name_error(ename)
        if e:
            ctx.err(f"{ep}.name", f"Invalid value: {ename!r}: {e}")
    val = ev.get("value")
    if val is not None and not isinstance(val, str):
        ctx.err(f"{ep}.value", f"must be a string (quote it in YAML), not {type_name(val)} {val!r}")
    if ev.get("valueFrom") is not None:
        if val:
            ctx.err(f"{ep}.valueFrom", "Invalid value: may not be specified when `value` is not empty")
        else:
            ctx.dict_field(ev, "valueFrom", ep)


def _validate_hooks(ctx: Ctx, c: Obj, path: str, init: bool) -> None:
    """Probes (not on init containers) and lifecycle hooks."""
    for probe in _PROBES:
        pr = c.get(probe)
        if pr is not None and init:
            ctx.err(f"{path}.{probe}", "Forbidden: may not be set for init containers")
            continue
        _validate_probe(ctx, pr, f"{path}.{probe}", probe)
    lifecycle = ctx.dict_field(c, "lifecycle", path)
    for hook in ("postStart", "preStop"):
        h = (lifecycle or {}).get(hook)
        if h is None:
            continue
        if not is_dict(h):
            ctx.err(f"{path}.lifecycle.{hook}", f"must be an object, not {type_name(h)}")
        else:
            _validate_handler(ctx, h, f"{path}.lifecycle.{hook}", _LIFECYCLE_HANDLERS, "a lifecycle hook")


def _validate_container(ctx: Ctx, c: Any, path: str, names: set[str], init: bool) -> None:
    if not is_dict(c):
        ctx.err(path, f"must be an object, not {type_name(c)}")
        return
    name = c.get("name")
    if name is None or name == "":
        ctx.err(f"{path}.name", "Required value")
    else:
        unique_name(ctx, name, f"{path}.name", names, dns1123_label_error)
    _validate_image(ctx, c.get("image"), path)
    ctx.str_list_field(c, "command", path)
    ctx.str_list_field(c, "args", path)
    ctx.str_field(c, "workingDir", path)
    ipp = c.get("imagePullPolicy")
    if ipp is not None and ipp not in _PULL_POLICIES:
        ctx.err(f"{path}.imagePullPolicy", supported(ipp, _PULL_POLICIES))
    _validate_container_ports(ctx, c, path)
    env = ctx.list_field(c, "env", path)
    for i, ev in enumerate(env or ()):
        _validate_env_var(ctx, ev, f"{path}.env[{i}]")
    _validate_hooks(ctx, c, path, init)
    rp = c.get("restartPolicy")
    if rp is not None:
        if not init:
            ctx.err(f"{path}.restartPolicy", "Forbidden: may not be set for non-init containers")
        elif rp != "Always":
            ctx.err(f"{path}.restartPolicy", supported(rp, ("Always",)))
    ctx.dict_field(c, "resources", path)


# --------------------------------------------------------------------------- the pod spec


def _validate_containers(ctx: Ctx, spec: Obj, path: str) -> None:
    names: set[str] = set()
    containers = spec.get("containers")
    if containers is None or containers == []:
        ctx.err(f"{path}.containers", "Required value")
    elif not is_list(containers):
        ctx.err(f"{path}.containers", f"must be a list, not {type_name(containers)}")
    else:
        init = ctx.list_field(spec, "initContainers", path)
        for i, c in enumerate(init or ()):
            _validate_container(ctx, c, f"{path}.initContainers[{i}]", names, init=True)
        for i, c in enumerate(containers):
            _validate_container(ctx, c, f"{path}.containers[{i}]", names, init=False)


def _validate_restart_policy(ctx: Ctx, spec: Obj, path: str, template: bool) -> None:
    rp = spec.get("restartPolicy")
    if template:
        if rp != "Always":
            ctx.err(f"{path}.restartPolicy", supported(rp, ("Always",)))
        if spec.get("activeDeadlineSeconds") is not None:
            ctx.err(f"{path}.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported")
    else:
        if rp not in _RESTART_POLICIES:
            ctx.err(f"{path}.restartPolicy", supported(rp, _RESTART_POLICIES))
        ctx.int_field(spec, "activeDeadlineSeconds", path, minimum=1)


def _validate_volumes(ctx: Ctx, spec: Obj, path: str) -> None:
    volumes = ctx.list_field(spec, "volumes", path)
    vol_names: set[str] = set()
    for i, v in enumerate(volumes or ()):
        if not is_dict(v) or not isinstance(v.get("name"), str) or not v.get("name"):
            ctx.err(f"{path}.volumes[{i}].name", "Required value")
            continue
        if v["name"] in vol_names:
            ctx.err(f"{path}.volumes[{i}].name", f"Duplicate value: {v['name']!r}")
        vol_names.add(v["name"])


def validate_pod_spec(ctx: Ctx, spec: Any, path: str, template: bool) -> None:
    """A pod's spec (``template``: a ReplicaSet's or Deployment's pod template)."""
    if spec is None:
        ctx.err(path, "Required value")
        return
    if not is_dict(spec):
        ctx.err(path, f"must be an object, not {type_name(spec)}")
        return
    _validate_containers(ctx, spec, path)
    _validate_restart_policy(ctx, spec, path, template)
    ctx.int_field(spec, "terminationGracePeriodSeconds", path, minimum=0)
    dp = spec.get("dnsPolicy")
    if dp not in _DNS_POLICIES:
        ctx.err(f"{path}.dnsPolicy", supported(dp, _DNS_POLICIES))
    ctx.bool_field(spec, "enableServiceLinks", path)
    for key in ("hostname", "subdomain"):
        v = ctx.str_field(spec, key, path)
        if v:
            e = dns1123_label_error(v)
            if e:
                ctx.err(f"{path}.{key}", f"Invalid value: {v!r}: {e}")
    _validate_volumes(ctx, spec, path)
    validate_volume_paths(ctx, spec, path)


def validate_pod(ctx: Ctx, obj: Obj) -> None:
    validate_pod_spec(ctx, obj.get("spec"), "spec", template=False)
