"""What running the tutorial with kubectl showed: only kubectl's ``rollout undo`` request (a JSON patch
replacing /spec/template) becomes gitship's undo (a git revert), a ``set image`` back to an older
revision's image is a plain ``set image`` commit; Warning headers keep their quotes."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.kapi.writes import handle
from reconciler.types import Obj
from tests.unit.test_kapi_writes import Fake, git, head, repo, req  # noqa: F401


def _with_history(f: Fake, repo: Path) -> tuple[Obj, str]:  # noqa: F811
    """testqc at v2 (a commit after v1), live with both ReplicaSets."""
    key = ("Deployment", "default", "testqc")
    v1, sha1 = f.desired(key), head(repo)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nodejs", "image": "qinchaowhut/allen:v2"}]}}}}
    assert handle(f.ctx(), req("patch", patch, content_type="application/strategic-merge-patch+json")).status == 200
    v2, sha2 = f.desired(key), head(repo)
    assert v1 is not None and v2 is not None
    live = json.loads(json.dumps(v2))
    live["metadata"] |= {"uid": "u", "resourceVersion": "10", "annotations": {"deployment.kubernetes.io/revision": "2"}}
    f.live[key] = live
    for n, tmpl, sha in ((1, v1["spec"]["template"], sha1), (2, v2["spec"]["template"], sha2)):
        t = json.loads(json.dumps(tmpl))
        t["metadata"]["labels"]["pod-template-hash"] = f"h{n}"
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "testqc", "uid": "u", "controller": True}
        ann = {"deployment.kubernetes.io/revision": str(n), "gitship.io/commit": sha}
        meta = {"name": f"testqc-h{n}", "namespace": "default", "annotations": ann, "ownerReferences": [owner]}
        f.live[("ReplicaSet", "default", f"testqc-h{n}")] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta,
            "spec": {"template": t},
        }
    return v1, sha2


def test_set_image_back_to_an_old_image_is_not_a_revert(repo: Path) -> None:  # noqa: F811
    f = Fake(repo)
    _with_history(f, repo)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nodejs", "image": "qinchaowhut/allen:v1"}]}}}}
    r = handle(f.ctx(), req("patch", patch, content_type="application/strategic-merge-patch+json"))
    assert r.status == 200, r.body
    body = git(repo, "log", "-1", "--format=%B").strip()
    assert body == "kubectl set image deployment/testqc nodejs=qinchaowhut/allen:v1", body


def test_the_rollback_json_patch_is_a_revert(repo: Path) -> None:  # noqa: F811
    f = Fake(repo)
    v1, sha2 = _with_history(f, repo)
    ops = [{"op": "replace", "path": "/spec/template", "value": v1["spec"]["template"]}]
    r = handle(f.ctx(), req("patch", ops, content_type="application/json-patch+json"))
    assert r.status == 200, r.body
    body = git(repo, "log", "-1", "--format=%B")
    assert body.startswith("Revert ") and sha2[:7] in body, body


def test_warning_header_escapes_quotes_as_the_api_server_does() -> None:
    from reconciler.kapi.writing import warning_header

    assert warning_header('unknown field "spec.replica"') == '299 - "unknown field \\"spec.replica\\""'
    assert warning_header("a\\b") == '299 - "a\\\\b"'


def test_a_new_object_named_like_a_path_is_refused(repo: Path) -> None:  # noqa: F811
    """A POST's name becomes a file's name: "../../x" is 422 as Kubernetes says it, and nothing is written."""
    f = Fake(repo)
    before = head(repo)
    for name, why in (
        ("../../etc/x", "may not contain '/'"),
        ("..", "may not be '..'"),
        ("a%2F", "may not contain '%'"),
    ):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": []}}
        r = handle(f.ctx(), req("create", pod, kind="Pod", name=""))
        assert r.status == 422, r.body
        assert r.body["message"] == f'Pod "{name}" is invalid: metadata.name: Invalid value: "{name}": {why}'
    assert head(repo) == before
    assert git(repo, "status", "--porcelain") == ""
