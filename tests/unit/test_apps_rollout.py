"""`rollout status|history|undo` of StatefulSets and DaemonSets without a daemon: kubectl's status
messages (staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go), the revisions as
undo reads them, undo's commit through a fake writer, and the `get` tables.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from reconciler import printers
from reconciler.controllers import apps_rollout, history
from reconciler.controllers.podutil import from_rfc3339
from reconciler.manifests.validate import default_and_validate
from reconciler.undo import undo_commit
from tests.unit.test_undo import FakeWriter

T0 = from_rfc3339("2026-11-25T20:00:00Z")


def sts_text(image: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  serviceName: nginx\n"
        "  replicas: 2\n  selector:\n    matchLabels:\n      app: nginx\n"
        "  template:\n    metadata:\n      labels:\n        app: nginx\n"
        f"    spec:\n      containers:\n      - name: nginx\n        image: {image}\n"
    )


def live(text: str, uid: str = "sts-uid", generation: int = 1, **status: Any) -> dict:
    obj, errors = default_and_validate(yaml.safe_load(text), "web.yaml", 0)
    assert errors == []
    obj["metadata"].update(uid=uid, generation=generation, creationTimestamp="2026-11-25T19:00:00Z")
    obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("status", "generation", "want", "done"),
    [
        ({}, 1, "Waiting for statefulset spec update to be observed...", False),
        ({"observedGeneration": 1, "readyReplicas": 1}, 1, "Waiting for 1 pods to be ready...", False),
        (
            {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 1},
            1,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
            False,
        ),
        (
            {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2},
            1,
            "partitioned roll out complete: 2 new pods have been updated...",
            True,
        ),
        ({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}, 2, "Waiting for statefulset", False),
    ],
)
def test_statefulset_status(status: dict, generation: int, want: str, done: bool) -> None:
    msg, finished = apps_rollout.rollout_status(live(sts_text("nginx:1"), generation=generation, **status))
    assert msg.startswith(want) and finished is done


def test_statefulset_status_on_delete_is_an_error() -> None:
    obj = live(sts_text("nginx:1"))
    obj["spec"]["updateStrategy"] = {"type": "OnDelete"}
    with pytest.raises(apps_rollout.RolloutError, match="only available for RollingUpdate"):
        apps_rollout.rollout_status(obj)


def test_daemonset_status() -> None:
    ds = {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": 2},
        "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1},
    }
    assert apps_rollout.rollout_status(ds) == (
        'Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been updated...',
        False,
    )
    ds["status"].update(updatedNumberScheduled=3, numberAvailable=2)
    assert apps_rollout.rollout_status(ds)[0].endswith("2 of 3 updated pods are available...")
    ds["status"]["numberAvailable"] = 3
    assert apps_rollout.rollout_status(ds) == ('daemon set "agent" successfully rolled out', True)


def _revisions(*texts: str) -> tuple[dict, list[dict]]:
    """The set at the last text, and one revision per text (commit c<i>)."""
    revs: list[dict] = []
    obj: dict = {}
    for i, text in enumerate(texts):
        obj = live(text)
        r = history.resolve(obj, revs, None, T0 + i, lambda i=i: f"cr-{i}", {"sha": f"c{i}"})
        revs = [x for x in revs if x["metadata"]["name"] not in {p["metadata"]["name"] for p in r.put}] + r.put
    return obj, revs


def test_history_views_and_undo_reverts_the_commit_of_the_current_revision() -> None:
    texts = (sts_text("nginx:1"), sts_text("nginx:2"))
    obj, revs = _revisions(*texts)
    views = apps_rollout.revisions(obj, revs)
    assert [n for n, _ in views] == [1, 2]
    assert views[0][1]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert "$patch" not in views[0][1]["spec"]["template"]
    w = FakeWriter(*texts)
    sha, how = undo_commit(w, obj, views[-1], views[0])
    assert w.reverted == ["c1"] and how.startswith("git revert")


def test_undo_commits_the_template_when_the_commit_changed_more() -> None:
    texts = (sts_text("nginx:1"), sts_text("nginx:2").replace("replicas: 2", "replicas: 3"))
    obj, revs = _revisions(*texts)
    views = apps_rollout.revisions(obj, revs)
    w = FakeWriter(*texts)
    _, how = undo_commit(w, obj, views[-1], views[0])
    assert how == "commit" and w.reverted == []
    template = w.templates[0][0]
    assert template["spec"]["containers"][0]["image"] == "nginx:1"


def test_get_tables() -> None:
    sts = live(sts_text("nginx:1"), readyReplicas=1)
    headers, rows = printers.table_rows("StatefulSet", [sts], T0, printers.TableOptions(wide=True))
    assert headers == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    assert rows[0][:2] == ["web", "1/2"] and rows[0][3:] == ["nginx", "nginx:1"]
    ds = copy.deepcopy(sts)
    ds.update(kind="DaemonSet", status={"desiredNumberScheduled": 1, "numberReady": 1})
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    headers, rows = printers.table_rows("DaemonSet", [ds], T0, printers.TableOptions())
    assert headers == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]
    assert rows[0][:7] == ["web", 1, 0, 1, 0, 0, "kubernetes.io/os=linux"]
    _, revs = _revisions(sts_text("nginx:1"))
    headers, rows = printers.table_rows("ControllerRevision", revs, T0, printers.TableOptions())
    assert headers == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert rows[0][1:3] == ["statefulset.apps/web", 1]
    page = printers.describe(sts, [], T0)
    assert "Update Strategy:    RollingUpdate" in page and "  Partition:        0" in page
