"""bench/soak_load.py: each failed request of the soak is attributed to the action that explains it."""

from __future__ import annotations

import socket

from bench.soak_load import Action, Failure, _Bad, attribute, classify, summary, table


def test_failures_attributed_to_windows_pod_kills_or_nothing() -> None:
    actions = [
        Action(10.0, "kill-daemon", until=12.5),
        Action(20.0, "kill-pod", "soak-1"),
        Action(30.0, "valid", "round 3"),
        Action(40.0, "kill-engine", "down 4.0 s", until=47.0),
    ]
    fails = [
        Failure(11.0, "service", "refused", ""),
        Failure(12.6, "service", "refused", ""),  # just after the daemon's window
        Failure(22.9, "ingress", "reset", ""),
        Failure(23.1, "ingress", "reset", ""),  # past the pod kill's 3 s
        Failure(31.0, "service", "timeout", "", "soak-2"),
        Failure(46.0, "ingress", "5xx", "503"),
        Failure(5.0, "service", "empty", ""),  # before any action
    ]
    rows = attribute(fails, actions)
    causes = [(r.failure.t, r.cause) for r in rows]
    assert causes == [
        (5.0, "unexplained"),
        (11.0, "daemon kill"),
        (12.6, "unexplained"),
        (22.9, "pod kill"),
        (23.1, "unexplained"),
        (31.0, "unexplained"),
        (46.0, "engine kill"),
    ]
    near = {r.failure.t: (r.nearest.what if r.nearest else None, round(r.since, 1)) for r in rows}
    assert near[31.0] == ("valid", 1.0) and near[5.0] == (None, 0.0)
    kills = {r.failure.t: r.last_kill for r in rows}
    assert kills[23.1] == "kill-pod soak-1 3.1 s" and kills[31.0] == "kill-pod soak-1 11.0 s" and kills[5.0] == ""
    s = summary(rows, ["service", "ingress"])
    assert s["service"] == {"total": 4, "daemon kill": 1, "engine kill": 0, "pod kill": 0, "unexplained": 3}
    assert s["ingress"]["engine kill"] == 1 and s["ingress"]["unexplained"] == 1
    text = table(rows, 0.0)
    assert text.splitlines()[1].split()[:4] == ["5.00", "service", "empty", "unexplained"]  # unexplained first


def test_error_kinds() -> None:
    assert classify(ConnectionRefusedError())[0] == "refused"
    assert classify(ConnectionResetError())[0] == "reset"
    assert classify(BrokenPipeError())[0] == "reset"
    assert classify(socket.timeout())[0] == "timeout"
    assert classify(_Bad("5xx", "503")) == ("5xx", "503")
