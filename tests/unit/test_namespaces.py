"""Namespaces: validation, the revision's namespace check, and the namespace step of the pure pass."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.errors import RevisionRejected
from reconciler.manifests.namespaces import BUILTIN_NAMESPACES, check_namespaces
from reconciler.manifests.revision import load_revision
from reconciler.manifests.validate import default_and_validate
from tests.unit.test_reconcile_pass import World, deployment, pod, reasons, service

NS_DOC = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n"


def namespace(name: str = "team-a", **meta: Any) -> dict:
    obj, errors = default_and_validate(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}, "ns.yaml", 0
    )
    assert errors == []
    return obj


def in_ns(obj: dict, ns: str = "team-a") -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = ns
    return obj


# -- validation and defaults ---------------------------------------------------------------------


def test_defaults_the_finalizer_and_the_name_label_and_drops_a_namespace() -> None:
    obj = namespace(namespace="x", labels={"kubernetes.io/metadata.name": "other", "team": "a"})
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a", "team": "a"}
    assert "namespace" not in obj["metadata"]
    other, errors = default_and_validate(
        {"kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": ["example.com/x"]}}, "ns.yaml", 0
    )
    assert errors == [] and other["spec"]["finalizers"] == ["example.com/x", "kubernetes"]


@pytest.mark.parametrize(
    ("name", "finalizers", "field", "words"),
    [
        ("team.a", None, "metadata.name", "RFC 1123 label"),  # a subdomain, not a label
        ("a" * 64, None, "metadata.name", "no more than 63"),
        ("Team", None, "metadata.name", "Invalid value"),
        ("ok", ["foo"], "spec.finalizers[0]", "neither a standard finalizer name nor is it fully qualified"),
        ("ok", ["example.com/x", 5], "spec.finalizers[1]", "must be a string"),
    ],
)
def test_invalid_namespaces(name: str, finalizers: Any, field: str, words: str) -> None:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if finalizers is not None:
        obj["spec"] = {"finalizers": finalizers}
    _, errors = default_and_validate(obj, "ns.yaml", 0)
    assert [e.field for e in errors] == [field]
    assert words in errors[0].message


def test_an_object_in_an_unknown_namespace_rejects_the_revision_naming_the_file() -> None:
    cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: team-b\n"
    with pytest.raises(RevisionRejected) as e:
        load_revision({"apps/cm.yaml": cm, "ns.yaml": NS_DOC})
    (err,) = e.value.errors
    assert (err.file, err.field, err.document) == ("apps/cm.yaml", "metadata.namespace", 0)
    assert err.message == 'namespaces "team-b" not found'


def test_declared_and_built_in_namespaces_are_known() -> None:
    docs = {"ns.yaml": NS_DOC}
    for i, ns in enumerate(["team-a", *BUILTIN_NAMESPACES]):
        docs[f"cm{i}.yaml"] = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {ns}}}\n".encode()
    manifests = load_revision(docs)
    assert len(manifests) == 6 and check_namespaces(manifests) == []
    # cluster-scoped objects have no namespace to check
    pv = b"apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: v, namespace: nowhere}\nspec:\n"
    pv += b"  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /tmp/nsw}\n"
    assert len(load_revision({"pv.yaml": pv})) == 1


# -- the pass: built-in namespaces, git's Namespaces -----------------------------------------------


def test_the_built_in_namespaces_exist_and_are_active() -> None:
    w = World()
    w.step()
    names = sorted(o["metadata"]["name"] for o in w.of_kind("Namespace"))
    assert names == sorted(BUILTIN_NAMESPACES)
    for ns in w.of_kind("Namespace"):
        assert ns["status"] == {"phase": "Active"} and ns["spec"] == {"finalizers": ["kubernetes"]}
        assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": ns["metadata"]["name"]}
    again = w.step()
    assert again.put == [] and again.delete == []


def test_a_namespace_from_git_is_created_active_with_its_objects() -> None:
    w = World(namespace(), in_ns(deployment("web", replicas=2)), in_ns(service("web")), pod("web"))
    ch = w.step()
    ns = w.live[("Namespace", "", "team-a")]
    assert ns["status"] == {"phase": "Active"} and "generation" not in ns["metadata"]
    assert ("Created", "Namespace", "team-a") in reasons(ch)
    w.step()
    w.step()
    team = sorted(k[2] for k in w.live if k[0] == "Pod" and k[1] == "team-a")
    assert len(team) == 2 and all(n.startswith("web-") for n in team)
    assert ("Pod", "default", "web") in w.live and ("Endpoints", "team-a", "web") in w.live
    # endpoints never cross namespaces: team-a's Service selects team-a's pods only
    ep = w.live[("Endpoints", "team-a", "web")]
    ips = {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    assert ips == set(team)
    default_ep = w.live.get(("Endpoints", "default", "web"))
    assert default_ep is None  # no Service web in default


def _running_team(w: World) -> list[str]:
    for _ in range(4):
        w.step()
    return [o["metadata"]["uid"] for k, o in w.live.items() if k[0] == "Pod" and k[1] == "team-a"]


def test_removing_a_namespace_deletes_everything_in_it_then_the_namespace() -> None:
    objs = [namespace(), in_ns(deployment("web", replicas=2)), in_ns(service("web")), pod("keep")]
    w = World(*objs)
    uids = _running_team(w)
    assert len(uids) == 2
    w.desired = {k: v for k, v in w.desired.items() if k == ("Pod", "default", "keep")}
    w.hold_stops = True  # the pods take their grace
    w.now += 10
    ch = w.step()
    ns = w.live[("Namespace", "", "team-a")]
    m = ns["metadata"]
    assert m["deletionTimestamp"] and ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ("Terminating", "Namespace", "team-a") in reasons(ch)
    assert not [k for k in w.live if k[1] == "team-a" and k[0] != "Pod"]  # Deployment, RS, Service, Endpoints
    pods = [o for k, o in w.live.items() if k[0] == "Pod" and k[1] == "team-a"]
    assert len(pods) == 2 and all(p["metadata"]["deletionTimestamp"] for p in pods)
    assert all(p["metadata"]["deletionGracePeriodSeconds"] == 30 for p in pods)
    assert sorted(s.uid for s in ch.stop) == sorted(uids)
    (cond,) = ns["status"]["conditions"]
    assert (cond["type"], cond["reason"]) == ("NamespaceContentRemaining", "SomeResourcesRemain")
    assert cond["message"] == "Some resources are remaining: pods. has 2 resource instances"
    w.step()
    assert ("Namespace", "", "team-a") in w.live  # its pods are still stopping
    w.hold_stops = False  # the stops finish: the executor forgets the pods
    for uid in uids:
        w.terminating.discard(uid)
        w.running.pop(uid, None)
        w.launched.discard(uid)
    for k in [k for k in w.live if k[0] == "Pod" and k[1] == "team-a"]:
        del w.live[k]
    ch = w.step()
    assert ("Namespace", "", "team-a") not in w.live
    assert ("Deleted", "Namespace", "team-a") in reasons(ch)
    assert ("Pod", "default", "keep") in w.live and ("Namespace", "", "default") in w.live


def test_a_built_in_namespace_removed_from_git_stays() -> None:
    w = World(namespace("kube-system", labels={"team": "ops"}))
    w.step()
    ks = w.live[("Namespace", "", "kube-system")]
    assert ks["metadata"]["labels"]["team"] == "ops" and ks["metadata"].get("managedFields")
    w.desired = {}
    w.step()
    w.step()
    ks = w.live[("Namespace", "", "kube-system")]
    assert not ks["metadata"].get("deletionTimestamp") and ks["status"]["phase"] == "Active"


def test_objects_of_a_terminating_namespace_wait_until_it_is_gone() -> None:
    w = World(namespace(), in_ns(pod("a")))
    uids = _running_team(w)
    w.desired = {}
    w.hold_stops = True
    w.step()
    # declared again while it terminates: nothing of it goes live yet
    w.desired = {k: v for k, v in World(namespace(), in_ns(pod("a"))).desired.items()}
    w.step()
    pods = [o for k, o in w.live.items() if k[0] == "Pod" and k[1] == "team-a"]
    assert [p["metadata"]["uid"] for p in pods] == uids and pods[0]["metadata"]["deletionTimestamp"]
    for uid in uids:
        w.terminating.discard(uid)
        w.running.pop(uid, None)
        w.launched.discard(uid)
    del w.live[("Pod", "team-a", "a")]
    w.hold_stops = False
    w.step()  # the old namespace goes
    assert ("Namespace", "", "team-a") not in w.live
    w.step()  # then it is created again, with its pod
    ns = w.live[("Namespace", "", "team-a")]
    assert ns["status"]["phase"] == "Active" and not ns["metadata"].get("deletionTimestamp")
    assert w.live[("Pod", "team-a", "a")]["metadata"]["uid"] not in uids


def test_the_template_example_declares_a_namespace_and_its_app() -> None:
    from tests.conftest import TEMPLATE

    manifests = load_revision({"namespace.yaml": (TEMPLATE / "examples" / "namespace.yaml").read_bytes()})
    assert [m.key for m in manifests] == [
        ("Namespace", "", "team-a"),
        ("Deployment", "team-a", "kubia"),
        ("Service", "team-a", "kubia"),
    ]


def test_the_dns_zone_knows_every_namespace_and_keeps_services_apart() -> None:
    from dnslib import QTYPE

    from runtime.net.dns import NOERROR, NXDOMAIN, build_zone

    def svc(ns: str, ip: str) -> dict:
        return {"metadata": {"name": "web", "namespace": ns}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}

    zone = build_zone([svc("default", "10.96.0.20"), svc("team-a", "10.96.0.30")], [], [], namespaces=["team-b"])
    assert zone.answer("team-b.svc.cluster.local", "A") == (NOERROR, [])  # a namespace without Services
    assert zone.answer("team-c.svc.cluster.local", "A")[0] == NXDOMAIN
    for ns, ip in (("default", "10.96.0.20"), ("team-a", "10.96.0.30")):
        rcode, rrs = zone.answer(f"web.{ns}.svc.cluster.local", "A")
        assert rcode == NOERROR and [str(r.rdata) for r in rrs if r.rtype == QTYPE.A] == [ip]


def test_the_pass_hands_the_live_namespaces_to_the_dns_zone() -> None:
    w = World(namespace())
    ch = w.step()
    assert ch.zone.namespaces == tuple(sorted([*BUILTIN_NAMESPACES, "team-a"]))
