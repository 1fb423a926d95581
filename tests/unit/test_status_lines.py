"""`gitship status`'s resource line, from the runtime's info()["resources"]."""

from reconciler.cli.up import _resource_lines


def test_enforced_controllers_are_named():
    (line,) = _resource_lines({"cgroup": "v1", "enforced": ["cpu", "memory"]})
    assert "cgroup v1" in line and "cpu, memory" in line and "not enforced" not in line


def test_each_missing_controller_says_why():
    (line,) = _resource_lines({"cgroup": "v2", "enforced": ["cpu"], "notEnforced": {"memory": "not writable"}})
    assert "memory limits not enforced: not writable" in line and "(cpu)" in line


def test_nothing_enforced_is_said_and_docker_says_nothing():
    (line,) = _resource_lines({"cgroup": None, "enforced": []})
    assert "not enforced" in line
    assert _resource_lines(None) == []


def test_endpoint_urls_only_while_the_daemon_runs():
    from reconciler.cli.endpoints import endpoint_lines, endpoint_status

    meta = {
        "web": {"url": "http://127.0.0.1:7080"},
        "metrics": {"address": "127.0.0.1:9465"},
        "webhook": {"address": "::1:9999"},
    }
    st = endpoint_status(meta, running=True)
    assert st == {
        "webURL": "http://127.0.0.1:7080",
        "metricsURL": "http://127.0.0.1:9465/metrics",
        "webhookURL": "http://[::1]:9999/",
    }
    assert endpoint_lines(st) == [
        "Web:           http://127.0.0.1:7080",
        "Metrics:       http://127.0.0.1:9465/metrics",
        "Webhooks:      http://[::1]:9999/",
    ]
    stopped = endpoint_status(meta, running=False)
    assert set(stopped.values()) == {None} and endpoint_lines(stopped) == []


def test_an_endpoint_turned_off_has_no_line():
    from reconciler.cli.endpoints import endpoint_lines, endpoint_status

    st = endpoint_status({"web": None, "metrics": {"address": "127.0.0.1:9465"}, "webhook": None}, running=True)
    assert st["webhookURL"] is None and st["webURL"] is None
    assert [line.split()[0] for line in endpoint_lines(st)] == ["Metrics:"]
