"""The applier's pure parts: the loader's warnings as events (reconciler/applier.py)."""

from __future__ import annotations

from reconciler.applier import warning_records
from reconciler.errors import ManifestError
from reconciler.manifests.model import Manifest, Source


def test_each_warning_is_a_warning_event_on_its_object() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}}
    warnings = (
        ManifestError("legacy/web.yaml", 'unknown field "spec.replica"', 6, 0, "spec.replica"),
        ManifestError("legacy/web.yaml", 'duplicate field "spec.replicas"', 7, 0, "spec.replicas"),
    )
    clean = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}
    records = warning_records(
        [Manifest(dep, Source("legacy/web.yaml", 1, 0), warnings), Manifest(clean, Source("p.yaml", 1, 0))]
    )
    assert [(r["type"], r["reason"], r["kind"], r["namespace"], r["name"]) for r in records] == [
        ("Warning", "UnknownField", "Deployment", "prod", "web"),
        ("Warning", "DuplicateField", "Deployment", "prod", "web"),
    ]
    assert records[0]["message"] == 'unknown field "spec.replica" (validation: warn in gitship.yaml)'
    assert (records[0]["file"], records[0]["line"], records[0]["field"]) == ("legacy/web.yaml", 6, "spec.replica")
