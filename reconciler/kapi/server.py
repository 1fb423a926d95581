"""The Kubernetes API over HTTPS, in the daemon (aiohttp): what kubectl and client libraries talk to.

Reads come from the daemon's live objects in memory (the reconcile pass's ``Cluster``: what
``gitship get`` shows from the store), numbered by the watch ``Hub`` (reconciler/kapi/watch.py);
events from the store; logs from the runtime, as reconciler/api.py gets them. Writes go to
``reconciler.kapi.writes.handle`` (reconciler/kapi/contract.py), except a DELETE of a pod git does
not declare: that stops the pod now, as `gitship delete pod` does.

Every request needs the bearer token (reconciler/kapi/certs.py); without it: 401 and a Status.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.types import Key, Obj

from . import certs, openapi, resources, views
from . import exec as kexec
from . import portforward
from .reads import Reads
from .writing import MAX_BODY, write
from .watch import Hub

if TYPE_CHECKING:
    from .host import Daemon

# The machine's kubectl (Google Cloud SDK's dispatcher) runs the client whose minor matches the
# server's, and has clients 1.27 to 1.33 (/usr/lib/google-cloud-sdk/bin/kubectl.1.*). gitship
# follows Kubernetes 1.37's semantics, but no 1.37 client is there: 1.33, the newest it has, is
# reported (a newer minor makes the dispatcher fall back with a skew warning on stderr).
MINOR = 33
VERSION = {
    "major": "1",
    "minor": str(MINOR),
    "gitVersion": f"v1.{MINOR}.0",
    "gitCommit": "gitship",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": str(MINOR),
}
V2_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
POLL = 0.1
SAFETY = 5.0
SETTLE = 3


def json_response(status: int, body: Any, content_type: str = "application/json", **headers: str) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), headers={"Content-Type": content_type, **headers}
    )


def error(code: int, reason: str, message: str) -> web.Response:
    return json_response(code, views.status(code, reason, message))


class KubeApi:
    def __init__(self, d: Daemon, addr: str):
        self.d = d
        self.addr = addr
        self.hub = Hub()
        self.creds = certs.ensure(d.state_dir)
        self.runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None
        self.reads = Reads(d, self.hub, VERSION["gitVersion"])

    def observe(self) -> None:
        self.hub.observe(self.d.reconciler.cluster.objects.items())

    async def _poll(self) -> None:
        """Look at the live objects while reconcile passes run (they change in passes, and a pass
        awaits the runtime midway: ``SETTLE`` more looks after the count moved), and every
        ``SAFETY`` seconds regardless: cheap when nothing happens."""
        seen, last, extra = -1, 0.0, 0
        while True:
            await asyncio.sleep(POLL)
            if not self.hub.watched:  # reads observe for themselves; serialising every object each
                continue  # pass for nobody was 40% of an idle daemon's CPU at 1,000 pods (bench/scale.py)
            passes = int(getattr(self.d.reconciler, "passes", 0))
            if passes != seen:
                seen, extra = passes, SETTLE
            elif extra > 0:
                extra -= 1
            elif time.monotonic() - last < SAFETY:
                continue
            try:
                self.observe()
            except RuntimeError:  # the dict changed while we read it: next time
                continue
            last = time.monotonic()

    async def start(self) -> None:
        host, _, port = self.addr.rpartition(":")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.creds.cert, self.creds.key)
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port), ssl_context=ctx, shutdown_timeout=1.0)
        self.observe()
        await site.start()
        self.start_polling()
        if port == "0":  # the port the kernel chose goes into the kubeconfig
            bound = self.runner.addresses[0]
            self.addr = f"{host}:{bound[1]}"
        certs.write_kubeconfig(self.d.state_dir, self.creds, self.addr)

    def start_polling(self) -> None:
        """Number the live objects' changes from now on (watches wait for them)."""
        self._poller = asyncio.create_task(self._poll())

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._route)
        return app

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
        self.reads.closing.set()
        if self.runner:
            await self.runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), self.creds.token.encode()):
            return error(401, "Unauthorized", "Unauthorized")
        resp: web.StreamResponse = await handler(request)
        return resp

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        try:
            if request.method == "GET":
                fixed = self._fixed(parts, request.headers.get("Accept", ""))
                if fixed is not None:
                    return fixed
            return await self._resource(request, parts)
        except Exception as e:  # a bad request never hurts the daemon
            self.d.reconciler.log.warning("kapi_error", path=request.path, error=repr(e))
            return error(500, "InternalError", f"an error on the server ({type(e).__name__}: {e})")

    def _fixed(self, parts: list[str], accept: str) -> web.Response | None:
        if parts == ["version"]:
            return json_response(200, VERSION)
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return web.Response(text="ok")
        wants_v2 = "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept.replace(" ", "") + ";"
        if parts in (["api"], ["apis"]):
            if wants_v2:
                body = resources.aggregated(core=parts == ["api"])
                return json_response(200, body, V2_TYPE, Vary="Accept")
            doc = resources.api_versions_doc() if parts == ["api"] else resources.api_group_list()
            return json_response(200, doc)
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            found = resources.resource_list(*(("", "v1") if parts[0] == "api" else (parts[1], parts[2])))
            if found is None:
                return error(404, "NotFound", "the server could not find the requested resource")
            return json_response(200, found)
        if parts == ["openapi", "v3"]:
            return json_response(200, openapi.index())
        if parts[:2] == ["openapi", "v3"]:
            data = openapi.document_bytes("/".join(parts[2:]))
            if data is not None:
                return web.Response(body=data, headers={"Content-Type": "application/json"})
        if parts and parts[0] in ("openapi", "swagger.json"):
            return error(404, "NotFound", "the server could not find the requested resource")
        return None

    async def _resource(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        target = parse_path(parts)
        if target is None:
            return error(404, "NotFound", "the server could not find the requested resource")
        r, ns, name, sub = target
        if sub == "exec" and r.kind == "Pod" and request.method in ("GET", "POST"):
            return await kexec.handle(self.d, request, ns, name)
        if sub == "attach" and r.kind == "Pod" and request.method in ("GET", "POST"):
            return await kexec.attach(self.d, request, ns, name)
        if sub == "portforward" and r.kind == "Pod" and request.method in ("GET", "POST"):
            return await portforward.handle(self.d, request, ns, name)
        if request.method == "GET":
            return await self.reads.get(request, r, ns, name, sub)
        if request.method == "DELETE" and r.kind == "Pod" and name and not sub:
            own = await self.reads.delete_pod(request, ns, name)
            if own is not None:
                return own
        return await self.write(request, r, ns, name, sub)

    async def write(
        self, request: web.Request, r: resources.Resource, ns: str, name: str, sub: str
    ) -> web.StreamResponse:
        return await write(self.d, self.hub, request, r, ns, name, sub)


def parse_path(parts: list[str]) -> tuple[resources.Resource, str, str, str] | None:
    """/api/v1/... or /apis/G/V/... -> (resource, namespace, name, subresource)."""
    if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        ns, rest = rest[1], rest[2:]
    r = resources.find(group, version, rest[0])
    if r is None or len(rest) > 3 or (ns and not r.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return r, ns, name, sub


def live_key(r: resources.Resource, ns: str, name: str) -> Key:
    return (r.kind, ns if r.namespaced else "", name)


def now() -> float:
    return time.time()


def copy_obj(o: Obj) -> Obj:
    out: Obj = json.loads(json.dumps(o))
    return out
