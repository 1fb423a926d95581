"""A Deployment's rollout as numbers and as an SVG picture (the Rollouts page).

PURE: the Deployment and its ReplicaSets in; a ``Rollout`` (each ReplicaSet's replicas, ready and
available against the bounds maxSurge and maxUnavailable give: at most desired + maxSurge pods, at
least desired - maxUnavailable available) and its SVG text out. The bounds are the controller's
own (reconciler/controllers/deployment/util.py ``fenceposts``), the status line kubectl's
(``rollout_status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from reconciler import annotation_keys as keys
from reconciler.controllers.deployment import find_new_rs, revisions, rollout_status
from reconciler.controllers.deployment.util import fenceposts, replicas_of
from reconciler.types import Obj

WIDTH, LABEL, BAR_END, ROW, TOP = 760, 170, 500, 34, 40
COLORS = {"available": "#1a7f37", "ready": "#4ac26b", "current": "#d4a72c", "want": "#57606a"}


@dataclass
class Bar:
    name: str
    revision: int
    new: bool
    want: int  # spec.replicas
    current: int  # status.replicas: pods that exist
    ready: int
    available: int
    images: str = ""


@dataclass
class Rollout:
    namespace: str
    name: str
    desired: int
    max_surge: int
    max_unavailable: int
    paused: bool
    message: str
    done: bool
    failed: bool
    bars: list[Bar] = field(default_factory=list)

    @property
    def max_total(self) -> int:
        return self.desired + self.max_surge

    @property
    def min_available(self) -> int:
        return max(0, self.desired - self.max_unavailable)

    @property
    def new(self) -> Bar | None:
        return next((b for b in self.bars if b.new), None)

    @property
    def old_pods(self) -> int:
        return sum(b.current for b in self.bars if not b.new)


def _n(st: Obj, k: str) -> int:
    return int(st.get(k) or 0)


def _images(rs: Obj) -> str:
    containers = (((rs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ", ".join(str(c.get("image")) for c in containers)


def model(dep: Obj, rss: list[Obj], old_kept: int = 3) -> Rollout:
    """The rollout of ``dep`` (its ReplicaSets among ``rss``): the new RS first, then the old ones that
    still have pods, then up to ``old_kept`` empty old ones (newest first)."""
    surge, unavailable = fenceposts(dep)
    msg, done, failed = rollout_status(dep)
    new = find_new_rs(dep, rss)
    new_uid = ((new or {}).get("metadata") or {}).get("uid")
    bars = []
    for rev, rs in reversed(revisions(dep, rss)):
        st, m = rs.get("status") or {}, rs.get("metadata") or {}
        want = int((rs.get("spec") or {}).get("replicas") or 0)
        bars.append(
            Bar(m.get("name", ""), rev, m.get("uid") == new_uid, want, _n(st, "replicas"), _n(st, "readyReplicas"),
                _n(st, "availableReplicas"), _images(rs))
        )  # fmt: skip
    bars.sort(key=lambda b: (not b.new, b.current == 0 and b.want == 0, -b.revision))
    active = [b for b in bars if b.new or b.current or b.want]
    empty = [b for b in bars if b not in active][:old_kept]
    m = dep.get("metadata") or {}
    return Rollout(
        m.get("namespace", "default"), m.get("name", ""), replicas_of(dep), surge, unavailable,
        bool((dep.get("spec") or {}).get("paused")), msg, done, failed, active + empty,
    )  # fmt: skip


def change_cause(rs: Obj) -> str:
    ann = (rs.get("metadata") or {}).get("annotations") or {}
    return str(ann.get(keys.KUBERNETES_CHANGE_CAUSE) or ann.get(keys.CHANGE_CAUSE) or "")


def _x(value: int, scale: int) -> float:
    return LABEL + (BAR_END - LABEL) * value / max(scale, 1)


def _rect(x0: float, x1: float, y: float, h: float, color: str, fill: bool) -> str:
    style = f'fill="{color}"' if fill else f'fill="none" stroke="{color}" stroke-width="1.5"'
    return f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0):.1f}" height="{h}" rx="3" {style}/>'


def _bar_row(b: Bar, y: float, scale: int) -> list[str]:
    out = [
        f'<text x="8" y="{y + 15:.0f}" class="lbl">{"new" if b.new else "old"} rev {b.revision}</text>',
        f'<text x="8" y="{y + 29:.0f}" class="sub">{escape(b.name)}</text>',
    ]
    h, x0 = 22, LABEL
    out.append(_rect(x0, _x(b.want, scale), y + 6, h, COLORS["want"], False))
    for count, key in ((b.current, "current"), (b.ready, "ready"), (b.available, "available")):
        if count:
            out.append(_rect(x0, _x(count, scale), y + 6, h, COLORS[key], True))
    if scale <= 60:  # one tick per replica while they are wide enough to see
        for i in range(1, max(b.want, b.current)):
            xi = _x(i, scale)
            out.append(f'<line x1="{xi:.1f}" y1="{y + 6}" x2="{xi:.1f}" y2="{y + 28}" class="tick"/>')
    text = f"{b.available} available · {b.ready} ready · {b.current} pods / {b.want} wanted"
    out.append(f'<text x="{BAR_END + 14}" y="{y + 22:.0f}" class="num">{text}</text>')
    return out


def svg(r: Rollout) -> str:
    """The picture: one bar per ReplicaSet (outline: wanted; amber: pods; green: ready; dark green:
    available) and two bounds across all bars: min available and max pods (desired + maxSurge)."""
    scale = max([r.max_total, r.desired] + [max(b.want, b.current) for b in r.bars]) or 1
    height = TOP + ROW * max(len(r.bars), 1) + 30
    new = r.new
    attrs = {
        "data-new-rs": new.name if new else "",
        "data-new-available": new.available if new else 0,
        "data-new-replicas": new.current if new else 0,
        "data-old-replicas": r.old_pods,
        "data-done": "true" if r.done else "false",
        "data-paused": "true" if r.paused else "false",
    }
    head = " ".join(f'{k}="{escape(str(v))}"' for k, v in attrs.items())
    title = f"Rollout of deployment {r.name}: {r.message}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rollout" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" aria-labelledby="t-{escape(r.name)}" {head}>',
        f'<title id="t-{escape(r.name)}">{escape(title)}</title>',
        f'<text x="8" y="18" class="lbl">desired {r.desired} · maxSurge {r.max_surge} · '
        f"maxUnavailable {r.max_unavailable}</text>",
    ]
    for i, b in enumerate(r.bars):
        out += _bar_row(b, TOP + i * ROW, scale)
    bottom = TOP + ROW * max(len(r.bars), 1)
    bounds = (
        (r.min_available, "min available", "bound lo", "end", -4),
        (r.max_total, "max pods", "bound hi", "start", 4),
    )
    for value, label, cls, anchor, dx in bounds:
        x = _x(value, scale)
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom + 4}" class="{cls}"/>')
        out.append(f'<text x="{x + dx:.1f}" y="{bottom + 20}" class="bl" text-anchor="{anchor}">{label} {value}</text>')
    out.append("</svg>")
    return "\n".join(out)
