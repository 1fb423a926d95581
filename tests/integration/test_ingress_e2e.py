"""Issue 15, end to end: Ingresses through a real `gitship up` daemon and its HAProxy.

Real git repositories, real pods in sandboxes (the tutorial's kubia app), real HTTP clients (curl,
http.client) and TLS clients (Python's ssl) against 127.0.0.1 on free high ports. Certificates are
made in the test (a CA and leaf certificates, with the `cryptography` package). No fixed sleeps.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import commit_file, git, wait_for
from tests.integration.test_services import Load

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app(name: str, version: str, replicas: int = 1, port_name: str = "") -> str:
    named = f", name: {port_name}" if port_name else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: kubia
        image: kubia:{version}
        ports: [{{containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - {{port: 80, targetPort: 8080{named}}}
"""


INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: sites
spec:
  rules:
  - host: alpha.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
  - host: beta.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: beta, port: {name: http}}}}
      - {path: /, pathType: Exact, backend: {service: {name: alpha, port: {number: 80}}}}
  - host: "*.wild.test"
    http:
      paths:
      - {path: /, pathType: ImplementationSpecific, backend: {service: {name: beta, port: {number: 80}}}}
"""


def get(port: int, host: str, path: str = "/", https: bool = False) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def version(body: str) -> str:
    return body.split()[2] if body.startswith("This is ") else body


def start(empty_repo: Path, gitship_factory, files: dict[str, str]):
    http_port, https_port = free_port(), free_port()
    for rel, text in files.items():
        commit_file(empty_repo, rel, text, f"add {rel}")
    g = gitship_factory(
        empty_repo,
        extra=[
            "--node-address",
            "127.0.0.1",
            "--ingress-http-port",
            str(http_port),
            "--ingress-https-port",
            str(https_port),
        ],
    )
    return g, http_port, https_port


def test_two_hosts_two_paths_on_one_port(empty_repo: Path, gitship_factory) -> None:
    g, port, _ = start(
        empty_repo,
        gitship_factory,
        {"alpha.yaml": app("alpha", "alpha"), "beta.yaml": app("beta", "beta", port_name="http"), "ing.yaml": INGRESS},
    )
    wait_for(lambda: len(g.running_pods("app=alpha")) == 1 and len(g.running_pods("app=beta")) == 1, 60)

    def routed() -> bool:
        return get(port, "alpha.test")[0] == 200 and get(port, "beta.test", "/api")[0] == 200

    wait_for(routed, 30, interval=0.2, what="the ingress routing both hosts")
    assert version(get(port, "alpha.test", "/anything")[1]) == "alpha"
    assert version(get(port, "alpha.test:%d" % port)[1]) == "alpha"  # a Host header with the port
    assert version(get(port, "beta.test", "/api")[1]) == "beta"
    assert version(get(port, "beta.test", "/api/v1/x")[1]) == "beta"
    assert version(get(port, "beta.test", "/")[1]) == "alpha"  # Exact /
    assert get(port, "beta.test", "/apix")[0] == 404  # element-wise Prefix; no default backend
    assert get(port, "beta.test", "/other")[0] == 404
    assert version(get(port, "x.wild.test", "/z")[1]) == "beta"
    assert get(port, "a.b.wild.test")[0] == 404  # a wildcard matches one label
    assert get(port, "nobody.test")[0] == 404

    # curl, with --resolve as a user would
    out = subprocess.run(
        ["curl", "-sS", "--resolve", f"beta.test:{port}:127.0.0.1", f"http://beta.test:{port}/api"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.returncode == 0 and version(out.stdout) == "beta", out

    # kubectl's views
    rows = [line.split() for line in g.cli("get", "ingress").stdout.splitlines()]
    assert rows[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert rows[1][:5] == ["sites", "<none>", "alpha.test,beta.test,*.wild.test", "127.0.0.1", "80"]
    described = g.cli("describe", "ing", "sites").stdout
    assert "Address:        127.0.0.1" in described and "beta.test" in described and "/api" in described
    assert "beta:http" in described and ":8080)" in described
    assert "gitship.io/ingress" in g.cli("get", "ingressclass").stdout
    st = g.cli("status").stdout
    assert f"127.0.0.1:{port}" in st and "Ingress:" in st
    ing = g.json("get", "ingress", "sites")
    assert ing["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]

    # the last Ingress gone: HAProxy stops and frees the port
    git(empty_repo, "rm", "-q", "ing.yaml")
    git(empty_repo, "commit", "-q", "-m", "no ingress")
    wait_for(lambda: _refused(port), 30, what="the ingress port freed")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


# --------------------------------------------------------------------------- TLS


def _ca() -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitship test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(ca: tuple[object, object], hosts: list[str]) -> tuple[str, str, int]:
    """(PEM certificate, PEM key, serial) for ``hosts``, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    crt_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return crt_pem, key_pem, serial


def tls_secret(name: str, crt: str, key: str) -> str:
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    return f"""apiVersion: v1
kind: Secret
metadata:
  name: {name}
type: kubernetes.io/tls
data:
  tls.crt: {b64(crt)}
  tls.key: {b64(key)}
"""


TLS_INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
spec:
  tls:
  - hosts: [alpha.test]
    secretName: alpha-tls
  - hosts: [beta.test]
    secretName: beta-tls
  rules:
  - host: alpha.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
  - host: beta.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: plain
  annotations:
    gitship.io/ssl-redirect: "false"
spec:
  tls:
  - hosts: [open.test]
    secretName: alpha-tls
  rules:
  - host: open.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 80}}}}
"""


def _context(ca_pem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem)
    return ctx


def _serial(port: int, host: str, ctx: ssl.SSLContext) -> int:
    from cryptography import x509

    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            der = s.getpeercert(binary_form=True)
    assert der
    return int(x509.load_der_x509_certificate(der).serial_number)


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port with the SNI and Host of ``host``."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext):
        super().__init__("127.0.0.1", port, context=ctx, timeout=5)
        self.sni = host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.sni)  # type: ignore[attr-defined]


def _https_get(conn: _SNIConnection, path: str = "/") -> tuple[int, str]:
    conn.request("GET", path, headers={"Host": conn.sni})
    r = conn.getresponse()
    return r.status, r.read().decode()


def test_tls_by_sni_redirect_and_rotation_by_commit(empty_repo: Path, gitship_factory) -> None:
    from cryptography.hazmat.primitives import serialization

    ca = _ca()
    ca_pem = ca[0].public_bytes(serialization.Encoding.PEM).decode()  # type: ignore[attr-defined]
    a_crt, a_key, a_serial = _leaf(ca, ["alpha.test", "open.test"])
    b_crt, b_key, b_serial = _leaf(ca, ["beta.test"])
    g, port, tls_port = start(
        empty_repo,
        gitship_factory,
        {
            "alpha.yaml": app("alpha", "alpha"),
            "beta.yaml": app("beta", "beta"),
            "secrets.yaml": tls_secret("alpha-tls", a_crt, a_key) + "---\n" + tls_secret("beta-tls", b_crt, b_key),
            "ing.yaml": TLS_INGRESS,
        },
    )
    wait_for(lambda: len(g.running_pods("app=alpha")) == 1 and len(g.running_pods("app=beta")) == 1, 60)
    ctx = _context(ca_pem)

    def served() -> bool:
        try:
            return _serial(tls_port, "beta.test", ctx) == b_serial
        except OSError:
            return False

    wait_for(served, 30, interval=0.2, what="HTTPS served")
    assert _serial(tls_port, "alpha.test", ctx) == a_serial  # chosen by SNI, verified against the CA
    conn = _SNIConnection("alpha.test", tls_port, ctx)
    status, body = _https_get(conn)
    assert status == 200 and version(body) == "alpha"
    beta = _SNIConnection("beta.test", tls_port, ctx)
    assert version(_https_get(beta)[1]) == "beta"
    beta.close()

    # curl over TLS: the CA made here, SNI from --resolve, HTTP/2 by ALPN
    ca_file = Path(g.state_dir).parent / "ca.pem"
    ca_file.write_text(ca_pem)
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(ca_file), "--resolve", f"alpha.test:{tls_port}:127.0.0.1",
         "-w", "\n%{http_version}", f"https://alpha.test:{tls_port}/"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body, _, http_version = out.stdout.rpartition("\n")
    assert version(body) == "alpha" and http_version == "2"

    # plain HTTP to a TLS host: 308 to https (ingress-nginx's default); not when the annotation says false
    status, _, headers = get(port, "alpha.test", "/x?y=1")
    assert status == 308 and headers["location"].startswith("https://alpha.test") and "/x?y=1" in headers["location"]
    assert version(get(port, "open.test")[1]) == "beta"

    # the key is in the state dir with mode 0600, and in no log
    pems = list(Path(g.state_dir, "ingress", "certs").glob("*.pem"))
    assert pems and all(p.stat().st_mode & 0o777 == 0o600 for p in pems)
    secret_line = a_key.splitlines()[1]
    assert secret_line not in g.output()

    # rotation by commit: the new certificate is served, the open keep-alive connection still works
    n_crt, n_key, n_serial = _leaf(ca, ["alpha.test", "open.test"])
    commit_file(
        empty_repo,
        "secrets.yaml",
        tls_secret("alpha-tls", n_crt, n_key) + "---\n" + tls_secret("beta-tls", b_crt, b_key),
        "rotate alpha's certificate",
    )
    g.wait_applied(git(empty_repo, "rev-parse", "HEAD"))
    wait_for(lambda: _serial(tls_port, "alpha.test", ctx) == n_serial, 30, interval=0.2, what="the new certificate")
    conn.auto_open = 0  # type: ignore[attr-defined]  # no silent reconnect: the request must use the old socket
    assert conn.sock is not None
    status, body = _https_get(conn)  # the connection opened before the rotation
    assert status == 200 and version(body) == "alpha"
    conn.close()


# --------------------------------------------------------------------------- rollout under load


def test_rollout_behind_ingress_drops_no_request(empty_repo: Path, gitship_factory) -> None:
    ingress = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: roll
spec:
  defaultBackend: {service: {name: roll, port: {number: 80}}}
"""
    g, port, _ = start(empty_repo, gitship_factory, {"roll.yaml": app("roll", "v1", replicas=4), "ing.yaml": ingress})
    wait_for(lambda: len(g.running_pods("app=roll")) == 4, 60, what="4 v1 pods ready")

    def four_served() -> bool:
        try:
            return len({get(port, "any.test")[1] for _ in range(16)}) == 4
        except OSError:
            return False

    wait_for(four_served, 30, interval=0.2, what="4 backends behind the ingress")
    with Load("127.0.0.1", port) as load:
        wait_for(lambda: load.versions.get("v1", 0) >= 50, 20, what="load running")
        t0 = time.monotonic()
        g.cli("set", "image", "deployment", "roll", "kubia=kubia:v2")
        g.wait_applied(git(empty_repo, "rev-parse", "HEAD"))

        def rolled() -> bool:
            d = g.json("get", "deploy", "roll")
            st = d.get("status") or {}
            pods = g.pods("app=roll")
            return (
                st.get("updatedReplicas") == 4
                and st.get("availableReplicas") == 4
                and len(pods) == 4
                and all(p["spec"]["containers"][0]["image"].endswith(":v2") for p in pods)
            )

        wait_for(rolled, 60, interval=0.2, what="the rollout to complete")
        took = time.monotonic() - t0
        n = load.versions.get("v2", 0)
        wait_for(lambda: load.versions.get("v2", 0) >= n + 50, 20, what="load on v2")
    engine = json.loads(g.cli("status", "-o", "json").stdout)["status"]["ingress"]
    print(
        f"ingress rollout: sent={load.sent} failed={len(load.failures)} versions={load.versions} took {took:.1f}s "
        f"reloads={engine['reloads']} server updates={engine['serverUpdates']}"
    )
    assert engine["serverUpdates"] > 0  # endpoint changes went through the runtime API
    assert not load.failures, (len(load.failures), load.sent, load.failures[:10])
    assert set(load.versions) == {"v1", "v2"}


# --------------------------------------------------------------------------- the template's example


def test_template_ingress_example_routes_two_hosts(empty_repo: Path, gitship_factory) -> None:
    example = (Path(__file__).resolve().parents[2] / "repo-template" / "examples" / "ingress.yaml").read_text()
    g, port, _ = start(empty_repo, gitship_factory, {"ingress.yaml": example})
    wait_for(lambda: len(g.running_pods("app=kubia")) == 2 and len(g.running_pods("app=kubia-v2")) == 1, 60)

    def routed() -> bool:
        return get(port, "kubia.example.com")[0] == 200 and get(port, "v2.kubia.example.com")[0] == 200

    wait_for(routed, 30, interval=0.2, what="the example's routes")
    assert version(get(port, "kubia.example.com", "/")[1]) == "v1"
    assert version(get(port, "kubia.example.com", "/v2/x")[1]) == "v2"
    assert version(get(port, "kubia.example.com", "/v2x")[1]) == "v1"
    assert version(get(port, "v2.kubia.example.com")[1]) == "v2"
    rows = [line.split() for line in g.cli("get", "ing").stdout.splitlines()]
    assert rows[1][:5] == ["kubia", "gitship", "kubia.example.com,*.kubia.example.com", "127.0.0.1", "80"]
