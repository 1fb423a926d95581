"""Hostile and broken input, through one real `gitship up` daemon for the whole module.

Each case is a commit that must be rejected with a clear error naming the file, in
bounded time, with nothing applied: the pod of the first commit keeps its uid and keeps
answering. Every case is followed by a commit that removes the bad file again, which
must apply (so the next case starts from a clean, good state).
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE, Gitship, _kill_leftovers, git, wait_for, pod_ready as _ready

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: kubia:v1
    ports:
    - containerPort: 8080
"""

REJECT_TIMEOUT = 30.0  # seconds from the commit to the rejection being visible


def _http(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=3) as r:
        return r.read().decode()


def _vmhwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Env:
    def __init__(self, repo: Path, g: Gitship, uid: str):
        self.repo = repo
        self.g = g
        self.uid = uid

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def assert_good_state_runs(self) -> None:
        pods = self.g.pods()
        assert [p["metadata"]["name"] for p in pods] == ["web"], pods
        assert pods[0]["metadata"]["uid"] == self.uid
        assert _http(pods[0]["status"]["podIP"]).startswith("This is v1 running in pod web")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("hostile")
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
    g = Gitship(repo, base / "state")
    g.start()
    try:
        pod = wait_for(lambda: [p for p in g.pods() if _ready(p)], 60, what="web ready")[0]
        yield Env(repo, g, pod["metadata"]["uid"])
    finally:
        g.stop()
        _kill_leftovers(base)


# --------------------------------------------------------------------------- the cases
# Each writes files into the repository and returns (paths it wrote, text the error must contain).


def _alias_bomb(repo: Path) -> tuple[list[str], str]:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: lol}",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    (repo / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return ["bomb.yaml"], "alias"


def _alias_bomb_within_alias_limit(repo: Path) -> tuple[list[str], str]:
    # 4 aliases per level x 12 levels = 48 aliases (under the 64 limit) but 4^12 = 16M nodes
    lines = ['a0: &a0 ["x","x","x","x"]']
    for i in range(1, 13):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 4) + "]")
    (repo / "bomb2.yaml").write_text("\n".join(lines) + "\n")
    return ["bomb2.yaml"], "bomb2.yaml"


def _huge(repo: Path) -> tuple[list[str], str]:
    chunk = "# " + "x" * 1000 + "\n"
    with open(repo / "huge.yaml", "w") as f:
        f.write(POD.replace("name: web", "name: huge"))
        for _ in range(50 * 1024):
            f.write(chunk)
    return ["huge.yaml"], "limit"


def _deep(repo: Path) -> tuple[list[str], str]:
    # rejected naming the file and the line, whichever nesting limit (gitship's or libyaml's) fires first
    (repo / "deep.yaml").write_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    return ["deep.yaml"], "deep.yaml:1 "


def _deep_block(repo: Path) -> tuple[list[str], str]:
    # block sequences nest on one line: "- - - ... x" (20 kB, 10,000 levels)
    (repo / "deepblock.yaml").write_text("- " * 10_000 + "x\n")
    return ["deepblock.yaml"], "deepblock.yaml"


def _symlink(repo: Path) -> tuple[list[str], str]:
    os.symlink("/etc/passwd", repo / "x.yaml")
    return ["x.yaml"], "symbolic link"


def _jinja_internals(repo: Path) -> tuple[list[str], str]:
    (repo / "evil.yaml.j2").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: evil\n"
        "  annotations: {x: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}\n"
        "spec: {containers: [{name: c, image: x, command: [sleep, '60']}]}\n"
    )
    return ["evil.yaml.j2"], "evil.yaml.j2"


def _jinja_include(repo: Path) -> tuple[list[str], str]:
    (repo / "inc.yaml.j2").write_text("{% include '/etc/passwd' %}\n")
    return ["inc.yaml.j2"], "inc.yaml.j2"


def _bad_name(repo: Path) -> tuple[list[str], str]:
    (repo / "name.yaml").write_text(POD.replace("name: web", "name: Not_A_DNS_Label!"))
    return ["name.yaml"], "metadata.name"


def _bad_port(repo: Path) -> tuple[list[str], str]:
    (repo / "port.yaml").write_text(POD.replace("name: web", "name: port").replace("8080", "70000"))
    return ["port.yaml"], "containerPort"


def _duplicate(repo: Path) -> tuple[list[str], str]:
    # the same Pod/web as web.yaml, with another image
    (repo / "dup.yaml").write_text(POD.replace("kubia:v1", "kubia:v2"))
    return ["dup.yaml"], "duplicate"


def _duplicate_identical(repo: Path) -> tuple[list[str], str]:
    # byte-identical to web.yaml: the same git blob under two paths
    (repo / "copy.yaml").write_text(POD)
    return ["copy.yaml"], "duplicate"


def _selector_mismatch(repo: Path) -> tuple[list[str], str]:
    (repo / "deploy.yaml").write_text("""apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch}
spec:
  replicas: 1
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: kubia:v1}]}
""")
    return ["deploy.yaml"], "selector"


def _unknown_field(repo: Path) -> tuple[list[str], str]:
    # a typo kubectl's strict validation rejects; gitship used to drop it silently
    typo = POD.replace("name: web", "name: typo").replace(
        "    image: kubia:v1\n", "    imagee: kubia:v2\n    image: kubia:v1\n"
    )
    (repo / "typo.yaml").write_text(typo)
    return [
        "typo.yaml"
    ], 'typo.yaml:9 (document 1): spec.containers[0].imagee: unknown field "spec.containers[0].imagee"'


def _duplicate_field(repo: Path) -> tuple[list[str], str]:
    # PyYAML keeps the last of a repeated key; kubectl rejects it
    (repo / "dupfield.yaml").write_text(POD.replace("  name: web\n", "  name: web\n  name: other\n"))
    return ["dupfield.yaml"], 'dupfield.yaml:5 (document 1): metadata.name: duplicate field "metadata.name"'


def _not_utf8(repo: Path) -> tuple[list[str], str]:
    (repo / "latin1.yaml").write_bytes(POD.replace("name: web", "name: caf\xe9").encode("latin-1"))
    return ["latin1.yaml"], "UTF-8"


def _binary(repo: Path) -> tuple[list[str], str]:
    (repo / "blob.yaml").write_bytes(bytes(range(256)) * 64)
    return ["blob.yaml"], "blob.yaml"


CASES = {
    "alias-bomb": _alias_bomb,
    "alias-bomb-under-alias-limit": _alias_bomb_within_alias_limit,
    "50MB-manifest": _huge,
    "10000-deep-flow": _deep,
    "10000-deep-block": _deep_block,
    "symlink-outside": _symlink,
    "jinja-python-internals": _jinja_internals,
    "jinja-include-file": _jinja_include,
    "name-not-dns-label": _bad_name,
    "port-out-of-range": _bad_port,
    "duplicate-across-files": _duplicate,
    "duplicate-identical-file": _duplicate_identical,
    "selector-mismatch": _selector_mismatch,
    "unknown-field": _unknown_field,
    "duplicate-field": _duplicate_field,
    "not-utf8": _not_utf8,
    "binary-file": _binary,
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_commit_is_rejected_and_last_good_state_runs(env: Env, case: str) -> None:
    g = env.g
    pid = g.proc.pid  # type: ignore[union-attr]
    written, must_contain = CASES[case](env.repo)
    try:
        t0 = time.monotonic()
        sha = env.commit(f"hostile: {case}")
        g.wait_applied(sha, timeout=REJECT_TIMEOUT)
        elapsed = time.monotonic() - t0
        st = g.status()["status"]
        assert st["lastAttemptedRevision"] == sha
        assert st["lastAppliedRevision"] != sha, f"{case} was applied"
        cond = st["conditions"][0]
        assert cond["status"] == "False" and cond["reason"] == "ValidationFailed", cond
        msg = cond["message"]
        assert any(w in msg for w in written), f"the error does not name the file: {msg[:500]}"
        assert must_contain.lower() in msg.lower(), f"expected {must_contain!r} in: {msg[:500]}"
        assert len(msg) < 20_000, "the error message itself is unbounded"
        hist = g.json("history")["items"][0]
        assert hist["sha"] == sha and hist["result"] == "rejected"
        assert elapsed < REJECT_TIMEOUT
        env.assert_good_state_runs()
        assert g.proc.poll() is None, "the daemon died"  # type: ignore[union-attr]
        if case == "50MB-manifest":
            hwm_mb = _vmhwm_kib(pid) / 1024
            assert hwm_mb < 500, f"daemon peak RSS {hwm_mb:.0f} MB during the 50 MB manifest"
    finally:
        # the fix: remove what the case added (even when it failed, so the next case starts clean)
        for rel in written:
            git(env.repo, "rm", "-q", "-f", "--ignore-unmatch", rel)
            if os.path.lexists(env.repo / rel):
                os.unlink(env.repo / rel)
        fix = env.commit(f"revert {case}")
    g.wait_applied(fix, timeout=REJECT_TIMEOUT)
    st = g.status()["status"]
    assert st["lastAppliedRevision"] == fix and st["conditions"][0]["status"] == "True", st
    env.assert_good_state_runs()


def test_no_file_outside_the_repository_was_read(env: Env) -> None:
    """Nothing of /etc/passwd ever reached the store or the log (symlink and Jinja include)."""
    log = Path(env.g.state_dir, "reconcile.log").read_text(errors="replace")
    assert "root:x:0:0" not in log
    assert "root:x:0:0" not in env.g.cli("history", "-o", "json").stdout
