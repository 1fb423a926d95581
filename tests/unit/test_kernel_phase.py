"""The pod kernel's phase, restart decision and conditions (runtime/kernel/phase.py), table-driven.

Decided by Kubernetes' behaviour (pkg/kubelet/kubelet_pods.go getPhase): a container
waiting after an exit counts as *stopped*, never as *succeeded*; only a container whose
current state is terminated with exit 0 is succeeded. So disagreement (a), restartPolicy
Never with a waiting container whose last exit was clean, is **Failed** (the in-process
runtime's answer; the Docker runtime used to say Succeeded).
"""

import pytest

from runtime.kernel import pod_conditions, pod_phase, pod_status, should_restart

RUN = ({"running": {"startedAt": "t"}}, {})
OK = ({"terminated": {"exitCode": 0}}, {})
ERR = ({"terminated": {"exitCode": 1}}, {})
NEW = ({"waiting": {"reason": "ContainerCreating"}}, {})
LOOP = ({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 1}})
AFTER_CLEAN = ({"waiting": {"reason": "ContainerCreating"}}, {"terminated": {"exitCode": 0}})


@pytest.mark.parametrize(
    ("policy", "containers", "phase"),
    [
        ("Always", [], "Pending"),
        ("Always", [NEW], "Pending"),
        ("Always", [NEW, RUN], "Pending"),  # one not started yet
        ("Always", [RUN], "Running"),
        ("Never", [ERR, RUN], "Running"),
        ("Always", [LOOP], "Running"),  # a crash-looping pod is Running
        ("Always", [OK], "Running"),  # every container is being restarted
        ("OnFailure", [OK], "Succeeded"),
        ("Never", [OK, OK], "Succeeded"),
        ("Never", [OK, ERR], "Failed"),
        ("OnFailure", [OK, LOOP], "Running"),  # the failed one will be restarted
        ("OnFailure", [ERR], "Running"),
        # (a): waiting after a clean exit is stopped but not succeeded (getPhase)
        ("Never", [AFTER_CLEAN], "Failed"),
        ("OnFailure", [AFTER_CLEAN], "Running"),
        ("Always", [AFTER_CLEAN], "Running"),
    ],
)
def test_pod_phase(policy, containers, phase):
    assert pod_phase(policy, containers) == phase


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 137, True),
        ("Never", 1, False),
        ("Never", 0, False),
    ],
)
def test_should_restart(policy, code, restart):
    assert should_restart(policy, code) is restart


def test_conditions_move_only_when_a_status_flips():
    conds, flipped = pod_conditions({}, ready=[("a", False)], phase="Pending", now="T1", start_time="T0")
    assert flipped
    assert conds["PodScheduled"] == {"status": "True", "lastTransitionTime": "T0"}
    assert conds["Initialized"]["lastTransitionTime"] == "T0"
    assert conds["Ready"] == {
        "status": "False",
        "lastTransitionTime": "T1",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [a]",
    }
    same, flipped = pod_conditions(conds, ready=[("a", False)], phase="Running", now="T2", start_time="T0")
    assert not flipped and same == conds
    up, flipped = pod_conditions(conds, ready=[("a", True)], phase="Running", now="T3", start_time="T0")
    assert flipped and up["Ready"] == {"status": "True", "lastTransitionTime": "T3"}
    assert up["ContainersReady"]["status"] == "True" and up["PodScheduled"]["lastTransitionTime"] == "T0"
    done, _ = pod_conditions(up, ready=[("a", False), ("b", False)], phase="Succeeded", now="T4", start_time="T0")
    assert done["Ready"]["reason"] == "PodCompleted" and done["Ready"]["message"].endswith("[a b]")


def test_pod_status_shape():
    conds, _ = pod_conditions({}, ready=[("a", True)], phase="Running", now="T1", start_time="T0")
    st = pod_status(
        phase="Running", pod_ip="10.0.0.2", host_ip="10.0.0.1", start_time="T0", conditions=conds, container_statuses=[]
    )
    assert st["podIPs"] == [{"ip": "10.0.0.2"}] and st["hostIPs"] == [{"ip": "10.0.0.1"}]
    assert [c["type"] for c in st["conditions"]] == ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
    assert "message" not in st
    assert "podIP" not in pod_status(
        phase="Pending", pod_ip=None, host_ip="h", start_time="T0", conditions={}, container_statuses=[], message="m"
    )
