"""`Idempotency-Key` handling for `POST /api/v1/payments` (Stripe-style).

The key is scoped to the resident account. The first request with a key claims it (a
committed row with no response yet); its final answer — success or a client error (4xx) — is
stored and replayed for every later request with the same key and the same body. The same key
with another body is `409 idempotency_conflict`; a second request while the first is still
running is `409 idempotency_in_progress`. A 5xx (the channel was down) releases the key, so
the resident's retry with the same key really retries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from api.db import Database, utcnow
from api.errors import Conflict, DomainError, InvalidInput
from api.payments.models import IdempotencyKey

MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise InvalidInput(
            "缺少 Idempotency-Key 请求头",
            code="idempotency_key_required",
            errors={"headers": {"Idempotency-Key": ["必填"]}},
        )
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key 格式有误",
            code="idempotency_key_invalid",
            errors={"headers": {"Idempotency-Key": ["最长 128 个可打印 ASCII 字符"]}},
        )
    return key


def run_once(
    db: Database,
    *,
    account_id: int,
    key: str,
    fingerprint: str,
    work: Callable[[], Answer],
) -> Answer:
    """Run `work` once per (account, key); replay its stored answer afterwards.

    Commits: the claim is committed before `work` runs (so a concurrent duplicate sees it),
    and the answer after.
    """
    session = db.session()
    existing = _find(account_id, key, db)
    if existing is None:
        session.add(IdempotencyKey(account_id=account_id, key=key, request_hash=fingerprint))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            existing = _find(account_id, key, db)
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        answer = work()
    except DomainError as exc:
        if exc.status >= 500:
            _release(db, account_id, key)
            raise
        answer = Answer(exc.status, exc.to_body())
    except BaseException:
        _release(db, account_id, key)
        raise
    session = db.session()
    # One UPDATE (the claim is ours): reading the row back first was a repeated statement.
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
        .values(status_code=answer.status, response=answer.body, completed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return answer


def _find(account_id: int, key: str, db: Database) -> IdempotencyKey | None:
    return (
        db.session()
        .scalars(
            select(IdempotencyKey).where(
                IdempotencyKey.account_id == account_id, IdempotencyKey.key == key
            )
        )
        .one_or_none()
    )


def _replay(row: IdempotencyKey, fingerprint: str) -> Answer:
    if row.request_hash != fingerprint:
        raise Conflict("该 Idempotency-Key 已用于另一笔不同的请求", code="idempotency_conflict")
    if row.response is None or row.status_code is None:
        raise Conflict("相同的请求正在处理中，请稍后再试", code="idempotency_in_progress")
    return Answer(row.status_code, row.response)


def _release(db: Database, account_id: int, key: str) -> None:
    session = db.session()
    session.rollback()
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.account_id == account_id,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
        )
    )
    session.commit()
