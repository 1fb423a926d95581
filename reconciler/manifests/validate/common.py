"""What every validator of the package shares: the error collector and JSON type checks.

``Ctx`` collects the ``ManifestError`` of one document (lines left 0: ``load.py``
finds them from the YAML node tree only when there is an error). Its typed getters
report a value of the wrong JSON type once and hand back None, so a validator never
trips over a list where it expected a map.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from reconciler.errors import ManifestError
from reconciler.types import Obj

PROTOCOLS = ("TCP", "UDP", "SCTP")


def supported(value: Any, allowed: tuple[str, ...]) -> str:
    """Kubernetes' message for a value outside an enumeration."""
    return f"Unsupported value: {value!r}: supported values: " + ", ".join(f'"{a}"' for a in allowed)


def is_int(v: Any) -> TypeGuard[int]:
    return type(v) is int


def is_dict(v: Any) -> TypeGuard[Obj]:
    return type(v) is dict


def is_list(v: Any) -> TypeGuard[list[Any]]:
    return type(v) is list


def type_name(v: Any) -> str:
    """The JSON name of ``v``'s type, as in messages ("must be a string, not integer 5")."""
    if v is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(v), type(v).__name__
    )


class Ctx:
    """Collects errors for one document."""

    __slots__ = ("file", "document", "errors")

    def __init__(self, file: str, document: int) -> None:
        self.file = file
        self.document = document
        self.errors: list[ManifestError] = []

    def err(self, field: str, message: str) -> None:
        self.errors.append(ManifestError(self.file, message, 0, self.document, field))

    # typed getters: report a type error and return None when the value has the wrong type
    def int_field(
        self, obj: Obj, key: str, path: str, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        v = obj.get(key)
        if v is None:
            return None
        if not is_int(v):
            self.err(f"{path}.{key}", f"must be an integer, not {type_name(v)} {v!r}")
            return None
        if minimum is not None and v < minimum:
            self.err(f"{path}.{key}", f"Invalid value: {v}: must be greater than or equal to {minimum}")
        elif maximum is not None and v > maximum:
            self.err(f"{path}.{key}", f"Invalid value: {v}: must be less than or equal to {maximum}")
        return v

    def str_field(self, obj: Obj, key: str, path: str) -> str | None:
        v = obj.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            self.err(f"{path}.{key}", f"must be a string, not {type_name(v)} {v!r}")
            return None
        return v

    def dict_field(self, obj: Obj, key: str, path: str) -> Obj | None:
        v = obj.get(key)
        if v is None:
            return None
        if not is_dict(v):
            self.err(f"{path}.{key}", f"must be an object, not {type_name(v)}")
            return None
        return v

    def list_field(self, obj: Obj, key: str, path: str) -> list[Any] | None:
        v = obj.get(key)
        if v is None:
            return None
        if not is_list(v):
            self.err(f"{path}.{key}", f"must be a list, not {type_name(v)}")
            return None
        return v

    def bool_field(self, obj: Obj, key: str, path: str) -> bool | None:
        v = obj.get(key)
        if v is None:
            return None
        if type(v) is not bool:
            self.err(f"{path}.{key}", f"must be a boolean, not {type_name(v)} {v!r}")
            return None
        return v

    def str_list_field(self, obj: Obj, key: str, path: str) -> None:
        v = self.list_field(obj, key, path)
        for i, item in enumerate(v or ()):
            if not isinstance(item, str):
                self.err(f"{path}.{key}[{i}]", f"must be a string, not {type_name(item)} {item!r}")
