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
