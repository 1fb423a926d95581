"""Unit tests for the CLI's own printing and argument helpers (reconciler/cli/*), without a daemon."""

from __future__ import annotations

import argparse
import importlib
import time

import pytest

from reconciler.cli import build_parser, journal, rollout, up
from reconciler.cli.edit import parse_label_args


def test_every_subcommand_has_a_handler_and_help_lists_them_in_order() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == [
        "init", "up", "kubeconfig", "status", "get", "describe", "logs", "delete", "exec", "label", "create", "apply",
        "events", "diff", "history", "rollout", "set", "scale", "service", "dashboard", "plan", "validate", "approve",
    ]  # fmt: skip
    for name, p in sub.choices.items():
        assert callable(p.get_default("func")), name


def test_the_command_modules_do_not_import_the_package_itself() -> None:
    """No cycle: every command module imports common, never reconciler.cli (whose __init__ imports them)."""
    for name in ("common", "up", "get", "pods", "edit", "journal", "rollout", "service"):
        mod = importlib.import_module(f"reconciler.cli.{name}")
        with open(mod.__file__ or "", encoding="utf-8") as f:
            text = f.read()
        assert "from reconciler.cli import" not in text and "import reconciler.cli\n" not in text, name
        if name == "common":
            assert "reconciler.cli." not in text


def test_parse_label_args() -> None:
    assert parse_label_args(["a=b", "c-", "d=", "e=f=g"]) == ({"a": "b", "d": "", "e": "f=g"}, ["c"])
    with pytest.raises(SystemExit) as exc:
        parse_label_args(["nokey"])
    assert exc.value.code == 1


def test_rollout_change_cause_prefers_kubernetes_annotation() -> None:
    def rs(ann: dict | None) -> dict:
        return {"metadata": {"annotations": ann}}

    assert rollout.change_cause(rs(None)) == "<none>"
    assert rollout.change_cause(rs({"gitship.io/change-cause": "abc1234 ann: v2"})) == "abc1234 ann: v2"
    both = {"gitship.io/change-cause": "abc1234 ann: v2", "kubernetes.io/change-cause": "by hand"}
    assert rollout.change_cause(rs(both)) == "by hand"


def test_event_line_puts_time_level_event_first() -> None:
    ev = {"timestamp": "T", "level": "info", "event": "applied", "kind": "Pod", "name": "p"}
    assert journal.event_line(ev) == "T info    applied                  kind=Pod name=p"


def test_history_row_marks_reverts_and_shortens_changes() -> None:
    changes = [{"op": "update", "kind": "Deployment", "name": f"name-{i}"} for i in range(5)]
    row = journal.history_row(
        {
            "sha": "0123456789abcdef",
            "author": "ann",
            "time": 0,
            "subject": "s" * 80,
            "result": "applied",
            "revertedBy": "fedcba9876543210",
            "changes": changes,
        }
    )
    assert row[0] == "0123456"
    assert row[2] == time.strftime("%Y-%m-%d %H:%M", time.localtime(0))
    assert row[3] == "s" * 50
    assert row[4] == "applied (reverted by fedcba9)"
    assert len(row[5]) == 60 and row[5].endswith("...")
    bare = {"sha": "a", "author": "b", "time": None, "subject": None, "result": "failed"}
    assert journal.history_row(bare)[3:] == ["", "failed", "-"]


def test_status_of_a_stopped_daemon_from_the_stores_meta() -> None:
    meta = {
        "source": {"url": "/src/shop/", "branch": "main", "path": ""},
        "runtime": {"name": "docker", "engine": "unreachable", "error": "connection refused"},
        "dns": {"address": "127.96.0.10:53"},
        "lastAppliedRevision": "abc",
        "sourceError": "fetch failed",
    }
    out = up.status_object(meta, None)
    assert out["metadata"]["name"] == "shop"
    assert out["spec"] == {"url": "/src/shop/", "branch": "main", "path": "./", "runtime": "docker"}
    st = out["status"]
    assert st["daemon"] == "stopped" and st["dnsAddress"] == "127.96.0.10:53"
    assert st["conditions"] == [{"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": ""}]
    assert up.status_lines(out) == [
        "Source:        /src/shop/ (branch main, path ./)",
        "Daemon:        stopped",
        "Runtime:       docker (engine unreachable, retrying: connection refused)",
        "DNS:           127.96.0.10:53",
        "Applied:       abc",
        "Attempted:     <none>",
        "Ready:         Unknown (Progressing) ",
        "Source error:  fetch failed",
    ]


def test_status_of_a_running_daemon_prefers_what_it_says() -> None:
    live = {"runtime": {"name": "docker", "engineVersion": "27.1", "apiVersion": "1.46"}, "dns": "10.97.0.10:53"}
    out = up.status_object({"runtime": {"name": "old"}, "dns": {"address": "x"}}, live)
    assert out["metadata"]["name"] == "repository"
    lines = up.status_lines(out)
    assert lines[1] == "Daemon:        running"
    assert lines[2] == "Runtime:       docker (Docker Engine 27.1, API 1.46)"
    assert lines[3] == "DNS:           10.97.0.10:53"
    assert not any(line.startswith("Source error") for line in lines)


def test_status_names_the_isolation_and_the_data_plane_with_the_reason_for_a_fallback() -> None:
    sandboxed = {
        "runtime": {"name": "inprocess", "isolation": "sandbox", "bridge": "gs0123456789", "podCIDR": "10.244.0.0/16"},
        "dataPlane": {"dataPlane": "nftables", "table": "gitship_0123456789"},
    }
    lines = up.status_lines(up.status_object(sandboxed, None))
    assert any(line.startswith("Isolation:") and "gs0123456789" in line and "10.244.0.0/16" in line for line in lines)
    assert any(line.startswith("Data plane:    nftables") and "gitship_0123456789" in line for line in lines)

    shared = {
        "runtime": {
            "name": "inprocess",
            "isolation": "host",
            "isolationReason": "pods share the host's network: not running as root",
        },
        "dataPlane": {"dataPlane": "proxy", "reason": "not running as root"},
    }
    lines = up.status_lines(up.status_object(shared, None))
    assert "Isolation:     pods share the host's network: not running as root" in lines
    assert "Data plane:    gitship's userspace proxy: not running as root" in lines
