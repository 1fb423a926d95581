"""RepoWriter against real git repositories (created in tmp_path).

The manifests are the seed's (the testqc Deployment as written there, with its
trailing space after ``name: testqc``; the dnsutil Pod and ReplicaSet in the
seed's 1-space indentation) with comments added.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from reconciler.errors import GitOpsError, NotFound
from reconciler.gitops import RepoWriter, patch_document, split_documents

# --------------------------------------------------------------------------- seed manifests

DEPLOYMENT = (
    "# The testqc deployment (rolling update demo)\n"
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    "  name: testqc \n"
    "spec:\n"
    "  replicas: 3  # three replicas: maxSurge 1, maxUnavailable 0\n"
    "  template:\n"
    "    metadata:\n"
    "      name: allen\n"
    "      labels:\n"
    "        app: testing\n"
    "    spec:\n"
    "      containers:\n"
    "      # the node.js app built in section 2\n"
    "      - image: qinchaowhut/allen:v1\n"
    "        name: nodejs\n"
    "        imagePullPolicy: IfNotPresent\n"
    "  selector:\n"
    "    matchLabels:\n"
    "      app: testing\n"
)
LB_SERVICE = (
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata:\n"
    "  name: allen-loadbalancer\n"
    "spec:\n"
    "  type: LoadBalancer\n"
    "  ports:\n"
    "  - port: 80\n"
    "    targetPort: 8080\n"
    "  selector:\n"
    "    app: testing\n"
)
POD = (
    "# dnsutils.yaml\n"
    "apiVersion: v1\n"
    "kind: Pod\n"
    "metadata:\n"
    " name: dnsutil-pod  # for nslookup\n"
    "spec:\n"
    " containers:\n"
    " - image: tutum/dnsutils\n"
    "   name: dnsutil\n"
    '   command: ["sleep", "infinity"]\n'
)
REPLICASET = (
    "---\n"
    "# replicaset.yaml\n"
    "apiVersion: apps/v1\n"
    "kind: ReplicaSet\n"
    "metadata:\n"
    " name: dnsutil-rs\n"
    "spec:\n"
    " replicas: 2\n"
    " selector:\n"
    "   matchLabels:\n"
    "    app: dnsutil\n"
    " template:\n"
    "   metadata:\n"
    "     labels:\n"
    "       app: dnsutil  # must match the selector\n"
    "   spec:\n"
    "     containers:\n"
    "     - name: dnsutil\n"
    "       image: tutum/dnsutils\n"
    '       command: ["sleep", "infinity"]\n'
)
SERVICE = (
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata:\n"
    "  name: test-svc\n"
    "spec:\n"
    "  ports:\n"
    "  - port: 80\n"
    "    targetPort: 8080\n"
    "  selector:\n"
    "    app: testing\n"
)
TEMPLATE = (
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    "  name: web\n"
    "spec:\n"
    "  replicas: {{ replicas }}\n"
    "  selector:\n"
    "    matchLabels: {app: web}\n"
    "  template:\n"
    "    metadata:\n"
    "      labels: {app: web}\n"
    "    spec:\n"
    "      containers:\n"
    "      - name: web\n"
    "        image: nginx:1.25\n"
)
APP = POD + REPLICASET + SERVICE
DEPLOY_FILE = DEPLOYMENT + LB_SERVICE


# --------------------------------------------------------------------------- helpers


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and p.returncode:
        raise AssertionError(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout


def head(cwd: Path | str) -> str:
    return git(cwd, "rev-parse", "HEAD").strip()


def status(cwd: Path | str) -> str:
    return git(cwd, "status", "--porcelain", "--untracked-files=all")


def changed_lines(cwd: Path | str, rev: str = "HEAD") -> tuple[list[str], list[str]]:
    """(removed, added) lines of the commit ``rev``."""
    out = git(cwd, "diff", "--no-color", "-U0", f"{rev}~1", rev)
    removed = [ln[1:] for ln in out.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:] for ln in out.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return removed, added


def make_repo(path: Path, identity: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    if identity:
        git(path, "config", "user.name", "Test User")
        git(path, "config", "user.email", "test@example.com")
    (path / "manifests").mkdir()
    (path / "manifests" / "app.yaml").write_text(APP)
    (path / "manifests" / "deployment.yaml").write_text(DEPLOY_FILE)
    (path / "manifests" / "web.yaml.j2").write_text(TEMPLATE)
    (path / "gitship.yaml").write_text("values:\n  replicas: 2\n")
    (path / "README.md").write_text("seed\n")
    git(path, "add", "-A")
    git(path, "-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def writer(repo: Path) -> RepoWriter:
    return RepoWriter(str(repo), "manifests")


def read(repo: Path, rel: str) -> str:
    return (repo / rel).read_text()


# --------------------------------------------------------------------------- find


def test_find_locates_documents(writer: RepoWriter) -> None:
    assert writer.find("Pod", "default", "dnsutil-pod") == ("manifests/app.yaml", 0)
    assert writer.find("ReplicaSet", None, "dnsutil-rs") == ("manifests/app.yaml", 1)
    assert writer.find("Service", "default", "test-svc") == ("manifests/app.yaml", 2)
    assert writer.find("Deployment", "default", "testqc") == ("manifests/deployment.yaml", 0)
    assert writer.find("Service", "default", "allen-loadbalancer") == ("manifests/deployment.yaml", 1)


def test_not_found(writer: RepoWriter, repo: Path) -> None:
    with pytest.raises(NotFound):
        writer.find("Deployment", "default", "nope")
    with pytest.raises(NotFound):
        writer.find("Deployment", "other-ns", "testqc")
    before = head(repo)
    with pytest.raises(NotFound):
        writer.scale("Deployment", "default", "nope", 2)
    assert head(repo) == before


def test_template_object_refused(writer: RepoWriter, repo: Path) -> None:
    before = head(repo)
    with pytest.raises(
        GitOpsError,
        match=r"rendered from the template manifests/web\.yaml\.j2; "
        r"edit the template and commit it yourself",
    ):
        writer.find("Deployment", "default", "web")
    with pytest.raises(GitOpsError, match="rendered from the template"):
        writer.set_image("Deployment", "default", "web", {"web": "nginx:1.26"})
    assert head(repo) == before
    assert read(repo, "manifests/web.yaml.j2") == TEMPLATE
    assert status(repo) == ""


# --------------------------------------------------------------------------- labels


def test_label_add_keeps_comments_and_other_documents(writer: RepoWriter, repo: Path) -> None:
    sha = writer.set_labels("Pod", "default", "dnsutil-pod", {"app": "dnsutil"}, [], False)
    assert sha == head(repo)
    assert git(repo, "log", "-1", "--format=%s").strip() == "label pod/dnsutil-pod: app=dnsutil"
    text = read(repo, "manifests/app.yaml")
    expected_pod = POD.replace(
        " name: dnsutil-pod  # for nslookup\n", " name: dnsutil-pod  # for nslookup\n labels:\n  app: dnsutil\n"
    )
    assert text == expected_pod + REPLICASET + SERVICE
    # the other documents are byte-identical
    chunks = split_documents(text)
    assert chunks[1] == REPLICASET and chunks[2] == SERVICE
    assert yaml.safe_load(chunks[0])["metadata"]["labels"] == {"app": "dnsutil"}
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["manifests/app.yaml"]
    assert status(repo) == ""


def test_label_overwrite_refused_then_overwrite_and_remove(writer: RepoWriter, repo: Path) -> None:
    writer.set_labels("Deployment", "default", "testqc", {"app": "testing"}, [], False)
    before = head(repo)
    with pytest.raises(
        GitOpsError,
        match=r"'app' already has a value \(testing\), and --overwrite "
        r"is false",
    ):
        writer.set_labels("Deployment", "default", "testqc", {"app": "other"}, [], False)
    assert head(repo) == before and status(repo) == ""
    # the same value again: nothing to do
    assert writer.set_labels("Deployment", "default", "testqc", {"app": "testing"}, [], False) is None
    assert head(repo) == before

    writer.set_labels("Deployment", "default", "testqc", {"app": "other", "tier": "web"}, [], True)
    assert git(repo, "log", "-1", "--format=%s").strip() == "label deployment/testqc: app=other, tier=web"
    doc = yaml.safe_load(split_documents(read(repo, "manifests/deployment.yaml"))[0])
    assert doc["metadata"]["labels"] == {"app": "other", "tier": "web"}

    writer.set_labels("Deployment", "default", "testqc", {}, ["app", "missing"], False)
    assert git(repo, "log", "-1", "--format=%s").strip() == "label deployment/testqc: app-"
    writer.set_labels("Deployment", "default", "testqc", {}, ["tier"], False)
    # every label gone: the file is back to the seed, byte for byte, comments included
    assert read(repo, "manifests/deployment.yaml") == DEPLOY_FILE
    # removing a label that is not there is fine and commits nothing
    top = head(repo)
    assert writer.set_labels("Deployment", "default", "testqc", {}, ["nope"], False) is None
    assert head(repo) == top


def test_label_values_quoted_when_needed(writer: RepoWriter, repo: Path) -> None:
    writer.set_labels("Service", "default", "test-svc", {"canary": "true", "v": "1"}, [], False)
    chunk = split_documents(read(repo, "manifests/app.yaml"))[2]
    assert yaml.safe_load(chunk)["metadata"]["labels"] == {"canary": "true", "v": "1"}
    with pytest.raises(GitOpsError, match="invalid label value"):
        writer.set_labels("Service", "default", "test-svc", {"bad": "has space"}, [], False)


# --------------------------------------------------------------------------- set image


def test_set_image_on_seed_deployment_is_a_one_line_diff(writer: RepoWriter, repo: Path) -> None:
    sha = writer.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v2"})
    assert sha == head(repo)
    assert git(repo, "log", "-1", "--format=%s").strip() == "set image deployment/testqc: nodejs=qinchaowhut/allen:v2"
    assert changed_lines(repo) == (["      - image: qinchaowhut/allen:v1"], ["      - image: qinchaowhut/allen:v2"])
    assert git(repo, "diff", "--numstat", "HEAD~1", "HEAD").split() == ["1", "1", "manifests/deployment.yaml"]
    assert read(repo, "manifests/deployment.yaml") == DEPLOY_FILE.replace(
        "allen:v1", "allen:v2"
    )  # the trailing space of `name: testqc ` kept


def test_set_image_one_space_indentation_and_pod(writer: RepoWriter, repo: Path) -> None:
    writer.set_image("ReplicaSet", "default", "dnsutil-rs", {"dnsutil": "tutum/dnsutils:v2"})
    assert changed_lines(repo) == (["       image: tutum/dnsutils"], ["       image: tutum/dnsutils:v2"])
    writer.set_image("Pod", "default", "dnsutil-pod", {"*": "busybox:1.36"})
    assert changed_lines(repo) == ([" - image: tutum/dnsutils"], [" - image: busybox:1.36"])
    assert git(repo, "log", "-1", "--format=%s").strip() == "set image pod/dnsutil-pod: *=busybox:1.36"


def test_set_image_unknown_container(writer: RepoWriter, repo: Path) -> None:
    before = head(repo)
    with pytest.raises(GitOpsError, match="unable to find container named nope"):
        writer.set_image("Deployment", "default", "testqc", {"nope": "x:1"})
    assert head(repo) == before and status(repo) == ""
    assert writer.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v1"}) is None


# --------------------------------------------------------------------------- scale, pause, template


def test_scale(writer: RepoWriter, repo: Path) -> None:
    writer.scale("Deployment", "default", "testqc", 5)
    assert git(repo, "log", "-1", "--format=%s").strip() == "scale deployment/testqc: replicas 3 -> 5"
    assert changed_lines(repo) == (
        ["  replicas: 3  # three replicas: maxSurge 1, maxUnavailable 0"],
        ["  replicas: 5  # three replicas: maxSurge 1, maxUnavailable 0"],
    )
    writer.scale("ReplicaSet", "default", "dnsutil-rs", 0)
    assert changed_lines(repo) == ([" replicas: 2"], [" replicas: 0"])
    assert writer.scale("ReplicaSet", "default", "dnsutil-rs", 0) is None
    with pytest.raises(GitOpsError):
        writer.scale("Pod", "default", "dnsutil-pod", 2)


def test_pause_and_resume(writer: RepoWriter, repo: Path) -> None:
    writer.set_paused("Deployment", "default", "testqc", True)
    assert git(repo, "log", "-1", "--format=%s").strip() == "rollout pause deployment/testqc"
    assert changed_lines(repo) == ([], ["  paused: true"])
    doc = yaml.safe_load(split_documents(read(repo, "manifests/deployment.yaml"))[0])
    assert doc["spec"]["paused"] is True
    with pytest.raises(GitOpsError, match="already paused"):
        writer.set_paused("Deployment", "default", "testqc", True)
    writer.set_paused("Deployment", "default", "testqc", False)
    assert git(repo, "log", "-1", "--format=%s").strip() == "rollout resume deployment/testqc"
    assert read(repo, "manifests/deployment.yaml") == DEPLOY_FILE
    with pytest.raises(GitOpsError, match="not paused"):
        writer.set_paused("Deployment", "default", "testqc", False)


def test_set_template_keeps_the_rest(writer: RepoWriter, repo: Path) -> None:
    tmpl = {
        "metadata": {"name": "allen", "labels": {"app": "testing", "track": "stable"}},
        "spec": {
            "containers": [{"image": "qinchaowhut/allen:v0", "name": "nodejs", "imagePullPolicy": "IfNotPresent"}]
        },
    }
    writer.set_template("Deployment", "default", "testqc", tmpl, "rollout undo deployment/testqc to revision 1")
    assert git(repo, "log", "-1", "--format=%s").strip() == "rollout undo deployment/testqc to revision 1"
    removed, added = changed_lines(repo)
    assert removed == ["      - image: qinchaowhut/allen:v1"]
    assert added == ["        track: stable", "      - image: qinchaowhut/allen:v0"]
    text = read(repo, "manifests/deployment.yaml")
    assert "# the node.js app built in section 2" in text
    assert yaml.safe_load(split_documents(text)[0])["spec"]["template"] == tmpl


# --------------------------------------------------------------------------- safety


def test_dirty_file_refused_and_other_staged_work_untouched(writer: RepoWriter, repo: Path) -> None:
    before = head(repo)
    edited = DEPLOY_FILE.replace("replicas: 3", "replicas: 4")
    (repo / "manifests" / "deployment.yaml").write_text(edited)
    with pytest.raises(GitOpsError, match="manifests/deployment.yaml has uncommitted changes"):
        writer.set_image("Deployment", "default", "testqc", {"nodejs": "x:2"})
    assert head(repo) == before
    assert read(repo, "manifests/deployment.yaml") == edited  # the user's edit is intact
    git(repo, "checkout", "--", "manifests/deployment.yaml")

    # a user's staged change to another file is neither committed nor unstaged
    (repo / "README.md").write_text("user's work\n")
    git(repo, "add", "README.md")
    writer.scale("Deployment", "default", "testqc", 4)
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["manifests/deployment.yaml"]
    assert status(repo) == "M  README.md\n"


def test_concurrent_writers_serialize(repo: Path) -> None:
    errors: list[BaseException] = []

    def run(fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    w1, w2 = RepoWriter(str(repo), "manifests"), RepoWriter(str(repo), "manifests")
    threads = [
        threading.Thread(target=run, args=(lambda: w1.scale("Deployment", "default", "testqc", 7),)),
        threading.Thread(
            target=run, args=(lambda: w2.set_labels("ReplicaSet", "default", "dnsutil-rs", {"team": "dns"}, [], False),)
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert int(git(repo, "rev-list", "--count", "HEAD")) == 3
    assert status(repo) == ""
    assert os.path.exists(repo / ".git" / "gitship.lock")


def test_default_author_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for v in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(v, raising=False)
    repo = make_repo(tmp_path / "r", identity=False)
    w = RepoWriter(str(repo), "manifests")
    w.scale("Deployment", "default", "testqc", 2)
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "gitship <gitship@localhost>"
    info = w.log(n=1)[0]
    assert info["author"] == "gitship" and info["email"] == "gitship@localhost"


def test_author_from_git_config(writer: RepoWriter, repo: Path) -> None:
    writer.scale("Deployment", "default", "testqc", 2)
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "Test User <test@example.com>"


# --------------------------------------------------------------------------- add_file

NEW_FILE = (
    "# redis for the demo\n"
    "apiVersion: apps/v1\n"
    "kind: Deployment\n"
    "metadata:\n"
    "  name: redis\n"
    "spec:\n"
    "  replicas: 1\n"
    "  selector:\n"
    "    matchLabels: {app: redis}\n"
    "  template:\n"
    "    metadata:\n"
    "      labels: {app: redis}\n"
    "    spec:\n"
    "      containers:\n"
    "      - name: redis\n"
    "        image: redis:7\n"
)


def test_add_file_create_and_already_exists(writer: RepoWriter, repo: Path) -> None:
    sha = writer.add_file("redis.yaml", NEW_FILE.encode(), False, "create -f redis.yaml")
    assert sha == head(repo)
    assert read(repo, "manifests/redis.yaml") == NEW_FILE
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split() == [
        "create",
        "-f",
        "redis.yaml",
        "manifests/redis.yaml",
    ]
    assert writer.find("Deployment", "default", "redis") == ("manifests/redis.yaml", 0)

    before = head(repo)
    dup = DEPLOYMENT.encode()
    with pytest.raises(GitOpsError, match=r'AlreadyExists: deployment "testqc" already exists'):
        writer.add_file("copy.yaml", dup, False, "create -f copy.yaml")
    with pytest.raises(GitOpsError, match="AlreadyExists"):
        writer.add_file("redis.yaml", NEW_FILE.replace("redis", "cache").encode(), False, "c")
    assert head(repo) == before and status(repo) == ""
    assert not (repo / "manifests" / "copy.yaml").exists()


def test_add_file_apply_replaces_in_place(writer: RepoWriter, repo: Path) -> None:
    applied = DEPLOYMENT.replace("replicas: 3", "replicas: 4") + "---\n" + NEW_FILE
    writer.add_file("mixed.yaml", applied.encode(), True, "apply -f mixed.yaml")
    text = read(repo, "manifests/deployment.yaml")
    assert text == DEPLOY_FILE.replace("replicas: 3", "replicas: 4")
    assert split_documents(text)[1] == LB_SERVICE
    assert read(repo, "manifests/mixed.yaml") == NEW_FILE
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "manifests/deployment.yaml",
        "manifests/mixed.yaml",
    ]
    # applying the same again changes nothing
    assert writer.add_file("mixed.yaml", applied.encode(), True, "apply -f mixed.yaml") is None
    # an object of a template is not replaced
    with pytest.raises(GitOpsError, match="rendered from the template"):
        writer.add_file("web.yaml", TEMPLATE.replace("{{ replicas }}", "5").encode(), True, "apply")


# --------------------------------------------------------------------------- revert


def test_revert_is_the_exact_inverse(writer: RepoWriter, repo: Path) -> None:
    sha = writer.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v2"})
    forward = git(repo, "diff", "HEAD~1", "HEAD")
    rsha = writer.revert(sha, "rolled back by gitship: pods crash-looping")
    assert rsha == head(repo)
    backward = git(repo, "diff", "HEAD~1", "HEAD")
    # `git diff HEAD~1 HEAD` of the revert == the original commit's diff, reversed
    hunks = lambda d: d[d.index("@@") :]  # noqa: E731
    assert hunks(backward) == hunks(git(repo, "diff", "-R", "HEAD~2", "HEAD~1"))
    assert "-      - image: qinchaowhut/allen:v1\n+      - image: qinchaowhut/allen:v2" in forward
    assert "-      - image: qinchaowhut/allen:v2\n+      - image: qinchaowhut/allen:v1" in backward
    assert backward == git(repo, "diff", "HEAD~1", "HEAD~2")
    assert forward != backward
    assert read(repo, "manifests/deployment.yaml") == DEPLOY_FILE
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(
        f'Revert "set image deployment/testqc: nodejs=qinchaowhut/allen:v2"\n\nThis reverts commit {sha}.'
    )
    assert "rolled back by gitship: pods crash-looping" in msg
    assert status(repo) == ""


def test_revert_of_an_added_file(writer: RepoWriter, repo: Path) -> None:
    sha = writer.add_file("redis.yaml", NEW_FILE.encode(), False, "create -f redis.yaml")
    writer.revert(sha)
    assert not (repo / "manifests" / "redis.yaml").exists()
    assert git(repo, "show", "--name-status", "--format=", "HEAD").split() == ["D", "manifests/redis.yaml"]
    assert status(repo) == ""


def test_revert_conflict_leaves_repo_unchanged(writer: RepoWriter, repo: Path) -> None:
    a = writer.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v2"})
    writer.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v3"})
    before = head(repo)
    content = read(repo, "manifests/deployment.yaml")
    with pytest.raises(GitOpsError, match="conflicts"):
        writer.revert(a)
    assert head(repo) == before
    assert read(repo, "manifests/deployment.yaml") == content
    assert status(repo) == ""
    assert not (repo / ".git" / "REVERT_HEAD").exists()


# --------------------------------------------------------------------------- remote


def make_remote(tmp_path: Path) -> tuple[Path, str]:
    src = make_repo(tmp_path / "src")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    return bare, bare.resolve().as_uri()


def clone(url: str, dest: Path) -> Path:
    git(dest.parent, "clone", "-q", url, str(dest))
    git(dest, "config", "user.name", "Clone User")
    git(dest, "config", "user.email", "clone@example.com")
    return dest


def test_push_to_bare_remote(tmp_path: Path) -> None:
    bare, url = make_remote(tmp_path)
    c1 = clone(url, tmp_path / "c1")
    c2 = clone(url, tmp_path / "c2")
    # someone else pushes first: the writer fetches and fast-forwards before editing
    (c2 / "README.md").write_text("other\n")
    git(c2, "commit", "-qam", "other change")
    git(c2, "push", "-q", "origin", "main")

    w = RepoWriter(str(c1), "manifests", branch="main", remote="origin")
    sha = w.set_image("Deployment", "default", "testqc", {"nodejs": "qinchaowhut/allen:v2"})
    assert git(bare, "rev-parse", "main").strip() == sha == head(c1)
    assert (
        git(bare, "log", "-1", "--format=%s", "main").strip()
        == "set image deployment/testqc: nodejs=qinchaowhut/allen:v2"
    )
    assert git(bare, "rev-parse", "main~1").strip() == head(c2)
    assert status(c1) == ""


def test_push_rejected_when_remote_moved(tmp_path: Path) -> None:
    bare, url = make_remote(tmp_path)
    c1 = clone(url, tmp_path / "c1")
    c2 = clone(url, tmp_path / "c2")

    class Racing(RepoWriter):
        """The other clone pushes between our fetch and our push."""

        def commit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            (c2 / "README.md").write_text("raced\n")
            git(c2, "commit", "-qam", "racing change")
            git(c2, "push", "-q", "origin", "main")
            return super().commit(*args, **kwargs)

    before_local = head(c1)
    w = Racing(str(c1), "manifests", remote="origin")
    with pytest.raises(GitOpsError, match="rejected"):
        w.scale("Deployment", "default", "testqc", 9)
    assert head(c1) == before_local
    assert git(c1, "rev-parse", "main").strip() == before_local
    assert read(c1, "manifests/deployment.yaml") == DEPLOY_FILE
    assert status(c1) == ""
    assert git(bare, "rev-parse", "main").strip() == head(c2)
    # the next attempt fetches, fast-forwards and succeeds
    sha = RepoWriter(str(c1), "manifests", remote="origin").scale("Deployment", "default", "testqc", 9)
    assert git(bare, "rev-parse", "main").strip() == sha
    assert git(bare, "rev-parse", "main~1").strip() == head(c2)


# --------------------------------------------------------------------------- history


def test_introducing_commit_and_history(writer: RepoWriter, repo: Path) -> None:
    shas = {}
    for v in ("v2", "v3", "v4"):
        shas[v] = writer.set_image("Deployment", "default", "testqc", {"nodejs": f"qinchaowhut/allen:{v}"})
    writer.scale("Deployment", "default", "testqc", 4)  # touches the file, not the image
    f = "manifests/deployment.yaml"

    def has(v: str):  # noqa: ANN202
        return lambda data: data is not None and f"allen:{v}".encode() in data

    assert writer.introducing_commit(f, has("v4")) == shas["v4"]
    assert writer.introducing_commit(f, has("v3")) == shas["v3"]
    assert writer.introducing_commit(f, has("v2")) == shas["v2"]
    assert writer.introducing_commit(f, has("v1")) == git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert writer.introducing_commit(f, has("v9")) is None

    assert writer.file_at(shas["v3"], f) == DEPLOY_FILE.replace("allen:v1", "allen:v3").encode()
    assert writer.file_at(shas["v3"], "manifests/missing.yaml") is None

    log = writer.log(f, n=3)
    assert [e["subject"] for e in log] == [
        "scale deployment/testqc: replicas 3 -> 4",
        "set image deployment/testqc: nodejs=qinchaowhut/allen:v4",
        "set image deployment/testqc: nodejs=qinchaowhut/allen:v3",
    ]
    e = log[1]
    assert e["sha"] == shas["v4"] and shas["v4"].startswith(e["short"])
    assert e["author"] == "Test User" and e["email"] == "test@example.com"
    assert isinstance(e["time"], int) and e["time"] > 1_600_000_000
    assert e["files"] == [f]
    info = writer.commit_info(shas["v2"])
    assert info["subject"] == "set image deployment/testqc: nodejs=qinchaowhut/allen:v2"
    assert info["files"] == [f]
    root = writer.log()[-1]
    assert root["subject"] == "seed" and len(root["files"]) == 5


# --------------------------------------------------------------------------- the text engine


def test_patch_document_falls_back_to_round_trip() -> None:
    text = "base: &b\n  image: nginx  # web\nspec:\n  <<: *b\n  replicas: 1\n"
    new = yaml.safe_load(text)
    new["spec"]["replicas"] = 2
    out = patch_document(text, new)
    assert yaml.safe_load(out) == new
    assert "# web" in out


def test_patch_document_crlf_and_flow() -> None:
    text = 'metadata:\r\n  name: a\r\n  labels: {app: a}\r\nspec:\r\n  args: ["x", "y"]\r\n'
    new = yaml.safe_load(text)
    new["metadata"]["labels"]["tier"] = "web"
    new["spec"]["args"][1] = "z"
    new["spec"]["paused"] = True
    out = patch_document(text, new)
    assert yaml.safe_load(out) == new
    assert out == (
        'metadata:\r\n  name: a\r\n  labels: {app: a, tier: web}\r\nspec:\r\n  args: ["x", "z"]\r\n  paused: true\r\n'
    )
