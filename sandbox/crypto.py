"""Cryptographic primitives the vendors use, implemented once on `cryptography`.

- v2 signatures: MD5 or HMAC-SHA256 over `k=v&…&key=API_KEY` (PROTOCOLS.md §1.2);
- RSA-2048 PKCS#1 v1.5 with SHA-256 (v3 Authorization and responses §2.2/§2.3, Alipay RSA2 §5.3);
- AES-256-GCM for v3 callbacks (§2.4) and AES-256-ECB with PKCS7(128) for v2 refund
  `req_info` (§1.8; not wechatpy's 32-byte padding).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"


# WeChat v2 -----------------------------------------------------------------------------------


def v2_string_to_sign(params: Mapping[str, Any], key: str) -> bytes:
    """§1.2: non-empty values except `sign` (sign_type included), ASCII order, raw values."""
    parts = [
        f"{name}={params[name]}"
        for name in sorted(params)
        if name != "sign" and params[name] is not None and params[name] != ""
    ]
    parts.append(f"key={key}")
    return "&".join(parts).encode("utf-8")


def v2_sign(params: Mapping[str, Any], key: str, sign_type: str = MD5) -> str:
    """Upper-case hex MD5 or HMAC-SHA256 (key used as HMAC key *and* appended, §1.2)."""
    message = v2_string_to_sign(params, key)
    if sign_type == MD5:
        return hashlib.md5(message).hexdigest().upper()  # noqa: S324 - the protocol's choice
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown sign_type {sign_type!r}")


def v2_check(params: Mapping[str, Any], key: str) -> bool:
    """WeChat's check of a request: the declared sign_type (default MD5) decides (§1.2)."""
    sign_type = params.get("sign_type") or MD5
    if sign_type not in (MD5, HMAC_SHA256):
        return False
    received = str(params.get("sign") or "")
    return hmac.compare_digest(v2_sign(params, key, sign_type).encode(), received.encode())


def v2_refund_key(api_key: str) -> bytes:
    """key* = lower-case hex MD5 of the API key, its 32 ASCII bytes as the AES-256 key (§1.8)."""
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().lower().encode("ascii")  # noqa: S324


def aes_ecb_encrypt(plaintext: bytes, key: bytes) -> str:
    """base64(AES-256-ECB(PKCS7-128(plaintext))) — the v2 `req_info` (§1.8)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - WeChat's mode
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


# RSA ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} is not an RSA private key")
    return key


@functools.lru_cache(maxsize=32)
def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{path} is not an RSA public key")
    return key


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """base64(SHA256withRSA, PKCS#1 v1.5) — WeChat v3 and Alipay RSA2."""
    return base64.b64encode(key.sign(message, PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, message, PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


# AES-GCM --------------------------------------------------------------------------------------


def aes_gcm_encrypt(plaintext: bytes, *, key: str, nonce: str, associated_data: str) -> str:
    """base64(ciphertext ‖ 16-byte tag) with the APIv3 key's UTF-8 bytes (§2.4)."""
    sealed = AESGCM(key.encode("utf-8")).encrypt(
        nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8")
    )
    return base64.b64encode(sealed).decode("ascii")
