"""A container's environment and argv, as the kubelet makes them.

Kubernetes: pkg/kubelet/kubelet_pods.go (makeEnvironmentVariables, podFieldSelectorRuntimeValue),
pkg/api/v1/resource (ExtractContainerResourceValue) and third_party/forked/golang/expansion
(``$(VAR)``). See docs/kubernetes.md §7.5.

Order (later wins): the runtime's implicit variables (``implicit``: an image rule's env,
``POD_NAME`` ...), then the container's ``env`` list in order. A ``value`` may refer to
any variable defined before it with ``$(VAR)``; ``$$`` is a literal ``$``; a reference to
an undefined name stays as written. ``command`` and ``args`` are expanded with the whole
environment.

ConfigMaps and Secrets (``objects``: every live one, keyed (kind, namespace, name)): ``envFrom``
entries come first, in order (``prefix`` prepended; a key that is no valid variable name is
skipped and reported, the kubelet's InvalidEnvironmentVariableNames event), then the ``env``
list overrides them; ``configMapKeyRef`` reads a ConfigMap's ``data`` (not ``binaryData``),
``secretKeyRef`` a Secret's base64 ``data``, decoded. A missing object or key that is not
``optional`` leaves the container waiting (``ConfigError``, reason CreateContainerConfigError)
with the kubelet's message, until the object exists.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

CONFIG_ERROR = "CreateContainerConfigError"

# Every live ConfigMap and Secret: {(kind, namespace, name): the object}
# (runtime/base.py Runtime.set_config_objects; the same shape as reconciler.types Key -> Obj).
ConfigObjects = Mapping[tuple[str, str, str], Mapping[str, Any]]
# Kubernetes' IsEnvVarName (k8s.io/apimachinery pkg/util/validation): the classic rule
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(ValueError):
    """The container's configuration cannot be resolved: it stays waiting with ``reason``."""

    def __init__(self, message: str, reason: str = CONFIG_ERROR):
        super().__init__(message)
        self.reason = reason
        self.message = message


_VAR_RE = re.compile(r"\$(\$|\(([^)]*)\))")


def expand(value: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, the rest stays literal."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        return mapping[name] if name in mapping else m.group(0)

    return _VAR_RE.sub(sub, value)


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES: dict[str, float] = {
    "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def parse_quantity(q: Any) -> float:
    """A Kubernetes resource quantity ("128Mi", "1G", "500m", 2) as a float."""
    if isinstance(q, (int, float)) and not isinstance(q, bool):
        return float(q)
    m = _QUANTITY.match(str(q).strip())
    if not m or m.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity {q!r}")
    return float(m.group(1)) * _SUFFIXES[m.group(2)]


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def field_ref(pod: Mapping[str, Any], path: str, *, pod_ip: str, host_ip: str, node_name: str) -> str:
    """The downward API's ``fieldRef.fieldPath`` of a pod.

    ``spec.nodeName`` is the pod's ``spec.nodeName`` when set, else ``node_name``: the
    machine gitship runs on is the one node, and both runtimes pass its host name
    (Kubernetes gives the name of the node the pod runs on). Raises ConfigError for a
    path the downward API does not offer.
    """
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace") or "default",
        "metadata.uid": md.get("uid", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
    }
    if path in simple:
        return str(simple[path])
    m = _LABEL_REF.match(path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((md.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ConfigError(f"unsupported fieldRef.fieldPath {path!r}")


def resource_field_ref(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """The downward API's ``resourceFieldRef`` (``limits.cpu``, ``requests.memory`` ...), rounded up by ``divisor``.

    An unset limit or request gives "0" (Kubernetes would give the node's allocatable).
    """
    kind, _, what = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or not what:
        raise ConfigError(f"unsupported resourceFieldRef.resource {ref.get('resource')!r}")
    qty = ((container.get("resources") or {}).get(kind) or {}).get(what)
    try:
        div = parse_quantity(ref.get("divisor") or "1")
        if qty is None:
            return "0"
        return str(int(math.ceil(parse_quantity(qty) / div)))
    except (ValueError, ZeroDivisionError) as e:
        raise ConfigError(f"resourceFieldRef {ref.get('resource')}: {e}") from None


def decode_secret_value(value: Any) -> bytes:
    """One value of a Secret's ``data`` (base64) as bytes; an undecodable one gives b"" (validation
    refuses such a Secret before it is live)."""
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return b""


def config_data(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    """The string values of a ConfigMap's ``data`` or a Secret's decoded ``data``, as env sees them
    (a Secret's bytes become a string as Go's string([]byte) does; undecodable bytes are kept
    with surrogateescape, so the process gets the very bytes)."""
    data = obj.get("data") or {}
    if kind == "Secret":
        return {str(k): decode_secret_value(v).decode("utf-8", "surrogateescape") for k, v in data.items()}
    return {str(k): str(v) for k, v in data.items()}


def lookup(objects: ConfigObjects | None, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
    """A live ConfigMap or Secret, or None."""
    return (objects or {}).get((kind, namespace, name))


def not_found(kind: str, name: str) -> str:
    """The kubelet's message for a missing ConfigMap or Secret (its object managers' NotFound)."""
    return f'{"configmap" if kind == "ConfigMap" else "secret"} "{name}" not found'


def _key_ref(pod: Mapping[str, Any], kind: str, ref: Mapping[str, Any], objects: ConfigObjects | None) -> str | None:
    """configMapKeyRef / secretKeyRef: the value, or None (optional and missing: the variable is left out)."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    name, key, optional = str(ref.get("name", "")), str(ref.get("key", "")), bool(ref.get("optional"))
    obj = lookup(objects, kind, ns, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(not_found(kind, name))
    data = config_data(obj, kind)
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {ns}/{name}")
    return data[key]


def _value_from(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    vf: Mapping[str, Any],
    facts: Mapping[str, str],
    objects: ConfigObjects | None,
) -> str | None:
    if vf.get("fieldRef"):
        path = str(vf["fieldRef"].get("fieldPath", ""))
        return field_ref(pod, path, pod_ip=facts["pod_ip"], host_ip=facts["host_ip"], node_name=facts["node_name"])
    if vf.get("resourceFieldRef"):
        return resource_field_ref(container, vf["resourceFieldRef"])
    if vf.get("configMapKeyRef") is not None:
        return _key_ref(pod, "ConfigMap", vf["configMapKeyRef"], objects)
    if vf.get("secretKeyRef") is not None:
        return _key_ref(pod, "Secret", vf["secretKeyRef"], objects)
    raise ConfigError(f"unsupported valueFrom {sorted(vf)}")


def env_from(
    pod: Mapping[str, Any], container: Mapping[str, Any], objects: ConfigObjects | None, warnings: list[str] | None
) -> dict[str, str]:
    """The variables of the container's ``envFrom`` list, in order (a later source wins).

    Kubernetes: pkg/kubelet/kubelet_pods.go makeEnvironmentVariables. Keys that are no valid
    variable name (after the prefix) are skipped; ``warnings`` gets the kubelet's event message."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    out: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = "ConfigMap", source.get("configMapRef")
        if ref is None:
            kind, ref = "Secret", source.get("secretRef")
        if ref is None:
            continue
        name = str(ref.get("name", ""))
        obj = lookup(objects, kind, ns, name)
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError(not_found(kind, name))
        prefix = str(source.get("prefix") or "")
        invalid = []
        for key, value in config_data(obj, kind).items():
            var = prefix + key
            if not _ENV_NAME.match(var):
                invalid.append(var)
                continue
            out[var] = value
        if invalid and warnings is not None:
            what = "configMap" if kind == "ConfigMap" else "secret"
            warnings.append(
                f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} {ns}/{name} were skipped "
                "since they are considered invalid environment variable names."
            )
    return out


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    implicit: Mapping[str, str] | None = None,
    objects: ConfigObjects | None = None,
    warnings: list[str] | None = None,
) -> dict[str, str]:
    """The container's variables: ``implicit`` first, then its ``envFrom`` sources, then its ``env``
    list (Kubernetes order, later wins). ``objects``: the live ConfigMaps and Secrets."""
    facts = {"pod_ip": pod_ip, "host_ip": host_ip, "node_name": node_name}
    env: dict[str, str] = dict(implicit or {})
    env.update(env_from(pod, container, objects, warnings))
    for e in container.get("env") or []:
        var = str(e.get("name", ""))
        vf = e.get("valueFrom")
        if vf:
            value = _value_from(pod, container, vf, facts, objects)
            if value is not None:
                env[var] = value
        else:
            env[var] = expand(str(e.get("value") if e.get("value") is not None else ""), env)
    return env


def implicit_env(pod: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str) -> dict[str, str]:
    """gitship's own variables every container gets before its ``env`` (a container may override them)."""
    md = pod.get("metadata") or {}
    return {
        "POD_NAME": str(md.get("name", "")),
        "POD_NAMESPACE": str(md.get("namespace") or "default"),
        "POD_IP": pod_ip,
        "POD_UID": str(md.get("uid", "")),
        "CONTAINER_IMAGE": str(container.get("image", "")),
        "CONTAINER_NAME": str(container.get("name", "")),
    }


def with_service_env(env: Sequence[Mapping[str, Any]], service_env: Sequence[Mapping[str, Any]]) -> list[Any]:
    """A container's ``env`` list with the Service variables ({SVC}_SERVICE_HOST ...) before it.

    As the kubelet does (makeEnvironmentVariables): service variables come first, so the
    container's own ``value`` may refer to them with ``$(VAR)``, and a variable of the
    container's own with the same name wins.
    """
    own = {e.get("name") for e in env}
    return [dict(e) for e in service_env if e.get("name") not in own] + [dict(e) for e in env]


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(command, args) with ``$(VAR)`` expanded; command replaces the image's entrypoint, args its CMD."""
    command = [expand(str(a), env) for a in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return command, args
