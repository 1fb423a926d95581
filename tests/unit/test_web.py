"""The web view's pure parts (health, tree, rollout picture), its login tokens and sessions, and its
server on a fake daemon: 401 without a session, 403 without the CSRF token, a token works once,
and every page (and its live fragment) renders, also with 1,000 pods."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.web import auth, health, picture, tree


def dep(name: str = "web", want: int = 3, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "uid": f"d-{name}", "generation": 2},
        "spec": {
            "replicas": want,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "img:v2"}]},
            },
        },
        "status": {"observedGeneration": 2, **status},
    }


def rs(name: str, owner: str, want: int, image: str, rev: int, **status: Any) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": "default", "uid": f"rs-{name}", "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": str(rev)},
            "ownerReferences": [{"kind": "Deployment", "name": owner, "uid": f"d-{owner}", "controller": True}],
            "creationTimestamp": f"2026-01-01T00:00:0{rev}Z",
        },
        "spec": {
            "replicas": want,
            "template": {"metadata": {"labels": {"app": owner}}, "spec": {"containers": [{"name": "c", "image": image}]}},  # noqa: E501
        },
        "status": {"observedGeneration": 1, **status},
    }  # fmt: skip


def pod(name: str, owner_rs: str, ready: bool = True, waiting: str = "") -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "c", "ready": ready, "restartCount": 0, "image": "img"}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": f"back-off {waiting}"}}
    return {
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": f"p-{name}",
            "ownerReferences": [{"kind": "ReplicaSet", "name": owner_rs, "uid": f"rs-{owner_rs}", "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "image": "img"}]},
        "status": {
            "phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [cs],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }  # fmt: skip


# ------------------------------------------------------------------ health
def test_deployment_health() -> None:
    assert health.deployment(dep(updatedReplicas=3, replicas=3, availableReplicas=3)).status == "Healthy"
    h = health.deployment(dep(updatedReplicas=1, replicas=4, availableReplicas=3))
    assert h.status == "Progressing" and "1 out of 3 new replicas" in h.message
    assert health.deployment(dep(updatedReplicas=3, replicas=4, availableReplicas=3)).status == "Progressing"
    stuck = dep(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    assert health.deployment(stuck).status == "Degraded"
    paused = dep()
    paused["spec"]["paused"] = True
    assert health.deployment(paused).status == "Suspended"
    unobserved = dep(updatedReplicas=3, replicas=3, availableReplicas=3)
    unobserved["metadata"]["generation"] = 3
    assert health.deployment(unobserved).status == "Progressing"


def test_pod_replicaset_service_job_health() -> None:
    assert health.pod(pod("a", "r")).status == "Healthy"
    assert health.pod(pod("a", "r", ready=False)).status == "Progressing"
    assert health.pod(pod("a", "r", ready=False, waiting="CrashLoopBackOff")).status == "Degraded"
    failed = pod("a", "r")
    failed["status"]["phase"] = "Failed"
    assert health.pod(failed).status == "Degraded"
    assert health.replicaset(rs("r", "web", 2, "i", 1, availableReplicas=1)).status == "Progressing"
    assert health.replicaset(rs("r", "web", 2, "i", 1, availableReplicas=2)).status == "Healthy"
    lb = {"kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}}
    assert health.health(lb) == health.Health("Progressing", "Waiting for the load balancer's address")
    job = {"kind": "Job", "spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert health.health(job).status == "Healthy"  # type: ignore[union-attr]
    assert health.health(None, "Deployment").status == "Missing"  # type: ignore[union-attr]
    assert health.health({"kind": "ConfigMap"}) is None
    assert health.worst(["Healthy", "Progressing", "Degraded"]) == "Degraded"


# ------------------------------------------------------------------ tree
def test_tree_deployment_replicasets_pods_service_endpoints_missing() -> None:
    d = dep(want=2, updatedReplicas=2, replicas=2, availableReplicas=2)
    r = rs("web-1", "web", 2, "img:v2", 1, availableReplicas=2, readyReplicas=2)
    svc = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "s"},
        "spec": {"ports": [{"port": 80}]},
    }
    ep = {
        "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1", "targetRef": {"name": "p1"}}], "ports": [{"port": 8080}]}],
    }  # fmt: skip
    objs = [pod("p1", "web-1"), pod("p2", "web-1", ready=False), r, d, svc, ep]
    sources = {("Deployment", "default", "web"): ("apps/web.yaml", 3)}
    forest = tree.build(objs, [("Deployment", "default", "web"), ("ConfigMap", "default", "gone")], sources)
    kinds = [(n.kind, n.name) for n in forest]
    assert kinds == [("Deployment", "web"), ("Service", "web"), ("ConfigMap", "gone")]
    top = forest[0]
    assert top.source == ("apps/web.yaml", 3) and top.health == "Healthy"
    assert [c.name for c in top.children] == ["web-1"]
    assert [p.name for p in top.children[0].children] == ["p1", "p2"]
    assert tree.rollup(top) == "Progressing"  # p2 is not ready
    assert [(c.kind, c.name) for c in forest[1].children] == [("Endpoint", "10.0.0.1:8080")]
    assert forest[2].health == "Missing"
    table = tree.counts(objs, [("ConfigMap", "default", "gone")])
    assert table["Pod"] == {"Healthy": 1, "Progressing": 1} and table["ConfigMap"] == {"Missing": 1}
    assert "Endpoints" not in table
    assert tree.health_totals(table)["Healthy"] == 4
    assert tree.find(forest, ("Pod", "default", "p2")) is not None


# ------------------------------------------------------------------ picture
def test_rollout_model_and_svg_mid_rollout() -> None:
    d = dep(replicas=4, updatedReplicas=1, availableReplicas=3)
    old = rs("web-old", "web", 2, "img:v1", 1, replicas=3, readyReplicas=3, availableReplicas=3)
    new = rs("web-new", "web", 2, "img:v2", 2, replicas=1, readyReplicas=0, availableReplicas=0)
    new["spec"]["template"] = d["spec"]["template"]
    r = picture.model(d, [old, new])
    assert (r.desired, r.max_surge, r.max_unavailable, r.max_total, r.min_available) == (3, 1, 0, 4, 3)
    assert [b.name for b in r.bars] == ["web-new", "web-old"] and r.bars[0].new and not r.done
    assert r.old_pods == 3
    text = picture.svg(r)
    assert text.startswith("<svg") and 'data-new-rs="web-new"' in text and 'data-done="false"' in text
    assert "max pods 4" in text and "min available 3" in text and "<title" in text


# ------------------------------------------------------------------ auth
def test_login_token_once_and_expiry(tmp_path: Path) -> None:
    t = auth.issue_token(str(tmp_path))
    assert auth.redeem(str(tmp_path), t) and not auth.redeem(str(tmp_path), t)
    old = auth.issue_token(str(tmp_path))
    assert not auth.redeem(str(tmp_path), old, now=os.path.getmtime(tmp_path) + auth.TOKEN_TTL + 100)
    assert not auth.redeem(str(tmp_path), "") and not auth.redeem(str(tmp_path), "../../etc/passwd")
    assert os.stat(auth.login_dir(str(tmp_path))).st_mode & 0o777 == 0o700
    sessions = auth.Sessions()
    sid, s = sessions.create(now=100.0)
    assert sessions.get(sid, now=101.0) is s and sessions.get(sid, now=100.0 + auth.SESSION_TTL + 1) is None
    assert auth.csrf_ok(s, s.csrf) and not auth.csrf_ok(s, "") and not auth.csrf_ok(s, None)


# ------------------------------------------------------------------ server on a fake daemon
class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class FakeDaemon:
    def __init__(self, tmp: Path, pods: int = 3) -> None:
        from reconciler.cluster import Cluster
        from reconciler.store import Store

        self.state_dir = str(tmp / "state")
        self.repo_dir = str(tmp / "repo")
        os.makedirs(self.repo_dir)
        ident = ["-c", "user.name=T", "-c", "user.email=t@e"]
        for args in (["init", "-q", "-b", "main"], [*ident, "commit", "-q", "--allow-empty", "-m", "first"]):
            subprocess.run(["git", "-C", self.repo_dir, *args], check=True)
        self.store = Store(self.state_dir)
        d = dep(updatedReplicas=pods, replicas=pods, availableReplicas=pods, readyReplicas=pods)
        d["spec"]["replicas"] = pods
        r = rs("web-1", "web", pods, "img:v2", 1, replicas=pods, readyReplicas=pods, availableReplicas=pods)
        r["spec"]["template"] = d["spec"]["template"]
        objs = [d, r] + [pod(f"web-1-{i:04d}", "web-1") for i in range(pods)]
        self.reconciler = type("R", (), {})()
        self.reconciler.cluster = Cluster(objs)
        self.reconciler.desired = {("Deployment", "default", "web"): d}
        self.reconciler.log = _Log()
        self.reconciler.passes = 1
        self.runtime = type("RT", (), {"info": lambda s: {"name": "fake"}})()
        self.plane = type("P", (), {"info": lambda s: {"dataPlane": "proxy"}})()
        self.opts = type("O", (), {"path": "", "web_addr": "127.0.0.1:0"})()
        self.log = _Log()
        self.woken = 0
        self.store.set_meta(source={"url": self.repo_dir, "branch": "main", "path": ""})

    def wake_source(self) -> None:
        self.woken += 1

    def writer(self) -> Any:
        from reconciler.gitops import RepoWriter

        return RepoWriter(self.repo_dir, "", "main")


async def _client(d: FakeDaemon) -> Any:
    from aiohttp.test_utils import TestClient, TestServer

    from reconciler.web.server import WebView

    view = WebView(d, "127.0.0.1:0")
    client = TestClient(TestServer(view.app()))
    await client.start_server()
    return view, client


async def _login(d: FakeDaemon, client: Any) -> str:
    r = await client.get("/login?token=" + auth.issue_token(d.state_dir), allow_redirects=False)
    assert r.status == 303
    set_cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    page = await (await client.get("/rollouts")).text()
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


PAGES = [
    *("/", "/objects", "/objects/Deployment/default/web", "/objects/Pod/default/web-1-0000", "/rollouts"),
    *("/rollouts/default/web", "/history", "/log", "/log?level=warning&commit=abc&object=deployment/web"),
]


def test_server_security_and_pages(tmp_path: Path) -> None:
    d = FakeDaemon(tmp_path)

    async def run() -> None:
        view, client = await _client(d)
        try:
            for path in [*PAGES, "/events", "/static/style.css"]:
                assert (await client.get(path)).status == 401, path
            assert (await client.post("/rollouts/default/web/pause", data={"csrf": "x"})).status == 401
            token = auth.issue_token(d.state_dir)
            assert (await client.get("/login?token=" + token, allow_redirects=False)).status == 303
            client.session.cookie_jar.clear()
            assert (await client.get("/login?token=" + token, allow_redirects=False)).status == 401  # once
            csrf = await _login(d, client)
            for path in PAGES:
                r = await client.get(path)
                assert r.status == 200, (path, await r.text())
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
                frag = await client.get(path + ("&" if "?" in path else "?") + "fragment=1")
                body = await frag.text()
                assert frag.status == 200 and "<html" not in body, (path, body[:300])
            assert (await client.get("/static/app.js")).status == 200
            assert (await client.get("/static/../auth.py")).status == 404
            assert (await client.post("/rollouts/default/web/pause", data={})).status == 403
            assert (await client.post("/rollouts/default/web/pause", data={"csrf": "wrong"})).status == 403
            r = await client.post("/rollouts/default/web/bogus", data={"csrf": csrf}, allow_redirects=False)
            assert r.status == 404
            r = await client.post("/history/0000000/revert", data={"csrf": csrf}, allow_redirects=False)
            assert r.status == 303 and "err=" in r.headers["Location"] and d.woken == 1
        finally:
            await client.close()
            await view.close()

    asyncio.run(run())


def test_server_events_report_changes(tmp_path: Path) -> None:
    d = FakeDaemon(tmp_path)

    async def run() -> None:
        view, client = await _client(d)
        try:
            await _login(d, client)
            resp = await client.get("/events")
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            await resp.content.readuntil(b"\n\n")  # retry:
            d.store.set_meta(lastAttemptedRevision="abc")
            line = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
            assert line.startswith(b"event: change") and b"meta" in line
            resp.close()
        finally:
            await client.close()
            await view.close()

    asyncio.run(run())


@pytest.mark.parametrize("pods", [1000])
def test_pages_with_many_pods_stay_small(tmp_path: Path, pods: int) -> None:
    d = FakeDaemon(tmp_path, pods)

    async def run() -> None:
        view, client = await _client(d)
        try:
            await _login(d, client)
            objects = await (await client.get("/objects")).text()
            assert objects.count('data-kind="Pod"') == 25 and "975 more pods" in objects
            detail = await (await client.get("/objects/ReplicaSet/default/web-1?page=20")).text()
            assert detail.count('data-kind="Pod"') == 50 and "page 20 of 20" in detail
            overview = await (await client.get("/")).text()
            assert 'data-health="Healthy">1002<' in overview
        finally:
            await client.close()
            await view.close()

    asyncio.run(run())


# ------------------------------------------------------------------ buttons are commits
def _git(repo: str, *args: str) -> str:
    ident = ["-c", "user.name=T", "-c", "user.email=t@e"]
    return subprocess.run(["git", "-C", repo, *ident, *args], check=True, capture_output=True, text=True).stdout


def test_revert_to_here_and_pause_are_commits(tmp_path: Path) -> None:
    from reconciler.web import actions

    d = FakeDaemon(tmp_path)
    repo = d.repo_dir
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers:\n      - name: c\n        image: img:v1\n"
    )
    shas = []
    for tag in ("v1", "v2", "v3"):
        Path(repo, "web.yaml").write_text(manifest.replace("img:v1", f"img:{tag}"))
        _git(repo, "add", "web.yaml")
        _git(repo, "commit", "-q", "-m", f"image {tag}")
        shas.append(_git(repo, "rev-parse", "HEAD").strip())
    msg = asyncio.run(actions.run(d, "revert", sha=shas[0]))
    assert "reverted 2 commit(s)" in msg and d.woken == 1
    subjects = _git(repo, "log", "-3", "--format=%s").splitlines()
    assert subjects == ['Revert "image v2"', 'Revert "image v3"', "image v3"]
    assert "image: img:v1" in Path(repo, "web.yaml").read_text()
    assert "Made with gitship's web view." in _git(repo, "log", "-1", "--format=%B")
    with pytest.raises(actions.ActionError):
        asyncio.run(actions.run(d, "revert", sha=_git(repo, "rev-parse", "HEAD").strip()))  # the head: nothing
    with pytest.raises(actions.ActionError):
        asyncio.run(actions.run(d, "revert", sha="deadbeefdeadbeef"))
    msg = asyncio.run(actions.run(d, "pause", ns="default", name="web"))
    assert msg.startswith("deployment.apps/web paused (commit ")
    assert "paused: true" in Path(repo, "web.yaml").read_text()


def test_history_durations_from_the_log() -> None:
    from reconciler.web.pages import durations, log_filter

    recs = [
        {"event": "revision_detected", "commit": "abc1234", "timestamp": "2026-11-30T08:00:00.000Z"},
        {
            "event": "revision_applied",
            "commit": "abc1234",
            "duration_ms": 12.5,
            "timestamp": "2026-11-30T08:00:00.100Z",
        },
        {"event": "event", "commit": "abc1234", "timestamp": "2026-11-30T08:00:02.500Z", "kind": "Pod", "name": "p"},
        {"event": "event", "commit": "fff0000", "timestamp": "2026-11-30T08:00:03Z"},
    ]
    got = durations(recs)
    assert got["abc1234"] == {"load": 12.5, "span": 2.5} and "span" not in got["fff0000"]
    keep = log_filter(commit="abc1234abc", obj="pod/p", level="info")
    assert [r["event"] for r in recs if keep(r)] == ["event"]
    assert [r["event"] for r in recs if log_filter(level="warning")(r)] == []
