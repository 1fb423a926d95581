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


REDIS_IMAGE = "gitship-test/redis:7"
REDIS_BINARIES = ("/usr/bin/redis-server", "/usr/bin/redis-cli")


def _ldd_files(binaries: tuple[str, ...]) -> list[str]:
    """The shared libraries (as ldd names them) and the dynamic loader the binaries need."""
    import subprocess

    found: set[str] = set()
    for b in binaries:
        out = subprocess.run(["ldd", b], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            words = line.split()
            if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
                found.add(words[words.index("=>") + 1])
            elif words and words[0].startswith("/"):
                found.add(words[0])  # the loader: /lib64/ld-linux-x86-64.so.2
    return sorted(found)


def ensure_redis_image(client, tag: str = REDIS_IMAGE) -> str:
    """A Docker image with the host's Debian redis-server and redis-cli (copied with the libraries
    ldd lists and the dynamic loader) on the busybox root filesystem; ENTRYPOINT redis-server, so a
    pod's `args` are redis-server's, as with Docker Hub's redis image. Skips without redis-server.
    Returns the image id."""
    import shutil

    import docker.errors

    if not all(shutil.which(os.path.basename(b)) for b in REDIS_BINARIES) or not shutil.which("ldd"):
        pytest.skip("redis-server/redis-cli (Debian's redis-server package) and ldd are needed for the redis image")
    files: dict[str, tuple[bytes, int]] = {}
    for path in [*REDIS_BINARIES, *_ldd_files(REDIS_BINARIES)]:
        with open(os.path.realpath(path), "rb") as f:  # redis-server is a symlink to redis-check-rdb:
            files[path] = (f.read(), 0o755)  # its content goes in under the name it is run by
    digest = hashlib.sha256(b"".join(p.encode() + hashlib.sha256(c).digest() for p, (c, _) in files.items()))
    label = digest.hexdigest()[:16]
    try:
        img = client.api.inspect_image(tag)
        if ((img.get("Config") or {}).get("Labels") or {}).get(LABEL) == label:
            return str(img["Id"])
    except docker.errors.ImageNotFound:
        pass
    repo, t = tag.rsplit(":", 1)
    client.api.import_image_from_data(
        busybox_rootfs_tar(files),
        repository=repo,
        tag=t,
        changes=[
            'ENTRYPOINT ["/usr/bin/redis-server"]',
            f"LABEL {LABEL}={label}",
            "ENV PATH=/usr/bin:/bin",
            "EXPOSE 6379",
        ],
    )
    return str(client.api.inspect_image(tag)["Id"])
