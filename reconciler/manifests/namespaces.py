"""Which namespaces a revision may put objects in: the built-in ones and the Namespaces it declares.

Where it sits: pure, in the manifests package; ``revision.load_listing`` calls ``check_namespaces``
once every file is loaded (a Namespace and the objects in it may sit in different files). The API
server refuses an object in a namespace that does not exist (``namespaces "x" not found``, the
NamespaceLifecycle admission plugin); gitship refuses the whole revision, naming the file, the
document and the field ``metadata.namespace``, as for any invalid object. So a commit that removes
a Namespace from git must remove the objects in it too (their deletion follows: sync/namespaces.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from reconciler.errors import ManifestError
from reconciler.manifests.model import Manifest

# the namespaces every cluster has, made by gitship itself (kube-apiserver's system namespaces)
DEFAULT_NAMESPACE = "default"
BUILTIN_NAMESPACES: tuple[str, ...] = (DEFAULT_NAMESPACE, "kube-system", "kube-public", "kube-node-lease")


def not_found_message(namespace: str) -> str:
    """The API server's message for an object in a namespace that does not exist."""
    return f'namespaces "{namespace}" not found'


def declared_namespaces(manifests: Sequence[Manifest]) -> set[str]:
    """The namespaces a revision's objects may live in: the built-in ones and its Namespaces."""
    names = {m.key[2] for m in manifests if m.key[0] == "Namespace"}
    return names.union(BUILTIN_NAMESPACES)


def check_namespaces(manifests: Sequence[Manifest], elsewhere: Collection[str] = ()) -> list[ManifestError]:
    """One error per object in a namespace that is neither built in nor declared by the revision
    nor in ``elsewhere`` (the Namespaces other sources declare: reconciler/sources)."""
    known = declared_namespaces(manifests).union(elsewhere)
    return [
        ManifestError(
            m.source.file, not_found_message(m.key[1]), m.source.line, m.source.document, "metadata.namespace"
        )
        for m in manifests
        if m.key[1] and m.key[1] not in known
    ]
