"""SOPS-encrypted YAML files (age recipients): decrypt at load time, encrypt for ``create secret generic``.

Where it sits: pure (bytes/text in, text out; the age identities are passed in, read at the edge:
``reconciler.source.keys``). ``manifests/load.py`` calls ``decrypt_text`` on any manifest file with
a top-level ``sops:`` mapping, before parsing it; the decrypted text is never written anywhere.

The file format, as sops writes it (github.com/getsops/sops: aes/cipher.go, sops.go, stores/, age/):

* every encrypted leaf value is ``ENC[AES256_GCM,data:B64,iv:B64,tag:B64,type:T]``: AES-256-GCM
  with the file's 32-byte data key, a 32-byte nonce, and as additional data the value's path, the
  mapping keys from the document root joined and ended by ``:`` (``data:password:``; list indices
  are not part of it). ``T`` is ``str``, ``int``, ``float``, ``bool`` (``bytes``, ``time``,
  ``comment`` are read as text). The empty string is never encrypted;
* which leaves are encrypted: all but those under a key ending with ``unencrypted_suffix``
  (``_unencrypted`` when no rule is set), or per the one rule set in the metadata
  (``encrypted_suffix``, ``unencrypted_regex``, ``encrypted_regex``: a regex searched in every key of
  the path). The comment rules need the file's comments and are refused here;
* the MAC: SHA-512 over the plaintext of the leaves in document order (null values skipped; only the
  encrypted ones, after a fixed 32-byte prefix, under ``mac_only_encrypted``), as an upper-case hex
  string, itself encrypted as a ``str`` value with ``lastmodified`` (RFC 3339) as additional data;
* the data key is wrapped for each age recipient as an armored age file (``sops.age[].enc``, or one
  ``key_groups`` entry; Shamir-split keys over several groups are refused);
* the ``sops:`` mapping sits at the top of the first document and is no part of the data.

Decryption keeps the file's text: each ``ENC[...]`` scalar is replaced in place by its value (a
double-quoted string, or the number or boolean), and the ``sops:`` entry by as many blank lines, so
line numbers of later errors still point at the file in git. Unencrypted scalars stay as written.
The cryptography is the ``cryptography`` package's AESGCM and ``pyrage`` (age); none is written here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pyrage
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyrage import x25519
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "DEFAULT_ENCRYPTED_REGEX",
    "AgeKeys",
    "SopsError",
    "decrypt_text",
    "encrypt_documents",
    "is_encrypted",
    "parse_identities",
    "parse_recipients",
]

DEFAULT_ENCRYPTED_REGEX = "^(data|stringData)$"  # the Flux convention: only a Secret's values
DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
_MAC_ONLY_ENCRYPTED_INIT = bytes.fromhex("8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69")
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_SOPS_KEY = re.compile(r"(?m)^sops[ \t]*:")
_RULES = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex")
_COMMENT_RULES = ("unencrypted_comment_regex", "encrypted_comment_regex")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)$")
_NONPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
NULL = object()  # a YAML null leaf: walked but neither encrypted nor part of the MAC


class SopsError(Exception):
    """Why a file cannot be decrypted or encrypted. Never carries a plaintext value."""


# --------------------------------------------------------------------------- keys


class AgeKeys:
    """The age identities to decrypt with, or why there are none (a key file that cannot be read):
    what the edge (``reconciler.source.revision.read_age_keys``) hands the loader."""

    def __init__(self, identities: Sequence[x25519.Identity] = (), problem: str | None = None) -> None:
        self.identities = list(identities)
        self.problem = problem


def parse_identities(text: str) -> list[x25519.Identity]:
    """The age identities of a key file's text (``AGE-SECRET-KEY-1...`` lines; ``#`` comments and
    blank lines skipped), as ``SOPS_AGE_KEY_FILE`` holds them. Raises SopsError (no key in the message)."""
    out: list[x25519.Identity] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(x25519.Identity.from_str(line))
        except Exception:  # pyrage.IdentityError; the line itself is secret
            raise SopsError(f"line {n} is not an age identity (AGE-SECRET-KEY-1...)") from None
    return out


def parse_recipients(values: Sequence[str]) -> list[x25519.Recipient]:
    """age recipients (``age1...``); raises SopsError naming a malformed one."""
    out = []
    for v in values:
        try:
            out.append(x25519.Recipient.from_str(v.strip()))
        except Exception:
            raise SopsError(f"{v.strip()!r} is not an age recipient (age1...)") from None
    return out


# --------------------------------------------------------------------------- values


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _go_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    s = format(Decimal(repr(v)).normalize(), "f")
    return s


def _to_bytes(v: Any) -> bytes:
    """sops' ToBytes: the plaintext of a leaf as it goes into the MAC."""
    if isinstance(v, bool):
        return b"True" if v else b"False"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, float):
        return _go_float(v).encode()
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8")


def _plain_scalar(text: str) -> Any:
    """A plain (unquoted) YAML scalar as sops reads it (Go's yaml.v3 into interface{}: YAML 1.2 core
    schema; timestamps and ``yes``/``no`` stay strings)."""
    if text in ("", "~", "null", "Null", "NULL"):
        return NULL
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    low = text.lower()
    if low in (".inf", "+.inf"):
        return float("inf")
    if low == "-.inf":
        return float("-inf")
    plain = text.replace("_", "")
    if _INT.match(text):
        try:
            return _go_int(plain)
        except ValueError:
            pass
    if _YAML_FLOAT.match(plain):
        return float(plain)
    return text


def _go_int(plain: str) -> int:
    """strconv.ParseInt(s, 0, 64): 0x, 0o, 0b prefixes, and a leading 0 as octal."""
    sign = -1 if plain.startswith("-") else 1
    digits = plain.lstrip("+-")
    low = digits.lower()
    if low.startswith(("0x", "0o", "0b")):
        value = int(digits, 0)
    elif len(digits) > 1 and digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits, 10)
    value *= sign
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError("out of range")
    return value


def _leaf_value(node: ScalarNode) -> Any:
    if node.style:  # quoted or block: a string
        return node.value
    return _plain_scalar(node.value)


def _plain_data(node: Node) -> Any:
    """A node as plain data, scalars read as sops reads them (for the ``sops:`` metadata)."""
    if isinstance(node, MappingNode):
        return {str(k.value): _plain_data(v) for k, v in node.value}
    if isinstance(node, SequenceNode):
        return [_plain_data(v) for v in node.value]
    value = _leaf_value(node)
    return None if value is NULL else value


def _typed(plain: bytes, datatype: str) -> Any:
    """A decrypted value by its ``type:`` (sops' aes.Cipher.Decrypt)."""
    text = plain.decode("utf-8", errors="strict")
    if datatype == "int":
        return int(text)
    if datatype == "float":
        return float(text)
    if datatype == "bool":
        if text in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if text in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise ValueError("not a boolean")
    if datatype in ("str", "bytes", "time", "comment"):
        return text
    raise ValueError(f"unknown type {datatype!r}")


def _yaml_scalar(v: Any) -> str:
    """A decrypted value written back as one-line YAML that reads as the same value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return ".nan"
        if v in (float("inf"), float("-inf")):
            return ".inf" if v > 0 else "-.inf"
        r = repr(v)
        if "e" in r and "." not in r:
            r = r.replace("e", ".0e")
        return r
    quoted = json.dumps(str(v), ensure_ascii=False)
    return _NONPRINTABLE.sub(lambda m: "\\u%04x" % ord(m.group()), quoted)


def decrypt_value(value: str, key: bytes, aad: str) -> Any:
    """One ``ENC[AES256_GCM,...]`` value -> its plaintext value. Raises SopsError (ValueError inside)."""
    m = _ENC.match(value)
    if m is None:
        raise SopsError("a value is not in sops' ENC[AES256_GCM,...] format")
    try:
        data, iv, tag = (base64.b64decode(g, validate=True) for g in m.group(1, 2, 3))
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode("utf-8"))
        return _typed(plain, m.group(4))
    except InvalidTag:
        raise SopsError("a value failed authentication (wrong data key, or the value was altered)") from None
    except ValueError as e:
        raise SopsError(f"a value is malformed ({type(e).__name__})") from None


def encrypt_value(v: Any, key: bytes, aad: str, nonce: bytes | None = None) -> str:
    """A leaf value -> ``ENC[AES256_GCM,...]`` (the empty string stays empty, as sops does)."""
    if v == "" and isinstance(v, str):
        return ""
    if isinstance(v, bool):
        datatype, plain = "bool", _to_bytes(v)
    elif isinstance(v, int):
        datatype, plain = "int", _to_bytes(v)
    elif isinstance(v, float):
        datatype, plain = "float", _to_bytes(v)
    else:
        datatype, plain = "str", str(v).encode("utf-8")
    iv = nonce if nonce is not None else secrets.token_bytes(32)
    out = AESGCM(key).encrypt(iv, plain, aad.encode("utf-8"))
    return f"ENC[AES256_GCM,data:{_b64(out[:-16])},iv:{_b64(iv)},tag:{_b64(out[-16:])},type:{datatype}]"


# --------------------------------------------------------------------------- metadata


class _Meta:
    """The ``sops:`` mapping of a file, as far as decryption needs it."""

    def __init__(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            raise SopsError("the sops metadata is not a mapping")
        rules = [r for r in _RULES + _COMMENT_RULES if meta.get(r)]
        if len(rules) > 1:
            raise SopsError(f"the sops metadata sets more than one of {', '.join(rules)}")
        if rules and rules[0] in _COMMENT_RULES:
            raise SopsError(f"sops files using {rules[0]} are not supported")
        self.rule = rules[0] if rules else "unencrypted_suffix"
        self.pattern = str(meta[self.rule]) if rules else DEFAULT_UNENCRYPTED_SUFFIX
        self.regex = re.compile(self.pattern) if self.rule.endswith("_regex") else None
        self.mac_only_encrypted = bool(meta.get("mac_only_encrypted"))
        self.mac = meta.get("mac")
        self.lastmodified = meta.get("lastmodified")
        self.age = _age_entries(meta)

    def encrypted(self, path: Sequence[str]) -> bool:
        """sops' Tree.shouldBeEncrypted for a leaf at ``path`` (mapping keys only)."""
        if self.rule == "unencrypted_suffix":
            return not any(p.endswith(self.pattern) for p in path)
        if self.rule == "encrypted_suffix":
            return any(p.endswith(self.pattern) for p in path)
        assert self.regex is not None
        hit = any(self.regex.search(p) for p in path)
        return not hit if self.rule == "unencrypted_regex" else hit


def _age_entries(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(recipient, armored wrapped data key) of every age key of the file."""
    entries: list[Any] = list(meta.get("age") or [])
    groups = meta.get("key_groups") or []
    if len(groups) > 1:
        raise SopsError("sops files with several key_groups (Shamir secret sharing) are not supported")
    for g in groups:
        if isinstance(g, dict):
            entries.extend(g.get("age") or [])
    out = []
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("enc"), str):
            out.append((str(e.get("recipient", "")), e["enc"]))
    return out


def rfc3339(value: Any) -> str:
    """``lastmodified`` as Go's time.Format(time.RFC3339) writes it (the MAC's additional data)."""
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("z", "Z"))
        except ValueError:
            raise SopsError("the sops metadata has no valid lastmodified") from None
        if when.tzinfo is None:
            raise SopsError("the sops metadata has no valid lastmodified")
    offset = when.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 else "%s%02d:%02d" % ("+" if minutes > 0 else "-", abs(minutes) // 60, abs(minutes) % 60)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + zone


def _data_key(meta: _Meta, keys: AgeKeys) -> bytes:
    if not meta.age:
        raise SopsError("the file has no age recipient (only age is supported)")
    if keys.problem:
        raise SopsError(keys.problem)
    identities = keys.identities
    if not identities:
        raise SopsError(
            "no age key to decrypt it: pass --decryption-key-file, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"
        )
    for _, enc in meta.age:
        try:
            key = bytes(pyrage.decrypt(enc.encode("utf-8"), list(identities)))
        except Exception:  # pyrage.DecryptError: not for these identities, or damaged
            continue
        if len(key) != 32:
            raise SopsError("the data key unwrapped with age is not 32 bytes")
        return key
    named = list(dict.fromkeys(r for r, _ in meta.age))  # a file may list thousands: the error stays short
    recipients = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
    raise SopsError(f"none of the age keys given matches a recipient of the file ({recipients})")


# --------------------------------------------------------------------------- decrypt


def is_encrypted(text: str) -> bool:
    """Whether the text may be a sops file (a ``sops:`` key at the start of a line); cheap."""
    return _SOPS_KEY.search(text) is not None


def _sops_entry(doc: Node) -> tuple[Node, Node] | None:
    if isinstance(doc, MappingNode):
        for k, v in doc.value:
            if isinstance(k, ScalarNode) and k.value == "sops":
                return k, v
    return None


class _Walk:
    """One pass over the documents in order: decrypts leaves, feeds the MAC, records splices."""

    def __init__(self, meta: _Meta, key: bytes) -> None:
        self.meta = meta
        self.key = key
        self.mac = hashlib.sha512()
        if meta.mac_only_encrypted:
            self.mac.update(_MAC_ONLY_ENCRYPTED_INIT)
        self.splices: dict[int, tuple[int, str]] = {}

    def node(self, node: Node, path: list[str], top: bool = False) -> None:
        if isinstance(node, MappingNode):
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    raise SopsError("a mapping key is not a string")
                if top and k.value == "sops":
                    continue
                self.node(v, path + [k.value])
        elif isinstance(node, SequenceNode):
            for item in node.value:
                self.node(item, path)
        else:
            self.leaf(node, path)

    def leaf(self, node: ScalarNode, path: list[str]) -> None:
        value = _leaf_value(node)
        if value is NULL:
            return
        encrypted = self.meta.encrypted(path)
        if encrypted and isinstance(value, str) and value != "":
            value = decrypt_value(value, self.key, ":".join(path) + ":")
            self.splices[node.start_mark.index] = (node.end_mark.index, _yaml_scalar(value))
        elif encrypted and not isinstance(value, str):
            raise SopsError("a value that should be encrypted is not (the file was altered)")
        if encrypted or not self.meta.mac_only_encrypted:
            self.mac.update(_to_bytes(value))


def decrypt_text(text: str, keys: AgeKeys) -> str:
    """A sops-encrypted YAML file's text -> the same text with every value decrypted and the ``sops:``
    entry blanked out; the MAC verified. Raises SopsError (never with a plaintext value)."""
    try:
        docs = [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as e:
        raise SopsError(f"not valid YAML: {type(e).__name__}") from None
    entry = _sops_entry(docs[0]) if docs else None
    if entry is None:
        raise SopsError("no sops metadata at the top of the first document")
    meta = _Meta(_plain_data(entry[1]))
    key = _data_key(meta, keys)
    walk = _Walk(meta, key)
    for d in docs:
        walk.node(d, [], top=True)
    if not isinstance(meta.mac, str) or not meta.mac:
        raise SopsError("the file has no MAC")
    try:
        stored = decrypt_value(meta.mac, key, rfc3339(meta.lastmodified))
    except SopsError:
        raise SopsError("the MAC cannot be decrypted (the file was altered)") from None
    if stored != walk.mac.hexdigest().upper():
        raise SopsError("MAC mismatch: the file was altered after it was encrypted")
    for d in docs:
        found = _sops_entry(d)
        if found is not None:
            start, end = found[0].start_mark.index, found[1].end_mark.index
            walk.splices[start] = (end, "\n" * text.count("\n", start, end))
    out: list[str] = []
    pos = 0
    for start in sorted(walk.splices):
        end, new = walk.splices[start]
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- encrypt


def _encrypt_tree(node: Any, path: list[str], meta: _Meta, key: bytes, mac: Any) -> Any:
    if isinstance(node, dict):
        return {k: _encrypt_tree(v, path + [str(k)], meta, key, mac) for k, v in node.items()}
    if isinstance(node, list):
        return [_encrypt_tree(v, path, meta, key, mac) for v in node]
    if node is None:
        return None
    encrypted = meta.encrypted(path)
    if encrypted or not meta.mac_only_encrypted:
        mac.update(_to_bytes(node))
    return encrypt_value(node, key, ":".join(path) + ":") if encrypted else node


def encrypt_documents(
    docs: Sequence[dict[str, Any]],
    recipients: Sequence[str],
    now: datetime,
    encrypted_regex: str = DEFAULT_ENCRYPTED_REGEX,
    mac_only_encrypted: bool = False,
    version: str = "3.9.0",
    rule: tuple[str, str] | None = None,
) -> str:
    """Documents (mappings of str/int/float/bool/None, lists and mappings) -> a sops YAML file's text
    for the age ``recipients``, with only the values under keys matching ``encrypted_regex``
    encrypted (sops' ``--encrypted-regex``). ``rule`` replaces that choice with another of sops'
    rules, (name, pattern) with name one of ``unencrypted_suffix``, ``encrypted_suffix``,
    ``unencrypted_regex``, ``encrypted_regex`` (a ``.sops.yaml`` creation rule's setting).
    ``now`` is the file's ``lastmodified``."""
    if not recipients:
        raise SopsError("no age recipient to encrypt for")
    name, pattern = rule if rule is not None else ("encrypted_regex", encrypted_regex)
    if name not in _RULES:
        raise SopsError(f"{name} is not supported for encryption (use one of {', '.join(_RULES)})")
    if name.endswith("_regex"):
        try:
            re.compile(pattern)
        except re.error:
            raise SopsError(f"{name} {pattern!r} is not a valid regular expression") from None
    parsed = parse_recipients(recipients)
    key = secrets.token_bytes(32)
    meta = _Meta({name: pattern, "mac_only_encrypted": mac_only_encrypted})
    mac = hashlib.sha512()
    if mac_only_encrypted:
        mac.update(_MAC_ONLY_ENCRYPTED_INIT)
    out = [_encrypt_tree(dict(d), [], meta, key, mac) for d in docs]
    lastmodified = rfc3339(now.astimezone(timezone.utc))
    sops_meta: dict[str, Any] = {
        "age": [
            {"recipient": r.strip(), "enc": pyrage.encrypt(key, [p], armored=True).decode("ascii")}
            for r, p in zip(recipients, parsed)
        ],
        "lastmodified": lastmodified,
        "mac": encrypt_value(mac.hexdigest().upper(), key, lastmodified),
        name: pattern,
    }
    if mac_only_encrypted:
        sops_meta["mac_only_encrypted"] = True
    sops_meta["version"] = version
    if out:
        out[0] = {**out[0], "sops": sops_meta}
    return str(yaml.safe_dump_all(out, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16))
