"""Safe pruning's decision over plain data (reconciler/prune.py), with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.manifests.load import parse_repo_config
from reconciler.errors import ManifestError
from reconciler.prune import (
    DEFAULT_THRESHOLD,
    allows_prune,
    decide,
    effective_threshold,
    keep_disabled,
    listed,
    parse_threshold,
    would_hold,
)


def key(i: int) -> tuple[str, str, str]:
    return ("ConfigMap", "default", f"c{i}")


def cm(i: int, prune: str | None = None) -> dict:
    meta: dict = {"name": f"c{i}", "namespace": "default"}
    if prune is not None:
        meta["annotations"] = {"gitship.io/prune": prune}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def test_defaults_hold_all_or_more_than_half():
    assert would_hold(4, 4, DEFAULT_THRESHOLD)  # all of them
    assert would_hold(1, 1, DEFAULT_THRESHOLD)
    assert would_hold(5, 3, DEFAULT_THRESHOLD)  # more than half
    assert not would_hold(4, 2, DEFAULT_THRESHOLD)  # exactly half
    assert not would_hold(0, 0, DEFAULT_THRESHOLD)  # nothing applied yet
    assert not would_hold(10, 0, DEFAULT_THRESHOLD)
    assert would_hold(3, 3, 100.0) and not would_hold(3, 2, 100.0)  # 100: only "all"
    assert not would_hold(3, 3, None)  # off


@given(live=st.integers(0, 500), deleting=st.integers(0, 500), threshold=st.floats(0, 100))
def test_hold_rule_properties(live: int, deleting: int, threshold: float):
    deleting = min(deleting, live)
    held = would_hold(live, deleting, threshold)
    if deleting == 0 or live == 0:
        assert not held
    elif deleting == live:
        assert held  # deleting everything is always held (unless off)
    else:
        assert held == (deleting / live * 100 > threshold + 1e-9) or abs(deleting / live * 100 - threshold) < 1e-6
    # monotonic: deleting more never un-holds
    if held and deleting < live:
        assert would_hold(live, deleting + 1, threshold)
    assert not would_hold(live, deleting, None)


@given(
    applied=st.sets(st.integers(0, 40), max_size=30),
    desired=st.sets(st.integers(0, 40), max_size=30),
    disabled=st.sets(st.integers(0, 40), max_size=10),
)
def test_keep_and_decide_properties(applied: set[int], desired: set[int], disabled: set[int]):
    app = {key(i): cm(i, "disabled" if i in disabled else None) for i in applied}
    des = {key(i): cm(i) for i in desired}
    kept = keep_disabled(app, des)
    # kept: applied, gone from git, annotated; carried over as the same object
    assert set(kept) == {key(i) for i in applied - desired if i in disabled}
    assert all(des[k] is app[k] for k in kept)
    v = decide(app.keys(), des.keys(), DEFAULT_THRESHOLD, kept=kept)
    assert set(v.deletes) == {key(i) for i in applied - desired - disabled}
    assert not set(v.deletes) & set(kept)
    assert v.live == len(applied)
    assert v.held == would_hold(len(applied), len(v.deletes), DEFAULT_THRESHOLD)
    allowed = decide(app.keys(), des.keys(), DEFAULT_THRESHOLD, "approval", kept)
    assert not allowed.held and (allowed.allowed_by == "approval") == v.over


def test_held_message_names_the_first_objects_and_counts_the_rest():
    applied = [key(i) for i in range(15)]
    v = decide(applied, [], 50.0)
    assert v.held
    msg = v.message("abc1234")
    assert msg.startswith("revision abc1234 would delete 15 of 15 objects (all of them): configmap/c0, ")
    assert "(and 5 more)" in msg and "gitship approve abc1234" in msg and "Gitship-Allow-Prune: true" in msg
    v = decide(applied, applied[:5], 50.0)
    assert "10 of 15 objects (more than 50%)" in v.message("abc1234")
    assert listed([("Deployment", "team-a", "web")]) == "deployment/team-a/web"


def test_the_trailer_is_read_from_the_last_paragraph():
    assert allows_prune("drop everything\n\nGitship-Allow-Prune: true\n")
    assert allows_prune("drop\n\nbody text\n\nSigned-off-by: a <a@b>\ngitship-allow-prune: yes")
    assert not allows_prune("Gitship-Allow-Prune: true")  # a subject is not a trailer
    assert not allows_prune("drop\n\nGitship-Allow-Prune: false")
    assert not allows_prune("drop\n\nGitship-Allow-Prune: true\n\nmore text after it")


def test_thresholds_parse_and_the_flag_wins():
    assert parse_threshold("30") == 30.0 and parse_threshold("75%") == 75.0 and parse_threshold("off") is None
    assert parse_threshold(None) == DEFAULT_THRESHOLD and parse_threshold(False) is None
    for bad in ("-1", "101", "lots", True):
        with pytest.raises(ValueError):
            parse_threshold(bad)
    assert effective_threshold(None, "") == DEFAULT_THRESHOLD
    assert effective_threshold(None, "off") is None
    assert effective_threshold("20", "off") == 20.0


def test_gitship_yaml_prune_threshold():
    assert parse_repo_config(b"pruneThreshold: 80\n").prune_threshold == "80"
    assert parse_repo_config(b"pruneThreshold: off\n").prune_threshold == "off"
    with pytest.raises(ManifestError) as e:
        parse_repo_config(b"pruneThreshold: 120\n")
    assert e.value.field == "pruneThreshold" and e.value.line == 1
