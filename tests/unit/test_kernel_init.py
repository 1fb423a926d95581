"""The pod kernel's init container and lifecycle hook rules (runtime/kernel/initc.py, hooks.py),
the shared hook runner (runtime/hooks.py) against a local HTTP server, and kubectl's STATUS,
READY and RESTARTS columns with init containers (reconciler/printers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler import printers
from runtime.hooks import run_handler
from runtime.kernel import pod_conditions
from runtime.kernel.hooks import grace_after_pre_stop, handler_kind, hook, pod_ref
from runtime.kernel.initc import (
    InitView,
    complete,
    container_restart_policy,
    init_failed,
    initialized_condition,
    next_init,
    phase,
)

DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}
FAILED = {"terminated": {"exitCode": 3, "reason": "Error"}}
RUNNING = {"running": {"startedAt": "t"}}
INIT = {"waiting": {"reason": "PodInitializing"}}
LOOP = {"waiting": {"reason": "CrashLoopBackOff"}}


def v(name: str, state: dict, last: dict | None = None, sidecar: bool = False, started: bool = False) -> InitView:
    return InitView(name, sidecar, state, last or {}, started)


# ----------------------------------------------------------------------------- kernel: init containers


def test_restart_policy_of_init_containers() -> None:
    assert container_restart_policy("Always", {}, init=True) == "OnFailure"
    assert container_restart_policy("OnFailure", {}, init=True) == "OnFailure"
    assert container_restart_policy("Never", {}, init=True) == "Never"
    assert container_restart_policy("Never", {"restartPolicy": "Always"}, init=True) == "Always"  # sidecar
    assert container_restart_policy("Never", {}, init=False) == "Never"


@pytest.mark.parametrize(
    ("views", "want"),
    [
        ([], None),
        ([v("a", INIT), v("b", INIT)], 0),
        ([v("a", RUNNING), v("b", INIT)], 0),
        ([v("a", DONE), v("b", INIT)], 1),
        ([v("a", DONE), v("b", LOOP, {"terminated": {"exitCode": 1}})], 1),
        ([v("a", DONE), v("b", DONE)], None),
        ([v("s", RUNNING, sidecar=True, started=False), v("b", INIT)], 0),  # sidecar not started yet
        ([v("s", RUNNING, sidecar=True, started=True), v("b", INIT)], 1),
        ([v("s", LOOP, sidecar=True), v("b", INIT)], 0),
    ],
)
def test_next_init(views: list[InitView], want: int | None) -> None:
    assert next_init(views) == want


def test_complete_and_failed() -> None:
    assert complete(v("a", DONE)) and not complete(v("a", FAILED)) and not complete(v("a", RUNNING))
    assert init_failed("Never", [v("a", FAILED)])
    assert not init_failed("OnFailure", [v("a", FAILED)])
    assert not init_failed("Never", [v("a", LOOP, {"terminated": {"exitCode": 1}})])  # being restarted
    assert not init_failed("Never", [v("a", DONE)])


def test_initialized_condition() -> None:
    assert initialized_condition([], False) == ("True", None, None)
    assert initialized_condition([v("a", DONE), v("b", RUNNING)], False) == (
        "False",
        "ContainersNotInitialized",
        "containers with incomplete status: [b]",
    )
    assert initialized_condition([v("a", DONE)], False)[0] == "True"
    assert initialized_condition([v("a", FAILED)], True)[0] == "True"  # the latch: an app container ran


def test_pod_conditions_take_the_initialized_condition() -> None:
    cond, _ = pod_conditions(
        {},
        ready=[("app", False)],
        phase="Pending",
        now="n",
        start_time="s",
        initialized=("False", "ContainersNotInitialized", "containers with incomplete status: [a]"),
    )
    assert cond["Initialized"] == {
        "status": "False",
        "lastTransitionTime": "s",
        "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [a]",
    }
    cond2, flipped = pod_conditions(cond, ready=[("app", True)], phase="Running", now="n2", start_time="s")
    assert flipped and cond2["Initialized"]["status"] == "True" and cond2["Initialized"]["lastTransitionTime"] == "n2"


APP_WAIT = [(INIT, {})]
APP_RUN = [(RUNNING, {})]


@pytest.mark.parametrize(
    ("policy", "views", "apps", "initialized", "want"),
    [
        ("Always", [v("a", RUNNING)], APP_WAIT, False, "Pending"),
        ("OnFailure", [v("a", LOOP, {"terminated": {"exitCode": 1}})], APP_WAIT, False, "Pending"),
        ("Never", [v("a", FAILED)], APP_WAIT, False, "Failed"),
        ("Always", [v("a", DONE)], APP_RUN, True, "Running"),
        ("Never", [v("a", DONE)], [(DONE, {})], True, "Succeeded"),
        ("Never", [v("s", RUNNING, sidecar=True, started=True)], [(DONE, {})], True, "Running"),
        ("Always", [], APP_RUN, True, "Running"),
    ],
)
def test_phase_with_init_containers(
    policy: str, views: list[InitView], apps: list[Any], initialized: bool, want: str
) -> None:
    assert phase(policy, views, apps, initialized) == want


# ----------------------------------------------------------------------------- kernel: hooks


def test_hook_rules() -> None:
    spec = {"name": "c", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}, "postStart": {}}}
    assert hook(spec, "preStop") == {"sleep": {"seconds": 5}}
    assert hook(spec, "postStart") is None and hook({}, "preStop") is None
    assert handler_kind({"httpGet": {"port": 80}}) == "httpGet" and handler_kind({}) is None
    assert grace_after_pre_stop(30, 10) == 20
    assert grace_after_pre_stop(5, 5) == 2  # at least 2 s for the stop
    assert pod_ref("web", "default", "u1") == "web_default(u1)"


# ----------------------------------------------------------------------------- runtime/hooks.py


async def _serve(status: int, seen: list[bytes]) -> tuple[asyncio.base_events.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _exec_never(argv: list[str]) -> Any:
    raise AssertionError("no exec expected")


def test_http_hook_goes_to_the_pod_ip_with_path_named_port_and_headers_any_status_is_success() -> None:
    async def main() -> None:
        seen: list[bytes] = []
        server, port = await _serve(500, seen)
        try:
            container = {"name": "web", "ports": [{"name": "http", "containerPort": port}]}
            handler = {"httpGet": {"path": "/drain", "port": "http", "httpHeaders": [{"name": "X-Hook", "value": "1"}]}}
            msg = await run_handler(
                handler, container_spec=container, pod_ip="127.0.0.1", pod="web_default(u)", exec_run=_exec_never
            )
            assert msg is None
            req = seen[0].decode()
            assert req.startswith("GET /drain HTTP/1.1") and "X-Hook: 1" in req
        finally:
            server.close()
            await server.wait_closed()
        # nothing listens any more: the hook fails with the kubelet's message
        msg = await run_handler(
            handler, container_spec=container, pod_ip="127.0.0.1", pod="web_default(u)", exec_run=_exec_never
        )
        assert msg is not None and msg.startswith(
            'HTTP lifecycle hook (/drain) for Container "web" in Pod "web_default(u)"'
        )

    asyncio.run(main())


def test_exec_and_sleep_hooks() -> None:
    async def main() -> None:
        async def fails(argv: list[str]) -> tuple[int, str]:
            return 3, "no luck\n"

        async def ok(argv: list[str]) -> tuple[int, str]:
            return 0, ""

        h = {"exec": {"command": ["sh", "-c", "exit 3"]}}
        msg = await run_handler(h, container_spec={"name": "c"}, pod_ip="", pod="p_ns(u)", exec_run=fails)
        assert msg is not None and "Exec lifecycle hook ([sh -c exit 3])" in msg and "no luck" in msg
        assert await run_handler(h, container_spec={"name": "c"}, pod_ip="", pod="p", exec_run=ok) is None
        t = asyncio.get_running_loop().time()
        sleep = {"sleep": {"seconds": 0.1}}
        assert await run_handler(sleep, container_spec={"name": "c"}, pod_ip="", pod="p", exec_run=ok) is None
        assert asyncio.get_running_loop().time() - t >= 0.09

    asyncio.run(main())


# ----------------------------------------------------------------------------- printers


def _pod(init: list[dict], apps: list[dict], conds: dict | None = None, sidecars: tuple[str, ...] = ()) -> dict:
    return {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [
                {"name": s["name"], **({"restartPolicy": "Always"} if s["name"] in sidecars else {})} for s in init
            ],
            "containers": [{"name": a["name"]} for a in apps],
        },
        "status": {
            "phase": "Pending",
            "initContainerStatuses": init,
            "containerStatuses": apps,
            "conditions": [{"type": k, "status": s} for k, s in (conds or {}).items()],
        },
    }


def cs(name: str, state: dict, restarts: int = 0, ready: bool = False, started: bool = False) -> dict:
    return {"name": name, "state": state, "restartCount": restarts, "ready": ready, "started": started}


APP = cs("app", INIT)


@pytest.mark.parametrize(
    ("init", "want"),
    [
        ([cs("a", INIT), cs("b", INIT)], "Init:0/2"),
        ([cs("a", RUNNING), cs("b", INIT)], "Init:0/2"),
        ([cs("a", DONE), cs("b", RUNNING)], "Init:1/2"),
        ([cs("a", DONE), cs("b", {"waiting": {"reason": "CrashLoopBackOff"}})], "Init:CrashLoopBackOff"),
        ([cs("a", DONE), cs("b", FAILED)], "Init:Error"),
        ([cs("a", {"terminated": {"exitCode": 4}})], "Init:ExitCode:4"),
        ([cs("a", {"terminated": {"exitCode": 137, "signal": 9}})], "Init:Signal:9"),
        ([cs("a", {"waiting": {"reason": "ErrImagePull"}})], "Init:ErrImagePull"),
    ],
)
def test_status_column_while_initializing(init: list[dict], want: str) -> None:
    assert printers.pod_status(_pod(init, [APP], {"Initialized": "False"})) == want


def test_status_column_after_initializing() -> None:
    pod = _pod([cs("a", DONE)], [APP], {"Initialized": "True"})
    assert printers.pod_status(pod) == "PodInitializing"
    pod = _pod([cs("a", DONE)], [cs("app", RUNNING, ready=True)], {"Initialized": "True"})
    pod["status"]["phase"] = "Running"
    assert printers.pod_status(pod) == "Running"


def test_restarts_and_ready_count_as_kubectl() -> None:
    # initializing: the init containers' restarts
    pod = _pod([cs("a", LOOP, restarts=4)], [cs("app", INIT, restarts=0)], {"Initialized": "False"})
    assert printers.pod_restarts(pod) == 4 and printers.pod_ready(pod) == "0/1"
    # initialized: the app containers' (and the sidecars')
    pod = _pod(
        [cs("a", DONE, restarts=2), cs("s", RUNNING, restarts=1, ready=True, started=True)],
        [cs("app", RUNNING, restarts=3, ready=True)],
        {"Initialized": "True"},
        sidecars=("s",),
    )
    assert printers.pod_restarts(pod) == 4
    assert printers.pod_ready(pod) == "2/2"
    pod["status"]["phase"] = "Running"
    assert printers.pod_status(pod) == "Running"
