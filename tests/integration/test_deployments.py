"""Issue 3, end to end: ReplicaSets, Deployments and rollouts through the real CLI.

Real git repositories, a real `gitship up` daemon, real processes (the kubia app of the
template). Waiting is by polling with generous deadlines; rollout bounds are checked on
every sample of `get pods -o json` / `get rs -o json` taken while the rollout runs.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Self

from reconciler.api import request
from tests.conftest import commit_file, git, wait_for, pod_ready as ready

HASH_LABEL = "pod-template-hash"


# --- helpers ---------------------------------------------------------------------------------


def http_get(ip: str, port: int = 8080, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as r:
        return r.read().decode()


def ready_since(pod: dict) -> float:
    from reconciler.controllers.podutil import pod_ready_since

    return pod_ready_since(pod) or time.time()


def terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def image_of(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]


def pid_of(pod: dict) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        cid = cs.get("containerID") or ""
        if cid.startswith("pid://"):
            return int(cid[len("pid://") :])
    return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def deployment_yaml(
    image: str = "qinchaowhut/allen:v1",
    replicas: int = 3,
    *,
    strategy: str = "",
    probe_port: int = 8080,
    initial_delay: int = 0,
    extra_spec: str = "",
) -> str:
    """The seed's testqc Deployment (section 6.1) with a readinessProbe that makes readiness real."""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: testqc
spec:
  replicas: {replicas}
{strategy}{extra_spec}  template:
    metadata:
      name: allen
      labels:
        app: testing
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - image: {image}
        name: nodejs
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet:
            port: {probe_port}
          initialDelaySeconds: {initial_delay}
          periodSeconds: 1
  selector:
    matchLabels:
      app: testing
"""


def rolling(surge: int, unavailable: int) -> str:
    return f"""  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {surge}
      maxUnavailable: {unavailable}
"""


def deploy_pods(g) -> list[dict]:
    return g.pods("app=testing")


def all_on(g, image: str, n: int = 3) -> list[dict] | None:
    """All n pods of testqc are Ready on ``image`` and nothing else remains (terminating included)."""
    ps = deploy_pods(g)
    if len(ps) == n and all(ready(p) and not terminating(p) and image_of(p) == image for p in ps):
        return ps
    return None


def set_image(g, repo: Path, image: str) -> str:
    before = git(repo, "rev-parse", "HEAD")
    out = g.cli("set", "image", "deployment", "testqc", f"nodejs={image}").stdout
    assert "image updated" in out
    head = git(repo, "rev-parse", "HEAD")
    assert head != before
    return head


class Sampler:
    """Samples `get pods -o json` then `get rs -o json` from a few threads until stopped.

    Each sample is (t, pods, rss) with t taken after both calls; samples are sorted by t.
    Several threads keep the sampling rate up on a loaded machine (each call is a process).
    """

    def __init__(self, g, selector: str = "app=testing", threads: int = 3):
        self.g, self.selector = g, selector
        self.samples: list[tuple[float, list[dict], list[dict]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.g.pods(self.selector)
                rss = self.g.json("get", "rs")["items"]
                self.samples.append((time.time(), pods, rss))
            except Exception as e:  # noqa: BLE001 - a CLI call may race the daemon's writes: note it, keep going
                self.errors.append(repr(e))

    def __enter__(self) -> Self:
        for t in self._threads:
            # stagger the threads: each starts once the ones before have taken a new sample
            n = len(self.samples)
            t.start()
            wait_for(lambda n=n: len(self.samples) > n or self.errors, 30, what="a first sample")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self.samples.sort(key=lambda x: x[0])


def daemon_passes(g) -> int:
    """How many reconcile passes the running daemon has made."""
    return request(str(Path(g.state_dir, "gitship.sock")), "GET", "/v1/status", timeout=5)[1]["passes"]


def rs_by_image(rss: list[dict]) -> dict[str, dict]:
    return {r["spec"]["template"]["spec"]["containers"][0]["image"]: r for r in rss}


# --- 1. the seed's ReplicaSet (section 4.1) -----------------------------------------------------


def test_replicaset_self_heals_scales_and_prints(repo: Path, gitship_factory) -> None:
    g = gitship_factory(repo)
    assert "replicaset/dnsutil-rs created" in g.cli("create", "-f", str(repo / "examples" / "replicaset.yaml")).stdout
    pods = wait_for(
        lambda: (ps := [p for p in g.pods("app=dnsutil") if ready(p)]) and len(ps) == 2 and ps, 30, what="2 replicas"
    )
    names = {p["metadata"]["name"] for p in pods}
    assert all(re.fullmatch(r"dnsutil-rs-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names), names

    # a deleted pod is replaced by one with a new name
    victim = min(names)
    g.cli("delete", "pod", victim)
    pods = wait_for(
        lambda: (
            (ps := [p for p in g.pods("app=dnsutil") if ready(p) and not terminating(p)])
            and len(ps) == 2
            and victim not in {p["metadata"]["name"] for p in ps}
            and ps
        ),
        30,
        what="a replacement pod",
    )
    names = {p["metadata"]["name"] for p in pods}

    # Kubernetes' order (docs/kubernetes.md §3.3): all Running and Ready, so the pod Ready for the least time
    # goes first, compared in log2 buckets of age. Let the two pods be Ready for a few seconds
    # (a condition on their age, so the newest lands in a younger bucket), then scale 2 -> 3 -> 2.
    wait_for(
        lambda: all(time.time() - ready_since(p) >= 5.5 for p in g.pods("app=dnsutil")),
        30,
        what="the two pods Ready for a while",
    )
    before = git(repo, "rev-parse", "HEAD")
    out = g.cli("scale", "rs", "dnsutil-rs", "--replicas", "3").stdout
    assert "scaled" in out
    head = git(repo, "rev-parse", "HEAD")
    assert head != before and git(repo, "diff", "--name-only", before, head) == "replicaset.yaml"
    assert "replicas: 3" in (repo / "replicaset.yaml").read_text()
    assert "dnsutil-rs" in git(repo, "log", "-1", "--format=%s")
    pods = wait_for(
        lambda: (ps := [p for p in g.pods("app=dnsutil") if ready(p)]) and len(ps) == 3 and ps, 30, what="3 replicas"
    )
    third = ({p["metadata"]["name"] for p in pods} - names).pop()
    g.cli("scale", "rs", "dnsutil-rs", "--replicas", "2")
    remaining = wait_for(
        lambda: (ps := [p for p in g.pods("app=dnsutil") if not terminating(p)]) and len(ps) == 2 and ps,
        30,
        what="scale down to 2",
    )
    assert {p["metadata"]["name"] for p in remaining} == names, (third, names)
    wait_for(lambda: len(g.pods("app=dnsutil")) == 2, 30, what="the deleted pod gone")

    table = g.cli("get", "rs").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table[1].split()[:4] == ["dnsutil-rs", "2", "2", "2"]
    wide = g.cli("get", "rs", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[:4] == ["dnsutil-rs", "2", "2", "2"]
    assert wide[1].split()[5:] == ["dnsutil", "tutum/dnsutils", "app=dnsutil"]
    desc = g.cli("describe", "rs", "dnsutil-rs").stdout
    assert "Replicas:       2 current / 2 desired" in desc
    events = desc.split("Events:", 1)[1]
    assert "SuccessfulCreate" in events and "Created pod: dnsutil-rs-" in events
    assert f"Deleted pod: {third}" in events


# --- 2. the seed's Deployment and a rolling update (sections 6.1-6.3) --------------------------


def test_deployment_set_image_rollout_status_and_history(empty_repo: Path, gitship_factory) -> None:
    repo = empty_repo
    first = commit_file(repo, "deployment.yaml", deployment_yaml(), "deploy testqc v1")
    g = gitship_factory(repo)
    pods = wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods ready")
    wait_for(
        lambda: g.json("get", "deploy", "testqc")["status"].get("availableReplicas") == 3,
        20,
        what="deployment available",
    )
    table = g.cli("get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["testqc", "3/3", "3", "3"]

    rss = g.json("get", "rs")["items"]
    assert len(rss) == 1
    rs1 = rss[0]
    h = rs1["metadata"]["labels"][HASH_LABEL]
    assert rs1["metadata"]["name"] == f"testqc-{h}" and re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]+", h)
    assert rs1["spec"]["selector"]["matchLabels"] == {"app": "testing", HASH_LABEL: h}
    for p in pods:
        assert p["metadata"]["labels"][HASH_LABEL] == h
        assert p["metadata"]["name"].startswith(f"testqc-{h}-")
        assert http_get(p["status"]["podIP"]) == f"This is v1 running in pod {p['metadata']['name']}\n"

    # kubectl set image: a commit with a one-line diff
    head = set_image(g, repo, "qinchaowhut/allen:v2")
    numstat = git(repo, "diff", "--numstat", f"{head}~1", head)
    assert numstat.split() == ["1", "1", "deployment.yaml"], numstat
    subject = git(repo, "log", "-1", "--format=%s", head)

    st = g.cli("rollout", "status", "deployment", "testqc", timeout=60)
    assert st.returncode == 0
    lines = st.stdout.splitlines()
    assert lines[-1] == 'deployment "testqc" successfully rolled out'
    for line in lines[:-1]:
        assert re.fullmatch(
            r'Waiting for deployment "testqc" rollout to finish: (\d+ out of 3 new replicas have been '
            r"updated|\d+ old replicas are pending termination|\d+ of 3 updated replicas are "
            r"available)\.\.\.|Waiting for deployment spec update to be observed\.\.\.",
            line,
        ), line
    new_pods = wait_for(lambda: all_on(g, "qinchaowhut/allen:v2"), 30, what="only v2 pods")
    for p in new_pods:
        assert http_get(p["status"]["podIP"]) == f"This is v2 running in pod {p['metadata']['name']}\n"

    # the old RS is kept at 0
    rss = {r["metadata"]["name"]: r for r in g.json("get", "rs")["items"]}
    assert set(rss) >= {rs1["metadata"]["name"]} and len(rss) == 2
    rs_table = {line.split()[0]: line.split()[1:4] for line in g.cli("get", "rs").stdout.splitlines()[1:]}
    assert rs_table[rs1["metadata"]["name"]] == ["0", "0", "0"]
    new_name = next(n for n in rss if n != rs1["metadata"]["name"])
    assert rs_table[new_name] == ["3", "3", "3"]

    # history: revisions 1 and 2, change-cause names the commits
    hist = g.cli("rollout", "history", "deployment", "testqc").stdout.splitlines()
    assert hist[0] == "deployment.apps/testqc"
    assert hist[1].split() == ["REVISION", "CHANGE-CAUSE"]
    rows = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in hist[2:]}
    assert set(rows) == {"1", "2"}
    assert rows["1"].startswith(first[:7]) and "Test Author" in rows["1"] and "deploy testqc v1" in rows["1"]
    assert rows["2"].startswith(head[:7]) and "Test Author" in rows["2"] and subject in rows["2"]
    one = g.cli("rollout", "history", "deployment", "testqc", "--revision", "1").stdout
    assert "revision #1" in one and "image: qinchaowhut/allen:v1" in one and "v2" not in one
    assert g.json("get", "deploy", "testqc")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    # section 6.3: rollout undo is a commit; the old RS comes back as revision 3 (its pods, its name)
    before = git(repo, "rev-parse", "HEAD")
    assert "rolled back" in g.cli("rollout", "undo", "deployment", "testqc").stdout
    assert git(repo, "rev-parse", "HEAD") != before
    assert (
        g.cli("rollout", "status", "deployment", "testqc", timeout=60).stdout.splitlines()[-1]
        == 'deployment "testqc" successfully rolled out'
    )
    back = wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 30, what="v1 again")
    assert all(p["metadata"]["labels"][HASH_LABEL] == h for p in back)
    assert http_get(back[0]["status"]["podIP"]).startswith("This is v1")
    hist = g.cli("rollout", "history", "deployment", "testqc").stdout.splitlines()
    assert [line.split()[0] for line in hist[2:]] == ["2", "3"]
    reused = g.json("get", "rs", rs1["metadata"]["name"])["metadata"]["annotations"]
    assert reused["deployment.kubernetes.io/revision"] == "3"
    assert reused["deployment.kubernetes.io/revision-history"] == "1"


# --- 3. rollout bounds (docs/kubernetes.md §2, examples A and B) ----------------------------------------


def _check_bounds(samples, replicas: int, surge: int, unavailable: int) -> None:
    assert len(samples) >= 4, f"only {len(samples)} samples"
    saw_mixed = False
    for _t, pods, _ in samples:
        live = [p for p in pods if not terminating(p)]
        assert len(live) <= replicas + surge, [(p["metadata"]["name"], image_of(p)) for p in live]
        n_ready = sum(1 for p in live if ready(p))
        assert n_ready >= replicas - unavailable, [(p["metadata"]["name"], image_of(p), ready(p)) for p in live]
        saw_mixed |= {image_of(p) for p in live} == {"qinchaowhut/allen:v1", "qinchaowhut/allen:v2"}
    assert saw_mixed, "no sample caught the rollout in the middle"


def _bounded_rollout(repo: Path, gitship_factory, surge: int, unavailable: int) -> None:
    commit_file(
        repo,
        "deployment.yaml",
        deployment_yaml(strategy=rolling(surge, unavailable), initial_delay=2),
        "deploy testqc v1",
    )
    g = gitship_factory(repo)
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods ready")
    wait_for(
        lambda: g.json("get", "deploy", "testqc")["status"].get("availableReplicas") == 3,
        20,
        what="deployment available",
    )
    with Sampler(g) as s:
        set_image(g, repo, "qinchaowhut/allen:v2")
        wait_for(lambda: all_on(g, "qinchaowhut/allen:v2"), 40, what="all pods on v2")
    _check_bounds(s.samples, 3, surge, unavailable)
    # RS sizes obey the same bound at every sample: Σ spec <= replicas + surge
    for _, _, rss in s.samples:
        assert sum(r["spec"]["replicas"] for r in rss) <= 3 + surge
    final = g.json("get", "deploy", "testqc")
    wait_for(
        lambda: (
            (d := g.json("get", "deploy", "testqc"))["status"].get("updatedReplicas") == 3
            and d["status"].get("availableReplicas") == 3
            and d["status"].get("replicas") == 3
        ),
        20,
        what="deployment status complete",
    )
    assert final["spec"]["template"]["spec"]["containers"][0]["image"] == "qinchaowhut/allen:v2"


def test_rollout_max_surge_1_max_unavailable_0(empty_repo: Path, gitship_factory) -> None:
    _bounded_rollout(empty_repo, gitship_factory, 1, 0)


def test_rollout_max_surge_1_max_unavailable_1(empty_repo: Path, gitship_factory) -> None:
    _bounded_rollout(empty_repo, gitship_factory, 1, 1)


# --- 4. pause / resume: a canary (section 6.5) --------------------------------------------------


def test_pause_makes_a_canary_resume_completes_and_paused_still_scales(empty_repo: Path, gitship_factory) -> None:
    repo = empty_repo
    commit_file(repo, "deployment.yaml", deployment_yaml(strategy=rolling(1, 0)), "deploy testqc v1")
    g = gitship_factory(repo)
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods ready")
    wait_for(
        lambda: g.json("get", "deploy", "testqc")["status"].get("availableReplicas") == 3,
        20,
        what="deployment available",
    )
    # the image change and `paused: true` in one commit: the controller sees the new template
    # and the pause together, so nothing rolls yet; resume, let one step happen, pause again.
    text = deployment_yaml(image="qinchaowhut/allen:v2", strategy=rolling(1, 0), initial_delay=2)
    commit_file(
        repo,
        "deployment.yaml",
        text.replace("spec:\n  replicas: 3\n", "spec:\n  replicas: 3\n  paused: true\n", 1),
        "v2, paused",
    )
    g.wait_applied(git(repo, "rev-parse", "HEAD"))
    wait_for(
        lambda: (
            g.json("get", "deploy", "testqc")["status"].get("observedGeneration")
            == g.json("get", "deploy", "testqc")["metadata"]["generation"]
        ),
        20,
        what="paused generation observed",
    )
    assert {image_of(p) for p in deploy_pods(g)} == {"qinchaowhut/allen:v1"}
    assert len(g.json("get", "rs")["items"]) == 1, "a paused deployment makes no new ReplicaSet"
    # resume, then pause as soon as a v2 pod exists: a canary
    assert "resumed" in g.cli("rollout", "resume", "deployment", "testqc").stdout
    wait_for(lambda: any(image_of(p) == "qinchaowhut/allen:v2" for p in deploy_pods(g)), 30, what="a first v2 pod")
    assert "paused" in g.cli("rollout", "pause", "deployment", "testqc").stdout
    g.wait_applied(git(repo, "rev-parse", "HEAD"))
    # stays mixed: wait until the pause is observed and the v2 pod is ready, then check a while
    wait_for(
        lambda: (
            (d := g.json("get", "deploy", "testqc"))["spec"].get("paused")
            and d["status"].get("observedGeneration") == d["metadata"]["generation"]
        ),
        20,
        what="pause observed",
    )
    wait_for(
        lambda: any(image_of(p) == "qinchaowhut/allen:v2" and ready(p) for p in deploy_pods(g)),
        30,
        what="the canary ready",
    )
    # the rollout must not move while passes go by (the same over time on a fake clock:
    # tests/unit/test_reconcile_pass.py test_paused_rollout_does_not_move)
    mixed: list[str] = []

    def unchanged() -> None:
        live = [p for p in deploy_pods(g) if not terminating(p)]
        images = sorted(image_of(p) for p in live)
        assert "qinchaowhut/allen:v1" in images and "qinchaowhut/allen:v2" in images, images
        mixed[:] = mixed or images
        assert images == mixed, (images, mixed)

    start = daemon_passes(g)
    wait_for(lambda: unchanged() or daemon_passes(g) >= start + 3, 30, what="three reconcile passes")
    unchanged()
    st = g.cli("rollout", "status", "deployment", "testqc", "--watch=false").stdout
    assert st.startswith('Waiting for deployment "testqc" rollout to finish')
    desc = g.cli("describe", "deploy", "testqc").stdout
    assert re.search(r"Progressing\s+Unknown\s+DeploymentPaused", desc), desc

    # a paused deployment still scales (proportionally): 3 -> 5
    g.cli("scale", "deployment", "testqc", "--replicas", "5")
    g.wait_applied(git(repo, "rev-parse", "HEAD"))
    wait_for(lambda: len([p for p in deploy_pods(g) if not terminating(p)]) >= 5, 30, what="scaled while paused")
    rss = g.json("get", "rs")["items"]
    assert len(rss) == 2
    assert {image_of(p) for p in deploy_pods(g)} == {"qinchaowhut/allen:v1", "qinchaowhut/allen:v2"}

    assert "resumed" in g.cli("rollout", "resume", "deployment", "testqc").stdout
    assert (
        g.cli("rollout", "status", "deployment", "testqc", timeout=60).stdout.splitlines()[-1]
        == 'deployment "testqc" successfully rolled out'
    )
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v2", 5), 40, what="5 v2 pods")


# --- 5. minReadySeconds ----------------------------------------------------------------------------


def test_min_ready_seconds_holds_each_step(empty_repo: Path, gitship_factory) -> None:
    repo = empty_repo
    commit_file(
        repo,
        "deployment.yaml",
        deployment_yaml(replicas=2, strategy=rolling(1, 0), extra_spec="  minReadySeconds: 3\n"),
        "deploy v1",
    )
    g = gitship_factory(repo)
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v1", 2), 40, what="2 v1 pods")
    wait_for(
        lambda: g.json("get", "deploy", "testqc")["status"].get("availableReplicas") == 2,
        30,
        what="available after minReadySeconds",
    )
    with Sampler(g) as s:
        set_image(g, repo, "qinchaowhut/allen:v2")
        wait_for(lambda: all_on(g, "qinchaowhut/allen:v2", 2), 60, what="all pods on v2")

    # A pod counts as available only when its Ready lastTransitionTime + 3 s < now (docs/kubernetes.md §3.2). The
    # daemon wrote each sampled RS status before the sample was taken, so at sample time t the new
    # RS may report at most the v2 pods Ready since before t - 3 s as available ...
    def mature(pods: list[dict], t: float) -> list[dict]:
        return [
            p
            for p in pods
            if image_of(p) == "qinchaowhut/allen:v2" and ready(p) and not terminating(p) and ready_since(p) + 3 < t
        ]

    waited = 0
    for t, pods, rss in s.samples:
        new_rs = rs_by_image(rss).get("qinchaowhut/allen:v2")
        if new_rs is not None:
            assert (new_rs.get("status") or {}).get("availableReplicas", 0) <= len(mature(pods, t)), [
                (p["metadata"]["name"], ready_since(p), t) for p in pods
            ]
        # ... and with maxUnavailable 0 an old pod goes only once a new one is available: the
        # rollout waits minReadySeconds at each step
        v1 = [p for p in pods if image_of(p) == "qinchaowhut/allen:v1" and not terminating(p)]
        assert len(v1) + len(mature(pods, t)) >= 2, [(p["metadata"]["name"], image_of(p), ready(p)) for p in pods]
        fresh = [
            p
            for p in pods
            if image_of(p) == "qinchaowhut/allen:v2" and ready(p) and not terminating(p) and p not in mature(pods, t)
        ]
        waited += (
            bool(fresh)
            and len(v1) + len([p for p in pods if image_of(p) == "qinchaowhut/allen:v2" and not terminating(p)]) == 3
        )
    assert waited >= 1, "no sample caught a Ready new pod waiting out minReadySeconds next to the old pods"


# --- 6. a broken image and the progress deadline ------------------------------------------------


def test_progress_deadline_exceeded_keeps_old_pods_serving(empty_repo: Path, gitship_factory) -> None:
    repo = empty_repo
    commit_file(
        repo,
        "deployment.yaml",
        deployment_yaml(strategy=rolling(1, 0), extra_spec="  progressDeadlineSeconds: 5\n"),
        "deploy v1",
    )
    g = gitship_factory(repo)
    old = wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods")
    wait_for(
        lambda: (
            g.cli("rollout", "status", "deployment", "testqc", "--watch=false").stdout.strip()
            == 'deployment "testqc" successfully rolled out'
        ),
        20,
        what="v1 rolled out",
    )
    # v2 whose readiness probe asks a port nothing listens on: never Ready
    text = deployment_yaml(
        image="qinchaowhut/allen:v2",
        strategy=rolling(1, 0),
        probe_port=8081,
        extra_spec="  progressDeadlineSeconds: 5\n",
    )
    commit_file(repo, "deployment.yaml", text, "v2, broken")
    st = g.cli("rollout", "status", "deployment", "testqc", check=False, timeout=60)
    assert st.returncode != 0
    assert 'deployment "testqc" exceeded its progress deadline' in st.stderr
    # the old pods keep serving, the stuck new pod is the only surge
    pods = [p for p in deploy_pods(g) if not terminating(p)]
    olds = [p for p in pods if image_of(p) == "qinchaowhut/allen:v1"]
    assert {p["metadata"]["uid"] for p in olds} == {p["metadata"]["uid"] for p in old}
    assert len(pods) == 4 and not any(ready(p) for p in pods if image_of(p) == "qinchaowhut/allen:v2")
    for p in olds:
        assert http_get(p["status"]["podIP"]).startswith("This is v1")
    desc = g.cli("describe", "deploy", "testqc").stdout
    assert re.search(r"Progressing\s+False\s+ProgressDeadlineExceeded", desc), desc
    assert re.search(r"Available\s+True\s+MinimumReplicasAvailable", desc), desc


# --- 7. Recreate ----------------------------------------------------------------------------------


def test_recreate_removes_all_old_pods_before_new_ones(empty_repo: Path, gitship_factory) -> None:
    repo = empty_repo
    recreate = "  strategy:\n    type: Recreate\n"
    commit_file(repo, "deployment.yaml", deployment_yaml(strategy=recreate, initial_delay=1), "deploy v1")
    g = gitship_factory(repo)
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods")
    with Sampler(g) as s:
        set_image(g, repo, "qinchaowhut/allen:v2")
        wait_for(lambda: all_on(g, "qinchaowhut/allen:v2"), 40, what="all pods on v2")
    assert len(s.samples) >= 2
    for _, pods, _ in s.samples:
        images = {image_of(p) for p in pods}  # terminating pods included: Recreate waits for them
        assert images != {"qinchaowhut/allen:v1", "qinchaowhut/allen:v2"}, [
            (p["metadata"]["name"], image_of(p), terminating(p)) for p in pods
        ]
    rss = rs_by_image(g.json("get", "rs")["items"])
    assert rss["qinchaowhut/allen:v1"]["spec"]["replicas"] == 0 and rss["qinchaowhut/allen:v2"]["spec"]["replicas"] == 3


# --- 8. kill -9 in the middle of a rollout ------------------------------------------------------------


def _runtime_pods(state: Path) -> dict[str, dict]:
    out = {}
    for f in (state / "runtime" / "pods").glob("*.json"):
        try:
            out[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError):
            pass
    return out


def _unresolved_image(ps: list[dict]) -> str:
    for p in ps:
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "ImageNotResolved":
                return f"{p['metadata']['name']}: ImageNotResolved after the restart"
    return ""


def test_kill9_mid_rollout_converges_without_doubles(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    repo = empty_repo
    # the image map of gitship.yaml: the restarted daemon must know it before it starts new pods
    commit_file(repo, "deployment.yaml", deployment_yaml(strategy=rolling(1, 0), initial_delay=2), "deploy v1")
    g = gitship_factory(repo)
    wait_for(lambda: all_on(g, "qinchaowhut/allen:v1"), 40, what="3 v1 pods")
    seen_pids: dict[str, int] = {}

    def note(pods: list[dict]) -> list[dict]:
        for p in pods:
            if (pid := pid_of(p)) is not None:
                seen_pids[p["metadata"]["uid"]] = pid
        return pods

    note(deploy_pods(g))
    set_image(g, repo, "qinchaowhut/allen:v2")
    # mid-rollout: a v2 pod exists but the rollout is not done
    wait_for(lambda: any(image_of(p) == "qinchaowhut/allen:v2" for p in note(deploy_pods(g))), 30, what="first v2 pod")
    g.kill9()
    g2 = gitship_factory(repo, state_dir=tmp_path / "state")
    with Sampler(g2) as s:
        try:
            res = wait_for(
                lambda: _unresolved_image(g2.pods()) or all_on(g2, "qinchaowhut/allen:v2"),
                40,
                what="rollout completes after restart",
            )
            assert not isinstance(res, str), res
        except AssertionError:
            print(
                g2.cli("get", "pods").stdout, g2.cli("get", "rs").stdout, g2.cli("describe", "deploy", "testqc").stdout
            )
            print(json.dumps([(p["metadata"]["name"], p["status"]) for p in g2.pods()], indent=1)[:6000])
            print(g2.output())
            raise
    for _, pods, _ in s.samples:
        note(pods)
        live = [p for p in pods if not terminating(p)]
        assert len(live) <= 4, [(p["metadata"]["name"], image_of(p)) for p in live]
    final = note(deploy_pods(g2))
    final_uids = {p["metadata"]["uid"] for p in final}
    # the runtime runs exactly the pods `get pods` lists
    wait_for(lambda: set(_runtime_pods(tmp_path / "state")) == final_uids, 30, what="runtime pods == get pods")
    # no process of a deleted pod remains
    for uid, pid in seen_pids.items():
        if uid not in final_uids:
            wait_for(lambda pid=pid: not alive(pid), 30, what=f"pid {pid} of deleted pod {uid} gone")
        else:
            assert alive(pid)
    hist = g2.cli("rollout", "history", "deployment", "testqc").stdout.splitlines()
    assert [line.split()[0] for line in hist[2:]] == ["1", "2"]
    assert len(g2.json("get", "rs")["items"]) == 2
