"""Generate the sandbox's committed test keys (`python -m sandbox.keygen [--force]`).

Run once; the result is committed under `sandbox/keys/` so the API and the sandbox agree out of
the box. These keys are public by construction: never use them outside local development.

Private keys are PKCS#8 PEM (`BEGIN PRIVATE KEY`) because wechatpayv3 only accepts that header
(its `format_private_key` wraps anything else as PKCS#8); public keys are SubjectPublicKeyInfo
PEM, which python-alipay-sdk (pycryptodomex) and wechatpayv3 both read (PROTOCOLS.md §2.7, §5.1).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEYS_DIR = Path(__file__).resolve().parent / "keys"
#: Serial of the merchant API certificate; the same value as WECHAT_MCH_CERT_SERIAL's default.
MERCHANT_CERT_SERIAL = 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1

PAIRS = ("merchant", "wechatpay", "alipay_app", "alipay")


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _merchant_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A self-signed stand-in for `apiclient_cert.pem`, the merchant API certificate.

    It carries the merchant key pair and the serial the v3 `Authorization` header names, as the
    real certificate does (one certificate serves v2 secapi calls and v3 signing, §1.7, §2.2).
    """
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sandbox merchant (test only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "1900000109"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(MERCHANT_CERT_SERIAL)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def generate(directory: Path = KEYS_DIR, *, force: bool = False) -> list[Path]:
    """Write every key file; existing files are kept unless `force`."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    keys: dict[str, rsa.RSAPrivateKey] = {}
    for pair in PAIRS:
        private_path = directory / f"{pair}_private_key.pem"
        if private_path.exists() and not force:
            loaded = serialization.load_pem_private_key(private_path.read_bytes(), None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            keys[pair] = loaded
            continue
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys[pair] = key
        private_path.write_bytes(_private_pem(key))
        (directory / f"{pair}_public_key.pem").write_bytes(_public_pem(key))
        written += [private_path, directory / f"{pair}_public_key.pem"]
    cert_path = directory / "apiclient_cert.pem"
    if force or not cert_path.exists():
        cert_path.write_bytes(_merchant_certificate(keys["merchant"]))
        (directory / "apiclient_key.pem").write_bytes(_private_pem(keys["merchant"]))
        written += [cert_path, directory / "apiclient_key.pem"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.keygen", description=__doc__)
    parser.add_argument("--force", action="store_true", help="replace existing keys")
    parser.add_argument("--dir", type=Path, default=KEYS_DIR)
    args = parser.parse_args(argv)
    for path in generate(args.dir, force=args.force):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
