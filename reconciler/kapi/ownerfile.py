"""Where the field managers of server-side apply are kept: ``<state-dir>/kapi/managed-fields.json``
(git holds no managedFields; losing the file loses only the ownership, never desired state)."""

from __future__ import annotations

import json
import os
import threading

from reconciler.kapi.managed import Owners
from reconciler.types import Key

_lock = threading.Lock()


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, "kapi", "managed-fields.json")


def _read(state_dir: str) -> dict[str, Owners]:
    try:
        with open(_path(state_dir), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _name(key: Key) -> str:
    return "/".join(key)


def load(state_dir: str, key: Key) -> Owners:
    with _lock:
        got = _read(state_dir).get(_name(key))
    return got if isinstance(got, dict) else {}


def save(state_dir: str, key: Key, owners: Owners) -> None:
    """Replace the object's owners (an empty mapping forgets the object); written atomically."""
    with _lock:
        data = _read(state_dir)
        if owners:
            data[_name(key)] = owners
        else:
            data.pop(_name(key), None)
        path = _path(state_dir)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, path)
