"""Unit tests for reconciler/printers.py: kubectl's tables and describe pages, on a fixed clock."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from reconciler import printers

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR_AGO = "2027-01-15T07:00:00Z"

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "main", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]},
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "default",
        "creationTimestamp": HOUR_AGO,
        "labels": {"app": "web", "tier": "fe"},
        "annotations": {"a": "b"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "u1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "nginx:1",
                "command": ["nginx", "-g"],
                "livenessProbe": {"httpGet": {"port": 80, "path": "/healthz"}, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 80}},
            },
            {"name": "side", "image": "busybox", "startupProbe": {"exec": {"command": ["cat", "/ok"]}}},
        ]
    },
    "status": {
        "phase": "Running",
        "podIP": "127.244.0.5",
        "startTime": HOUR_AGO,
        "containerStatuses": [
            {"name": "main", "ready": True, "restartCount": 2, "state": {"running": {}}},
            {"name": "side", "ready": False, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ],
        "conditions": [{"type": "Ready", "status": "False"}],
    },
}
RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {
        "name": "web-abc",
        "namespace": "default",
        "creationTimestamp": "2027-01-14T08:00:00Z",
        "labels": {"app": "web"},
    },
    "spec": {
        "replicas": 3,
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "x", "operator": "NotIn", "values": ["c"]},
                {"key": "y", "operator": "Exists"},
                {"key": "z", "operator": "DoesNotExist"},
            ],
        },
        "template": TEMPLATE,
    },
    "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1},
}
DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2027-01-15T07:55:30Z"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": TEMPLATE,
        "paused": True,
        "minReadySeconds": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
    },
    "status": {
        "replicas": 4,
        "readyReplicas": 2,
        "updatedReplicas": 1,
        "availableReplicas": 2,
        "unavailableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
    },
}
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2027-01-10T08:00:00Z"},
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "127.96.0.20",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
            {"port": 53, "targetPort": 53, "protocol": "UDP"},
        ],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb.local"}]}},
}
EP = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default"},
    "subsets": [{"addresses": [{"ip": "127.244.0.5"}, {"ip": "127.244.0.6"}], "ports": [{"port": 8080}, {"port": 53}]}],
}
EVENTS = [
    {"type": "Normal", "reason": "Scheduled", "time": NOW - 90, "message": "assigned"},
    {"type": "Warning", "reason": "BackOff", "time": NOW - 4000, "message": "back-off restarting"},
]


def lines(text: str) -> list[str]:
    return text.splitlines()


# --------------------------------------------------------------------------- small columns

AGES = [
    (None, "<unknown>"),
    ("2027-01-15T08:00:00Z", "0s"),
    ("2027-01-15T08:00:01Z", "0s"),  # a clock up to 2 s behind the object reads as now
    ("2027-01-15T08:00:05Z", "<invalid>"),  # further behind: kubectl says so
    ("2027-01-15T07:58:01Z", "119s"),
    ("2027-01-15T07:58:00Z", "2m"),
    ("2027-01-15T07:55:30Z", "4m30s"),
    ("2027-01-15T07:50:00Z", "10m"),
    ("2027-01-15T05:01:00Z", "179m"),
    ("2027-01-15T05:00:00Z", "3h"),
    ("2027-01-13T08:00:01Z", "47h"),
    ("2027-01-13T08:00:00Z", "2d"),
    ("2027-01-15T04:30:00Z", "3h30m"),
    ("2027-01-12T05:00:00Z", "3d3h"),
]


@pytest.mark.parametrize(("ts", "want"), AGES)
def test_age_in_kubectl_units(ts: str | None, want: str) -> None:
    assert printers.age(ts, NOW) == want


def test_age_from_epoch_agrees_with_age() -> None:
    assert printers.age_from_epoch(NOW - 270, NOW) == "4m30s"


def _pod_with(status: dict, deleting: bool = False) -> dict:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": status}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = HOUR_AGO
    return pod


POD_STATUSES = [
    ({"phase": "Running"}, False, "Terminating"),
    ({}, False, "Pending"),
    ({"phase": "Pending"}, False, "Pending"),
    ({"phase": "Pending", "podIP": "1.2.3.4"}, False, "ContainerCreating"),
    ({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}, False, "Running"),
    (
        {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]},
        False,
        "ErrImagePull",
    ),
    ({"phase": "Running", "containerStatuses": [{"state": {"waiting": {}}}]}, False, "Running"),
    ({"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]}, False, "Completed"),
    ({"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]}, False, "Error"),
    (
        {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"reason": "OOMKilled"}}}]},
        False,
        "OOMKilled",
    ),
    ({"phase": "Failed", "reason": "Evicted"}, False, "Evicted"),
]


@pytest.mark.parametrize(("status", "deleting", "want"), POD_STATUSES)
def test_pod_status_column(status: dict, deleting: bool, want: str) -> None:
    assert printers.pod_status(_pod_with(status, deleting=deleting or want == "Terminating")) == want


def test_pod_ready_and_restarts() -> None:
    assert printers.pod_ready(POD) == "1/2"
    assert printers.pod_restarts(POD) == 3
    assert printers.pod_ready({"spec": {"containers": [{}]}}) == "0/1"


def test_selector_text() -> None:
    assert printers.selector_text(None) == "<none>"
    assert printers.selector_text({}) == "<none>"
    assert printers.selector_text(RS["spec"]["selector"]) == "app=web,tier in (a,b),x notin (c),y,!z"


def test_service_columns() -> None:
    assert printers.ports_text(SVC) == "80:30080/TCP,53/UDP"
    assert printers.ports_text({"spec": {}}) == "<none>"
    assert printers.external_ip(SVC) == "10.0.0.1,lb.local"
    assert printers.external_ip({"spec": {"type": "LoadBalancer"}}) == "<pending>"
    assert printers.external_ip({"spec": {"type": "ClusterIP"}}) == "<none>"
    assert printers.external_ip({"spec": {"externalIPs": ["1.1.1.1", "2.2.2.2"]}}) == "1.1.1.1,2.2.2.2"
    assert printers.external_ip({"spec": {"type": "ExternalName", "externalName": "db.example"}}) == "db.example"


def test_endpoints_text_shows_three_then_counts_the_rest() -> None:
    assert printers.endpoints_text(EP) == "127.244.0.5:8080,127.244.0.5:53,127.244.0.6:8080 + 1 more..."
    assert printers.endpoints_text({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}) == "10.0.0.1"
    assert printers.endpoints_text({}) == "<none>"


def test_table_pads_columns_and_strips_trailing_blanks() -> None:
    assert printers.table(["A", "LONGER"], [["xx", ""], [1, 2]]) == "A    LONGER\nxx\n1    2"
    assert printers.table(["A", "B"], []) == "A   B"


# --------------------------------------------------------------------------- get tables

GET_TABLES = [
    (
        "Pod",
        POD,
        False,
        ["NAME    READY   STATUS             RESTARTS   AGE", "web-1   1/2     CrashLoopBackOff   3          60m"],
    ),
    (
        "Pod",
        POD,
        True,
        [
            "NAME    READY   STATUS             RESTARTS   AGE   IP            NODE",
            "web-1   1/2     CrashLoopBackOff   3          60m   127.244.0.5   localhost",
        ],
    ),
    (
        "ReplicaSet",
        RS,
        False,
        ["NAME      DESIRED   CURRENT   READY   AGE", "web-abc   3         2         1       24h"],
    ),
    (
        "ReplicaSet",
        RS,
        True,
        [
            "NAME      DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES            SELECTOR",
            "web-abc   3         2         1       24h   main,side    nginx:1,busybox   "
            "app=web,tier in (a,b),x notin (c),y,!z",
        ],
    ),
    (
        "Deployment",
        DEPLOY,
        False,
        ["NAME   READY   UP-TO-DATE   AVAILABLE   AGE", "web    2/3     1            2           4m30s"],
    ),
    (
        "Deployment",
        DEPLOY,
        True,
        [
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE     CONTAINERS   IMAGES            SELECTOR",
            "web    2/3     1            2           4m30s   main,side    nginx:1,busybox   app=web",
        ],
    ),
    (
        "Service",
        SVC,
        False,
        [
            "NAME   TYPE           CLUSTER-IP    EXTERNAL-IP         PORT(S)               AGE",
            "web    LoadBalancer   127.96.0.20   10.0.0.1,lb.local   80:30080/TCP,53/UDP   5d",
        ],
    ),
    (
        "Service",
        SVC,
        True,
        [
            "NAME   TYPE           CLUSTER-IP    EXTERNAL-IP         PORT(S)               AGE   SELECTOR",
            "web    LoadBalancer   127.96.0.20   10.0.0.1,lb.local   80:30080/TCP,53/UDP   5d    app=web",
        ],
    ),
    (
        "Endpoints",
        EP,
        False,
        [
            "NAME   ENDPOINTS                                                      AGE",
            "web    127.244.0.5:8080,127.244.0.5:53,127.244.0.6:8080 + 1 more...   <unknown>",
        ],
    ),
    (
        "Endpoints",
        EP,
        True,  # -o wide adds nothing for Endpoints
        [
            "NAME   ENDPOINTS                                                      AGE",
            "web    127.244.0.5:8080,127.244.0.5:53,127.244.0.6:8080 + 1 more...   <unknown>",
        ],
    ),
]


@pytest.mark.parametrize(("kind", "obj", "wide", "want"), GET_TABLES, ids=lambda v: v if isinstance(v, str) else "")
def test_get_table(kind: str, obj: dict, wide: bool, want: list[str]) -> None:
    assert lines(printers.rows_for(kind, [obj], NOW, wide)) == want


def test_get_table_labels_go_last_and_namespace_first() -> None:
    got = lines(printers.rows_for("Pod", [POD], NOW, True, show_labels=True, all_namespaces=True))
    assert got == [
        "NAMESPACE   NAME    READY   STATUS             RESTARTS   AGE   IP            NODE        LABELS",
        "default     web-1   1/2     CrashLoopBackOff   3          60m   127.244.0.5   localhost   app=web,tier=fe",
    ]
    got = lines(printers.rows_for("Deployment", [DEPLOY], NOW, False, show_labels=True))
    assert got[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "LABELS"]
    assert got[1].split()[-1] == "<none>"


def test_get_table_of_several_rows_keeps_their_order() -> None:
    other = copy.deepcopy(POD)
    other["metadata"]["name"] = "a-much-longer-name"
    got = lines(printers.rows_for("Pod", [POD, other], NOW, False))
    assert [row.split()[0] for row in got] == ["NAME", "web-1", "a-much-longer-name"]
    assert len({row.index("READY") if i == 0 else row.index("1/2") for i, row in enumerate(got)}) == 1


def test_get_table_of_a_custom_kind_is_name_and_age() -> None:
    assert printers.rows_for("CronTab", [], NOW, False) == "NAME   AGE"


def test_as_list_and_dump() -> None:
    lst = printers.as_list([POD])
    assert lst["kind"] == "List" and lst["items"] == [POD]
    assert json.loads(printers.dump(lst, "json")) == lst
    text = printers.dump(POD, "yaml")
    assert yaml.safe_load(text) == POD
    assert text.startswith("apiVersion: v1\nkind: Pod\n") and not text.endswith("\n")


# --------------------------------------------------------------------------- describe

HEADER_POD = [
    "Name:           web-1",
    "Namespace:      default",
    "CreationTimestamp: 2027-01-15T07:00:00Z",
    "Labels:         app=web",
    "                tier=fe",
    "Annotations:    a=b",
    "Controlled By:  ReplicaSet/web-abc",
]
EVENTS_TABLE = [
    "Events:",
    "  Type      Reason      Age   From      Message",
    "  Normal    Scheduled   90s   gitship   assigned",
    "  Warning   BackOff     66m   gitship   back-off restarting",
]


def test_describe_pod() -> None:
    assert lines(printers.describe(POD, EVENTS, NOW)) == [
        *HEADER_POD,
        "Status:         CrashLoopBackOff",
        "IP:             127.244.0.5",
        "Start Time:     2027-01-15T07:00:00Z",
        "Containers:",
        "  main:",
        "    Image:          nginx:1",
        "    Command:        nginx -g",
        "    State:          Running",
        "    Ready:          True",
        "    Restart Count:  2",
        "    Liveness:     http-get http://:80/healthz delay=0s timeout=1s period=5s #success=1 #failure=3",
        "    Readiness:     tcp-socket :80 delay=0s timeout=1s period=10s #success=1 #failure=3",
        "  side:",
        "    Image:          busybox",
        "    Command:        <image default>",
        "    State:          Waiting (CrashLoopBackOff)",
        "    Ready:          False",
        "    Restart Count:  1",
        "    Startup:     exec [cat /ok] delay=0s timeout=1s period=10s #success=1 #failure=3",
        "Conditions:",
        "  Type              Status",
        "  Ready             False",
        *EVENTS_TABLE,
    ]


def test_describe_pod_without_container_statuses_is_waiting() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    got = lines(printers.describe(pod, [], NOW))
    assert "    State:          Waiting" in got
    assert got[:2] == ["Name:           p", "Namespace:      default"]
    assert got[-1] == "Events:         <none>"


def test_describe_replicaset_with_extra_fields() -> None:
    extra = [("Endpoints", "x:1"), ("NewReplicaSet", "<none>")]
    assert lines(printers.describe(RS, [], NOW, extra)) == [
        "Name:           web-abc",
        "Namespace:      default",
        "CreationTimestamp: 2027-01-14T08:00:00Z",
        "Labels:         app=web",
        "Annotations:    <none>",
        "Selector:       app=web,tier in (a,b),x notin (c),y,!z",
        "Replicas:       2 current / 3 desired",
        "Pods Status:    1 Ready / 1 Available",
        "Pod Template:",
        "  Labels:  app=web",
        "  main:  Image: nginx:1",
        "  side:  Image: busybox",
        "Endpoints:      x:1",
        "NewReplicaSet:  <none>",
        "Events:         <none>",
    ]


def test_describe_deployment() -> None:
    assert lines(printers.describe(DEPLOY, EVENTS, NOW)) == [
        "Name:           web",
        "Namespace:      prod",
        "CreationTimestamp: 2027-01-15T07:55:30Z",
        "Labels:         <none>",
        "Annotations:    <none>",
        "Selector:       app=web",
        "Replicas:       3 desired | 1 updated | 4 total | 2 available | 1 unavailable",
        "StrategyType:   RollingUpdate",
        "MinReadySeconds: 5",
        "RollingUpdateStrategy:  25% max unavailable, 1 max surge",
        "Paused:         true",
        "Pod Template:",
        "  Labels:  app=web",
        "  main:  Image: nginx:1",
        "  side:  Image: busybox",
        "Conditions:",
        "  Type           Status  Reason",
        "  Progressing    True    ReplicaSetUpdated",
        *EVENTS_TABLE,
    ]


def test_describe_service() -> None:
    assert lines(printers.describe(SVC, [], NOW)) == [
        "Name:           web",
        "Namespace:      default",
        "CreationTimestamp: 2027-01-10T08:00:00Z",
        "Labels:         <none>",
        "Annotations:    <none>",
        "Selector:       app=web",
        "Type:           LoadBalancer",
        "IP:             127.96.0.20",
        "LoadBalancer Ingress: 10.0.0.1,lb.local",
        "Port:           http  80/TCP",
        "TargetPort:     8080/TCP",
        "NodePort:       http  30080/TCP",
        "Port:           <unset>  53/UDP",
        "TargetPort:     53/UDP",
        "Session Affinity: None",
        "Events:         <none>",
    ]


def _owned_rs(name: str, revision: str, uid: str = "d1") -> dict:
    return {
        "metadata": {
            "name": name,
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": uid}],
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 1},
    }


def test_deployment_replicasets_splits_owned_sets_by_the_deployments_revision() -> None:
    dep = {"metadata": {"name": "web", "uid": "d1", "annotations": {"deployment.kubernetes.io/revision": "3"}}}
    rss = [_owned_rs("web-a", "1"), _owned_rs("web-b", "2"), _owned_rs("web-c", "3"), _owned_rs("other", "3", "x")]
    assert printers.deployment_replicasets(dep, rss) == [
        ("OldReplicaSets", "web-a (1/2 replicas created), web-b (1/2 replicas created)"),
        ("NewReplicaSet", "web-c (1/2 replicas created)"),
    ]
    assert printers.deployment_replicasets(dep, []) == [("OldReplicaSets", "<none>"), ("NewReplicaSet", "<none>")]
