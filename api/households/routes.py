"""Household endpoints for residents: bind, list, premiums, pension tier.

Access rule (documented choice): a resident reaches only households their account is bound
to; any other household id — existing or not — answers **404 `not_found`**, never 403, so
sequential ids cannot be probed for existence. Any bound member may view every member's
premiums and choose pension tiers for every member: the family pays together (DOMAIN.md,
"the household is the unit"); other members' names and ID numbers are masked.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, g, request

from api import clock
from api.config import Config
from api.db import get_session, read_only_session
from api.errors import NotFound
from api.extensions.smorest import Blueprint, ErrorSchema
from api.households import service
from api.households.schemas import (
    BindSchema,
    HouseholdListSchema,
    HouseholdMemberPremiumSchema,
    HouseholdPremiumsSchema,
    HouseholdSchema,
    PremiumsQuerySchema,
    TierChoiceSchema,
)

blp = Blueprint("households", __name__, url_prefix="/api/v1/households", description="家庭与成员")

MAX_ID = 2**31 - 1


def _check_id(value: int) -> int:
    # Ids beyond the column range would overflow the driver (a 500) instead of "not found".
    if not 0 < value <= MAX_ID:
        raise NotFound("未找到该家庭，或您尚未绑定该家庭")
    return value


def as_dumped(body: dict[str, Any], *, dates: tuple[str, ...] = ()) -> Response:
    """Send a body that is already exactly what the response schema would dump.

    Used by the two hot read endpoints (premiums, quote): their services build plain dicts of
    the schema's fields, so a second pass through marshmallow only repeats them; it cost ~10%
    of the request (bench/http_throughput.py). The schema still documents the response, and
    tests/households/test_api_shapes.py checks every body round-trips through it unchanged.
    """
    for key in dates:
        body[key] = body[key].isoformat()
    # json.dumps directly: Flask's provider sorts keys and indents nothing we need (its
    # `sort_keys` walk was a third of the encoding); Chinese stays readable (ensure_ascii off,
    # as the app's provider is configured).
    return current_app.response_class(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        mimetype="application/json",
    )


def _remote_addr() -> str:
    return (request.remote_addr or "unknown")[:64]


@blp.route("/bind", methods=["POST"])
@blp.login_required(kind="resident")
@blp.arguments(BindSchema())
@blp.response(200, HouseholdSchema())
@blp.alt_response(404, schema=ErrorSchema, description="身份证号码与姓名不匹配或不在名册中")
@blp.alt_response(429, schema=ErrorSchema, description="失败次数过多（见 Retry-After）")
def bind(body: dict[str, Any]) -> dict[str, Any]:
    """绑定家庭

    输入家庭中任一在册人员的身份证号码和姓名，绑定到该户。号码与姓名不匹配和号码不存在
    的回答完全相同（404 bind_failed）；同一账号或同一地址在时间窗内失败次数过多时回答
    429 too_many_requests 并给出 Retry-After。返回家庭信息：本人信息完整，其他成员脱敏。
    """
    settings: Config = current_app.config["SETTINGS"]
    session = get_session()
    outcome = service.bind_household(
        session,
        account_id=g.account.id,
        id_number=body["id_number"],
        name=body["name"],
        remote_addr=_remote_addr(),
        settings=service.BindSettings(
            max_failures=settings.BIND_MAX_FAILURES,
            window_seconds=settings.BIND_FAILURE_WINDOW_SECONDS,
            address_free_failures=settings.BIND_ADDRESS_FREE_FAILURES,
            delay_cap_seconds=settings.THROTTLE_DELAY_CAP_SECONDS,
        ),
        now=clock.now(),
        today=clock.today(),
    )
    session.commit()  # failed attempts and audit events must persist before the refusal
    if outcome.refusal is not None:
        raise outcome.refusal  # a BindThrottled carries its Retry-After
    assert outcome.household is not None and outcome.person is not None
    return service.household_view(outcome.household, viewer_person_id=outcome.person.id)


@blp.route("", methods=["GET"])
@blp.login_required(kind="resident")
@blp.response(200, HouseholdListSchema())
def list_households() -> dict[str, Any]:
    """我绑定的家庭

    当前账号已绑定的所有家庭（本人信息完整，其他成员脱敏）。
    """
    session = get_session()
    return {"households": service.bound_households(session, account_id=g.account.id)}


@blp.route("/<int:household_id>/premiums", methods=["GET"])
@blp.login_required(kind="resident", load=False)
@blp.arguments(PremiumsQuerySchema(), location="query")
@blp.response(200, HouseholdPremiumsSchema())
@blp.alt_response(404, schema=ErrorSchema, description="家庭不存在或未绑定（不区分）")
def premiums(query: dict[str, Any], household_id: int) -> Response:
    """家庭应缴保费

    每位成员的医疗、养老应缴金额、政府代缴、补贴、适用规则和缴费状态
    （unpaid 未缴 / paid 已缴 / government 政府代缴 / not_due 无需缴纳 / tier_required
    需选择养老档次），以及全家合计、是否逾期、是否在缴费期内。只能查看已绑定的家庭，
    其他家庭一律 404。
    """
    body = service.household_premiums(
        read_only_session(get_session()),
        account_id=g.account_id,
        household_id=_check_id(household_id),
        year=query["year"],
        today=clock.today(),
    )
    return as_dumped(body, dates=("as_of",))


@blp.route("/<int:household_id>/members/<int:person_id>/pension-tier", methods=["PUT"])
@blp.login_required(kind="resident")
@blp.arguments(TierChoiceSchema())
@blp.response(200, HouseholdMemberPremiumSchema())
@blp.alt_response(404, schema=ErrorSchema, description="家庭不存在、未绑定或无此成员")
@blp.alt_response(409, schema=ErrorSchema, description="该成员本年度养老保险已缴费")
def choose_tier(body: dict[str, Any], household_id: int, person_id: int) -> dict[str, Any]:
    """选择养老保险缴费档次

    已绑定该家庭的任一成员可为全家每位成员选择档次（全家一起缴费）。档次须为政策档次；
    100 元档仅限重度残疾、建档立卡未脱贫、低保、特困人员；不符合参保条件的成员不能选择
    （422，errors 指明 tier 字段）。返回该成员的最新应缴信息。
    """
    session = get_session()
    viewer = service.bound_person_id(
        session, account_id=g.account.id, household_id=_check_id(household_id)
    )
    result = service.choose_pension_tier(
        session,
        household_id=household_id,
        person_id=_check_id(person_id),
        year=body["year"],
        tier=body["tier"],
        viewer_person_id=viewer,
        actor=f"resident:{g.account.id}",
        today=clock.today(),
    )
    session.commit()
    return result
