"""ConfigMaps and Secrets through a real `gitship up`: committed, read back with get/describe as
kubectl prints them, an immutable one refused until deleted and declared again, and the planted
secret values nowhere in the state dir's text files or the CLI's outputs.

Real git repository, a real daemon, the real CLI as a subprocess. No fixed sleeps.
"""

from __future__ import annotations

import base64
import stat
import zlib
from pathlib import Path

from tests.conftest import commit_file, remove_file, wait_for

SECRET_1 = "PLANTED-first-Secret-9f1"
SECRET_2 = "PLANTED-second-Secret-4c7"
FORBIDDEN = [SECRET_1, SECRET_2, *(base64.b64encode(s.encode()).decode() for s in (SECRET_1, SECRET_2))]

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello from git
  app.conf: |
    mode=fast
binaryData:
  logo.bin: AAEC
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: frozen
immutable: true
data:
  level: "{level}"
---
apiVersion: v1
kind: Secret
metadata:
  name: db
type: kubernetes.io/basic-auth
stringData:
  username: admin
  password: {password}
"""


def _loopback(tmp_path: Path) -> list[str]:
    x = 100 + zlib.crc32(str(tmp_path).encode()) % 140
    return ["--pod-cidr", f"127.{x}.0.0/17"]


def _clean(text: str, where: str) -> None:
    for value in FORBIDDEN:
        assert value not in text, f"a secret value leaked into {where}"


def test_configmap_and_secret_from_git_to_get_and_describe(empty_repo: Path, gitship_factory, tmp_path: Path) -> None:
    g = gitship_factory(empty_repo, extra=_loopback(tmp_path))
    sha = commit_file(empty_repo, "config.yaml", CONFIG.format(level=1, password=SECRET_1), "config and a password")
    g.wait_applied(sha)
    assert g.status()["status"]["lastAppliedRevision"] == sha

    rows = [line.split() for line in g.cli("get", "cm").stdout.splitlines()]
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert sorted(r[:2] for r in rows[1:]) == [["frozen", "1"], ["web-config", "3"]]
    rows = [line.split() for line in g.cli("get", "secrets", "-o", "wide").stdout.splitlines()]
    assert rows[0] == ["NAME", "TYPE", "DATA", "AGE"] and rows[1][:3] == ["db", "kubernetes.io/basic-auth", "2"]

    cm = g.json("get", "configmap", "web-config")
    assert cm["data"] == {"greeting": "hello from git", "app.conf": "mode=fast\n"}
    assert cm["binaryData"] == {"logo.bin": "AAEC"} and cm["metadata"]["uid"]
    sec = g.json("get", "secret", "db")
    assert base64.b64decode(sec["data"]["password"]).decode() == SECRET_1 and "stringData" not in sec
    yaml_out = g.cli("get", "secret", "db", "-o", "yaml").stdout
    assert f"password: {base64.b64encode(SECRET_1.encode()).decode()}" in yaml_out  # base64, as kubectl

    described = g.cli("describe", "secret", "db").stdout
    assert "Type:  kubernetes.io/basic-auth" in described
    assert f"password: {len(SECRET_1)} bytes" in described and "username: 5 bytes" in described
    _clean(described, "describe secret")
    described = g.cli("describe", "cm", "web-config").stdout
    assert "greeting:\n----\nhello from git" in described and "logo.bin: 3 bytes" in described

    # a new password: `gitship diff` shows the change, not the values (the daemon stopped meanwhile,
    # or it would have applied the commit before the diff looks)
    g.stop()
    sha2 = commit_file(empty_repo, "config.yaml", CONFIG.format(level=1, password=SECRET_2), "rotate the password")
    diff = g.cli("diff", check=False)
    assert diff.returncode == 1 and "changed" in diff.stdout and "secret/db" in diff.stdout
    _clean(diff.stdout + diff.stderr, "gitship diff")
    g.start()
    g.wait_applied(sha2)
    wait_for(
        lambda: base64.b64decode(g.json("get", "secret", "db")["data"]["password"]).decode() == SECRET_2,
        30,
        what="the new password live",
    )

    # the immutable ConfigMap refuses a change of its data: the whole commit is rejected
    before = g.json("get", "cm", "frozen")
    bad = commit_file(empty_repo, "config.yaml", CONFIG.format(level=2, password=SECRET_1), "change frozen")
    g.wait_applied(bad)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == sha2
    message = st["conditions"][0]["message"]
    assert "config.yaml" in message and "data" in message and "immutable" in message
    _clean(message, "the rejection")
    assert base64.b64decode(g.json("get", "secret", "db")["data"]["password"]).decode() == SECRET_2  # nothing applied

    # deleted in one commit, declared again (with new data) in a later one: allowed
    removed = remove_file(empty_repo, "config.yaml", "remove the config")
    g.wait_applied(removed)
    wait_for(lambda: g.cli("get", "cm", "frozen", check=False).returncode != 0, 30, what="frozen pruned")
    again = commit_file(empty_repo, "config.yaml", CONFIG.format(level=2, password=SECRET_2), "frozen again")
    g.wait_applied(again)
    assert g.status()["status"]["lastAppliedRevision"] == again
    after = g.json("get", "cm", "frozen")
    assert after["data"] == {"level": "2"} and after["metadata"]["uid"] != before["metadata"]["uid"]

    # nowhere in the CLI's outputs, nor in the state dir's text files (the store alone holds them)
    for args in (["events"], ["events", "-o", "json"], ["history"], ["history", "-o", "json"], ["status"]):
        out = g.cli(*args)
        _clean(out.stdout + out.stderr, "gitship " + " ".join(args))
    for args in (["describe", "secret", "db"], ["get", "secret"], ["get", "cm", "-o", "yaml"]):
        _clean(g.cli(*args).stdout, "gitship " + " ".join(args))
    state = Path(g.state_dir)
    for path in state.rglob("*"):
        if path.is_file() and not path.name.startswith("gitship.db"):
            _clean(path.read_text(errors="replace"), str(path))
    _clean(g.output(), "the daemon's console")
    for path in state.glob("gitship.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
