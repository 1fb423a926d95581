"""Lifecycle hooks (postStart, preStop) as the kubelet runs them: the rules, without the I/O.

Kubernetes: pkg/kubelet/lifecycle/handlers.go (running a handler: exec, httpGet, sleep, and
the messages of a failure) and pkg/kubelet/kuberuntime/kuberuntime_container.go (startContainer
runs postStart right after the container starts and kills the container if it fails, with the
event FailedPostStartHook; killContainer runs preStop with the whole grace period, then stops
the container with what is left of it, at least 2 s; a failed preStop is the event
FailedPreStopHook and the stop goes on). Performing a handler is runtime/hooks.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POST_START = "postStart"
PRE_STOP = "preStop"
FAILED_POST_START = "FailedPostStartHook"
FAILED_PRE_STOP = "FailedPreStopHook"
POST_START_ERROR = "PostStartHookError"  # the container's waiting reason after a failed postStart
MIN_GRACE_AFTER_PRE_STOP = 2.0  # kubelet: minimumGracePeriodInSeconds


def hook(container_spec: Mapping[str, Any], which: str) -> Mapping[str, Any] | None:
    """The container's ``lifecycle.postStart`` or ``lifecycle.preStop`` handler, if any."""
    lc = container_spec.get("lifecycle")
    h = lc.get(which) if isinstance(lc, Mapping) else None
    return h if isinstance(h, Mapping) and h else None


def handler_kind(handler: Mapping[str, Any]) -> str | None:
    """Which action a handler names: exec, httpGet, sleep (tcpSocket is accepted by the API
    for compatibility and does nothing in the kubelet), or None."""
    for kind in ("exec", "httpGet", "sleep", "tcpSocket"):
        if handler.get(kind) is not None:
            return kind
    return None


def pod_ref(name: str, namespace: str, uid: str) -> str:
    """A pod as the kubelet's messages name it (format.Pod): ``name_namespace(uid)``."""
    return f"{name}_{namespace}({uid})"


def exec_failure(command: list[str], container: str, pod: str, error: str, output: str) -> str:
    return (
        f'Exec lifecycle hook ([{" ".join(command)}]) for Container "{container}" in Pod "{pod}" failed - '
        f'error: {error}, message: "{output}"'
    )


def http_failure(path: str, container: str, pod: str, error: str) -> str:
    return f'HTTP lifecycle hook ({path}) for Container "{container}" in Pod "{pod}" failed - error: {error}'


def sleep_seconds(handler: Mapping[str, Any]) -> float:
    s = (handler.get("sleep") or {}).get("seconds")
    return max(0.0, float(s)) if isinstance(s, (int, float)) and not isinstance(s, bool) else 0.0


def grace_after_pre_stop(grace: float, spent: float) -> float:
    """The stop's grace once preStop took ``spent`` of the pod's ``grace``: the rest, at least 2 s."""
    return max(MIN_GRACE_AFTER_PRE_STOP, grace - spent)
