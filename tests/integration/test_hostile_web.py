"""Hostile input on the web view (issue 20 item 4): many open server-sent-event streams and clients
that never read (reconciler/web/server.py events and pod_logs).

300 change streams (/events) stay open, and 20 log streams (/logs, follow) of a pod writing 20 MB
are opened before it writes and 20 after, by clients that never read a byte: the daemon's memory
stays bounded (a log stream starts with a bounded tail and reads no more while its client lags),
other pages are served meanwhile, and when the clients go, the file descriptors come back.
Before the fix, the 20 late streams each held the whole 20 MB log several times over: 2.9 GB."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import time
import urllib.request
from pathlib import Path

from reconciler.store import Store
from reconciler.web.auth import issue_token
from tests.conftest import commit_file, git, wait_for

SCRIPT = (  # 200 lines of 100 kB, once
    "sleep 3; i=0; while [ $i -lt 200 ]; do head -c 100000 /dev/zero | tr '\\\\0' x; echo; i=$((i+1)); done; sleep 3600"
)
LOUD = f"""apiVersion: v1
kind: Pod
metadata: {{name: loud}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "{SCRIPT}"]
"""
STREAMS = 300
NEVER_READ = 20


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1)) / 1024 if m else 0.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _web_url(state_dir: str) -> str:
    def look() -> str:
        store = Store(state_dir, readonly=True)
        try:
            return str((store.get_meta("web") or {}).get("url") or "")
        finally:
            store.close()

    return str(wait_for(look, 30, what="the web view's URL"))


def _open(url: str, path: str, cookie: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server must wait
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return s


def test_open_streams_and_clients_that_never_read(tmp_path: Path, gitship_factory) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test Author")
    git(repo, "config", "user.email", "author@example.com")
    commit_file(repo, "loud.yaml", LOUD, "a pod that writes 20 MB of log")
    g = gitship_factory(str(repo), extra=["--isolation", "host", "--api-addr", "none", "--web-addr", "127.0.0.1:0"])
    assert g.proc is not None
    pid = g.proc.pid
    url = _web_url(g.state_dir)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/login?token={issue_token(g.state_dir)}", timeout=30).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    assert cookie
    wait_for(lambda: g.json("get", "pod", "loud"), 30, what="the loud pod")
    rss0, fds0 = _rss_mib(pid), _fds(pid)

    socks = [_open(url, "/events", cookie) for _ in range(STREAMS)]
    socks += [_open(url, "/logs/default/loud?follow=1", cookie) for _ in range(NEVER_READ)]
    try:
        wait_for(lambda: _fds(pid) >= fds0 + STREAMS + NEVER_READ, 30, what="the streams accepted")
        log = Path(g.state_dir, "runtime", "logs")
        deadline = time.monotonic() + 90
        peak = rss0
        while time.monotonic() < deadline:  # the pod writes its 20 MB while nobody reads
            peak = max(peak, _rss_mib(pid))
            t0 = time.monotonic()
            with opener.open(url + "/objects", timeout=30) as r:
                assert r.status == 200
                r.read()
            assert time.monotonic() - t0 < 10, "another page waited on the streams"
            sizes = [p.stat().st_size for p in log.rglob("*.log")]
            if sizes and max(sizes) >= 20_000_000:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the pod never wrote its 20 MB")
        # and as many again now that the log is 20 MB: each starts with a bounded tail, not the whole file
        socks += [_open(url, "/logs/default/loud?follow=1", cookie) for _ in range(NEVER_READ)]
        wait_for(lambda: _fds(pid) >= fds0 + STREAMS + 2 * NEVER_READ, 30, what="the late streams accepted")
        for _ in range(6):  # a few more polls of the followers
            peak = max(peak, _rss_mib(pid))
            time.sleep(0.5)
        assert peak - rss0 < 120, f"RSS grew from {rss0:.0f} to {peak:.0f} MiB"
        assert g.status()["status"]["daemon"] == "running"
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: _fds(pid) <= fds0 + 5, 30, what="the streams' descriptors released")
