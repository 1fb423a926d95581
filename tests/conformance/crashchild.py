"""A stand-in for a gitship daemon that the adoption test kills with SIGKILL.

``python -m tests.conformance.crashchild SPEC_JSON`` builds the runtime SPEC names (with the
harness's constructor arguments), starts it, creates SPEC's pod, and once the pod is Running
and Ready prints its status as one JSON line after ``MARK``. Then it waits to be killed; it never closes the
runtime. If the pod does not get ready within the deadline it prints ``{"error": ...}`` and
exits; it exits on its own after five minutes in any case (no orphan outlives a broken test).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from tests.conformance.conftest import RUNTIMES, ready

MARK = "conformance-status: "  # the runtime may log to stdout too
READY_DEADLINE = 90.0
LIFETIME = 300.0


async def main(spec: dict[str, Any]) -> None:
    harness = RUNTIMES.get(spec["harness"]) or _mounting()[spec["harness"]]
    rt = harness.build(spec["stateDir"], spec["kwargs"])  # type: ignore[attr-defined]
    rt.set_config_objects({_key(o): o for o in spec.get("objects") or []})
    await rt.start(lambda uid: None)
    pod = spec["pod"]
    uid = pod["metadata"]["uid"]
    await rt.create_pod(pod)
    deadline = time.monotonic() + READY_DEADLINE
    while not ready(st := rt.status(uid)):
        if time.monotonic() > deadline:
            print(MARK + json.dumps({"error": "pod not ready in time", "status": st}), flush=True)
            os._exit(1)
        await asyncio.sleep(0.05)
    print(MARK + json.dumps(st), flush=True)
    await asyncio.sleep(LIFETIME)
    os._exit(0)  # like kill -9: no close, no cleanup


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    md = obj["metadata"]
    return obj["kind"], md.get("namespace") or ("" if obj["kind"] == "PersistentVolume" else "default"), md["name"]


def _mounting() -> dict[str, Any]:
    """The harnesses in which pods get volumes (the in-process one in sandbox mode)."""
    from tests.conformance.test_config import MOUNTING

    return dict(MOUNTING)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
