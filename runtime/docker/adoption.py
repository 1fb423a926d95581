"""The Docker runtime's adoption: a restarted gitship rebuilds a pod from its containers' labels alone."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import structlog

from runtime.kernel import rfc3339
from runtime.kernel.phase import terminated

from . import inits
from .common import LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_SPEC, SANDBOX, DContainer, DPod, docker_time
from .containers import DockerContainers

log = structlog.get_logger("runtime.docker")


class DockerAdoption(DockerContainers):
    """Adopts the pods a previous gitship left running (``start`` after kill -9)."""

    async def _adopt(self, uid: str, conts: list[dict[str, Any]]) -> None:
        spec_json = None
        for x in sorted(conts, key=lambda x: (x.get("Labels") or {}).get(LABEL_CONTAINER) != SANDBOX):
            spec_json = (x.get("Labels") or {}).get(LABEL_SPEC)
            if spec_json:
                break
        try:
            pod = json.loads(spec_json or "")
        except ValueError:
            log.warning("pod_spec_unreadable", uid=uid, action="removing its containers")
            await self._remove_leftovers(uid)
            return
        p = self._new_pod(pod)
        sandbox = await self._adopt_sandbox(p, conts)
        self._pods[uid] = p
        for c in p.containers.values():
            mine = sorted(
                (x for x in conts if (x.get("Labels") or {}).get(LABEL_CONTAINER) == c.name), key=_attempt, reverse=True
            )
            await self._adopt_container(p, c, mine, sandbox is not None)
        # init containers run once per sandbox: kept when it is (their exited instances say so)
        p.initialized = p.initialized or (sandbox is not None and inits.adopted_initialized(p))
        log.info("pod_adopted", namespace=p.namespace, pod=p.name, uid=uid)
        self._notify(p)

    async def _adopt_sandbox(self, p: DPod, conts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Keep the newest running sandbox (its IP, its start time), remove the others."""
        sandboxes = sorted(
            (x for x in conts if (x.get("Labels") or {}).get(LABEL_CONTAINER) == SANDBOX),
            key=lambda x: (x.get("State") == "running", _attempt(x)),
            reverse=True,
        )
        sandbox = sandboxes[0] if sandboxes and sandboxes[0].get("State") == "running" else None
        for x in sandboxes:
            if x is not sandbox:
                await self._remove_quietly(x["Id"])
        if sandboxes:
            p.sandbox_attempt = _attempt(sandboxes[0]) + (0 if sandbox else 1)
        if sandbox is not None:
            info = await self._call(self._api.inspect_container, sandbox["Id"])
            nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
            p.sandbox_id = sandbox["Id"]
            p.pod_ip = (nets.get(self.network) or {}).get("IPAddress") or next(
                (n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None
            )
            p.start_time = docker_time((info.get("State") or {}).get("StartedAt")) or p.start_time
            p.conditions = {}
            self._update_conditions(p, p.start_time)
        return sandbox

    async def _adopt_container(self, p: DPod, c: DContainer, mine: list[dict[str, Any]], have_sandbox: bool) -> None:
        """``mine``: the engine's instances of the container, newest first; keep two (current, previous)."""
        api = self._api
        for x in mine[2:]:
            await self._remove_quietly(x["Id"])
        if not have_sandbox:
            for x in mine:
                await self._remove_quietly(x["Id"])
            if mine:
                c.attempt = _attempt(mine[0])
                c.exited_cid = "gone"  # recreating it counts as a restart
            c.want_start = True
            return
        if not mine:
            c.want_start = True
            return
        cur = mine[0]
        c.attempt = _attempt(cur)
        c.cid = cur["Id"]
        if len(mine) > 1:
            c.previous_cid = mine[1]["Id"]
            with contextlib.suppress(Exception):
                prev = (await self._call(api.inspect_container, mine[1]["Id"])).get("State") or {}
                term = terminated(
                    int(prev.get("ExitCode", 0)),
                    docker_time(prev.get("StartedAt")),
                    docker_time(prev.get("FinishedAt")) or rfc3339(time.time()),
                    oom=bool(prev.get("OOMKilled")),
                )
                term["containerID"] = f"docker://{mine[1]['Id']}"
                c.last_state = {"terminated": term}
        info = await self._call(api.inspect_container, cur["Id"])
        state = info.get("State") or {}
        c.image_id = info.get("Image")
        c.want_start = False
        if state.get("Running"):
            self._mark_running(p, c, docker_time(state.get("StartedAt")) or rfc3339(time.time()))
        else:
            c.exited_cid = cur["Id"]
            self._on_exit(
                p,
                c,
                int(state.get("ExitCode", 0)),
                docker_time(state.get("StartedAt")),
                docker_time(state.get("FinishedAt")),
                oom=bool(state.get("OOMKilled")),
            )


def _attempt(x: dict[str, Any]) -> int:
    """The ``gitship.attempt`` label of a listed container (its restart count)."""
    with contextlib.suppress(ValueError):
        return int((x.get("Labels") or {}).get(LABEL_ATTEMPT, "0"))
    return 0
