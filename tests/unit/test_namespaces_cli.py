"""The CLI's namespace rules: -n / -A parsing, exec's options before --, create/apply -f's namespace,
kubectl's messages, and the `get ns` / `describe ns` printers."""

from __future__ import annotations

import argparse

import pytest

from reconciler import printers
from reconciler.cli import build_parser
from reconciler.cli.common import kind_of
from reconciler.cli.namespaces import (
    mismatch_message,
    namespaced_file,
    not_found_message,
    options_before_command,
    settle_namespace,
    with_namespace,
)
from reconciler.printers import TableOptions, table_rows

FILE = """\
# the app
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg  # a comment kept
data: {a: b}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: disk}
spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /tmp/x}}
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: team-a
spec: {containers: [{name: c, image: x}]}
"""


def parsed(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    options_before_command(args)
    settle_namespace(args)
    return args


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "pods"],
        ["describe", "pod", "x"],
        ["logs", "x"],
        ["delete", "pod", "x"],
        ["label", "deploy", "web", "a=b"],
        ["scale", "deploy", "web", "--replicas", "2"],
        ["set", "image", "deploy", "web", "c=x:2"],
        ["rollout", "status", "deploy", "web"],
        ["events"],
        ["apply", "-f", "x.yaml"],
    ],
)
def test_every_verb_takes_n_and_defaults_to_default(argv: list[str]) -> None:
    plain = parsed(*argv)
    assert plain.namespace == "default" and plain.namespace_given is False
    for flag in (["-n", "team-a"], ["--namespace", "team-a"], ["--namespace=team-a"]):
        args = parsed(*argv, *flag)
        assert args.namespace == "team-a" and args.namespace_given is True


@pytest.mark.parametrize("argv", [["get", "pods"], ["describe", "pods"], ["events"], ["get", "pods", "-w"]])
def test_all_namespaces_where_kubectl_has_it(argv: list[str]) -> None:
    assert parsed(*argv, "-A").all_namespaces and parsed(*argv, "--all-namespaces").all_namespaces
    assert not parsed(*argv).all_namespaces


def test_exec_options_before_the_command() -> None:
    args = parsed("exec", "web-1", "-n", "team-a", "-c", "side", "--", "ls", "-n", "x")
    assert (args.pod, args.namespace, args.container, args.command) == ("web-1", "team-a", "side", ["ls", "-n", "x"])
    args = parsed("exec", "-n", "team-a", "web-1", "--", "env")
    assert (args.namespace, args.command) == ("team-a", ["env"])
    args = parsed("exec", "web-1", "--namespace=team-b", "--", "env")
    assert (args.namespace, args.command, args.container) == ("team-b", ["env"], None)
    with pytest.raises(SystemExit):
        parsed("exec", "web-1", "--bogus", "--", "env")


def test_ns_is_the_namespace_kind() -> None:
    assert kind_of("ns") == kind_of("namespace") == kind_of("namespaces") == "Namespace"


def test_create_apply_writes_the_namespace_of_n_into_objects_without_one() -> None:
    out = with_namespace(FILE, "team-a", True)
    assert "  name: cfg  # a comment kept\n  namespace: team-a\n" in out
    assert "metadata: {name: disk}\n" in out  # cluster-scoped: no namespace
    assert out.count("namespace: team-a") == 2
    assert with_namespace(FILE, "default", False) == FILE  # no -n: the file as written


def test_create_apply_refuses_a_namespace_mismatch() -> None:
    with pytest.raises(ValueError) as e:
        with_namespace(FILE, "team-b", True)
    assert str(e.value) == mismatch_message("team-a", "team-b")
    assert "You must pass '--namespace=team-a' to perform this operation." in str(e.value)
    args = argparse.Namespace(namespace="team-b", namespace_given=True)
    with pytest.raises(SystemExit):
        namespaced_file(FILE.encode(), args, encrypted=False)
    assert namespaced_file(b"sops: {}\n", args, encrypted=True) == b"sops: {}\n"


def test_not_found_as_kubectl_says_it() -> None:
    assert not_found_message("pods", "x") == 'Error from server (NotFound): pods "x" not found'


# -- printers -------------------------------------------------------------------------------------------

NS = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "team-a",
        "creationTimestamp": "2026-11-25T20:00:00Z",
        "labels": {"kubernetes.io/metadata.name": "team-a"},
    },
    "spec": {"finalizers": ["kubernetes"]},
    "status": {"phase": "Active"},
}


def test_get_namespaces_columns() -> None:
    from reconciler.controllers.podutil import from_rfc3339

    now = from_rfc3339("2026-11-25T20:05:00Z")
    headers, rows = table_rows("Namespace", [NS], now, TableOptions(all_namespaces=True))
    assert headers == ["NAME", "STATUS", "AGE"] and rows == [["team-a", "Active", "5m"]]  # no NAMESPACE column


def test_describe_a_terminating_namespace() -> None:
    cond = {
        "type": "NamespaceContentRemaining",
        "status": "True",
        "lastTransitionTime": "2026-11-25T20:01:00Z",
        "reason": "SomeResourcesRemain",
        "message": "Some resources are remaining: pods. has 2 resource instances",
    }
    ns = {**NS, "status": {"phase": "Terminating", "conditions": [cond]}}
    page = printers.describe(ns, [], 0.0)
    lines = page.splitlines()
    assert "Namespace:" not in page and "Status:         Terminating" in lines
    assert "Labels:         kubernetes.io/metadata.name=team-a" in lines
    header = next(line for line in lines if line.strip().startswith("Type"))
    assert header.split() == ["Type", "Status", "LastTransitionTime", "Reason", "Message"]
    assert any("SomeResourcesRemain" in line and "pods. has 2 resource instances" in line for line in lines)
