"""Accounts: resident login (upsert by channel identity), staff login and staff creation.

Services flush, never commit; the routes and the CLI commit at the edge (STYLE.md 4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from api.audit.service import record
from api.auth.models import STAFF_ROLES, ResidentAccount, StaffAccount, StaffLoginFailure
from api.auth.providers import IdentityProvider, LoginRejected, LoginThrottled, LoginUnavailable
from api.auth.tokens import TokenKind, issue_token
from api.config import Config
from api.db import utcnow
from api.errors import InvalidInput, TooManyRequests, Unauthorized, UpstreamError
from api.households.models import Town, Village
from api.throttle import growing_delay, seconds_until_allowed

log = logging.getLogger(__name__)

PASSWORD_METHOD = "scrypt"
MIN_PASSWORD_LENGTH = 8
DISTRICT_ROLES = ("finance", "department", "tax", "auditor", "hr_bureau", "medical_bureau")
# Checked when the username is unknown, so that a miss costs as much as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def issue(settings: Config, *, kind: TokenKind, account_id: int) -> IssuedToken:
    token = issue_token(secret_key=settings.SECRET_KEY, kind=kind, account_id=account_id)
    return IssuedToken(token=token, expires_in=settings.TOKEN_TTL_SECONDS)


def login_resident(
    session: Session, *, provider: IdentityProvider, code: str, remote_addr: str | None
) -> ResidentAccount:
    """Exchange a mini-program login code for the resident's account (created on first login).

    The gateway is called before anything is written, so a refused code leaves no row behind.
    """
    try:
        external_id = provider.identify(code)
    except LoginRejected as exc:
        raise Unauthorized("登录凭证无效或已使用，请重新登录", code="login_failed") from exc
    except LoginThrottled as exc:
        raise TooManyRequests("登录过于频繁，请稍后再试") from exc
    except LoginUnavailable as exc:
        raise UpstreamError("登录服务暂时不可用，请稍后再试") from exc
    account = upsert_resident(session, channel=provider.channel, external_id=external_id)
    log.info("resident login: account=%s channel=%s", account.id, provider.channel)
    return account


def upsert_resident(session: Session, *, channel: str, external_id: str) -> ResidentAccount:
    """The account for (channel, external id); two first logins racing end on one row."""
    query = select(ResidentAccount).where(
        ResidentAccount.channel == channel, ResidentAccount.external_id == external_id
    )
    account = session.scalars(query).one_or_none()
    if account is None:
        try:
            with session.begin_nested():
                account = ResidentAccount(channel=channel, external_id=external_id)
                session.add(account)
        except IntegrityError:
            account = session.scalars(query).one()
    account.last_login_at = utcnow()
    session.flush()
    return account


class StaffLoginThrottled(TooManyRequests):
    """Too many failed staff logins for this username or from this address."""

    code = "login_throttled"
    message = "登录失败次数过多，请稍后再试"


@dataclass(frozen=True)
class LoginLimits:
    """Failures allowed in `window_seconds`: per username from one address (then locked),
    per username from anywhere (then growing pauses, at most `delay_cap_seconds`), per
    address whatever the usernames (then locked)."""

    max_failures: int
    window_seconds: int
    address_max_failures: int = 50
    delay_cap_seconds: int = 60


def login_staff(
    session: Session,
    *,
    username: str,
    password: str,
    remote_addr: str | None,
    limits: LoginLimits,
    now: datetime | None = None,
) -> StaffAccount:
    """Check a staff member's password; a miss and a wrong password look the same.

    Throttled before the password is even looked at (`api.throttle`), so a guesser learns
    nothing and cannot keep trying, while nobody can lock a colleague out:
    - a username that failed `max_failures` times from THIS address is refused from it
      until the oldest counted failure leaves the window (the guesser's own address);
    - a username's failures from every address only pause it, the pause doubling with each
      failure past `max_failures` up to `delay_cap_seconds` — finance at its own address
      waits that long at most, whatever an attacker elsewhere types;
    - an address past `address_max_failures` (whatever usernames) is refused for the window.
    Refused attempts are not failures and do not lengthen anything. The caller commits on
    every outcome: the failure rows and the audit events must outlive the 401/429.
    """
    now = now or utcnow()
    name = username.strip()[:64]
    addr = (remote_addr or "unknown")[:64]
    at = StaffLoginFailure.at
    window = limits.window_seconds
    wait = max(
        seconds_until_allowed(
            session,
            at,
            (StaffLoginFailure.username == name) & (StaffLoginFailure.remote_addr == addr),
            allowed=limits.max_failures,
            window_seconds=window,
            now=now,
        ),
        seconds_until_allowed(
            session,
            at,
            StaffLoginFailure.remote_addr == addr,
            allowed=limits.address_max_failures,
            window_seconds=window,
            now=now,
        ),
        growing_delay(
            session,
            at,
            StaffLoginFailure.username == name,
            free=limits.max_failures,
            window_seconds=window,
            now=now,
            cap_seconds=limits.delay_cap_seconds,
        ),
    )
    if wait > 0:
        _refuse(session, None, remote_addr, "throttled")
        raise StaffLoginThrottled(retry_after=wait)
    staff = session.scalars(select(StaffAccount).where(StaffAccount.username == name)).one_or_none()
    ok = check_password_hash(staff.password_hash if staff else _DUMMY_HASH, password)
    if staff is None or not ok or not staff.active:
        session.add(StaffLoginFailure(username=name, remote_addr=addr, at=now))
        _refuse(session, staff, remote_addr, "inactive" if staff and ok else "bad_credentials")
        raise Unauthorized("用户名或密码错误", code="login_failed")
    # Only this address's failures: an attacker's own lock must not lift when finance logs in.
    session.execute(
        delete(StaffLoginFailure).where(
            StaffLoginFailure.username == name, StaffLoginFailure.remote_addr == addr
        )
    )
    record(
        session,
        actor=f"staff:{staff.id}",
        action="staff.login",
        subject=f"staff:{staff.id}",
        remote_addr=remote_addr,
    )
    session.flush()
    return staff


def _refuse(
    session: Session, staff: StaffAccount | None, remote_addr: str | None, reason: str
) -> None:
    record(
        session,
        actor=f"staff:{staff.id}" if staff else "anonymous",
        action="staff.login",
        subject=f"staff:{staff.id}" if staff else "",
        outcome="refused",
        detail={"reason": reason},
        remote_addr=remote_addr,
    )
    session.flush()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def create_staff(
    session: Session,
    *,
    username: str,
    role: str,
    password: str,
    display_name: str | None = None,
    town: str | None = None,
    village: str | None = None,
    department: str | None = None,
) -> StaffAccount:
    """Create a staff account, checking that its role has the scope the role needs.

    agent → one village (by code); town → one town (by name or code); department → its
    department name; finance, tax and auditor see the whole district and take no scope.
    """
    errors: dict[str, list[str]] = {}
    username = username.strip()
    if not username or len(username) > 64:
        errors["username"] = ["用户名应为 1–64 个字符"]
    if role not in STAFF_ROLES:
        errors["role"] = [f"角色应为 {', '.join(STAFF_ROLES)} 之一"]
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = [f"密码至少 {MIN_PASSWORD_LENGTH} 位"]
    village_row: Village | None = None
    town_row: Town | None = None
    if village:
        village_row = session.scalars(select(Village).where(Village.code == village)).one_or_none()
        if village_row is None:
            errors["village"] = ["未找到该村居代码"]
    if town:
        town_row = session.scalars(
            select(Town).where((Town.name == town) | (Town.code == town))
        ).one_or_none()
        if town_row is None:
            errors["town"] = ["未找到该镇(街)"]
    if role == "agent" and village_row is None and "village" not in errors:
        errors["village"] = ["代办员必须指定村居"]
    if role == "town" and town_row is None and "town" not in errors:
        errors["town"] = ["镇(街)账号必须指定镇(街)"]
    if role == "department":
        from api.departments.codes import ALIASES, CODES

        department = ALIASES.get((department or "").strip(), (department or "").strip())
        if not department:
            errors["department"] = ["部门账号必须指定部门"]
        elif department not in CODES:
            errors["department"] = [f"部门应为 {', '.join(CODES)} 之一"]
    if village_row is not None and town_row is not None and village_row.town_id != town_row.id:
        errors["village"] = ["该村居不属于所指定的镇(街)"]
    if role in DISTRICT_ROLES and role != "department" and (village_row or town_row):
        errors["role"] = ["该角色面向全区，不能限定镇(街)或村居"]
    if role == "town" and village_row is not None:
        errors["village"] = ["镇(街)账号不能限定村居"]
    if (
        not errors
        and session.scalars(
            select(StaffAccount.id).where(StaffAccount.username == username)
        ).first()
    ):
        errors["username"] = ["用户名已存在"]
    if errors:
        raise InvalidInput(errors={"staff": errors})
    if village_row is not None and town_row is None:
        town_row = village_row.town
    staff = StaffAccount(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        town_id=town_row.id if town_row else None,
        village_id=village_row.id if village_row else None,
        department=(department or "").strip() or None,
        active=True,
    )
    session.add(staff)
    session.flush()
    record(
        session,
        actor="system:cli",
        action="staff.create",
        subject=f"staff:{staff.id}",
        detail={"username": username, "role": role},
    )
    return staff


def staff_actors_of_town(session: Session, *, town_code: str) -> list[str]:
    """The audit actors ("staff:<id>") of a town's office and of its villages' agents: what the
    auditor's town filter (`api.oversight.audit`) matches audit events against."""
    town_id = select(Town.id).where(Town.code == town_code).scalar_subquery()
    village_ids = select(Village.id).where(Village.town_id == town_id)
    ids = session.scalars(
        select(StaffAccount.id).where(
            (StaffAccount.town_id == town_id) | StaffAccount.village_id.in_(village_ids)
        )
    )
    return [f"staff:{i}" for i in ids]


def staff_names(session: Session, *, staff_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Username and display name of staff accounts by id (for documents naming who acted)."""
    rows = session.execute(
        select(StaffAccount.id, StaffAccount.username, StaffAccount.display_name).where(
            StaffAccount.id.in_(list(staff_ids))
        )
    ).all()
    return {i: {"username": u, "display_name": d} for i, u, d in rows}
