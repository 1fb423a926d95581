"""The live objects, in memory, mirrored to the store.

Where it sits: the daemon's working set between the store (what survives a
restart) and the controllers (pure functions over these dicts). Every change
goes through ``put``/``delete`` so the pass knows what to write back, and
status is written only when it changed. The pure pass (reconciler/sync) works on a
scratch ``Cluster`` too: what it changed is its answer. Pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from runtime.kernel.jsoncopy import copy_json

from .manifests.model import namespace_of
from .types import Key, Obj


def key_of(obj: Obj) -> Key:
    """``(kind, namespace, name)``; namespace ``""`` for a cluster-scoped kind (PersistentVolume)."""
    return (obj["kind"], namespace_of(obj), obj["metadata"]["name"])


def controller_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


class Cluster:
    def __init__(self, objects: Iterable[Obj] = ()):
        self.objects: dict[Key, Obj] = {key_of(o): o for o in objects}
        self._dirty: set[Key] = set()
        self._deleted: set[Key] = set()

    def get(self, key: Key) -> Obj | None:
        return self.objects.get(key)

    def put(self, obj: Obj) -> None:
        key = key_of(obj)
        existing = self.objects.get(key)
        if existing is not obj and existing == obj:
            return
        self.objects[key] = obj
        self._dirty.add(key)
        self._deleted.discard(key)

    def delete(self, key: Key) -> Obj | None:
        obj = self.objects.pop(key, None)
        if obj is not None:
            self._deleted.add(key)
            self._dirty.discard(key)
        return obj

    def of_kind(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [o for k, o in self.objects.items() if k[0] == kind and (namespace is None or k[1] == namespace)]

    def namespaces(self) -> set[str]:
        return {k[1] for k in self.objects}

    def by_uid(self) -> dict[str, Obj]:
        return {o["metadata"].get("uid"): o for o in self.objects.values() if o["metadata"].get("uid")}

    def changed(self) -> tuple[list[Obj], list[Key]]:
        """What changed since the last ``take_changes``: (objects put, keys deleted), not copied."""
        return [self.objects[k] for k in self._dirty if k in self.objects], list(self._deleted)

    def take_changes(self) -> tuple[list[Obj], list[Key]]:
        # copy_json, not copy.deepcopy: the largest cost of a pass that starts pods
        ups = [copy_json(self.objects[k]) for k in self._dirty if k in self.objects]
        dels = list(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        return ups, dels

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self.objects.values()))
