"""PURE: a Namespace one source declares may hold objects of another (Flux allows it): which
Namespaces a source's objects may use, and the error when the source that declares one drops it
while another source's objects still use it (its removal would delete them).

Where it sits: reconciler/sources/runner.py's ComposingLoader (the loader of each source) and
`gitship plan/diff --source` (reconciler/sources/status.py's ``namespaces_elsewhere``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.errors import ManifestError
from reconciler.manifests.namespaces import BUILTIN_NAMESPACES, not_found_message
from reconciler.types import Key


Owners = Mapping[Key, tuple[str, str, int]]  # key -> (source, file, line)


def namespaces_of(owners: Owners, but: str) -> set[str]:
    """The Namespaces the sources other than ``but`` declare: objects of ``but`` may live in them."""
    return {k[2] for k, (src, _, _) in owners.items() if k[0] == "Namespace" and src != but}


def namespace_removed_in_use(source: str, declared: Iterable[Key], owners: Owners) -> list[ManifestError]:
    """One error per object of another source in a Namespace ``source`` owned and no longer declares
    (its removal would delete them), naming the object's source and file."""
    keys = set(declared)
    dropped = {k[2] for k, (src, _, _) in owners.items() if k[0] == "Namespace" and src == source and k not in keys}
    dropped -= {k[2] for k in keys if k[0] == "Namespace"} | namespaces_of(owners, source) | set(BUILTIN_NAMESPACES)
    errors = []
    for (kind, ns, name), (src, file, line) in sorted(owners.items()):
        if src != source and ns in dropped:
            errors.append(
                ManifestError(
                    file,
                    f"{not_found_message(ns)}: source {source!r} no longer declares Namespace {ns}, "
                    f"which {kind} {ns}/{name} of source {src!r} uses",
                    line,
                    0,
                    "metadata.namespace",
                )
            )
    return errors
