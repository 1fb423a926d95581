"""Ingress and IngressClass: validation, path and host matching (Kubernetes' "Examples" table), the
routing table (classes, backends by port number and name, endpoints, TLS by Secret, redirects,
defaultBackend), the HAProxy renderer, the pass's Ingress step and kubectl's views. Pure."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.controllers import ingress as ingctl
from reconciler.controllers.ingress import Route, Table, build_table, match, path_matches
from reconciler.ingress.render import NOT_FOUND, Listen, backend_id, render
from reconciler.manifests.validate import default_and_validate
from reconciler.printers import table_rows
from reconciler.printers_ingress import ingress_rules


def errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    _, errs = default_and_validate(obj, "f.yaml", 0)
    return [(e.field, e.message) for e in errs]


def ingress(spec: dict[str, Any], name: str = "web", ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": spec,
    }


def svc_backend(name: str, number: int | None = 80, port_name: str | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"name": port_name} if port_name else {"number": number}
    return {"service": {"name": name, "port": port}}


def rule(host: str | None, *paths: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    r: dict[str, Any] = {
        "http": {"paths": [{"path": p, "pathType": t, "backend": b} for p, t, b in paths]},
    }
    if host is not None:
        r["host"] = host
    return r


# -- validation -------------------------------------------------------------------------------


def test_valid_ingress_has_no_errors_and_no_defaults() -> None:
    obj = ingress(
        {
            "ingressClassName": "gitship",
            "rules": [rule("a.example.com", ("/", "Prefix", svc_backend("a"))), rule("*.example.com")],
            "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
        }
    )
    obj["spec"]["rules"][1]["http"]["paths"] = [
        {"path": "/x", "pathType": "Exact", "backend": svc_backend("b", None, "http")}
    ]
    new, errs = default_and_validate(obj, "f.yaml", 0)
    assert errs == []
    assert new["spec"] == obj["spec"]  # v1 defaults nothing (no pathType)


P = "spec.rules[0].http.paths[0]"
DB = "spec.defaultBackend.service"


def sb(name: str, port: dict[str, Any]) -> dict[str, Any]:
    return {"service": {"name": name, "port": port}}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({}, "spec", "either `defaultBackend` or `rules`"),
        ({"rules": [rule("a.com", ("/", None, svc_backend("a")))]}, P + ".pathType", "Required"),
        ({"rules": [rule("a.com", ("/", "Regex", svc_backend("a")))]}, P + ".pathType", "Unsupported"),
        ({"rules": [rule("a.com", ("foo", "Prefix", svc_backend("a")))]}, P + ".path", "absolute"),
        ({"rules": [rule("a.com", ("/a//b", "Exact", svc_backend("a")))]}, P + ".path", "'//'"),
        ({"rules": [rule("a.com", ("/a/..", "Prefix", svc_backend("a")))]}, P + ".path", "'/..'"),
        ({"rules": [rule("1.2.3.4", ("/", "Prefix", svc_backend("a")))]}, "spec.rules[0].host", "not an IP"),
        ({"rules": [rule("a.*.com", ("/", "Prefix", svc_backend("a")))]}, "spec.rules[0].host", "wildcard"),
        ({"rules": [rule("*.A_b.com", ("/", "Prefix", svc_backend("a")))]}, "spec.rules[0].host", "Invalid value"),
        ({"rules": [{"host": "a.com", "http": {"paths": []}}]}, "spec.rules[0].http.paths", "Required"),
        ({"defaultBackend": sb("a", {})}, DB + ".port", "required"),
        ({"defaultBackend": sb("a", {"number": 80, "name": "x"})}, DB + ".port", "both"),
        ({"defaultBackend": sb("a", {"number": 0})}, DB + ".port.number", "between"),
        ({"defaultBackend": sb("A", {"number": 80})}, DB + ".name", "Invalid"),
        ({"defaultBackend": sb("a", {"name": "no_pe"})}, DB + ".port.name", "Invalid"),
        ({"defaultBackend": {}}, "spec.defaultBackend", "required"),
        ({"defaultBackend": svc_backend("a"), "ingressClassName": "Bad_Class"}, "spec.ingressClassName", "Invalid"),
        ({"defaultBackend": svc_backend("a"), "tls": [{"hosts": ["1.1.1.1"]}]}, "spec.tls[0].hosts[0]", "IP"),
        ({"defaultBackend": svc_backend("a"), "tls": [{"secretName": "Bad_"}]}, "spec.tls[0].secretName", "Invalid"),
    ],
)  # fmt: skip
def test_ingress_rules(spec: dict[str, Any], field: str, words: str) -> None:
    errs = errors(ingress(spec))
    assert any(f == field and words in m for f, m in errs), errs


def test_ingressclass_validation() -> None:
    def ic(spec: Any) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"}, "spec": spec}

    assert errors(ic({"controller": "gitship.io/ingress"})) == []
    assert [f for f, _ in errors(ic({}))] == ["spec.controller"]
    assert [f for f, _ in errors(ic({"controller": "nodomain"}))] == ["spec.controller"]
    assert [f for f, _ in errors(ic({"controller": "a.io/" + "x" * 250}))] == ["spec.controller"]
    new, _ = default_and_validate(ic({"controller": "a.io/b"}), "f.yaml", 0)
    assert "namespace" not in new["metadata"]  # cluster-scoped


# -- matching: the table of Kubernetes' docs (Ingress, "Examples") ------------------------------

EXAMPLES = [
    # (type, rule path, request path, matches)
    ("Prefix", "/", "/anything", True),
    ("Exact", "/foo", "/foo", True),
    ("Exact", "/foo", "/bar", False),
    ("Exact", "/foo", "/foo/", False),
    ("Exact", "/foo/", "/foo", False),
    ("Prefix", "/foo", "/foo", True),
    ("Prefix", "/foo", "/foo/", True),
    ("Prefix", "/foo/", "/foo", True),
    ("Prefix", "/foo/", "/foo/", True),
    ("Prefix", "/aaa/bb", "/aaa/bbb", False),
    ("Prefix", "/aaa/bbb", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb/", "/aaa/bbb", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", True),
    ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", False),
    ("Prefix", "/aaa", "/ccc", False),
]


@pytest.mark.parametrize(("ptype", "rule_path", "path", "ok"), EXAMPLES)
def test_path_matching_examples(ptype: str, rule_path: str, path: str, ok: bool) -> None:
    assert path_matches(ptype, rule_path, path) is ok


def _table(*paths: tuple[str, str, str], host: str = "") -> Table:
    routes = tuple(sorted((Route(host, p, t, b, ("default", "i")) for p, t, b in paths), key=ingctl.route_order))
    return Table(routes=routes, ingresses=(("default", "i"),))


def test_longest_match_and_exact_first() -> None:
    t = _table(("/", "Prefix", "root"), ("/aaa", "Prefix", "aaa"), ("/aaa/bbb", "Prefix", "bbb"))
    assert match(t, "h", "/aaa/ccc") == "aaa"
    assert match(t, "h", "/aaa/bbb") == "bbb"
    assert match(t, "h", "/ccc") == "root"
    t = _table(("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact"))
    assert match(t, "h", "/foo") == "exact"
    assert match(t, "h", "/foo/x") == "prefix"
    assert match(_table(("/aaa", "Prefix", "aaa")), "h", "/ccc") is None


def test_hosts_exact_wildcard_any() -> None:
    routes = [
        Route("foo.bar.com", "/", "Prefix", "exact", ("d", "i")),
        Route("*.bar.com", "/", "Prefix", "wild", ("d", "i")),
        Route("", "/", "Prefix", "any", ("d", "i")),
        Route("only.com", "/x", "Exact", "onlyx", ("d", "i")),
    ]
    t = Table(routes=tuple(sorted(routes, key=ingctl.route_order)), default_backend="dflt", ingresses=(("d", "i"),))
    assert match(t, "foo.bar.com", "/") == "exact"
    assert match(t, "FOO.bar.com", "/") == "exact"
    assert match(t, "baz.bar.com", "/") == "wild"
    assert match(t, "bar.com", "/") == "any"  # a wildcard needs one label
    assert match(t, "a.b.bar.com", "/") == "any"  # and only one
    assert match(t, "only.com", "/x") == "onlyx"
    assert match(t, "only.com", "/y") == "dflt"  # the host matched: its default, not the any-host rule


# -- the table --------------------------------------------------------------------------------


def meta(name: str, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "creationTimestamp": extra.pop("ts", "2026-01-01T00:00:00Z"), **extra}


def service(name: str, *ports: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {"kind": "Service", "metadata": meta(name, ns), "spec": {"ports": list(ports)}}


def endpoints(
    name: str, ips: list[str], ports: list[dict[str, Any]], not_ready: list[str] = (), ns: str = "default"
) -> dict[str, Any]:  # type: ignore[assignment]
    subset: dict[str, Any] = {"addresses": [{"ip": ip} for ip in ips], "ports": ports}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"kind": "Endpoints", "metadata": meta(name, ns), "subsets": [subset]}


BUILTIN = ingctl.builtin_class("u1", 0.0)


def tls_secret(name: str, crt: str = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n") -> dict[str, Any]:
    key = "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n"
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    return {
        "kind": "Secret",
        "metadata": meta(name),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(crt), "tls.key": b64(key)},
    }


def test_backends_by_number_and_name_to_ready_endpoints() -> None:
    svcs = [
        service(
            "web", {"name": "http", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 81, "targetPort": 9000}
        ),
    ]
    eps = [
        {
            "kind": "Endpoints",
            "metadata": meta("web"),
            "subsets": [
                {
                    "addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}],
                    "notReadyAddresses": [{"ip": "10.0.0.3"}],
                    "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}],
                }
            ],
        }
    ]
    ing = ingress(
        {
            "rules": [
                rule(
                    "a.com",
                    ("/", "Prefix", svc_backend("web", 80)),
                    ("/admin", "Prefix", svc_backend("web", None, "admin")),
                )
            ]
        }
    )
    t = build_table([ing], [BUILTIN], svcs, eps, [])
    assert {b.name: b.servers for b in t.backends} == {
        "default/web:80": (("10.0.0.1", 8080), ("10.0.0.2", 8080)),
        "default/web:admin": (("10.0.0.1", 9000), ("10.0.0.2", 9000)),
    }
    assert match(t, "a.com", "/admin/x") == "default/web:admin"
    assert t.problems == ()


def test_missing_service_and_port_are_problems() -> None:
    ing = ingress(
        {"rules": [rule("a.com", ("/", "Prefix", svc_backend("nope")), ("/p", "Prefix", svc_backend("web", 99)))]}
    )
    t = build_table([ing], [BUILTIN], [service("web", {"port": 80})], [], [])
    reasons = [(r, m) for _, r, m in t.problems]
    assert ("BackendNotFound", 'service "default/nope" not found') in reasons
    assert any("does not have port 99" in m for _, m in reasons)
    assert all(not b.servers for b in t.backends)


def test_classes_decide_which_ingresses_are_served() -> None:
    other = {"kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    a = ingress({"defaultBackend": svc_backend("a")}, name="a")  # no class: the default (gitship)
    b = ingress({"defaultBackend": svc_backend("b"), "ingressClassName": "nginx"}, name="b")
    c = ingress({"defaultBackend": svc_backend("c")}, name="c", annotations={ingctl.ANN_LEGACY_CLASS: "nginx"})
    d = ingress({"defaultBackend": svc_backend("d"), "ingressClassName": "gitship"}, name="d")
    t = build_table([a, b, c, d], [BUILTIN, other], [], [], [])
    assert t.ingresses == (("default", "a"), ("default", "d"))
    # with another class marked default (and newer), an Ingress without a class is not gitship's
    newer = {
        **other,
        "metadata": {
            "name": "nginx",
            "creationTimestamp": "2030-01-01T00:00:00Z",
            "annotations": {ingctl.ANN_DEFAULT_CLASS: "true"},
        },
    }
    assert build_table([a, d], [BUILTIN, newer], [], [], []).ingresses == (("default", "d"),)


def test_default_backend_of_the_oldest_ingress_and_oldest_keeps_a_path() -> None:
    old = ingress(
        {"defaultBackend": svc_backend("old"), "rules": [rule("a.com", ("/", "Prefix", svc_backend("old")))]},
        name="old",
    )
    new = ingress(
        {"defaultBackend": svc_backend("new"), "rules": [rule("a.com", ("/", "Prefix", svc_backend("new")))]},
        name="new",
    )
    new["metadata"]["creationTimestamp"] = "2027-01-01T00:00:00Z"
    t = build_table([new, old], [BUILTIN], [], [], [])
    assert t.default_backend == "default/old:80"
    assert match(t, "a.com", "/") == "default/old:80"
    assert match(t, "x.com", "/") == "default/old:80"


def test_tls_secrets_by_host_and_redirects() -> None:
    ing = ingress(
        {
            "tls": [{"hosts": ["a.com"], "secretName": "a-tls"}, {"secretName": "missing"}],
            "rules": [
                rule("a.com", ("/", "Prefix", svc_backend("a"))),
                rule("b.com", ("/", "Prefix", svc_backend("a"))),
            ],
        }
    )
    t = build_table([ing], [BUILTIN], [], [], [tls_secret("a-tls")])
    assert [(c.name, c.hosts) for c in t.certs] == [("default/a-tls", ("a.com",))]
    assert "BEGIN CERTIFICATE" in t.certs[0].pem and "PRIVATE KEY" in t.certs[0].pem
    assert t.redirect_hosts == ("a.com",)
    assert [r for _, r, _ in t.problems] == ["BackendNotFound", "BackendNotFound", "TLSSecretNotFound"]
    for ann in (ingctl.ANN_SSL_REDIRECT, ingctl.ANN_NGINX_SSL_REDIRECT):
        off = {**ing, "metadata": {**ing["metadata"], "annotations": {ann: "false"}}}
        assert build_table([off], [BUILTIN], [], [], [tls_secret("a-tls")]).redirect_hosts == ()
    # a Secret of another namespace is not used
    other_ns = {**tls_secret("a-tls"), "metadata": meta("a-tls", "other")}
    assert build_table([ing], [BUILTIN], [], [], [other_ns]).certs == ()


# -- the renderer -----------------------------------------------------------------------------

LISTEN = Listen(("127.0.0.1", 8080), ("127.0.0.1", 8443), "/s/admin.sock", "/s/crt-list.txt", "/s/certs")


def test_render_routes_in_order_with_host_fallbacks() -> None:
    ing = ingress(
        {
            "tls": [{"hosts": ["a.com"], "secretName": "a-tls"}],
            "rules": [
                rule("a.com", ("/api", "Prefix", svc_backend("api")), ("/", "Exact", svc_backend("web"))),
                rule("*.b.com", ("/", "Prefix", svc_backend("web"))),
            ],
        }
    )
    t = build_table(
        [ing],
        [BUILTIN],
        [service("web", {"port": 80}), service("api", {"port": 80})],
        [endpoints("web", ["10.0.0.1"], [{"port": 8080}])],
        [tls_secret("a-tls")],
    )
    r = render(t, LISTEN)
    lines = [line.strip() for line in r.config.splitlines()]
    assert "bind 127.0.0.1:8080" in lines
    assert "bind 127.0.0.1:8443 ssl crt-list /s/crt-list.txt alpn h2,http/1.1" in lines
    uses = [line for line in lines if line.startswith("use_backend")]
    assert uses == [
        'use_backend be_default__api:80 if { var(txn.host) -m str "a.com" } { path -m str "/api" } || '
        '{ var(txn.host) -m str "a.com" } { path -m beg "/api/" }',
        'use_backend be_default__web:80 if { var(txn.host) -m str "a.com" } { path -m str "/" }',
        f'use_backend {NOT_FOUND} if {{ var(txn.host) -m str "a.com" }}',
        "use_backend be_default__web:80 if { var(txn.host) -m reg '^[^.]+\\.b\\.com$' }",
        f"use_backend {NOT_FOUND} if {{ var(txn.host) -m reg '^[^.]+\\.b\\.com$' }}",
    ]
    assert 'http-request redirect scheme https code 308 if !{ ssl_fc } { var(txn.host) -m str "a.com" }' in lines
    assert "server s1 10.0.0.1:8080" in lines and "server s2 127.0.0.1:1 disabled" in lines
    assert f"default_backend {NOT_FOUND}" in lines
    assert r.crt_list == "/s/certs/cert-0.pem a.com\n" and list(r.certs) == ["cert-0.pem"]
    for header in ("X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port"):
        assert any(header in line for line in lines)
    assert "option forwardfor" in lines and "option idle-close-on-response" in lines


def test_render_without_certs_or_ports_binds_less() -> None:
    t = build_table([ingress({"defaultBackend": svc_backend("a")})], [BUILTIN], [], [], [])
    r = render(t, Listen(None, ("127.0.0.1", 8443), "/s", "/c", "/d"))
    assert "    bind " not in r.config and r.crt_list == "" and r.certs == {}
    assert f"default_backend {backend_id('default/a:80')}" in r.config
    assert r.slots == {"default/a:80": [None] * 4}  # no endpoints: four empty slots, HAProxy answers 503
    assert r.config.count("127.0.0.1:1 disabled") == 4


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    ing = ingress(
        {
            "rules": [
                rule("a-b.com", ("/x", "Prefix", svc_backend("web"))),
                rule("*.w-x.com", ("/", "Exact", svc_backend("web"))),
            ]
        }
    )
    t = build_table(
        [ing], [BUILTIN], [service("web", {"port": 80})], [endpoints("web", ["10.0.0.1"], [{"port": 8080}])], []
    )
    r = render(t, Listen(("127.0.0.1", 1), None, str(tmp_path / "a.sock"), str(tmp_path / "l"), str(tmp_path)))
    (tmp_path / "h.cfg").write_text(r.config)
    p = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@given(
    st.lists(
        st.tuples(st.sampled_from(["Exact", "Prefix"]), st.lists(st.sampled_from(["a", "b", "ab"]), max_size=3)),
        max_size=5,
    ),
    st.lists(st.sampled_from(["a", "b", "ab", ""]), max_size=4),
)
def test_match_is_the_longest_matching_path(rules: list[tuple[str, list[str]]], req: list[str]) -> None:
    """Property: the chosen route matches, and no matching route is longer (or Exact at equal length)."""
    routes = tuple(
        sorted(
            {Route("", "/" + "/".join(p), t, f"{t}:/{'/'.join(p)}", ("d", "i")) for t, p in rules},
            key=ingctl.route_order,
        )
    )
    t = Table(routes=routes, ingresses=(("d", "i"),))
    path = "/" + "/".join(req)
    got = match(t, "h", path)
    matching = [r for r in routes if path_matches(r.path_type, r.path, path)]
    if not matching:
        assert got is None
        return
    chosen = next(r for r in routes if r.backend == got)
    assert path_matches(chosen.path_type, chosen.path, path)
    assert ingctl.route_order(chosen) <= min(ingctl.route_order(r) for r in matching)


# -- kubectl's views --------------------------------------------------------------------------


def test_get_and_describe_rules() -> None:
    ing = ingress(
        {
            "ingressClassName": "gitship",
            "tls": [{"hosts": ["a.com"], "secretName": "s"}],
            "rules": [
                rule("a.com", ("/", "Prefix", svc_backend("web"))),
                rule("b.com", ("/x", "Exact", svc_backend("nope"))),
            ],
        }
    )
    ing["status"] = ingctl.ingress_status("127.0.0.1")
    headers, rows = table_rows("Ingress", [ing], 0.0, _opts())
    assert headers == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert rows[0][:5] == ["web", "gitship", "a.com,b.com", "127.0.0.1", "80, 443"]
    text = ingress_rules(ing, [service("web", {"port": 80})], [endpoints("web", ["10.0.0.1"], [{"port": 8080}])])
    assert "web:80 (10.0.0.1:8080)" in text and "nope:80 (<error:" in text and "a.com" in text
    headers, rows = table_rows("IngressClass", [BUILTIN], 0.0, _opts())
    assert headers == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"] and rows[0][:3] == [
        "gitship",
        "gitship.io/ingress",
        "<none>",
    ]


def _opts() -> Any:
    from reconciler.printers import TableOptions

    return TableOptions()


# -- the pass's Ingress step --------------------------------------------------------------------


def test_sync_step_makes_the_class_status_and_events() -> None:
    from reconciler.sync.ingress import sync_ingresses
    from reconciler.sync.model import Ids, Memory, Observed, PassInput, Settings
    from reconciler.sync.work import Work

    ing = ingress({"rules": [rule("a.com", ("/", "Prefix", svc_backend("nope")))]})
    ing["metadata"]["generation"] = 1
    inp = PassInput(
        {},
        {},
        Observed(),
        Memory(),
        Settings("10.96.0.0/16", node_address="127.0.0.1"),
        Ids(lambda: "u", lambda: ("x", "u")),
        0.0,
    )
    w = Work(inp)
    w.cluster.put(ing)  # as git's step puts a new Ingress
    sync_ingresses(w)
    assert w.cluster.get(("IngressClass", "", "gitship")) is not None
    assert w.cluster.get(("Ingress", "default", "web"))["status"] == {
        "loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}
    }
    assert [(e["type"], e["reason"]) for e in w.events] == [("Normal", "Sync"), ("Warning", "BackendNotFound")]
    # the next pass, nothing changed: no new events
    w2 = Work(
        PassInput({}, {k: v for k, v in w.cluster.objects.items()}, Observed(), Memory(), inp.settings, inp.ids, 1.0)
    )
    sync_ingresses(w2)
    assert w2.events == []


def test_through_decide_settles_and_an_edit_syncs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the whole pass: created with its status, the built-in class and one Sync event; the
    next passes change nothing; a spec edit in git brings one more Sync."""
    from reconciler.manifests.model import obj_key
    from tests.unit import test_reconcile_pass as rp

    monkeypatch.setattr(rp, "key", obj_key)  # its helper expects a namespace; the class has none
    World, put_keys, reasons = rp.World, rp.put_keys, rp.reasons

    ing = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"defaultBackend": svc_backend("web")},
    }
    w = World(ing)
    ch = w.step()
    assert ("Sync", "Ingress", "web") in reasons(ch)
    live = w.live[("Ingress", "default", "web")]
    assert live["status"] == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    assert ("IngressClass", "", "gitship") in w.live
    for _ in range(2):
        ch = w.step()
        assert not put_keys(ch) and not ch.events
    w.desired[("Ingress", "default", "web")] = {**ing, "spec": {"defaultBackend": svc_backend("web", 81)}}
    ch = w.step()
    assert reasons(ch) == [("BackendNotFound", "Ingress", "web"), ("Sync", "Ingress", "web")]  # no Service web
    assert w.live[("Ingress", "default", "web")]["status"]["loadBalancer"]["ingress"]


def test_server_slots_keep_places_and_change_through_the_runtime_api() -> None:
    from reconciler.ingress.render import assign_slots, slot_commands

    def table(*servers: tuple[str, int]) -> Table:
        return Table(backends=(ingctl.Backend("ns/web:80", tuple(servers)),), ingresses=(("ns", "i"),))

    a, b, c = ("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080)
    s1 = assign_slots({}, table(a, b))
    assert s1 == {"ns/web:80": [a, b, None, None]}
    s2 = assign_slots(s1, table(b, c))  # a leaves, c comes: b keeps its slot, c takes a free one
    assert s2 == {"ns/web:80": [c, b, None, None]}
    assert slot_commands(s1, s2) == [
        "set server be_ns__web:80/s1 addr 10.0.0.3 port 8080",
        "set server be_ns__web:80/s1 state ready",
    ]
    s3 = assign_slots(s2, table(b))
    assert slot_commands(s2, s3) == ["set server be_ns__web:80/s1 state maint"]
    many = [(f"10.0.1.{i}", 8080) for i in range(5)]
    s4 = assign_slots(s3, table(*many))
    assert len(s4["ns/web:80"]) == 8 and slot_commands(s3, s4) is None  # grew: a reload
    r1 = render(table(a, b), LISTEN, s1)
    r2 = render(table(b, c), LISTEN, s1)
    assert r1.structure == r2.structure and r1.config != r2.config and r2.slots == s2
