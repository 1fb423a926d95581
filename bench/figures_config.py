"""Figure 8 of bench/run.py: configuration in pods (issue 13).

Three measurements, each against a baseline taken in the same run:

- pod start to Ready with a configMap, a secret and a persistentVolumeClaim volume against the same
  pod without volumes (in-process runtime, sandbox mode, the pods taking turns). The claim is bound
  to a volume the runtime's local-path provisioner makes (``provision_volume``); a runtime without
  PersistentVolumeClaim support gets an emptyDir instead, and the row says so;
- SOPS decryption per file (reconciler/manifests/sops.py ``decrypt_text``) of small Secret files
  against PyYAML's CSafeLoader parsing the same plaintext, and the daemon's loader (``load_file``:
  decrypt, parse, default, validate) of each encrypted file against the same file unencrypted;
- a change to one key of a 1,000-key ConfigMap until the pod sees it in its mounted file, against
  the same change to a 1-key ConfigMap (two pods, one per ConfigMap, so each update rewrites one
  volume). The file is read from the host through ``/proc/<container pid>/root`` (the container's
  mount namespace), so the read adds no process start.

The runtimes are driven directly, as figure 5 does (bench/figures_runtime.py), in sandbox mode on a
bridge and ranges of the bench's own; pods, sandboxes, veths and the bridge are removed afterwards,
also when a figure fails.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import BENCH, ROOT, Row, free_ranges, ms, pct, ready, row, sandbox_unavailable

IMAGE = "qinchaowhut/allen:v1"


# --------------------------------------------------------------------------- the runtime


class _Sandboxed:
    """An InProcessRuntime in sandbox mode on a bridge and ranges of its own; ``cleanup()`` removes
    whatever is left (pods' processes and sandboxes, veths, the bridge and its routes)."""

    def __init__(self, work: Path, name: str) -> None:
        from runtime.inprocess import InProcessRuntime

        rules = [
            {
                "image": "qinchaowhut/allen:*",
                "command": [sys.executable, str(BENCH / "kubia_host.py")],
                "workingDir": None,
                "env": {},
            }
        ]
        self.work = work / name
        self.state = str(self.work / "state")
        self.pod_cidr, self.service_cidr = free_ranges()
        self.bridge = "gsb" + uuid.uuid4().hex[:9]
        self.uids: list[str] = []
        self.ready_at: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Event] = {}
        self.rt = InProcessRuntime(
            self.state,
            rules,
            repo_dir=str(ROOT),
            pod_cidr=self.pod_cidr,
            isolation="sandbox",
            bridge=self.bridge,
            service_cidr=self.service_cidr,
            service_route="local",
        )

    def _on_change(self, uid: str) -> None:
        st = self.rt.status(uid)
        if st and uid not in self.ready_at and ready({"status": st}):
            self.ready_at[uid] = time.perf_counter()
            if uid in self.waiters:
                self.waiters[uid].set()

    async def start(self) -> None:
        await self.rt.start(self._on_change)

    def pod(self, name: str) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        self.uids.append(uid)
        c: dict[str, Any] = {"name": "app", "image": IMAGE, "ports": [{"containerPort": 8080}]}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": "b8"}},
            "spec": {"containers": [c], "restartPolicy": "Always", "terminationGracePeriodSeconds": 5},
        }

    async def run_until_ready(self, pod: dict[str, Any]) -> float:
        """create_pod -> Ready (seconds)."""
        uid = pod["metadata"]["uid"]
        self.waiters[uid] = asyncio.Event()
        t0 = time.perf_counter()
        await self.rt.create_pod(pod)
        self._on_change(uid)
        await asyncio.wait_for(self.waiters[uid].wait(), 60)
        return self.ready_at[uid] - t0

    def container_pid(self, uid: str) -> int:
        """The pid of the pod's (only) container: the bench reads its mount namespace through /proc."""
        p = self.rt._pods[uid]  # noqa: SLF001 - a benchmark, not an API user
        pid = p.containers[0].pid
        if pid is None:
            raise RuntimeError(f"pod {uid} has no running container")
        return int(pid)

    async def close(self) -> None:
        await self.rt.close(stop_pods=True)

    def cleanup(self) -> None:
        from runtime.inprocess.sandbox import sweep
        from runtime.net import bridge as br

        if os.path.isdir(self.state):
            sweep(self.state)
        for uid in self.uids:
            br.delete_link_sync(br.veth_name(uid))
        br.teardown_host_network(self.bridge, self.service_cidr)


def _sandboxed(work: Path, name: str, body: Callable[[_Sandboxed], Any]) -> Any:
    """Run ``body(sb)`` (a coroutine function) on a fresh sandboxed runtime; everything removed after."""
    sb = _Sandboxed(work, name)
    try:

        async def main() -> Any:
            await sb.start()
            try:
                return await body(sb)
            finally:
                await sb.close()

        return asyncio.run(main())
    finally:
        sb.cleanup()


def _cm(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    meta = {"name": name, "namespace": "default"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": enc}


def _objects(*objs: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}


# --------------------------------------------------------------------------- 8a. start with volumes


def runtime_has_claims() -> bool:
    """Whether the runtime provisions and mounts PersistentVolumeClaims (the storage contract's
    ``Runtime.provision_volume``); before that, the third volume is an emptyDir."""
    from runtime.inprocess import InProcessRuntime

    return callable(getattr(InProcessRuntime, "provision_volume", None))


async def _claim_objects(sb: _Sandboxed) -> list[dict[str, Any]]:
    """A PersistentVolumeClaim ``data`` bound to a PersistentVolume the runtime's local-path
    provisioner made, as the reconciler pushes them (``Runtime.set_config_objects``)."""
    pv_name = "pvc-" + uuid.uuid4().hex[:12]
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    source = await sb.rt.provision_volume(pv_name, claim)  # type: ignore[attr-defined]
    claim["spec"]["volumeName"] = pv_name
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            **source,
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "local-path",
            "claimRef": {"namespace": "default", "name": "data", "uid": claim["metadata"]["uid"]},
        },
        "status": {"phase": "Bound"},
    }
    return [claim, pv]


def _with_volumes(pod: dict[str, Any], mnt: Path, claims: bool) -> dict[str, Any]:
    c = pod["spec"]["containers"][0]
    c["volumeMounts"] = [
        {"name": "cfg", "mountPath": str(mnt / "cfg"), "readOnly": True},
        {"name": "creds", "mountPath": str(mnt / "creds"), "readOnly": True},
        {"name": "data", "mountPath": str(mnt / "data")},
    ]
    third = {"persistentVolumeClaim": {"claimName": "data"}} if claims else {"emptyDir": {}}
    pod["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "creds", "secret": {"secretName": "sec"}},
        {"name": "data", **third},
    ]
    return pod


def _start_rows(work: Path, n: int) -> list[Row]:
    mnt = work / "f8-mnt"
    claims = runtime_has_claims()

    async def body(sb: _Sandboxed) -> dict[bool, list[float]]:
        objs = [_cm("cfg", {"app.conf": "level=info\n", "color": "blue"}), _secret("sec", {"password": "hunter2"})]
        if claims:
            objs += await _claim_objects(sb)
        sb.rt.set_config_objects(_objects(*objs))
        lat: dict[bool, list[float]] = {False: [], True: []}
        for i in range(2 * n):  # the two kinds take turns
            vols = i % 2 == 1
            pod = sb.pod(f"b8-{i}")
            if vols:
                _with_volumes(pod, mnt, claims)
            lat[vols].append(await sb.run_until_ready(pod))
            await sb.rt.delete_pod(pod["metadata"]["uid"])
        return lat

    lat = _sandboxed(work, "f8-start", body)
    p50, p99 = pct(lat[True], 50), pct(lat[True], 99)
    b50, b99 = pct(lat[False], 50), pct(lat[False], 99)
    third = "PVC (local-path)" if claims else "emptyDir (the runtime has no PVC support yet)"
    what = f"8 pod start -> Ready with configMap + secret + {third} volumes, sandbox mode"
    return [
        row(f"{what}, p50 ({n} starts)", f"{ms(p50)} ({p50 / b50:.2f}x)", f"no volumes p50 {ms(b50)}"),
        row(f"{what}, p99", f"{ms(p99)} ({p99 / b99:.2f}x)", f"no volumes p99 {ms(b99)}"),
    ]


# --------------------------------------------------------------------------- 8b. SOPS


def _sops_rows(n_files: int, rounds: int) -> list[Row]:
    import yaml
    from pyrage import x25519

    from reconciler.manifests.load import Limits, load_file
    from reconciler.manifests.sops import AgeKeys, decrypt_text, encrypt_documents

    limits = Limits()

    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    keys = AgeKeys([ident])
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"s{i}", "namespace": "default", "labels": {"app": "web"}},
            "type": "Opaque",
            "stringData": {"username": f"user{i}", "password": f"pw-{i}-{'x' * 24}", "port": "5432"},
        }
        for i in range(n_files)
    ]
    now = datetime.now(timezone.utc)
    files = [encrypt_documents([d], [recipient], now) for d in docs]
    plain = [yaml.safe_dump(d, sort_keys=False) for d in docs]
    dec: list[float] = []
    base: list[float] = []
    load_enc: list[float] = []
    load_plain: list[float] = []
    for _ in range(rounds):  # they take turns file by file
        for i, (enc, text) in enumerate(zip(files, plain)):
            t0 = time.perf_counter()
            decrypt_text(enc, keys)
            t1 = time.perf_counter()
            list(yaml.load_all(text, Loader=yaml.CSafeLoader))
            t2 = time.perf_counter()
            load_file(f"s{i}.yaml", enc.encode(), {}, limits, age_keys=keys)  # the daemon's loader
            t3 = time.perf_counter()
            load_file(f"s{i}.yaml", text.encode(), {}, limits)
            t4 = time.perf_counter()
            dec.append(t1 - t0)
            base.append(t2 - t1)
            load_enc.append(t3 - t2)
            load_plain.append(t4 - t3)
    m, bm = statistics.median(dec), statistics.median(base)
    le, lp = statistics.median(load_enc), statistics.median(load_plain)
    what = f"8 SOPS decrypt_text per small Secret file (age; {n_files} files x {rounds})"
    return [
        row(f"{what}, median", f"{m * 1000:.2f} ms ({m / bm:.0f}x)", f"CSafeLoader {bm * 1000:.3f} ms"),
        row(f"{what}, p99", f"{pct(dec, 99) * 1000:.2f} ms", f"CSafeLoader p99 {pct(base, 99) * 1000:.3f} ms"),
        row(
            "8 load_file of the encrypted file (decrypt, parse, validate) per file, median",
            f"{le * 1000:.2f} ms ({le / lp:.1f}x; p99 {pct(load_enc, 99) * 1000:.2f} ms)",
            f"load_file of the same file unencrypted {lp * 1000:.3f} ms (p99 {pct(load_plain, 99) * 1000:.3f} ms)",
        ),
    ]


# --------------------------------------------------------------------------- 8c. ConfigMap update


async def _until_file(path: str, want: str, timeout: float = 30.0) -> float:
    """Seconds until the file at ``path`` holds ``want`` (polled every 0.2 ms from the event loop)."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        try:
            with open(path) as f:
                if f.read() == want:
                    return time.perf_counter() - t0
        except OSError:
            pass
        await asyncio.sleep(0.0002)
    raise TimeoutError(f"{path} did not become {want!r} within {timeout} s")


def _update_rows(work: Path, runs: int) -> list[Row]:
    mnt = work / "f8-upd"
    big_keys = [f"key{i:04d}" for i in range(1000)]
    changed = "key0500"

    async def body(sb: _Sandboxed) -> dict[str, list[float]]:
        big = {k: f"value of {k}\n" for k in big_keys}
        small = {changed: f"value of {changed}\n"}
        sb.rt.set_config_objects(_objects(_cm("big", dict(big)), _cm("small", dict(small))))  # copies: kept
        where: dict[str, str] = {}
        for name in ("big", "small"):
            pod = sb.pod(f"b8-{name}")
            c = pod["spec"]["containers"][0]
            c["volumeMounts"] = [{"name": "cfg", "mountPath": str(mnt / name), "readOnly": True}]
            pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": name}}]
            await sb.run_until_ready(pod)
            uid = pod["metadata"]["uid"]
            where[name] = f"/proc/{sb.container_pid(uid)}/root{mnt / name}/{changed}"
            await _until_file(where[name], f"value of {changed}\n")
        out: dict[str, list[float]] = {"big": [], "small": []}
        for r in range(runs):  # the two take turns
            for name in ("big", "small"):
                new = f"run {r} {name}\n"
                (big if name == "big" else small)[changed] = new
                t0 = time.perf_counter()
                sb.rt.set_config_objects(_objects(_cm("big", dict(big)), _cm("small", dict(small))))
                await _until_file(where[name], new)
                out[name].append(time.perf_counter() - t0)
        return out

    got = _sandboxed(work, "f8-update", body)
    m, bm = statistics.median(got["big"]), statistics.median(got["small"])
    return [
        row(
            f"8 one key of a 1,000-key ConfigMap changed -> the mounted file changed in the pod, median ({runs} runs)",
            f"{ms(m)} ({m / bm:.1f}x; max {ms(max(got['big']))})",
            f"1-key ConfigMap {ms(bm)} (max {ms(max(got['small']))})",
        )
    ]


# --------------------------------------------------------------------------- the figure


def fig8_config(work: Path, quick: bool) -> list[Row]:
    rows = _sops_rows(50, 5 if quick else 20)
    why_not = sandbox_unavailable()
    if why_not is not None:
        rows.append(row("8 pod start with volumes; ConfigMap update to the file (sandbox mode)", f"skipped: {why_not}"))
        return rows
    for part, fn in (
        ("pod start with volumes", lambda: _start_rows(work, 20)),
        ("ConfigMap update", lambda: _update_rows(work, 5)),
    ):
        try:
            rows += fn()
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the others
            rows.append(row(f"8 {part}", f"ERROR: {type(e).__name__}: {e}".replace("|", "/"), "", "", False))
    return rows
