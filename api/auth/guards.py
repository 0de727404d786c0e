"""Request authentication and staff scoping.

`authenticate()` is what `Blueprint.login_required` calls: it reads `Authorization: Bearer
<token>`, verifies signature, kind and age, reloads the account and puts it on `flask.g`
(`g.account` for residents, `g.staff` for staff). Every failure to authenticate is the same
401 (`unauthorized`) so a caller learns nothing about why; an authenticated staff member whose
role is not allowed gets 403.

Scoping (DOMAIN.md, "Who does what"): an agent (代办员) sees its village, a town office its
town's villages, finance / department / tax / auditor the whole district. Later endpoints ask
`staff_can_see_village` / `staff_can_see_household` or filter queries with
`visible_village_ids`.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Request, current_app, g, has_request_context, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.audit.service import record
from api.auth.models import ResidentAccount, StaffAccount
from api.auth.tokens import KINDS, TokenInvalid, TokenKind, read_token
from api.config import Config
from api.db import get_session
from api.errors import DomainError, Forbidden, Unauthorized
from api.households.models import Household, Village

DISTRICT_WIDE_ROLES = frozenset(
    {"finance", "department", "tax", "auditor", "hr_bureau", "medical_bureau"}
)
_EXPIRED = "登录已过期，请重新登录"
log = logging.getLogger(__name__)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(
    request: Request, *, kind: str, roles: tuple[str, ...] = (), load: bool = True
) -> Any:
    """Authenticate the request as `kind` ("resident" or "staff"); return the account.

    Sets `g.account_id` (or `g.staff_id`) and the loaded `g.account` (`g.staff`).
    `load=False` is for hot resident reads whose own query proves access (the premiums page
    joins the account's binding, so an account without a row cannot see anything): the token
    is verified but the account row is not loaded, saving a query per request; `g.account`
    is then unset and the return value is the account id. Staff are always loaded (roles,
    deactivation).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown account kind {kind!r}")
    if not load and kind != "resident":
        raise ValueError("only resident authentication may skip loading the account")
    token = bearer_token(request)
    if token is None:
        raise Unauthorized()
    settings: Config = current_app.config["SETTINGS"]
    try:
        claims = read_token(
            secret_key=settings.SECRET_KEY,
            kind=cast(TokenKind, kind),
            token=token,
            max_age=settings.TOKEN_TTL_SECONDS,
        )
    except TokenInvalid as exc:
        raise Unauthorized(_EXPIRED if exc.expired else None) from exc
    if kind == "resident":
        g.account_id = claims.account_id
        if not load:
            return claims.account_id
        account = get_session().get(ResidentAccount, claims.account_id)
        if account is None:
            raise Unauthorized()
        g.account = account
        return account
    staff = get_session().get(StaffAccount, claims.account_id)
    if staff is None or not staff.active:
        raise Unauthorized()
    g.staff_id = staff.id
    g.staff = staff  # set before the role check: a refusal is audited with its actor
    if roles and staff.role not in roles:
        raise Forbidden()
    return staff


def record_access_refusal(error: DomainError) -> None:
    """Audit a 403 given to an authenticated staff member (`access_refused`, outcome refused).

    Called by the API's error handler for every 403 (a role not allowed on an endpoint, a town
    asking for another town's figures, a bureau touching the other bureau's insurance, …), so
    the auditor sees who tried what (`api.oversight.audit`, kind `refusal`). Cheap: one insert
    and a commit in the request's session, after rolling back whatever the refused request had
    begun. Only the method, path, role, scope and error code are kept; never the query string
    or body (they may hold an ID number). A failing write is logged, never turns the 403 into
    a 500.
    """
    staff = g.get("staff")
    if staff is None or not has_request_context():
        return
    session = get_session()
    try:
        session.rollback()
        record(
            session,
            actor=f"staff:{staff.id}",
            action="access_refused",
            subject=f"{request.method} {request.path}"[:64],
            outcome="refused",
            detail={
                "code": error.code,
                "role": staff.role,
                "town_id": staff.town_id,
                "village_id": staff.village_id,
                "path": request.path[:200],
            },
            remote_addr=request.remote_addr,
        )
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.warning("could not audit an access refusal", exc_info=True)


# Staff scoping ------------------------------------------------------------------------------


def staff_sees_district(staff: StaffAccount) -> bool:
    return staff.role in DISTRICT_WIDE_ROLES


def staff_can_see_village(staff: StaffAccount, village: Village) -> bool:
    """Agents: their own village; towns: their town's villages; district roles: all."""
    if staff_sees_district(staff):
        return True
    if staff.role == "agent":
        return staff.village_id is not None and staff.village_id == village.id
    if staff.role == "town":
        return staff.town_id is not None and staff.town_id == village.town_id
    return False


def staff_can_see_town(staff: StaffAccount, town_id: int) -> bool:
    """District roles and the town's own office (an agent sees a village, not a town)."""
    if staff_sees_district(staff):
        return True
    return staff.role == "town" and staff.town_id == town_id


def staff_can_see_household(session: Session, staff: StaffAccount, household: Household) -> bool:
    village = session.get(Village, household.village_id)
    return village is not None and staff_can_see_village(staff, village)


def visible_village_ids(session: Session, staff: StaffAccount) -> set[int] | None:
    """The villages this staff member may see; `None` means the whole district (no filter)."""
    if staff_sees_district(staff):
        return None
    if staff.role == "agent":
        return {staff.village_id} if staff.village_id is not None else set()
    if staff.role == "town" and staff.town_id is not None:
        return set(session.scalars(select(Village.id).where(Village.town_id == staff.town_id)))
    return set()


def require_village(staff: StaffAccount, village: Village) -> None:
    """Raise 404 (not 403) for a village outside the scope: its existence is not revealed."""
    from api.errors import NotFound

    if not staff_can_see_village(staff, village):
        raise NotFound()
