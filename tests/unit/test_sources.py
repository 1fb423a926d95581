"""Several sources over plain data: the sources list, ownership conflicts, dependsOn ordering, and the
composing loader with its inventory (reconciler/sources)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests.load import parse_repo_config
from reconciler.manifests.model import Manifest, RepoConfig, Source
from reconciler.sources.runner import ComposingLoader, Inventory, SourceView
from reconciler.sources.spec import (
    DEFAULT,
    SourceSpec,
    apply_order,
    find_cycle,
    ownership_conflicts,
    waiting_on,
)
from reconciler.sources.status import sources_lines, sources_status
from reconciler.store import Store


def bad_config(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as e:
        parse_repo_config(text.encode())
    return e.value


def test_sources_parse_with_defaults():
    cfg = parse_repo_config(
        b"sources:\n- {name: base, url: ../base}\n"
        b"- {name: apps, url: 'https://example.com/apps.git', branch: prod, path: /k8s/, interval: 60,"
        b" dependsOn: [base]}\n"
    )
    assert cfg.sources == [
        SourceSpec("base", "../base"),
        SourceSpec("apps", "https://example.com/apps.git", "prod", "k8s", 60.0, ("base",)),
    ]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("sources: {a: b}", "sources", "list"),
        ("sources: [{name: Bad_Name, url: x}]", "sources[0].name", "DNS-1123"),
        ("sources: [{name: a}]", "sources[0].url", "Required"),
        ("sources: [{name: a, url: x, colour: red}]", "sources[0].colour", "unknown field"),
        ("sources: [{name: a, url: x}, {name: a, url: y}]", "sources[1].name", "Duplicate"),
        ("sources: [{name: default, url: x}]", "sources[0].name", "gitship up"),
        ("sources: [{name: a, url: x, dependsOn: [nope]}]", "sources[0].dependsOn[0]", "no source named 'nope'"),
        ("sources: [{name: a, url: x, dependsOn: [a]}]", "sources[0].dependsOn[0]", "itself"),
        ("sources: [{name: a, url: x, interval: 0}]", "sources[0].interval", "positive"),
        (
            "sources: [{name: a, url: x, dependsOn: [b]}, {name: b, url: y, dependsOn: [a]}]",
            "sources",
            "cycle: a -> b -> a",
        ),
    ],
)
def test_bad_sources_name_the_field(text: str, field: str, words: str):
    e = bad_config(text)
    assert e.field == field and words in e.message and e.file == "gitship.yaml"


def test_depends_on_order_and_waiting():
    specs = [
        SourceSpec("web", "w", depends_on=("db", "config")),
        SourceSpec("db", "d", depends_on=("config",)),
        SourceSpec("config", "c"),
        SourceSpec("extra", "e", depends_on=(DEFAULT,)),
    ]
    order = apply_order(specs)
    assert order.index("config") < order.index("db") < order.index("web")
    assert waiting_on(specs[0], {"db": True, "config": False}) == ["config"]
    assert waiting_on(specs[0], {"db": True, "config": True}) == []
    assert waiting_on(specs[3], {}) == [DEFAULT]  # unknown counts as not Ready


@given(st.dictionaries(st.sampled_from("abcdefg"), st.lists(st.sampled_from("abcdefg"), max_size=3), max_size=7))
def test_order_respects_every_edge_when_there_is_no_cycle(deps: dict[str, list[str]]):
    deps = {n: [d for d in ds if d in deps and d != n] for n, ds in deps.items()}
    specs = [SourceSpec(n, n, depends_on=tuple(ds)) for n, ds in deps.items()]
    order = apply_order(specs)
    assert sorted(order) == sorted(deps)
    if not find_cycle(deps):
        for n, ds in deps.items():
            assert all(order.index(d) < order.index(n) for d in ds)


def test_a_second_claim_names_both_sources_both_files_and_the_object():
    owners = {("ConfigMap", "default", "shared"): ("base", "shared.yaml", 3)}
    declared = {("ConfigMap", "default", "shared"): ("steal.yaml", 7), ("ConfigMap", "default", "mine"): ("m.yaml", 1)}
    errors = ownership_conflicts("apps", declared, owners)
    assert len(errors) == 1
    e = errors[0]
    assert (e.file, e.line, e.field) == ("steal.yaml", 7, "metadata.name")
    assert "ConfigMap default/shared" in e.message and "'base' (shared.yaml:3)" in e.message and "'apps'" in e.message
    assert ownership_conflicts("base", declared, owners) == []  # its own object


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


class FakeLoader:
    def __init__(self, objs: dict[str, list[dict]]):
        self.objs = objs

    def load(self, sha: str) -> tuple[list[Manifest], RepoConfig]:
        return [Manifest(o, Source(f"{o['metadata']['name']}.yaml", 1, 0)) for o in self.objs[sha]], RepoConfig()


def test_composing_loader_adds_the_other_sources_objects_and_rejects_a_claim(tmp_path):
    store = Store(str(tmp_path))
    shared = cm("shared")
    live = {("ConfigMap", "default", "shared"): shared, ("ConfigMap", "default", "main"): cm("main")}
    store.update_desired([(o, f"{k[2]}.yaml", 1) for k, o in live.items()], [])
    inv = Inventory(store)  # what was applied before belongs to default
    assert inv.owned(DEFAULT) == set(live)
    inv.set("base", {("ConfigMap", "default", "shared"): ("shared.yaml", 1)})
    inv.set(DEFAULT, {("ConfigMap", "default", "main"): ("main.yaml", 1)})

    loader = ComposingLoader(FakeLoader({"s1": [cm("app")], "s2": [cm("shared")]}), "apps", "/r", inv, lambda: live)
    manifests, _ = loader.load("s1")
    keys = {m.key for m in manifests}
    assert keys == {("ConfigMap", "default", "app"), *live}
    carried = next(m for m in manifests if m.key == ("ConfigMap", "default", "shared"))
    assert carried.obj is shared and carried.source.file == "shared.yaml"  # the same dict: no change planned
    assert loader.declared == {"s1": {("ConfigMap", "default", "app"): ("app.yaml", 1)}}
    with pytest.raises(RevisionRejected) as e:
        loader.load("s2")
    assert "owned by source 'base'" in str(e.value)
    assert Inventory(store).owned("base") == {("ConfigMap", "default", "shared")}  # saved in the store


def test_source_view_keeps_a_sources_own_status(tmp_path):
    store = Store(str(tmp_path))
    SourceView(store, "apps").set_meta(ready={"status": "True"}, lastAppliedRevision="abc", other=1)
    assert store.get_meta("source/apps/ready") == {"status": "True"} and store.get_meta("ready") is None
    assert store.get_meta("other") == 1  # shared keys stay shared
    SourceView(store, DEFAULT).set_meta(ready={"status": "False"})
    assert store.get_meta("ready") == {"status": "False"}  # default keeps the global keys
    store.set_meta(sources=[DEFAULT, "apps"], sourceInventory={"apps": [["ConfigMap", "default", "a", "a.yaml", 1]]})
    rows = sources_status(store.get_meta)
    assert [r["name"] for r in rows] == [DEFAULT, "apps"] and rows[1]["objects"] == 1
    text = "\n".join(sources_lines(rows))
    assert "apps" in text and "Ready True" in text


# -- a Namespace one source declares, used by another ------------------------------------------------
def ns(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cm_in(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


def test_check_namespaces_knows_the_namespaces_declared_elsewhere():
    from reconciler.manifests.namespaces import check_namespaces

    ms = [Manifest(cm_in("a", "team"), Source("a.yaml", 1, 0))]
    assert [e.field for e in check_namespaces(ms)] == ["metadata.namespace"]
    assert check_namespaces(ms, {"team"}) == []


def test_namespaces_of_the_others_and_a_namespace_removed_in_use():
    from reconciler.sources.namespaces import namespace_removed_in_use, namespaces_of

    owners = {
        ("Namespace", "", "team"): ("base", "ns.yaml", 1),
        ("Namespace", "", "own"): ("apps", "ns.yaml", 1),
        ("ConfigMap", "team", "a"): ("apps", "a.yaml", 3),
        ("ConfigMap", "own", "b"): ("apps", "b.yaml", 2),
    }
    assert namespaces_of(owners, "apps") == {"team"} and namespaces_of(owners, "base") == {"own"}
    assert namespace_removed_in_use("base", [("Namespace", "", "team")], owners) == []  # still declared
    [e] = namespace_removed_in_use("base", [], owners)  # base drops Namespace team, which apps uses
    assert (e.file, e.line, e.field) == ("a.yaml", 3, "metadata.namespace")
    assert "'base'" in e.message and "'apps'" in e.message and "ConfigMap team/a" in e.message
    assert namespace_removed_in_use("apps", [("ConfigMap", "team", "a")], owners) == []  # its own objects


class NsFakeLoader(FakeLoader):
    namespaces: object = ()

    def load(self, sha: str):
        from reconciler.manifests.namespaces import check_namespaces

        manifests, config = super().load(sha)
        errors = check_namespaces(manifests, self.namespaces)  # as load_listing does
        if errors:
            raise RevisionRejected(errors)
        return manifests, config


def test_a_source_uses_a_namespace_another_declares_and_that_one_cannot_drop_it(tmp_path):
    store = Store(str(tmp_path))
    live = {("Namespace", "", "team"): ns("team")}
    inv = Inventory(store)
    inv.set("base", {("Namespace", "", "team"): ("ns.yaml", 1)})
    apps = ComposingLoader(NsFakeLoader({"s1": [cm_in("a", "team")]}), "apps", "/r", inv, lambda: live)
    keys = {m.key for m in apps.load("s1")[0]}
    assert ("ConfigMap", "team", "a") in keys and ("Namespace", "", "team") in keys
    assert apps.seen == frozenset({(("Namespace", "", "team"), "base")})
    inv.set("apps", {("ConfigMap", "team", "a"): ("a.yaml", 1)})
    live[("ConfigMap", "team", "a")] = cm_in("a", "team")
    base = ComposingLoader(NsFakeLoader({"s2": []}), "base", "/b", inv, lambda: live)
    with pytest.raises(RevisionRejected) as e:
        base.load("s2")  # base drops the Namespace apps' ConfigMap lives in
    assert "no longer declares Namespace team" in str(e.value)


def test_plan_and_diff_read_a_sources_record_and_its_own_objects(tmp_path):
    from reconciler.cli.plan import source_state
    from reconciler.errors import GitshipError
    from reconciler.sources.status import owned_keys, source_record

    store = Store(str(tmp_path))
    store.update_desired([(ns("team"), "ns.yaml", 1), (cm_in("a", "team"), "a.yaml", 1)], [])
    store.set_meta(
        source={"repoDir": "/srv/main", "branch": "main", "path": ""},
        sources=[DEFAULT, "apps"],
        sourceInventory={
            DEFAULT: [["Namespace", "", "team", "ns.yaml", 1]],
            "apps": [["ConfigMap", "team", "a", "a.yaml", 1]],
        },
        **{"source/apps/source": {"repoDir": "/srv/apps", "branch": "dev", "path": "deploy"}},
    )
    assert source_record(store.get_meta, "apps")["branch"] == "dev"
    assert owned_keys(store.get_meta, "apps") == {("ConfigMap", "team", "a")}
    st = source_state(store, "apps")
    assert st.source["repoDir"] == "/srv/apps" and set(st.applied) == {("ConfigMap", "team", "a")}
    assert st.namespaces == {"team"}
    default = source_state(store, None)
    assert default.source["repoDir"] == "/srv/main" and set(default.applied) == {("Namespace", "", "team")}
    assert default.namespaces == set()
    with pytest.raises(GitshipError, match="no source named 'nope'"):
        source_state(store, "nope")
