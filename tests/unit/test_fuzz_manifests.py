"""Fuzzing the manifest loader, the validators and the selector parsers with structured input.

Valid manifests of every common kind are mutated (a field removed, a value replaced by any JSON
value, an unknown key added, a key's type changed) and fed to:
- ``load_file``: it returns manifests or raises RevisionRejected holding ManifestErrors (file, line,
  message); never another exception;
- ``default_and_validate_in_place``: a list of ManifestErrors, never an exception;
- the label selector, both forms (``selectors.parse`` over any text; ``validate_label_selector`` /
  ``from_label_selector`` over any JSON), and the API's field selector parser.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler import selectors
from reconciler.errors import ManifestError, RevisionRejected, SelectorError
from reconciler.kapi import views
from reconciler.manifests.load import Limits, load_file
from reconciler.manifests.validate import default_and_validate_in_place
from tests.unit.fuzzing import FUZZ
from tests.unit.test_load import SEED

_POD_SPEC = {
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            ],
            "volumeMounts": [{"name": "v", "mountPath": "/etc/v", "subPath": "s"}],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        }
    ],
    "volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": "p/k"}]}}],
}
_TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": _POD_SPEC}
_SEL = {"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
_TEMPLATE_SEL = {"metadata": {"labels": {"app": "a", "tier": "web"}}, "spec": _POD_SPEC}

OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v", "a.b": "c"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "stringData": {"p": "x"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "a"}}, "spec": {
        "replicas": 3, "selector": _SEL, "template": _TEMPLATE_SEL,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "st"}, "spec": {
        "serviceName": "st", "replicas": 2, "selector": {"matchLabels": {"app": "a"}}, "template": _TEMPLATE,
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "a"}}, "template": _TEMPLATE}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"backoffLimit": 2, "template": {
        "spec": {**_POD_SPEC, "restartPolicy": "Never"}}}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {**_POD_SPEC, "restartPolicy": "OnFailure"}}}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"selector": {"app": "a"},
        "ports": [{"port": 80, "targetPort": "http", "name": "http"}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"}, "spec": {
        "ingressClassName": "gitship", "rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}],
        "tls": [{"hosts": ["a.example.com"], "secretName": "s"}]}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns1"}, "spec": {
        **_POD_SPEC, "volumes": [{"name": "v", "hostPath": {"path": "/tmp/x", "type": "DirectoryOrCreate"}}]}},
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_odd_strings = st.sampled_from(
    ["", "-", "a" * 300, "UPPER", "a..b", "../x", "/abs", "1Gi", "-1", "0x10", "25%", "999999999999999999999", "a b"]
)


def _paths(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(v, dict):
        out += [p for k, x in v.items() for p in _paths(x, (*path, k))]
    elif isinstance(v, list):
        out += [p for i, x in enumerate(v) for p in _paths(x, (*path, i))]
    return out


def _mutate(obj: dict[str, Any], data: st.DataObject, keep_kind: bool = False) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    fixed = {(), ("kind",), ("apiVersion",)} if keep_kind else {()}
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = [p for p in _paths(obj) if p not in fixed]
        if not candidates:
            break
        path = data.draw(st.sampled_from(candidates))
        parent: Any = obj
        for p in path[:-1]:
            parent = parent[p]
        how = data.draw(st.sampled_from(["delete", "json", "odd", "extra", "negate"]))
        last = path[-1]
        if how == "delete":
            del parent[last]
        elif how == "json":
            parent[last] = data.draw(_json)
        elif how == "odd":
            parent[last] = data.draw(_odd_strings)
        elif how == "extra" and isinstance(parent[last], dict):
            parent[last][data.draw(st.text(min_size=1, max_size=6))] = data.draw(_json)
        elif how == "negate" and isinstance(parent[last], int) and not isinstance(parent[last], bool):
            parent[last] = -parent[last] - 1
    return obj


@FUZZ
@given(st.sampled_from(OBJECTS), st.data())
def test_validators_return_errors_never_raise(obj: dict[str, Any], data: st.DataObject) -> None:
    bad = _mutate(obj, data, keep_kind=True)  # the loader checks kind and apiVersion before (test below)
    errors = default_and_validate_in_place(bad, "f.yaml", 0)
    assert all(isinstance(e, ManifestError) and isinstance(e.message, str) for e in errors)


def test_the_seeds_are_valid() -> None:
    for obj in OBJECTS:
        assert default_and_validate_in_place(copy.deepcopy(obj), "f.yaml", 0) == [], obj["kind"]


@FUZZ
@given(st.lists(st.sampled_from(OBJECTS), min_size=1, max_size=3), st.data())
def test_loader_rejects_with_manifest_errors_only(objs: list[dict[str, Any]], data: st.DataObject) -> None:
    docs = [_mutate(o, data) if data.draw(st.booleans()) else o for o in objs]
    text = yaml.safe_dump_all(docs, sort_keys=False)
    try:
        loaded = load_file("f.yaml", text.encode(), {}, Limits())
    except RevisionRejected as e:
        assert e.errors and all(isinstance(x, ManifestError) and x.file == "f.yaml" for x in e.errors)
    else:
        assert len(loaded) == len(docs)


@FUZZ
@given(st.sampled_from(sorted(SEED)), st.data())
def test_loader_survives_text_mutations(name: str, data: st.DataObject) -> None:
    text = SEED[name]
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 8))
    junk = data.draw(st.text(alphabet=" \t\n:-{}[]#&*!|>'\"%@`,?\\\x00\x85\ufeffab1", max_size=6))
    mutated = text[:at] + junk + text[at + cut :]
    try:
        load_file(name, mutated.encode(), {}, Limits())
    except RevisionRejected as e:
        assert all(isinstance(x, ManifestError) for x in e.errors)


# ------------------------------------------------------------------------------------------ selectors

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUB = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _reference_key_ok(key: str) -> bool:
    """Kubernetes' IsQualifiedName, restated (apimachinery pkg/util/validation)."""
    parts = key.split("/")
    if len(parts) > 2:
        return False
    name = parts[-1]
    if len(parts) == 2 and not (parts[0] and len(parts[0]) <= 253 and _SUB.fullmatch(parts[0])):
        return False
    return 0 < len(name) <= 63 and bool(_NAME.fullmatch(name))


_key_text = st.text(alphabet="aZ09-_./é ", max_size=70) | st.from_regex(
    r"[a-z]{1,3}(\.[a-z]{1,3})?/[A-Za-z0-9_.-]{1,65}", fullmatch=True
)


@FUZZ
@given(_key_text)
def test_label_key_validation_agrees_with_reference(key: str) -> None:
    assert (selectors.validate_label_key(key) is None) is _reference_key_ok(key)


@FUZZ
@given(st.text(max_size=40) | st.text(alphabet="abc=!(),<> \tinotexsd-./0123456789", max_size=40))
def test_parse_any_text_raises_only_selector_error(text: str) -> None:
    try:
        sel = selectors.parse(text)
    except SelectorError as e:
        assert str(e)
        return
    assert selectors.parse(str(sel)) == sel


_expr = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["app", "x.io/t", "", "Bad Key", 3]),
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "in", None]),
    },
    optional={"values": st.lists(st.sampled_from(["a", "b", "1", "", "bad value", 7]), max_size=3) | _json},
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "matchLabels": st.dictionaries(
                st.sampled_from(["app", "a/b/c", "", "k"]), st.sampled_from(["x", "", "bad value", 1, None]), max_size=3
            )
            | _json,
            "matchExpressions": st.lists(_expr, max_size=3) | _json,
        },
    )
    | _json
)
def test_api_form_selector_validation_and_building_agree(sel: Any) -> None:
    problems = selectors.validate_label_selector(sel, "spec.selector")
    assert all(isinstance(p, str) and isinstance(m, str) for p, m in problems)
    if not problems and isinstance(sel, dict):
        built = selectors.from_label_selector(sel)
        assert isinstance(built.matches({"app": "x"}), bool)


@FUZZ
@given(st.text(alphabet="ab.=!, \t", max_size=30) | st.text(max_size=20))
def test_field_selector_parses_or_raises_value_error(text: str) -> None:
    try:
        terms = views.parse_field_selector(text)
    except ValueError as e:
        assert "invalid selector" in str(e)
        return
    again = ",".join(f"{f}{'==' if eq else '!='}{v}" for f, eq, v in terms)
    if not any(f.endswith("!") for f, _, _ in terms):  # "a! =b" written back as "a!==b" reads as a != "=b"
        assert views.parse_field_selector(again) == terms
    assert views.field_matches({"metadata": {"name": "a"}}, terms) in (True, False)


def test_field_selector_term_splits_at_its_first_operator() -> None:
    # found by the fuzzer: "a=b!=c" was read as field "a=b" != "c" (apimachinery: a = "b!=c")
    assert views.parse_field_selector("metadata.name=b!=c") == [("metadata.name", True, "b!=c")]
    assert views.parse_field_selector("status.phase!=Running,metadata.name==x") == [
        ("status.phase", False, "Running"),
        ("metadata.name", True, "x"),
    ]


def test_non_mapping_metadata_is_an_error_not_a_crash() -> None:
    # found by the fuzzer: a Job, PriorityClass, CRD or service-account-token Secret with `metadata: x`
    # raised AttributeError out of load_file instead of a ManifestError
    docs = [
        b"apiVersion: batch/v1\nkind: Job\nmetadata: x\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n"
        b"      containers: [{name: c, image: busybox}]\n",
        b"apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: x\nvalue: 1\n",
        b"apiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\nmetadata: [1]\n",
    ]
    for data in docs:
        try:
            load_file("f.yaml", data, {}, Limits())
        except RevisionRejected as e:
            assert "metadata" in str(e)
        else:
            raise AssertionError(data)
