"""Found by tests/integration/test_hostile_more.py: volume paths with ``..`` were accepted at commit
time (the runtimes refused them only when making the mount), and a SOPS file listing thousands of
recipients gave an error message of 320 kB."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import yaml

from reconciler.errors import RevisionRejected
from reconciler.manifests.load import Limits, load_file


def _pod(volumes: list[Any], mounts: list[Any]) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": mounts}], "volumes": volumes},
    }
    return yaml.safe_dump(pod).encode()


EMPTY = [{"name": "v", "emptyDir": {}}]
MOUNT = [{"name": "v", "mountPath": "/data"}]


@pytest.mark.parametrize(
    ("volumes", "mounts", "field", "why"),
    [
        (EMPTY, [{"name": "v", "mountPath": "/d", "subPath": "../../etc"}], "subPath", "must not contain '..'"),
        (EMPTY, [{"name": "v", "mountPath": "/d", "subPath": "a/.."}], "subPath", "must not contain '..'"),
        (EMPTY, [{"name": "v", "mountPath": "/d", "subPath": "/etc"}], "subPath", "must be a relative path"),
        (
            [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "a/../../x"}]}}],
            MOUNT,
            "configMap.items[0].path",
            "must not contain '..'",
        ),
        (
            [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/etc/passwd"}]}}],
            MOUNT,
            "secret.items[0].path",
            "must be a relative path",
        ),
        (
            [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "..data"}]}}],
            MOUNT,
            "items[0].path",
            "must not start with '..'",
        ),
        (
            [
                {
                    "name": "v",
                    "projected": {"sources": [{"configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}]},
                }
            ],
            MOUNT,
            "projected.sources[0].configMap.items[0].path",
            "must not contain '..'",
        ),
        ([{"name": "v", "hostPath": {"path": "/tmp/../etc"}}], MOUNT, "hostPath.path", "must not contain '..'"),
    ],
)
def test_paths_leaving_a_volume_are_rejected(volumes: list[Any], mounts: list[Any], field: str, why: str) -> None:
    with pytest.raises(RevisionRejected) as e:
        load_file("p.yaml", _pod(volumes, mounts), {}, Limits())
    assert field in str(e.value) and why in str(e.value)


@pytest.mark.parametrize("sub", ["a/b", "a..b", "..a/b/c"[1:], "x/.y"])
def test_ordinary_paths_are_fine(sub: str) -> None:
    vols = [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": sub}]}}]
    load_file("p.yaml", _pod(vols, [{"name": "v", "mountPath": "/d", "subPath": sub}]), {}, Limits())


def test_sops_error_names_a_few_recipients_not_thousands() -> None:
    pyrage = pytest.importorskip("pyrage")
    from reconciler.manifests.sops import AgeKeys, encrypt_documents

    stranger = [str(pyrage.x25519.Identity.generate().to_public()) for _ in range(8)]
    doc = yaml.safe_load(
        encrypt_documents(
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}],
            stranger[:1],
            datetime.now(timezone.utc),
        )
    )
    stanza = doc["sops"]["age"][0]["enc"]
    doc["sops"]["age"] = [{"recipient": stranger[i % 8], "enc": stanza} for i in range(3000)]
    mine = pyrage.x25519.Identity.generate()
    with pytest.raises(RevisionRejected) as e:
        load_file("s.yaml", yaml.safe_dump(doc).encode(), {}, Limits(), age_keys=AgeKeys([mine]))
    assert "and 3 more" in str(e.value) and len(str(e.value)) < 2000
