"""`gitship get` as people who type kubectl expect it, against a real daemon: several kinds and `all`,
-o name / jsonpath / custom-columns, --show-labels, -L, --sort-by, --watch; and `gitship init`'s
first commit carrying the user's git identity.

Real git repositories, a real `gitship up`, the real CLI as a subprocess. No fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, pod_ready, wait_for


def _setup(repo: Path, gitship_factory):  # type: ignore[no-untyped-def]
    """The template's two pods, plus examples/replicaset.yaml (2 pods) and examples/svc.yaml, all running."""
    g = gitship_factory(repo)
    g.cli("create", "-f", str(repo / "examples" / "replicaset.yaml"))
    g.cli("create", "-f", str(repo / "examples" / "svc.yaml"))
    pods = wait_for(
        lambda: (ps := g.pods()) and len(ps) == 4 and all(pod_ready(p) for p in ps) and ps,
        60,
        what="4 pods ready",
    )
    wait_for(lambda: g.json("get", "svc", "test-svc"), 30, what="test-svc")
    wait_for(lambda: g.json("get", "rs", "dnsutil-rs")["status"].get("readyReplicas") == 2, 30, what="rs ready")
    return g, pods


def tables(text: str) -> list[list[list[str]]]:
    """kubectl's multi-kind output: tables separated by one blank line, each row split into cells."""
    return [[line.split() for line in block.splitlines()] for block in text.rstrip("\n").split("\n\n")]


def test_get_several_kinds_all_name_jsonpath_custom_columns_labels_sort(repo: Path, gitship_factory) -> None:
    g, pods = _setup(repo, gitship_factory)
    names = [p["metadata"]["name"] for p in pods]  # the store's order: by name
    rs_pods = [n for n in names if n.startswith("dnsutil-rs-")]
    assert len(rs_pods) == 2

    # get svc,rs,po: one table per kind in the order asked, names prefixed kind.group/
    svc, rs, po = tables(g.cli("get", "svc,rs,po").stdout)
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "service/test-svc" in [r[0] for r in svc[1:]]
    assert rs[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rs[1][:4] == ["replicaset.apps/dnsutil-rs", "2", "2", "2"]
    assert po[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[0] for r in po[1:]] == [f"pod/{n}" for n in names]

    # get all: pods, services, then replicasets (kubectl's order; no deployment exists)
    every = tables(g.cli("get", "all").stdout)
    assert [t[1][0].split("/")[0] for t in every] == ["pod", "service", "replicaset.apps"]
    # one kind asked: no prefix, output as before
    assert [r[0] for r in tables(g.cli("get", "po").stdout)[0][1:]] == names

    # -o name
    assert g.cli("get", "pods", "-o", "name").stdout.splitlines() == [f"pod/{n}" for n in names]
    assert g.cli("get", "rs,svc", "-o", "name").stdout.splitlines()[0] == "replicaset.apps/dnsutil-rs"
    assert "service/test-svc" in g.cli("get", "rs,svc", "-o", "name").stdout.splitlines()

    # -o jsonpath: lists space-separated, range, filters, a single object by name; no trailing newline
    assert g.cli("get", "pods", "-o", "jsonpath={.items[*].metadata.name}").stdout == " ".join(names)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    ranged = g.cli("get", "pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}')
    assert ranged.stdout == "".join(f"{n}\t{ips[n]}\n" for n in names)
    running = g.cli("get", "pods", "-o", 'jsonpath={.items[?(@.metadata.name=="kubia")].status.podIP}').stdout
    assert running == ips["kubia"]
    assert g.cli("get", "pod", "kubia", "-o", "jsonpath={.metadata.labels}").stdout == '{"app":"kubia"}'
    assert g.cli("get", "pods", "-o", "jsonpath={.items[-1:].metadata.name}").stdout == names[-1]
    bad = g.cli("get", "pods", "-o", "jsonpath={.items[", check=False)
    assert bad.returncode != 0 and "error" in bad.stderr

    # -o custom-columns: the headers as given, <none> for what is missing
    cc = tables(g.cli("get", "pods", "-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP,X:.spec.nosuch").stdout)
    assert cc[0][0] == ["NAME", "IP", "X"]
    assert cc[0][1:] == [[n, ips[n], "<none>"] for n in names]

    # --show-labels and -L
    shown = {r[0]: r[-1] for r in tables(g.cli("get", "pods", "--show-labels").stdout)[0][1:]}
    assert shown["kubia"] == "app=kubia" and shown["dnsutil-pod"] == "<none>"
    assert all(shown[n].split(",")[0] == "app=dnsutil" for n in rs_pods)
    by_label = tables(g.cli("get", "pods", "-L", "app").stdout)[0]
    assert by_label[0][-1] == "APP"
    assert {r[0]: r[5:] for r in by_label[1:]} == {
        "dnsutil-pod": [],
        "kubia": ["kubia"],
        **{n: ["dnsutil"] for n in rs_pods},
    }
    clash = g.cli("get", "pods", "-o", "name", "--show-labels", check=False)
    assert clash.returncode != 0 and "--show-labels" in clash.stderr

    # --sort-by: a JSONPath; the table, -o name and jsonpath all follow it
    by_ip = sorted(names, key=lambda n: ips[n])
    assert [r[0] for r in tables(g.cli("get", "pods", "--sort-by=.status.podIP").stdout)[0][1:]] == by_ip
    assert g.cli("get", "pods", "-o", "name", "--sort-by", "{.status.podIP}").stdout.split() == [
        f"pod/{n}" for n in by_ip
    ]
    missing = g.cli("get", "pods", "--sort-by=.spec.nosuch", check=False)
    assert missing.returncode != 0 and "couldn't find any field" in missing.stderr

    # not found and nothing found, as before
    nf = g.cli("get", "pod", "nosuch", check=False)
    assert nf.returncode == 1 and 'pods "nosuch" not found' in nf.stderr and nf.stdout == ""
    empty = g.cli("get", "deploy,po", "-l", "app=nosuch")
    assert empty.stdout == "" and "No resources found in default namespace." in empty.stderr


def test_watch_prints_the_table_then_a_row_per_change(repo: Path, gitship_factory, tmp_path: Path) -> None:
    g = gitship_factory(repo)
    wait_for(lambda: (ps := g.pods()) and len(ps) == 2 and all(pod_ready(p) for p in ps), 60, what="pods ready")
    out_path = tmp_path / "watch.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "get", "pods", "-w", "--show-labels"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=g.env,
            cwd=str(ROOT),
        )
    try:

        def lines() -> list[str]:
            return out_path.read_text().splitlines()

        first = wait_for(lambda: len(ls := lines()) >= 3 and ls, 30, what="the initial table")
        assert first[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
        assert [ln.split()[0] for ln in first[1:3]] == ["dnsutil-pod", "kubia"]
        g.cli("label", "po", "kubia", "tier=web")
        changed = wait_for(
            lambda: [ln for ln in lines()[3:] if ln.split()[0] == "kubia" and "tier=web" in ln],
            60,
            what="a watch line for the relabelled pod",
        )
        assert changed[0].split()[-1] == "app=kubia,tier=web"
        # no second header; the rows keep the first table's columns
        assert sum(1 for ln in lines() if ln.startswith("NAME")) == 1
        assert changed[0].index("app=kubia") == first[0].index("LABELS")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0


def _init_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment whose only git identity is what the test gives: no system, global or GIT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in ("EMAIL", "XDG_CONFIG_HOME")}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **extra}


def _init(tmp_path: Path, env: dict[str, str]) -> str:
    dest = tmp_path / "made"
    p = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "init", str(dest)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env=env,
    )
    assert p.returncode == 0, p.stderr
    return subprocess.run(
        ["git", "-C", str(dest), "log", "-1", "--format=%an <%ae> | %cn <%ce>"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()


@pytest.mark.parametrize(
    ("gitconfig", "extra", "want"),
    [
        ("[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n", {}, "Ada Lovelace <ada@example.com>"),
        ("[user]\n\tname = Ada Lovelace\n", {}, "Ada Lovelace <gitship@localhost>"),
        ("[user]\n\tname = Ada Lovelace\n", {"EMAIL": "ada@example.org"}, "Ada Lovelace <ada@example.org>"),
        (None, {}, "gitship <gitship@localhost>"),
    ],
    ids=["gitconfig", "gitconfig-name-only", "gitconfig-and-EMAIL", "none"],
)
def test_init_commits_as_the_user(tmp_path: Path, gitconfig: str | None, extra: dict[str, str], want: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if gitconfig:
        (home / ".gitconfig").write_text(gitconfig)
    assert _init(tmp_path, _init_env(home, **extra)) == f"{want} | {want}"


def test_init_takes_the_identity_from_git_environment_variables(tmp_path: Path) -> None:
    env = _init_env(
        tmp_path,
        GIT_AUTHOR_NAME="Grace Hopper",
        GIT_AUTHOR_EMAIL="grace@example.com",
        GIT_COMMITTER_NAME="Grace Hopper",
        GIT_COMMITTER_EMAIL="grace@example.com",
    )
    assert _init(tmp_path, env) == "Grace Hopper <grace@example.com> | Grace Hopper <grace@example.com>"
