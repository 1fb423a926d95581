"""A container's environment and argv (runtime/kernel/env.py), table-driven.

Disagreement (b), ``fieldRef: spec.nodeName``: Kubernetes gives the name of the node the pod
runs on (pkg/kubelet/kubelet_pods.go podFieldSelectorRuntimeValue). gitship's one node is the
machine it runs on, so both runtimes pass the machine's host name as ``node_name`` (the
in-process runtime used to say "localhost"); a pod's own ``spec.nodeName`` wins when set.
"""

import pytest

from runtime.kernel import ConfigError, container_argv, container_env, expand, field_ref, parse_quantity
from runtime.kernel import resource_field_ref, with_service_env

POD = {
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": "hi"},
    },
    "spec": {"serviceAccountName": "robot"},
}
FACTS = {"pod_ip": "10.1.0.5", "host_ip": "10.1.0.1", "node_name": "box"}


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("$(A)-$(B)", "1-two"),
        ("$(C)", "$(C)"),  # undefined: left as written
        ("$$(A)", "$(A)"),  # $$ escapes
        ("$$", "$"),
        ("cost $5 $(A", "cost $5 $(A"),  # an unclosed reference stays literal
        ("$(A)$(A)", "11"),
        ("", ""),
    ],
)
def test_expand(value, want):
    assert expand(value, {"A": "1", "B": "two"}) == want


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['note']", "hi"),
        ("metadata.labels", 'app="web"\ntier="front"'),
        ("status.podIP", "10.1.0.5"),
        ("status.hostIP", "10.1.0.1"),
        ("spec.nodeName", "box"),  # (b): the machine's host name, passed in by the runtime
        ("spec.serviceAccountName", "robot"),
    ],
)
def test_field_ref(path, want):
    assert field_ref(POD, path, **FACTS) == want


def test_a_pods_own_node_name_wins():
    pod = {**POD, "spec": {"nodeName": "other"}}
    assert field_ref(pod, "spec.nodeName", **FACTS) == "other"


def test_unknown_field_path_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        field_ref(POD, "status.phase", **FACTS)
    assert e.value.reason == "CreateContainerConfigError"


@pytest.mark.parametrize(
    ("resources", "ref", "want"),
    [
        ({"limits": {"memory": "128Mi"}}, {"resource": "limits.memory"}, str(128 * 2**20)),
        ({"limits": {"memory": "128Mi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "128"),
        ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu"}, "1"),  # rounded up
        ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
        ({"requests": {"cpu": 2}}, {"resource": "requests.cpu"}, "2"),
        ({}, {"resource": "limits.cpu"}, "0"),  # unset
    ],
)
def test_resource_field_ref(resources, ref, want):
    assert resource_field_ref({"name": "c", "resources": resources}, ref) == want


@pytest.mark.parametrize(("q", "v"), [("1Ki", 1024), ("1k", 1000), ("250m", 0.25), (3, 3), ("1e3", 1000)])
def test_parse_quantity(q, v):
    assert parse_quantity(q) == pytest.approx(v)


def test_env_order_expansion_and_argv():
    c = {
        "name": "main",
        "image": "img:1",
        "env": [
            {"name": "GREETING", "value": "hi $(POD_NAME) $(LATER) $$(X)"},
            {"name": "LATER", "value": "late"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "POD_NAME", "value": "mine"},  # the container may override an implicit variable
        ],
        "command": ["run", "$(APP)"],
        "args": ["--name=$(POD_NAME)", "$(NOPE)", "$$(APP)"],
    }
    env = container_env(POD, c, implicit={"POD_NAME": "web-1"}, **FACTS)
    assert env["GREETING"] == "hi web-1 $(LATER) $(X)"  # only variables defined before it
    assert env["APP"] == "web" and env["POD_NAME"] == "mine"
    assert container_argv(c, env) == (["run", "web"], ["--name=mine", "$(NOPE)", "$(APP)"])


@pytest.mark.parametrize(
    "container",
    [
        {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]},
        {"name": "c", "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]},
        {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
    ],
)
def test_missing_objects_are_config_errors(container):
    with pytest.raises(ConfigError) as e:
        container_env(POD, container, **FACTS)
    assert e.value.reason == "CreateContainerConfigError"


def test_service_variables_come_first_and_lose_to_the_containers_own():
    svc = [{"name": "DB_SERVICE_HOST", "value": "10.96.0.5"}, {"name": "DB_SERVICE_PORT", "value": "5432"}]
    own = [
        {"name": "DB_SERVICE_PORT", "value": "6543"},
        {"name": "URL", "value": "$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"},
    ]
    merged = with_service_env(own, svc)
    assert [e["name"] for e in merged] == ["DB_SERVICE_HOST", "DB_SERVICE_PORT", "URL"]
    env = container_env(POD, {"name": "c", "env": merged}, **FACTS)
    assert env["URL"] == "10.96.0.5:6543"


# --- ConfigMaps and Secrets (configMapKeyRef, secretKeyRef, envFrom) ---------------------------

B64 = {"pw": "czNjcjN0", "user": "YWRtaW4="}  # s3cr3t, admin
OBJECTS = {
    ("ConfigMap", "shop", "cfg"): {"metadata": {"name": "cfg", "namespace": "shop"}, "data": {"A": "1", "B": "2"}},
    ("ConfigMap", "shop", "odd"): {
        "metadata": {"name": "odd", "namespace": "shop"},
        "data": {"ok": "y", "1bad": "n", "has space": "n"},
        "binaryData": {"bin": "AAE="},
    },
    ("Secret", "shop", "db"): {"metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": B64},
    ("ConfigMap", "other", "cfg"): {"metadata": {"name": "cfg", "namespace": "other"}, "data": {"A": "elsewhere"}},
}


def _env(container, **kw):
    return container_env(POD, {"name": "c", **container}, **FACTS, objects=OBJECTS, **kw)


def test_key_refs_read_configmaps_and_decoded_secrets_of_the_pods_namespace():
    env = _env(
        {
            "env": [
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "A"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                {"name": "BOTH", "value": "$(X)-$(PW)"},
            ]
        }
    )
    assert (env["X"], env["PW"], env["BOTH"]) == ("1", "s3cr3t", "1-s3cr3t")


def test_envfrom_first_then_env_overrides_and_later_sources_win():
    env = _env(
        {
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "db"}, "prefix": "DB_"},
                {"configMapRef": {"name": "cfg"}, "prefix": "P_"},
            ],
            "env": [{"name": "A", "value": "own"}, {"name": "C", "value": "$(B)$(DB_user)"}],
        },
        implicit={"B": "implicit"},
    )
    assert env["A"] == "own"  # env beats envFrom
    assert env["B"] == "2"  # envFrom beats what the runtime sets implicitly
    assert (env["DB_pw"], env["DB_user"], env["P_A"], env["C"]) == ("s3cr3t", "admin", "1", "2admin")


def test_envfrom_skips_invalid_names_and_reports_them_as_the_kubelet_does():
    warnings: list[str] = []
    env = _env({"envFrom": [{"configMapRef": {"name": "odd"}}]}, warnings=warnings)
    assert env["ok"] == "y" and "1bad" not in env and "has space" not in env
    assert "bin" not in env  # binaryData never reaches the environment
    assert warnings == [
        "Keys [1bad, has space] from the EnvFrom configMap shop/odd were skipped since they are "
        "considered invalid environment variable names."
    ]


def _ref(kind: str, name: str, key: str) -> dict:
    return {"env": [{"name": "X", "valueFrom": {kind: {"name": name, "key": key}}}]}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (_ref("configMapKeyRef", "nope", "A"), 'configmap "nope" not found'),
        (_ref("configMapKeyRef", "cfg", "Z"), "couldn't find key Z in ConfigMap shop/cfg"),
        (_ref("secretKeyRef", "nope", "pw"), 'secret "nope" not found'),
        (_ref("secretKeyRef", "db", "Z"), "couldn't find key Z in Secret shop/db"),
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
    ],
)  # fmt: skip
def test_missing_objects_and_keys_give_the_kubelets_messages(container, message):
    with pytest.raises(ConfigError) as e:
        _env(container)
    assert (e.value.reason, e.value.message) == ("CreateContainerConfigError", message)


def test_optional_missing_objects_and_keys_are_left_out():
    env = _env(
        {
            "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
            "env": [
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "A", "optional": True}}},
                {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "db", "key": "Z", "optional": True}}},
                {"name": "Z", "value": "$(X)"},
            ],
        }
    )
    assert "X" not in env and "Y" not in env and env["Z"] == "$(X)"
