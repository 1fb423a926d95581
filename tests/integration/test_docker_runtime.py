"""DockerRuntime against a real Docker Engine (skipped only when no engine answers)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import docker.errors as docker_errors
import pytest

from runtime.docker import LABEL_INSTANCE, DockerRuntime
from tests.dockerimages import docker_client_or_skip, ensure_test_images
from tests.conftest import async_wait_for as wait_for

pytestmark = pytest.mark.docker

NETWORK = "gitship-test"
KUBIA = "gitship-test/kubia:v1"


# ----------------------------------------------------------------------------- helpers


def make_pod(
    name: str,
    containers: list[dict[str, Any]],
    restart: str = "Always",
    grace: int = 5,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": str(uuid.uuid4()),
            "labels": labels or {"app": name},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs-" + name, "controller": True}],
        },
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": grace, "containers": containers},
    }


def kubia(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": KUBIA,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080}],
        **extra,
    }


def shell(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": KUBIA, "command": ["sh", "-c", script], **extra}


def http_status(ip: str, path: str) -> int | None:
    """The status of GET http://ip:8080/path from the host (None when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


def ready(st: dict | None) -> bool:
    return bool(st) and any(c["type"] == "Ready" and c["status"] == "True" for c in st["conditions"])


def cstatus(st: dict | None, name: str) -> dict:
    return next(c for c in (st or {}).get("containerStatuses", []) if c["name"] == name)


def waiting_reason(st: dict | None, name: str) -> str | None:
    return cstatus(st, name)["state"].get("waiting", {}).get("reason") if st else None


class Recorder:
    """on_change callback that snapshots every status it is told about."""

    def __init__(self) -> None:
        self.rt: DockerRuntime | None = None
        self.seen: list[tuple[str, dict | None]] = []

    def __call__(self, uid: str) -> None:
        assert self.rt is not None
        self.seen.append((uid, self.rt.status(uid)))

    def reasons(self, uid: str, container: str) -> list[str]:
        out = []
        for u, st in self.seen:
            if u == uid and st:
                r = waiting_reason(st, container)
                if r and (not out or out[-1] != r):
                    out.append(r)
        return out


@pytest.fixture
def docker_env(tmp_path):
    client = docker_client_or_skip()
    ensure_test_images(client)
    instances: list[str] = []

    def new_instance() -> str:
        inst = "test-" + uuid.uuid4().hex[:10]
        instances.append(inst)
        return inst

    def make(instance: str | None = None, **kw: Any) -> tuple[DockerRuntime, Recorder]:
        rt = DockerRuntime(str(tmp_path / "state"), instance=instance or new_instance(), network=NETWORK, **kw)
        rec = Recorder()
        rec.rt = rt
        return rt, rec

    yield client, make, new_instance
    for inst in instances:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={inst}"}):
            try:
                c.remove(force=True)
            except Exception:
                pass
    client.close()


def http_get(ip: str, port: int = 8080, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5) as r:
        return r.read().decode()


# ----------------------------------------------------------------------------- tests


def test_two_containers_share_one_ip(docker_env):
    client, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        pod = make_pod(
            "shared-ip",
            [
                kubia("web"),
                shell(
                    "client",
                    "until wget -q -O /tmp/page http://localhost:8080/; do sleep 0.1; done; "
                    "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
                ),
            ],
        )
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            st = await wait_for(lambda: ready(rt.status(uid)) and rt.status(uid), what="pod ready")
            ip = st["podIP"]
            assert st["phase"] == "Running"
            # the second container reached the first on localhost
            res = await rt.exec(
                uid, "client", ["sh", "-c", "until [ -s /tmp/page ]; do sleep 0.1; done; cat /tmp/page"], timeout=30
            )
            assert res.exit_code == 0, res
            assert res.stdout.decode().strip() == "This is v1 running in pod shared-ip"
            # both containers see the same address, which is the sandbox's IP; the host reaches it
            for name in ("web", "client"):
                r = await rt.exec(uid, name, ["hostname", "-i"])
                assert r.stdout.decode().split()[0] == ip, (name, r)
            sandbox = client.containers.list(
                filters={"label": [f"{LABEL_INSTANCE}={rt.instance}", "gitship.container=POD"]}
            )
            assert len(sandbox) == 1
            assert sandbox[0].attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"] == ip
            page = await asyncio.to_thread(http_get, ip)
            assert page.strip() == "This is v1 running in pod shared-ip"
            # labels for adoption / ownership
            app = client.containers.get(cstatus(st, "web")["containerID"].removeprefix("docker://"))
            assert app.labels["gitship.pod.uid"] == uid
            assert app.labels["gitship.owner"] == "ReplicaSet/rs-shared-ip"
            assert app.labels["gitship.container"] == "web"
            assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{sandbox[0].id}"
            assert rec.seen and all(u == uid for u, _ in rec.seen)
        finally:
            await rt.close(stop_pods=True)
        assert not client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={rt.instance}"})

    asyncio.run(main())


def test_env_vars_and_pod_ip(docker_env):
    client, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        pod = make_pod(
            "envpod",
            [
                shell(
                    "app",
                    "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
                    env=[
                        {"name": "GREETING", "value": "hello"},
                        {"name": "MSG", "value": "$(GREETING) world $$(GREETING)"},
                        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                        {"name": "MY_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    workingDir="/tmp",
                    resources={"limits": {"memory": "64Mi", "cpu": "500m"}},
                )
            ],
        )
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            st = await wait_for(lambda: ready(rt.status(uid)) and rt.status(uid), what="pod ready")
            res = await rt.exec(uid, "app", ["sh", "-c", "env; echo PWD=$(pwd)"])
            env = dict(line.split("=", 1) for line in res.stdout.decode().splitlines() if "=" in line)
            assert env["GREETING"] == "hello"
            assert env["MSG"] == "hello world $(GREETING)"
            assert env["MY_NAME"] == env["POD_NAME"] == "envpod"
            assert env["MY_NS"] == env["POD_NAMESPACE"] == "default"
            assert env["MY_UID"] == uid
            assert env["MY_APP"] == "envpod"
            assert env["MY_IP"] == env["POD_IP"] == st["podIP"]
            assert env["HOSTNAME"] == "envpod"
            assert env["CONTAINER_IMAGE"] == KUBIA
            assert env["PWD"] == "/tmp"
            c = client.containers.get(cstatus(st, "app")["containerID"].removeprefix("docker://"))
            assert c.attrs["HostConfig"]["Memory"] == 64 * 2**20
            # the kubelet's CFS numbers: 500m is 50000 µs of every 100000 µs
            assert (c.attrs["HostConfig"]["CpuQuota"], c.attrs["HostConfig"]["CpuPeriod"]) == (50000, 100000)
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_readiness_probe_flips_ready(docker_env):
    _, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        probe = {"httpGet": {"path": "/ready.txt", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1}
        pod = make_pod("readypod", [kubia("web", readinessProbe=probe)])
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            await wait_for(lambda: "running" in cstatus(rt.status(uid), "web")["state"], what="running")
            # the server answers, and the probe's path is missing (404): the probe cannot pass
            ip = rt.status(uid)["podIP"]
            await wait_for(lambda: http_status(ip, "/") == 200, timeout=10, what="httpd up")
            assert http_status(ip, "/ready.txt") == 404
            st = rt.status(uid)
            assert st["phase"] == "Running" and not ready(st) and not cstatus(st, "web")["ready"]
            await rt.exec(uid, "web", ["sh", "-c", "echo ok > /www/ready.txt"])
            await wait_for(lambda: ready(rt.status(uid)), timeout=10, what="ready")
            await rt.exec(uid, "web", ["rm", "/www/ready.txt"])
            await wait_for(lambda: not ready(rt.status(uid)), timeout=10, what="not ready again")
            assert cstatus(rt.status(uid), "web")["restartCount"] == 0  # readiness never restarts
            flips = [ready(s) for u, s in rec.seen if u == uid and s]
            assert True in flips and flips[-1] is False
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_liveness_failure_restarts(docker_env):
    _, make, _ = docker_env

    async def main():
        rt, rec = make(backoff_base=0.2, backoff_max=2)
        await rt.start(rec)
        probe = {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}
        pod = make_pod("livepod", [kubia("web", livenessProbe=probe)])
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            await wait_for(
                lambda: cstatus(rt.status(uid), "web")["restartCount"] >= 1, timeout=30, what="a liveness restart"
            )
            last = cstatus(rt.status(uid), "web")["lastState"]["terminated"]
            assert last["exitCode"] == 0  # kubia exits 0 on SIGTERM: a graceful liveness kill
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_crashing_container_backs_off(docker_env):
    _, make, _ = docker_env

    async def main():
        rt, rec = make(backoff_base=0.2, backoff_max=1.6)
        await rt.start(rec)
        pod = make_pod("crashpod", [shell("app", "echo boom; exit 3")])
        uid = pod["metadata"]["uid"]
        try:
            t0 = time.monotonic()
            await rt.create_pod(pod)
            await wait_for(lambda: cstatus(rt.status(uid), "app")["restartCount"] >= 5, timeout=60, what="5 restarts")
            elapsed = time.monotonic() - t0
            # restart 1 immediate, then 0.2 + 0.4 + 0.8 + 1.6 s of back-off at least
            assert elapsed >= 0.2 + 0.4 + 0.8 + 1.6 - 0.1, elapsed
            await wait_for(lambda: waiting_reason(rt.status(uid), "app") == "CrashLoopBackOff", what="CLBO")
            st = rt.status(uid)
            cs = cstatus(st, "app")
            assert st["phase"] == "Running"  # a crash-looping pod is Running
            assert "back-off" in cs["state"]["waiting"]["message"]
            assert cs["lastState"]["terminated"]["exitCode"] == 3
            assert cs["lastState"]["terminated"]["reason"] == "Error"
            assert not ready(st)
            assert "CrashLoopBackOff" in rec.reasons(uid, "app")
            assert b"boom" in await rt.logs(uid, "app", previous=True) + await rt.logs(uid, "app")
            chunks = [c async for c in rt.read_logs(uid, "app", follow=True)]  # ends with the container
            assert b"".join(chunks) in (b"", b"boom\n")
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_restart_policies_end_phases(docker_env):
    _, make, _ = docker_env

    async def main():
        rt, rec = make(backoff_base=0.2, backoff_max=1)
        await rt.start(rec)
        ok = make_pod("onfailure-ok", [shell("app", "exit 0")], restart="OnFailure")
        bad = make_pod("never-bad", [shell("app", "exit 7")], restart="Never")
        try:
            await rt.create_pod(ok)
            await rt.create_pod(bad)
            await wait_for(lambda: rt.status(ok["metadata"]["uid"])["phase"] == "Succeeded", what="Succeeded")
            await wait_for(lambda: rt.status(bad["metadata"]["uid"])["phase"] == "Failed", what="Failed")
            t = cstatus(rt.status(bad["metadata"]["uid"]), "app")["state"]["terminated"]
            assert t["exitCode"] == 7 and t["reason"] == "Error"
            assert cstatus(rt.status(ok["metadata"]["uid"]), "app")["state"]["terminated"]["reason"] == "Completed"
            assert cstatus(rt.status(bad["metadata"]["uid"]), "app")["restartCount"] == 0
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_missing_image_pull_backoff_while_other_pod_runs(docker_env):
    _, make, _ = docker_env

    async def main():
        rt, rec = make(backoff_base=0.5, backoff_max=2)
        await rt.start(rec)
        missing = make_pod(
            "nopull", [{"name": "app", "image": "gitship-test/does-not-exist:v9", "imagePullPolicy": "IfNotPresent"}]
        )
        never = make_pod(
            "neverpull", [{"name": "app", "image": "gitship-test/does-not-exist:v9", "imagePullPolicy": "Never"}]
        )
        good = make_pod("goodpod", [kubia("web")])
        mu, nu, gu = (p["metadata"]["uid"] for p in (missing, never, good))
        try:
            for p in (missing, never, good):
                await rt.create_pod(p)
            await wait_for(lambda: ready(rt.status(gu)), what="the good pod ready")
            await wait_for(lambda: waiting_reason(rt.status(mu), "app") == "ImagePullBackOff", what="ImagePullBackOff")
            await wait_for(lambda: rec.reasons(mu, "app").count("ErrImagePull") >= 2, timeout=20, what="a retried pull")
            reasons = rec.reasons(mu, "app")
            assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff")
            assert rt.status(mu)["phase"] == "Pending"
            assert waiting_reason(rt.status(nu), "app") == "ErrImageNeverPull"
            assert ready(rt.status(gu))
            page = await asyncio.to_thread(http_get, rt.status(gu)["podIP"])
            assert "goodpod" in page
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_graceful_stop(docker_env):
    client, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        polite = make_pod("polite", [kubia("web")], grace=20)  # exits 0 on SIGTERM
        stubborn = make_pod("stubborn", [shell("app", "trap '' TERM; while :; do sleep 1; done")], grace=2)
        try:
            for p in (polite, stubborn):
                await rt.create_pod(p)
            await wait_for(
                lambda: ready(rt.status(polite["metadata"]["uid"])) and ready(rt.status(stubborn["metadata"]["uid"])),
                what="both ready",
            )
            cid = cstatus(rt.status(polite["metadata"]["uid"]), "web")["containerID"].removeprefix("docker://")
            t0 = time.monotonic()
            await rt.delete_pod(polite["metadata"]["uid"])
            polite_s = time.monotonic() - t0
            assert polite_s < 5, polite_s  # SIGTERM handled, well inside the 20 s grace
            t0 = time.monotonic()
            await rt.delete_pod(stubborn["metadata"]["uid"])
            stubborn_s = time.monotonic() - t0
            assert 1.5 <= stubborn_s < 10, stubborn_s  # SIGTERM ignored: SIGKILL after the 2 s grace
            assert rt.status(polite["metadata"]["uid"]) is None
            assert polite["metadata"]["uid"] not in rt.pods()
            await rt.delete_pod(polite["metadata"]["uid"])  # idempotent
            await rt.delete_pod("no-such-uid")
            assert not client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={rt.instance}"})
            with pytest.raises(docker_errors.NotFound):
                client.containers.get(cid)
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_adoption_without_restart(docker_env):
    client, make, new_instance = docker_env

    async def main():
        inst = new_instance()
        a, rec_a = make(instance=inst)
        await a.start(rec_a)
        pod = make_pod("adoptme", [kubia("web", readinessProbe={"httpGet": {"port": 8080}, "periodSeconds": 1})])
        uid = pod["metadata"]["uid"]
        await a.create_pod(pod)
        st = await wait_for(lambda: ready(a.status(uid)) and a.status(uid), what="ready under A")
        cid = cstatus(st, "web")["containerID"]
        started = client.api.inspect_container(cid.removeprefix("docker://"))["State"]["StartedAt"]
        await a.close(stop_pods=False)  # gitship "crashes": the pod keeps running
        assert client.api.inspect_container(cid.removeprefix("docker://"))["State"]["Running"]

        b, rec_b = make(instance=inst, backoff_base=0.5)
        adopted = await b.start(rec_b)
        try:
            assert set(adopted) == {uid}
            assert adopted[uid]["metadata"]["name"] == "adoptme"
            assert adopted[uid]["spec"]["containers"][0]["image"] == KUBIA
            st = await wait_for(lambda: ready(b.status(uid)) and b.status(uid), what="ready under B")
            cs = cstatus(st, "web")
            assert cs["containerID"] == cid and cs["restartCount"] == 0
            assert client.api.inspect_container(cid.removeprefix("docker://"))["State"]["StartedAt"] == started
            assert st["podIP"]
            assert "adoptme" in await asyncio.to_thread(http_get, st["podIP"])

            # docker rm -f of the app container: repaired with a new container
            client.api.remove_container(cid.removeprefix("docker://"), force=True)
            st = await wait_for(
                lambda: (s := b.status(uid)) and cstatus(s, "web")["containerID"] != cid and ready(s) and s,
                what="app container recreated",
            )
            assert cstatus(st, "web")["restartCount"] == 1
            # the sandbox removed: the whole pod comes back
            sandbox = client.containers.list(filters={"label": [f"{LABEL_INSTANCE}={inst}", "gitship.container=POD"]})
            assert len(sandbox) == 1
            sandbox[0].remove(force=True)
            await wait_for(
                lambda: (
                    len(
                        client.containers.list(filters={"label": [f"{LABEL_INSTANCE}={inst}", "gitship.container=POD"]})
                    )
                    == 1
                    and client.containers.list(
                        filters={"label": [f"{LABEL_INSTANCE}={inst}", "gitship.container=POD"]}
                    )[0].id
                    != sandbox[0].id
                ),
                what="new sandbox",
            )
            st = await wait_for(
                lambda: (s := b.status(uid)) and ready(s) and cstatus(s, "web")["restartCount"] == 2 and s,
                what="pod repaired",
            )
            assert "adoptme" in await asyncio.to_thread(http_get, st["podIP"])
        finally:
            await b.close(stop_pods=True)
        assert not client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={inst}"})

    asyncio.run(main())


def test_adoption_recreates_removed_container(docker_env):
    client, make, new_instance = docker_env

    async def main():
        inst = new_instance()
        a, rec_a = make(instance=inst)
        await a.start(rec_a)
        pod = make_pod("gone-while-down", [kubia("web")])
        uid = pod["metadata"]["uid"]
        await a.create_pod(pod)
        st = await wait_for(lambda: ready(a.status(uid)) and a.status(uid), what="ready")
        await a.close(stop_pods=False)
        cid = cstatus(st, "web")["containerID"].removeprefix("docker://")
        client.api.remove_container(cid, force=True)  # removed while gitship was down
        b, rec_b = make(instance=inst)
        assert set(await b.start(rec_b)) == {uid}
        try:
            st = await wait_for(lambda: (s := b.status(uid)) and ready(s) and s, what="recreated")
            assert cstatus(st, "web")["containerID"] != "docker://" + cid
        finally:
            await b.close(stop_pods=True)

    asyncio.run(main())


def test_instances_do_not_see_each_other(docker_env):
    client, make, _ = docker_env

    async def main():
        x, rec_x = make()
        y, rec_y = make()
        await x.start(rec_x)
        await y.start(rec_y)
        px = make_pod("iso", [kubia("web")])
        py = make_pod("iso", [kubia("web")])  # same name, other instance
        try:
            await x.create_pod(px)
            await y.create_pod(py)
            await wait_for(
                lambda: ready(x.status(px["metadata"]["uid"])) and ready(y.status(py["metadata"]["uid"])),
                what="both ready",
            )
            assert set(x.pods()) == {px["metadata"]["uid"]}
            assert set(y.pods()) == {py["metadata"]["uid"]}
            x2, rec_x2 = make(instance=x.instance)
            await x.close(stop_pods=False)
            assert set(await x2.start(rec_x2)) == {px["metadata"]["uid"]}
            assert all(u == px["metadata"]["uid"] for u, _ in rec_x2.seen)
            await x2.close(stop_pods=True)
            assert not client.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={x.instance}"})
            assert len(client.containers.list(filters={"label": f"{LABEL_INSTANCE}={y.instance}"})) == 2
            assert ready(y.status(py["metadata"]["uid"]))
            assert all(u == py["metadata"]["uid"] for u, _ in rec_y.seen)
        finally:
            await y.close(stop_pods=True)

    asyncio.run(main())


def test_engine_unreachable_is_an_error_state(docker_env, tmp_path):
    _, make, _ = docker_env

    async def main():
        rt, rec = make(docker_host=f"unix://{tmp_path}/no-engine.sock")
        assert await rt.start(rec) == {}
        info = rt.info()
        assert info["name"] == "docker" and info["engine"] == "unreachable" and info["error"]
        pod = make_pod("offline", [kubia("web")])
        await rt.create_pod(pod)  # no crash; the pod waits
        st = rt.status(pod["metadata"]["uid"])
        assert st["phase"] == "Pending" and "unreachable" in st.get("message", "")
        await rt.delete_pod(pod["metadata"]["uid"], grace_seconds=0)
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_info_reports_engine_version(docker_env):
    client, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        try:
            info = rt.info()
            assert info["engine"] == "up" and info["version"] == client.version()["Version"]
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())


def test_pod_start_to_ready_latency(docker_env, capsys):
    _, make, _ = docker_env

    async def main():
        rt, rec = make()
        await rt.start(rec)
        plain, probed = [], []
        try:
            for i in range(20):
                for kind, samples in (("plain", plain), ("probe", probed)):
                    extra = (
                        {"readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 1}} if kind == "probe" else {}
                    )
                    pod = make_pod(f"lat-{kind}-{i}", [kubia("web", **extra)])
                    uid = pod["metadata"]["uid"]
                    t0 = time.monotonic()
                    await rt.create_pod(pod)
                    await wait_for(lambda uid=uid: ready(rt.status(uid)), interval=0.005, what="ready")
                    samples.append(time.monotonic() - t0)
                    await rt.delete_pod(uid, grace_seconds=1)
        finally:
            await rt.close(stop_pods=True)
        return plain, probed

    plain, probed = asyncio.run(main())

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

    with capsys.disabled():
        for kind, xs in (("no probe", plain), ("httpGet readiness probe", probed)):
            print(
                f"\npod create -> Ready ({kind}, n={len(xs)}): p50={pct(xs, 0.5) * 1000:.0f} ms "
                f"p99={pct(xs, 0.99) * 1000:.0f} ms max={max(xs) * 1000:.0f} ms"
            )
    assert pct(plain, 0.5) < 10


class SocketProxy:
    """A Unix-socket forwarder to the engine that the test can take down and bring back."""

    def __init__(self, path: str, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.srv: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def start(self) -> None:
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(64)
        threading.Thread(target=self._accept, args=(self.srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect(self.target)
            self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self.srv is not None:
            try:
                self.srv.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.srv.close()
            self.srv = None
        if os.path.exists(self.path):
            os.unlink(self.path)
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns.clear()


def test_engine_outage_and_recovery(docker_env):
    """The engine goes away (socket closed) and comes back: error state, then convergence."""
    client, make, _ = docker_env
    path = os.path.join(tempfile.mkdtemp(prefix="gsdk", dir="/tmp"), "d.sock")
    proxy = SocketProxy(path)
    proxy.start()

    async def main():
        rt, rec = make(docker_host=f"unix://{path}", resync_seconds=0.5)
        await rt.start(rec)
        pod = make_pod("outage", [kubia("web")])
        uid = pod["metadata"]["uid"]
        try:
            await rt.create_pod(pod)
            st = await wait_for(lambda: ready(rt.status(uid)) and rt.status(uid), what="ready")
            cid = cstatus(st, "web")["containerID"].removeprefix("docker://")
            proxy.stop()
            await wait_for(lambda: rt.info()["engine"] == "unreachable", timeout=30, what="unreachable")
            assert "error" in rt.info()
            # while gitship cannot see the engine, the app container disappears
            client.api.remove_container(cid, force=True)
            assert rt.status(uid) is not None  # still known, no crash
            proxy.start()
            await wait_for(lambda: rt.info()["engine"] == "up", timeout=60, what="engine up again")
            st = await wait_for(
                lambda: (
                    (s := rt.status(uid)) and ready(s) and cstatus(s, "web")["containerID"] != "docker://" + cid and s
                ),
                timeout=60,
                what="converged after the outage",
            )
            assert cstatus(st, "web")["restartCount"] == 1
        finally:
            await rt.close(stop_pods=True)
            proxy.stop()

    asyncio.run(main())
