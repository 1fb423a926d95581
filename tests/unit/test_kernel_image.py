"""imagePullPolicy defaulting (runtime/kernel/image.py), decided by Kubernetes.

pkg/apis/core/v1/defaults.go SetDefaults_Container: ``Always`` when the tag returned by
pkg/util/parsers.ParseImageName is ``latest``, else ``IfNotPresent``; ParseImageName
returns the written tag, or ``latest`` only when there is neither a tag nor a digest.
Disagreement (c), ``img:latest@sha256:...``, is therefore **Always** (the tag is latest;
validate.py's answer; the Docker runtime used to say IfNotPresent).
"""

import pytest

from runtime.kernel import default_pull_policy, parse_image_ref, pull_policy

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("library/nginx", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        (f"nginx@{DIGEST}", "IfNotPresent"),  # a digest, no tag
        (f"nginx:latest@{DIGEST}", "Always"),  # (c): the tag is latest
        (f"nginx:1.25@{DIGEST}", "IfNotPresent"),
        ("registry:5000/nginx", "Always"),  # :5000 is a port, not a tag
        ("registry:5000/nginx:2", "IfNotPresent"),
        ("registry:5000/team/app:latest", "Always"),
    ],
)
def test_default_pull_policy(image, policy):
    assert default_pull_policy(image) == policy


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("nginx", ("nginx", "", "")),
        ("nginx:1", ("nginx", "1", "")),
        ("registry:5000/a/b", ("registry:5000/a/b", "", "")),
        (f"a/b:c@{DIGEST}", ("a/b", "c", DIGEST)),
    ],
)
def test_parse_image_ref(image, parts):
    assert parse_image_ref(image) == parts


def test_an_explicit_policy_wins():
    assert pull_policy({"image": "nginx", "imagePullPolicy": "Never"}) == "Never"
    assert pull_policy({"image": "nginx"}) == "Always"
