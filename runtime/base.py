"""The one interface every runtime honours (in-process, Docker).

Where it sits: controllers decide which pods should exist (Kubernetes-shaped
dicts); the daemon hands each pod to ``Runtime.create_pod`` and takes it away
with ``Runtime.delete_pod``. The runtime runs it, probes it, restarts its
containers under the restart policy, and reports what it observes as a
Kubernetes ``PodStatus`` dict. Controllers never import a runtime.

Conventions shared by all runtimes:

* A pod is identified by ``metadata.uid`` (a string). ``metadata.name`` and
  ``metadata.namespace`` are there too. ``spec`` is defaulted (containers,
  restartPolicy, terminationGracePeriodSeconds, probes with their defaults).
* ``status(uid)`` returns a Kubernetes ``PodStatus`` dict::

      {"phase": "Pending|Running|Succeeded|Failed|Unknown",
       "podIP": "127.244.0.7", "podIPs": [{"ip": ...}],
       "hostIP": "127.0.0.1",
       "startTime": "2026-11-25T20:00:00Z",
       "reason": optional, "message": optional,
       "conditions": [{"type": "PodScheduled|Initialized|ContainersReady|Ready",
                       "status": "True|False", "lastTransitionTime": RFC3339,
                       "reason": optional}],
       "containerStatuses": [{"name", "image", "ready": bool, "started": bool,
                              "restartCount": int,
                              "state": {"running": {"startedAt"}} |
                                       {"waiting": {"reason", "message"}} |
                                       {"terminated": {"exitCode", "reason", "startedAt", "finishedAt"}},
                              "lastState": {...}}]}

* Whenever anything in a pod's status changes (phase, readiness, a restart,
  an exit), the runtime calls the ``on_change(uid)`` callback it was given, on
  the event loop's thread. Endpoints and controllers react to that at once.
* After a crash of gitship (kill -9), a new runtime instance on the same
  state dir adopts the pods that still run (``start`` returns their uids with
  the pod dict they were created from) instead of starting doubles; it checks
  identity (not only a pid).
* Storage: for the built-in ``local-path`` StorageClass (``PROVISIONER``) the reconciler asks
  ``provision_volume(pv_name, claim)`` for a PersistentVolume's backing store and puts the
  answer into the PV's spec: in-process ``{"hostPath": {"path": "<state dir>/storage/<pv_name>",
  "type": "DirectoryOrCreate"}}`` (runtime/storage.py), Docker ``{"csi": {"driver": CSI_DRIVER,
  "volumeHandle": "gitship-<instance>-<pv_name>"}}`` (a Docker named volume labelled as
  gitship's). The data outlives every pod, a clean stop, a ``kill -9``, a restart and an
  upgrade; only ``delete_volume`` (reclaimPolicy Delete) removes it, and only a store the
  runtime made (a Docker volume still in use: RuntimeError_, the reconciler retries).
* What Kubernetes defines (phase, conditions, env, argv, back-off, probe
  thresholds, pull policy) is decided by the pod kernel (runtime/kernel), the
  same for every runtime; a runtime does the mechanics.

This class is the whole contract: the daemon and the API call nothing else.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .kernel.volumes import CSI_DRIVER as CSI_DRIVER  # re-exported: the csi driver of the Docker runtime's volumes

Pod = dict[str, Any]
PodStatus = dict[str, Any]
OnChange = Callable[[str], None]

PROVISIONER = "gitship.io/local-path"
"""The ``provisioner`` of the built-in ``local-path`` StorageClass: volumes the runtime makes itself."""


class RuntimeError_(Exception):
    """A runtime could not do what was asked (engine down, bad pod spec)."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecSession(abc.ABC):
    """A running ``kubectl exec``: stdin in, stdout/stderr out as they come, the exit code at the end.

    ``read`` gives (1, bytes) for stdout and (2, bytes) for stderr (with a TTY everything is stdout),
    and None once the command's output is over; ``wait`` then gives the exit code (128+N for a
    signal N)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send to the command's stdin (ignored when it was started without stdin)."""

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """Half-close stdin (the command sees end of file; with a TTY: an end-of-file character)."""

    @abc.abstractmethod
    async def read(self) -> tuple[int, bytes] | None:
        """The next output chunk: (1 stdout | 2 stderr, data); None at the end of all output."""

    @abc.abstractmethod
    def resize(self, width: int, height: int) -> None:
        """Set the TTY's size (columns, rows); nothing without a TTY."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """The exit code, once the command has ended."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """End the command now (the client went away)."""


class Runtime(abc.ABC):
    """What the daemon needs from a runtime. All coroutine methods run on the daemon's loop."""

    name: str = "abstract"

    @abc.abstractmethod
    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        """Start the runtime; adopt the pods that still run. Returns {uid: pod} of adopted pods."""

    @abc.abstractmethod
    async def create_pod(self, pod: Pod) -> None:
        """Start a pod. Returns once it is launched (not once it is ready). Idempotent by uid."""

    @abc.abstractmethod
    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        """Stop a pod gracefully (SIGTERM, grace, SIGKILL) and forget it. Returns when it is gone.

        ``grace_seconds`` None means the pod's terminationGracePeriodSeconds.
        Unknown uids are ignored.
        """

    @abc.abstractmethod
    def status(self, uid: str) -> PodStatus | None:
        """The observed status of a pod, or None if the runtime does not know it."""

    @abc.abstractmethod
    def pods(self) -> dict[str, Pod]:
        """Every pod this runtime runs: {uid: the pod dict it was created from}."""

    async def read_logs(
        self, uid: str, container: str, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[bytes]:
        """Chunks of a container's output, for a runtime whose logs are no file (``log_path`` None).
        This default gives what ``logs`` gives, once; a runtime that can follow its engine's stream
        (Docker) overrides it and, with ``follow``, yields until the container stops."""
        yield await self.logs(uid, container, tail=tail)

    @abc.abstractmethod
    def log_path(self, uid: str, container: str) -> str | None:
        """Path of a container's log file (stdout and stderr interleaved), if any (Docker: None)."""

    @abc.abstractmethod
    async def logs(
        self, uid: str, container: str, *, tail: int | None = None, previous: bool = False, timestamps: bool = False
    ) -> bytes:
        """A container's output (stdout and stderr interleaved).

        ``tail``: only the last N lines. ``previous``: the instance before the last restart
        (where the runtime keeps it apart). ``timestamps``: each line prefixed with its
        RFC 3339 time (where the runtime records it). Raises RuntimeError_ for an unknown
        pod or container.
        """

    @abc.abstractmethod
    async def expose_service_ip(self, ip: str) -> None:
        """Make a Service address (a ClusterIP, the DNS address) reachable from pods.

        Idempotent. In-process: nothing to do (127/8 is local). Docker: the address goes on
        the host's loopback device. Raises RuntimeError_ when it cannot be done; the caller
        logs it and goes on.
        """

    @abc.abstractmethod
    def set_image_rules(self, rules: Sequence[Mapping[str, Any]], repo_dir: str | None) -> None:
        """A new image map, exactly as gitship.yaml's ``images:`` list.

        Each rule is {"image": fnmatch pattern, "command": [argv...], "workingDir": str | None,
        "env": {str: str}}; ``repo_dir`` is the checkout relative paths refer to. Applies to
        containers started from now on. Docker: nothing to do (images are real there).
        """

    @abc.abstractmethod
    def set_config_objects(self, objects: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        """Every live ConfigMap, Secret, PersistentVolumeClaim and PersistentVolume, keyed (kind,
        namespace, name) (a PersistentVolume is cluster-scoped: namespace ""): the whole set each time.

        Objects are Kubernetes-shaped dicts (a ConfigMap's ``data`` and ``binaryData``, a Secret's
        base64 ``data`` with ``stringData`` merged in). A pod's ``persistentVolumeClaim`` volume is
        resolved from them: the claim -> its ``spec.volumeName`` -> that PersistentVolume -> its
        source (hostPath or local; a path under the runtime's own storage dir needs no
        ``--allow-host-path``, any other obeys it; on Docker also the built-in provisioner's csi
        volume). A missing or unbound claim or a missing PersistentVolume leaves the pod's
        containers waiting (ContainerCreating, FailedMount message) until the objects arrive.
        The runtime keeps them and: resolves a
        container's ``envFrom`` / ``configMapKeyRef`` / ``secretKeyRef`` when the container starts
        (env keeps its start value, as in Kubernetes); projects configMap, secret and projected
        volumes when a pod starts; rewrites the mounted files of running pods whose sources
        changed, in place and atomically (the kubelet's ``..data`` symlink swap), within seconds;
        and retries at once the containers waiting for an object that was missing
        (CreateContainerConfigError, or ContainerCreating with a FailedMount message).
        """

    @abc.abstractmethod
    async def provision_volume(self, pv_name: str, claim: Mapping[str, Any]) -> dict[str, Any]:
        """Make (idempotently: a second call with the same ``pv_name`` returns the same answer and
        keeps the data) the backing store of the PersistentVolume ``pv_name`` the built-in
        ``local-path`` provisioner makes for ``claim`` (the PVC object). Returns the PV's
        volume-source fragment, which the reconciler puts into the PV's spec as is. Raises
        RuntimeError_ on failure."""

    @abc.abstractmethod
    async def delete_volume(self, pv: Mapping[str, Any]) -> None:
        """Remove the backing store of a PV this runtime provisioned (reclaimPolicy Delete):
        idempotent (already gone is fine); RuntimeError_ for a PV it did not provision itself."""

    @abc.abstractmethod
    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        """Run a command in a container's environment."""

    async def exec_stream(self, uid: str, container: str, argv: list[str], stdin: bool, tty: bool) -> ExecSession:
        """Start a command in a container with streamed input and output (``kubectl exec``/``-it``).
        RuntimeError_ when the pod or container is not there or not running."""
        raise RuntimeError_(f"runtime {self.name} cannot stream an exec")

    @abc.abstractmethod
    async def close(self, stop_pods: bool) -> None:
        """Stop supervising. With stop_pods, stop every pod gracefully first."""

    def info(self) -> dict[str, Any]:
        """What `gitship status` shows about this runtime."""
        return {"name": self.name}

    def node_objects(self) -> list[dict[str, Any]]:
        """The nodes this runtime places pods on, as Kubernetes Node objects (``get nodes``, DaemonSets).
        Empty: a one-machine runtime; the daemon then describes this machine itself."""
        return []

    def wrap_plane(self, plane: Any) -> Any:
        """The daemon's Service data plane as this runtime needs it; a multi-node runtime may wrap it
        (swarm: a relay per nodePort on every node). One-machine runtimes use it as it is."""
        return plane
