"""The Kubernetes API's write verbs as commits: ``handle(ctx, req) -> WriteResponse``.

The API server (reconciler/kapi/server.py) hands every POST, PUT, PATCH and DELETE on a
desired-state object here, in a worker thread. A write:

1. computes the new object: POST takes the body; PUT replaces (a stale ``resourceVersion`` is 409
   Conflict); PATCH applies the body by its content type to the current object (the live one, else
   the one git declares): merge patch, strategic merge patch, JSON patch (reconciler/kapi/patch.py),
   or server-side apply (``application/apply-patch+yaml``: the applied configuration merged in as a
   strategic merge patch, with field managers: reconciler/kapi/managed.py, docs/kubectl.md);
2. checks it: kind, name and namespace unchanged; unknown fields (``fieldValidation=Strict``: 400
   ``strict decoding error``; else a warning and the field dropped, as the API server does);
3. carries only the change into the manifest as written: the difference between the current and
   the new object, without what is not desired state (``status``, ``metadata.uid``,
   ``resourceVersion``, ``generation``, ``creationTimestamp``, ``managedFields``, the annotations
   controllers and kubectl set: ``STRIPPED_ANNOTATIONS``), is applied to the document's own text
   (reconciler/gitops/apiedit.py), so defaults never land in git and comments and layout stay;
4. loads the whole revision with the change (reconciler/kapi/revcheck.py): a rejected revision, or
   an immutable field changed, is 422 Invalid naming the file, line and field, and nothing is
   committed;
5. commits with the request's user as author and the kubectl command as message
   (reconciler/kapi/commitmsg.py), tells the daemon to look, waits a moment for the commit to be
   applied and answers the object with the warning ``gitship: committed <sha7>: <message>``.

A new object goes to ``<manifests>/<namespace>/<plural>/<name>.yaml`` (``_cluster`` for a kind
without a namespace). DELETE removes the object's document. The ``scale`` subresource (Deployment,
ReplicaSet, StatefulSet, ReplicationController) edits ``spec.replicas``. ``status`` subresources
and objects a controller owns (a ReplicaSet's pods, a Deployment's ReplicaSets) are not desired
state: 405 MethodNotAllowed naming the owner.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any


from reconciler import annotation_keys as keys
from reconciler.errors import GitOpsError, GitshipError, NotFound, RevisionRejected
from reconciler.gitops.apiedit import add_object, change_object, remove_document
from reconciler.kapi import commitmsg, managed, ownerfile
from reconciler.kapi.contract import WriteContext, WriteRequest, WriteResponse
from reconciler.kapi.patch import PatchError, carry_change, json_patch, merge_patch, strategic_merge_patch
from reconciler.kapi.revcheck import check_revision
from reconciler.kapi.scale import SCALABLE, scale_object
from reconciler.kapi.writebody import Refused, decode, drop_field, path_segment_error, strict_refusal
from reconciler.kapi.undo import undo, undo_target
from reconciler.manifests import schema
from reconciler.types import Key, Obj

MAX_BODY = 3 * 1024 * 1024  # the API server's limit on a write's body (apiserver's MaxRequestBodyBytes)
APPLY_WAIT = 10.0  # seconds to wait for the daemon to apply a commit before answering

STRIPPED_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
STRIPPED_ANNOTATIONS = (
    keys.REVISION,
    keys.REVISION_HISTORY,
    keys.COMMIT,
    keys.CHANGE_CAUSE,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "kubectl.kubernetes.io/last-applied-configuration",
)
PLURAL_EXCEPTIONS = {"Ingress": "ingresses", "IngressClass": "ingressclasses", "NetworkPolicy": "networkpolicies"}
PLURAL_EXCEPTIONS |= {"PriorityClass": "priorityclasses", "StorageClass": "storageclasses", "Endpoints": "endpoints"}


class _DryRun(Exception):
    """Raised by the revision check of a dryRun=All request: everything checked, nothing committed."""


# ---------------------------------------------------------------------------------------------- names


def plural(kind: str) -> str:
    if kind in PLURAL_EXCEPTIONS:
        return PLURAL_EXCEPTIONS[kind]
    low = kind.lower()
    if low.endswith("s"):
        return low + "es"
    if low.endswith("y") and not low.endswith(("ay", "ey", "oy")):
        return low[:-1] + "ies"
    return low + "s"


def resource(req: WriteRequest) -> str:
    """``deployments.apps``: the resource as the API server names it in messages."""
    return plural(req.kind) + (f".{req.group}" if req.group else "")


def status_body(code: int, reason: str, message: str, req: WriteRequest, causes: list[dict[str, str]]) -> Obj:
    # NewInvalid names the Kind ("The Deployment "x" is invalid"), the others the resource ("pods")
    details: Obj = {"kind": req.kind if reason == "Invalid" else plural(req.kind)}
    if req.group:
        details["group"] = req.group
    if req.name:
        details["name"] = req.name
    if causes:
        details["causes"] = causes
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    return body | {"reason": reason, "details": details, "code": code}


def new_object_path(manifests_path: str, kind: str, namespace: str, name: str) -> str:
    """Where POST puts a new object: ``<manifests>/<namespace>/<plural>/<name>.yaml``."""
    root = manifests_path.strip("/")
    rel = f"{namespace or '_cluster'}/{plural(kind)}/{name}.yaml"
    return f"{root}/{rel}" if root else rel


# ---------------------------------------------------------------------------------------------- objects


def strip(obj: Obj) -> Obj:
    """The object as desired state: without status, server-set metadata and controllers' annotations."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for k in STRIPPED_METADATA:
            meta.pop(k, None)
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            for k in STRIPPED_ANNOTATIONS:
                ann.pop(k, None)
            if not ann:
                meta.pop("annotations", None)
    return out


def _check_fields(req: WriteRequest, new: Obj, warnings: list[str]) -> None:
    unknown = schema.unknown_fields(strip(new))
    if not unknown:
        return
    mode = req.query.get("fieldValidation", "Warn")
    if mode == "Strict":
        raise strict_refusal(req, "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
    for f in unknown:
        if mode != "Ignore":
            warnings.append(f'unknown field "{f}"')
        drop_field(new, f)


def _check_identity(req: WriteRequest, new: Any) -> None:
    if not isinstance(new, dict):
        raise Refused(400, "BadRequest", "the body must be a JSON object")
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        raise Refused(422, "Invalid", f'{req.kind} "{req.name}" is invalid: metadata.name: Required value')
    if new.get("kind") not in (None, req.kind):
        raise Refused(400, "BadRequest", f"the kind {new.get('kind')!r} does not match the URL's {req.kind}")
    if req.name and meta.get("name") not in (None, req.name):
        msg = f"the name of the object ({meta.get('name')}) does not match the name on the URL ({req.name})"
        raise Refused(400, "BadRequest", msg)
    ns = meta.get("namespace")
    if req.namespace and ns not in (None, "", req.namespace):
        msg = f"the namespace of the provided object does not match the namespace sent on the request ({ns})"
        raise Refused(400, "BadRequest", msg)


def _is_rollback(req: WriteRequest) -> bool:
    """The request is shaped as kubectl's ``rollout undo``: a JSON patch replacing ``/spec/template``
    (kubectl pkg/polymorphichelpers/rollback.go). A ``set image`` back to an older image is a plain
    patch commit, not a revert."""
    if not req.content_type.startswith("application/json-patch+json"):
        return False
    try:
        ops = json.loads(req.body)
    except ValueError:
        return False
    return isinstance(ops, list) and any(
        isinstance(op, dict) and op.get("op") == "replace" and op.get("path") == "/spec/template" for op in ops
    )


def _check_version(req: WriteRequest, current: Obj, new: Obj) -> None:
    want = (new.get("metadata") or {}).get("resourceVersion")
    have = (current.get("metadata") or {}).get("resourceVersion")
    if want and have and str(want) != str(have):
        msg = (
            f'Operation cannot be fulfilled on {resource(req)} "{req.name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        raise Refused(409, "Conflict", msg)


def _owner_refusal(req: WriteRequest, live: Obj | None) -> Refused:
    owners = [o for o in ((live or {}).get("metadata") or {}).get("ownerReferences") or [] if o.get("controller")]
    what = f'{resource(req)} "{req.name}"'
    if owners:
        o = owners[0]
        msg = (
            f"{what} is owned by {str(o.get('kind')).lower()}/{o.get('name')}: its controller makes it, it is not "
            "desired state in git; change the owner instead"
        )
    else:
        msg = f"{what} is not declared in git: gitship's API writes only desired state (the manifests in git)"
    return Refused(405, "MethodNotAllowed", msg)


def kubectl_command(req: WriteRequest) -> str:
    """kubectl's ``Kubectl-Command`` header, when the server passes request headers (a ``headers``
    mapping on the request; the contract has none yet), else ""."""
    headers = getattr(req, "headers", None) or {}
    for k, v in headers.items():
        if str(k).lower() == "kubectl-command":
            return str(v)
    return ""


def _patched(req: WriteRequest, current: Obj) -> Obj:
    body = decode(req)
    try:
        if req.content_type == "application/merge-patch+json":
            out = merge_patch(current, body)
        elif req.content_type == "application/strategic-merge-patch+json":
            out = strategic_merge_patch(current, body)
        elif req.content_type == "application/json-patch+json":
            out = json_patch(current, body)
        else:
            raise Refused(415, "UnsupportedMediaType", f"the media type {req.content_type!r} is not a patch type")
    except PatchError as e:
        raise Refused(e.code, e.reason, e.message) from None
    if not isinstance(out, dict):
        raise Refused(400, "BadRequest", "the patched object is not a JSON object")
    return out


# ---------------------------------------------------------------------------------------------- verbs


class _Write:
    """One request's write, with its context."""

    def __init__(self, ctx: WriteContext, req: WriteRequest):
        self.ctx, self.req = ctx, req
        self.key: Key = (req.kind, req.namespace, req.name)
        self.ns = req.namespace or None
        self.warnings: list[str] = []
        self.author = f"{req.user} <{req.user}@gitship>"
        self.dry = req.query.get("dryRun") == "All"
        self.manager = req.query.get("fieldManager") or "kubectl"
        # the ownership of the object's fields once the write is committed (server-side apply's
        # managers): None = the update rule (the fields changed belong to this request's manager)
        self.owners_after: managed.Owners | None = None

    def check(self, live: dict[Key, Obj]) -> Any:
        def run(changes: dict[str, bytes | None]) -> None:
            check_revision(self.ctx.repo_dir, self.ctx.manifests_path, changes, live)
            if self.dry:
                raise _DryRun()

        return run

    def committed(self, sha: str, message: str) -> Obj | None:
        self.warnings.append(f"gitship: committed {sha[:7]}: {message.splitlines()[0]}")
        self.ctx.nudge()
        result = self.ctx.wait_applied(sha, APPLY_WAIT)
        if result and result != "applied":
            self.warnings.append(f"gitship: the daemon has not applied {sha[:7]}: {result}")
        return self.ctx.live(self.key)

    def current(self) -> tuple[Obj, Obj | None]:
        """(the object as it is, the live object); desired state only."""
        desired, live = self.ctx.desired(self.key), self.ctx.live(self.key)
        if desired is None:
            if live is not None:
                raise _owner_refusal(self.req, live)
            raise Refused(404, "NotFound", f'{resource(self.req)} "{self.req.name}" not found')
        return (live if live is not None else desired), live

    def change(self, current: Obj, live: Obj | None, new: Obj, verb: str) -> WriteResponse:
        _check_identity(self.req, new)
        _check_version(self.req, current, new)
        _check_fields(self.req, new, self.warnings)
        before, after = strip(current), strip(new)
        if before == after:
            if self.owners_after is not None and not self.dry:  # an apply that changes nothing still owns
                ownerfile.save(self.ctx.state_dir, self.key, self.owners_after)
            return WriteResponse(200, current, self.warnings)
        if live is not None and not self.dry and _is_rollback(self.req):
            rss = self.ctx.live_of_kind("ReplicaSet", self.req.namespace)
            target = undo_target(live, rss, before, after)
            if target is not None:
                writer = self.ctx.writer()
                writer.default_author = self.author  # the revert, or the template commit, is the user's
                undo_sha, how = undo(writer, live, target[0], target[1], self.req.user)
                done = self.committed(undo_sha, f"rollout undo to revision {target[1][0]} ({how})")
                return WriteResponse(200, done or new, self.warnings)
        message = commitmsg.message(
            verb, self.req.kind, self.req.name, before, after, self.req.content_type, kubectl_command(self.req)
        )
        checked = {self.key: live} if live is not None else {}
        try:
            sha, _ = change_object(
                self.ctx.writer(),
                self.req.kind,
                self.ns,
                self.req.name,
                lambda raw: carry_change(raw, before, after),
                message,
                self.check(checked),
                self.author,
            )
        except _DryRun:
            return WriteResponse(200, new, self.warnings)
        if sha is None:
            return WriteResponse(200, current, self.warnings)
        self.record(before, after)
        return WriteResponse(200, self.committed(sha, message) or new, self.warnings)

    def record(self, before: Obj, after: Obj) -> None:
        """Keep who owns the object's fields now (server-side apply's field managers)."""
        owners = self.owners_after
        if owners is None:
            old = ownerfile.load(self.ctx.state_dir, self.key)
            manager = managed.update_manager(self.manager)
            owners = managed.after_update(old, manager, managed.leaves(before), managed.leaves(after))
        ownerfile.save(self.ctx.state_dir, self.key, owners)

    def apply(self) -> WriteResponse:
        """Server-side apply: conflicts with other managers' fields (409 unless force=true), the
        fields this manager applied before and no longer applies removed, the rest merged in."""
        if self.ctx.desired(self.key) is None and self.ctx.live(self.key) is None:
            resp = self.create()  # an apply of a new object creates it
            if resp.status == 201 and not self.dry:
                applied = managed.leaves(strip(decode(self.req)))
                ownerfile.save(self.ctx.state_dir, self.key, {self.manager: sorted(applied)})
            return resp
        current, live = self.current()
        body = decode(self.req)
        _check_identity(self.req, body)
        applied, now = managed.leaves(strip(body)), managed.leaves(strip(current))
        owners = ownerfile.load(self.ctx.state_dir, self.key)
        force = self.req.query.get("force") == "true"
        found = managed.conflicts(owners, self.manager, applied, now)
        if found and not force:
            raise _conflict_refusal(self.req, found)
        try:
            new = strategic_merge_patch(current, body)
        except PatchError as e:
            raise Refused(e.code, e.reason, e.message) from None
        for leaf in managed.removed(owners, self.manager, applied):
            managed.remove_leaf(new, leaf)
        self.owners_after = managed.after_apply(owners, self.manager, applied, now, force)
        return self.change(current, live, new, "patch")

    def create(self) -> WriteResponse:
        obj = decode(self.req)
        _check_identity(self.req, obj)
        name = obj["metadata"].get("name")
        if not isinstance(name, str) or not name:
            raise Refused(
                422, "Invalid", f'{self.req.kind} "" is invalid: metadata.name: Required value: name is required'
            )
        for field_, value in (("metadata.name", name), ("metadata.namespace", self.req.namespace)):
            if (bad := path_segment_error(value)) is not None:  # the name becomes a file's path
                raise Refused(
                    422, "Invalid", f'{self.req.kind} "{name}" is invalid: {field_}: Invalid value: "{value}": {bad}'
                )
        self.key = (self.req.kind, self.req.namespace, name)
        if self.ctx.desired(self.key) is not None or self.ctx.live(self.key) is not None:
            raise Refused(409, "AlreadyExists", f'{resource(self.req)} "{name}" already exists')
        _check_fields(self.req, obj, self.warnings)
        new = strip(obj)
        if self.req.namespace:
            new["metadata"]["namespace"] = self.req.namespace
        new.setdefault("apiVersion", f"{self.req.group}/{self.req.version}" if self.req.group else self.req.version)
        new.setdefault("kind", self.req.kind)
        rel = new_object_path(self.ctx.manifests_path, self.req.kind, self.req.namespace, name)
        message = commitmsg.message("create", self.req.kind, name, None, new, self.req.content_type)
        try:
            sha = add_object(self.ctx.writer(), rel, new, message, self.check({}), self.author)
        except _DryRun:
            return WriteResponse(201, new, self.warnings)
        return WriteResponse(201, self.committed(sha, message) or new, self.warnings)

    def delete(self) -> WriteResponse:
        current, live = self.current()
        message = commitmsg.message("delete", self.req.kind, self.req.name, current, None)
        try:
            w = self.ctx.writer()
            sha, _ = remove_document(w, self.req.kind, self.ns, self.req.name, message, self.check({}), self.author)
        except _DryRun:
            return WriteResponse(200, current, self.warnings)
        self.committed(sha, message)
        details = {"name": self.req.name, "kind": plural(self.req.kind)} | (
            {"group": self.req.group} if self.req.group else {}
        )
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return WriteResponse(200, body, self.warnings)

    def scale(self) -> WriteResponse:
        if self.req.kind not in SCALABLE:
            raise Refused(404, "NotFound", "the server could not find the requested resource")
        current, live = self.current()
        scale = scale_object(current, self.req.group)
        if self.req.verb == "update":
            new_scale = decode(self.req)
        elif self.req.verb == "patch":
            new_scale = _patched(self.req, scale)
        else:
            raise Refused(405, "MethodNotAllowed", f"{self.req.verb} is not supported on the scale subresource")
        if not isinstance(new_scale, dict):
            raise Refused(400, "BadRequest", "the body must be a Scale object")
        _check_version(self.req, current, new_scale)
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            msg = (
                f'Scale.autoscaling "{self.req.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                "must be greater than or equal to 0"
            )
            raise Refused(
                422, "Invalid", msg, [{"reason": "FieldValueInvalid", "message": msg, "field": "spec.replicas"}]
            )
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        new.get("metadata", {}).pop("resourceVersion", None)
        resp = self.change(current, live, new, "patch")
        if resp.status == 200:
            resp.body = scale_object(resp.body, self.req.group)
        return resp


def _conflict_refusal(req: WriteRequest, found: list[tuple[str, str]]) -> Refused:
    """409 as the API server words an apply's conflicts (sigs.k8s.io/structured-merge-diff merge.Conflicts)."""
    gv = f"{req.group}/{req.version}" if req.group else req.version
    n = len(found)
    found = [(managed.manager_name(m), leaf) for m, leaf in found]
    lines = [f'conflict with "{m}" using {gv}: {managed.shown(leaf)}' for m, leaf in found]
    head = f"Apply failed with {n} conflict{'s' if n > 1 else ''}: "
    msg = head + (lines[0] if n == 1 else "\n" + "\n".join(f"- {x}" for x in lines))
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {gv}', "field": managed.shown(leaf)}
        for m, leaf in found
    ]
    return Refused(409, "Conflict", msg, causes)


def _dispatch(w: _Write) -> WriteResponse:
    req = w.req
    if req.subresource == "status":
        what = f'{resource(req)} "{req.name}"'
        msg = f"the status of {what} is not desired state: gitship's controllers write it, not the API"
        raise Refused(405, "MethodNotAllowed", msg)
    if req.subresource == "scale":
        return w.scale()
    if req.subresource:
        raise Refused(404, "NotFound", "the server could not find the requested resource")
    if req.verb == "create":
        return w.create()
    if req.verb == "delete":
        return w.delete()
    if req.verb == "update":
        current, live = w.current()
        return w.change(current, live, decode(req), "update")
    if req.verb == "patch":
        if req.content_type == "application/apply-patch+yaml":
            return w.apply()
        current, live = w.current()
        return w.change(current, live, _patched(req, current), "patch")
    raise Refused(405, "MethodNotAllowed", f"the verb {req.verb!r} is not a write")


def _invalid(req: WriteRequest, e: RevisionRejected) -> Refused:
    missing = [err.message for err in e.errors if err.message.startswith('namespaces "')]
    if missing and len(missing) == len(e.errors) and missing[0].endswith(" not found"):
        return Refused(404, "NotFound", missing[0])  # as the API server answers a create in no namespace
    # kubectl prints "field: message" per cause: the file and line go at the end of the message
    causes = [
        {"reason": "FieldValueInvalid", "message": f"{err.message} ({err.file}:{err.line})", "field": err.field}
        for err in e.errors
    ]
    where = "; ".join(str(err) for err in e.errors[:5])
    qualified = req.kind + (f".{req.group}" if req.group else "")
    return Refused(422, "Invalid", f'{qualified} "{req.name}" is invalid: {where}', causes)


def _named(req: WriteRequest) -> WriteRequest:
    """A POST's request with the name its body gives, for the answer's message and details
    (``The Deployment "bad" is invalid: ...``, as the API server names the object it refuses)."""
    if req.name or req.verb != "create" or len(req.body) > MAX_BODY:
        return req
    try:
        name = (decode(req).get("metadata") or {}).get("name")
    except (Refused, AttributeError):
        return req
    return dataclasses.replace(req, name=name) if isinstance(name, str) else req


def handle(ctx: WriteContext, req: WriteRequest) -> WriteResponse:
    """One write verb on one desired-state object, as a commit (see the module's docstring)."""
    try:
        if len(req.body) > MAX_BODY:
            # kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go limitedReadBody
            raise Refused(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
        return _dispatch(_Write(ctx, req))
    except Refused as e:
        return WriteResponse(e.code, status_body(e.code, e.reason, e.message, _named(req), e.causes))
    except RevisionRejected as e:
        r = _invalid(_named(req), e)
        return WriteResponse(r.code, status_body(r.code, r.reason, r.message, _named(req), r.causes))
    except NotFound as e:
        return WriteResponse(404, status_body(404, "NotFound", str(e), req, []))
    except (GitOpsError, GitshipError) as e:
        return WriteResponse(409, status_body(409, "Conflict", f"gitship could not commit: {e}", req, []))
