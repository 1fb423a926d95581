"""Figure 11 of bench/run.py: the web view (reconciler/web) with 100 and 1,000 pods.

The web view's own server (``WebView`` on a free loopback port, on an event loop in a thread) over
a daemon's state with N pods: 10 Deployments of N/10 replicas each, their ReplicaSets, Services and
Endpoints, shaped as the reconcile pass makes them (the live objects are synthetic: a daemon running
1,000 pods on this shared machine would measure the pods, not the page). Two numbers per page:

- server time: request to last byte over loopback (aiohttp client), median of ``runs``;
- first page load in headless Chromium (Debian's chromium + chromedriver, Selenium): the Navigation
  Timing of the page's first visit in a fresh browser (request start to the load event), and its
  response part (request start to response end).

Run alone: ``python3 bench/figures_web.py [--quick]`` (prints the rows).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, row

PAGES = ("/", "/objects", "/rollouts", "/history", "/log", "/objects/ReplicaSet/default/app0-5d9f7c")
T = "2026-11-30T08:00:00Z"


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _pod(i: int, app: str, rs: str) -> dict[str, Any]:
    name = f"{rs}-{i:05x}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": T,
            "labels": {"app": app, "pod-template-hash": "5d9f7c"}, "generateName": f"{rs}-",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}",
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{"name": "c", "image": "kubia:v1", "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {},
                            "terminationMessagePath": "/dev/termination-log"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "nodeName": "node", "schedulerName": "default-scheduler",
        },
        "status": {
            "phase": "Running", "podIP": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "hostIP": "10.0.0.1",
            "startTime": T, "qosClass": "BestEffort",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": T}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": "c", "ready": True, "started": True, "restartCount": 0, "image": "kubia:v1",
                                   "imageID": "", "containerID": f"gitship://{name}",
                                   "state": {"running": {"startedAt": T}}}],
        },
    }  # fmt: skip


def objects(pods: int, deployments: int = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    per = pods // deployments
    for d in range(deployments):
        app, rs = f"app{d}", f"app{d}-5d9f7c"
        template = {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "kubia:v1"}]}}
        st = {"replicas": per, "readyReplicas": per, "availableReplicas": per, "observedGeneration": 1}
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": app,
                    "namespace": "default",
                    "uid": f"uid-{app}",
                    "generation": 1,
                    "creationTimestamp": T,
                },
                "spec": {"replicas": per, "selector": {"matchLabels": {"app": app}}, "template": template},
                "status": {
                    **st,
                    "updatedReplicas": per,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                    ],
                },
            }
        )
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs,
                    "namespace": "default",
                    "uid": f"uid-{rs}",
                    "generation": 1,
                    "creationTimestamp": T,
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [{"kind": "Deployment", "name": app, "uid": f"uid-{app}", "controller": True}],
                },
                "spec": {"replicas": per, "template": copy.deepcopy(template)},
                "status": {**st, "fullyLabeledReplicas": per},
            }
        )
        pods_here = [_pod(d * per + i, app, rs) for i in range(per)]
        out += pods_here
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": app, "namespace": "default", "uid": f"s-{app}"},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": f"10.96.0.{d + 20}",
                    "ports": [{"port": 80, "targetPort": 8080}],
                    "selector": {"app": app},
                },
            }
        )
        addrs = [
            {"ip": p["status"]["podIP"], "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}} for p in pods_here
        ]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": app, "namespace": "default"},
                "subsets": [{"addresses": addrs, "ports": [{"port": 8080}]}],
            }
        )
    return out


class BenchDaemon:
    """What the web view reads of a daemon, over a real store and a real repository."""

    def __init__(self, work: Path, pods: int):
        from reconciler.cluster import Cluster
        from reconciler.store import Store

        self.state_dir, self.repo_dir = str(work / "state"), str(work / "repo")
        os.makedirs(self.repo_dir, exist_ok=True)
        ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        subprocess.run(["git", "-C", self.repo_dir, "init", "-q", "-b", "main"], check=True)
        for i in range(20):
            subprocess.run(
                ["git", "-C", self.repo_dir, *ident, "commit", "-q", "--allow-empty", "-m", f"c{i}"], check=True
            )
        self.store = Store(self.state_dir)
        objs = objects(pods)
        self.store.set_meta(source={"url": self.repo_dir, "branch": "main", "path": ""})
        self.reconciler: Any = type("R", (), {})()
        self.reconciler.cluster = Cluster(objs)
        self.reconciler.desired = {
            k: o for k, o in self.reconciler.cluster.objects.items() if k[0] in ("Deployment", "Service")
        }
        self.reconciler.log, self.reconciler.passes = _Log(), 1
        self.runtime: Any = type("RT", (), {"info": lambda s: {"name": "inprocess"}})()
        self.plane: Any = type("P", (), {"info": lambda s: {"dataPlane": "nftables"}})()
        self.opts: Any = type("O", (), {"path": "", "web_addr": "127.0.0.1:0"})()
        self.log = _Log()
        with open(os.path.join(self.state_dir, "reconcile.log"), "w") as f:
            for i in range(2000):
                f.write('{"event":"pod_started","level":"info","timestamp":"%s","kind":"Pod","name":"p%d"}\n' % (T, i))

    def wake_source(self) -> None:
        pass

    def writer(self) -> Any:
        from reconciler.gitops import RepoWriter

        return RepoWriter(self.repo_dir, "", "main")


class Served:
    """The daemon's state and the web view on their own event loop in a thread (the store, like the
    daemon's, is used by the loop's thread only)."""

    def __init__(self, work: Path, pods: int):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(work, pods), self.loop).result(120)

    async def _start(self, work: Path, pods: int) -> None:
        from reconciler.web.server import WebView

        self.d = BenchDaemon(work, pods)
        self.view = WebView(self.d, "127.0.0.1:0")
        await self.view.start()

    async def _close(self) -> None:
        await self.view.close()
        self.d.store.close()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


def server_times(url: str, state_dir: str, runs: int) -> dict[str, float]:
    import http.cookiejar
    import urllib.request

    from reconciler.web.auth import issue_token

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/login?token={issue_token(state_dir)}", timeout=30).read()
    out = {}
    for page in PAGES:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            with opener.open(url + page, timeout=60) as r:
                r.read()
                assert r.status == 200, (page, r.status)
            times.append(time.perf_counter() - t0)
        out[page] = statistics.median(times)
    return out


def browser_loads(url: str, state_dir: str, runs: int) -> dict[str, tuple[float, float]]:
    """Page -> (first load: request start to load event, its response part) in headless Chromium with
    its cache emptied before each load (median of ``runs``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from reconciler.web.auth import issue_token

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    drv = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    out = {}
    try:
        drv.get(f"{url}/login?token={issue_token(state_dir)}")
        for page in PAGES:
            loads, responses = [], []
            for _ in range(runs):
                drv.execute_cdp_cmd("Network.clearBrowserCache", {})
                drv.get("about:blank")
                drv.get(url + page)
                nav = drv.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    "return [n.loadEventEnd - n.requestStart, n.responseEnd - n.requestStart];"
                )
                loads.append(float(nav[0]) / 1000)
                responses.append(float(nav[1]) / 1000)
            out[page] = (statistics.median(loads), statistics.median(responses))
    finally:
        drv.quit()
    return out


def fig11_web(work: Path, quick: bool) -> list[Row]:
    runs = 5 if quick else 20
    rows: list[Row] = []
    have_browser = bool(shutil.which("chromium") and shutil.which("chromedriver"))
    for pods in (100, 1000):
        served = Served(work / f"f11-{pods}", pods)
        try:
            url, state_dir = served.view.url, served.d.state_dir
            server = server_times(url, state_dir, runs)
            loads = browser_loads(url, state_dir, runs) if have_browser else {}
        finally:
            served.close()
        for page in PAGES:
            load = loads.get(page)
            value = f"server {server[page] * 1000:.1f} ms"
            if load:
                value += f"; first load {load[0] * 1000:.0f} ms (response {load[1] * 1000:.0f} ms)"
            goal = "first load < 1 s" if load else ""
            rows.append(
                row(
                    f"11 web view {page}, {pods} pods (median of {runs})",
                    value,
                    "",
                    goal,
                    load[0] < 1 if load else None,
                )
            )
    return rows


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from reconciler import log as gitship_log

    gitship_log.configure(None, console=None)
    with tempfile.TemporaryDirectory(prefix="gitship-bench-web-") as tmp:
        for r in fig11_web(Path(tmp), args.quick):
            met = "" if r["met"] is None else ("yes" if r["met"] else "**NO**")
            print(f"| {r['figure']} | {r['value']} | {r['baseline']} | {r['goal']} | {met} |")
