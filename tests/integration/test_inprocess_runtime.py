"""The in-process runtime with real processes (no mocks).

Every test waits by polling with generous deadlines (``wait_for``), never by
fixed sleeps. Every pod uid a test makes is recorded; the ``no_leaks`` fixture
kills any process still carrying one of them (GITSHIP_POD_UID in its
environment) after the test, and fails the test if it found one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from typing import Any

import pytest

from runtime.inprocess import InProcessRuntime
from runtime.inprocess import procid
from tests.conftest import async_wait_for as wait_for

PY = sys.executable
_UIDS: set[str] = set()


# --- helpers --------------------------------------------------------------------------


def RT(state: str, **kw: Any) -> InProcessRuntime:
    """A runtime whose pod CIDR is derived from its state dir, so parallel test runs never share pod IPs."""
    h = int(hashlib.sha256(os.path.dirname(os.path.abspath(state)).encode()).hexdigest(), 16)
    kw.setdefault("pod_cidr", f"127.{100 + h % 150}.{(h >> 8) % 256}.0/24")
    return InProcessRuntime(state, **kw)


def make_pod(
    name: str, containers: list[dict[str, Any]], restart: str = "Always", grace: float = 5, **meta: Any
) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    _UIDS.add(uid)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": name}, **meta},
        "spec": {"containers": containers, "restartPolicy": restart, "terminationGracePeriodSeconds": grace},
    }


def py(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3", "command": [PY, "-c", textwrap.dedent(code)], **extra}


def cstatus(rt: InProcessRuntime, uid: str, i: int = 0) -> dict[str, Any]:
    st = rt.status(uid)
    assert st is not None
    return st["containerStatuses"][i]


def pid_of(rt: InProcessRuntime, uid: str, i: int = 0) -> int | None:
    cid = cstatus(rt, uid, i).get("containerID")
    return int(cid.split("//")[1]) if cid else None


def condition(st: dict[str, Any], typ: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == typ)


def alive(pid: int) -> bool:
    st = procid.read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def uid_processes(uids: set[str]) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            env = environ(int(name))
            if env.get(procid.UID_ENV) in uids and alive(int(name)):
                out.append(int(name))
    return out


@pytest.fixture(autouse=True)
def no_leaks():
    _UIDS.clear()
    yield
    leaked = uid_processes(set(_UIDS))
    for pid in leaked:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"test leaked processes {leaked}"


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "state")


class Changes:
    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, uid: str) -> None:
        self.calls.append(uid)


# --- tests ----------------------------------------------------------------------------------


def test_sleep_pod_runs_with_env_and_is_deleted(state, tmp_path):
    async def main():
        rt = RT(state, repo_dir=str(tmp_path))
        changes = Changes()
        await rt.start(changes)
        pod = make_pod(
            "web-1",
            [{
                "name": "main", "image": "busybox:1", "command": ["sleep", "infinity"],
                "env": [
                    {"name": "GREETING", "value": "hi $(POD_NAME) from $(MISSING) $$(POD_IP)"},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                ],
            }],
        )  # fmt: skip
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        await rt.create_pod(pod)  # idempotent by uid
        st = await wait_for(
            lambda: (
                (s := rt.status(uid)) and s["phase"] == "Running" and condition(s, "Ready")["status"] == "True" and s
            )
        )
        ip = st["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(rt.pod_cidr)
        assert st["podIPs"] == [{"ip": ip}] and st["hostIP"] == "127.0.0.1"
        cs = st["containerStatuses"][0]
        assert cs["ready"] and cs["started"] and cs["restartCount"] == 0 and "running" in cs["state"]
        assert uid in changes.calls
        pid = pid_of(rt, uid)
        # the kernel shows a new program's environment once its exec has set it up, a moment after
        # the parent of a vfork resumes: until then /proc/PID/environ reads empty
        env = await wait_for(lambda: (e := environ(pid)) and "POD_NAME" in e and e)
        assert env["POD_NAME"] == "web-1" and env["HOSTNAME"] == "web-1"
        assert env["POD_NAMESPACE"] == "default" and env["POD_UID"] == uid and env["POD_IP"] == ip
        assert env["CONTAINER_NAME"] == "main" and env["CONTAINER_IMAGE"] == "busybox:1"
        assert env["GITSHIP_POD_UID"] == uid
        assert env["GREETING"] == "hi web-1 from $(MISSING) $(POD_IP)"
        assert env["APP"] == "web-1" and env["MY_IP"] == ip and env["NODE"] == socket.gethostname()
        assert env["PATH"] == os.environ["PATH"]
        assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
        assert os.getpgid(pid) == pid  # its own process group / session
        assert [len(uid_processes({uid}))] == [1]
        assert rt.pods()[uid]["metadata"]["name"] == "web-1"
        assert rt.log_path(uid, "main") is not None
        assert os.path.exists(procid.state_path(state, uid))

        r = await rt.exec(uid, "main", ["sh", "-c", 'echo "$POD_NAME $POD_IP"; pwd'])
        assert r.exit_code == 0 and r.stdout.decode().split() == ["web-1", ip, str(tmp_path)]
        r = await rt.exec(uid, "main", ["sh", "-c", "exit 7"])
        assert r.exit_code == 7

        # concurrent deletes are safe
        await asyncio.gather(rt.delete_pod(uid, 2), rt.delete_pod(uid, 2), rt.delete_pod(uid))
        assert not alive(pid)
        assert rt.status(uid) is None and uid not in rt.pods()
        assert not os.path.exists(procid.state_path(state, uid))
        await rt.delete_pod(uid)  # unknown uid: ignored
        assert rt.info()["name"] == "inprocess" and rt.info()["podCIDR"] == rt.pod_cidr
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_two_pods_listen_on_the_same_port(state, tmp_path):
    server = py(
        "web",
        """
        import http.server, os, functools
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.getcwd())
        http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), h).serve_forever()
        """,
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/name.txt", "port": "http"}, "periodSeconds": 1},
    )

    async def main():
        rt = RT(state)
        changes = Changes()
        await rt.start(changes)
        uids = []
        for name in ("a", "b"):
            d = tmp_path / name
            d.mkdir()
            (d / "name.txt").write_text(name)
            pod = make_pod(name, [dict(server, workingDir=str(d))])
            uids.append(pod["metadata"]["uid"])
            await rt.create_pod(pod)
        sts = await wait_for(
            lambda: (
                all(condition(rt.status(u), "Ready")["status"] == "True" for u in uids) and [rt.status(u) for u in uids]
            )
        )
        ips = [s["podIP"] for s in sts]
        assert ips[0] != ips[1]
        for name, ip in zip(("a", "b"), ips):
            body = await asyncio.to_thread(
                lambda ip=ip: urllib.request.urlopen(f"http://{ip}:8080/name.txt", timeout=5).read()
            )
            assert body.decode() == name
        # readiness flipped through on_change
        assert all(u in changes.calls for u in uids)
        await rt.close(stop_pods=True)
        assert not uid_processes(set(uids))

    asyncio.run(main())


def test_image_rules_and_unresolved_images(state, tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "app.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            with open(sys.argv[-1], "w") as f:
                json.dump({"argv": sys.argv, "exe": sys.executable, "cwd": os.getcwd(), "env": dict(os.environ)}, f)
            """
        )
    )
    out = tmp_path / "out.json"
    rule = {
        "image": "example/app:*",
        "command": ["python3", "app.py", "--flag"],
        "workingDir": "sub",
        "env": {"RULE_VAR": "r", "POD_NAME": "overridden"},
    }

    async def main():
        rt = RT(state, image_rules=[rule], repo_dir=str(repo))
        await rt.start(Changes())
        pod = make_pod(
            "job", [{"name": "c", "image": "example/app:v2", "args": ["$(POD_NAME)", str(out)]}], restart="OnFailure"
        )
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        st = await wait_for(lambda: (s := rt.status(uid)) and s["phase"] == "Succeeded" and s)
        term = st["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        got = json.loads(out.read_text())
        assert got["argv"] == [str(repo / "app.py"), "--flag", "job", str(out)]
        assert os.path.realpath(got["exe"]) == os.path.realpath(PY)
        assert got["cwd"] == str(repo / "sub")
        assert got["env"]["RULE_VAR"] == "r" and got["env"]["POD_NAME"] == "job"  # pod vars win over the rule's env

        # an image nothing resolves: waiting, Pending, no exception
        changes = Changes()
        rt2 = RT(state + "2", image_rules=[], repo_dir=str(repo))
        await rt2.start(changes)
        pod2 = make_pod("lost", [{"name": "c", "image": "nobody/unknown:1", "args": [str(out)]}])
        uid2 = pod2["metadata"]["uid"]
        await rt2.create_pod(pod2)
        st = rt2.status(uid2)
        assert st["phase"] == "Pending"
        w = st["containerStatuses"][0]["state"]["waiting"]
        assert w["reason"] == "ImageNotResolved"
        assert "nobody/unknown:1" in w["message"] and "images:" in w["message"]
        # the image map changes with a commit: the waiting container starts
        out.unlink()
        rt2.set_image_rules([{"image": "nobody/*", "command": ["python3", "app.py"]}], str(repo))
        await wait_for(lambda: out.exists() and out.stat().st_size > 0)

        # a missing Secret: CreateContainerConfigError with the kubelet's message
        secret = {"secretKeyRef": {"name": "db", "key": "password"}}
        pod3 = make_pod(
            "cfg",
            [
                {
                    "name": "c",
                    "image": "x",
                    "command": ["sleep", "infinity"],
                    "env": [{"name": "PW", "valueFrom": secret}],
                }
            ],
        )
        await rt2.create_pod(pod3)
        w = cstatus(rt2, pod3["metadata"]["uid"])["state"]["waiting"]
        assert w["reason"] == "CreateContainerConfigError" and w["message"] == 'secret "db" not found'
        assert rt2.status(pod3["metadata"]["uid"])["phase"] == "Pending"

        # a command that does not exist: StartError, restarted with back-off like a crash
        pod4 = make_pod("nocmd", [{"name": "c", "image": "x", "command": ["no-such-binary-gitship"]}], restart="Never")
        await rt2.create_pod(pod4)
        st = rt2.status(pod4["metadata"]["uid"])
        assert st["phase"] == "Failed"
        assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "StartError"
        await rt.close(stop_pods=True)
        await rt2.close(stop_pods=True)

    asyncio.run(main())


def test_crash_loop_backoff(state):
    async def main():
        rt = RT(state, backoff_base=0.2, backoff_max=1.0)
        await rt.start(Changes())
        pod = make_pod("crash", [py("c", "import sys; print('boom', flush=True); sys.exit(3)")])
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        seen: list[dict[str, Any]] = []

        def cond():
            cs = cstatus(rt, uid)
            seen.append(cs)
            return cs["restartCount"] >= 4

        await wait_for(cond, interval=0.02)
        backoffs = [
            cs["state"]["waiting"] for cs in seen if cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        ]
        assert backoffs, "never saw CrashLoopBackOff"
        assert any(
            w["message"].startswith("back-off 200ms restarting failed container=c pod=crash_default(") for w in backoffs
        )
        assert any(w["message"].startswith("back-off 400ms") for w in backoffs)
        st = rt.status(uid)
        assert st["phase"] == "Running"  # a crash-looping pod is Running
        last = st["containerStatuses"][0]["lastState"]["terminated"]
        assert last["exitCode"] == 3 and last["reason"] == "Error"
        with open(rt.log_path(uid, "c")) as f:
            assert f.read().count("boom") >= 4  # appended across restarts
        await rt.delete_pod(uid)

    asyncio.run(main())


def test_restart_policies_and_phases(state):
    async def main():
        rt = RT(state, backoff_base=0.2, backoff_max=1.0)
        await rt.start(Changes())
        ok = make_pod("ok", [py("c", "pass")], restart="OnFailure")
        bad = make_pod("bad", [py("c", "raise SystemExit(1)")], restart="Never")
        mixed = make_pod("mixed", [py("a", "pass"), py("b", "raise SystemExit(2)")], restart="Never")
        retry = make_pod("retry", [py("c", "raise SystemExit(1)")], restart="OnFailure")
        for p in (ok, bad, mixed, retry):
            await rt.create_pod(p)
        u = lambda p: p["metadata"]["uid"]  # noqa: E731
        await wait_for(lambda: rt.status(u(ok))["phase"] == "Succeeded")
        await wait_for(lambda: rt.status(u(bad))["phase"] == "Failed")
        await wait_for(lambda: rt.status(u(mixed))["phase"] == "Failed")
        assert cstatus(rt, u(bad))["state"]["terminated"]["exitCode"] == 1
        assert cstatus(rt, u(bad))["restartCount"] == 0
        assert condition(rt.status(u(ok)), "Ready")["status"] == "False"
        await wait_for(lambda: cstatus(rt, u(retry))["restartCount"] >= 2)
        assert rt.status(u(retry))["phase"] == "Running"
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_graceful_stop_term_kill_and_children(state, tmp_path):
    marker = tmp_path / "term.txt"
    childpid = tmp_path / "child.txt"
    trap = py(
        "trap",
        f"""
        import signal, subprocess, sys, time
        child = subprocess.Popen(["sleep", "1000"])
        open({str(childpid)!r}, "w").write(str(child.pid))
        def on_term(*_):
            open({str(marker)!r}, "w").write("TERM")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """,
        readinessProbe={"exec": {"command": ["test", "-s", str(childpid)]}, "periodSeconds": 1},
    )
    stubborn = py(
        "stubborn",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """,
    )

    async def main():
        rt = RT(state)
        await rt.start(Changes())
        p1, p2 = make_pod("trap", [trap], grace=30), make_pod("stubborn", [stubborn], grace=1)
        await rt.create_pod(p1)
        await rt.create_pod(p2)
        u1, u2 = p1["metadata"]["uid"], p2["metadata"]["uid"]
        await wait_for(lambda: cstatus(rt, u1)["ready"])
        await wait_for(lambda: (lp := rt.log_path(u2, "stubborn")) and "ready" in open(lp).read())
        pid1, pid2 = pid_of(rt, u1), pid_of(rt, u2)
        child = int(childpid.read_text())
        assert alive(child) and os.getpgid(child) == pid1

        t0 = time.monotonic()
        await rt.delete_pod(u1)  # traps TERM: exits long before its 30s grace
        assert time.monotonic() - t0 < 10
        assert marker.read_text() == "TERM"
        assert not alive(pid1)
        await wait_for(lambda: not alive(child), what="child of the container to die")

        t0 = time.monotonic()
        await rt.delete_pod(u2)  # ignores TERM: SIGKILLed after its 1s grace
        took = time.monotonic() - t0
        assert 0.9 <= took < 10, took
        assert not alive(pid2)
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_readiness_and_startup_probes(state, tmp_path):
    started = tmp_path / "started"
    ready = tmp_path / "ready"
    attempts = tmp_path / "startup-attempts"
    startup_cmd = f"echo . >> {attempts}; test -f {started}"
    c = {
        "name": "app", "image": "x", "command": ["sleep", "infinity"],
        "startupProbe": {"exec": {"command": ["sh", "-c", startup_cmd]}, "periodSeconds": 1, "failureThreshold": 1000},
        "readinessProbe": {"exec": {"command": ["test", "-f", str(ready)]}, "periodSeconds": 1, "failureThreshold": 1},
    }  # fmt: skip

    async def main():
        rt = RT(state)
        changes = Changes()
        await rt.start(changes)
        pod = make_pod("probe", [c])
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        ready.touch()  # readiness would pass, but it must not run before the startup probe succeeds
        await wait_for(lambda: "running" in cstatus(rt, uid)["state"])
        # while the startup probe fails (seen it fail twice), neither started nor ready
        await wait_for(lambda: attempts.exists() and len(attempts.read_text().split()) >= 2, what="two startup probes")
        cs = cstatus(rt, uid)
        assert not cs["started"] and not cs["ready"]
        t_false = condition(rt.status(uid), "Ready")["lastTransitionTime"]
        n = len(changes.calls)
        started.touch()
        await wait_for(lambda: cstatus(rt, uid)["started"])
        await wait_for(lambda: condition(rt.status(uid), "Ready")["status"] == "True")
        assert len(changes.calls) > n
        st = rt.status(uid)
        assert condition(st, "ContainersReady")["status"] == "True"
        t_true = condition(st, "Ready")["lastTransitionTime"]
        assert t_true >= t_false
        n = len(changes.calls)
        ready.unlink()
        await wait_for(lambda: condition(rt.status(uid), "Ready")["status"] == "False")
        assert len(changes.calls) > n and not cstatus(rt, uid)["ready"]
        assert cstatus(rt, uid)["restartCount"] == 0  # readiness failure never restarts
        ready.touch()
        await wait_for(lambda: cstatus(rt, uid)["ready"])
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_liveness_failure_restarts(state, tmp_path):
    sick = tmp_path / "sick"
    hits = tmp_path / "hits"
    server = py(
        "web",
        f"""
        import http.server, os
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/healthz":
                    with open({str(hits)!r}, "a") as f:
                        f.write(".")
                self.send_response(500 if os.path.exists({str(sick)!r}) else 200)
                self.end_headers()
            def log_message(self, *a):
                pass
        http.server.HTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
        """,
        ports=[{"name": "http", "containerPort": 8080}],
        startupProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1},
    )

    async def main():
        rt = RT(state, backoff_base=0.2, backoff_max=1.0)
        await rt.start(Changes())
        pod = make_pod("live", [server], grace=2)
        uid = pod["metadata"]["uid"]
        await rt.create_pod(pod)
        await wait_for(lambda: cstatus(rt, uid)["started"])
        pid = pid_of(rt, uid)
        # liveness keeps passing meanwhile: two more probes, no restart
        n = len(hits.read_text()) if hits.exists() else 0
        await wait_for(lambda: hits.exists() and len(hits.read_text()) >= n + 2, what="two liveness probes")
        assert cstatus(rt, uid)["restartCount"] == 0 and pid_of(rt, uid) == pid
        sick.touch()
        await wait_for(lambda: cstatus(rt, uid)["restartCount"] >= 1)
        sick.unlink()
        last = cstatus(rt, uid)["lastState"]["terminated"]
        assert "Liveness probe failed" in last["message"] and "500" in last["message"]
        assert last["exitCode"] == 143  # SIGTERM
        await wait_for(lambda: "running" in cstatus(rt, uid)["state"])
        assert pid_of(rt, uid) != pid and not alive(pid)
        await rt.close(stop_pods=True)

    asyncio.run(main())


def test_adoption_after_crash(state):
    pod = make_pod("keep", [{"name": "main", "image": "x", "command": ["sleep", "infinity"]}])
    uid = pod["metadata"]["uid"]

    async def run_a():
        a = RT(state)
        await a.start(Changes())
        await a.create_pod(pod)
        await wait_for(lambda: "running" in cstatus(a, uid)["state"])
        pid, ip = pid_of(a, uid), a.status(uid)["podIP"]
        await a.close(stop_pods=False)  # what kill -9 leaves behind
        return pid, ip

    pid, ip = asyncio.run(run_a())
    assert alive(pid)

    async def run_b():
        b = RT(state, backoff_base=0.2)
        changes = Changes()
        adopted = await b.start(changes)
        assert list(adopted) == [uid] and adopted[uid]["metadata"]["name"] == "keep"
        st = b.status(uid)
        assert st["phase"] == "Running" and st["podIP"] == ip
        assert pid_of(b, uid) == pid and cstatus(b, uid)["restartCount"] == 0
        await b.create_pod(pod)  # idempotent: no double
        assert uid_processes({uid}) == [pid]
        # a new pod never gets the adopted pod's IP
        other = make_pod("other", [{"name": "main", "image": "x", "command": ["sleep", "infinity"]}])
        await b.create_pod(other)
        assert b.status(other["metadata"]["uid"])["podIP"] != ip
        # the adopted process is supervised: it dies, it is restarted
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: cstatus(b, uid)["restartCount"] == 1 and "running" in cstatus(b, uid)["state"])
        assert pid_of(b, uid) != pid
        assert b.status(uid)["podIP"] == ip
        newpid = pid_of(b, uid)
        await b.delete_pod(uid)
        assert not alive(newpid) and b.status(uid) is None
        await b.close(stop_pods=True)
        assert not uid_processes({uid, other["metadata"]["uid"]})

    asyncio.run(run_b())


def test_stale_state_file_is_not_adopted(state):
    p1 = make_pod("reused", [{"name": "main", "image": "x", "command": ["sleep", "infinity"]}])
    p2 = make_pod("ticks", [{"name": "main", "image": "x", "command": ["sleep", "infinity"]}], restart="Never")
    u1, u2 = p1["metadata"]["uid"], p2["metadata"]["uid"]

    async def run_a():
        a = RT(state)
        await a.start(Changes())
        await a.create_pod(p1)
        await a.create_pod(p2)
        pids = (pid_of(a, u1), pid_of(a, u2))
        await a.close(stop_pods=False)
        return pids

    old1, old2 = asyncio.run(run_a())
    for pid in (old1, old2):
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    # an unrelated process (another pod's, by its environment) now holds a pid the state files point at
    stranger = subprocess.Popen(
        ["sleep", "1000"], start_new_session=True, env={**os.environ, procid.UID_ENV: "some-other-pod"}
    )
    try:
        for uid, ticks in ((u1, procid.start_ticks(stranger.pid)), (u2, 12345)):
            path = procid.state_path(state, uid)
            data = json.load(open(path))
            data["containers"]["main"]["process"] = {
                "pid": stranger.pid,
                "startTicks": ticks,
                "bootId": procid.boot_id(),
            }
            procid.atomic_write_json(path, data)

        async def run_b():
            b = RT(state)
            adopted = await b.start(Changes())
            assert set(adopted) == {u1, u2}
            # u1 (Always): the vanished container is restarted as a new process, not the stranger
            await wait_for(lambda: "running" in cstatus(b, u1)["state"])
            assert pid_of(b, u1) not in (stranger.pid, old1)
            cs = cstatus(b, u1)
            assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
            # u2 (Never): the vanished container stays terminated; the pod failed
            st = b.status(u2)
            assert st["phase"] == "Failed"
            assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
            await b.close(stop_pods=True)

        asyncio.run(run_b())
        assert alive(stranger.pid), "an unrelated process was killed"
    finally:
        stranger.kill()
        stranger.wait()
