"""Kinds stored without effect (RBAC, PDB, HPA, CRDs and their custom resources) and
ReplicationControllers: loading, validation, and the pure pass with a fake runtime."""

from __future__ import annotations

import copy

import pytest

from reconciler.cluster import key_of
from reconciler.errors import RevisionRejected
from reconciler.manifests import crd
from reconciler.manifests.revision import load_revision
from tests.unit import test_reconcile_pass
from tests.unit.test_reconcile_pass import World, reasons

key = key_of


@pytest.fixture(autouse=True)
def _cluster_scoped_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake executor keys objects as the store does: cluster-scoped ones with namespace ""."""
    monkeypatch.setattr(test_reconcile_pass, "key", key_of)


SA = b"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\n"
RBAC = b"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: app}]
"""
PDB = b"""apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}
"""
HPA = b"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""
CRD = b"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer}
"""
CR = b"""apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: my-new-cron-object}
spec: {cronSpec: "* * * * */5", image: my-awesome-cron-image}
"""
RC = b"""apiVersion: v1
kind: ReplicationController
metadata: {name: kubia}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: kubia}}
    spec:
      serviceAccountName: app
      containers: [{name: kubia, image: luksa/kubia}]
"""


def rejected(files: dict[str, bytes]) -> str:
    with pytest.raises(RevisionRejected) as e:
        load_revision(files)
    return str(e.value)


def test_inert_kinds_load_with_keys() -> None:
    ms = load_revision(
        {"sa.yaml": SA, "rbac.yaml": RBAC, "pdb.yaml": PDB, "hpa.yaml": HPA, "crd.yaml": CRD, "cr.yaml": CR}
    )
    keys = {m.key for m in ms}
    assert keys == {
        ("ServiceAccount", "default", "app"),
        ("ClusterRole", "", "reader"),
        ("RoleBinding", "default", "read-pods"),
        ("PodDisruptionBudget", "default", "web"),
        ("HorizontalPodAutoscaler", "default", "web"),
        ("CustomResourceDefinition", "", "crontabs.stable.example.com"),
        ("CronTab", "default", "my-new-cron-object"),
    }
    cluster_role = next(m.obj for m in ms if m.obj["kind"] == "ClusterRole")
    assert "namespace" not in cluster_role["metadata"]


def test_hpa_autoscaling_v1_accepted() -> None:
    doc = b"""apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec: {scaleTargetRef: {kind: Deployment, name: d}, maxReplicas: 3, targetCPUUtilizationPercentage: 50}
"""
    assert [m.key for m in load_revision({"h.yaml": doc})] == [("HorizontalPodAutoscaler", "default", "h")]


def test_custom_resource_without_its_crd_rejects_naming_kind_and_file() -> None:
    msg = rejected({"sa.yaml": SA, "cr.yaml": CR})
    assert "cr.yaml" in msg and "'CronTab'" in msg and "'stable.example.com/v1'" in msg
    assert "ServiceAccount (v1)" in msg  # what is supported is listed


def test_custom_resource_of_an_unserved_version_rejects() -> None:
    cr = CR.replace(b"stable.example.com/v1", b"stable.example.com/v2")
    assert "cr.yaml" in rejected({"crd.yaml": CRD, "cr.yaml": cr})


def test_custom_resource_checked_against_the_crd_schema() -> None:
    cr = CR.replace(b"image: my-awesome-cron-image", b"image: 5, colour: red")
    msg = rejected({"crd.yaml": CRD, "cr.yaml": cr})
    assert "spec.image" in msg and 'unknown field "spec.colour"' in msg


def test_cluster_scoped_custom_resource_has_no_namespace() -> None:
    crd_doc = CRD.replace(b"scope: Namespaced", b"scope: Cluster")
    ms = load_revision({"crd.yaml": crd_doc, "cr.yaml": CR})
    assert ("CronTab", "", "my-new-cron-object") in {m.key for m in ms}


def test_typo_kind_still_rejects() -> None:
    assert "'ServiceAcount'" in rejected({"a.yaml": SA.replace(b"ServiceAccount", b"ServiceAcount")})
    assert "'Deploymnet'" in rejected({"a.yaml": b"apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: a}\n"})


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (RBAC.replace(b"verbs: [get, list]", b"verbs: []"), "rules[0].verbs"),
        (RBAC.replace(b"kind: ClusterRole, name", b"kind: Secret, name"), "roleRef.kind"),
        (PDB.replace(b"minAvailable: 1", b"minAvailable: 1, maxUnavailable: 1"), "spec"),
        (HPA.replace(b"maxReplicas: 5", b"maxReplicas: 0"), "spec.maxReplicas"),
        (CRD.replace(b"group: stable.example.com", b"group: example"), "spec.group"),
        (CRD.replace(b"storage: true", b"storage: false"), "spec.versions"),
        (
            b"apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: system-x}\nvalue: 5\n",
            "metadata.name",
        ),
        (RC.replace(b"replicas: 3", b"replicas: -1"), "spec.replicas"),
        (RC.replace(b"  replicas: 3\n", b"  replicas: 3\n  selector: {app: other}\n"), "spec.template.metadata.labels"),
    ],
)
def test_validation_rules(doc: bytes, field: str) -> None:
    assert f"): {field}:" in rejected({"x.yaml": doc})


def test_rc_defaults_selector_and_labels_from_template() -> None:
    (m,) = load_revision({"rc.yaml": RC})
    assert m.obj["spec"]["selector"] == {"app": "kubia"}
    assert m.obj["metadata"]["labels"] == {"app": "kubia"}
    assert m.obj["spec"]["replicas"] == 3
    assert m.obj["spec"]["template"]["spec"]["serviceAccountName"] == "app"  # accepted as Kubernetes does
    (m1,) = load_revision({"rc.yaml": RC.replace(b"  replicas: 3\n", b"")})
    assert m1.obj["spec"]["replicas"] == 1


def test_schema_check_allows_preserved_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    assert crd.schema_errors({"spec": {"anything": 1}}, schema) == []
    assert crd.schema_errors({"spek": {}}, schema) == [("spek", 'unknown field "spek"')]


# -- the pure pass -----------------------------------------------------------------------------


def manifests(**files: bytes) -> list[dict]:
    return [copy.deepcopy(m.obj) for m in load_revision({f"{k}.yaml": v for k, v in files.items()})]


def test_inert_objects_stored_with_a_no_effect_event_then_pruned() -> None:
    objs = manifests(sa=SA, rbac=RBAC, pdb=PDB, crd=CRD, cr=CR)
    w = World(*objs)
    ch = w.step()
    no_effect = [r for r in reasons(ch) if r[0] == "NoEffect"]
    assert len(no_effect) == len(objs)
    assert all(e["type"] == "Warning" for e in ch.events if e["reason"] == "NoEffect")
    assert ch.start == []  # nothing runs
    sa = w.live[("ServiceAccount", "default", "app")]
    assert "status" not in sa and "generation" not in sa["metadata"]
    pdb = w.live[("PodDisruptionBudget", "default", "web")]
    assert pdb["metadata"]["generation"] == 1
    # a changed binding: updated, no new event
    rb_key = ("RoleBinding", "default", "read-pods")
    w.desired[rb_key] = copy.deepcopy(w.desired[rb_key])
    w.desired[rb_key]["subjects"] = [{"kind": "ServiceAccount", "name": "other"}]
    ch = w.step()
    assert w.live[rb_key]["subjects"] == [{"kind": "ServiceAccount", "name": "other"}]
    assert [e for e in ch.events if e["reason"] == "NoEffect"] == []
    again = w.step()
    assert again.put == [] and again.events == []
    # removed from git: pruned
    cr_key = ("CronTab", "default", "my-new-cron-object")
    del w.desired[cr_key]
    del w.desired[("ClusterRole", "", "reader")]
    ch = w.step()
    assert cr_key not in w.live and ("ClusterRole", "", "reader") not in w.live
    assert ("Pruned", "CronTab", "my-new-cron-object") in reasons(ch)


def rc_world(replicas: int = 3) -> tuple[World, tuple[str, str, str]]:
    (rc,) = manifests(rc=RC.replace(b"replicas: 3", f"replicas: {replicas}".encode()))
    w = World(rc)
    return w, key(rc)


def rc_pods(w: World) -> list[dict]:
    return [p for p in w.of_kind("Pod") if not p["metadata"].get("deletionTimestamp")]


def test_rc_keeps_its_replicas_and_replaces_a_lost_pod() -> None:
    w, k = rc_world(3)
    for _ in range(4):
        w.step()
    pods = rc_pods(w)
    assert len(pods) == 3
    for p in pods:
        (ref,) = p["metadata"]["ownerReferences"]
        assert ref["kind"] == "ReplicationController" and ref["apiVersion"] == "v1" and ref["controller"]
        assert p["metadata"]["name"].startswith("kubia-")
    w.step()
    st = w.live[k]["status"]
    assert st["replicas"] == 3 and st["readyReplicas"] == 3 and st["availableReplicas"] == 3
    assert st["fullyLabeledReplicas"] == 3 and st["observedGeneration"] == 1
    # a pod disappears (killed and gone): the controller makes a new one
    victim = pods[0]
    del w.live[key(victim)]
    w.running.pop(victim["metadata"]["uid"], None)
    ch = w.step()
    (start,) = ch.start
    assert start.created_event is not None and start.created_event["kind"] == "ReplicationController"
    assert len(rc_pods(w)) == 3


def test_rc_scales_down_and_adopts_matching_orphans() -> None:
    w, k = rc_world(3)
    for _ in range(4):
        w.step()
    rc = copy.deepcopy(w.desired[k])
    rc["spec"]["replicas"] = 1
    w.desired[k] = rc
    ch = w.step()
    assert sum(1 for e in ch.events if e["reason"] == "SuccessfulDelete" and e["kind"] == "ReplicationController") == 2
    for _ in range(2):
        w.step()
    assert len(rc_pods(w)) == 1


def test_rc_equality_selector_ignores_pods_with_other_labels() -> None:
    w, k = rc_world(1)
    stranger = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "stranger",
            "generateName": "strange",
            "namespace": "default",
            "uid": "x-1",
            "labels": {"app": "other"},
        },
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"},
    }
    w.live[key(stranger)] = stranger
    for _ in range(3):
        w.step()
    assert "ownerReferences" not in w.live[key(stranger)]["metadata"]
    assert len([p for p in rc_pods(w) if p["metadata"]["name"] != "stranger"]) == 1


# -- printing ----------------------------------------------------------------------------------


def test_get_columns_of_kinds_without_effect() -> None:
    from reconciler import printers
    from reconciler.controllers.podutil import from_rfc3339

    objs = {m.obj["kind"]: m.obj for m in load_revision({"a.yaml": SA, "r.yaml": RBAC, "p.yaml": PDB, "h.yaml": HPA})}
    for o in objs.values():
        o["metadata"]["creationTimestamp"] = "2026-11-25T20:00:00Z"
    now = from_rfc3339("2026-11-25T20:00:00Z") + 90
    table = printers.rows_for("PodDisruptionBudget", [objs["PodDisruptionBudget"]], now, False).splitlines()
    assert table[0].split("   ") == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert table[1].split() == ["web", "1", "N/A", "0", "90s"]
    assert printers.rows_for("ServiceAccount", [objs["ServiceAccount"]], now, False).splitlines()[1].split() == [
        "app",
        "0",
        "90s",
    ]
    hpa = printers.rows_for("HorizontalPodAutoscaler", [objs["HorizontalPodAutoscaler"]], now, False).splitlines()
    assert hpa[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert "Deployment/web" in hpa[1] and "cpu: <unknown>/50%" in hpa[1]
    role = printers.rows_for("ClusterRole", [objs["ClusterRole"]], now, False, all_namespaces=True).splitlines()
    # no NAMESPACE column: cluster-scoped
    assert [c.strip() for c in role[0].split("   ") if c] == ["NAME", "CREATED AT"]
    assert role[1].split() == ["reader", "2026-11-25T20:00:00Z"]
    rb = printers.describe(objs["RoleBinding"], [], now)
    assert "Kind:  ClusterRole" in rb and "ServiceAccount  app" in rb
    assert "Namespace:" not in printers.describe(objs["ClusterRole"], [], now)


def test_cli_names_of_kinds_and_custom_kinds() -> None:
    from reconciler.cli.common import KINDS as NAMES
    from reconciler.kindnames import custom_kinds, without_effect_line, without_effect_summary

    for word, kind in {
        "sa": "ServiceAccount",
        "pdb": "PodDisruptionBudget",
        "netpol": "NetworkPolicy",
        "quota": "ResourceQuota",
        "limits": "LimitRange",
        "pc": "PriorityClass",
        "hpa": "HorizontalPodAutoscaler",
        "crd": "CustomResourceDefinition",
        "rc": "ReplicationController",
        "clusterrolebindings": "ClusterRoleBinding",
    }.items():
        assert NAMES[word] == kind
    (crd_obj,) = [m.obj for m in load_revision({"c.yaml": CRD.replace(b"Namespaced", b"Cluster")})]
    found = custom_kinds([crd_obj])
    assert {w: found.names[w] for w in ("ct", "crontab", "crontabs")} == dict.fromkeys(
        ("ct", "crontab", "crontabs"), "CronTab"
    )
    assert found.plurals == {"CronTab": "crontabs.stable.example.com"} and found.cluster == {"CronTab"}
    summary = without_effect_summary({"Pod": 3, "ServiceAccount": 1, "CronTab": 2, "Deployment": 1})
    assert summary == {"count": 3, "kinds": ["CronTab", "ServiceAccount"]}
    assert without_effect_line(summary) == [
        "No effect:     3 objects stored without effect (kinds CronTab, ServiceAccount)"
    ]
    assert without_effect_line({"count": 0, "kinds": []}) == []


def test_pod_service_account_accepted_and_checked() -> None:
    pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccount: app\n"
    pod += b"  containers: [{name: c, image: x}]\n"
    (m,) = load_revision({"p.yaml": pod})
    assert m.obj["spec"]["serviceAccountName"] == "app"  # the deprecated field read as the name
    bad = pod.replace(b"serviceAccount: app", b"serviceAccountName: App_1")
    assert "): spec.serviceAccountName: Invalid value" in rejected({"p.yaml": bad})
    assert "spec.template.spec.serviceAccountName" in rejected(
        {"rc.yaml": RC.replace(b"serviceAccountName: app", b"serviceAccountName: A!")}
    )
