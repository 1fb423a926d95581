"""The shapes every layer shares, defined once at the bottom (this module imports nothing of gitship's).

Obj   an object in Kubernetes' JSON shape: apiVersion, kind, metadata, spec, status (a plain dict)
Key   an object's identity: (kind, namespace, name)
NsName  (namespace, name): the identity within one kind (Services and their Endpoints)

The label grammar (label keys and values, DNS-1123 names) lives in reconciler/selectors.py; the
annotation keys gitship reads and writes in reconciler/annotation_keys.py.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]
NsName = tuple[str, str]
