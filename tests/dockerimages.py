"""Test images built locally (no registry needed) and a skip helper for Docker tests.

``ensure_test_images(client)`` builds, once, from the host's static busybox:

* ``gitship-test/kubia:v1`` and ``gitship-test/kubia:v2``: a busybox root filesystem whose
  CMD is ``/bin/kubia``, a shell script that writes ``/www/index.html`` saying
  ``This is v1 running in pod <hostname>`` and serves it with ``busybox httpd`` on
  ``$PORT`` (default 8080). SIGTERM stops it with exit code 0 at once.

Every busybox applet (sh, sleep, wget, nc, hostname, ...) is linked in /bin. Images carry a
label with a content hash, so the helper is idempotent and fast when they are present.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from runtime.docker import BUSYBOX, busybox_rootfs_tar

KUBIA_SCRIPT = """#!/bin/sh
mkdir -p /www
echo "This is {version} running in pod $(hostname)" > /www/index.html
httpd -f -p "${{PORT:-8080}}" -h /www &
pid=$!
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
wait $pid
"""

IMAGES = {
    "gitship-test/kubia:v1": KUBIA_SCRIPT.format(version="v1"),
    "gitship-test/kubia:v2": KUBIA_SCRIPT.format(version="v2"),
}
LABEL = "gitship.test.image"


def docker_client_or_skip():
    """A docker.DockerClient talking to a live engine, or pytest.skip with the reason."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"docker SDK not installed: {exc}")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        reason = f"no Docker Engine answers ({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): {exc}"
        print(reason)
        pytest.skip(reason)
    if not os.path.exists(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is needed to build the test images")
    return client


def ensure_test_images(client) -> dict[str, str]:
    """Build the test images if missing or stale. Returns {tag: image id}."""
    import docker.errors

    out: dict[str, str] = {}
    with open(BUSYBOX, "rb") as f:
        bb_hash = hashlib.sha256(f.read()).hexdigest()[:12]
    for tag, script in IMAGES.items():
        digest = hashlib.sha256((bb_hash + script).encode()).hexdigest()[:16]
        try:
            img = client.api.inspect_image(tag)
            if ((img.get("Config") or {}).get("Labels") or {}).get(LABEL) == digest:
                out[tag] = img["Id"]
                continue
        except docker.errors.ImageNotFound:
            pass
        data = busybox_rootfs_tar({"/bin/kubia": (script.encode(), 0o755)})
        repo, t = tag.rsplit(":", 1)
        client.api.import_image_from_data(
            data,
            repository=repo,
            tag=t,
            changes=['CMD ["/bin/kubia"]', f"LABEL {LABEL}={digest}", "ENV PATH=/bin", "EXPOSE 8080"],
        )
        out[tag] = client.api.inspect_image(tag)["Id"]
    return out
