"""The API server's credentials under the state dir: a CA, a serving certificate, a bearer token,
and the kubeconfig that names them.

Made at first start with ``cryptography``; kept across restarts (a kubeconfig handed out keeps
working). Key files, the token and the kubeconfig are 0600.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DIR = "kapi"
USER = "gitship"


@dataclass(frozen=True)
class Credentials:
    ca_cert: str  # paths
    cert: str
    key: str
    token: str  # the token itself


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    enc = serialization.Encoding.PEM
    return key.private_bytes(enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _make(dir_: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitship-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitship-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(os.path.join(dir_, "ca.key"), _key_pem(ca_key), 0o600)
    _write(os.path.join(dir_, "server.key"), _key_pem(key), 0o600)
    _write(os.path.join(dir_, "server.crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(os.path.join(dir_, "ca.crt"), ca.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure(state_dir: str) -> Credentials:
    """The credentials, made when missing."""
    dir_ = os.path.join(state_dir, DIR)
    os.makedirs(dir_, mode=0o700, exist_ok=True)
    if not all(os.path.exists(os.path.join(dir_, f)) for f in ("ca.crt", "server.crt", "server.key")):
        _make(dir_)
    token_path = os.path.join(dir_, "token")
    if not os.path.exists(token_path):
        _write(token_path, secrets.token_urlsafe(32).encode(), 0o600)
    with open(token_path, encoding="ascii") as f:
        token = f.read().strip()
    return Credentials(
        os.path.join(dir_, "ca.crt"), os.path.join(dir_, "server.crt"), os.path.join(dir_, "server.key"), token
    )


def kubeconfig_text(creds: Credentials, addr: str) -> str:
    """A kubeconfig whose cluster, user and context are all named ``gitship``."""
    with open(creds.ca_cert, "rb") as f:
        ca_data = base64.b64encode(f.read()).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": USER, "cluster": {"server": f"https://{addr}", "certificate-authority-data": ca_data}}],
        "users": [{"name": USER, "user": {"token": creds.token}}],
        "contexts": [{"name": USER, "context": {"cluster": USER, "user": USER, "namespace": "default"}}],
        "current-context": USER,
        "preferences": {},
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def kubeconfig_path(state_dir: str) -> str:
    return os.path.join(state_dir, "kubeconfig")


def write_kubeconfig(state_dir: str, creds: Credentials, addr: str) -> str:
    path = kubeconfig_path(state_dir)
    _write(path, kubeconfig_text(creds, addr).encode(), 0o600)
    return path
