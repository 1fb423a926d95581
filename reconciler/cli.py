"""The `gitship` command: argument parsing and printing only.

Where it sits: a thin client. Reads come from the store (read-only SQLite);
actions on what runs (delete, exec, logs) go to the daemon's API socket;
changes of desired state are git commits made through gitops.RepoWriter.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, NoReturn

from . import printers
from .errors import GitshipError, NotFound, SelectorError

KINDS = {
    "po": "Pod",
    "pod": "Pod",
    "pods": "Pod",
    "rs": "ReplicaSet",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "deployments": "Deployment",
    "svc": "Service",
    "service": "Service",
    "services": "Service",
    "ep": "Endpoints",
    "endpoints": "Endpoints",
}
PLURAL = {
    "Pod": "pods",
    "ReplicaSet": "replicasets",
    "Deployment": "deployments",
    "Service": "services",
    "Endpoints": "endpoints",
}


def template_dir() -> str:
    """repo-template/ of a source checkout, or the copy installed as the gitship_template package."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "repo-template")
    if os.path.isdir(here):
        return here
    import importlib.util

    spec = importlib.util.find_spec("gitship_template")
    if spec and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    die("the repository template is not installed")


def die(msg: str, code: int = 1) -> NoReturn:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def state_dir(args: argparse.Namespace) -> str:
    from .daemon import default_state_dir

    return os.path.abspath(args.state_dir or default_state_dir())


def open_store(args: argparse.Namespace) -> Any:
    from .store import Store

    return Store(state_dir(args), readonly=True)


def api(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    from .api import request

    sock = os.path.join(state_dir(args), "gitship.sock")
    try:
        code, payload = request(sock, method, path, body)
    except OSError:
        die(f"gitship is not running on the state dir {state_dir(args)} (start it with `gitship up REPO`)")
    if code >= 400:
        die(payload.get("message", f"HTTP {code}") if isinstance(payload, dict) else f"HTTP {code}")
    return payload


def kind_of(word: str) -> str:
    k = KINDS.get(word.lower().split(".")[0])
    if not k:
        die(f'the server doesn\'t have a resource type "{word}"')
    return k


def writer(args: argparse.Namespace) -> Any:
    from .gitops import RepoWriter

    store = open_store(args)
    src = store.get_meta("source") or {}
    store.close()
    if not src.get("repoDir"):
        die("no repository known for this state dir; run `gitship up REPO` first")
    return RepoWriter(src["repoDir"], src.get("path", ""), src.get("branch"), "origin" if src.get("remote") else None)


def nudge(args: argparse.Namespace) -> None:
    """Tell the daemon to look at the repository now (it would notice anyway)."""
    from .api import request

    try:
        request(os.path.join(state_dir(args), "gitship.sock"), "POST", "/v1/sync", {}, timeout=5)
    except OSError:
        pass


# -- commands --------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    dest = os.path.abspath(args.dir)
    if os.path.exists(dest) and os.listdir(dest):
        die(f"{dest} exists and is not empty")
    shutil.copytree(
        template_dir(), dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py")
    )
    run = lambda *a: subprocess.run(["git", "-C", dest, *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("add", "-A")
    env = dict(os.environ)
    ident = subprocess.run(["git", "-C", dest, "config", "user.email"], capture_output=True).stdout.strip()
    extra = [] if ident else ["-c", "user.name=gitship", "-c", "user.email=gitship@localhost"]
    subprocess.run(
        ["git", "-C", dest, *extra, "commit", "-q", "-m", "Initial commit from the gitship template"],
        check=True,
        capture_output=True,
        env=env,
    )
    print(f"Initialized a gitship repository in {dest}")
    print(f"Next: gitship up {args.dir}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from .daemon import Options, run

    opts = Options(
        source=args.repo,
        state_dir=state_dir(args),
        runtime=args.runtime,
        branch=args.branch,
        path=args.path or "",
        interval=args.interval,
        service_cidr=args.service_cidr,
        pod_cidr=args.pod_cidr,
        dns_addr=args.dns_addr,
        node_address=args.node_address,
    )
    return run(opts)


def cmd_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    src = store.get_meta("source") or {}
    ready = store.get_meta("ready") or {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": ""}
    live: dict[str, Any] | None = None
    try:
        from .api import request

        code, live = request(os.path.join(state_dir(args), "gitship.sock"), "GET", "/v1/status", timeout=5)
    except OSError:
        live = None
    runtime = (live or {}).get("runtime") or store.get_meta("runtime") or {}
    dns = (live or {}).get("dns") or (store.get_meta("dns") or {}).get("address")
    out = {
        "apiVersion": "gitship.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": os.path.basename(src.get("url", "").rstrip("/")) or "repository"},
        "spec": {
            "url": src.get("url"),
            "branch": src.get("branch"),
            "path": src.get("path") or "./",
            "runtime": runtime.get("name"),
        },
        "status": {
            "lastAppliedRevision": store.get_meta("lastAppliedRevision"),
            "lastAttemptedRevision": store.get_meta("lastAttemptedRevision"),
            "conditions": [ready],
            "runtime": runtime,
            "dnsAddress": dns,
            "sourceError": store.get_meta("sourceError"),
            "daemon": "running" if live else "stopped",
        },
    }
    if args.output == "json":
        print(json.dumps(out, indent=4))
        return 0
    st = out["status"]
    print(f"Source:        {src.get('url')} (branch {src.get('branch')}, path {src.get('path') or './'})")
    print(f"Daemon:        {st['daemon']}")
    rt_line = f"Runtime:       {runtime.get('name')}"
    if runtime.get("engine") == "unreachable":
        rt_line += f" (engine unreachable, retrying: {runtime.get('error')})"
    elif runtime.get("engineVersion"):
        rt_line += f" (Docker Engine {runtime['engineVersion']}, API {runtime.get('apiVersion')})"
    print(rt_line)
    print(f"DNS:           {dns}")
    print(f"Applied:       {st['lastAppliedRevision'] or '<none>'}")
    print(f"Attempted:     {st['lastAttemptedRevision'] or '<none>'}")
    print(f"Ready:         {ready['status']} ({ready['reason']}) {ready.get('message', '')}")
    if st["sourceError"]:
        print(f"Source error:  {st['sourceError']}")
    return 0


def _select(objs: list[dict[str, Any]], selector: str | None) -> list[dict[str, Any]]:
    if not selector:
        return objs
    from .selectors import parse

    try:
        sel = parse(selector)
    except SelectorError as e:
        die(str(e))
    return [o for o in objs if sel.matches(o["metadata"].get("labels") or {})]


def cmd_get(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    store = open_store(args)
    ns = None if args.all_namespaces else args.namespace
    objs = store.cluster(kind, ns)
    if args.name:
        objs = [o for o in objs if o["metadata"]["name"] == args.name]
        if not objs:
            die(f'{PLURAL[kind]} "{args.name}" not found')
    objs = _select(objs, args.selector)
    if args.output in ("json", "yaml"):
        payload = objs[0] if args.name else printers.as_list(objs)
        print(printers.dump(payload, args.output))
        return 0
    if not objs:
        where = "any namespace" if args.all_namespaces else f"{args.namespace} namespace"
        print(f"No resources found in {where}.", file=sys.stderr)
        return 0
    print(printers.rows_for(kind, objs, time.time(), args.output == "wide", args.show_labels, args.all_namespaces))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    store = open_store(args)
    obj = store.get(kind, args.namespace, args.name)
    if obj is None:
        die(f'{PLURAL[kind]} "{args.name}" not found')
    events = store.events(kind, args.namespace, args.name, limit=50)
    extra: list[tuple[str, Any]] = []
    if kind == "Deployment":
        rss = [
            r
            for r in store.cluster("ReplicaSet", args.namespace)
            if any(ref.get("uid") == obj["metadata"]["uid"] for ref in r["metadata"].get("ownerReferences") or [])
        ]
        new = [
            r
            for r in rss
            if r["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
            == obj["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
        ]
        extra.append(
            (
                "OldReplicaSets",
                ", ".join(
                    f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}"
                    f"/{r['spec'].get('replicas')} replicas created)"
                    for r in rss
                    if r not in new
                )
                or "<none>",
            )
        )
        extra.append(
            (
                "NewReplicaSet",
                ", ".join(
                    f"{r['metadata']['name']} ({(r.get('status') or {}).get('replicas', 0)}"
                    f"/{r['spec'].get('replicas')} replicas created)"
                    for r in new
                )
                or "<none>",
            )
        )
    if kind == "Service":
        ep = store.get("Endpoints", args.namespace, args.name)
        extra.append(("Endpoints", printers.endpoints_text(ep) if ep else "<none>"))
    print(printers.describe(obj, events, time.time(), extra))
    return 0


def _pod(args: argparse.Namespace, name: str) -> dict[str, Any]:
    store = open_store(args)
    pod = store.get("Pod", args.namespace, name)
    if pod is None:
        die(f'pods "{name}" not found')
    return pod


def cmd_logs(args: argparse.Namespace) -> int:
    _pod(args, args.pod)
    q = f"?container={args.container}" if args.container else ""
    info = api(args, "GET", f"/v1/namespaces/{args.namespace}/pods/{args.pod}/log{q}")
    if info.get("content") is not None:
        # the runtime keeps the logs itself (Docker): follow by asking again for what is new
        shown = b""
        while True:
            data = base64.b64decode(info["content"])
            new = data[len(shown) :] if data.startswith(shown) else data
            sys.stdout.buffer.write(new)
            sys.stdout.flush()
            shown = data
            if not args.follow:
                return 0
            time.sleep(0.5)
            info = api(args, "GET", f"/v1/namespaces/{args.namespace}/pods/{args.pod}/log{q}")
    path = info.get("path")
    if not path or not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not args.follow:
                return 0
            time.sleep(0.2)


def cmd_delete(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    if kind != "Pod":
        die(f"delete {args.kind}: desired state lives in git; remove the object from the repository and commit")
    for name in args.names:
        _pod(args, name)
        body = {} if args.grace_period is None else {"gracePeriodSeconds": args.grace_period}
        api(args, "POST", f"/v1/namespaces/{args.namespace}/pods/{name}/delete", body)
        print(f'pod "{name}" deleted')
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.command:
        die("you must specify at least one command for the container (gitship exec POD -- CMD ...)")
    _pod(args, args.pod)
    res = api(
        args,
        "POST",
        f"/v1/namespaces/{args.namespace}/pods/{args.pod}/exec",
        {"container": args.container, "command": args.command},
    )
    sys.stdout.buffer.write(base64.b64decode(res["stdout"]))
    sys.stderr.buffer.write(base64.b64decode(res["stderr"]))
    return int(res["exitCode"])


def cmd_label(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    sets, removes = {}, []
    for item in args.labels:
        if item.endswith("-") and "=" not in item:
            removes.append(item[:-1])
        elif "=" in item:
            k, _, v = item.partition("=")
            sets[k] = v
        else:
            die(f"invalid label spec: {item} (use key=value, or key- to remove)")
    from .selectors import validate_label_key, validate_label_value

    for k, v in sets.items():
        err = validate_label_key(k) or validate_label_value(v)
        if err:
            die(f"invalid label {k}={v}: {err}")
    sha = writer(args).set_labels(kind, args.namespace, args.name, sets, removes, args.overwrite)
    nudge(args)
    print(f"{kind.lower()}/{args.name} labeled (commit {sha[:7]})")
    return 0


def cmd_create_apply(args: argparse.Namespace) -> int:
    from .manifests.load import Limits, load_file

    path = args.filename
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"cannot read {path}: {e.strerror}")
    manifests = load_file(os.path.basename(path), data, {}, Limits())
    w = writer(args)
    verb = "created" if args.cmd == "create" else "configured"
    sha = w.add_file(
        os.path.basename(path),
        data,
        overwrite=args.cmd == "apply",
        message=f"{args.cmd} -f {os.path.basename(path)}: "
        + ", ".join(f"{m.key[0].lower()}/{m.key[2]}" for m in manifests),
    )
    nudge(args)
    for m in manifests:
        print(f"{m.key[0].lower()}/{m.key[2]} {verb}")
    print(f"(commit {sha[:7]})")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from .log import LEVELS, LOG_FILE

    path = os.path.join(state_dir(args), LOG_FILE)
    if not os.path.exists(path):
        die(f"no reconcile log in {state_dir(args)}")
    want_kind = want_name = None
    if args.object:
        k, _, want_name = args.object.partition("/")
        want_kind = kind_of(k)
    min_level = LEVELS.get(args.level or "debug", 0)

    def keep(ev: dict[str, Any]) -> bool:
        if args.commit:
            c = str(ev.get("commit") or ev.get("sha") or ev.get("revision") or "")
            if not c or not (c.startswith(args.commit) or args.commit.startswith(c)):
                return False
        if want_kind and (ev.get("kind") != want_kind or ev.get("name") != want_name):
            return False
        return LEVELS.get(ev.get("level", "info"), 20) >= min_level

    with open(path, encoding="utf-8") as f:
        while True:
            line = f.readline()
            if not line:
                if not args.follow:
                    return 0
                time.sleep(0.2)
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if keep(ev):
                print(json.dumps(ev) if args.output == "json" else _event_line(ev), flush=True)


def _event_line(ev: dict[str, Any]) -> str:
    skip = {"timestamp", "level", "event"}
    rest = " ".join(f"{k}={v}" for k, v in ev.items() if k not in skip)
    return f"{ev.get('timestamp', '')} {ev.get('level', ''):7} {ev.get('event', ''):24} {rest}"


def cmd_diff(args: argparse.Namespace) -> int:
    from .manifests.load import Limits
    from .plan import plan, render_diff
    from .source.git import GitReader
    from .source.revision import RevisionLoader

    store = open_store(args)
    src = store.get_meta("source") or {}
    reader = GitReader(src["repoDir"])
    sha = reader.resolve(args.rev or f"refs/heads/{src.get('branch')}")
    if not sha:
        die(f"unknown revision {args.rev}")
    manifests, _ = RevisionLoader(reader, src.get("path", ""), Limits()).load(sha)
    out = render_diff(plan(store.desired(), {m.key: m.obj for m in manifests}))
    reader.close()
    sys.stdout.write(out)
    return 1 if out else 0


def cmd_history(args: argparse.Namespace) -> int:
    store = open_store(args)
    revs = store.revisions(args.limit)
    if args.output == "json":
        print(json.dumps(printers.as_list(revs), indent=4))
        return 0
    rows = []
    for r in revs:
        result = r["result"] + (f" (reverted by {r['revertedBy'][:7]})" if r.get("revertedBy") else "")
        changed = ", ".join(f"{c['op']} {c['kind'].lower()}/{c['name']}" for c in (r.get("changes") or [])) or "-"
        rows.append(
            [
                r["sha"][:7],
                r["author"],
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r["time"] or 0)),
                (r["subject"] or "")[:50],
                result,
                changed if len(changed) < 60 else changed[:57] + "...",
            ]
        )
    print(printers.table(["REVISION", "AUTHOR", "TIME", "SUBJECT", "RESULT", "CHANGES"], rows))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from . import rolloutcli

    return rolloutcli.run(args)


def cmd_set_image(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    images = {}
    for item in args.images:
        c, sep, img = item.partition("=")
        if not sep or not img:
            die(f"invalid image spec {item} (use CONTAINER=IMAGE)")
        images[c] = img
    sha = writer(args).set_image(kind, args.namespace, args.name, images)
    nudge(args)
    print(f"{kind.lower()}.apps/{args.name} image updated (commit {sha[:7]})")
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
    if kind not in ("Deployment", "ReplicaSet"):
        die(f"cannot scale {args.kind}")
    if args.replicas < 0:
        die("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    sha = writer(args).scale(kind, args.namespace, args.name, args.replicas)
    nudge(args)
    print(f"{kind.lower()}.apps/{args.name} scaled (commit {sha[:7]})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="gitship's state dir (env GITSHIP_STATE_DIR; default ~/.gitship)")
    common.add_argument("-n", "--namespace", default="default")
    p = argparse.ArgumentParser(prog="gitship", description="Declarative GitOps for one machine.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("init", parents=[common], help="create a repository from the template")
    s.add_argument("dir")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("up", parents=[common], help="run the reconciler in the foreground")
    s.add_argument("repo", help="a local repository path or a git URL")
    s.add_argument("--runtime", default="inprocess", choices=["inprocess", "docker"])
    s.add_argument("--branch")
    s.add_argument("--path", help="the folder of the repository that holds the manifests")
    s.add_argument("--interval", type=float, default=30.0, help="seconds between fetches of a URL (default 30)")
    s.add_argument(
        "--service-cidr",
        default=None,
        help="ClusterIP range (default 127.96.0.0/16; with --runtime docker 10.97.0.0/16)",
    )
    s.add_argument("--pod-cidr", default="127.244.0.0/16")
    s.add_argument(
        "--dns-addr",
        default=None,
        help="where the cluster DNS listens (HOST:PORT; default 127.96.0.10:53; with --runtime docker "
        "the service CIDR's .10 on port 53, e.g. 10.97.0.10:53)",
    )
    s.add_argument("--node-address", default="0.0.0.0", help="host address for NodePort and LoadBalancer")
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("status", parents=[common])
    s.add_argument("-o", "--output", choices=["json"])
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("get", parents=[common])
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("-l", "--selector")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-o", "--output", choices=["wide", "json", "yaml"])
    s.add_argument("--show-labels", action="store_true")
    s.set_defaults(func=cmd_get)

    s = sub.add_parser("describe", parents=[common])
    s.add_argument("kind")
    s.add_argument("name")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser("logs", parents=[common])
    s.add_argument("pod")
    s.add_argument("-c", "--container")
    s.add_argument("-f", "--follow", action="store_true")
    s.set_defaults(func=cmd_logs)

    s = sub.add_parser("delete", parents=[common])
    s.add_argument("kind")
    s.add_argument("names", nargs="+")
    s.add_argument("--grace-period", type=float)
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("exec", parents=[common])
    s.add_argument("pod")
    s.add_argument("-c", "--container")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_exec)

    s = sub.add_parser("label", parents=[common])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("labels", nargs="+")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_label)

    for verb in ("create", "apply"):
        s = sub.add_parser(verb, parents=[common])
        s.add_argument("-f", "--filename", required=True)
        s.set_defaults(func=cmd_create_apply)

    s = sub.add_parser("events", parents=[common], help="read the structured reconcile log")
    s.add_argument("--commit")
    s.add_argument("--object", help="KIND/NAME")
    s.add_argument("--level", choices=["debug", "info", "warning", "error"])
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-o", "--output", choices=["json"])
    s.set_defaults(func=cmd_events)

    s = sub.add_parser("diff", parents=[common])
    s.add_argument("rev", nargs="?")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("history", parents=[common])
    s.add_argument("-o", "--output", choices=["json"])
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_history)

    s = sub.add_parser("rollout", parents=[common])
    s.add_argument("action", choices=["status", "history", "pause", "resume", "undo"])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("--timeout", type=float, default=0)
    s.add_argument("--revision", type=int)
    s.add_argument("--to-revision", type=int, default=0)
    s.add_argument("-w", "--watch", default="true")
    s.set_defaults(func=cmd_rollout)

    s = sub.add_parser("set", parents=[common])
    s.add_argument("what", choices=["image"])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("images", nargs="+")
    s.set_defaults(func=cmd_set_image)

    s = sub.add_parser("scale", parents=[common])
    s.add_argument("kind")
    s.add_argument("name")
    s.add_argument("--replicas", type=int, required=True)
    s.set_defaults(func=cmd_scale)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    try:
        return int(args.func(args) or 0)
    except NotFound as e:
        die(str(e))
    except GitshipError as e:
        die(str(e))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
