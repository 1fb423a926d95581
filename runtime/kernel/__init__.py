"""The pod kernel: what the kubelet decides, as pure functions, shared by every runtime.

Where it sits: a runtime (runtime/inprocess, runtime/docker) does the mechanics of a pod
(start, stop, inspect and adopt processes or containers) and asks this package every
question whose answer Kubernetes defines:

* ``phase``   the pod phase (the kubelet's getPhase), the pod conditions, the restart
  decision, the container and pod status dicts;
* ``env``     a container's environment (``value`` with ``$(VAR)`` expansion, the downward
  API's ``fieldRef`` and ``resourceFieldRef``, ``envFrom`` and ``configMapKeyRef`` /
  ``secretKeyRef`` from the live ConfigMaps and Secrets, the Service variables merged in
  front) and its argv (``command``/``args``);
* ``volumes`` what each of a pod's volumes holds (configMap, secret, downwardAPI, projected
  as {path: (bytes, mode)}; emptyDir) and a container's mounts (subPath, subPathExpr,
  readOnly); runtime/volumes.py writes them;
* ``initc``   init containers and sidecars: which container starts next, the Initialized
  condition, the pod phase while initializing, an init container's restart rule;
* ``hooks``   lifecycle hooks (postStart, preStop): the handler, the grace left after preStop,
  the kubelet's failure messages; performing one is runtime/hooks.py;
* ``backoff`` the crash (and image pull) back-off: 10 s doubling to 300 s, reset after a
  container ran for twice the cap;
* ``probe``   the probe defaults, schedule and the one probe state machine (thresholds);
  performing a probe is I/O and stays in runtime/probes.py;
* ``image``   image references and the imagePullPolicy default;
* ``resources`` the QoS class, requests defaulted to limits, the kubelet's cgroup numbers
  (cpu shares and weight, CFS quota, memory) and the not-enforced pod condition;
* ``timefmt`` RFC 3339 timestamps and Go-style durations.

Nothing here does I/O or reads a clock: the time is always a parameter (``now``, seconds).
The pure core may import it too: reconciler/manifests/validate.py for
``default_pull_policy``, reconcile for ``with_service_env``.
"""

from .backoff import Backoff, crash_backoff
from .env import (
    ConfigError,
    container_argv,
    container_env,
    expand,
    field_ref,
    parse_quantity,
    resource_field_ref,
    with_service_env,
)
from .image import default_pull_policy, parse_image_ref, pull_policy
from .phase import container_status, pod_conditions, pod_phase, pod_status, should_restart
from .probe import PROBE_DEFAULTS, ProbeMachine, next_probe_delay, resolve_port, with_defaults
from .timefmt import go_duration, rfc3339

__all__ = [
    "PROBE_DEFAULTS",
    "Backoff",
    "ConfigError",
    "ProbeMachine",
    "container_argv",
    "container_env",
    "container_status",
    "crash_backoff",
    "default_pull_policy",
    "expand",
    "field_ref",
    "go_duration",
    "next_probe_delay",
    "parse_image_ref",
    "parse_quantity",
    "pod_conditions",
    "pod_phase",
    "pod_status",
    "pull_policy",
    "resolve_port",
    "resource_field_ref",
    "rfc3339",
    "should_restart",
    "with_defaults",
    "with_service_env",
]
