"""What `gitship get` prints beyond one kind's table (reconciler/getprint.py, reconciler/cli/get.py's
argument handling): several kinds, -o name, custom-columns, -L, --sort-by, and the changes a watch prints.
Expected outputs follow kubectl (kubernetes/kubectl pkg/cmd/get: get_test.go, customcolumn_test.go, sorter.go)."""

from __future__ import annotations

import copy

import pytest

from reconciler import getprint, printers
from reconciler.cli import get as cli_get
from reconciler.jsonpath import JSONPathError
from reconciler.printers import TableOptions

T0 = "2024-01-01T00:00:00Z"
NOW = 1704067200 + 300  # five minutes later


def pod(name: str, labels: dict | None = None, ip: str | None = "10.0.0.1", restarts: int = 0) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}, "creationTimestamp": T0},
        "spec": {"containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            **({"podIP": ip} if ip else {}),
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": restarts, "state": {"running": {}}}],
        },
    }


SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "kubernetes", "namespace": "default", "creationTimestamp": T0},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]},
}
RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": T0, "labels": {"app": "web"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": []}}},
    "status": {"replicas": 2, "readyReplicas": 1},
}


def test_several_kinds_print_one_table_each_with_kind_prefixed_names() -> None:
    items = [("Service", SVC), ("ReplicaSet", RS), ("Pod", pod("web-abc-xyz")), ("Pod", pod("web-abc-zzz"))]
    assert getprint.get_tables(items, NOW, TableOptions()).split("\n") == [
        "NAME                 TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE",
        "service/kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP   5m",
        "",
        "NAME                      DESIRED   CURRENT   READY   AGE",
        "replicaset.apps/web-abc   2         2         1       5m",
        "",
        "NAME              READY   STATUS    RESTARTS   AGE",
        "pod/web-abc-xyz   1/1     Running   0          5m",
        "pod/web-abc-zzz   1/1     Running   0          5m",
    ]


def test_one_kind_has_no_prefix_even_when_several_were_asked() -> None:
    """kubectl prefixes NAME only when the objects found are of more than one kind (multipleGVKsRequested)."""
    out = getprint.get_tables([("Pod", pod("a"))], NOW, TableOptions())
    assert out.split("\n")[1].split()[0] == "a"
    assert getprint.get_tables([], NOW, TableOptions()) == ""


def test_label_columns_and_show_labels_come_last_and_sorted() -> None:
    p = pod("web", {"tier": "fe", "app": "web", "example.com/team": "x"})
    got = getprint.get_tables(
        [("Pod", p), ("Pod", pod("db"))],
        NOW,
        TableOptions(show_labels=True, label_columns=("app", "example.com/team", "missing")),
    ).split("\n")
    assert got[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "APP", "TEAM", "MISSING", "LABELS"]
    assert got[1].split()[5:] == ["web", "x", "app=web,example.com/team=x,tier=fe"]
    assert got[2].split()[5:] == ["<none>"]  # empty label cells, then <none>
    assert printers.format_labels({"b": "1", "a": "2"}) == "a=2,b=1" and printers.format_labels({}) == "<none>"


def test_name_output() -> None:
    assert [getprint.resource_name(o) for o in (pod("web"), SVC, RS)] == [
        "pod/web",
        "service/kubernetes",
        "replicaset.apps/web-abc",
    ]
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    assert getprint.resource_name(deploy) == "deployment.apps/web"
    assert getprint.kind_group("Deployment") == "deployment.apps" and getprint.kind_group("Endpoints") == "endpoints"


def test_custom_columns() -> None:
    cols = getprint.custom_columns(
        "NAME:.metadata.name,IP:status.podIP,LABELS:{.metadata.labels},C:.spec.containers[*].name"
    )
    assert [h for h, _ in cols] == ["NAME", "IP", "LABELS", "C"]
    two = pod("web", {"b": "2", "a": "1"})
    two["spec"]["containers"].append({"name": "side"})
    assert getprint.custom_rows(cols, [two, pod("db", ip=None)]) == [
        ["web", "10.0.0.1", "map[a:1 b:2]", "app,side"],
        ["db", "<none>", "map[]", "app"],
    ]
    for bad in ("", "NAME", "NAME:{a}{b}"):
        with pytest.raises(JSONPathError):
            getprint.custom_columns(bad)


def test_custom_columns_table_pads_narrow_columns_as_kubectls_tabwriter() -> None:
    rows = [["A", "B"], ["1", "2"]]
    assert printers.table_lines(rows, printers.column_widths(rows, min_cell=printers.MIN_CELL)) == [
        "A     B",
        "1     2",
    ]


def test_sort_by_numbers_numerically_and_missing_first() -> None:
    pods = [pod("a", restarts=10), pod("b", restarts=9), pod("c", restarts=100)]
    restarts = ".status.containerStatuses[0].restartCount"
    assert [p["metadata"]["name"] for p in getprint.sort_objects(pods, restarts)] == ["b", "a", "c"]
    assert [p["metadata"]["name"] for p in getprint.sort_objects(pods[::-1], "{.metadata.name}")] == ["a", "b", "c"]
    no_ip = pod("z", ip=None)
    ips = [pod("y", ip="10.0.0.9"), no_ip, pod("x", ip="10.0.0.10")]
    assert [p["metadata"]["name"] for p in getprint.sort_objects(ips, ".status.podIP")] == ["z", "x", "y"]
    with pytest.raises(JSONPathError, match="couldn't find any field"):
        getprint.sort_objects(pods, ".spec.nothing")
    assert getprint.sort_objects([], ".x") == []


def test_sort_by_quantities_by_amount() -> None:
    objs = [{"v": "1Gi"}, {"v": "100m"}, {"v": "2"}, {"v": "512Mi"}]
    assert [o["v"] for o in getprint.sort_objects(objs, ".v")] == ["100m", "2", "512Mi", "1Gi"]
    assert getprint.quantity("1Ki") == 1024 and getprint.quantity("1e3") == 1000 and getprint.quantity("web") is None
    with pytest.raises(JSONPathError, match="unsortable"):
        getprint.sort_objects([{"v": {"a": 1}}, {"v": {"b": 2}}], ".v")


def test_a_watch_reports_new_changed_and_deleted_objects() -> None:
    a, b, c = pod("a"), pod("b"), pod("c")
    before = {("Pod", "default", "a"): a, ("Pod", "default", "b"): b}
    b2 = copy.deepcopy(b)
    b2["metadata"]["labels"] = {"x": "y"}
    after = {("Pod", "default", "b"): b2, ("Pod", "default", "c"): c}
    assert getprint.changed(before, after) == [b2, c, a]
    assert getprint.changed(after, copy.deepcopy(after)) == []


def test_resource_arguments() -> None:
    T = cli_get.Target
    assert cli_get.targets(["svc,rs,po"]) == [T("Service"), T("ReplicaSet"), T("Pod")]
    assert cli_get.targets(["all"]) == [
        T("Pod"),
        T("ReplicationController"),
        T("Service"),
        T("DaemonSet"),
        T("Deployment"),
        T("ReplicaSet"),
        T("StatefulSet"),
        T("HorizontalPodAutoscaler"),
        T("CronJob"),
        T("Job"),
    ]
    assert cli_get.targets(["po,all"]) == cli_get.targets(["all"])
    assert cli_get.targets(["pods", "a", "b"]) == [T("Pod", ("a", "b"))]
    assert cli_get.targets(["pod/a", "deploy/web"]) == [T("Pod", ("a",)), T("Deployment", ("web",))]
    for bad in (["pod", "pod/a"], ["pod/a", "b"], ["nosuchkind"]):
        with pytest.raises(SystemExit):
            cli_get.targets(bad)


def test_output_formats() -> None:
    assert cli_get.output_format(None) == (None, "")
    assert cli_get.output_format("name") == ("name", "")
    assert cli_get.output_format("jsonpath={.a}={.b}") == ("jsonpath", "{.a}={.b}")
    assert cli_get.output_format("custom-columns=A:.a") == ("custom-columns", "A:.a")
    for bad in ("xml", "jsonpath", "jsonpath="):
        with pytest.raises(SystemExit):
            cli_get.output_format(bad)


def test_managed_fields_are_hidden_unless_asked() -> None:
    from reconciler.getprint import without_managed_fields

    obj = {"kind": "Pod", "metadata": {"name": "a", "managedFields": [{"manager": "gitship"}]}}
    assert without_managed_fields(obj) == {"kind": "Pod", "metadata": {"name": "a"}}
    assert obj["metadata"]["managedFields"]  # the input is not touched
    plain = {"kind": "Pod", "metadata": {"name": "a"}}
    assert without_managed_fields(plain) is plain
