"""The API server's routes against a fake daemon (no TLS: the aiohttp app itself)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.cluster import Cluster
from reconciler.kapi.contract import WriteContext, WriteRequest, WriteResponse
from reconciler.kapi.server import V2_TYPE, KubeApi


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


class _Log:
    def warning(self, *a: Any, **k: Any) -> None:
        pass


class _Runtime:
    async def logs(self, uid: str, container: str, **kw: Any) -> bytes:
        return b"line 1\nline 2\n"

    def log_path(self, uid: str, container: str) -> str | None:
        return None


class _Reconciler:
    def __init__(self) -> None:
        self.cluster = Cluster([_pod("kubia", {"app": "kubia"}), _pod("other", {"app": "x"})])
        self.desired: dict[Any, Any] = {("Pod", "default", "kubia"): {}}
        self.log = _Log()
        self.deleted: list[str] = []
        self.passes = 0  # the API looks at the live objects when a pass ran

    async def delete_pod(self, ns: str, name: str, grace: float | None = None) -> bool:
        self.deleted.append(name)
        self.cluster.delete(("Pod", ns, name))
        return True


class _Store:
    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE TABLE events(id INTEGER PRIMARY KEY, time REAL, type TEXT, reason TEXT, kind TEXT,"
            " namespace TEXT, name TEXT, message TEXT)"
        )
        self.db.execute(
            "INSERT INTO events VALUES (1, 1767225600, 'Normal', 'Started', 'Pod', 'default', 'kubia', 'hi')"
        )


class _Daemon:
    def __init__(self, state_dir: str):
        self.runtime = _Runtime()
        self.reconciler = _Reconciler()
        self.store = _Store()
        self.state_dir = state_dir
        self.repo_dir = "/nonexistent"
        self.branch = "main"

    def wake_source(self) -> None:
        pass

    def writer(self) -> Any:
        return None


def _pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip


def _run(tmp_path: Path, body: Any) -> Any:
    async def main() -> Any:
        api = KubeApi(_Daemon(str(tmp_path)), "127.0.0.1:0")  # type: ignore[arg-type]
        api.start_polling()
        client = TestClient(TestServer(api.app()))
        await client.start_server()
        try:
            return await body(api, client, {"Authorization": f"Bearer {api.creds.token}"})
        finally:
            await client.close()
            await api.close()

    return asyncio.run(main())


def test_token_required(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = await c.get("/api/v1/pods", headers=headers)
            assert r.status == 401
            assert (await r.json())["kind"] == "Status"
        assert (await c.get("/version", headers=auth)).status == 200

    _run(tmp_path, body)
    assert (tmp_path / "kapi" / "token").stat().st_mode & 0o777 == 0o600


def test_discovery_content_types(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        r = await c.get("/apis", headers={**auth, "Accept": V2_TYPE + ",application/json"})
        assert r.headers["Content-Type"] == V2_TYPE
        assert (await r.json())["kind"] == "APIGroupDiscoveryList"
        r = await c.get("/apis", headers=auth)
        assert (await r.json())["kind"] == "APIGroupList"
        v = await (await c.get("/version", headers=auth)).json()
        assert v["gitVersion"] == f"v1.{v['minor']}.0"

    _run(tmp_path, body)


def test_list_get_selectors_table_and_not_found(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        r = await (await c.get("/api/v1/namespaces/default/pods", headers=auth)).json()
        assert r["kind"] == "PodList" and [p["metadata"]["name"] for p in r["items"]] == ["kubia", "other"]
        assert all(p["metadata"]["resourceVersion"] for p in r["items"])
        r = await (await c.get("/api/v1/pods?labelSelector=app%3Dkubia", headers=auth)).json()
        assert [p["metadata"]["name"] for p in r["items"]] == ["kubia"]
        r = await (await c.get("/api/v1/pods?fieldSelector=metadata.name%3Dother", headers=auth)).json()
        assert [p["metadata"]["name"] for p in r["items"]] == ["other"]
        resp = await c.get("/api/v1/namespaces/default/pods/nope", headers=auth)
        assert resp.status == 404 and (await resp.json())["message"] == 'pods "nope" not found'
        table = await (
            await c.get(
                "/api/v1/namespaces/default/pods",
                headers={**auth, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            )
        ).json()
        assert table["kind"] == "Table" and table["columnDefinitions"][1]["name"] == "Ready"
        assert (await c.get("/apis/apps/v1/namespaces/default/deployments", headers=auth)).status == 200
        assert (await c.get("/apis/nope/v1/things", headers=auth)).status == 404
        ev = await (await c.get("/api/v1/namespaces/default/events", headers=auth)).json()
        assert ev["items"][0]["involvedObject"] == {"kind": "Pod", "namespace": "default", "name": "kubia",
                                                    "uid": "uid-kubia", "apiVersion": "v1"}  # fmt: skip
        logs = await c.get("/api/v1/namespaces/default/pods/kubia/log", headers=auth)
        assert await logs.read() == b"line 1\nline 2\n"

    _run(tmp_path, body)


def test_watch_streams_changes_and_410_for_lost_history(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        listed = await (await c.get("/api/v1/namespaces/default/pods", headers=auth)).json()
        rv = listed["metadata"]["resourceVersion"]
        resp = await c.get(
            f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=5", headers=auth
        )
        changed = _pod("other", {"app": "y"})
        api.d.reconciler.cluster.put(changed)
        api.d.reconciler.passes += 1  # type: ignore[attr-defined]
        line = await asyncio.wait_for(resp.content.readline(), 10)
        event = json.loads(line)
        assert event["type"] == "MODIFIED" and event["object"]["metadata"]["labels"] == {"app": "y"}
        assert int(event["object"]["metadata"]["resourceVersion"]) > int(rv)
        resp.close()
        api.hub.oldest = 100
        gone = await c.get("/api/v1/namespaces/default/pods?watch=true&resourceVersion=1", headers=auth)
        assert gone.status == 410 and (await gone.json())["reason"] == "Expired"

    _run(tmp_path, body)


def test_writes_without_the_write_side_are_405_and_with_it_go_to_handle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[WriteRequest] = []

    def handle(ctx: WriteContext, req: WriteRequest) -> WriteResponse:
        seen.append(req)
        return WriteResponse(200, {"kind": "Deployment"}, ["committed abc1234: kubectl scale"])

    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        monkeypatch.setitem(sys.modules, "reconciler.kapi.writes", None)  # not importable
        r = await c.patch("/apis/apps/v1/namespaces/default/deployments/d", headers=auth, data=b"{}")
        assert r.status == 405 and (await r.json())["reason"] == "MethodNotAllowed"
        fake = types.ModuleType("reconciler.kapi.writes")
        fake.handle = handle  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "reconciler.kapi.writes", fake)
        r = await c.patch(
            "/apis/apps/v1/namespaces/default/deployments/d/scale?fieldManager=kubectl",
            headers={**auth, "Content-Type": "application/merge-patch+json"},
            data=b'{"spec":{"replicas":5}}',
        )
        assert r.status == 200 and r.headers["Warning"] == '299 - "committed abc1234: kubectl scale"'
        req = seen[0]
        assert (req.verb, req.group, req.kind, req.namespace, req.name, req.subresource) == (
            "patch", "apps", "Deployment", "default", "d", "scale"
        )  # fmt: skip
        assert req.body == b'{"spec":{"replicas":5}}' and req.query == {"fieldManager": "kubectl"}

    _run(tmp_path, body)


def test_delete_of_a_pod_git_does_not_declare_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        monkeypatch.setitem(sys.modules, "reconciler.kapi.writes", None)
        r = await c.delete("/api/v1/namespaces/default/pods/other", headers=auth)
        assert r.status == 200 and (await r.json())["metadata"]["deletionTimestamp"]
        assert api.d.reconciler.deleted == ["other"]  # type: ignore[attr-defined]
        # a pod git declares is a write (its manifest removed by a commit): the write side's
        r = await c.delete("/api/v1/namespaces/default/pods/kubia", headers=auth)
        assert r.status == 405
        r = await c.delete("/api/v1/namespaces/default/pods/gone", headers=auth)
        assert r.status == 404

    _run(tmp_path, body)


def test_watch_list_sends_the_state_then_a_bookmark(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        url = "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
        resp = await c.get(url + "&resourceVersionMatch=NotOlderThan&timeoutSeconds=2", headers=auth)
        events = [json.loads(await asyncio.wait_for(resp.content.readline(), 10)) for _ in range(3)]
        assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
        assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        resp.close()

    _run(tmp_path, body)


def test_watch_with_a_selector_sees_an_object_leave_it(tmp_path: Path) -> None:
    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        rv = (await (await c.get("/api/v1/pods", headers=auth)).json())["metadata"]["resourceVersion"]
        url = f"/api/v1/pods?watch=true&labelSelector=app%3Dx&resourceVersion={rv}&timeoutSeconds=5"
        resp = await c.get(url, headers=auth)
        api.d.reconciler.cluster.put(_pod("kubia", {"app": "other"}))  # outside before and after: nothing
        api.d.reconciler.cluster.put(_pod("other", {"app": "y"}))
        api.d.reconciler.passes += 1  # type: ignore[attr-defined]
        event = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
        assert event["type"] == "DELETED" and event["object"]["metadata"]["name"] == "other"
        resp.close()

    _run(tmp_path, body)


def test_a_body_over_3_mib_is_413(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("reconciler.kapi.writes")
    fake.handle = lambda ctx, req: WriteResponse(201, {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reconciler.kapi.writes", fake)

    async def body(api: KubeApi, c: TestClient, auth: dict[str, str]) -> None:
        r = await c.post("/api/v1/namespaces/default/configmaps", headers=auth, data=b"x" * (4 << 20))
        assert r.status == 413
        assert (await r.json())["message"] == "Request entity too large: limit is 3145728"

    _run(tmp_path, body)
