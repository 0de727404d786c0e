"""Identifiers in the shapes the vendors use, so the API's validation meets realistic values.

- WeChat `transaction_id`: 28 digits, starting 42000… (§1.5 example 4200000540202005267407409907)
- WeChat `prepay_id`: `wx` + yyyyMMddHHmmss + 20 more characters (§1.3 example)
- WeChat `refund_id`: 29 digits starting 5000… (observed in refund replies)
- Alipay `trade_no`: 28 digits, yyyyMMdd + 22 + 18 digits (§5.5 example)
- openid: 28 characters starting `o`; Alipay user id: 16 digits starting 2088 (§5.5)
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import string
import threading
from datetime import datetime

from sandbox.clock import BEIJING

_ALNUM = string.ascii_letters + string.digits
_counter = itertools.count(1)
_counter_lock = threading.Lock()


def _sequence() -> int:
    with _counter_lock:
        return next(_counter)


def nonce(length: int = 32) -> str:
    """A random alphanumeric nonce (v2 nonce_str ≤ 32, v3 12-byte GCM nonce as text)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _digits(count: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(count))


def wechat_transaction_id(at: datetime) -> str:
    """28 digits: 4200000 + 4 sequence digits + yyyyMMdd + 9 random digits."""
    seq = f"{_sequence() % 10000:04d}"
    return f"4200000{seq}{at.astimezone(BEIJING):%Y%m%d}{_digits(9)}"


def wechat_prepay_id(at: datetime) -> str:
    return f"wx{at.astimezone(BEIJING):%Y%m%d%H%M%S}{secrets.token_hex(10)}"


def wechat_refund_id() -> str:
    return f"5000{_sequence() % 100000:05d}{_digits(20)}"


def alipay_trade_no(at: datetime) -> str:
    """28 digits like 2019082622001430620542154863."""
    return f"{at.astimezone(BEIJING):%Y%m%d}22{_sequence() % 100000:05d}{_digits(13)}"


def code_user(code: str) -> str:
    """The user part of a login code: `<user>` or `<user>.<nonce>` (sandbox convention)."""
    return code.split(".", 1)[0]


def openid_for(appid: str, user: str) -> str:
    """A stable openid per (appid, user): the same resident logs in again, same openid (§3)."""
    digest = hashlib.sha256(f"openid|{appid}|{user}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def unionid_for(user: str) -> str:
    digest = hashlib.sha256(f"unionid|{user}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def session_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def alipay_user_id(appid: str, user: str) -> str:
    """A stable 16-digit 2088… user id per (app, user)."""
    number = int.from_bytes(hashlib.sha256(f"alipay|{appid}|{user}".encode()).digest()[:8], "big")
    return f"2088{number % 10**12:012d}"


def alipay_logon_id(user: str) -> str:
    """A masked logon id as Alipay shows it (e.g. `138******00`)."""
    digest = hashlib.sha256(user.encode()).hexdigest()
    digits = "".join(str(int(c, 16) % 10) for c in digest[:4])
    return f"13{digits[0]}******{digits[2:4]}"


def v3_event_id(at: datetime) -> str:
    """`EV-2018022511223320873` shape (§2.4)."""
    return f"EV-{at.astimezone(BEIJING):%Y%m%d%H%M%S}{_digits(5)}"


def alipay_notify_id() -> str:
    return secrets.token_hex(16) + _digits(4)


def request_id() -> str:
    return "08" + secrets.token_hex(15).upper()
