"""Container resources in pod sandboxes (root only): the cgroup wraps the container's process, which
still enters the pod's namespaces with nsenter; the sandbox's holder is in none of the pod's cgroups;
an OOM kill inside a sandbox is reported as OOMKilled. The network is the test's own (test_sandbox's
``net`` fixture, which removes all it made)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import async_wait_for as wait_for
from tests.integration.test_sandbox import app, container_pid, net, netns, ready, recorded_sandbox  # noqa: F401

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="pod sandboxes and cgroups need root"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("unshare", "nsenter", "ip", "tail")),
        reason="pod sandboxes need unshare, nsenter and ip; the greedy container runs tail",
    ),
]


def test_limits_in_a_sandbox(net):  # noqa: F811
    import asyncio

    async def main():
        rt = net.runtime()
        res = rt.info()["resources"]
        if "memory" not in res["enforced"]:
            pytest.skip(f"memory limits are not enforced here: {res.get('notEnforced')}")
        await rt.start(lambda uid: None)
        try:
            web = net.pod("web", [app(resources={"limits": {"memory": "128Mi", "cpu": "500m"}})])
            greedy = net.pod(
                "greedy",
                [
                    {
                        "name": "app",
                        "image": "x",
                        "command": ["tail", "/dev/zero"],
                        "resources": {"limits": {"memory": "32Mi"}},
                    }
                ],
                restartPolicy="Never",
            )
            for p in (web, greedy):
                await rt.create_pod(p)
            uid, guid = web["metadata"]["uid"], greedy["metadata"]["uid"]
            await wait_for(lambda: ready(rt, uid), 30, what="the web pod ready")
            pid = container_pid(rt, uid)
            holder = recorded_sandbox(net.state(), uid).holder.pid
            assert netns(pid) == netns(holder)  # nsenter still put it in the pod's network
            with open(f"/proc/{pid}/cgroup") as f:
                assert uid in f.read()  # and the wrapper in its cgroup
            with open(f"/proc/{holder}/cgroup") as f:
                assert uid not in f.read()  # the holder is not in the container's cgroup
            st = await wait_for(
                lambda: (s := rt.status(guid)) and s["phase"] == "Failed" and s, 60, what="the greedy pod Failed"
            )
            term = st["containerStatuses"][0]["state"]["terminated"]
            assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
            assert st["qosClass"] == "Burstable" and rt.status(uid)["qosClass"] == "Guaranteed"
        finally:
            await rt.close(stop_pods=True)

    asyncio.run(main())
