"""Strict fields: the schema (reconciler/manifests/schema.py, k8s-schema.json), unknown and duplicated
fields through the real loader, and ``validation: warn`` in gitship.yaml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError, RevisionRejected
from reconciler.manifests import schema
from reconciler.manifests.load import Limits, load_file, parse_repo_config
from reconciler.manifests.model import KINDS, RepoConfig, ValidationRule
from reconciler.manifests.revision import BlobCache, RevisionFile, load_listing, load_revision, warnings_of

ROOT = Path(__file__).resolve().parents[2]

DEPLOY = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replica: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: kubia:v1
        imagee: kubia:v2
"""


def errors_of(fn: Any, *args: Any, **kwargs: Any) -> list[ManifestError]:
    with pytest.raises(RevisionRejected) as exc:
        fn(*args, **kwargs)
    return exc.value.errors


def listing(files: dict[str, bytes]) -> tuple[list[RevisionFile], Any]:
    from reconciler.manifests.revision import git_blob_id

    ids = {p: git_blob_id(b) for p, b in files.items()}
    by_blob = {ids[p]: b for p, b in files.items()}
    return [RevisionFile(p, ids[p], len(b)) for p, b in files.items()], lambda blobs: {b: by_blob[b] for b in blobs}


# --------------------------------------------------------------------------- the schema file


def test_schema_knows_every_kind_gitship_supports() -> None:
    for kind, api in KINDS.items():
        assert schema.knows(api, kind), kind
    assert schema.kubernetes_version().startswith("1.")


def test_schema_paths() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"any.key/x": "v"}, "annotations": {"a": "b"}, "bogus": 1},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}},
                {"name": "d", "image": "y", "ports": [{"containerPort": 80, "hostport": 8080}]},
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
        "status": {},
    }
    assert schema.unknown_fields(obj) == ["metadata.bogus", "spec.containers[1].ports[0].hostport"]
    assert schema.unknown_fields({"apiVersion": "x/v9", "kind": "Nope", "what": 1}) == []


def test_committed_schema_is_what_the_generator_makes() -> None:
    """Regenerate from Kubernetes' published definitions (PyPI kubernetes-validate) and compare."""
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate==1.37.0)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "gen-k8s-schema.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"k8s-schema.json is stale; run .ci/gen-k8s-schema.py\n{proc.stderr}"


# --------------------------------------------------------------------------- through the loader


def test_unknown_fields_rejected_with_file_line_and_path() -> None:
    errs = errors_of(load_file, "app/web.yaml", DEPLOY, {}, Limits())
    got = [(e.file, e.line, e.document, e.field, e.message) for e in errs]
    assert got == [
        ("app/web.yaml", 6, 0, "spec.replica", 'unknown field "spec.replica"'),
        (
            "app/web.yaml",
            16,
            0,
            "spec.template.spec.containers[0].imagee",
            'unknown field "spec.template.spec.containers[0].imagee"',
        ),
    ]
    assert 'app/web.yaml:6 (document 1): spec.replica: unknown field "spec.replica"' in str(errs[0])


_JOB_SPEC = b"  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: x}]\n"
_BATCH_DOCS = {
    "Job": b"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completion: 2\n" + _JOB_SPEC,
    "CronJob": b"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '@daily'\n"
    b"  schedul: x\n  jobTemplate:\n    spec:\n" + b"".join(b"    " + line + b"\n" for line in _JOB_SPEC.splitlines()),
}


def test_unknown_fields_of_every_supported_kind() -> None:
    docs = {
        "Pod": b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x}]\n"
        b"  restartpolicy: Never\n",
        "Service": b"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n"
        b"  selecter: {app: x}\n",
        "Endpoints": b"apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubset: []\n",
        "ConfigMap": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatta: {a: b}\n",
        "Secret": b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringdata: {a: b}\n",
        "ReplicaSet": b"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r, labes: {}}\nspec:\n"
        b"  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        b"    spec: {containers: [{name: c, image: x}]}\n",
        "PersistentVolumeClaim": b"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n"
        b"  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  storageclass: x\n",
        "PersistentVolume": b"apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: v}\nspec:\n"
        b"  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /x, typ: Directory}\n",
        "StorageClass": b"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\n"
        b"provisioner: a/b\nreclaimpolicy: Delete\n",
        "StatefulSet": b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  serviceNam: x\n"
        b"  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        b"    spec: {containers: [{name: c, image: x}]}\n",
        "DaemonSet": b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  updatestrategy: {}\n"
        b"  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        b"    spec: {containers: [{name: c, image: x}]}\n",
        "Ingress": b"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n"
        b"  defaultBackend: {service: {name: s, port: {number: 80}}}\n  rulez: []\n",
        "IngressClass": b"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: c}\n"
        b"spec: {controller: a.io/b, paramters: {}}\n",
    }
    expect = {
        "Pod": "spec.restartpolicy",
        "Service": "spec.selecter",
        "Endpoints": "subset",
        "ConfigMap": "datta",
        "Secret": "stringdata",
        "ReplicaSet": "metadata.labes",
        "PersistentVolumeClaim": "spec.storageclass",
        "PersistentVolume": "spec.hostPath.typ",
        "StorageClass": "reclaimpolicy",
        "StatefulSet": "spec.serviceNam",
        "DaemonSet": "spec.updatestrategy",
        "Ingress": "spec.rulez",
        "IngressClass": "spec.paramters",
    }
    docs.update(_INERT_DOCS)
    expect.update({k: "spek" for k in _INERT_DOCS})
    docs["Namespace"], expect["Namespace"] = (
        b"apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\nspec: {finalizer: []}\n",
        "spec.finalizer",
    )
    docs.update(_BATCH_DOCS)
    expect.update({"Job": "spec.completion", "CronJob": "spec.schedul"})
    assert set(docs) | {"Deployment"} == set(KINDS)
    for kind, data in docs.items():
        errs = errors_of(load_file, "f.yaml", data, {}, Limits())
        errs = [e for e in errs if e.message.startswith("unknown field")] if kind in _INERT_DOCS else errs
        assert [e.field for e in errs] == [expect[kind]], kind
        assert errs[0].message == f'unknown field "{expect[kind]}"'


def test_checked_before_defaults_and_status_allowed() -> None:
    # kubectl --dry-run -o yaml output: creationTimestamp: null, resources: {}, status: {}
    data = (
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  name: p\nspec:\n"
        b"  containers:\n  - image: x\n    name: c\n    resources: {}\n  dnsPolicy: ClusterFirst\nstatus: {}\n"
    )
    (m,) = load_file("p.yaml", data, {}, Limits())
    assert m.warnings == ()


def test_duplicate_field_rejected_at_the_second_line() -> None:
    data = DEPLOY.replace(b"  replica: 3\n", b"  replicas: 3\n").replace(b"        imagee: kubia:v2\n", b"")
    data = data.replace(b"  template:\n", b"  replicas: 5\n  template:\n")
    errs = errors_of(load_file, "d.yaml", data, {}, Limits())
    assert [(e.field, e.line, e.message) for e in errs] == [("spec.replicas", 9, 'duplicate field "spec.replicas"')]


def test_duplicate_field_in_a_list_item_and_later_documents_still_checked() -> None:
    data = (
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n"
        b"    image: y\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {containerz: []}\n"
    )
    errs = errors_of(load_file, "d.yaml", data, {}, Limits())
    got = [(e.document, e.field, e.line) for e in errs]
    assert got[0] == (0, "spec.containers[0].image", 8)
    assert (1, "spec.containerz", 13) in got


def test_gitship_yaml_duplicate_is_an_error() -> None:
    with pytest.raises(ManifestError) as exc:
        parse_repo_config(b"values: {a: 1}\nvalues: {a: 2}\n", "gitship.yaml")
    assert (exc.value.field, exc.value.line) == ("values", 2)


def test_revision_rejects_whole() -> None:
    good = b"apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: c, image: x}]}\n"
    errs = errors_of(load_revision, {"ok.yaml": good, "web.yaml": DEPLOY}, {})
    assert {e.file for e in errs} == {"web.yaml"}
    assert {e.field for e in errs} == {"spec.replica", "spec.template.spec.containers[0].imagee"}


# --------------------------------------------------------------------------- validation: warn


@pytest.mark.parametrize(
    "config,path,mode",
    [
        (b"", "web.yaml", "strict"),
        (b"validation: warn\n", "deep/dir/web.yaml", "warn"),
        (b"validation: strict\n", "web.yaml", "strict"),
        (b"validation: [{path: 'legacy/**', mode: warn}]\n", "legacy/a/web.yaml", "warn"),
        (b"validation: [{path: 'legacy/**', mode: warn}]\n", "web.yaml", "strict"),
        (
            b"validation:\n- {path: 'legacy/keep.yaml', mode: strict}\n- {path: 'legacy/*', mode: warn}\n",
            "legacy/keep.yaml",
            "strict",
        ),
    ],
)
def test_validation_rules(config: bytes, path: str, mode: str) -> None:
    assert parse_repo_config(config).validation_mode(path) == mode


@pytest.mark.parametrize(
    "data,field",
    [
        (b"validation: ignore\n", "validation"),
        (b"validation: {path: x}\n", "validation"),
        (b"validation: [x]\n", "validation[0]"),
        (b"validation: [{path: x, mode: off}]\n", "validation[0].mode"),
        (b"validation: [{mode: warn}]\n", "validation[0].path"),
        (b"validation: [{path: x, mode: warn, why: old}]\n", "validation[0].why"),
    ],
)
def test_validation_config_errors(data: bytes, field: str) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_repo_config(data)
    assert exc.value.field == field


def test_warn_mode_accepts_and_reports_every_field() -> None:
    config = b"validation: [{path: 'legacy/**', mode: warn}]\n"
    files = {"gitship.yaml": config, "legacy/web.yaml": DEPLOY}
    lst, read = listing(files)
    manifests, cfg = load_listing(lst, read)
    assert cfg.validation == [ValidationRule("legacy/**", "warn")]
    (m,) = manifests
    assert m.obj["spec"]["replicas"] == 1  # the typo does not count: replicas defaults to 1, as in Kubernetes
    warned = [(w.file, w.line, w.field, w.message) for w in warnings_of(manifests)]
    assert warned == [
        ("legacy/web.yaml", 6, "spec.replica", 'unknown field "spec.replica"'),
        (
            "legacy/web.yaml",
            16,
            "spec.template.spec.containers[0].imagee",
            'unknown field "spec.template.spec.containers[0].imagee"',
        ),
    ]
    # the same file outside legacy/ is rejected
    lst, read = listing({"gitship.yaml": config, "web.yaml": DEPLOY})
    with pytest.raises(RevisionRejected):
        load_listing(lst, read)


def test_warn_mode_keeps_the_last_duplicate_and_warns() -> None:
    data = DEPLOY.replace(b"  replica: 3\n", b"  replicas: 3\n  replicas: 4\n").replace(
        b"        imagee: kubia:v2\n", b""
    )
    lst, read = listing({"gitship.yaml": b"validation: warn\n", "d.yaml": data})
    manifests, _ = load_listing(lst, read)
    assert manifests[0].obj["spec"]["replicas"] == 4
    assert [(w.field, w.line) for w in warnings_of(manifests)] == [("spec.replicas", 7)]


def test_a_cached_warn_file_is_an_error_once_the_rule_is_gone() -> None:
    cache = BlobCache()
    lst, read = listing({"gitship.yaml": b"validation: warn\n", "web.yaml": DEPLOY})
    manifests, _ = load_listing(lst, read, cache=cache)
    assert len(warnings_of(manifests)) == 2
    lst, read = listing({"gitship.yaml": b"values: {}\n", "web.yaml": DEPLOY})
    with pytest.raises(RevisionRejected) as exc:
        load_listing(lst, read, cache=cache)
    assert {e.field for e in exc.value.errors} == {"spec.replica", "spec.template.spec.containers[0].imagee"}
    # a rename keeps its warnings under the new name
    lst, read = listing({"gitship.yaml": b"validation: warn\n", "moved.yaml": DEPLOY})
    manifests, _ = load_listing(lst, read, cache=cache)
    assert {w.file for w in warnings_of(manifests)} == {"moved.yaml"}


def test_strict_is_the_default() -> None:
    assert RepoConfig().validation_mode("anything.yaml") == "strict"


def test_repo_template_and_fixtures_load_strictly() -> None:
    """gitship's own template and the example manifests carry no field Kubernetes does not know."""
    files: dict[str, bytes] = {}
    for base in (ROOT / "repo-template",):
        for p in base.rglob("*"):
            if p.is_file() and p.suffix in (".yaml", ".yml", ".j2"):
                files[str(p.relative_to(base))] = p.read_bytes()
    assert files
    ms = load_revision(files)
    assert ms and not warnings_of(ms)


# kinds stored without effect (manifests/inert.py) and ReplicationController: a typo at the top
_INERT_DOCS = {
    kind: f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\nspek: {{}}\n".encode()
    for kind, api in KINDS.items()
    if kind
    in (
        "ReplicationController",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PriorityClass",
        "HorizontalPodAutoscaler",
        "CustomResourceDefinition",
    )
}
