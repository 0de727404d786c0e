"""WeChat Pay API v2 wire format: signatures, safe XML, replies, refund `req_info` decryption.

Pure functions, no I/O, so the protocol tests can pin them to the published vectors and the
sandbox can share them. We do this ourselves rather than through wechatpy because wechatpy
verifies MD5 only (PROTOCOLS.md §0.2, §1.5), never verifies synchronous responses (§0.3), and
draws nonces from `random` (§1.11).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from typing import Any

import xmltodict
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
MAX_XML_BYTES = 64 * 1024

SUCCESS_XML = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)

_NONCE_ALPHABET = string.ascii_letters + string.digits
_FORBIDDEN_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class MalformedXML(ValueError):
    """The body is not a flat `<xml>` document we are willing to read."""


def new_nonce(length: int = 32) -> str:
    """A nonce from `secrets` (wechatpy's comes from `random.sample`, PROTOCOLS.md §1.11)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def _string_to_sign(params: Mapping[str, Any], key: str) -> bytes:
    """§1.2: non-empty values except `sign` (sign_type included), ASCII order, raw values."""
    items = []
    for name in sorted(params):
        value = params[name]
        if name == "sign" or value is None or value == "":
            continue
        items.append(f"{name}={value}")
    items.append(f"key={key}")
    return "&".join(items).encode("utf-8")


def sign(params: Mapping[str, Any], key: str, sign_type: str = MD5) -> str:
    """The v2 signature of `params` (upper-case hex), MD5 or HMAC-SHA256 (PROTOCOLS.md §1.2).

    In the HMAC form the API key is both the HMAC key and appended to the message.
    """
    message = _string_to_sign(params, key)
    if sign_type == MD5:
        # MD5 is what the protocol mandates, not our choice of hash.
        return hashlib.md5(message).hexdigest().upper()  # noqa: S324
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown v2 sign_type {sign_type!r}")


def infer_sign_type(params: Mapping[str, Any]) -> str | None:
    """`sign_type` when present, else from the sign length (32 MD5 / 64 HMAC), §1.5.

    An HMAC-signed order has been seen to produce notifications with a 64-character sign and
    no sign_type field (PROTOCOLS.md §1.5), which wechatpy rejects.
    """
    declared = params.get("sign_type")
    if declared:
        return declared if declared in (MD5, HMAC_SHA256) else None
    received = params.get("sign") or ""
    return {32: MD5, 64: HMAC_SHA256}.get(len(received))


def verify(params: Mapping[str, Any], key: str) -> bool:
    """Constant-time check of `params["sign"]` with the algorithm the message implies."""
    received = params.get("sign")
    sign_type = infer_sign_type(params)
    if not received or sign_type is None:
        return False
    expected = sign(params, key, sign_type)
    return hmac.compare_digest(expected.encode(), str(received).upper().encode())


def parse_xml(body: bytes | str) -> dict[str, str]:
    """A flat `<xml>` document → {name: text}; bare and CDATA values read alike.

    Refuses DTDs and entity declarations outright (WeChat never sends them; they are how XML
    bombs and external-entity reads get in), oversized bodies, nested or repeated elements and
    attributes. Whitespace inside values is kept exactly, because it is signed.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_XML_BYTES:
        raise MalformedXML("body too large")
    if _FORBIDDEN_XML.search(raw):
        raise MalformedXML("DTD or entity declaration")
    try:
        doc = xmltodict.parse(raw, disable_entities=True, strip_whitespace=False)
    except Exception as exc:  # expat errors and xmltodict's own, all mean "not our XML"
        raise MalformedXML(f"unparseable XML: {type(exc).__name__}") from exc
    if not isinstance(doc, dict) or list(doc) != ["xml"]:
        raise MalformedXML("root element must be <xml>")
    root = doc["xml"]
    if root is None:
        return {}
    if not isinstance(root, dict):
        if isinstance(root, str) and not root.strip():
            return {}
        raise MalformedXML("<xml> has no fields")
    fields: dict[str, str] = {}
    for name, value in root.items():
        if name == "#text":
            if value.strip():
                raise MalformedXML("text directly inside <xml>")
            continue
        if name.startswith("@"):
            raise MalformedXML("attributes are not expected")
        if value is None:
            fields[name] = ""
        elif isinstance(value, str):
            fields[name] = value
        else:
            raise MalformedXML(f"field {name!r} is nested or repeated")
    return fields


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: Mapping[str, Any]) -> bytes:
    """A flat `<xml>` document with every value in CDATA (None and "" omitted)."""
    parts = ["<xml>"]
    for name in sorted(fields):
        value = fields[name]
        if value is None or value == "":
            continue
        parts.append(f"<{name}>{_cdata(str(value))}</{name}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def failure_xml(message: str) -> bytes:
    """The FAIL acknowledgement; anything but the exact SUCCESS XML makes WeChat retry."""
    text = re.sub(r"[^0-9A-Za-z_\-. ]", "", message)[:64] or "FAIL"
    return (
        b"<xml><return_code><![CDATA[FAIL]]></return_code>"
        b"<return_msg><![CDATA[" + text.encode("ascii") + b"]]></return_msg></xml>"
    )


def refund_key(api_key: str) -> bytes:
    """key* = lower-case hex MD5 of the APIv2 key, its 32 ASCII bytes used as the AES-256 key."""
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().lower().encode("ascii")  # noqa: S324


def decrypt_req_info(req_info: str, api_key: str) -> bytes:
    """Decrypt a refund notification's `req_info` (PROTOCOLS.md §1.8).

    base64 → AES-256-ECB with key* → strict PKCS7 (128-bit blocks) unpadding. We do not use
    wechatpy's helpers: its encoder pads to 32-byte blocks (§1.8) and its decoder trusts the
    last byte without checking the padding.
    """
    try:
        data = base64.b64decode(req_info, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("req_info is not base64") from exc
    if not data or len(data) % 16:
        raise ValueError("req_info is not a whole number of AES blocks")
    # ECB is what WeChat chose for req_info; we only decrypt it.
    decryptor = Cipher(algorithms.AES(refund_key(api_key)), modes.ECB()).decryptor()  # noqa: S305
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise ValueError("bad padding: wrong key or corrupted req_info") from exc


def parse_refund_plaintext(plaintext: bytes) -> dict[str, str]:
    """The decrypted `<root>` document → {name: text}, with the same safety rules as parse_xml."""
    if _FORBIDDEN_XML.search(plaintext):
        raise MalformedXML("DTD or entity declaration")
    text = plaintext.decode("utf-8")
    # Reuse the flat-document rules by renaming the root element.
    match = re.fullmatch(r"\s*<root>(.*)</root>\s*", text, re.DOTALL)
    if not match:
        raise MalformedXML("root element must be <root>")
    return parse_xml("<xml>" + match.group(1) + "</xml>")
