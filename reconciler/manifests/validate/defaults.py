"""The API server's defaults, applied in place (docs/kubernetes.md §1.1, §5.1-5.2, §7.4).

Robust against values of the wrong type: a default is only filled into a map that is a
map; validation reports the wrong type afterwards.
"""

from __future__ import annotations

import base64
from typing import Any

from reconciler.manifests.model import CLUSTER_SCOPED
from reconciler.manifests.validate.common import is_dict, is_list
from reconciler.manifests.validate.storage import default_storage
from reconciler.manifests.validate.replication import default_replication_controller
from reconciler.manifests.validate.apps import default_apps
from reconciler.types import Obj

# The kubelet and the API server share one rule for it: the pod kernel holds it (pure).
from runtime.kernel.image import default_pull_policy
from runtime.kernel.resources import default_requests_in_place

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _default_http_get(http: Obj) -> None:
    if not http.get("path"):
        http["path"] = "/"
    if not http.get("scheme"):
        http["scheme"] = "HTTP"


def _default_probe(probe: Any) -> None:
    if not is_dict(probe):
        return
    probe.setdefault("initialDelaySeconds", 0)
    for key, value in (("periodSeconds", 10), ("timeoutSeconds", 1), ("successThreshold", 1), ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    http = probe.get("httpGet")
    if is_dict(http):
        _default_http_get(http)


def _default_container(c: Any) -> None:
    if not is_dict(c):
        return
    image = c.get("image")
    if "imagePullPolicy" not in c and isinstance(image, str) and image:
        c["imagePullPolicy"] = default_pull_policy(image)
    ports = c.get("ports")
    if is_list(ports):
        for p in ports:
            if is_dict(p) and not p.get("protocol"):
                p["protocol"] = "TCP"
    for probe in _PROBES:
        if probe in c:
            _default_probe(c[probe])
    lifecycle = c.get("lifecycle")
    if is_dict(lifecycle):
        for hook in lifecycle.values():
            if is_dict(hook) and is_dict(hook.get("httpGet")):
                _default_http_get(hook["httpGet"])


def _default_pod_spec(spec: Any) -> None:
    if not is_dict(spec):
        return
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        cs = spec.get(key)
        if is_list(cs):
            for c in cs:
                _default_container(c)


def _default_pod_requests(spec: Any) -> None:
    """SetDefaults_Pod: a container's limit without a request makes the request (Pods only, not
    pod templates: kubernetes/kubernetes pkg/apis/core/v1/defaults.go)."""
    if not is_dict(spec):
        return
    for key in ("containers", "initContainers"):
        cs = spec.get(key)
        if is_list(cs):
            for c in cs:
                default_requests_in_place(c)


def _default_metadata(obj: Obj) -> None:
    meta = obj.get("metadata")
    if not is_dict(meta):
        return
    if obj.get("kind") in CLUSTER_SCOPED:
        meta.pop("namespace", None)  # ignored on create, as the API server does
    elif not meta.get("namespace"):
        meta["namespace"] = "default"
    if meta.get("labels") is None:
        meta["labels"] = {}
    if meta.get("annotations") is None:
        meta["annotations"] = {}


def _default_strategy(spec: Obj) -> None:
    strategy = spec.get("strategy")
    if strategy is None:
        strategy = spec["strategy"] = {}
    if not is_dict(strategy):
        return
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] != "RollingUpdate":
        return
    ru = strategy.get("rollingUpdate")
    if ru is None:
        ru = strategy["rollingUpdate"] = {}
    if is_dict(ru):
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = "25%"
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = "25%"


def _default_workload(obj: Obj, deployment: bool) -> None:
    spec = obj.get("spec")
    if not is_dict(spec):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("minReadySeconds", 0)
    if deployment:
        _default_strategy(spec)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("paused", False)
    tmpl = spec.get("template")
    if is_dict(tmpl):
        _default_pod_spec(tmpl.get("spec"))


def _default_service_ports(ports: Any) -> None:
    if not is_list(ports):
        return
    for p in ports:
        if not is_dict(p):
            continue
        if not p.get("protocol"):
            p["protocol"] = "TCP"
        tp = p.get("targetPort")
        if (tp is None or tp == 0 or tp == "") and "port" in p:
            p["targetPort"] = p["port"]


def _default_service(obj: Obj) -> None:
    spec = obj.get("spec")
    if spec is None:
        spec = obj["spec"] = {}
    if not is_dict(spec):
        return
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    stype = spec["type"]
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "ClientIP":
        cfg = spec.setdefault("sessionAffinityConfig", {})
        if is_dict(cfg):
            cip = cfg.setdefault("clientIP", {})
            if is_dict(cip) and cip.get("timeoutSeconds") is None:
                cip["timeoutSeconds"] = 10800
    if stype in ("NodePort", "LoadBalancer") and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if stype != "ExternalName" and not spec.get("internalTrafficPolicy"):
        spec["internalTrafficPolicy"] = "Cluster"
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    _default_service_ports(spec.get("ports"))


def _default_endpoints(obj: Obj) -> None:
    subsets = obj.get("subsets")
    if subsets is None:
        obj["subsets"] = []
        return
    if not is_list(subsets):
        return
    for s in subsets:
        if not is_dict(s):
            continue
        for key in ("addresses", "ports"):
            if s.get(key) is None:
                s[key] = []
        if is_list(s["ports"]):
            for p in s["ports"]:
                if is_dict(p) and not p.get("protocol"):
                    p["protocol"] = "TCP"


def _canonical_base64(values: Any) -> None:
    """Base64 values re-encoded as the API server returns them (padded, no line breaks; a null
    value as empty); a value that is not base64 is left for validation to report."""
    if not is_dict(values):
        return
    for key, value in values.items():
        if value is None:
            values[key] = ""
        elif isinstance(value, str):
            try:
                raw = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
            except ValueError:  # binascii.Error is a ValueError
                continue
            values[key] = base64.b64encode(raw).decode("ascii")


def _default_secret(obj: Obj) -> None:
    """SetDefaults_Secret (type Opaque), and the v1 -> internal conversion of ``stringData``:
    each entry is written into ``data`` (base64), winning over a ``data`` entry of the same key,
    and ``stringData`` itself is not kept (kubernetes/kubernetes pkg/apis/core/v1/conversion.go
    Convert_v1_Secret_To_core_Secret). Entries that are not strings stay for validation."""
    if not obj.get("type"):
        obj["type"] = "Opaque"
    _canonical_base64(obj.get("data"))
    string_data = obj.get("stringData")
    if not is_dict(string_data):
        return
    data = obj.get("data")
    if data is None:
        data = obj["data"] = {}
    if not is_dict(data):
        return
    left = {}
    for key, value in string_data.items():
        if isinstance(key, str) and isinstance(value, str):
            data[key] = base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")
        else:
            left[key] = value
    if left:
        obj["stringData"] = left
    else:
        del obj["stringData"]


def apply_defaults(obj: Obj) -> None:
    """Apply Kubernetes defaults to ``obj`` in place (robust against wrong types)."""
    _default_metadata(obj)
    kind = obj.get("kind")
    if kind == "Pod":
        _default_pod_spec(obj.get("spec"))
        _default_pod_requests(obj.get("spec"))
    elif kind == "Deployment":
        _default_workload(obj, deployment=True)
    elif kind == "ReplicaSet":
        _default_workload(obj, deployment=False)
    elif kind == "ReplicationController":
        default_replication_controller(obj)
        _default_workload(obj, deployment=False)
    elif kind in ("StatefulSet", "DaemonSet"):
        default_apps(obj, _default_pod_spec)
    elif kind == "Service":
        _default_service(obj)
    elif kind == "Endpoints":
        _default_endpoints(obj)
    elif kind == "Secret":
        _default_secret(obj)
    elif kind == "ConfigMap":
        _canonical_base64(obj.get("binaryData"))
    elif kind in ("PersistentVolumeClaim", "PersistentVolume", "StorageClass"):
        default_storage(obj)
