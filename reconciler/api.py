"""The daemon's small HTTP API on a Unix socket in the state dir.

Where it sits: the CLI reads objects straight from the store (read-only
SQLite, so reads work while the daemon is down); it comes here only for what
needs the running daemon: stopping a pod now, running a command in a pod,
finding a pod's logs, asking for a source check, and the daemon's live status.
Desired-state changes never come here: they are git commits.

Routes (JSON in and out; errors as a Kubernetes ``Status``):
  GET  /healthz
  GET  /v1/status
  POST /v1/sync                                     check the source now
  POST /v1/namespaces/{ns}/pods/{name}/delete       {"gracePeriodSeconds": optional}
  POST /v1/namespaces/{ns}/pods/{name}/exec         {"container": optional, "command": [...]}
  GET  /v1/namespaces/{ns}/pods/{name}/log?container=C   {"path": ..., "content": optional base64}
  POST /v1/namespaces/{ns}/jobs                     {"name": ..., "fromCronJob": ...}: a Job from a CronJob
  POST /v1/namespaces/{ns}/jobs/{name}/delete       a Job git does not declare (a CronJob's)
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import urllib.parse
from typing import TYPE_CHECKING, Any, Protocol

from .controllers.cronjob import JobRequest

if TYPE_CHECKING:
    from .dataplane import DataPlane
    from runtime.base import Runtime

    from .reconcile import Reconciler

MAX_BODY = 1 << 20


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


class Daemon(Protocol):
    """What the API needs of the running daemon."""

    runtime: Runtime
    reconciler: Reconciler
    plane: DataPlane

    def wake_source(self) -> None: ...

    def dns_address(self) -> str: ...


class ApiServer:
    def __init__(self, daemon: Daemon):
        self.d = daemon
        self.server: asyncio.AbstractServer | None = None
        self.path = ""

    async def start(self, path: str) -> None:
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.server = await asyncio.start_unix_server(self._handle, path=path)
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            method, target, _ = line.decode().split(" ", 2)
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = min(int(value.strip()), MAX_BODY)
            body = json.loads(await reader.readexactly(length)) if length else {}
            url = urllib.parse.urlsplit(target)
            query = dict(urllib.parse.parse_qsl(url.query))
            code, payload = await self._route(method, url.path.strip("/").split("/"), query, body)
        except Exception as e:  # a bad request never hurts the daemon
            code, payload = 500, status_body(500, "InternalError", str(e))
        data = json.dumps(payload).encode()
        writer.write(
            b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (code, len(data)) + data
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _jobs(self, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        return await _job_route(self.d, parts, body)

    async def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        rec = self.d.reconciler
        if parts == ["healthz"]:
            return 200, {"ok": True}
        if parts == ["v1", "status"]:
            return 200, {
                "pid": os.getpid(),
                "runtime": self.d.runtime.info(),
                "dataPlane": self.d.plane.info(),
                "ingress": rec.network.ingress.info() if rec.network.ingress else None,
                "dns": self.d.dns_address(),
                "passes": rec.passes,
            }
        if parts == ["v1", "sync"] and method == "POST":
            self.d.wake_source()
            return 200, {"ok": True}
        if len(parts) in (4, 6) and parts[:2] == ["v1", "namespaces"] and parts[3] == "jobs" and method == "POST":
            return await self._jobs(parts, body)
        if len(parts) == 6 and parts[:2] == ["v1", "namespaces"] and parts[3] == "pods":
            ns, name, verb = parts[2], parts[4], parts[5]
            pod = rec.cluster.get(("Pod", ns, name))
            if pod is None:
                return 404, status_body(404, "NotFound", f'pods "{name}" not found')
            uid = pod["metadata"]["uid"]
            containers = [c["name"] for k in ("containers", "initContainers") for c in pod["spec"].get(k) or []]
            container = body.get("container") or query.get("container") or (containers[0] if containers else "")
            if container not in containers:
                return 400, status_body(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if verb == "delete" and method == "POST":
                await rec.delete_pod(ns, name, body.get("gracePeriodSeconds"))
                return 200, {"kind": "Status", "status": "Success", "details": {"name": name, "kind": "pods"}}
            if verb == "exec" and method == "POST":
                res = await self.d.runtime.exec(uid, container, list(body["command"]), float(body.get("timeout", 300)))
                return 200, {
                    "exitCode": res.exit_code,
                    "stdout": base64.b64encode(res.stdout).decode(),
                    "stderr": base64.b64encode(res.stderr).decode(),
                }
            if verb == "log":
                path = self.d.runtime.log_path(uid, container)
                out: dict[str, Any] = {"path": path, "container": container}
                if path is None:
                    data = await self.d.runtime.logs(uid, container)
                    out["content"] = base64.b64encode(data).decode()
                return 200, out
        return 404, status_body(404, "NotFound", f"no route {method} /{'/'.join(parts)}")


async def _job_pass(d: Daemon, request: JobRequest) -> Any:
    """One reconcile pass carries the request out (its log and events record it); the Job after it."""
    d.reconciler.log.info("job_request", **dataclasses.asdict(request))
    await d.reconciler.pass_once(job_requests=[request])
    return d.reconciler.cluster.get(("Job", request.namespace, request.name))


async def _job_route(d: Daemon, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
    """`gitship create job NAME --from=cronjob/X` and `gitship delete job NAME` (a CronJob's Job):
    actions carried out by one reconcile pass (recorded in its log and events), never commits."""
    rec, ns = d.reconciler, parts[2]
    if len(parts) == 6:
        name = parts[4]
        job = rec.cluster.get(("Job", ns, name))
        if parts[5] != "delete" or job is None:
            return 404, status_body(404, "NotFound", f'jobs.batch "{name}" not found')
        if ("Job", ns, name) in rec.desired:
            return 409, status_body(409, "Conflict", f'jobs.batch "{name}" is declared in git: delete it there')
        await _job_pass(d, JobRequest(ns, "", name, delete=True))
        return 200, {"kind": "Status", "status": "Success", "details": {"name": name, "kind": "jobs"}}
    name, source = str(body.get("name") or ""), str(body.get("fromCronJob") or "")
    if rec.cluster.get(("CronJob", ns, source)) is None:
        return 404, status_body(404, "NotFound", f'cronjobs.batch "{source}" not found')
    if rec.cluster.get(("Job", ns, name)) is not None or ("Job", ns, name) in rec.desired:
        return 409, status_body(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
    job = await _job_pass(d, JobRequest(ns, source, name))
    if job is None:
        return 500, status_body(500, "InternalError", f'jobs.batch "{name}" was not created')
    return 201, job


def request(
    socket_path: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 330.0
) -> tuple[int, Any]:
    """The CLI's side: one request over the Unix socket."""
    import socket

    data = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: gitship\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    raw = b"".join(chunks)
    head, _, payload = raw.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    return code, json.loads(payload) if payload else None
