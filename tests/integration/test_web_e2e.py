"""The web view in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium, against a daemon on the tutorial's template with the web view on a free loopback port.

Log in through the link `gitship dashboard` prints; see the tutorial's pods; commit a new image and
watch the rollout picture change (without a reload) and finish; press "revert to here" and see the
revert commit and the old image serving; a rejected commit shows its file and line. Screenshots of
every page go to the test's tmp dir. Plus the security rules over plain HTTP: no session -> 401, a
change without the CSRF token -> 403, a login token works once.
"""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEMPLATE, Gitship, commit_file, git, pod_ready, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gitship]:
    from tests.conftest import NEEDS_SANDBOXES, SANDBOXES, _kill_leftovers, _remove_network

    if not SANDBOXES:
        pytest.skip(NEEDS_SANDBOXES)
    tmp = tmp_path_factory.mktemp("web")
    dest = tmp / "repo"
    p = subprocess.run([sys.executable, "-m", "reconciler.cli", "init", str(dest)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    git(dest, "config", "user.name", "Test Author")
    git(dest, "config", "user.email", "author@example.com")
    for name in ("deployment-v1.yaml", "svc.yaml"):
        commit_file(dest, f"apps/{name}", (TEMPLATE / "examples" / name).read_text(), f"add {name}")
    port = _free_port()
    g = Gitship(dest, tmp / "state", ["--web-addr", f"127.0.0.1:{port}", "--api-addr", f"127.0.0.1:{_free_port()}"])
    g.web = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    g.shots = tmp / "screenshots"  # type: ignore[attr-defined]
    g.shots.mkdir()  # type: ignore[attr-defined]
    g.start()
    try:
        wait_for(lambda: len(g.running_pods()) >= 5, 90, what="the tutorial's five pods ready")
        yield g
    finally:
        g.stop()
        _kill_leftovers(tmp)
        _remove_network(g.state_dir)


def login_url(g: Gitship) -> str:
    url = g.cli("dashboard", "--no-browser").stdout.strip()
    assert url.startswith(g.web + "/login?token="), url  # type: ignore[attr-defined]
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


def _opener(jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_NoRedirect()]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def _status(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None, **headers: str) -> int:
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with opener.open(req, timeout=20) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_status_shows_the_web_url(site: Gitship) -> None:
    st = site.status()["status"]
    assert st["webURL"] == site.web  # type: ignore[attr-defined]
    assert f"Web:           {site.web}" in site.cli("status").stdout  # type: ignore[attr-defined]


def test_no_session_is_401(site: Gitship) -> None:
    web = site.web  # type: ignore[attr-defined]
    o = _opener()
    for path in ("/", "/objects", "/rollouts", "/history", "/log", "/events", "/static/app.js", "/logs/default/kubia"):
        assert _status(o, web + path) == 401, path
    assert _status(o, web + "/history/HEAD/revert", b"csrf=x") == 401
    assert _status(o, web + "/", Cookie="gitship_session=forged") == 401


def test_login_token_works_once(site: Gitship) -> None:
    url = login_url(site)
    jar = http.cookiejar.CookieJar()
    o = _opener(jar)
    assert _status(o, url) == 303
    cookie = next(c for c in jar if c.name == "gitship_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert _status(o, site.web + "/") == 200  # type: ignore[attr-defined]
    assert _status(_opener(http.cookiejar.CookieJar()), url) == 401  # the second use
    bad = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
    assert _status(_opener(), bad) == 401


def test_change_without_csrf_is_403(site: Gitship) -> None:
    web = site.web  # type: ignore[attr-defined]
    jar = http.cookiejar.CookieJar()
    o = _opener(jar)
    assert _status(o, login_url(site)) == 303
    head = git(site.repo, "rev-parse", "HEAD").strip()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _status(o, web + "/rollouts/default/testqc/pause", b"", **form) == 403
    assert _status(o, web + "/rollouts/default/testqc/pause", b"csrf=wrong", **form) == 403
    assert _status(o, web + f"/history/{head}/revert", b"csrf=", **form) == 403
    assert _status(o, web + "/rollouts/default/testqc/pause", b"{}", **{"X-CSRF-Token": "nope"}) == 403
    assert git(site.repo, "rev-parse", "HEAD").strip() == head  # nothing was committed


@pytest.fixture(scope="module")
def browser(site: Gitship) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("no chromium / chromedriver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    drv = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def shot(g: Gitship, drv: Any, name: str) -> None:
    drv.save_screenshot(str(g.shots / f"{name}.png"))  # type: ignore[attr-defined]


def svg_state(drv: Any) -> dict[str, str]:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        el = drv.find_element("css selector", "svg.rollout")
        keys = (
            "data-new-rs",
            "data-new-available",
            "data-new-replicas",
            "data-old-replicas",
            "data-done",
            "data-paused",
        )
        return {k: str(el.get_attribute(k)) for k in keys}
    except (StaleElementReferenceException, WebDriverException):
        return {}


def test_browser_pages_rollout_and_revert(site: Gitship, browser: Any) -> None:
    g, drv, web = site, browser, site.web  # type: ignore[attr-defined]
    from selenium.webdriver.common.keys import Keys

    drv.get(login_url(g))
    assert drv.current_url.rstrip("/") == web
    wait_for(lambda: "True" in drv.find_element("id", "ready").text, 30, what="Ready True on the overview")
    wait_for(lambda: drv.find_element("id", "livedot").text == "live", 30, what="the event stream")
    shot(g, drv, "overview")
    drv.find_element("tag name", "body").send_keys(Keys.TAB)  # keyboard: the skip link comes first
    assert drv.switch_to.active_element.text == "Skip to content"

    drv.get(web + "/objects")
    names = [e.get_attribute("data-name") for e in drv.find_elements("css selector", "li.node[data-kind=Pod]")]
    assert "kubia" in names and "dnsutil-pod" in names and sum(n.startswith("testqc-") for n in names) == 3, names
    assert "apps/deployment-v1.yaml:" in drv.find_element("css selector", "li.node[data-kind=Deployment]").text
    shot(g, drv, "objects")

    drv.get(web + "/objects/Pod/default/kubia")
    wait_for(lambda: drv.find_element("id", "podlog").text.strip() != "", 30, what="the pod's log")
    shot(g, drv, "pod")

    # a new image: the rollout picture changes while it runs, without a reload, and finishes
    drv.get(web + "/rollouts/default/testqc")
    first = svg_state(drv)
    assert first["data-done"] == "true", first
    drv.execute_script("window.__sameDocument = 42;")
    path = Path(g.repo) / "apps" / "deployment-v1.yaml"
    v2 = commit_file(Path(g.repo), "apps/deployment-v1.yaml", path.read_text().replace(":v1", ":v2"), "image v2")
    seen: list[dict[str, str]] = []

    def finished() -> bool:
        s = svg_state(drv)
        if s and (not seen or seen[-1] != s):
            seen.append(s)
            if len(seen) == 3:
                shot(g, drv, "rollout-running")
        return (
            bool(s)
            and s["data-new-rs"] != first["data-new-rs"]
            and s["data-done"] == "true"
            and (s["data-old-replicas"] == "0" and s["data-new-available"] == "3")
        )

    wait_for(finished, 120, interval=0.1, what="the rollout to v2 drawn to its end")
    assert drv.execute_script("return window.__sameDocument;") == 42  # live updates, no reload
    assert len(seen) >= 3, seen  # the picture moved through the rollout
    assert any(s["data-done"] == "false" for s in seen), seen
    shot(g, drv, "rollout-done")
    g.wait_applied(v2)

    # history: revert to the commit before the image change
    drv.get(web + "/history")
    shot(g, drv, "history")
    before = git(g.repo, "rev-parse", "HEAD~1").strip()
    row = drv.find_element("css selector", f'tr[data-sha="{before}"]')
    row.find_element("css selector", "button.revert").click()
    drv.switch_to.alert.accept()
    wait_for(lambda: "reverted 1 commit" in drv.page_source, 60, what="the revert's message")
    subject = git(g.repo, "log", "-1", "--format=%s").strip()
    assert subject == 'Revert "image v2"', subject
    assert "image: qinchaowhut/allen:v1" in path.read_text()

    def old_image_serving() -> bool:
        pods = [p for p in g.running_pods("app=testing")]
        images = {c["image"] for p in pods for c in p["spec"]["containers"]}
        return len(pods) == 3 and images == {"qinchaowhut/allen:v1"} and all(pod_ready(p) for p in pods)

    wait_for(old_image_serving, 120, what="three ready pods of the old image")
    ip = g.json("get", "svc", "test-svc")["spec"]["clusterIP"]

    def answers_v1() -> bool:
        bodies = []
        for _ in range(6):
            with urllib.request.urlopen(f"http://{ip}/", timeout=5) as r:
                bodies.append(r.read().decode())
        return all(b.startswith("This is v1 running in pod testqc-") for b in bodies)

    wait_for(answers_v1, 60, what="the Service answering from v1 pods only")
    drv.get(web + f"/history/{v2}")
    assert "qinchaowhut/allen:v2" in drv.find_element("css selector", "pre.diff").text
    shot(g, drv, "commit")

    # pause and resume: commits, as `gitship rollout pause|resume` makes them
    for action, paused in (("pause", True), ("resume", False)):
        drv.get(web + "/rollouts/default/testqc")
        head = git(g.repo, "rev-parse", "HEAD").strip()
        drv.find_element("css selector", f'button[value="{action}"]').click()
        wait_for(lambda: drv.find_elements("css selector", ".flash.ok"), 30, what="the button's message")
        assert git(g.repo, "rev-parse", "HEAD").strip() != head
        assert ("paused: true" in path.read_text()) == paused
        state = "true" if paused else "false"

        def shown(s: str = state) -> bool:  # the page as loaded now (live updates are checked above)
            drv.get(web + "/rollouts/default/testqc")
            return svg_state(drv).get("data-paused") == s

        wait_for(shown, 30, interval=0.5, what=f"the picture {action}d")


BROKEN = """apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  containers:
  - name: c
    image: x
    ports:
    - containerPort: 99999
"""


def test_rejected_commit_shows_file_and_line(site: Gitship, browser: Any) -> None:
    g, drv, web = site, browser, site.web  # type: ignore[attr-defined]
    drv.get(login_url(g))
    sha = commit_file(Path(g.repo), "apps/broken.yaml", BROKEN, "a broken pod")

    def shown() -> bool:
        found = drv.find_elements("id", "rejected")
        return bool(found) and sha[:7] in found[0].text

    wait_for(shown, 60, what="the overview to show the rejected commit, live")
    rej = drv.find_element("id", "rejected")
    assert sha[:7] in rej.text
    assert "apps/broken.yaml:10" in rej.find_element("css selector", ".file").text, rej.text
    assert "containerPort: 99999" in rej.find_element("css selector", ".hit").text
    shot(g, drv, "rejected")
    drv.get(web + f"/history/{sha}")
    assert "apps/broken.yaml:10" in drv.find_element("css selector", ".err .file").text
    drv.get(web + "/log?commit=" + sha[:7])
    assert "revision_rejected" in drv.find_element("id", "logtable").text
    shot(g, drv, "log")
    drv.set_window_size(390, 844)  # a phone
    drv.get(web + "/objects")
    width = drv.execute_script("return document.documentElement.scrollWidth;")
    assert width <= 400, width  # no sideways scrolling
    shot(g, drv, "objects-phone")
    drv.set_window_size(1280, 800)
    git(g.repo, "rm", "-q", "apps/broken.yaml")
    git(g.repo, "commit", "-q", "-m", "remove the broken pod")
