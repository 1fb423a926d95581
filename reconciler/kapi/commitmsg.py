"""The commit message of a write through the Kubernetes API (pure): the kubectl command that made it.

kubectl sends its command line in the ``Kubectl-Command`` header (``kubectl scale``, ``kubectl set
image``...) but not its arguments; the message is derived from the verb and from what changed:
``kubectl scale deployment/testqc --replicas=5``, ``kubectl set image deployment/testqc
nodejs=img:v2``, ``kubectl label deployment/testqc tier=web``, ``kubectl rollout pause
deployment/testqc`` (for a PATCH, whose kubectl commands these are), else ``kubectl patch
deployment/testqc --type=strategic`` / ``kubectl replace`` (PUT) with the fields changed in the body.
"""

from __future__ import annotations

from typing import Any

from reconciler.kapi.patch import diff_merge_patch
from reconciler.types import Obj

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def ref(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"


def changed_paths(diff: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a merge patch."""
    if not isinstance(diff, dict) or not diff:
        return [prefix] if prefix else []
    out: list[str] = []
    for k, v in diff.items():
        out += changed_paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") if "template" in spec else spec
    if not isinstance(pod, dict):
        return []
    return [c for c in (pod.get("initContainers") or []) + (pod.get("containers") or []) if isinstance(c, dict)]


def _labels(obj: Obj, field: str) -> dict[str, Any]:
    got = (obj.get("metadata") or {}).get(field) or {}
    return got if isinstance(got, dict) else {}


def _key_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = [f"{k}={v}" for k, v in after.items() if before.get(k) != v]
    return out + [f"{k}-" for k in before if k not in after]


def _only_images(before: Obj, after: Obj) -> list[str] | None:
    b, a = _containers(before), _containers(after)
    if len(a) != len(b) or any(x.get("name") != y.get("name") for x, y in zip(a, b)):
        return None
    moved = [f"{y.get('name')}={y.get('image')}" for x, y in zip(b, a) if x.get("image") != y.get("image")]
    if not moved:
        return None
    for x, y in zip(b, a):
        if {k: v for k, v in x.items() if k != "image"} != {k: v for k, v in y.items() if k != "image"}:
            return None
    return moved


def _only(paths: list[str], prefix: str) -> bool:
    return bool(paths) and all(p == prefix or p.startswith(prefix + ".") for p in paths)


def _named_change(kind: str, name: str, before: Obj, after: Obj, paths: list[str]) -> str | None:
    r = ref(kind, name)
    if paths == ["spec.replicas"]:
        return f"kubectl scale {r} --replicas={(after.get('spec') or {}).get('replicas')}"
    if paths == ["spec.paused"]:
        return f"kubectl rollout {'pause' if (after.get('spec') or {}).get('paused') else 'resume'} {r}"
    if paths == [f"spec.template.metadata.annotations.{RESTARTED_AT}"]:
        return f"kubectl rollout restart {r}"
    if _only(paths, "metadata.labels"):
        return f"kubectl label {r} " + " ".join(_key_changes(_labels(before, "labels"), _labels(after, "labels")))
    if _only(paths, "metadata.annotations"):
        changes = _key_changes(_labels(before, "annotations"), _labels(after, "annotations"))
        return f"kubectl annotate {r} " + " ".join(changes)
    if _only(paths, "spec"):
        images = _only_images(before, after)
        if images:
            return f"kubectl set image {r} " + " ".join(images)
    return None


def message(
    verb: str, kind: str, name: str, before: Obj | None, after: Obj | None, content_type: str = "", command: str = ""
) -> str:
    """The commit message for ``verb`` ("create", "update", "patch", "delete") of one object.

    ``command``: kubectl's ``Kubectl-Command`` header (``kubectl edit``), when the server passes it:
    it names a change the message would otherwise call a patch or a replace."""
    msg = _message(verb, kind, name, before, after, content_type)
    generic = ("kubectl patch ", "kubectl replace ", "kubectl apply --server-side ")
    if command.startswith("kubectl ") and msg.startswith(generic) and not msg.startswith(command + " "):
        head, _, rest = msg.partition("\n")
        msg = f"{command} {ref(kind, name)}" + (f"\n{rest}" if rest else "")
    return msg


def _message(verb: str, kind: str, name: str, before: Obj | None, after: Obj | None, content_type: str) -> str:
    r = ref(kind, name)
    if verb == "create":
        how = "apply --server-side" if PATCH_TYPES.get(content_type) == "apply" else "create"
        return f"kubectl {how} {r}"
    if verb == "delete":
        return f"kubectl delete {r}"
    diff = diff_merge_patch(before or {}, after or {})
    paths = changed_paths(diff)
    by_name = verb == "patch" and PATCH_TYPES.get(content_type) != "apply"
    named = _named_change(kind, name, before or {}, after or {}, paths) if by_name else None
    if named:
        return named
    if verb == "update":
        head = f"kubectl replace {r}"
    elif PATCH_TYPES.get(content_type) == "apply":
        head = f"kubectl apply --server-side {r}"
    else:
        head = f"kubectl patch {r} --type={PATCH_TYPES.get(content_type, 'strategic')}"
    if not paths:
        return head
    shown = paths[:10] + ([f"... ({len(paths) - 10} more)"] if len(paths) > 10 else [])
    return head + "\n\nChanged: " + ", ".join(shown)
