"""Unit tests for reconciler/manifests/{load,render,model}.py: files -> Manifests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests.load import Limits, is_manifest_path, load_file, parse_repo_config
from reconciler.manifests.model import KINDS, Manifest, Source, obj_key
from reconciler.manifests.revision import BlobCache, load_revision, values_hash
from reconciler.manifests.render import render

# The manifests of the seed tutorial (/work/shared/seed/000_*.txt), as a user would commit them.
# (The dnsutil pod is printed on one line there; this is the same object, re-indented.)
SEED: dict[str, str] = {
    "dnsutils.yaml": """\
apiVersion: v1
kind: Pod
metadata:
  name: dnsutil-pod
spec:
  containers:
  - image: tutum/dnsutils
    name: dnsutil
    command: ["sleep", "infinity"]
""",
    "replicaset.yaml": """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
 name: dnsutil-rs
spec:
 replicas: 2
 selector:
   matchLabels:
    app: dnsutil
 template:
   metadata:
     labels:
       app: dnsutil
   spec:
     containers:
     - name: dnsutil
       image: tutum/dnsutils
       command: ["sleep", "infinity"]
""",
    "svc.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: test-svc
spec:
  ports:
  - port: 80
    targetPort: 8080
  selector:
    app: testing
""",
    "replicaset-fqdn.yaml": """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
 name: test-fqdn
spec:
 replicas: 3
 selector:
   matchLabels:
    app: testing
 template:
   metadata:
     labels:
       app: testing
   spec:
     containers:
     - name: nodejs
       image: qinchaowhut/allen:v1
""",
    "deployment-v1.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: testqc\x20
spec:
  replicas: 3
  template:
    metadata:
      name: allen
      labels:
        app: testing
    spec:
      containers:
      - image: qinchaowhut/allen:v1
        name: nodejs
        imagePullPolicy: IfNotPresent
  selector:
    matchLabels:
      app: testing
""",
    "svc-loadbalancer.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: allen-loadbalancer
spec:
  type: LoadBalancer
  ports:
  - port: 80
    targetPort: 8080
  selector:
    app: testing
""",
    "svc-headless.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: test-svc-headless
spec:
  clusterIP: None
  ports:
  - port: 80
    targetPort: 8080
  selector:
    app: testing
""",
}

L = Limits()


def seed_files() -> dict[str, bytes]:
    return {f"seed/{k}": v.encode() for k, v in SEED.items()}


def errors_of(fn: Any, *args: Any, **kwargs: Any) -> list[ManifestError]:
    with pytest.raises(RevisionRejected) as exc:
        fn(*args, **kwargs)
    assert exc.value.errors
    return exc.value.errors


# --------------------------------------------------------------------------- seed manifests


def test_seed_manifests_load_and_validate() -> None:
    ms = load_revision(seed_files(), {}, L)
    keys = {m.key for m in ms}
    assert keys == {
        ("Pod", "default", "dnsutil-pod"),
        ("ReplicaSet", "default", "dnsutil-rs"),
        ("Service", "default", "test-svc"),
        ("ReplicaSet", "default", "test-fqdn"),
        ("Deployment", "default", "testqc"),
        ("Service", "default", "allen-loadbalancer"),
        ("Service", "default", "test-svc-headless"),
    }
    by = {m.key[2]: m for m in ms}
    assert by["testqc"].obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert by["dnsutil-pod"].obj["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert by["test-svc"].obj["spec"]["ports"][0] == {"port": 80, "targetPort": 8080, "protocol": "TCP"}
    assert by["allen-loadbalancer"].obj["spec"]["externalTrafficPolicy"] == "Cluster"
    assert by["test-svc-headless"].obj["spec"]["clusterIP"] == "None"
    assert by["dnsutil-rs"].source == Source("seed/replicaset.yaml", 1, 0)


def test_seed_file_mentions_the_same_objects() -> None:
    import glob

    paths = glob.glob("/work/shared/seed/000_*.txt")
    if not paths:
        pytest.skip("seed file not present")
    text = open(paths[0], encoding="utf-8").read()
    for name in (
        "dnsutil-pod",
        "dnsutil-rs",
        "test-svc",
        "test-fqdn",
        "testqc",
        "allen-loadbalancer",
        "test-svc-headless",
    ):
        assert f"name: {name}" in text


# --------------------------------------------------------------------------- positions

MULTI = b"""\
# a comment
apiVersion: v1
kind: Pod
metadata:
  name: good
spec:
  containers:
  - name: c
    image: x
---

apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: three
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: ""
"""


def test_document_lines_and_indices() -> None:
    ms = load_file("a.yaml", MULTI.replace(b"three", b"2").replace(b'image: ""', b"image: y"), {}, L)
    assert [m.source for m in ms] == [Source("a.yaml", 2, 0), Source("a.yaml", 12, 1)]


def test_errors_name_file_line_document_field() -> None:
    errs = errors_of(load_file, "dir/a.yaml", MULTI, {}, L)
    got = {(e.file, e.line, e.document, e.field) for e in errs}
    assert got == {
        ("dir/a.yaml", 17, 1, "spec.replicas"),
        ("dir/a.yaml", 26, 1, "spec.template.spec.containers[0].image"),
    }
    rep = next(e for e in errs if e.field == "spec.replicas")
    assert str(rep) == "dir/a.yaml:17 (document 2): spec.replicas: must be an integer, not string 'three'"


def test_missing_field_points_at_parent() -> None:
    data = b"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: r\nspec:\n  replicas: 1\n"
    errs = errors_of(load_file, "r.yaml", data, {}, L)
    sel = next(e for e in errs if e.field == "spec.selector")
    assert sel.line == 6  # deepest existing ancestor: the spec mapping starts on line 6


def test_label_key_with_dots_is_located() -> None:
    data = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    app.kubernetes.io/name: x\n"
        b"    a.b: 5\nspec:\n  containers: [{name: c, image: x}]\n"
    )
    errs = errors_of(load_file, "p.yaml", data, {}, L)
    assert [(e.field, e.line) for e in errs] == [("metadata.labels.a.b", 7)]


def test_host_port_zero_is_unset() -> None:
    """Kubernetes accepts ``hostPort: 0`` as "no host port" (validateContainerPorts checks only non-zero)."""
    pod = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: x\n"
        b"    ports:\n    - containerPort: 80\n      hostPort: %d\n"
    )
    (m,) = load_file("p.yaml", pod.replace(b"%d", b"0"), {}, L)
    assert m.obj["spec"]["containers"][0]["ports"][0]["containerPort"] == 80
    for bad in (b"-1", b"65536", b"false"):
        errs = errors_of(load_file, "p.yaml", pod.replace(b"%d", bad), {}, L)
        assert [(e.field, e.line) for e in errs] == [("spec.containers[0].ports[0].hostPort", 11)]


def test_yaml_syntax_error_line_and_document() -> None:
    data = b"a: 1\n---\nb: [1, 2\nc: 3\n"
    errs = errors_of(load_file, "s.yaml", data, {}, L)
    syntax = [e for e in errs if "YAML syntax error" in e.message]
    assert syntax and syntax[0].document == 1 and syntax[0].line in (3, 4)


@pytest.mark.parametrize(
    "doc,field,fragment",
    [
        (b"kind: Pod\nmetadata: {name: p}\n", "apiVersion", "needs apiVersion 'v1'"),
        (b"apiVersion: v1\nkind: Deployment\nmetadata: {name: p}\n", "apiVersion", "'v1' with kind 'Deployment'"),
        (
            b"apiVersion: v1\nkind: ServiceAcount\nmetadata: {name: p}\n",
            "kind",
            "'ServiceAcount' with apiVersion 'v1'",
        ),
        (b"apiVersion: v1\nmetadata: {name: p}\n", "kind", "Required value"),
    ],
)
def test_kind_and_api_version(doc: bytes, field: str, fragment: str) -> None:
    errs = errors_of(load_file, "k.yaml", doc, {}, L)
    assert [(e.field, e.line) for e in errs] == [(field, 1)]
    assert fragment in errs[0].message


def test_non_mapping_document_and_empty_documents() -> None:
    errs = errors_of(load_file, "l.yaml", b"---\n---\n- a\n- b\n", {}, L)
    assert [(e.document, e.line) for e in errs] == [(1, 3)]
    assert "mapping" in errs[0].message
    assert load_file("e.yaml", b"# only a comment\n---\n---\n", {}, L) == []


def test_duplicate_keys_rejected() -> None:
    errs = errors_of(load_file, "d.yaml", b"apiVersion: v1\nkind: Pod\nkind: Pod\n", {}, L)
    assert (errs[0].message, errs[0].field, errs[0].line) == ('duplicate field "kind"', "kind", 3)


def test_dates_stay_strings_and_json_only_tags() -> None:
    data = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {built: 2024-01-02, e: =}\n"
        b"spec:\n  containers: [{name: c, image: x}]\n"
    )
    (m,) = load_file("p.yaml", data, {}, L)
    assert m.obj["metadata"]["annotations"] == {"built": "2024-01-02", "e": "="}
    for tag in (b"!!binary aGk=", b"!!set {a: null}", b"!!python/object:os.system x", b"!custom x"):
        errs = errors_of(load_file, "t.yaml", b"kind: " + tag + b"\n", {}, L)
        assert errs[0].line == 1


def test_merge_keys_and_small_aliases_work() -> None:
    data = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: &l {app: web}\n"
        b"  annotations:\n    <<: *l\n    x: y\nspec:\n  containers: [{name: c, image: x}]\n"
    )
    (m,) = load_file("p.yaml", data, {}, L)
    assert m.obj["metadata"]["annotations"] == {"app": "web", "x": "y"}


# --------------------------------------------------------------------------- hostile input


def _assert_rejected_quickly(data: bytes, fragment: str, limits: Limits = L) -> ManifestError:
    # bounded time is enforced by pytest-timeout; speed is measured in bench/, never asserted here
    errs = errors_of(load_file, "h.yaml", data, {}, limits)
    assert any(fragment in e.message for e in errs), [str(e) for e in errs]
    return errs[0]


def test_billion_laughs() -> None:
    lines = [b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = b"a"
    for name in b"bcdefghi":
        n = bytes([name])
        lines.append(n + b": &" + n + b" [" + b",".join([b"*" + prev] * 9) + b"]")
        prev = n
    _assert_rejected_quickly(b"\n".join(lines) + b"\n", "aliases")


def test_alias_bomb_within_alias_limit() -> None:
    lines = [b"a0: &a0 [x,x,x,x,x,x,x,x,x,x]"]
    for i in range(1, 9):
        lines.append(b"a%d: &a%d [%s]" % (i, i, b",".join([b"*a%d" % (i - 1)] * 7)))
    _assert_rejected_quickly(b"\n".join(lines) + b"\n", "expands to more than")


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b"{a: " * 10_000 + b"x" + b"}" * 10_000,
        b"[" * 1_000_000,
        b"- " * 100_000 + b"x\n",
        b"".join(b" " * i + b"k:\n" for i in range(1000)) + b" " * 1000 + b"v\n",
        b'a: "' + b"]" * 100 + b'"\nb: ' + b"[" * 70 + b"]" * 70 + b"\n",
    ],
    ids=["flow-seq", "flow-map", "unclosed-1M", "compact-seq", "block-map", "quoted-brackets"],
)
def test_deep_nesting(data: bytes) -> None:
    # Rejected in bounded time (pytest-timeout), naming the file and a line. libyaml has a nesting
    # limit of its own that can fire before gitship's; which one fires is not asserted here.
    errs = errors_of(load_file, "h.yaml", data, {}, L)
    assert [e.file for e in errs] == ["h.yaml"]
    assert errs[0].line >= 1 and errs[0].document == 0


def test_deep_nesting_in_a_revision_applies_nothing() -> None:
    files = seed_files()
    files["deep.yaml"] = b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    errs = errors_of(load_revision, files, {}, L)
    assert [(e.file, e.line) for e in errs] == [("deep.yaml", 1)]


@pytest.mark.parametrize(
    "text,problem_at,nested",
    [
        ("a: " + "[" * 70, 3 + 70, True),
        ("a: 1\n---\nb: " + "[" * 70, 13 + 70, True),
        ("a: " + "[" * 60, 3 + 60, False),
        ("a: '" + "[" * 70 + "'\nb: ", 80, False),
        ('a: "' + "{" * 70 + '"\nb: ', 80, False),
        ("# " + "[" * 70 + "\nb: ", 76, False),
        ("a: " + "[" * 70 + "\n---\nb: ", 3 + 70 + 9, False),
    ],
    ids=["deep", "deep-2nd-doc", "shallow", "single-quoted", "double-quoted", "comment", "earlier-doc"],
)
def test_a_parser_error_inside_deep_nesting_is_gitships_depth_error(text: str, problem_at: int, nested: bool) -> None:
    """Whatever limit or wording the YAML library has, gitship measures the nesting where it stopped."""
    from yaml.error import Mark, MarkedYAMLError

    from reconciler.manifests.yamlsafe import _yaml_error

    line = text.count("\n", 0, problem_at)
    mark = Mark("h.yaml", problem_at, line, 0, None, None)
    err = _yaml_error("h.yaml", MarkedYAMLError(problem="the library's own words", problem_mark=mark), 0, text, L)
    assert (err.file, err.line) == ("h.yaml", line + 1)
    assert ("nested deeper than 64 levels" in err.message) is nested
    assert ("the library's own words" in err.message) is not nested


def test_depth_at_limit_is_fine() -> None:
    limits = Limits(max_depth=10)
    ok = (
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {a: '" + b"[" * 50 + b"'}}\n"
        b"spec: {containers: [{name: c, image: x}]}\n"
    )
    assert len(load_file("ok.yaml", ok, {}, limits)) == 1
    _assert_rejected_quickly(b"a: " + b"[" * 11 + b"]" * 11, "nested deeper than 10", limits)


def test_big_file_rejected_before_parsing() -> None:
    err = _assert_rejected_quickly(b"a: " + b"[" * (50 * 1024 * 1024), "over the limit of 4194304 bytes")
    assert err.line == 0


def test_nul_and_invalid_utf8() -> None:
    err = _assert_rejected_quickly(b"kind: Pod\nx: \x00\n", "NUL")
    assert err.line == 2
    err = _assert_rejected_quickly(b"kind: Pod\n\nname: caf\xe9\n", "not valid UTF-8")
    assert err.line == 3
    _assert_rejected_quickly(b"\xff\xfe\x00k", "NUL")


def test_tabs_in_indentation() -> None:
    _assert_rejected_quickly(b"kind: Pod\nmetadata:\n\tname: x\n", "YAML syntax error")


def test_utf8_bom_is_accepted() -> None:
    data = b"\xef\xbb\xbf" + SEED["svc.yaml"].encode()
    assert len(load_file("bom.yaml", data, {}, L)) == 1


def test_too_many_documents() -> None:
    _assert_rejected_quickly(b"---\n{}\n" * 600, "more than 500 YAML documents")
    errs = errors_of(load_file, "m.yaml", b"---\n{}\n" * 6, {}, Limits(max_documents_per_file=5))
    assert any("more than 5 YAML documents" in e.message for e in errs)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        load_file("r.yaml", data, {}, L)
    except RevisionRejected as e:
        assert all(isinstance(x, ManifestError) for x in e.errors)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}-:?&*!| \n\tab,'\"#", max_size=200))
def test_random_yaml_punctuation_never_crashes(text: str) -> None:
    try:
        load_file("r.yaml", text.encode(), {}, L)
    except RevisionRejected:
        pass


# --------------------------------------------------------------------------- templates

J2 = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ name }}
spec:
  replicas: {{ values.replicas }}
  selector: {matchLabels: {app: {{ name }}}}
  template:
    metadata: {labels: {app: {{ name }}}}
    spec:
      containers:
{% for c in containers %}
      - name: {{ c }}
        image: img:{{ tag | default("v1") }}
{% endfor %}
"""


def test_j2_render_and_load() -> None:
    (m,) = load_file("d.yaml.j2", J2, {"name": "web", "replicas": 4, "containers": ["a", "b"]}, L)
    assert m.obj["spec"]["replicas"] == 4
    assert [c["name"] for c in m.obj["spec"]["template"]["spec"]["containers"]] == ["a", "b"]


def test_j2_undefined_variable_line() -> None:
    errs = errors_of(load_file, "d.yaml.j2", J2, {"name": "web", "containers": []}, L)
    assert len(errs) == 1 and errs[0].line == 6 and "replicas" in errs[0].message


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("a: 1\nb: {{ ''.__class__.__mro__ }}\n", 2, "unsafe"),
        ("a: 1\n{% if %}\n", 2, "syntax"),
        ("{% include 'secrets.yaml' %}", 1, "include"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", 1, "budget"),
        ("{{ 'a' * 10000000000 }}", 1, "too large"),
        ("{{ 9 ** 99999999 }}", 1, "too large"),
        ("x\n{{ {}.update({'a': 1}) }}", 2, "unsafe"),
    ],
)
def test_render_rejects(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ManifestError) as exc:
        render("t.yaml.j2", text, {})
    assert exc.value.line == line
    assert fragment in exc.value.message
    assert exc.value.file == "t.yaml.j2"


def test_render_output_limit() -> None:
    with pytest.raises(ManifestError) as exc:
        render("t.yaml.j2", "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", {}, max_output=10_000)
    assert "larger than" in exc.value.message


def test_render_values_both_ways_and_no_autoescape() -> None:
    assert render("t.j2", "{{ a }} {{ values.a }} {{ '<&>' }}", {"a": 1}) == "1 1 <&>"


def test_plain_yaml_is_not_rendered() -> None:
    data = SEED["svc.yaml"].replace("test-svc", "test-svc  # {{ not_a_var }}").encode()
    assert len(load_file("svc.yaml", data, {}, L)) == 1


# --------------------------------------------------------------------------- revisions


@pytest.mark.parametrize(
    "path,ok",
    [
        ("a.yaml", True),
        ("dir/b.yml", True),
        ("c.yaml.j2", True),
        ("d.yml.j2", True),
        ("gitship.yaml", False),
        ("gitship.yml", False),
        ("sub/gitship.yaml", False),
        (".github/workflows/ci.yaml", False),
        ("dir/.hidden.yaml", False),
        ("x.json", False),
        ("README.md", False),
        ("a.yaml.bak", False),
        ("./ok.yaml", True),
        ("a.j2", False),
    ],
)
def test_is_manifest_path(path: str, ok: bool) -> None:
    assert is_manifest_path(path) is ok


def test_revision_collects_errors_across_files() -> None:
    files = seed_files()
    files["bad1.yaml"] = b"apiVersion: v1\nkind: Pod\nmetadata: {name: Bad}\nspec: {containers: []}\n"
    files["bad2.yaml"] = b"kind: [\n"
    files["notes.txt"] = b"\x00 not yaml"
    files["gitship.yaml"] = b"values: {}\n"
    errs = errors_of(load_revision, files, {}, L)
    assert {e.file for e in errs} == {"bad1.yaml", "bad2.yaml"}
    assert {e.field for e in errs if e.file == "bad1.yaml"} == {"metadata.name", "spec.containers"}


def test_duplicates_across_and_within_files() -> None:
    files = seed_files()
    files["copy.yaml"] = SEED["svc.yaml"].encode()
    errs = errors_of(load_revision, files, {}, L)
    assert len(errs) == 1
    assert errs[0].file == "seed/svc.yaml" and "copy.yaml:1 (document 1)" in errs[0].message
    assert "Service default/test-svc" in errs[0].message
    within = (SEED["svc.yaml"] + "---\n" + SEED["svc.yaml"]).encode()
    errs = errors_of(load_revision, {"w.yaml": within}, {}, L)
    assert errs[0].document == 1 and "w.yaml:1 (document 1)" in errs[0].message
    # same name in another namespace or another kind is fine
    other_ns = SEED["svc.yaml"].replace("name: test-svc", "name: test-svc\n  namespace: other")
    ns = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n"
    loaded = load_revision({"a.yaml": SEED["svc.yaml"].encode(), "b.yaml": other_ns.encode(), "ns.yaml": ns}, {}, L)
    assert len(loaded) == 3


def test_too_many_objects() -> None:
    errs = errors_of(load_revision, seed_files(), {}, Limits(max_objects=3))
    assert any("more than 3 objects" in e.message for e in errs)


def test_blob_cache_skips_unchanged_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.manifests.revision as revision_mod

    calls: list[str] = []
    real = revision_mod.load_file

    def counting(file: str, *a: Any, **k: Any) -> list[Manifest]:
        calls.append(file)
        return real(file, *a, **k)

    monkeypatch.setattr(revision_mod, "load_file", counting)
    files = seed_files()
    files["t.yaml.j2"] = b"apiVersion: v1\nkind: Service\nmetadata: {name: '{{ n }}'}\nspec: {ports: [{port: 80}]}\n"
    blob_ids = {p: f"blob-{p}" for p in files}
    cache = BlobCache()
    first = load_revision(files, {"n": "a"}, L, cache, blob_ids)
    assert len(calls) == len(files)
    calls.clear()
    files["seed/svc.yaml"] = SEED["svc.yaml"].replace("port: 80", "port: 81").encode()
    blob_ids["seed/svc.yaml"] = "blob-new"
    second = load_revision(files, {"n": "a"}, L, cache, blob_ids)
    assert calls == ["seed/svc.yaml"]
    assert len(second) == len(first)
    calls.clear()
    third = load_revision(files, {"n": "b"}, L, cache, blob_ids)  # values change: only the .j2 again
    assert calls == ["t.yaml.j2"]
    assert ("Service", "default", "b") in {m.key for m in third}
    # a renamed file (same blob) is a cache hit with the new path
    calls.clear()
    files["moved/svc.yaml"] = files.pop("seed/svc.yaml")
    blob_ids["moved/svc.yaml"] = blob_ids.pop("seed/svc.yaml")
    fourth = load_revision(files, {"n": "b"}, L, cache, blob_ids)
    assert calls == []
    assert "moved/svc.yaml" in {m.source.file for m in fourth}


def test_blob_cache_keeps_only_the_last_revision() -> None:
    cache = BlobCache()
    files = seed_files()
    load_revision(files, {}, L, cache)
    assert len(cache) == len(files)
    for i in range(5):  # five revisions, each with one more file: the cache never grows past one revision
        files[f"extra{i}.yaml"] = SEED["svc.yaml"].replace("test-svc", f"svc-{i}").encode()
        del files[next(p for p in files if p.startswith("seed/") or p.startswith("extra"))]
        load_revision(files, {}, L, cache)
        assert len(cache) == len(files)
    # a revision of one file (the bytes of an earlier one): a hit, and the cache holds that file only
    load_revision({"a.yaml": files["extra4.yaml"]}, {}, L, cache)
    assert len(cache) == 1 and cache.hits > 0


def test_listing_root_config_ignore_symlinks_and_sizes() -> None:
    """What the daemon's loader decides from the git listing alone, before reading a byte."""
    from reconciler.manifests.revision import RevisionFile, load_listing

    blobs = {
        "cfg": b"values: {n: web}\nignore: ['drafts/*']\n",
        "svc": SEED["svc.yaml"].encode(),
        "tpl": b"apiVersion: v1\nkind: Service\nmetadata: {name: '{{ n }}'}\nspec: {ports: [{port: 80}]}\n",
        "bad": b"kind: [\n",
    }
    listing = [
        RevisionFile("k8s/gitship.yaml", "cfg", len(blobs["cfg"])),
        RevisionFile("k8s/svc.yaml", "svc", len(blobs["svc"])),
        RevisionFile("k8s/t.yaml.j2", "tpl", len(blobs["tpl"])),
        RevisionFile("k8s/drafts/bad.yaml", "bad", len(blobs["bad"])),  # ignored by gitship.yaml
        RevisionFile("other/bad.yaml", "bad", len(blobs["bad"])),  # outside the manifests root
        RevisionFile("k8s/link.yaml", "x", 10, symlink=True),
        RevisionFile("k8s/huge.yaml", "y", 50 * 1024 * 1024),
    ]
    reads: list[str] = []

    def read(ids: list[str]) -> dict[str, bytes]:
        reads.extend(ids)
        return {b: blobs[b] for b in ids}

    errs = errors_of(load_listing, listing, read, L, None, "k8s")
    assert [e.file for e in errs] == ["k8s/huge.yaml", "k8s/link.yaml"]
    assert "symbolic link" in errs[1].message and "over the limit" in errs[0].message
    assert "x" not in reads and "y" not in reads and "bad" not in reads
    good = [f for f in listing if f.path in ("k8s/gitship.yaml", "k8s/svc.yaml", "k8s/t.yaml.j2")]
    manifests, config = load_listing(good, read, L, None, "k8s")
    assert config.values == {"n": "web"} and config.ignore == ["drafts/*"]
    assert {(m.key, m.source.file) for m in manifests} == {
        (("Service", "default", "test-svc"), "k8s/svc.yaml"),
        (("Service", "default", "web"), "k8s/t.yaml.j2"),
    }


def test_copies_in_one_revision_are_read_once() -> None:
    reads: list[list[str]] = []
    from reconciler.manifests.revision import RevisionFile, load_listing

    data = SEED["svc.yaml"].encode()
    listing = [RevisionFile("a.yaml", "blob-1", len(data)), RevisionFile("b/a.yaml", "blob-1", len(data))]

    def read(blobs: list[str]) -> dict[str, bytes]:
        reads.append(blobs)
        return {b: data for b in blobs}

    errs = errors_of(load_listing, listing, read, L)
    assert reads == [["blob-1"]]
    assert [(e.file, e.field) for e in errs] == [("b/a.yaml", "metadata.name")]
    assert "already declared in a.yaml:1 (document 1)" in errs[0].message


def test_values_hash_is_stable() -> None:
    assert values_hash({"a": 1, "b": [1, 2]}) == values_hash({"b": [1, 2], "a": 1})
    assert values_hash({"a": 1}) != values_hash({"a": 2})


# --------------------------------------------------------------------------- model


def test_model_basics() -> None:
    assert (
        KINDS.items()
        >= {
            "Pod": "v1",
            "Service": "v1",
            "Endpoints": "v1",
            "ConfigMap": "v1",
            "Secret": "v1",
            "ReplicaSet": "apps/v1",
            "Deployment": "apps/v1",
        }.items()
    )
    assert obj_key({"kind": "Pod", "metadata": {"name": "x"}}) == ("Pod", "default", "x")
    m = Manifest({"kind": "Pod", "metadata": {"name": "x", "namespace": "n"}}, Source("f", 1, 0))
    assert m.key == ("Pod", "n", "x")
    with pytest.raises(AttributeError):
        m.source.line = 2  # type: ignore[misc]


def test_repo_config() -> None:
    cfg = parse_repo_config(
        b"""\
images:
- image: "qinchaowhut/allen:*"
  command: [python3, app/kubia.py]
  workingDir: app
  env: {PORT: 8080, MODE: fast}
- image: tutum/dnsutils
  command: [sleep, infinity]
values:
  replicas: 3
""",
        "gitship.yaml",
    )
    assert cfg.values == {"replicas": 3}
    assert cfg.images == [
        {
            "image": "qinchaowhut/allen:*",
            "command": ["python3", "app/kubia.py"],
            "workingDir": "app",
            "env": {"PORT": "8080", "MODE": "fast"},
        },
        {"image": "tutum/dnsutils", "command": ["sleep", "infinity"], "workingDir": None, "env": {}},
    ]
    assert parse_repo_config(b"", "gitship.yaml").images == []


@pytest.mark.parametrize(
    "data,field",
    [
        (b"images: {a: b}\n", "images"),
        (b"images:\n- command: [x]\n", "images[0].image"),
        (b"images:\n- image: x\n  command: run me\n", "images[0].command"),
        (b"images:\n- image: x\n  command: [a]\n  env: [A]\n", "images[0].env"),
        (b"values: [1]\n", "values"),
        (b"imagez: []\n", "imagez"),
        (b"- a\n", ""),
    ],
)
def test_repo_config_errors(data: bytes, field: str) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_repo_config(data, "gitship.yaml")
    assert exc.value.field == field and exc.value.file == "gitship.yaml"


def test_repo_config_hostile() -> None:
    with pytest.raises(ManifestError) as exc:
        parse_repo_config(b"values: " + b"[" * 100_000, "gitship.yaml")
    assert (exc.value.file, exc.value.line) == ("gitship.yaml", 1)
    with pytest.raises(ManifestError):
        parse_repo_config(b"values: {a: [\n", "gitship.yaml")


# --------------------------------------------------------------------------- speed

SMALL = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      containers:
      - name: web
        image: qinchaowhut/allen:v1
        ports: [{{containerPort: 8080}}]
"""
