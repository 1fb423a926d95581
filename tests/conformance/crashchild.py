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
    rt = RUNTIMES[spec["harness"]].build(spec["stateDir"], spec["kwargs"])  # type: ignore[attr-defined]
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


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
