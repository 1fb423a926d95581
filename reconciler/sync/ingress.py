"""The Ingress step of a pass: the built-in IngressClass, each served Ingress's status and events. Pure.

The routing table itself is built by the executor's ingress step (reconciler/ingressnet.py) from the
live objects this pass leaves, in the same step as the Service proxy table, before the stops.
"""

from __future__ import annotations

from ..cluster import key_of
from ..controllers import ingress as ingctl
from .work import Work


def sync_ingresses(w: Work) -> None:
    """Make the ``gitship`` IngressClass with the first Ingress when no class of that name exists; give each Ingress
    gitship serves its ``status.loadBalancer`` (the node's address) and, when it is new or its spec
    changed, a ``Sync`` event and a Warning for each backend or Secret it cannot use."""
    c = w.cluster
    ingresses = c.of_kind("Ingress")
    if not ingresses:
        return  # the common case costs one scan; the built-in class comes with the first Ingress
    if c.get((ingctl.ICLASS, "", ingctl.BUILTIN_CLASS)) is None:
        c.put(ingctl.builtin_class(w.inp.ids.new_uid(), w.now))
    classes = c.of_kind(ingctl.ICLASS)
    synced = []
    for ing in ingresses:
        if not ingctl.ours(ing, classes):
            continue
        before = w.inp.live.get(key_of(ing))
        status = ingctl.ingress_status(w.inp.settings.load_balancer_ip)
        if ing.get("status") != status:
            c.put({**ing, "status": status})
        if before is None or before["metadata"].get("generation") != ing["metadata"].get("generation"):
            w.controller_event(ingctl.sync_event(ing))
            synced.append(ing)
    if synced:
        table = ingctl.build_table(synced, classes, c.of_kind("Service"), c.of_kind("Endpoints"), c.of_kind("Secret"))
        for key, reason, message in table.problems:
            w.controller_event(ingctl.problem_event(key, reason, message))
