"""WeChat Pay v2 XML on the wire: reading requests, writing signed replies and notifications.

WeChat's documents are flat `<xml>` elements; values may be bare or CDATA-wrapped (real
notifications mix them: bare `total_fee`, CDATA `cash_fee`, PROTOCOLS.md §1.1, §1.5). wechatpy
sends no Content-Type (§1.1), so the body is read whatever the header says.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import xmltodict

from sandbox import crypto, ids

MAX_BODY = 64 * 1024
SUCCESS_ACK = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class BadXML(ValueError):
    """Not a flat `<xml>` document (WeChat answers 'XML格式错误')."""


def parse(body: bytes) -> dict[str, str]:
    """A flat `<xml>` → {name: text}. Values are kept exactly (they are signed)."""
    if not body or len(body) > MAX_BODY or _DTD.search(body):
        raise BadXML("empty, oversized or with a DTD")
    try:
        doc = xmltodict.parse(body, disable_entities=True, strip_whitespace=False)
    except Exception as exc:  # expat and xmltodict errors alike mean "not XML"
        raise BadXML(str(exc)) from exc
    root = doc.get("xml") if isinstance(doc, dict) else None
    if root is None or isinstance(root, str):
        if isinstance(root, str) and not root.strip():
            return {}
        raise BadXML("root element must be <xml>")
    fields: dict[str, str] = {}
    for name, value in root.items():
        if name == "#text" or name.startswith("@"):
            continue
        if value is None:
            fields[name] = ""
        elif isinstance(value, str):
            fields[name] = value
        else:
            raise BadXML(f"{name} is nested or repeated")
    return fields


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(fields: Mapping[str, Any], *, bare: Collection[str] = ()) -> bytes:
    """`<xml>` with CDATA values, except the names in `bare` (written as plain text)."""
    parts = ["<xml>"]
    for name, value in fields.items():
        if value is None or value == "":
            continue
        text = str(value)
        parts.append(f"<{name}>{text if name in bare else _cdata(text)}</{name}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def signed(
    fields: Mapping[str, Any], key: str, sign_type: str = crypto.MD5, *, with_nonce: bool = True
) -> dict[str, Any]:
    """`fields` plus nonce_str and sign (over everything present, §1.2)."""
    out = {k: v for k, v in fields.items() if v is not None and v != ""}
    if with_nonce:
        out.setdefault("nonce_str", ids.nonce(32))
    out["sign"] = crypto.v2_sign(out, key, sign_type)
    return out


def fail(message: str, err_code: str | None = None) -> bytes:
    """A communication-level failure (return_code FAIL), unsigned as WeChat sends it."""
    fields: dict[str, str] = {"return_code": "FAIL", "return_msg": message}
    if err_code:
        fields.update(result_code="FAIL", err_code=err_code, err_code_des=message)
    return render(fields)


def is_success_ack(status: int, body: bytes) -> bool:
    """WeChat stops retrying only on HTTP 200 with `<return_code>SUCCESS</return_code>`
    (§1.5: the exact SUCCESS XML; bare or CDATA both parse the same)."""
    if status != 200:
        return False
    try:
        return parse(body.strip()).get("return_code") == "SUCCESS"
    except BadXML:
        return False
