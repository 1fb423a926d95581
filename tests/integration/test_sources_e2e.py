"""Several sources through a real `gitship up --sources FILE` (reconciler/sources).

Two more repositories beside the default one: `apps` depends on `base`, so it waits (Ready False,
DependencyNotReady) while `base` is not Ready (a broken commit), and applies once it is; each source
has its own status and inventory; an object `apps` declares that `base` owns is rejected naming both
sources, both files and the object, and nothing of that revision is applied.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import commit_file, git, wait_for


def cm(name: str, value: str = "1") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{value}'}}\n"


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Author")
    git(path, "config", "user.email", "author@example.com")
    return path


def sources(g) -> dict:
    return {s["name"]: s for s in g.status()["status"]["sources"]}


def exists(g, name: str) -> bool:
    return g.cli("get", "cm", name, check=False).returncode == 0


def test_two_sources_depends_on_and_an_ownership_conflict(tmp_path, gitship_factory):
    main = new_repo(tmp_path / "main")
    commit_file(main, "main.yaml", cm("from-main"), "main")
    base = new_repo(tmp_path / "base")
    commit_file(base, "shared.yaml", cm("shared"), "ok")
    broken = commit_file(base, "bad.yaml", cm("bad").replace("v: '1'", "v: 1"), "broken")
    apps = new_repo(tmp_path / "apps")
    commit_file(apps, "app.yaml", cm("app"), "app")
    spec = tmp_path / "sources.yaml"
    spec.write_text(f"sources:\n- {{name: base, url: {base}}}\n- {{name: apps, url: {apps}, dependsOn: [base]}}\n")
    g = gitship_factory(main, extra=["--sources", str(spec)])

    wait_for(lambda: sources(g)["base"]["lastAttemptedRevision"] == broken, 60, what="base attempted")
    s = sources(g)
    assert s["base"]["ready"]["reason"] == "ValidationFailed" and "bad.yaml" in s["base"]["ready"]["message"]
    wait_for(lambda: sources(g)["apps"]["ready"]["reason"] == "DependencyNotReady", 30, what="apps waiting")
    assert "'base'" in sources(g)["apps"]["ready"]["message"]
    assert exists(g, "from-main") and not exists(g, "app")
    text = g.cli("status").stdout
    assert "Sources:" in text and "DependencyNotReady" in text

    fixed = commit_file(base, "bad.yaml", cm("bad"), "fixed")
    wait_for(lambda: sources(g)["base"]["lastAppliedRevision"] == fixed, 60, what="base applied")
    wait_for(lambda: sources(g)["apps"]["ready"]["status"] == "True", 60, what="apps applied after base")
    assert exists(g, "shared") and exists(g, "app") and exists(g, "from-main")
    s = sources(g)
    assert (s["default"]["objects"], s["base"]["objects"], s["apps"]["objects"]) == (1, 2, 1)

    # apps claims base's object: rejected naming both sources, both files and the object
    claim = commit_file(apps, "steal.yaml", cm("shared", "stolen") + "---\n" + cm("app-two"), "claim shared")
    wait_for(lambda: sources(g)["apps"]["lastAttemptedRevision"] == claim, 60, what="apps attempted the claim")
    msg = sources(g)["apps"]["ready"]["message"]
    assert "steal.yaml" in msg and "shared.yaml" in msg and "'base'" in msg and "'apps'" in msg, msg
    assert "ConfigMap default/shared" in msg
    assert not exists(g, "app-two")  # nothing of that revision applied
    assert g.json("get", "cm", "shared")["data"] == {"v": "1"}

    # a commit to the default repository leaves the other sources' objects alone
    more = commit_file(main, "more.yaml", cm("more"), "more")
    g.wait_applied(more)
    wait_for(lambda: exists(g, "more"), 30, what="more")
    assert exists(g, "shared") and exists(g, "app")

    # apps removed from the sources file: what it owned is pruned, under the safe-pruning rule
    g.stop()
    spec.write_text(f"sources:\n- {{name: base, url: {base}}}\n")
    g2 = gitship_factory(main, extra=["--sources", str(spec), "--prune-threshold", "50"], state_dir=Path(g.state_dir))
    wait_for(lambda: "Prune held" in g2.cli("status").stdout, 60, what="the removal held")
    assert "removing source 'apps'" in g2.cli("status").stdout
    assert exists(g2, "app")  # held: still there
    assert "approved source:apps" in g2.cli("approve", "source:apps").stdout
    wait_for(lambda: not exists(g2, "app"), 60, what="apps' objects pruned")
    assert set(sources(g2)) == {"default", "base"} and exists(g2, "shared") and exists(g2, "more")


def cm_in(name: str, namespace: str, value: str = "1") -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\ndata: {{v: '{value}'}}\n"
    )


def test_a_namespace_of_another_source_a_sources_file_change_and_plan_per_source(tmp_path, gitship_factory):
    """apps' ConfigMap lives in the Namespace base declares; apps is added to the sources file while
    the daemon runs; `plan` / `diff --source apps` read apps' checkout; base cannot drop the Namespace."""
    from tests.conftest import remove_file

    main = new_repo(tmp_path / "main")
    commit_file(main, "main.yaml", cm("from-main"), "main")
    base = new_repo(tmp_path / "base")
    commit_file(base, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n", "ns")
    apps = new_repo(tmp_path / "apps")
    first = commit_file(apps, "app.yaml", cm_in("app", "team"), "app")
    spec = tmp_path / "sources.yaml"
    spec.write_text(f"sources:\n- {{name: base, url: {base}}}\n")
    g = gitship_factory(main, extra=["--sources", str(spec)])
    wait_for(lambda: sources(g)["base"]["ready"]["status"] == "True", 60, what="base applied")

    spec.write_text(f"sources:\n- {{name: base, url: {base}}}\n- {{name: apps, url: {apps}}}\n")  # no restart
    wait_for(lambda: (sources(g).get("apps") or {}).get("lastAppliedRevision") == first, 60, what="apps applied")
    assert g.json("get", "cm", "app", "-n", "team")["data"] == {"v": "1"}

    second = commit_file(apps, "app.yaml", cm_in("app", "team", "2"), "v2")
    wait_for(lambda: sources(g)["apps"]["lastAppliedRevision"] == second, 60, what="apps' second commit")
    head = g.cli("plan", "--source", "apps", "-o", "json")
    assert head.returncode == 0 and '"repository": "%s"' % apps in head.stdout and '"actions": []' in head.stdout
    back = g.cli("plan", "--source", "apps", first, check=False)
    assert back.returncode == 0 and "1 to update" in back.stdout and "configmap/team/app" in back.stdout, back.stdout
    diff = g.cli("diff", "--source", "apps", first, check=False)
    assert diff.returncode == 1 and "app" in diff.stdout and "'1'" in diff.stdout.replace('"', "'"), diff.stdout
    assert g.cli("plan", "--source", "nope", check=False).returncode == 1

    drop = remove_file(base, "ns.yaml", "drop the namespace")
    wait_for(lambda: sources(g)["base"]["lastAttemptedRevision"] == drop, 60, what="base attempted the drop")
    msg = sources(g)["base"]["ready"]["message"]
    assert "no longer declares Namespace team" in msg and "'apps'" in msg, msg
    assert g.json("get", "cm", "app", "-n", "team")["data"] == {"v": "2"}
