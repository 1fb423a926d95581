"""The in-process runtime: each container of a pod is a local OS process.

Where it sits: the daemon hands pods (Kubernetes-shaped dicts) to
``InProcessRuntime.create_pod`` and takes them away with ``delete_pod``
(runtime/base.py has the interface and the PodStatus shape). Everything runs
on the daemon's one asyncio loop; nothing here blocks for long (``Popen`` is a
fork+exec, state files are small atomic writes).

Processes
    ``subprocess.Popen(argv, start_new_session=True, ...)``, never a shell and
    never an asyncio subprocess, so a container outlives gitship after kill -9
    and can be adopted. Each container leads its own session and process
    group (pgid == pid). Exits are watched with ``os.pidfd_open`` +
    ``loop.add_reader`` (this works for adopted processes too, which are not
    our children). When a container's main process exits, the rest of its
    process group is SIGKILLed, as the kernel does to a container's pid
    namespace when its PID 1 exits. Output (stdout and stderr) is appended to
    ``{state_dir}/logs/{uid}/{container}.log`` across restarts.

Exit codes
    Our own children are reaped (``Popen.poll``); death by signal N is
    reported as 128+N, like a container runtime. An *adopted* process is not
    our child, so its exit status cannot be read: it is reported as
    ``exitCode: 137, reason: "ContainerStatusUnknown"`` (the kubelet's own
    convention for a container whose status was lost); it counts as a
    failure for restartPolicy OnFailure/Never. The same is reported for a
    container that was running when gitship stopped and is gone on restart.

Restarts and back-off (spec 7.2, 7.3)
    ``Always`` restarts after any exit, ``OnFailure`` after a non-zero one,
    ``Never`` not at all. Delays follow the kubelet (see ``crash_backoff``):
    the first restart after a crash is immediate, then backoff_base,
    ×2 each time, capped at backoff_max; the count resets when more than
    2 × backoff_max (10 min by default) passed since the last back-off
    update. While waiting the container is ``waiting: CrashLoopBackOff`` with
    ``back-off 20s restarting failed container=<c> pod=<name>_<ns>(<uid>)``.

Adoption (procid.py)
    ``{state_dir}/pods/{uid}.json`` holds the pod dict, its IP and per
    container the process identity (pid, start time, boot id) and the status
    counters. ``start()`` adopts processes whose identity still matches,
    restarts (per policy) those that vanished, and returns every pod it found.

Environment of a container (later wins, Kubernetes order)
    inherited from gitship: ``PATH HOME USER LOGNAME SHELL LANG LANGUAGE LC_*
    TZ TMPDIR PYTHONPATH VIRTUAL_ENV SSL_CERT_FILE SSL_CERT_DIR`` and the
    ``http(s)_proxy``/``no_proxy`` variables (see ``INHERITED_ENV``); then the
    image rule's env; then ``POD_NAME POD_NAMESPACE POD_IP POD_UID HOSTNAME
    CONTAINER_IMAGE CONTAINER_NAME``; then the container's ``env`` list in
    order (``value`` with ``$(VAR)`` expansion, ``valueFrom.fieldRef``);
    finally ``GITSHIP_POD_UID`` (process identity, cannot be overridden).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import structlog

from ..base import ExecResult, ImageRule, OnChange, Pod, PodStatus, Runtime, RuntimeError_
from . import procid
from .network import IPAllocationError, IPAllocator
from .probes import ProbeWorker, make_check, run_exec, with_defaults

log = structlog.get_logger("runtime.inprocess")

INHERITED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)  # fmt: skip
INHERITED_ENV_PREFIXES = ("LC_",)
DEFAULT_GRACE = 30.0
STOP_POLL = 0.05
# Popen objects of processes left running by close(stop_pods=False): keeping a
# reference stops subprocess' own _cleanup() from reaping them behind the back
# of a runtime that adopts them in the same interpreter (tests).
_abandoned: list[subprocess.Popen[bytes]] = []


# --- pure helpers ---------------------------------------------------------------


def crash_backoff(crashes: int, base: float, cap: float) -> float:
    """Seconds to wait before restarting after the ``crashes``-th consecutive crash.

    Kubelet semantics (spec 7.3): the first restart is immediate (no back-off
    entry yet), then ``base``, doubling each time, capped at ``cap``:
    0, 10, 20, 40, 80, 160, 300, 300, ... with the defaults.
    """
    if crashes <= 1:
        return 0.0
    return float(min(base * 2 ** (crashes - 2), cap))


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String(): 200ms, 10s, 1.5s, 5m0s, 1h0m0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{ms:g}ms"
    total = round(seconds, 9)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    s_txt = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{s_txt}"
    if m:
        return f"{int(m)}m{s_txt}"
    return s_txt


def pod_phase(restart_policy: str, containers: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """The pod phase from (state, lastState) of each container, as the kubelet's getPhase (spec 7.1)."""
    waiting = running = stopped = succeeded = total = 0
    for state, last in containers:
        total += 1
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif last and "terminated" in last:
            stopped += 1  # waiting to be restarted: it has run before
        else:
            waiting += 1
    if total == 0 or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == total:
        if restart_policy == "Always":
            return "Running"
        if succeeded == stopped:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones will be restarted
    return "Pending"


_VAR_RE = re.compile(r"\$(\$|\(([^)]*)\))")


def expand(value: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, the rest stays literal."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        return mapping[name] if name in mapping else m.group(0)

    return _VAR_RE.sub(sub, value)


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def _group_gone(pgid: int) -> bool:
    """No live process left in the group (cheap killpg probe first; /proc scan only to ignore zombies)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return not procid.group_members(pgid)


class _Waiting(Exception):
    """The container cannot be created yet: it stays waiting with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class _StartError(Exception):
    """The container's process could not be started (like a runtime's StartError, exit 128)."""


# --- state ----------------------------------------------------------------------


class _Container:
    def __init__(self, spec: Mapping[str, Any]):
        self.spec = spec
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.crashes = 0
        self.backoff_updated: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ident: procid.ProcessIdentity | None = None
        self.pidfd: int | None = None
        self.started_at: float | None = None
        self.exit_event = asyncio.Event()
        self.incarnation = 0
        self.started = False  # startup probe passed (or none)
        self.readiness = False  # last effective readiness result
        self.probes: list[ProbeWorker] = []
        self.timer: asyncio.TimerHandle | None = None
        self.kill_message: str | None = None
        self.env: dict[str, str] | None = None
        self.cwd: str | None = None

    @property
    def pid(self) -> int | None:
        return self.ident.pid if self.ident else None

    @property
    def running(self) -> bool:
        return "running" in self.state

    def ready(self) -> bool:
        if not self.running or not self.started:
            return False
        return self.readiness if self.spec.get("readinessProbe") else True

    def stop_probes(self) -> None:
        for w in self.probes:
            w.stop()
        self.probes = []

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.ident.to_json() if self.ident else None,
            "startedAt": self.started_at,
            "state": self.state,
            "lastState": self.last_state,
            "restartCount": self.restart_count,
            "crashes": self.crashes,
            "backoffUpdated": self.backoff_updated,
            "started": self.started,
            "readiness": self.readiness,
        }


class _Pod:
    def __init__(self, pod: Pod, ip: str, start_time: float):
        self.pod = pod
        md = pod.get("metadata") or {}
        self.uid: str = md["uid"]
        self.name: str = md.get("name", "")
        self.namespace: str = md.get("namespace") or "default"
        spec = pod.get("spec") or {}
        self.spec = spec
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.ip = ip
        self.start_time = start_time
        self.containers = [_Container(c) for c in spec.get("containers") or []]
        self.conditions: dict[str, dict[str, Any]] = {}
        self.deleting = False
        self.delete_task: asyncio.Task[None] | None = None

    def grace(self) -> float:
        g = self.spec.get("terminationGracePeriodSeconds")
        return DEFAULT_GRACE if g is None else max(0.0, float(g))

    def container(self, name: str) -> _Container | None:
        return next((c for c in self.containers if c.name == name), None)


# --- the runtime --------------------------------------------------------------------


class InProcessRuntime(Runtime):
    name = "inprocess"

    def __init__(
        self,
        state_dir: str,
        image_rules: Iterable[ImageRule] = (),
        repo_dir: str | None = None,
        pod_cidr: str = "127.244.0.0/16",
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        host_ip: str = "127.0.0.1",
    ):
        self.state_dir = os.path.abspath(state_dir)
        self.image_rules: list[ImageRule] = list(image_rules)
        self.repo_dir = os.path.abspath(repo_dir) if repo_dir else None
        self.pod_cidr = pod_cidr
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.host_ip = host_ip
        os.makedirs(procid.pods_dir(self.state_dir), exist_ok=True)
        os.makedirs(os.path.join(self.state_dir, "logs"), exist_ok=True)
        self._ipam = IPAllocator(pod_cidr, self.state_dir, host_ip)
        self._pods: dict[str, _Pod] = {}
        self._on_change: OnChange | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- public API ----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "podCIDR": self.pod_cidr, "hostIP": self.host_ip, "pods": len(self._pods)}

    def set_image_rules(self, rules: Iterable[ImageRule], repo_dir: str | None) -> None:
        """New image map (a commit changed gitship.yaml). Applies to containers started from now on;
        containers waiting with ImageNotResolved are retried at once."""
        self.image_rules = list(rules)
        self.repo_dir = os.path.abspath(repo_dir) if repo_dir else None
        if self._loop is None or self._closed:
            return
        for p in list(self._pods.values()):
            for c in p.containers:
                if not p.deleting and c.state.get("waiting", {}).get("reason") == "ImageNotResolved":
                    self._launch(p, c)

    async def start(self, on_change: OnChange) -> dict[str, Pod]:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._closed = False
        states = procid.read_states(self.state_dir)
        self._ipam.retain_only(set(states) | set(self._pods))
        adopted: dict[str, Pod] = {}
        todo: list[tuple[_Pod, _Container, dict[str, Any] | None]] = []
        for uid, st in states.items():
            if uid in self._pods:
                continue
            try:
                p = self._adopt(uid, st, todo)
            except Exception:  # a corrupt state file must not stop the daemon
                log.exception("adopt_failed", uid=uid)
                continue
            self._pods[uid] = p
            adopted[uid] = p.pod
        for p, c, term in todo:
            if p.deleting or self._pods.get(p.uid) is not p:
                continue
            if term is not None:
                self._on_terminated(p, c, term)
            else:
                self._launch(p, c)
        for p in self._pods.values():
            self._save(p)
            self._notify(p)
        if adopted:
            log.info("pods_adopted", count=len(adopted))
        return adopted

    async def create_pod(self, pod: Pod) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        uid = (pod.get("metadata") or {}).get("uid")
        if not uid:
            raise RuntimeError_("pod has no metadata.uid")
        if uid in self._pods:
            return
        if not (pod.get("spec") or {}).get("containers"):
            raise RuntimeError_(f"pod {uid} has no containers")
        try:
            ip = self._ipam.allocate(uid)
        except IPAllocationError as e:
            raise RuntimeError_(str(e)) from None
        p = _Pod(copy.deepcopy(pod), ip, time.time())
        self._pods[uid] = p
        os.makedirs(self._log_dir(uid), exist_ok=True)
        self._save(p)
        for c in p.containers:
            self._launch(p, c)
        self._notify(p)

    async def delete_pod(self, uid: str, grace_seconds: float | None = None) -> None:
        p = self._pods.get(uid)
        if p is None:
            return
        if p.delete_task is None:
            p.delete_task = asyncio.get_running_loop().create_task(self._delete(p, grace_seconds))
        await asyncio.shield(p.delete_task)

    def status(self, uid: str) -> PodStatus | None:
        p = self._pods.get(uid)
        if p is None:
            return None
        self._update_conditions(p)
        cstatuses = []
        for c in p.containers:
            cs: dict[str, Any] = {
                "name": c.name,
                "image": c.image,
                "ready": c.ready(),
                "started": bool(c.running and c.started),
                "restartCount": c.restart_count,
                "state": copy.deepcopy(c.state),
                "lastState": copy.deepcopy(c.last_state),
            }
            if c.running and c.pid:
                cs["containerID"] = f"pid://{c.pid}"
            cstatuses.append(cs)
        return {
            "phase": pod_phase(p.restart_policy, ((c.state, c.last_state) for c in p.containers)),
            "podIP": p.ip,
            "podIPs": [{"ip": p.ip}],
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": rfc3339(p.start_time),
            "conditions": [dict(v, type=k) for k, v in p.conditions.items()],
            "containerStatuses": cstatuses,
        }

    def pods(self) -> dict[str, Pod]:
        return {uid: p.pod for uid, p in self._pods.items()}

    def log_path(self, uid: str, container: str) -> str | None:
        path = os.path.join(self._log_dir(uid), f"{container}.log")
        return path if os.path.exists(path) else None

    async def exec(self, uid: str, container: str, argv: list[str], timeout: float = 30.0) -> ExecResult:
        p = self._pods.get(uid)
        c = p.container(container) if p else None
        if p is None or c is None:
            raise RuntimeError_(f"no container {container!r} in pod {uid}")
        env, cwd = c.env, c.cwd
        if env is None:
            try:
                _argv, env, cwd = self._resolve(p, c)
            except (_Waiting, _StartError) as e:
                raise RuntimeError_(str(e)) from None
        try:
            return await run_exec(list(argv), env, cwd, timeout)
        except asyncio.TimeoutError:
            raise RuntimeError_(f"exec {argv!r} in {uid}/{container} timed out after {timeout:g}s") from None
        except OSError as e:
            raise RuntimeError_(str(e)) from None

    async def close(self, stop_pods: bool) -> None:
        if stop_pods:
            await asyncio.gather(*(self.delete_pod(uid) for uid in list(self._pods)), return_exceptions=True)
        self._closed = True
        for p in list(self._pods.values()):
            for c in p.containers:
                c.stop_probes()
                if c.timer:
                    c.timer.cancel()
                    c.timer = None
                self._unwatch(c)
                if c.proc is not None and c.proc.returncode is None:
                    _abandoned.append(c.proc)
            if not p.deleting:
                self._save(p)
        for t in list(self._tasks):
            t.cancel()
        self._pods.clear()

    # -- launching ---------------------------------------------------------------------

    def _log_dir(self, uid: str) -> str:
        return os.path.join(self.state_dir, "logs", uid)

    def _rule_for(self, image: str) -> ImageRule | None:
        return next((r for r in self.image_rules if fnmatch.fnmatchcase(image, r.pattern)), None)

    def _field(self, p: _Pod, path: str, var: str) -> str:
        md = p.pod.get("metadata") or {}
        simple = {
            "metadata.name": p.name,
            "metadata.namespace": p.namespace,
            "metadata.uid": p.uid,
            "status.podIP": p.ip,
            "status.podIPs": p.ip,
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
            "spec.nodeName": "localhost",
            "spec.serviceAccountName": p.spec.get("serviceAccountName") or "default",
        }
        if path in simple:
            return simple[path]
        m = _LABEL_REF.match(path)
        if m:
            return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            items = sorted((md.get(path.split(".")[1]) or {}).items())
            return "\n".join(f'{k}="{v}"' for k, v in items)
        raise _Waiting("CreateContainerConfigError", f"env var {var}: unsupported fieldRef.fieldPath {path!r}")

    def _resolve(self, p: _Pod, c: _Container) -> tuple[list[str], dict[str, str], str]:
        """(argv, env, cwd) of a container; raises _Waiting (stays waiting) or _StartError (crash)."""
        spec = c.spec
        rule = self._rule_for(c.image)
        repo = self.repo_dir
        command = [str(x) for x in spec.get("command") or []]
        if not command and (rule is None or not rule.command):
            raise _Waiting(
                "ImageNotResolved",
                f'image "{c.image}" of container {c.name} cannot run in-process: no entry of gitship.yaml '
                f"`images:` matches it (add one with a pattern and a command) and the container has no `command`",
            )
        env: dict[str, str] = {
            k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith(INHERITED_ENV_PREFIXES)
        }
        env.setdefault("PATH", os.defpath)
        explicit: dict[str, str] = {}
        if rule is not None:
            explicit.update({str(k): str(v) for k, v in rule.env.items()})
        explicit.update(
            {
                "POD_NAME": p.name,
                "POD_NAMESPACE": p.namespace,
                "POD_IP": p.ip,
                "POD_UID": p.uid,
                "HOSTNAME": p.name,
                "CONTAINER_IMAGE": c.image,
                "CONTAINER_NAME": c.name,
            }
        )
        if spec.get("envFrom"):
            raise _Waiting(
                "CreateContainerConfigError",
                f"container {c.name}: envFrom (ConfigMap/Secret) is not supported by the in-process runtime; use env with `value`",
            )
        for e in spec.get("env") or []:
            var = str(e.get("name", ""))
            vf = e.get("valueFrom")
            if vf:
                if vf.get("fieldRef"):
                    val = self._field(p, str(vf["fieldRef"].get("fieldPath", "")), var)
                else:
                    kind = next(iter(vf), "valueFrom")
                    ref = vf.get(kind) or {}
                    what = {"secretKeyRef": "secret", "configMapKeyRef": "configmap"}.get(kind, kind)
                    raise _Waiting(
                        "CreateContainerConfigError",
                        f'env var {var}: {what} "{ref.get("name", "")}" key "{ref.get("key", "")}" cannot be resolved: '
                        f"the in-process runtime does not support {kind}; use a literal `value`",
                    )
            else:
                val = expand(str(e.get("value") if e.get("value") is not None else ""), explicit)
            explicit[var] = val
        env.update(explicit)
        env[procid.UID_ENV] = p.uid

        # working directory
        wd = spec.get("workingDir")
        base = repo or os.getcwd()
        if wd:
            cwd = wd if os.path.isabs(wd) else os.path.join(base, wd)
        elif rule is not None and rule.working_dir:
            cwd = rule.working_dir if os.path.isabs(rule.working_dir) else os.path.join(base, rule.working_dir)
        else:
            cwd = base

        # argv: command replaces the entrypoint, args replace CMD ($(VAR) expanded in both)
        args = [expand(str(a), explicit) for a in spec.get("args") or []]
        if command:
            argv = [expand(x, explicit) for x in command]
            exe = self._exe(argv[0], env, cwd)
        else:
            assert rule is not None
            argv = list(rule.command)
            exe = self._exe(argv[0], env, repo or cwd)
            if repo:
                argv[1:] = [
                    os.path.join(repo, a)
                    if a and not a.startswith("-") and not os.path.isabs(a) and os.path.exists(os.path.join(repo, a))
                    else a
                    for a in argv[1:]
                ]
        if exe is None:
            raise _StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
        return [exe, *argv[1:], *args], env, cwd

    @staticmethod
    def _exe(argv0: str, env: Mapping[str, str], rel_base: str) -> str | None:
        if argv0 in ("python3", "python"):
            return sys.executable
        if "/" in argv0:
            path = argv0 if os.path.isabs(argv0) else os.path.join(rel_base, argv0)
            return path if os.path.isfile(path) else None
        return shutil.which(argv0, path=env.get("PATH"))

    def _launch(self, p: _Pod, c: _Container) -> None:
        """Start (or restart) one container. Never raises."""
        if p.deleting or self._closed or self._pods.get(p.uid) is not p:
            return
        if c.timer:
            c.timer.cancel()
            c.timer = None
        c.stop_probes()
        c.kill_message = None
        now = time.time()
        try:
            argv, env, cwd = self._resolve(p, c)
        except _Waiting as w:
            c.state = {"waiting": {"reason": w.reason, "message": w.message}}
            self._save(p)
            self._notify(p)
            return
        except _StartError as e:
            self._on_terminated(p, c, self._start_error(str(e), now))
            return
        except Exception as e:  # a spec we did not foresee must not take the daemon down
            log.exception("container_resolve_failed", uid=p.uid, container=c.name)
            c.state = {"waiting": {"reason": "CreateContainerError", "message": f"{type(e).__name__}: {e}"}}
            self._save(p)
            self._notify(p)
            return
        c.env, c.cwd = env, cwd
        os.makedirs(self._log_dir(p.uid), exist_ok=True)
        try:
            with open(os.path.join(self._log_dir(p.uid), f"{c.name}.log"), "ab") as logf:
                proc = subprocess.Popen(
                    argv,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    close_fds=True,
                )
        except (OSError, ValueError, TypeError) as e:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._on_terminated(p, c, self._start_error(f"failed to start {argv[0]!r} in {cwd!r}: {msg}", now))
            return
        ident = procid.identity_of(proc.pid) or procid.ProcessIdentity(proc.pid, -1, procid.boot_id())
        c.proc = proc
        self._attach(p, c, ident, os.pidfd_open(proc.pid), now)
        log.info("container_started", uid=p.uid, pod=p.name, container=c.name, pid=proc.pid, restarts=c.restart_count)
        self._save(p)
        self._notify(p)

    def _start_error(self, message: str, now: float) -> dict[str, Any]:
        return {
            "exitCode": 128,
            "reason": "StartError",
            "message": message,
            "startedAt": rfc3339(now),
            "finishedAt": rfc3339(now),
        }

    def _attach(self, p: _Pod, c: _Container, ident: procid.ProcessIdentity, pidfd: int, started_at: float) -> None:
        c.ident, c.pidfd, c.started_at = ident, pidfd, started_at
        c.exit_event = asyncio.Event()
        c.incarnation += 1
        c.state = {"running": {"startedAt": rfc3339(started_at)}}
        assert self._loop is not None
        self._loop.add_reader(pidfd, self._on_exit, p, c, c.incarnation)
        self._start_probes(p, c)

    def _unwatch(self, c: _Container) -> None:
        if c.pidfd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(c.pidfd)
            with contextlib.suppress(OSError):
                os.close(c.pidfd)
            c.pidfd = None

    # -- exits and restarts --------------------------------------------------------------

    def _on_exit(self, p: _Pod, c: _Container, incarnation: int) -> None:
        if incarnation != c.incarnation:
            return
        self._unwatch(c)
        now = time.time()
        pid = c.pid
        code: int | None = None
        if pid is not None:  # container semantics: when PID 1 dies, everything else in it dies too
            # (before reaping: the unreaped leader keeps the pid, so the group id cannot be reused yet)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if c.proc is not None:
            rc = c.proc.poll()
            if rc is None:
                with contextlib.suppress(Exception):
                    rc = c.proc.wait(timeout=1)
            code = _exit_code(rc) if rc is not None else None
        elif pid is not None:
            # adopted: normally not our child; if it is (same interpreter), we can still read the status
            with contextlib.suppress(ChildProcessError, OSError):
                wpid, status = os.waitpid(pid, os.WNOHANG)
                if wpid == pid:
                    code = _exit_code(os.waitstatus_to_exitcode(status))
        started = rfc3339(c.started_at or now)
        if code is None:
            term: dict[str, Any] = {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "exit status unknown: the process was adopted after a gitship restart",
                "startedAt": started,
                "finishedAt": rfc3339(now),
            }
        else:
            term = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": rfc3339(now),
            }
        if c.kill_message:
            term["message"] = c.kill_message
        log.info(
            "container_exited",
            uid=p.uid,
            pod=p.name,
            container=c.name,
            pid=pid,
            exit_code=term["exitCode"],
            reason=c.kill_message,
        )
        c.exit_event.set()
        self._on_terminated(p, c, term)

    def _on_terminated(self, p: _Pod, c: _Container, term: dict[str, Any]) -> None:
        """A container's process ended (or could not start): restart it per policy, with back-off."""
        c.stop_probes()
        c.proc, c.ident = None, None
        c.started = False
        c.readiness = False
        c.kill_message = None
        if p.deleting or self._closed or self._pods.get(p.uid) is not p:
            c.state = {"terminated": term}
            self._notify(p)
            return
        policy = p.restart_policy
        if not (policy == "Always" or (policy == "OnFailure" and term.get("exitCode") != 0)):
            c.state = {"terminated": term}
            self._save(p)
            self._notify(p)
            return
        now = time.time()
        if c.backoff_updated is not None and now - c.backoff_updated > 2 * self.backoff_max:
            c.crashes = 0
        c.crashes += 1
        c.backoff_updated = now
        delay = crash_backoff(c.crashes, self.backoff_base, self.backoff_max)
        c.last_state = {"terminated": term}
        if delay <= 0:
            c.restart_count += 1
            c.state = {"waiting": {"reason": "ContainerCreating"}}
            self._launch(p, c)
            return
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {go_duration(delay)} restarting failed container={c.name} pod={p.name}_{p.namespace}({p.uid})",
            }
        }
        assert self._loop is not None
        c.timer = self._loop.call_later(delay, self._restart, p, c)
        self._save(p)
        self._notify(p)

    def _restart(self, p: _Pod, c: _Container) -> None:
        c.timer = None
        if p.deleting or self._closed or self._pods.get(p.uid) is not p:
            return
        c.restart_count += 1
        self._launch(p, c)

    # -- probes ------------------------------------------------------------------------------

    def _start_probes(self, p: _Pod, c: _Container) -> None:
        inc = c.incarnation
        sp = c.spec.get("startupProbe")
        if sp and not c.started:
            w = ProbeWorker(
                "startup", sp, make_check(sp, c.spec, p.ip, c.env or {}, c.cwd),
                lambda ok, msg: self._on_startup(p, c, inc, ok, msg), c.started_at or time.time(), None,
            )  # fmt: skip
            c.probes.append(w)
            w.start()
        else:
            c.started = True
            self._start_lr_probes(p, c)

    def _start_lr_probes(self, p: _Pod, c: _Container) -> None:
        inc = c.incarnation
        started_at = c.started_at or time.time()
        rp = c.spec.get("readinessProbe")
        if rp:
            w = ProbeWorker(
                "readiness", rp, make_check(rp, c.spec, p.ip, c.env or {}, c.cwd),
                lambda ok, msg: self._on_readiness(p, c, inc, ok, msg), started_at, c.readiness,
            )  # fmt: skip
            c.probes.append(w)
            w.start()
        lp = c.spec.get("livenessProbe")
        if lp:
            w = ProbeWorker(
                "liveness", lp, make_check(lp, c.spec, p.ip, c.env or {}, c.cwd),
                lambda ok, msg: self._on_liveness(p, c, inc, ok, msg), started_at, True,
            )  # fmt: skip
            c.probes.append(w)
            w.start()

    def _current(self, p: _Pod, c: _Container, inc: int) -> bool:
        return inc == c.incarnation and c.running and not p.deleting and not self._closed

    def _on_startup(self, p: _Pod, c: _Container, inc: int, ok: bool, msg: str) -> None:
        if not self._current(p, c, inc):
            return
        if ok:
            c.started = True
            self._start_lr_probes(p, c)
            self._save(p)
            self._notify(p)
        else:
            self._probe_kill(p, c, c.spec.get("startupProbe") or {}, f"Startup probe failed: {msg}")

    def _on_readiness(self, p: _Pod, c: _Container, inc: int, ok: bool, msg: str) -> None:
        if not self._current(p, c, inc):
            return
        c.readiness = ok
        log.info("container_readiness", uid=p.uid, pod=p.name, container=c.name, ready=ok, message=msg)
        self._save(p)
        self._notify(p)

    def _on_liveness(self, p: _Pod, c: _Container, inc: int, ok: bool, msg: str) -> None:
        if not ok and self._current(p, c, inc):
            self._probe_kill(p, c, c.spec.get("livenessProbe") or {}, f"Liveness probe failed: {msg}")

    def _probe_kill(self, p: _Pod, c: _Container, probe: Mapping[str, Any], message: str) -> None:
        """Kill the container (TERM, grace, KILL); its exit then goes through the restart policy."""
        log.info("container_unhealthy", uid=p.uid, pod=p.name, container=c.name, message=message)
        c.stop_probes()
        c.kill_message = message
        g = with_defaults(probe).get("terminationGracePeriodSeconds")
        grace = p.grace() if g is None else max(0.0, float(g))
        self._spawn(self._stop_container(c, grace))

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        t = self._loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- stopping ----------------------------------------------------------------------------

    async def _stop_container(self, c: _Container, grace: float) -> None:
        """SIGTERM the container's process group, wait up to grace, SIGKILL the group, wait until gone."""
        pid = c.pid
        if pid is None or not c.running:
            return
        ev = c.exit_event
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(ev.wait(), grace if grace > 0 else 0.001)
        except asyncio.TimeoutError:
            pass
        # past the grace period (or the leader is gone): kill whatever is left of the group
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (ev.is_set() or c.pidfd is None) and _group_gone(pid):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            await asyncio.sleep(STOP_POLL)
        log.warning("container_stop_timeout", pid=pid, container=c.name)

    async def _delete(self, p: _Pod, grace: float | None) -> None:
        p.deleting = True
        for c in p.containers:
            c.stop_probes()
            if c.timer:
                c.timer.cancel()
                c.timer = None
        g = p.grace() if grace is None else max(0.0, float(grace))
        await asyncio.gather(*(self._stop_container(c, g) for c in p.containers), return_exceptions=True)
        for c in p.containers:
            self._unwatch(c)
        self._ipam.release(p.uid)
        procid.remove_state(self.state_dir, p.uid)
        shutil.rmtree(self._log_dir(p.uid), ignore_errors=True)
        if self._pods.get(p.uid) is p:
            del self._pods[p.uid]
        log.info("pod_deleted", uid=p.uid, pod=p.name)
        self._call_on_change(p.uid)

    # -- adoption ------------------------------------------------------------------------------

    def _adopt(self, uid: str, st: dict[str, Any], todo: list[tuple[_Pod, _Container, dict[str, Any] | None]]) -> _Pod:
        pod = st["pod"]
        (pod.setdefault("metadata", {}))["uid"] = uid
        ip = st.get("ip")
        if not ip or not self._ipam.usable(ip) or not self._ipam.reserve(uid, ip):
            ip = self._ipam.allocate(uid)
        p = _Pod(pod, ip, float(st.get("startTime") or time.time()))
        for k, v in (st.get("conditions") or {}).items():
            if isinstance(v, dict):
                p.conditions[k] = v
        recs = st.get("containers") or {}
        now = time.time()
        for c in p.containers:
            rec = recs.get(c.name) or {}
            c.restart_count = int(rec.get("restartCount") or 0)
            c.crashes = int(rec.get("crashes") or 0)
            c.backoff_updated = rec.get("backoffUpdated")
            c.last_state = rec.get("lastState") or {}
            state = rec.get("state") or {}
            ident = procid.ProcessIdentity.from_json(rec.get("process"))
            if "running" in state and ident is not None and procid.is_ours(ident, uid):
                try:
                    pidfd = os.pidfd_open(ident.pid)
                except OSError:
                    pidfd = None
                # re-check after pinning the process with its pidfd: the pid cannot be reused under us now
                if pidfd is not None and procid.is_ours(ident, uid):
                    c.started = bool(rec.get("started"))
                    c.readiness = bool(rec.get("readiness"))
                    try:
                        _argv, c.env, c.cwd = self._resolve(p, c)
                    except (_Waiting, _StartError):
                        c.env, c.cwd = None, None
                    started_at = float(rec.get("startedAt") or now)
                    self._attach(p, c, ident, pidfd, started_at)
                    log.info("container_adopted", uid=uid, pod=p.name, container=c.name, pid=ident.pid)
                    continue
                if pidfd is not None:
                    os.close(pidfd)
            if "running" in state:
                started = state["running"].get("startedAt") or rfc3339(now)
                c.state = {"waiting": {"reason": "ContainerCreating"}}
                todo.append((p, c, {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when gitship restarted",
                    "startedAt": started,
                    "finishedAt": rfc3339(now),
                }))  # fmt: skip
            elif "terminated" in state:
                c.state = state  # finished for good under its policy
            else:  # waiting (back-off, unresolved image, config error, creating): try again now
                c.state = {"waiting": {"reason": "ContainerCreating"}}
                if state.get("waiting", {}).get("reason") == "CrashLoopBackOff":
                    c.restart_count += 1
                todo.append((p, c, None))
        return p

    # -- status bookkeeping ----------------------------------------------------------------------

    def _save(self, p: _Pod) -> None:
        if p.deleting or self._pods.get(p.uid) is not p:
            return
        data = {
            "pod": p.pod,
            "ip": p.ip,
            "startTime": p.start_time,
            "conditions": p.conditions,
            "containers": {c.name: c.to_json() for c in p.containers},
        }
        try:
            procid.write_state(self.state_dir, p.uid, data)
        except OSError:
            log.exception("state_write_failed", uid=p.uid)

    def _update_conditions(self, p: _Pod) -> bool:
        """Recompute conditions; lastTransitionTime moves only when a status flips. True if one flipped."""
        now = rfc3339(time.time())
        all_ready = bool(p.containers) and all(c.ready() for c in p.containers)
        unready = [c.name for c in p.containers if not c.ready()]
        want: dict[str, tuple[str, str | None, str | None]] = {
            "PodScheduled": ("True", None, None),
            "Initialized": ("True", None, None),
        }
        if all_ready:
            want["ContainersReady"] = ("True", None, None)
            want["Ready"] = ("True", None, None)
        else:
            phase = pod_phase(p.restart_policy, ((c.state, c.last_state) for c in p.containers))
            reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
            msg = f"containers with unready status: [{' '.join(unready)}]"
            want["ContainersReady"] = ("False", reason, msg)
            want["Ready"] = ("False", reason, msg)
        flipped = False
        for typ, (status, reason, msg) in want.items():
            cur = p.conditions.get(typ)
            if cur is None or cur.get("status") != status:
                flipped = True
                cur = {
                    "status": status,
                    "lastTransitionTime": now
                    if cur is not None or typ not in ("PodScheduled", "Initialized")
                    else rfc3339(p.start_time),
                }
            else:
                cur = {"status": status, "lastTransitionTime": cur["lastTransitionTime"]}
            if reason:
                cur["reason"] = reason
                cur["message"] = msg
            p.conditions[typ] = cur
        return flipped

    def _notify(self, p: _Pod) -> None:
        if self._update_conditions(p):
            self._save(p)
        self._call_on_change(p.uid)

    def _call_on_change(self, uid: str) -> None:
        cb = self._on_change
        if cb is None or self._closed:
            return
        try:
            cb(uid)
        except Exception:
            log.exception("on_change_failed", uid=uid)
