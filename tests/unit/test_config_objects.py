"""ConfigMaps and Secrets (v1): Kubernetes' validation, immutability across commits, live objects,
get/describe, and secret values kept out of errors, diffs, logs and a world-readable store."""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog

from reconciler import log as gitship_log
from reconciler import printers
from reconciler.controllers.podutil import from_rfc3339
from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests.load import load_file
from reconciler.manifests.model import Manifest, Source
from reconciler.plan import ORDER, plan, render_diff
from reconciler.redact import redact, secret_sizes
from reconciler.store import Store, db_path
from reconciler.sync.immutable import immutable_field_errors
from tests.unit.test_reconcile_pass import World, reasons

SECRET_VALUE = "s3cr3t-PLANTED-value-91x"
B64_VALUE = base64.b64encode(SECRET_VALUE.encode()).decode()
NOW = 1_800_000_000.0


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def doc(kind: str, body: dict[str, Any], name: str = "x", **meta: Any) -> bytes:
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, **meta}, **body}
    return json.dumps(obj).encode()


def load(data: bytes, file: str = "conf/app.yaml") -> list[dict[str, Any]]:
    return [m.obj for m in load_file(file, data, {})]


def errors(data: bytes, file: str = "conf/app.yaml") -> list[ManifestError]:
    with pytest.raises(RevisionRejected) as exc:
        load_file(file, data, {})
    return list(exc.value.errors)


def fields(errs: list[ManifestError]) -> list[str]:
    return [e.field for e in errs]


# --------------------------------------------------------------------------- loading and defaults


def test_a_configmap_loads_as_written() -> None:
    (cm,) = load(
        doc("ConfigMap", {"data": {"a.conf": "x=1\n"}, "binaryData": {"bin": b64(b"\0\1")}, "immutable": True})
    )
    assert cm["data"] == {"a.conf": "x=1\n"} and cm["binaryData"] == {"bin": "AAE="} and cm["immutable"] is True
    assert "spec" not in cm and "status" not in cm


def test_a_secret_defaults_to_opaque_and_string_data_merges_into_data() -> None:
    (s,) = load(
        doc("Secret", {"data": {"user": b64("old"), "keep": b64("k")}, "stringData": {"user": "new", "pw": "p"}})
    )
    assert s["type"] == "Opaque"
    assert "stringData" not in s
    # stringData wins over data on the same key, as the API server's conversion does
    assert {k: base64.b64decode(v).decode() for k, v in s["data"].items()} == {"user": "new", "keep": "k", "pw": "p"}


def test_string_data_alone_makes_data() -> None:
    (s,) = load(doc("Secret", {"stringData": {"pw": "p"}}))
    assert s["data"] == {"pw": b64("p")}


def test_configmap_and_secret_are_applied_before_what_uses_them() -> None:
    assert ORDER["ConfigMap"] < ORDER["Pod"] and ORDER["Secret"] < ORDER["Deployment"]
    keys = [a.key[0] for a in plan({}, {("Pod", "d", "p"): {}, ("Secret", "d", "s"): {}, ("ConfigMap", "d", "c"): {}})]
    assert keys[-1] == "Pod"


# --------------------------------------------------------------------------- keys


BAD_KEYS = ["bad key", "a/b", "é", ".", "..", "..a", "k" * 254, ""]
GOOD_KEYS = ["a", "a.b-c_D9", ".dotfile", "k" * 253, "a..b"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [("ConfigMap", "data", "v"), ("ConfigMap", "binaryData", "AA=="), ("Secret", "data", "AA==")],
)
def test_bad_keys_are_errors_naming_file_document_and_field(kind: str, field: str, value: str, key: str) -> None:
    text = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n---\n"
    errs = errors(text + doc(kind, {field: {key: value}}), file="conf/bad.yaml")
    assert errs and all(e.file == "conf/bad.yaml" and e.document == 1 for e in errs)
    assert set(fields(errs)) == {f"{field}[{key}]"}
    assert "conf/bad.yaml" in str(errs[0]) and "(document 2)" in str(errs[0]) and f"{field}[{key}]" in str(errs[0])


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys(key: str) -> None:
    load(doc("ConfigMap", {"data": {key: "v"}, "binaryData": {"bin": "AA=="}}))
    load(doc("Secret", {"data": {key: "AA=="}}))


def test_dot_keys_have_kubernetes_messages() -> None:
    msgs = {e.field: e.message for e in errors(doc("ConfigMap", {"data": {".": "a", "..": "b", "..x": "c"}}))}
    assert "must not be '.'" in msgs["data[.]"]
    assert "must not be '..'" in msgs["data[..]"]
    assert "must not start with '..'" in msgs["data[..x]"]


def test_a_key_in_both_data_and_binary_data() -> None:
    errs = errors(doc("ConfigMap", {"data": {"k": "v"}, "binaryData": {"k": "AA=="}}))
    assert fields(errs) == ["data[k]"] and "duplicate of key present in binaryData" in errs[0].message


def test_errors_carry_the_line_of_the_field() -> None:
    text = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  ok: v\n  bad key: v\n"
    (e,) = errors(text)
    assert (e.field, e.line, e.document) == ("data[bad key]", 7, 0)


# --------------------------------------------------------------------------- values and size


MIB = 1048576


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"data": {"a": "x" * MIB}}, True),
        ({"data": {"a": "x" * (MIB - 1), "b": "yy"}}, False),
        ({"data": {"a": "é" * (MIB // 2)}}, True),  # bytes, not characters
        ({"data": {"a": "é" * (MIB // 2) + "x"}}, False),
        ({"binaryData": {"a": b64(b"\0" * MIB)}}, True),  # decoded bytes count, not base64 text
        ({"data": {"a": "x" * (MIB - 2)}, "binaryData": {"b": b64(b"\0\0\0")}}, False),
    ],
)
def test_configmap_total_size_is_at_most_1_mib(body: dict[str, Any], ok: bool) -> None:
    if ok:
        load(doc("ConfigMap", body))
    else:
        (e,) = errors(doc("ConfigMap", body))
        assert e.field == "data" and f"at most {MIB} bytes" in e.message


def test_secret_total_size_counts_decoded_bytes() -> None:
    load(doc("Secret", {"data": {"a": b64(b"\0" * MIB)}}))
    (e,) = errors(doc("Secret", {"data": {"a": b64(b"\0" * MIB)}, "stringData": {"b": "x"}}))
    assert e.field == "data" and f"at most {MIB} bytes" in e.message


def test_configmap_values_are_strings_and_binary_data_base64() -> None:
    errs = errors(doc("ConfigMap", {"data": {"n": 5}, "binaryData": {"b": "not base64!"}}))
    assert fields(errs) == ["data[n]", "binaryData[b]"]


def test_invalid_base64_in_a_secret_names_the_key_not_the_value() -> None:
    errs = errors(doc("Secret", {"data": {"password": SECRET_VALUE}}))
    assert fields(errs) == ["data[password]"]
    assert "base64" in errs[0].message and SECRET_VALUE not in str(errs[0])


def test_base64_with_line_breaks_is_accepted_as_go_decodes_it() -> None:
    wrapped = B64_VALUE[:8] + "\n" + B64_VALUE[8:]
    (s,) = load(doc("Secret", {"data": {"pw": wrapped}}))
    assert s["data"]["pw"] == B64_VALUE


def test_base64_is_kept_in_the_api_servers_form() -> None:
    (s,) = load(doc("Secret", {"data": {"a": "YWJj\nZA==", "n": None}}))
    assert s["data"] == {"a": "YWJjZA==", "n": ""}
    (cm,) = load(doc("ConfigMap", {"binaryData": {"b": "AA\n=="}}))
    assert cm["binaryData"] == {"b": "AA=="}


def test_string_data_values_must_be_strings() -> None:
    assert fields(errors(doc("Secret", {"stringData": {"n": 5}}))) == ["stringData[n]"]


def test_immutable_must_be_a_boolean() -> None:
    assert fields(errors(doc("ConfigMap", {"immutable": "yes"}))) == ["immutable"]
    assert fields(errors(doc("Secret", {"immutable": 1}))) == ["immutable"]


# --------------------------------------------------------------------------- Secret types


def _secret(stype: str, data: dict[str, str], **meta: Any) -> bytes:
    return doc("Secret", {"type": stype, "data": {k: b64(v) for k, v in data.items()}}, **meta)


@pytest.mark.parametrize(
    ("stype", "data", "meta", "missing"),
    [
        ("kubernetes.io/tls", {}, {}, ["data[tls.crt]", "data[tls.key]"]),
        ("kubernetes.io/tls", {"tls.crt": "c"}, {}, ["data[tls.key]"]),
        ("kubernetes.io/basic-auth", {}, {}, ["data[username]", "data[password]"]),
        ("kubernetes.io/ssh-auth", {}, {}, ["data[ssh-privatekey]"]),
        ("kubernetes.io/ssh-auth", {"ssh-privatekey": ""}, {}, ["data[ssh-privatekey]"]),
        ("kubernetes.io/dockerconfigjson", {}, {}, ["data[.dockerconfigjson]"]),
        ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": SECRET_VALUE}, {}, ["data[.dockerconfigjson]"]),
        ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "[1]"}, {}, ["data[.dockerconfigjson]"]),
        ("kubernetes.io/dockercfg", {}, {}, ["data[.dockercfg]"]),
        ("kubernetes.io/dockercfg", {".dockercfg": "{"}, {}, ["data[.dockercfg]"]),
        ("kubernetes.io/service-account-token", {}, {}, ["metadata.annotations[kubernetes.io/service-account.name]"]),
    ],
)
def test_secret_types_require_their_keys(
    stype: str, data: dict[str, str], meta: dict[str, Any], missing: list[str]
) -> None:
    errs = errors(_secret(stype, data, **meta))
    assert fields(errs) == missing
    assert all(SECRET_VALUE not in str(e) for e in errs)


@pytest.mark.parametrize(
    ("stype", "data", "meta"),
    [
        ("Opaque", {}, {}),
        ("kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}, {}),
        ("kubernetes.io/basic-auth", {"username": "u"}, {}),
        ("kubernetes.io/basic-auth", {"password": ""}, {}),  # may be empty, but present
        ("kubernetes.io/ssh-auth", {"ssh-privatekey": "k"}, {}),
        ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": '{"auths": {}}'}, {}),
        ("kubernetes.io/dockercfg", {".dockercfg": "{}"}, {}),
        (
            "kubernetes.io/service-account-token",
            {},
            {"annotations": {"kubernetes.io/service-account.name": "default"}},
        ),
        ("example.com/anything", {}, {}),  # other types are free-form, as in Kubernetes
    ],
)
def test_secret_types_satisfied(stype: str, data: dict[str, str], meta: dict[str, Any]) -> None:
    (s,) = load(_secret(stype, data, **meta))
    assert s["type"] == stype


def test_a_planted_secret_value_appears_in_no_error() -> None:
    bad = [
        doc("Secret", {"data": {"pw": SECRET_VALUE, "bad key": B64_VALUE}}),
        doc("Secret", {"type": "kubernetes.io/dockercfg", "stringData": {".dockercfg": SECRET_VALUE}}),
        doc("Secret", {"type": "kubernetes.io/tls", "stringData": {"x y": SECRET_VALUE}, "immutable": "no"}),
        doc("Secret", {"stringData": {"a": SECRET_VALUE * (MIB // len(SECRET_VALUE) + 1)}}),
    ]
    for data in bad:
        with pytest.raises(RevisionRejected) as exc:
            load_file("s.yaml", data, {})
        assert SECRET_VALUE not in str(exc.value) and B64_VALUE not in str(exc.value)
        assert SECRET_VALUE not in repr([e.to_dict() for e in exc.value.errors])


# --------------------------------------------------------------------------- immutability across commits


def _m(obj: dict[str, Any]) -> Manifest:
    return Manifest(obj, Source("conf/app.yaml", 3, 0))


def _cm(data: dict[str, str], immutable: bool | None = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"data": data, **extra}
    if immutable is not None:
        body["immutable"] = immutable
    (obj,) = load(doc("ConfigMap", body, name="c"))
    return obj


def _live(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    o = copy.deepcopy(obj)
    o["metadata"]["uid"] = "u1"
    return {("ConfigMap" if o["kind"] == "ConfigMap" else "Secret", "default", o["metadata"]["name"]): o}


def test_changing_data_of_an_immutable_configmap_is_rejected() -> None:
    errs = immutable_field_errors([_m(_cm({"a": "2"}))], _live(_cm({"a": "1"})))
    assert [(e.file, e.line, e.field) for e in errs] == [("conf/app.yaml", 3, "data")]
    assert "field is immutable when `immutable` is set" in errs[0].message


def test_immutable_configmap_binary_data_and_the_flag_itself() -> None:
    old = _cm({"a": "1"}, binaryData={"b": "AA=="})
    new = _cm({"a": "1"}, immutable=False, binaryData={"b": "AQ=="})
    assert sorted(fields(immutable_field_errors([_m(new)], _live(old)))) == ["binaryData", "immutable"]


def test_an_immutable_configmap_may_change_its_labels_and_a_mutable_one_anything() -> None:
    old = _cm({"a": "1"})
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert immutable_field_errors([_m(relabelled)], _live(old)) == []
    assert immutable_field_errors([_m(_cm({"a": "2"}, immutable=None))], _live(_cm({"a": "1"}, immutable=None))) == []
    # turning immutable on is allowed, with a data change in the same commit
    assert immutable_field_errors([_m(_cm({"a": "2"}))], _live(_cm({"a": "1"}, immutable=False))) == []


def test_deleted_then_declared_again_is_allowed() -> None:
    # the check is against live objects: once the deleting commit pruned it, a new one may come
    assert immutable_field_errors([_m(_cm({"a": "2"}))], {}) == []


def test_immutable_secret_data_and_type() -> None:
    (old,) = load(doc("Secret", {"stringData": {"pw": "one"}, "immutable": True}, name="s"))
    (new,) = load(doc("Secret", {"stringData": {"pw": SECRET_VALUE}, "immutable": True}, name="s"))
    errs = immutable_field_errors([_m(new)], _live(old))
    assert fields(errs) == ["data"] and SECRET_VALUE not in str(errs[0]) and B64_VALUE not in str(errs[0])
    (retyped,) = load(doc("Secret", {"type": "example.com/x", "stringData": {"pw": "one"}}, name="s"))
    (mutable,) = load(doc("Secret", {"stringData": {"pw": "one"}}, name="s"))
    errs = immutable_field_errors([_m(retyped)], _live(mutable))
    assert fields(errs) == ["type"] and "field is immutable" in errs[0].message


# --------------------------------------------------------------------------- live objects


def test_git_makes_live_configmaps_and_secrets_and_follows_their_changes() -> None:
    cm = _cm({"a": "1"}, immutable=None)
    (sec,) = load(doc("Secret", {"stringData": {"pw": "one"}}, name="s"))
    w = World(cm, sec)
    ch = w.step()
    assert reasons(ch) == [("Created", "ConfigMap", "c"), ("Created", "Secret", "s")]
    live_cm = w.live[("ConfigMap", "default", "c")]
    assert live_cm["data"] == {"a": "1"} and "status" not in live_cm and "generation" not in live_cm["metadata"]
    assert live_cm["metadata"]["uid"] and live_cm["metadata"]["creationTimestamp"]
    live_s = w.live[("Secret", "default", "s")]
    assert live_s["data"] == {"pw": b64("one")} and live_s["type"] == "Opaque" and "stringData" not in live_s
    assert w.step().put == []  # nothing changed: nothing to do
    w.desired[("ConfigMap", "default", "c")] = _cm({"a": "2"}, immutable=None, binaryData={"b": "AA=="})
    w.step()
    live_cm2 = w.live[("ConfigMap", "default", "c")]
    assert live_cm2["data"] == {"a": "2"} and live_cm2["binaryData"] == {"b": "AA=="}
    assert live_cm2["metadata"]["uid"] == live_cm["metadata"]["uid"]
    del w.desired[("Secret", "default", "s")]
    ch = w.step()
    assert ("Secret", "default", "s") not in w.live and ("Pruned", "Secret", "s") in reasons(ch)
    assert all(SECRET_VALUE not in json.dumps(e) for e in ch.events)


def _live_obj(obj: dict[str, Any]) -> dict[str, Any]:
    o = copy.deepcopy(obj)
    o["metadata"]["creationTimestamp"] = "2027-01-15T08:00:00Z"
    return o


def test_get_tables() -> None:
    cm = _live_obj(_cm({"a": "1", "b": "2"}, immutable=None, binaryData={"c": "AA=="}))
    (sec,) = load(_secret("kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}, name="tls"))
    now = from_rfc3339("2027-01-15T08:05:00Z")
    assert printers.rows_for("ConfigMap", [cm], now, False).splitlines() == ["NAME   DATA   AGE", "c      3      5m"]
    assert printers.rows_for("Secret", [_live_obj(sec)], now, True).splitlines() == [
        "NAME   TYPE                DATA   AGE",
        "tls    kubernetes.io/tls   2      5m",
    ]


def test_describe_secret_shows_sizes_never_values() -> None:
    (sec,) = load(doc("Secret", {"stringData": {"password": SECRET_VALUE, "user": "admin"}}, name="s"))
    text = printers.describe(_live_obj(sec), [], NOW)
    assert SECRET_VALUE not in text and B64_VALUE not in text and "admin" not in text
    assert "Type:  Opaque" in text
    assert f"password: {len(SECRET_VALUE)} bytes" in text and "user:     5 bytes" in text


def test_describe_configmap_shows_its_data() -> None:
    text = printers.describe(_live_obj(_cm({"app.conf": "greeting=hi\n"}, binaryData={"b": "AAEC"})), [], NOW)
    assert "Data\n====\napp.conf:\n----\ngreeting=hi\n" in text
    assert "BinaryData\n====\nb: 3 bytes" in text


def test_get_secret_yaml_shows_base64_data_as_kubectl() -> None:
    (sec,) = load(doc("Secret", {"stringData": {"pw": SECRET_VALUE}}, name="s"))
    out = printers.dump(sec, "yaml")
    assert f"pw: {B64_VALUE}" in out and "stringData" not in out


# --------------------------------------------------------------------------- redaction


def _secret_obj(value: str) -> dict[str, Any]:
    (s,) = load(doc("Secret", {"stringData": {"pw": value, "user": "u"}}, name="s"))
    return s


def test_diff_shows_sizes_and_changed_keys_not_values() -> None:
    key = ("Secret", "default", "s")
    old, new = _secret_obj("first-value-abc"), _secret_obj(SECRET_VALUE)
    for applied, desired in [({}, {key: new}), ({key: old}, {key: new}), ({key: new}, {})]:
        out = render_diff(plan(applied, desired))
        assert out and SECRET_VALUE not in out and B64_VALUE not in out and "first-value" not in out
        assert "(redacted)" in out
    out = render_diff(plan({key: old}, {key: new}))
    assert f"+  pw: (redacted) {len(SECRET_VALUE)} bytes, changed" in out
    assert "user" not in [line.split(":")[0].strip("+- ") for line in out.splitlines() if line[:1] in "+-"][2:]


def test_diff_of_a_configmap_shows_its_data() -> None:
    key = ("ConfigMap", "default", "c")
    out = render_diff(plan({key: _cm({"a": "1"})}, {key: _cm({"a": "2"})}))
    assert "-  a: '1'" in out and "+  a: '2'" in out


def test_redact_finds_secrets_at_any_depth_and_leaves_the_rest() -> None:
    s = _secret_obj(SECRET_VALUE)
    out = redact({"objects": [s, {"kind": "ConfigMap", "data": {"a": "b"}}], "n": 1})
    assert SECRET_VALUE not in json.dumps(out) and B64_VALUE not in json.dumps(out)
    assert out["objects"][1] == {"kind": "ConfigMap", "data": {"a": "b"}} and out["n"] == 1
    assert s["data"]["pw"] == B64_VALUE  # the original is untouched
    assert secret_sizes(s) == {"pw": len(SECRET_VALUE), "user": 1}


def test_the_reconcile_log_never_holds_a_secret_value(tmp_path: Path) -> None:
    gitship_log.configure(str(tmp_path), console=None)
    try:
        gitship_log.get_logger().info("object_seen", obj=_secret_obj(SECRET_VALUE), nested={"x": [_secret_obj("zz")]})
    finally:
        structlog.reset_defaults()
    text = (tmp_path / gitship_log.LOG_FILE).read_text()
    assert "object_seen" in text and "(redacted)" in text
    assert SECRET_VALUE not in text and B64_VALUE not in text


# --------------------------------------------------------------------------- the store file


def _modes(state: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir() if p.name.startswith("gitship.db")}


def test_a_new_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        s = Store(str(tmp_path / "state"))
        s.set_meta(x=1)
    finally:
        os.umask(old)
    modes = _modes(tmp_path / "state")
    assert set(modes) >= {"gitship.db", "gitship.db-wal"} and set(modes.values()) == {0o600}
    s.close()


def test_an_existing_store_is_made_owner_only_at_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Store(str(state)).close()
    for name in ("gitship.db", "gitship.db-wal", "gitship.db-shm"):
        p = state / name
        if not p.exists():
            p.touch()
        p.chmod(0o644)
    s = Store(str(state))
    assert set(_modes(state).values()) == {0o600}
    assert os.path.exists(db_path(str(state)))
    s.close()
