"""`gitship dashboard`: a login link to the web view (reconciler/web), with a one-time token.

The daemon must be running with its web view on (``--web-addr``, default 127.0.0.1:8080). The
token is a file in the state dir (reconciler/web/auth.py): whoever can read and write the state dir
can log in. The link works once, within ten minutes; a browser opens on it where a display exists.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser

from reconciler.cli.common import Subparsers, die, open_store, socket_path, state_dir


def has_display() -> bool:
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_dashboard(args: argparse.Namespace) -> int:
    from reconciler.api import request
    from reconciler.web.auth import issue_token

    try:
        request(socket_path(args), "GET", "/healthz", timeout=5)
    except OSError:
        die(f"gitship is not running on the state dir {state_dir(args)}: start `gitship up` first")
    store = open_store(args)
    web = store.get_meta("web") or {}
    store.close()
    if not web.get("url"):
        die("the daemon serves no web view (started with --web-addr none, or its address was taken: see its log)")
    url = f"{web['url']}/login?token={issue_token(state_dir(args))}"
    print(url)
    print("(the link works once, within ten minutes)", file=sys.stderr)
    if not args.no_browser and has_display():
        webbrowser.open(url)
    return 0


def add_dashboard(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("dashboard", parents=[common], help="print a login link to the web view (and open a browser)")
    s.add_argument("--no-browser", action="store_true", help="only print the link")
    s.set_defaults(func=cmd_dashboard)
