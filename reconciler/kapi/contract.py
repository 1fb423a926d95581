"""The interface between the API server (reconciler/kapi/server.py) and the write side
(reconciler/kapi/writes.py): ``handle(ctx: WriteContext, req: WriteRequest) -> WriteResponse``.

The server parses the HTTP request (path -> group, version, kind, namespace, name,
subresource; the bearer token -> user) and hands every POST, PUT, PATCH and DELETE on a
desired-state object to ``reconciler.kapi.writes.handle``, called in a worker thread
(``asyncio.to_thread``: git and YAML work block). The response's ``body`` is sent as JSON with
``status``; each of ``warnings`` becomes a ``Warning: 299 - "<text>"`` header (kubectl prints
them). Errors are answered with a Kubernetes ``Status`` body (reconciler.kapi.status builds them)
and its code.

Pure: dataclasses only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.types import Key, Obj


@dataclass(frozen=True)
class WriteRequest:
    """One write verb on one object (or a collection for POST)."""

    verb: str  # "create" (POST), "update" (PUT), "patch" (PATCH), "delete" (DELETE)
    group: str  # "" for the core group, "apps", "batch", ...
    version: str  # "v1"
    kind: str  # the Kind (not the resource): "Deployment"
    namespace: str  # "" for cluster-scoped kinds
    name: str  # "" for a POST to the collection (the name is in the body)
    subresource: str  # "", "scale", "status"
    body: bytes
    content_type: str  # e.g. "application/strategic-merge-patch+json", "application/apply-patch+yaml"
    query: dict[str, str] = field(default_factory=dict)  # fieldManager, dryRun, force, fieldValidation...
    user: str = "kubectl"  # the authenticated user (the commit's author)
    headers: dict[str, str] = field(default_factory=dict)  # request headers the write side reads (Kubectl-Command)


@dataclass
class WriteResponse:
    status: int  # 200, 201, 202, 4xx, 5xx
    body: dict[str, Any]  # the object after the write, or a Status
    warnings: list[str] = field(default_factory=list)  # e.g. "committed 1a2b3c4: kubectl scale ..."


@dataclass
class WriteContext:
    """What the daemon hands the write side.

    ``writer()`` makes a fresh gitops.RepoWriter on the tracked repository (its commits take the
    repository's flock); ``repo_dir`` / ``manifests_path`` / ``branch`` are the values it was made
    with. ``desired`` / ``live`` return a snapshot copy of the object git declares / the live object
    (None when absent); ``live_of_kind(kind, namespace or None)`` lists live objects. ``nudge()``
    tells the daemon to look at the source now (after a commit). ``wait_applied(sha, timeout)``
    blocks until the daemon applied (or rejected) that commit and returns the result string of
    the store's revision row ("applied", "rejected", ...; "" on timeout): call it from the worker
    thread only. ``state_dir`` is the daemon's state directory.
    """

    writer: Callable[[], Any]
    repo_dir: str
    manifests_path: str
    branch: str
    state_dir: str
    desired: Callable[[Key], Obj | None]
    live: Callable[[Key], Obj | None]
    live_of_kind: Callable[[str, str | None], list[Obj]]
    nudge: Callable[[], None]
    wait_applied: Callable[[str, float], str]
