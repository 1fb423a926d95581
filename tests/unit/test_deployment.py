"""Deployment controller: the worked examples of docs/kubernetes.md §2 through a small pure simulator, plus units."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import rollout
from reconciler.controllers.deployment import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    equal_ignore_hash,
    find_new_rs,
    get_condition,
    pod_template_hash,
    revisions,
    rollout_status,
    sync_deployment,
)
from reconciler.controllers.podutil import ALPHABET, controller_ref, from_rfc3339, is_pod_ready, to_rfc3339
from reconciler.controllers.replicaset import sync_replicaset

T0 = from_rfc3339("2026-11-25T20:00:00Z")


def template(image: str = "web:1") -> dict:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "web", "image": image}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    }


def make_deploy(replicas=3, surge=1, unavailable=0, strategy="RollingUpdate", **spec) -> dict:
    strat: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "deploy-uid",
            "generation": 1,
            "labels": {},
            "annotations": {},
            "creationTimestamp": to_rfc3339(T0),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "strategy": strat,
            "minReadySeconds": 0,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "paused": False,
            **spec,
        },
        "status": {},
    }


class World:
    """A fake cluster: one Deployment, its RSs and pods; one ``step`` = one deployment sync.

    After the deployment sync every RS syncs (pods are created / deleted), then pods whose
    readiness delay has elapsed become Ready, then RS statuses are refreshed. Pods are
    therefore never Ready within the sync that created them. ``ready_delay(pod)`` gives the
    number of extra steps a new pod waits (None = never Ready, a broken image).
    """

    def __init__(
        self,
        deploy: dict,
        ready_delay: Callable[[dict], int | None] | None = None,
        graceful: bool = False,
    ) -> None:
        self.deploy = deploy
        self.rss: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.now = T0
        self.step_no = 0
        self.ids = itertools.count(1)
        self.ready_at: dict[str, int | None] = {}
        self.ready_delay = ready_delay or (lambda pod: 0 if "broken" not in _image(pod) else None)
        self.graceful = graceful
        self.events: list = []
        self.last = None

    def new_uid(self) -> str:
        return f"uid-{next(self.ids):06d}"

    def new_pod(self) -> tuple[str, str]:
        n = next(self.ids)
        suffix = "".join(ALPHABET[(n // 27**i) % 27] for i in range(5))
        return suffix, f"pod-{n:06d}"

    def set_template(self, tpl: dict) -> None:
        self.deploy["spec"]["template"] = copy.deepcopy(tpl)
        self.deploy["metadata"]["generation"] += 1

    def set_spec(self, **changes) -> None:
        self.deploy["spec"].update(changes)
        self.deploy["metadata"]["generation"] += 1

    def step(self, advance: float = 1.0):
        self.now += advance
        self.step_no += 1
        # pods deleted gracefully in the previous step are gone now
        terminating = [uid for uid, p in self.pods.items() if p["metadata"].get("deletionTimestamp")]
        res = sync_deployment(
            copy.deepcopy(self.deploy), list(self.rss.values()), list(self.pods.values()), self.now, self.new_uid
        )
        self.last = res
        self.events.extend(res.events)
        for rs in res.create_rs:
            assert rs["metadata"]["name"] not in self.rss
            self.rss[rs["metadata"]["name"]] = copy.deepcopy(rs)
        for rs in res.update_rs:
            assert rs["metadata"]["name"] in self.rss
            self.rss[rs["metadata"]["name"]] = copy.deepcopy(rs)
        for name in res.delete_rs:
            del self.rss[name]
        self.deploy["status"] = res.status
        if res.deployment_annotations is not None:
            self.deploy["metadata"]["annotations"] = dict(res.deployment_annotations)
        for uid in terminating:
            self.pods.pop(uid, None)
        self.sync_rss()
        self.mark_ready()
        self.refresh_rs_status()
        return res

    def sync_rss(self) -> None:
        for name in sorted(self.rss):
            rs = self.rss[name]
            res = sync_replicaset(rs, list(self.pods.values()), self.now, self.new_pod)
            for pod in res.create:
                pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
                self.pods[pod["metadata"]["uid"]] = pod
                delay = self.ready_delay(pod)
                self.ready_at[pod["metadata"]["uid"]] = None if delay is None else self.step_no + delay
            for uid in res.delete:
                if self.graceful:
                    self.pods[uid]["metadata"]["deletionTimestamp"] = to_rfc3339(self.now)
                else:
                    del self.pods[uid]
            for uid in res.adopt:
                self.pods[uid]["metadata"].setdefault("ownerReferences", []).append(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": name,
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                    }
                )

    def mark_ready(self) -> None:
        for uid, pod in self.pods.items():
            at = self.ready_at.get(uid)
            if at is not None and at <= self.step_no and not is_pod_ready(pod):
                pod["status"]["conditions"] = [
                    {"type": "Ready", "status": "True", "lastTransitionTime": to_rfc3339(self.now)}
                ]

    def refresh_rs_status(self) -> None:
        for rs in self.rss.values():
            res = sync_replicaset(rs, list(self.pods.values()), self.now, self.new_pod)
            assert not res.create and not res.delete
            rs["status"] = res.status

    # observation

    def new_rs(self) -> dict | None:
        return find_new_rs(self.deploy, list(self.rss.values()))

    def row(self) -> tuple[int, int, int, int]:
        new = self.new_rs()
        old = sum(rs["spec"]["replicas"] for rs in self.rss.values() if rs is not new)
        live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        available = sum(1 for p in live if is_pod_ready(p))
        return old, (new["spec"]["replicas"] if new else 0), len(live), available

    def settle(self, limit: int = 100) -> None:
        for _ in range(limit):
            self.step()
            if rollout_status(self.deploy)[1] and all(
                rs is self.new_rs() or rs["spec"]["replicas"] == 0 for rs in self.rss.values()
            ):
                self.step()
                return
        raise AssertionError("did not settle")


def _image(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]


def healthy_world(deploy: dict, **kw) -> World:
    world = World(deploy, **kw)
    world.settle()
    assert world.row() == (0, deploy["spec"]["replicas"], deploy["spec"]["replicas"], deploy["spec"]["replicas"])
    return world


def run_rows(world: World, n: int) -> list[tuple[int, int, int, int]]:
    rows = []
    for _ in range(n):
        world.step()
        rows.append(world.row())
    return rows


# --- section 2 worked examples ----------------------------------------------------------


def test_example_a_surge1_unavailable0():
    world = healthy_world(make_deploy(3, 1, 0))
    world.set_template(template("web:2"))
    statuses = []
    rows = []
    for _ in range(7):
        world.step()
        statuses.append(rollout_status(world.deploy)[0])
        rows.append(world.row())
    assert rows == [(3, 1, 4, 4), (2, 1, 3, 3), (2, 2, 4, 4), (1, 2, 3, 3), (1, 3, 4, 4), (0, 3, 3, 3), (0, 3, 3, 3)]
    # the status written by sync k+1 describes the settled state after sync k
    assert statuses[1:] == [
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...',
        'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
        'deployment "web" successfully rolled out',
    ]
    progressing = get_condition(world.deploy["status"], "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert progressing["message"] == f'ReplicaSet "{world.new_rs()["metadata"]["name"]}" has successfully progressed.'
    assert get_condition(world.deploy["status"], "Available")["reason"] == "MinimumReplicasAvailable"


def test_example_a_events_follow_the_docs():
    world = healthy_world(make_deploy(3, 1, 0))
    first = world.new_rs()["metadata"]["name"]
    world.events.clear()
    world.set_template(template("web:2"))
    run_rows(world, 7)
    new = world.new_rs()["metadata"]["name"]
    assert [e.message for e in world.events] == [
        f"Scaled up replica set {new} to 1",
        f"Scaled down replica set {first} to 2 from 3",
        f"Scaled up replica set {new} to 2 from 1",
        f"Scaled down replica set {first} to 1 from 2",
        f"Scaled up replica set {new} to 3 from 2",
        f"Scaled down replica set {first} to 0 from 1",
    ]
    assert {(e.type, e.reason, e.kind, e.name) for e in world.events} == {
        ("Normal", "ScalingReplicaSet", "Deployment", "web")
    }


def test_example_b_surge1_unavailable1():
    world = healthy_world(make_deploy(3, 1, 1))
    world.set_template(template("web:2"))
    assert run_rows(world, 5) == [(2, 1, 3, 3), (2, 2, 4, 4), (0, 2, 2, 2), (0, 3, 3, 3), (0, 3, 3, 3)]


def test_example_c_defaults_four_replicas():
    world = healthy_world(make_deploy(4, "25%", "25%"))
    world.set_template(template("web:2"))
    assert run_rows(world, 6) == [(3, 1, 4, 4), (3, 2, 5, 5), (1, 2, 3, 3), (1, 4, 5, 5), (0, 4, 4, 4), (0, 4, 4, 4)]


def test_example_d_ten_replicas_surge_30_percent():
    world = healthy_world(make_deploy(10, "30%", 0))
    world.set_template(template("web:2"))
    assert run_rows(world, 9) == [
        (10, 3, 13, 13),
        (7, 3, 10, 10),
        (7, 6, 13, 13),
        (4, 6, 10, 10),
        (4, 9, 13, 13),
        (1, 9, 10, 10),
        (1, 10, 11, 11),
        (0, 10, 10, 10),
        (0, 10, 10, 10),
    ]


def test_broken_image_stalls_example_a():
    world = healthy_world(make_deploy(3, 1, 0))
    world.set_template(template("broken:2"))
    assert run_rows(world, 5) == [(3, 1, 4, 3)] * 5
    assert rollout_status(world.deploy) == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        False,
        False,
    )


def test_broken_image_stalls_example_c_then_deadline():
    world = healthy_world(make_deploy(4, "25%", "25%"))
    world.set_template(template("broken:2"))
    assert run_rows(world, 5) == [(3, 1, 4, 3), (3, 2, 5, 3), (3, 2, 5, 3), (3, 2, 5, 3), (3, 2, 5, 3)]
    progressing = get_condition(world.deploy["status"], "Progressing")
    assert progressing["status"] == "True"
    res = world.step()
    assert res.requeue_after is not None and 590 < res.requeue_after <= 601
    world.step(advance=601)
    assert world.row() == (3, 2, 5, 3)
    progressing = get_condition(world.deploy["status"], "Progressing")
    new = world.new_rs()["metadata"]["name"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{new}" has timed out progressing.'
    assert get_condition(world.deploy["status"], "Available")["status"] == "True"
    assert rollout_status(world.deploy) == ('deployment "web" exceeded its progress deadline', False, True)
    # fixing the image flips it back and finishes
    world.set_template(template("web:3"))
    world.settle()
    assert get_condition(world.deploy["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_proportional_scaling_docs_example():
    world = healthy_world(make_deploy(10, 3, 2))
    world.set_template(template("broken:2"))
    run_rows(world, 4)
    assert world.row()[:2] == (8, 5)
    new = world.new_rs()
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "13"
    world.set_spec(replicas=15)
    world.step()
    assert world.row()[:2] == (11, 7)
    for rs in world.rss.values():
        if rs["spec"]["replicas"]:
            assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "15"
            assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "18"
    assert world.deploy["metadata"]["annotations"][REVISION_ANNOTATION] == "2"  # scaling makes no revision


def test_plain_scale_of_a_complete_deployment():
    world = healthy_world(make_deploy(3, 1, 0))
    name = world.new_rs()["metadata"]["name"]
    world.set_spec(replicas=5)
    world.step()
    assert world.row() == (0, 5, 5, 5)
    assert world.events[-1].message == f"Scaled up replica set {name} to 5 from 3"
    world.set_spec(replicas=1)
    world.step()
    assert world.row() == (0, 1, 1, 1)
    assert world.events[-1].message == f"Scaled down replica set {name} to 1 from 5"
    assert len(world.rss) == 1


def test_recreate_waits_for_old_pods():
    world = healthy_world(make_deploy(3, strategy="Recreate"), graceful=True)
    old_name = world.new_rs()["metadata"]["name"]
    world.set_template(template("web:2"))
    world.step()
    assert world.rss[old_name]["spec"]["replicas"] == 0
    assert world.new_rs() is None
    # old pods are still terminating during this sync: no new RS yet
    assert all(p["metadata"].get("deletionTimestamp") for p in world.pods.values())
    world.step()
    assert world.new_rs() is None
    world.step()
    new = world.new_rs()
    assert new is not None and new["spec"]["replicas"] == 3
    assert all(controller_ref(p)["uid"] == new["metadata"]["uid"] for p in world.pods.values())
    world.settle()
    assert world.row() == (0, 3, 3, 3)


# --- revisions, reuse, history ----------------------------------------------------------


def test_revisions_and_reapplying_an_old_template_reuses_its_rs():
    world = healthy_world(make_deploy(3, 1, 0))
    first = world.new_rs()
    first_name = first["metadata"]["name"]
    assert first["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    world.set_template(template("web:2"))
    world.settle()
    second = world.new_rs()
    assert second["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    world.set_template(template("web:1"))
    world.settle()
    reused = world.new_rs()
    assert reused["metadata"]["name"] == first_name
    assert reused["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert reused["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
    assert world.deploy["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert [rev for rev, _ in revisions(world.deploy, list(world.rss.values()))] == [2, 3]
    assert all(p["metadata"]["name"].startswith(first_name + "-") for p in world.pods.values())


def test_history_cleanup_respects_revision_history_limit():
    world = healthy_world(make_deploy(2, 1, 0, revisionHistoryLimit=1))
    for image in ("web:2", "web:3", "web:4"):
        world.set_template(template(image))
        world.settle()
        world.step()
    assert len(world.rss) == 2
    assert sorted(rev for rev, _ in revisions(world.deploy, list(world.rss.values()))) == [3, 4]


def test_new_rs_shape_labels_annotations():
    deploy = make_deploy(3, 1, 0)
    deploy["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "v2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "deployment.kubernetes.io/revision": "7",
        "team": "blue",
    }
    res = sync_deployment(deploy, [], [], T0, lambda: "rs-uid")
    (rs,) = res.create_rs
    h = pod_template_hash(deploy["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["labels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", HASH_LABEL: h}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": "deploy-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "v2",
        "team": "blue",
        "deployment.kubernetes.io/revision": "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    assert res.deployment_annotations[REVISION_ANNOTATION] == "1"
    progressing = get_condition(res.status, "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "NewReplicaSetCreated",
        f'Created new replica set "web-{h}"',
    )
    assert [e.message for e in res.events] == [f"Scaled up replica set web-{h} to 3"]


def test_change_cause_is_copied_to_current_rs_only():
    world = healthy_world(make_deploy(2, 1, 0))
    world.deploy["metadata"]["annotations"]["kubernetes.io/change-cause"] = "first"
    world.step()
    first = world.new_rs()
    assert first["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    world.set_template(template("web:2"))
    world.deploy["metadata"]["annotations"]["kubernetes.io/change-cause"] = "second"
    world.settle()
    assert world.new_rs()["metadata"]["annotations"]["kubernetes.io/change-cause"] == "second"
    assert world.rss[first["metadata"]["name"]]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"


def test_pod_template_hash_stable_and_alphabet():
    t = template()
    h = pod_template_hash(t)
    assert h == pod_template_hash(copy.deepcopy(t))
    assert set(h) <= set(ALPHABET) and 6 <= len(h) <= 10
    with_hash = copy.deepcopy(t)
    with_hash["metadata"]["labels"][HASH_LABEL] = "abc"
    assert pod_template_hash(with_hash) == h
    assert equal_ignore_hash(with_hash, t)
    reordered = {"spec": t["spec"], "metadata": {"annotations": {}, "labels": {"app": "web"}}}
    assert pod_template_hash(reordered) == h
    assert pod_template_hash(template("web:2")) != h
    assert pod_template_hash(t, 1) != h


def test_hash_collision_bumps_collision_count():
    deploy = make_deploy(1, 1, 0)
    h = pod_template_hash(deploy["spec"]["template"])
    squatter = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"web-{h}",
            "namespace": "default",
            "uid": "other",
            "labels": {"app": "other"},
            "creationTimestamp": to_rfc3339(T0),
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}}, "template": template("x")},
    }
    res = sync_deployment(deploy, [squatter], [], T0, lambda: "rs-uid")
    assert res.status["collisionCount"] == 1
    assert res.create_rs[0]["metadata"]["name"] == f"web-{pod_template_hash(deploy['spec']['template'], 1)}"


def test_adopts_orphan_rs_and_releases_relabeled_rs():
    world = healthy_world(make_deploy(2, 1, 0))
    rs = world.new_rs()
    rs["metadata"]["ownerReferences"] = []
    res = world.step()
    assert [r["metadata"]["name"] for r in res.update_rs] == [rs["metadata"]["name"]]
    assert controller_ref(world.rss[rs["metadata"]["name"]])["uid"] == "deploy-uid"
    assert not res.create_rs
    world.rss[rs["metadata"]["name"]]["metadata"]["labels"]["app"] = "elsewhere"
    res = world.step()
    assert controller_ref(world.rss[rs["metadata"]["name"]]) is None
    assert len(res.create_rs) == 1


def test_paused_scales_but_does_not_roll_out_then_resumes():
    world = healthy_world(make_deploy(3, 1, 0))
    world.set_spec(paused=True)
    world.step()
    progressing = get_condition(world.deploy["status"], "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    world.set_template(template("web:2"))
    run_rows(world, 3)
    assert len(world.rss) == 1 and world.new_rs() is None
    world.set_spec(replicas=4)
    world.step()
    assert world.row() == (4, 0, 4, 4)
    assert world.deploy["status"]["observedGeneration"] == world.deploy["metadata"]["generation"]
    world.set_spec(paused=False)
    world.step()
    progressing = get_condition(world.deploy["status"], "Progressing")
    # resumed (Unknown) -> new RS created -> ready count went up since the paused status
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    assert len(world.rss) == 2
    world.settle()
    assert world.row() == (0, 4, 4, 4)


def test_resume_sets_deployment_resumed_first():
    deploy = make_deploy(1, 1, 0, paused=True)
    res = sync_deployment(deploy, [], [], T0, lambda: "u")
    assert not res.create_rs
    deploy["status"] = res.status
    deploy["spec"]["paused"] = False
    res = sync_deployment(deploy, [], [], T0 + 5, lambda: "u")
    # Unknown/DeploymentResumed is set first, then replaced by the new RS's condition in the same sync
    assert get_condition(res.status, "Progressing")["reason"] == "NewReplicaSetCreated"


def test_empty_selector_only_observes():
    deploy = make_deploy()
    deploy["spec"]["selector"] = {}
    res = sync_deployment(deploy, [], [], T0, lambda: "u")
    assert not res.create_rs
    assert res.status["observedGeneration"] == 1
    assert res.events[0].type == "Warning"


def test_rollout_status_messages():
    d = make_deploy(3)
    d["metadata"]["generation"] = 2
    d["status"] = {"observedGeneration": 1}
    assert rollout_status(d) == ("Waiting for deployment spec update to be observed...", False, False)
    d["status"] = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}
    assert rollout_status(d) == (
        'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
        False,
        False,
    )
    d["status"]["availableReplicas"] = 3
    assert rollout_status(d) == ('deployment "web" successfully rolled out', True, False)


def test_min_ready_seconds_requeue():
    world = healthy_world(make_deploy(1, 1, 0, minReadySeconds=10))
    # healthy_world only settles once pods are available, so the sim has advanced the clock
    world.set_template(template("web:2"))
    world.step()
    res = world.step()
    assert res.requeue_after is not None and 0 < res.requeue_after <= 10.01


# --- properties ---------------------------------------------------------------------------

int_or_pct = st.one_of(st.integers(0, 4), st.sampled_from(["0%", "10%", "25%", "30%", "50%", "100%"]))


def _is_zero(v) -> bool:
    return v == 0 or v == "0%"


@settings(deadline=None, max_examples=200)
@given(
    replicas=st.integers(0, 12),
    surge=int_or_pct,
    unavailable=int_or_pct,
    seed=st.integers(0, 2**32 - 1),
)
def test_rolling_update_properties(replicas, surge, unavailable, seed):
    if _is_zero(surge) and _is_zero(unavailable):
        unavailable = 1
    rng = random.Random(seed)
    world = World(make_deploy(replicas, surge, unavailable), ready_delay=lambda pod: rng.randint(0, 3))
    world.settle(200)
    first = world.new_rs()
    max_surge, max_unavailable = rollout.resolve_fenceposts(surge, unavailable, replicas)
    revs = [int(first["metadata"]["annotations"][REVISION_ANNOTATION])]

    for image, expect_reuse in (("web:2", False), ("web:1", True)):
        world.set_template(template(image))
        for _ in range(300):
            world.step()
            _old, _new, pods, available = world.row()
            assert pods <= replicas + max_surge
            assert available >= replicas - max_unavailable
            new = world.new_rs()
            if (
                rollout_status(world.deploy)[1]
                and new is not None
                and all(rs is new or rs["spec"]["replicas"] == 0 for rs in world.rss.values())
                and len(world.pods) == replicas
            ):
                break
        else:
            raise AssertionError("rollout did not converge")
        new = world.new_rs()
        assert all(
            p["metadata"]["labels"][HASH_LABEL] == new["metadata"]["labels"][HASH_LABEL] for p in world.pods.values()
        )
        assert all(_image(p) == image for p in world.pods.values())
        revs.append(int(new["metadata"]["annotations"][REVISION_ANNOTATION]))
        if expect_reuse:
            assert new["metadata"]["name"] == first["metadata"]["name"]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


def test_resume_of_a_stalled_rollout_restarts_the_deadline():
    world = healthy_world(make_deploy(3, 1, 0))
    world.set_template(template("broken:2"))
    run_rows(world, 3)
    world.set_spec(paused=True)
    world.step(advance=1000)
    assert get_condition(world.deploy["status"], "Progressing")["reason"] == "DeploymentPaused"
    assert rollout_status(world.deploy)[1:] == (False, False)
    world.set_spec(paused=False)
    res = world.step(advance=1000)
    progressing = get_condition(world.deploy["status"], "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentResumed",
        "Deployment is resumed",
    )
    assert res.requeue_after is not None and 600 <= res.requeue_after <= 601
    world.step(advance=601)
    assert get_condition(world.deploy["status"], "Progressing")["reason"] == "ProgressDeadlineExceeded"


@settings(deadline=None, max_examples=100)
@given(
    replicas=st.integers(1, 12),
    surge=int_or_pct,
    unavailable=int_or_pct,
    rollover_after=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_rollover_mid_rollout_keeps_bounds(replicas, surge, unavailable, rollover_after, seed):
    if _is_zero(surge) and _is_zero(unavailable):
        unavailable = 1
    rng = random.Random(seed)
    world = World(make_deploy(replicas, surge, unavailable), ready_delay=lambda pod: rng.randint(0, 2))
    world.settle(200)
    max_surge, max_unavailable = rollout.resolve_fenceposts(surge, unavailable, replicas)
    world.set_template(template("web:2"))
    for i in range(300):
        if i == rollover_after:
            world.set_template(template("web:3"))
        world.step()
        _old, _new, pods, available = world.row()
        assert pods <= replicas + max_surge
        assert available >= replicas - max_unavailable
        if (
            i > rollover_after
            and rollout_status(world.deploy)[1]
            and len(world.pods) == replicas
            and all(_image(p) == "web:3" for p in world.pods.values())
        ):
            break
    else:
        raise AssertionError("rollover did not converge")


# --- issue 11 item 8: ReplicaFailure copied from the ReplicaSets ---------------------------------
# Kubernetes: pkg/controller/deployment/progress.go syncRolloutStatus / getReplicaFailures and
# util.ReplicaSetToDeploymentCondition.


def _rs_failure(message: str, at: float) -> dict:
    return {
        "type": "ReplicaFailure",
        "status": "True",
        "lastTransitionTime": to_rfc3339(at),
        "reason": "FailedCreate",
        "message": message,
    }


def test_replica_failure_is_copied_from_the_new_rs_and_removed_with_it():
    world = healthy_world(make_deploy(3))
    new = world.new_rs()
    new["status"]["conditions"] = [_rs_failure("pod CIDR is exhausted", T0 + 1)]
    world.step()
    assert get_condition(world.deploy["status"], "ReplicaFailure") == {
        "type": "ReplicaFailure",
        "status": "True",
        "lastUpdateTime": to_rfc3339(T0 + 1),
        "lastTransitionTime": to_rfc3339(T0 + 1),
        "reason": "FailedCreate",
        "message": "pod CIDR is exhausted",
    }
    assert get_condition(world.deploy["status"], "Available")["status"] == "True"
    # the RS's condition goes (a sync without an error): so does the Deployment's
    world.new_rs()["status"].pop("conditions")
    world.step()
    assert get_condition(world.deploy["status"], "ReplicaFailure") is None


def test_replica_failure_of_the_new_rs_wins_over_an_old_one():
    world = healthy_world(make_deploy(3))
    old_name = world.new_rs()["metadata"]["name"]
    world.set_template(template("web:2"))
    world.step()
    new_name = world.new_rs()["metadata"]["name"]
    assert new_name != old_name
    world.rss[old_name]["status"]["conditions"] = [_rs_failure("old failure", T0 + 1)]
    world.step()
    assert get_condition(world.deploy["status"], "ReplicaFailure")["message"] == "old failure"
    world.deploy["status"]["conditions"] = [
        c for c in world.deploy["status"]["conditions"] if c["type"] != "ReplicaFailure"
    ]
    world.rss[new_name]["status"]["conditions"] = [_rs_failure("new failure", T0 + 2)]
    world.step()
    assert get_condition(world.deploy["status"], "ReplicaFailure")["message"] == "new failure"


def test_replica_failure_without_a_progress_deadline():
    world = healthy_world(make_deploy(2, progressDeadlineSeconds=None))
    world.new_rs()["status"]["conditions"] = [_rs_failure("refused", T0 + 1)]
    world.step()
    assert get_condition(world.deploy["status"], "ReplicaFailure")["message"] == "refused"
    assert get_condition(world.deploy["status"], "Progressing") is None
