"""Hostile input on the webhook receiver (issue 20 item 4): a flood of deliveries against
``--webhook-addr`` (reconciler/ops/webhook.py).

Thousands of deliveries at once, most of them bad (unsigned, wrongly signed, oversized by
Content-Length and chunked), the good ones repeating a few delivery ids: every bad one refused,
each distinct good delivery accepted once and the rest duplicates, the fetches coalesced (never
more than the distinct deliveries), the daemon's memory bounded, and the daemon reconciling
throughout (a push during the flood is applied)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import aiohttp

from tests.conftest import wait_for
from tests.integration.test_ops_e2e import (  # the webhook daemon of the ops tests
    _address,
    _applied,
    _github,
    _push,
    _pushed,
    _scrape,
    _value,
    _webhook_daemon,
    loopback,  # noqa: F401 (fixture)
)

BAD = 1500
OVERSIZED = 100
CHUNKED = 50
DISTINCT = 40
REPEATS = 25  # each good delivery id sent this many times: 1,000 good deliveries
FETCH = re.compile(rb"built-in: git fetch\b")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1)) / 1024 if m else 0.0


async def _flood(addr: str, good: list[tuple[bytes, dict[str, str]]]) -> dict[int, int]:
    codes: dict[int, int] = {}
    big = b"x" * ((1 << 20) + 1)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"y" * (64 * 1024)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        url = f"http://{addr}/hook"
        if i < BAD:
            body = _push()
            headers = _github(body, f"bad-{i}", secret=b"wrong") if i % 2 else {"X-GitHub-Event": "push"}
            data: object = body
        elif i < BAD + OVERSIZED:
            headers, data = _github(big, f"big-{i}"), big
        elif i < BAD + OVERSIZED + CHUNKED:
            headers, data = _github(b"", f"chunked-{i}"), chunks()
        else:
            body, headers = good[(i - BAD - OVERSIZED - CHUNKED) % len(good)]
            data = body
        try:
            async with session.post(url, data=data, headers={"Content-Type": "application/json", **headers}) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
        except aiohttp.ClientError:  # a refused oversized upload may be cut off while it is sent
            codes[-1] = codes.get(-1, 0) + 1

    total = BAD + OVERSIZED + CHUNKED + DISTINCT * REPEATS
    order = list(range(total))
    order = order[::3] + order[1::3] + order[2::3]  # bad and good interleaved
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(one(session, i) for i in order))
    return codes


def test_a_webhook_flood_is_refused_coalesced_and_bounded(tmp_path: Path, loopback) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    trace = tmp_path / "git-trace"
    g, work, addr = _webhook_daemon(tmp_path, _traced(loopback, trace))
    assert g.proc is not None
    first = _applied(g)
    rss_before = _rss_mib(g.proc.pid)
    fetches_before = len(FETCH.findall(trace.read_bytes())) if trace.exists() else 0
    sha = _pushed(work, "b")  # a push the flood's good deliveries bring in
    good = []
    for i in range(DISTINCT):
        body = _push()
        good.append((body, _github(body, f"good-{i}-{uuid.uuid4().hex}")))

    codes = asyncio.run(_flood(addr, good))

    assert codes.get(401) == BAD, codes
    assert codes.get(413, 0) + codes.get(-1, 0) == OVERSIZED + CHUNKED, codes
    assert codes.get(202) == DISTINCT, codes  # each distinct delivery accepted once
    assert codes.get(200) == DISTINCT * (REPEATS - 1), codes  # the rest: duplicates
    wait_for(lambda: _applied(g) == sha, 30, what="the pushed commit applied during the flood")
    assert _applied(g) != first
    m = _scrape(_address(g, "metrics"))
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="accepted") == DISTINCT
    assert _value(m, "gitship_webhook_deliveries_total", provider="github", result="duplicate") == DISTINCT * (
        REPEATS - 1
    )
    fetches = len(FETCH.findall(trace.read_bytes())) - fetches_before
    assert 1 <= fetches <= DISTINCT, fetches  # coalesced: at most one fetch per distinct delivery
    # memory bounded: a thousand 1 MiB bodies were never held
    assert _rss_mib(g.proc.pid) - rss_before < 60, (rss_before, _rss_mib(g.proc.pid))
    # and the daemon still serves and reconciles
    sha2 = _pushed(work, "c")
    body = _push()
    assert g.status()["status"]["daemon"] == "running"
    asyncio.run(_post_one(addr, body, _github(body, "after-the-flood")))
    wait_for(lambda: _applied(g) == sha2, 30, what="a push after the flood applied")


async def _post_one(addr: str, body: bytes, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://{addr}/hook", data=body, headers=headers) as r:
            assert r.status == 202, await r.text()


def _traced(factory, trace: Path):  # type: ignore[no-untyped-def]
    """The ops tests' daemon factory with GIT_TRACE on: every git command the daemon runs is logged."""

    def make(source: str, *extra: str, start: bool = True, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return factory(source, *extra, start=start, env={**(env or {}), "GIT_TRACE": str(trace)})

    return make
