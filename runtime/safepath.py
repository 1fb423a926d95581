"""Open a path inside a directory without following a symlink on the way: the mount of a subPath.

Kubernetes (pkg/volume/util/subpath/subpath_linux.go doSafeOpen, after CVE-2017-1002101) checks a
subPath with its symlinks resolved, then opens the resolved path one component at a time with
``O_NOFOLLOW`` under the volume's directory and bind-mounts ``/proc/<pid>/fd/<fd>``: a container
that swaps a directory for a symlink between the check and the mount makes the mount fail instead
of binding whatever the link names. ``open_beneath`` is that open; the caller mounts
``fd_path(fd)`` and closes the descriptor.
"""

from __future__ import annotations

import os
import stat

from .kernel import ConfigError

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_beneath(root: str, path: str, what: str = "subPath") -> int:
    """An ``O_PATH`` descriptor of ``path``, which must be ``root`` or below it, opened from ``root``
    component by component without following any symlink (``root`` itself may be one).

    Raises ConfigError (CreateContainerConfigError) when ``path`` is not below ``root`` or a
    component is a symlink (or disappeared) when it is opened."""
    root = os.path.realpath(root)
    rel = os.path.relpath(path, root)
    parts = [] if rel == "." else rel.split("/")
    if ".." in parts or os.path.isabs(rel):
        raise ConfigError(f"{what} {path!r} is not within the volume {root!r}")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            flags = _DIR if i < len(parts) - 1 else os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                raise ConfigError(
                    f"{what} {path!r} changed while it was mounted ({part!r}: {(e.strerror or str(e)).lower()})"
                ) from None
            os.close(fd)
            fd = nxt
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise ConfigError(f"{what} {path!r} is a symlink when it is mounted: it is not followed")
    except BaseException:
        os.close(fd)
        raise
    return fd


def fd_path(fd: int) -> str:
    """The path through /proc that names what ``fd`` holds (for mount(2) and stat)."""
    return f"/proc/thread-self/fd/{fd}"
