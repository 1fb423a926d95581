"""reconciler.kapi.writes.handle against a real git repository (no daemon): writes become commits."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.gitops import RepoWriter
from reconciler.kapi.contract import WriteContext, WriteRequest
from reconciler.kapi.writes import handle
from reconciler.manifests.revision import load_revision
from reconciler.types import Key, Obj

DEPLOYMENT = """\
# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: testqc  # keep this comment
  labels:
    app: testqc
spec:
  replicas: 2
  selector:
    matchLabels:
      app: testqc
  template:
    metadata:
      labels:
        app: testqc
    spec:
      containers:
        - name: nodejs
          image: qinchaowhut/allen:v1  # the image
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: test-svc
spec:
  selector:
    app: testqc
  ports:
    - port: 80
      targetPort: 8080
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "manifests").mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.name", "Test")
    git(r, "config", "user.email", "test@example.com")
    (r / "manifests" / "web.yaml").write_text(DEPLOYMENT)
    git(r, "add", "-A")
    git(r, "commit", "-qm", "init")
    return r


class Fake:
    """The daemon's side of a WriteContext: desired from git's HEAD, live from a dict."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.live: dict[Key, Obj] = {}
        self.nudged = 0

    def desired(self, key: Key) -> Obj | None:
        files = {}
        for p in (self.repo / "manifests").rglob("*.yaml"):
            files[str(p.relative_to(self.repo))] = p.read_bytes()
        for m in load_revision(files):
            if m.key == key:
                return dict(m.obj)
        return None

    def ctx(self) -> WriteContext:
        return WriteContext(
            writer=lambda: RepoWriter(str(self.repo), "manifests"),
            repo_dir=str(self.repo),
            manifests_path="manifests",
            branch="main",
            state_dir=str(self.repo.parent / "state"),
            desired=self.desired,
            live=lambda k: self.live.get(k),
            live_of_kind=lambda kind, ns: [o for k, o in self.live.items() if k[0] == kind],
            nudge=self.nudge,
            wait_applied=lambda sha, t: "applied",
        )

    def nudge(self) -> None:
        self.nudged += 1


def req(verb: str, body: Any = b"", kind: str = "Deployment", name: str = "testqc", **kw: Any) -> WriteRequest:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    group = kw.pop("group", "apps" if kind in ("Deployment", "ReplicaSet") else "")
    kw.setdefault("subresource", "")
    kw.setdefault("content_type", "application/json")
    return WriteRequest(
        verb=verb, group=group, version="v1", kind=kind, namespace="default", name=name, body=data, **kw
    )


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_set_image_strategic_patch_commits_keeping_comments(repo: Path) -> None:
    f = Fake(repo)
    before = head(repo)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nodejs", "image": "qinchaowhut/allen:v2"}]}}}}
    r = handle(f.ctx(), req("patch", patch, content_type="application/strategic-merge-patch+json", user="alice"))
    assert r.status == 200, r.body
    assert head(repo) != before
    text = (repo / "manifests" / "web.yaml").read_text()
    assert "image: qinchaowhut/allen:v2  # the image" in text
    assert "# keep this comment" in text and text.startswith("# the web tier")
    assert "imagePullPolicy" not in text and "status" not in text  # no defaults carried into git
    log = git(repo, "log", "-1", "--format=%an|%s")
    assert log.strip() == "alice|kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v2"
    assert r.warnings and r.warnings[0].startswith("gitship: committed " + head(repo)[:7])
    assert f.nudged == 1


def test_scale_subresource(repo: Path) -> None:
    f = Fake(repo)
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "testqc"}, "spec": {"replicas": 5}}
    r = handle(f.ctx(), req("update", scale, subresource="scale", content_type="application/json"))
    assert r.status == 200, r.body
    assert r.body["kind"] == "Scale" and r.body["spec"]["replicas"] == 5
    assert git(repo, "log", "-1", "--format=%s").strip() == "kubectl scale deployment/testqc --replicas=5"
    assert "replicas: 5" in (repo / "manifests" / "web.yaml").read_text()
    r = handle(
        f.ctx(),
        req("patch", {"spec": {"replicas": 3}}, subresource="scale", content_type="application/merge-patch+json"),
    )
    assert r.status == 200 and "replicas: 3" in (repo / "manifests" / "web.yaml").read_text()


def test_label_merge_patch_and_json_patch(repo: Path) -> None:
    f = Fake(repo)
    r = handle(
        f.ctx(), req("patch", {"metadata": {"labels": {"tier": "web"}}}, content_type="application/merge-patch+json")
    )
    assert r.status == 200, r.body
    assert git(repo, "log", "-1", "--format=%s").strip() == "kubectl label deployment/testqc tier=web"
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    r = handle(f.ctx(), req("patch", ops, content_type="application/json-patch+json"))
    assert r.status == 200, r.body
    assert "replicas: 4" in (repo / "manifests" / "web.yaml").read_text()


def test_create_goes_to_its_folder_and_delete_removes_it(repo: Path) -> None:
    f = Fake(repo)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dnsutil-pod", "labels": {"app": "dnsutil"}},
        "spec": {"containers": [{"name": "dnsutils", "image": "busybox", "command": ["sleep", "3600"]}]},
    }
    r = handle(f.ctx(), req("create", pod, kind="Pod", name="", content_type="application/json"))
    assert r.status == 201, r.body
    path = repo / "manifests" / "default" / "pods" / "dnsutil-pod.yaml"
    assert yaml.safe_load(path.read_text())["metadata"]["name"] == "dnsutil-pod"
    assert git(repo, "log", "-1", "--format=%s").strip() == "kubectl create pod/dnsutil-pod"
    again = handle(f.ctx(), req("create", pod, kind="Pod", name="", content_type="application/json"))
    assert again.status == 409 and again.body["reason"] == "AlreadyExists"
    r = handle(f.ctx(), req("delete", kind="Pod", name="dnsutil-pod"))
    assert r.status == 200 and r.body["status"] == "Success"
    assert git(repo, "log", "-1", "--format=%an|%s").strip() == "kubectl|kubectl delete pod/dnsutil-pod"
    assert not path.exists()


def test_delete_of_one_document_keeps_the_other(repo: Path) -> None:
    f = Fake(repo)
    r = handle(f.ctx(), req("delete", kind="Service", name="test-svc"))
    assert r.status == 200, r.body
    text = (repo / "manifests" / "web.yaml").read_text()
    assert "test-svc" not in text and "# keep this comment" in text


def _nothing_committed(repo: Path, before: str) -> None:
    assert head(repo) == before
    assert (repo / "manifests" / "web.yaml").read_text() == DEPLOYMENT
    assert git(repo, "status", "--porcelain") == ""


def test_invalid_object_is_422_with_file_line_field(repo: Path) -> None:
    f = Fake(repo)
    before = head(repo)
    r = handle(f.ctx(), req("patch", {"spec": {"replicas": -1}}, content_type="application/merge-patch+json"))
    assert r.status == 422, r.body
    assert r.body["reason"] == "Invalid" and "manifests/web.yaml" in r.body["message"]
    assert "spec.replicas" in r.body["message"]
    assert any(c["field"] == "spec.replicas" for c in r.body["details"]["causes"])
    _nothing_committed(repo, before)


def test_unknown_field_strict_is_422_on_a_patch_else_a_warning(repo: Path) -> None:
    f = Fake(repo)
    before = head(repo)
    patch = {"spec": {"replica": 3}}
    r = handle(
        f.ctx(),
        req("patch", patch, content_type="application/merge-patch+json", query={"fieldValidation": "Strict"}),
    )
    # a patch's result that fails strict decoding is 422 Invalid on "patch" (apiserver handlers/patch.go)
    assert r.status == 422 and 'strict decoding error: unknown field "spec.replica"' in r.body["message"]
    assert r.body["details"]["causes"][0]["field"] == "patch"
    _nothing_committed(repo, before)
    r = handle(f.ctx(), req("patch", patch, content_type="application/merge-patch+json"))
    assert r.status == 200 and any('unknown field "spec.replica"' in w for w in r.warnings)
    _nothing_committed(repo, before)  # the field dropped: nothing left to change


def test_stale_resource_version_is_409(repo: Path) -> None:
    f = Fake(repo)
    live = f.desired(("Deployment", "default", "testqc"))
    assert live is not None
    live["metadata"] |= {"resourceVersion": "7", "uid": "u-1"}
    f.live[("Deployment", "default", "testqc")] = live
    before = head(repo)
    body = json.loads(json.dumps(live))
    body["metadata"]["resourceVersion"] = "6"
    body["spec"]["replicas"] = 9
    r = handle(f.ctx(), req("update", body, content_type="application/json"))
    assert r.status == 409 and "the object has been modified" in r.body["message"]
    _nothing_committed(repo, before)
    body["metadata"]["resourceVersion"] = "7"
    r = handle(f.ctx(), req("update", body, content_type="application/json"))
    assert r.status == 200, r.body
    assert (
        git(repo, "log", "-1", "--format=%B").strip() == "kubectl replace deployment/testqc\n\nChanged: spec.replicas"
    )


def test_immutable_selector_is_422(repo: Path) -> None:
    f = Fake(repo)
    live = f.desired(("Deployment", "default", "testqc"))
    assert live is not None
    f.live[("Deployment", "default", "testqc")] = live
    before = head(repo)
    patch = {
        "spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}
    }
    r = handle(f.ctx(), req("patch", patch, content_type="application/merge-patch+json"))
    assert r.status == 422 and "immutable" in r.body["message"], r.body
    assert "manifests/web.yaml:10 " in r.body["message"]  # the line of spec.selector
    _nothing_committed(repo, before)


def test_big_body_status_and_owned_objects_refused(repo: Path) -> None:
    f = Fake(repo)
    before = head(repo)
    r = handle(f.ctx(), req("update", b"x" * (3 * 1024 * 1024 + 1), content_type="application/json"))
    assert r.status == 413 and r.body["reason"] == "RequestEntityTooLarge"
    r = handle(f.ctx(), req("update", {}, subresource="status", content_type="application/json"))
    assert r.status == 405
    owner = {"kind": "ReplicaSet", "name": "testqc-abc", "controller": True, "uid": "x"}
    f.live[("Pod", "default", "testqc-abc-1")] = {
        "kind": "Pod",
        "metadata": {"name": "testqc-abc-1", "namespace": "default", "ownerReferences": [owner]},
    }
    r = handle(
        f.ctx(),
        req(
            "patch",
            {"metadata": {"labels": {"a": "b"}}},
            kind="Pod",
            name="testqc-abc-1",
            content_type="application/merge-patch+json",
        ),
    )
    assert r.status == 405 and "owned by replicaset/testqc-abc" in r.body["message"]
    _nothing_committed(repo, before)


def test_server_side_apply_merges(repo: Path) -> None:
    f = Fake(repo)
    applied = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: testqc
spec:
  replicas: 6
"""
    r = handle(
        f.ctx(),
        req("patch", applied.encode(), content_type="application/apply-patch+yaml", query={"fieldManager": "kubectl"}),
    )
    assert r.status == 200, r.body
    text = (repo / "manifests" / "web.yaml").read_text()
    assert "replicas: 6" in text and "qinchaowhut/allen:v1" in text


def test_rollout_undo_patch_becomes_a_revert(repo: Path) -> None:
    f = Fake(repo)
    key = ("Deployment", "default", "testqc")
    v1 = f.desired(key)
    sha1 = head(repo)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nodejs", "image": "qinchaowhut/allen:v2"}]}}}}
    assert handle(f.ctx(), req("patch", patch, content_type="application/strategic-merge-patch+json")).status == 200
    sha2 = head(repo)
    v2 = f.desired(key)
    assert v1 is not None and v2 is not None
    uid = "dep-uid"
    live = json.loads(json.dumps(v2))
    live["metadata"] |= {"uid": uid, "resourceVersion": "10", "annotations": {"deployment.kubernetes.io/revision": "2"}}
    f.live[key] = live

    def rs(n: int, tmpl: Obj, sha: str) -> Obj:
        t = json.loads(json.dumps(tmpl))
        t["metadata"]["labels"]["pod-template-hash"] = f"h{n}"
        ann = {"deployment.kubernetes.io/revision": str(n), "gitship.io/commit": sha}
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "testqc", "uid": uid, "controller": True}
        meta = {"name": f"testqc-h{n}", "namespace": "default", "annotations": ann, "ownerReferences": [owner]}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta, "spec": {"template": t}}

    f.live[("ReplicaSet", "default", "testqc-h1")] = rs(1, v1["spec"]["template"], sha1)
    f.live[("ReplicaSet", "default", "testqc-h2")] = rs(2, v2["spec"]["template"], sha2)
    ops = [
        {"op": "replace", "path": "/spec/template", "value": v1["spec"]["template"]},
        {"op": "replace", "path": "/metadata/annotations", "value": {"gitship.io/commit": sha1}},
    ]
    r = handle(f.ctx(), req("patch", ops, content_type="application/json-patch+json"))
    assert r.status == 200, r.body
    assert (repo / "manifests" / "web.yaml").read_text() == DEPLOYMENT  # a revert: the text as it was
    assert git(repo, "log", "-1", "--format=%an").strip() == "kubectl"
    body = git(repo, "log", "-1", "--format=%B")
    assert "rollout undo" in body and sha2[:7] in body, body


def test_commit_message_names_the_kubectl_command() -> None:
    from reconciler.kapi.commitmsg import message

    before = {"spec": {"replicas": 1, "minReadySeconds": 0}}
    after = {"spec": {"replicas": 1, "minReadySeconds": 5}}
    ct = "application/strategic-merge-patch+json"
    assert message("patch", "Deployment", "web", before, after, ct).startswith(
        "kubectl patch deployment/web --type=strategic"
    )
    edited = message("patch", "Deployment", "web", before, after, ct, "kubectl edit")
    assert edited == "kubectl edit deployment/web\n\nChanged: spec.minReadySeconds"
    scaled = {"spec": {"replicas": 3, "minReadySeconds": 0}}
    assert (
        message("patch", "Deployment", "web", before, scaled, ct, "kubectl scale")
        == "kubectl scale deployment/web --replicas=3"
    )


def _apply(f: Fake, text: str, manager: str = "kubectl", force: bool = False) -> Any:
    q = {"fieldManager": manager} | ({"force": "true"} if force else {})
    return handle(f.ctx(), req("patch", text.encode(), content_type="application/apply-patch+yaml", query=q))


APPLIED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: testqc
  labels:
    owner: ops
spec:
  replicas: 6
"""


def test_server_side_apply_field_managers(repo: Path) -> None:
    f = Fake(repo)
    r = _apply(f, APPLIED, "ops")
    assert r.status == 200, r.body
    # a patch changes a field "ops" applied: (ops, Update) is another owner than (ops, Apply)
    r = handle(
        f.ctx(),
        req(
            "patch",
            {"spec": {"replicas": 3}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "ops"},
        ),
    )
    assert r.status == 200
    before = head(repo)
    r = _apply(f, APPLIED, "ops")
    assert r.status == 409 and r.body["reason"] == "Conflict", r.body
    assert 'Apply failed with 1 conflict: conflict with "ops" using apps/v1: .spec.replicas' == r.body["message"]
    assert head(repo) == before
    r = _apply(f, APPLIED, "ops", force=True)
    assert r.status == 200 and "replicas: 6" in (repo / "manifests" / "web.yaml").read_text()
    # "ops" stops applying its label: the apply removes it
    r = _apply(f, APPLIED.replace("  labels:\n    owner: ops\n", ""), "ops")
    assert r.status == 200, r.body
    text = (repo / "manifests" / "web.yaml").read_text()
    assert "owner: ops" not in text and "app: testqc" in text and "# keep this comment" in text


def test_managed_leaves_and_shown() -> None:
    from reconciler.kapi import managed

    obj = {
        "metadata": {"name": "x", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "i"}], "args": ["a"]},
    }
    got = {managed.shown(k): v for k, v in managed.leaves(obj).items()}
    assert got == {
        ".metadata.labels.a": "1",
        '.spec.containers[name="c"].name': "c",
        '.spec.containers[name="c"].image': "i",
        ".spec.args": ["a"],
    }


def test_create_in_a_namespace_that_does_not_exist_is_404(repo: Path) -> None:
    f = Fake(repo)
    before = head(repo)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    r = handle(
        f.ctx(),
        WriteRequest("create", "", "v1", "ConfigMap", "nowhere", "", "", json.dumps(cm).encode(), "application/json"),
    )
    assert r.status == 404 and r.body["message"] == 'namespaces "nowhere" not found', r.body
    assert head(repo) == before and not (repo / "manifests" / "nowhere").exists()
