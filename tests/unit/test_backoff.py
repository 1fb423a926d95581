"""Pure helpers of the pod kernel (runtime/kernel): crash back-off, Go durations, pod phase, $(VAR) expansion."""

from runtime.kernel import crash_backoff, expand, go_duration, pod_phase


def test_backoff_follows_the_kubelet():
    # docs/kubernetes.md §7.3: first restart immediate, then 10s doubling to the 300s cap
    assert [crash_backoff(n, 10, 300) for n in range(1, 10)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert crash_backoff(0, 10, 300) == 0
    assert [crash_backoff(n, 0.2, 1.0) for n in range(1, 6)] == [0, 0.2, 0.4, 0.8, 1.0]


def test_go_duration():
    assert go_duration(10) == "10s"
    assert go_duration(300) == "5m0s"
    assert go_duration(0.2) == "200ms"
    assert go_duration(1.6) == "1.6s"
    assert go_duration(3600) == "1h0m0s"
    assert go_duration(0) == "0s"


def _run(code=None):
    return ({"running": {"startedAt": "x"}}, {})


def _term(code):
    return ({"terminated": {"exitCode": code}}, {})


def _waiting(after_crash):
    return ({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 1}} if after_crash else {})


def test_pod_phase():
    assert pod_phase("Always", [_run()]) == "Running"
    assert pod_phase("Always", [_waiting(False)]) == "Pending"
    assert pod_phase("Always", [_waiting(False), _run()]) == "Pending"
    assert pod_phase("Always", [_waiting(True)]) == "Running"  # crash-looping pod is Running
    assert pod_phase("Always", [_term(0)]) == "Running"
    assert pod_phase("OnFailure", [_term(0)]) == "Succeeded"
    assert pod_phase("Never", [_term(0), _term(0)]) == "Succeeded"
    assert pod_phase("Never", [_term(0), _term(1)]) == "Failed"
    assert pod_phase("OnFailure", [_term(0), _waiting(True)]) == "Running"
    assert pod_phase("Never", [_term(1), _run()]) == "Running"
    assert pod_phase("Always", []) == "Pending"


def test_expand():
    m = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", m) == "1-two"
    assert expand("$(C)", m) == "$(C)"
    assert expand("$$(A)", m) == "$(A)"
    assert expand("cost $5 $(A", m) == "cost $5 $(A"
