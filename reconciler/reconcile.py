"""The reconcile pass: make the live objects and the runtime match desired state.

Where it sits: after the store, before the runtime. Each pass is level-triggered:
it reads the desired objects (the applied revision), the live objects and what
the runtime observes, asks the pure controllers what to do (controllers/*),
and carries out their answers in a fixed order:

  1. pod statuses from the runtime
  2. git objects into live objects (create, update with generation, prune)
  3. Deployments -> ReplicaSets          (controllers/deployment.py)
  4. ReplicaSets -> Pods                 (controllers/replicaset.py)
  5. garbage collection of objects whose owner is gone
  6. Services -> allocations, Endpoints, proxy, DNS (controllers/service.py)
  7. the runtime: start new pods, stop terminating ones (after step 6, so a
     pod leaves the endpoints before it is sent SIGTERM)
  8. write what changed to the store, with the events

A crash at any point converges on restart: pods the runtime still runs are
adopted, pods it lost are replaced by their owners, and pods it runs that no
live object wants are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from typing import Any

from runtime.net.dns import build_zone

from . import annotation_keys as keys
from .cluster import Cluster, Key, Obj, controller_uid, key_of, new_uid
from .controllers import deployment as deployctl
from .controllers import replicaset as rsctl
from .controllers import service as svcctl
from .controllers.podutil import ALPHABET, owner_ref, to_rfc3339
from .errors import ManifestError
from .manifests.model import Manifest

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "Pod", "Service")
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
WARNING_REASONS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "ImageNotResolved",
}
ENDPOINT_DRAIN_SECONDS = 0.5
MANAGED_PREFIX = "deployment.kubernetes.io/"  # annotations the controllers own, not git
MIN_PASS_INTERVAL = 1.0


def _addr(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host or text, int(port) if port else default_port)


class Reconciler:
    def __init__(self, daemon: Any, cluster: Cluster):
        self.d = daemon
        self.store = daemon.store
        self.runtime = daemon.runtime
        self.cluster = cluster
        self.desired: dict[Key, Obj] = self.store.desired()
        self.revision = self.store.get_meta("lastAppliedRevision")
        self.template_commits: dict[str, dict[str, Any]] = self.store.get_meta("templateCommits", {})
        self.revision_info: dict[str, Any] | None = next(
            (r for r in self.store.revisions(50) if r["sha"] == self.revision), None
        )
        self.reconcile_id = ""
        self._wake = asyncio.Event()
        self._launched: set[str] = set()
        self._terminating: dict[str, asyncio.Task[None]] = {}
        self._requeue_at: float | None = None
        self._rng = random.Random()
        prev = self.store.get_meta("allocations", {})
        self.allocations: dict[tuple[str, str], Any] = {
            tuple(k.split("/", 1)): svcctl.Allocation(
                v.get("clusterIP"), {str(p): n for p, n in v.get("nodePorts", {}).items()}
            )
            for k, v in prev.items()
        }
        self.proxy: Any = None
        self.dns: Any = None
        self._proxied: set[str] = set()
        self._exposed: set[str] = set()
        self._was_endpoint: set[str] = set()  # pods that were a ready backend of some service
        self._dns_addr = ""
        self._events: list[dict[str, Any]] = []
        self.passes = 0

    # -- life cycle -----------------------------------------------------------------
    async def start(self, adopted: dict[str, Obj]) -> None:
        from runtime.net.dns import DNSServer
        from runtime.net.proxy import ServiceProxy

        self.proxy = ServiceProxy()
        host, port = _addr(self.d.opts.dns_addr, 53)
        try:
            self.dns = await DNSServer.start(host, port, lambda: self._zone)
        except OSError as e:
            self.d.log.warning("dns_bind_failed", address=self.d.opts.dns_addr, error=str(e), fallback_port=10053)
            self.dns = await DNSServer.start(host, 10053, lambda: self._zone)
        self._dns_addr = "%s:%d" % self.dns.address[:2]
        self._zone = build_zone([], [], [])
        self.store.set_meta(dns={"address": self._dns_addr})
        self._launched = set(adopted)
        for pod in self.cluster.of_kind("Pod"):
            uid = pod["metadata"].get("uid")
            if uid not in adopted:
                # it stopped while gitship was down (or never started): its owner replaces it
                self.cluster.delete(key_of(pod))
        await self.pass_once()

    def _reserved_ips(self) -> tuple[str, ...]:
        """The DNS server's address is never handed out as a ClusterIP."""
        host = _addr(self.d.opts.dns_addr, 53)[0] if self.d.opts.dns_addr else ""
        return (host,) if host else ()

    def dns_address(self) -> str:
        return self._dns_addr

    async def close(self) -> None:
        for t in list(self._terminating.values()):
            t.cancel()
        if self.proxy:
            await self.proxy.close()
        if self.dns:
            self.dns.close()

    def on_pod_change(self, uid: str) -> None:
        self.kick()

    def kick(self) -> None:
        self._wake.set()

    def set_desired(self, desired: dict[Key, Obj], rev: Any, reconcile_id: str) -> None:
        changed = False
        for key, obj in desired.items():
            if key[0] != "Deployment":
                continue
            before = self.desired.get(key)
            if before is None or before["spec"].get("template") != obj["spec"].get("template"):
                # the commit that changed the pod template is the revision's CHANGE-CAUSE, even
                # when the rollout starts later (a paused Deployment, resumed by another commit)
                self.template_commits["/".join(key[1:])] = rev.to_dict()
                changed = True
        if changed:
            self.store.set_meta(templateCommits=self.template_commits)
        self.desired = desired
        self.revision = rev.sha
        self.revision_info = rev.to_dict()
        self.reconcile_id = reconcile_id
        self.kick()

    async def loop(self) -> None:
        while not self.d.stopping.is_set():
            timeout = MIN_PASS_INTERVAL
            if self._requeue_at is not None:
                timeout = max(0.01, min(timeout, self._requeue_at - time.time()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            try:
                await self.pass_once()
            except Exception as e:  # a pass must never kill the daemon
                self.d.log.exception("reconcile_pass_failed", error=str(e))

    # -- revision checks that need live state ---------------------------------------------
    def check_revision(self, manifests: list[Manifest]) -> list[ManifestError]:
        """Errors a revision would cause against the state that runs (service allocations)."""
        services = [m for m in manifests if m.obj["kind"] == "Service"]
        _, errors = svcctl.allocate(
            [m.obj for m in services], self.allocations, self.d.opts.service_cidr, reserved_ips=self._reserved_ips()
        )
        by_key = {(m.obj["metadata"]["namespace"], m.obj["metadata"]["name"]): m for m in services}
        out = []
        for key, fld, msg in errors:
            m = by_key.get(tuple(key))  # type: ignore[arg-type]
            src = m.source if m else None
            out.append(
                ManifestError(
                    src.file if src else "?",
                    msg,
                    line=src.line if src else 0,
                    document=src.document if src else 0,
                    field=fld,
                )
            )
        return out

    # -- the pass ----------------------------------------------------------------------------
    async def pass_once(self) -> None:
        now = time.time()
        self.passes += 1
        self._requeue_at = None
        self._pod_statuses()
        self._sync_desired(now)
        self._sync_deployments(now)
        self._sync_replicasets(now)
        self._collect_garbage(now)
        await self._sync_services()
        await self._sync_runtime()
        self._persist()

    def _event(self, type_: str, reason: str, kind: str, namespace: str, name: str, message: str) -> None:
        self._events.append(
            {
                "time": time.time(),
                "type": type_,
                "reason": reason,
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "message": message,
                "reconcile_id": self.reconcile_id,
                "revision": self.revision,
            }
        )
        self.d.log.info(
            "event",
            type=type_,
            reason=reason,
            kind=kind,
            namespace=namespace,
            name=name,
            message=message,
            reconcile_id=self.reconcile_id,
            commit=(self.revision or "")[:7],
        )

    def _requeue(self, after: float | None) -> None:
        if after is None:
            return
        at = time.time() + max(0.0, after)
        if self._requeue_at is None or at < self._requeue_at:
            self._requeue_at = at

    def _pod_statuses(self) -> None:
        for pod in self.cluster.of_kind("Pod"):
            st = self.runtime.status(pod["metadata"]["uid"])
            if st is not None and st != pod.get("status"):
                self._container_events(pod, st)
                self.cluster.put({**pod, "status": st})

    def _container_events(self, pod: Obj, status: Obj) -> None:
        """A Warning event each time a container starts waiting for a bad reason (once per change)."""
        before = {
            c["name"]: ((c.get("state") or {}).get("waiting") or {}).get("reason")
            for c in (pod.get("status") or {}).get("containerStatuses") or []
        }
        m = pod["metadata"]
        for c in status.get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in WARNING_REASONS and before.get(c["name"]) != reason:
                self._event(
                    "Warning",
                    reason,
                    "Pod",
                    m["namespace"],
                    m["name"],
                    f"container {c['name']}: {waiting.get('message') or reason}",
                )

    def _new_object(self, d: Obj, now: float) -> Obj:
        obj = copy.deepcopy(d)
        meta = obj["metadata"]
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = to_rfc3339(now)
        if obj["kind"] != "Pod":
            meta["generation"] = 1
        obj["status"] = {"phase": "Pending"} if obj["kind"] == "Pod" else {}
        return obj

    def _sync_desired(self, now: float) -> None:
        for key, d in self.desired.items():
            live = self.cluster.get(key)
            if live is None:
                self.cluster.put(self._new_object(d, now))
                self._event("Normal", "Created", key[0], key[1], key[2], f"created from git ({key[0]} {key[2]})")
                continue
            if key[0] == "Pod" and live["spec"] != d["spec"]:
                # pod specs are immutable in Kubernetes: a changed bare pod is replaced
                self._terminate(live, now, keep=False)
                self.cluster.put(self._new_object(d, now))
                self._event("Normal", "Replaced", "Pod", key[1], key[2], "pod spec changed in git: replaced")
                continue
            lm, dm = live["metadata"], d["metadata"]
            spec_changed = live.get("spec") != d.get("spec")
            managed = {k: v for k, v in (lm.get("annotations") or {}).items() if k.startswith(MANAGED_PREFIX)}
            ann_changed = _user_annotations(lm) != _user_annotations(dm)
            if spec_changed or ann_changed or lm.get("labels") != dm.get("labels"):
                new = copy.deepcopy(live)
                new["metadata"]["labels"] = copy.deepcopy(dm.get("labels", {}))
                new["metadata"]["annotations"] = {**copy.deepcopy(dm.get("annotations", {})), **managed}
                if "spec" in d:
                    new["spec"] = copy.deepcopy(d["spec"])
                if (spec_changed or ann_changed) and key[0] != "Pod":
                    new["metadata"]["generation"] = int(lm.get("generation", 1)) + 1
                self.cluster.put(new)
        for obj in self.cluster:
            key = key_of(obj)
            if key[0] in WORKLOAD_KINDS and key not in self.desired and controller_uid(obj) is None:
                if key[0] == "Pod":
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._terminate(obj, now)
                        self._event("Normal", "Pruned", "Pod", key[1], key[2], "removed from git")
                else:
                    self.cluster.delete(key)
                    self._event("Normal", "Pruned", key[0], key[1], key[2], "removed from git")

    def _sync_deployments(self, now: float) -> None:
        # The deployment controller reads availability from the ReplicaSets' statuses: bring them
        # up to the pods just observed first. A status one pass old held every rollout step back
        # until the next pass (up to MIN_PASS_INTERVAL), and after a pod turned unready it could
        # let a step remove one old pod too many.
        for rs in self.cluster.of_kind("ReplicaSet"):
            owned, _, _ = rsctl.claim_pods(rs, self.cluster.of_kind("Pod", rs["metadata"]["namespace"]))
            st = rsctl.calculate_status(rs, owned, now)
            if st != rs.get("status"):
                self.cluster.put({**rs, "status": st})
        for dep in self.cluster.of_kind("Deployment"):
            ns = dep["metadata"]["namespace"]
            try:
                res = deployctl.sync_deployment(
                    dep, self.cluster.of_kind("ReplicaSet", ns), self.cluster.of_kind("Pod", ns), now, new_uid
                )
            except Exception as e:
                self.d.log.exception("deployment_sync_failed", name=dep["metadata"]["name"], error=str(e))
                continue
            for rs in res.create_rs + res.update_rs:
                self.cluster.put(self._with_change_cause(rs))
            for name in res.delete_rs:
                self.cluster.delete(("ReplicaSet", ns, name))
            new_dep = dep
            if res.deployment_annotations is not None:
                new_dep = copy.deepcopy(dep)
                new_dep["metadata"]["annotations"] = res.deployment_annotations
            if res.status != dep.get("status"):
                new_dep = {**new_dep, "status": res.status}
            if new_dep is not dep:
                self.cluster.put(new_dep)
            for ev in res.events:
                self._event(ev.type, ev.reason, ev.kind, ev.namespace, ev.name, ev.message)
            self._requeue(res.requeue_after)

    def _with_change_cause(self, rs: Obj) -> Obj:
        """Record on a ReplicaSet the commit that made it the Deployment's new revision."""
        ann = rs["metadata"].get("annotations") or {}
        old = self.cluster.get(key_of(rs))
        old_rev = ((old or {}).get("metadata", {}).get("annotations") or {}).get(REVISION_ANNOTATION)
        if ann.get(REVISION_ANNOTATION) == old_rev and old is not None:
            for k in (keys.COMMIT, keys.CHANGE_CAUSE):
                if k in (old["metadata"].get("annotations") or {}):
                    ann[k] = old["metadata"]["annotations"][k]
            rs["metadata"]["annotations"] = ann
            return rs
        owner = next(
            (r["name"] for r in rs["metadata"].get("ownerReferences") or [] if r.get("kind") == "Deployment"), None
        )
        info = self.template_commits.get(f"{rs['metadata']['namespace']}/{owner}") or self.revision_info or {}
        if info.get("sha"):
            ann[keys.COMMIT] = info["sha"]
            ann[keys.CHANGE_CAUSE] = f"{info['sha'][:7]} {info.get('author', '')}: {info.get('subject', '')}"
        rs["metadata"]["annotations"] = ann
        return rs

    def _new_pod_name(self) -> tuple[str, str]:
        return "".join(self._rng.choice(ALPHABET) for _ in range(5)), new_uid()

    def _sync_replicasets(self, now: float) -> None:
        for rs in self.cluster.of_kind("ReplicaSet"):
            ns = rs["metadata"]["namespace"]
            pods = self.cluster.of_kind("Pod", ns)
            try:
                res = rsctl.sync_replicaset(rs, pods, now, self._new_pod_name)
            except Exception as e:
                self.d.log.exception("replicaset_sync_failed", name=rs["metadata"]["name"], error=str(e))
                continue
            by_uid = {p["metadata"]["uid"]: p for p in pods}
            for pod in res.create:
                pod.setdefault("status", {"phase": "Pending"})
                self.cluster.put(pod)
            for uid in res.adopt:
                p = copy.deepcopy(by_uid[uid])
                p["metadata"]["ownerReferences"] = [owner_ref(rs)]
                self.cluster.put(p)
            for uid in res.release:
                p = copy.deepcopy(by_uid[uid])
                p["metadata"]["ownerReferences"] = [
                    r for r in p["metadata"].get("ownerReferences", []) if r.get("uid") != rs["metadata"]["uid"]
                ]
                self.cluster.put(p)
            for uid in res.delete:
                if uid in by_uid:
                    self._terminate(by_uid[uid], now)
            if res.status != rs.get("status"):
                self.cluster.put({**rs, "status": res.status})
            for ev in res.events:
                self._event(ev.type, ev.reason, ev.kind, ev.namespace, ev.name, ev.message)
            self._requeue(rsctl.requeue_after(rs, self.cluster.of_kind("Pod", ns), now))

    def _collect_garbage(self, now: float) -> None:
        while True:
            uids = set(self.cluster.by_uid())
            gone = [o for o in self.cluster if (cu := controller_uid(o)) is not None and cu not in uids]
            if not gone:
                return
            progressed = False
            for o in gone:
                if o["kind"] == "Pod":
                    if not o["metadata"].get("deletionTimestamp"):
                        self._terminate(o, now)
                    # a terminating orphan stays until the runtime has stopped it
                    continue
                self.cluster.delete(key_of(o))
                progressed = True
            if not progressed:
                return

    # -- pods in the runtime --------------------------------------------------------------------
    def _terminate(self, pod: Obj, now: float, keep: bool = True) -> None:
        """Mark a pod terminating; the runtime stops it after the endpoints have dropped it."""
        if keep:
            p = copy.deepcopy(pod)
            p["metadata"]["deletionTimestamp"] = to_rfc3339(now)
            p["metadata"]["deletionGracePeriodSeconds"] = p["spec"].get("terminationGracePeriodSeconds", 30)
            self.cluster.put(p)
        else:
            # replaced under the same name: gone from the cluster now, stopped by _sync_runtime,
            # after _sync_services has taken it out of the endpoints and the proxy
            self.cluster.delete(key_of(pod))
            self.__dict__.setdefault("_stop_after_services", []).append(pod["metadata"]["uid"])

    def _stop_in_runtime(self, uid: str, key: Key | None, grace: float | None = None) -> None:
        if uid in self._terminating:
            return

        async def stop() -> None:
            try:
                if uid in self._was_endpoint and not self.d.stopping.is_set():
                    # the proxy no longer sends it new connections; give the ones it has just
                    # opened time to be accepted before the app stops listening (what a
                    # preStop sleep does on Kubernetes)
                    await asyncio.sleep(ENDPOINT_DRAIN_SECONDS)
                await self.runtime.delete_pod(uid, grace)
            except Exception as e:
                self.d.log.exception("pod_stop_failed", uid=uid, error=str(e))
            finally:
                self._launched.discard(uid)
                self._was_endpoint.discard(uid)
                self._terminating.pop(uid, None)
                if key is not None:
                    live = self.cluster.get(key)
                    if live is not None and live["metadata"].get("uid") == uid:
                        self.cluster.delete(key)
                        self._persist()
                self.kick()

        self._terminating[uid] = asyncio.create_task(stop())

    async def delete_pod(self, namespace: str, name: str, grace: float | None = None) -> bool:
        """`gitship delete pod`: stop it now; its owner (or git) decides what comes next."""
        key = ("Pod", namespace, name)
        pod = self.cluster.get(key)
        if pod is None:
            return False
        uid = pod["metadata"]["uid"]
        if not pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod, time.time())
            self._event("Normal", "Killing", "Pod", namespace, name, "deleted by user")
        await self._sync_services()
        self._stop_in_runtime(uid, key, grace)
        self._persist()
        task = self._terminating.get(uid)
        if task:
            await asyncio.shield(task)
        self.kick()
        return True

    def _pod_for_runtime(self, pod: Obj) -> Obj:
        p = copy.deepcopy(pod)
        env = svcctl.service_env(
            self.cluster.of_kind("Service", p["metadata"]["namespace"]), self.allocations, p["metadata"]["namespace"]
        )
        if env:
            for c in p["spec"].get("containers", []):
                own = {e["name"] for e in c.get("env") or []}
                c["env"] = [e for e in env if e["name"] not in own] + list(c.get("env") or [])
        return p

    async def _sync_runtime(self) -> None:
        for uid in self.__dict__.pop("_stop_after_services", []):
            self._stop_in_runtime(uid, key=None)
        running = self.runtime.pods()
        live_uids = set()
        for pod in self.cluster.of_kind("Pod"):
            uid = pod["metadata"]["uid"]
            live_uids.add(uid)
            if pod["metadata"].get("deletionTimestamp"):
                if uid in running or uid in self._launched:
                    self._stop_in_runtime(uid, key_of(pod))
                else:
                    self.cluster.delete(key_of(pod))
                continue
            if uid not in self._launched and uid not in running:
                self._launched.add(uid)
                try:
                    await self.runtime.create_pod(self._pod_for_runtime(pod))
                except Exception as e:
                    self.d.log.exception("pod_start_failed", name=pod["metadata"]["name"], error=str(e))
                    self._event(
                        "Warning",
                        "FailedCreatePodSandBox",
                        "Pod",
                        pod["metadata"]["namespace"],
                        pod["metadata"]["name"],
                        str(e),
                    )
                    continue
                st = self.runtime.status(uid)
                if st is not None:
                    self.cluster.put({**pod, "status": st})
        for uid in list(running):
            if uid not in live_uids and uid not in self._terminating:
                self.d.log.info("pod_unwanted_stopped", uid=uid)
                self._stop_in_runtime(uid, None)

    # -- services ------------------------------------------------------------------------------
    async def _sync_services(self) -> None:
        services = self.cluster.of_kind("Service")
        allocs, errors = svcctl.allocate(
            services, self.allocations, self.d.opts.service_cidr, reserved_ips=self._reserved_ips()
        )
        for key, fld, msg in errors:
            self.d.log.warning("service_allocation_failed", service="/".join(key), field=fld, error=msg)
        if allocs != self.allocations:
            self.allocations = allocs
            self.store.set_meta(
                allocations={
                    f"{ns}/{n}": {"clusterIP": a.cluster_ip, "nodePorts": a.node_ports} for (ns, n), a in allocs.items()
                }
            )
        lb_ip = "127.0.0.1" if self.d.opts.node_address in ("0.0.0.0", "") else self.d.opts.node_address
        views, endpoints = [], []
        wanted_ep: set[Key] = set()
        for svc in services:
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            alloc = allocs.get((ns, name))
            if alloc is None:
                continue
            view = svcctl.service_view(svc, alloc, lb_ip)
            if view != svc:
                self.cluster.put(view)
            views.append(view)
            ep = svcctl.endpoints_for(view, [p for p in self.cluster.of_kind("Pod", ns)])
            if ep is not None:
                wanted_ep.add(key_of(ep))
                for subset in ep.get("subsets") or []:
                    for a in subset.get("addresses") or []:
                        if (a.get("targetRef") or {}).get("uid"):
                            self._was_endpoint.add(a["targetRef"]["uid"])
                live = self.cluster.get(key_of(ep))
                if live is None:
                    ep["metadata"]["uid"] = new_uid()
                    ep["metadata"]["creationTimestamp"] = to_rfc3339(time.time())
                    self.cluster.put(ep)
                else:
                    merged = {
                        **ep,
                        "metadata": {
                            **ep["metadata"],
                            "uid": live["metadata"].get("uid"),
                            "creationTimestamp": live["metadata"].get("creationTimestamp"),
                        },
                    }
                    if merged != live:
                        self.cluster.put(merged)
        for ep in self.cluster.of_kind("Endpoints"):
            k = key_of(ep)
            if k not in wanted_ep and k not in self.desired:
                self.cluster.delete(k)
        endpoints = self.cluster.of_kind("Endpoints")
        await self._program_proxy(views, {key_of(e): e for e in endpoints})
        self._zone = build_zone(views, endpoints, self.cluster.of_kind("Pod"))

    async def _program_proxy(self, views: list[Obj], endpoints: dict[Key, Obj]) -> None:
        wanted: set[str] = set()
        node = self.d.opts.node_address or "0.0.0.0"
        for svc in views:
            spec = svc["spec"]
            ip = spec.get("clusterIP")
            if spec.get("type") == "ExternalName" or not ip or ip == "None":
                continue
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            ep = endpoints.get(("Endpoints", ns, name))
            await self._expose_ip(ip)
            for port in spec.get("ports", []):
                pkey = f"{ns}/{name}:{port.get('name') or port['port']}"
                listen = [(ip, int(port["port"]))]
                if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort"):
                    listen.append((node, int(port["nodePort"])))
                if spec.get("type") == "LoadBalancer":
                    listen.append((node, int(port["port"])))
                backends = backends_for(ep, port)
                wanted.add(pkey)
                try:
                    await self.proxy.set_service(
                        pkey,
                        listen,
                        backends,
                        spec.get("sessionAffinity", "None"),
                        int(
                            ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
                                "timeoutSeconds", 10800
                            )
                        ),
                    )
                except OSError as e:
                    self.d.log.warning("service_listen_failed", service=pkey, error=str(e))
        for pkey in list(self._proxied - wanted):
            await self.proxy.remove(pkey)
        self._proxied = wanted

    async def _expose_ip(self, ip: str) -> None:
        """Let the runtime make a ClusterIP reachable from its pods (Docker: an address on its bridge)."""
        hook = getattr(self.runtime, "expose_service_ip", None)
        if hook is not None and ip not in self._exposed:
            try:
                await hook(ip)
                self._exposed.add(ip)
            except Exception as e:
                self.d.log.warning("service_ip_expose_failed", ip=ip, error=str(e))

    # -- persistence ---------------------------------------------------------------------------
    def _persist(self) -> None:
        ups, dels = self.cluster.take_changes()
        if ups or dels:
            self.store.write_cluster(ups, dels)
        if self._events:
            self.store.add_events(self._events)
            self._events = []


def _user_annotations(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(MANAGED_PREFIX)}


def backends_for(ep: Obj | None, port: dict[str, Any]) -> list[tuple[str, int]]:
    if not ep:
        return []
    out = []
    pname = port.get("name") or ""
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or []
        match = next((p for p in ports if (p.get("name") or "") == pname), ports[0] if len(ports) == 1 else None)
        if match is None:
            continue
        for a in subset.get("addresses") or []:
            out.append((a["ip"], int(match["port"])))
    return out
