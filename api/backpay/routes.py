"""Back-payment API 补缴核定 for the HR bureau (pension) and the medical-insurance bureau
(medical). Thin: arguments → one service call → commit → response."""

from __future__ import annotations

from typing import Any

from flask import g

from api import clock
from api.backpay import service
from api.backpay.schemas import (
    ApprovalCreateSchema,
    ApprovalListSchema,
    ApprovalQuerySchema,
    ApprovalSchema,
    WithdrawSchema,
)
from api.db import get_session
from api.extensions.smorest import Blueprint, ErrorSchema

blp = Blueprint(
    "backpay", __name__, url_prefix="/api/v1/backpay", description="补缴核定（人社局、医保局）"
)


@blp.route("/approvals", methods=["POST"])
@blp.login_required(kind="staff", roles=service.BUREAUS)
@blp.arguments(ApprovalCreateSchema)
@blp.response(201, ApprovalListSchema)
@blp.alt_response(403, schema=ErrorSchema, description="wrong_bureau：不能核定其他部门的险种")
@blp.alt_response(409, schema=ErrorSchema, description="backpay_exists：该年度已有有效核定")
def approve(body: dict[str, Any]) -> dict[str, Any]:
    """录入补缴核定

    人社局（hr_bureau）核定养老保险、医保局（medical_bureau）核定医疗保险补缴：参保人、
    补缴年度及各年度核定金额（分，以核定文书为准，系统不计算、不修改）、核定文书编号、
    有效期。每个年度一条核定，均记入审计日志。
    """
    session = get_session()
    approvals = service.approve(
        session,
        staff_id=g.staff.id,
        role=g.staff.role,
        person_id=body["person_id"],
        insurance=body["insurance"],
        years=[service.YearAmount(**y) for y in body["years"]],
        document_no=body["document_no"],
        expires_on=body["expires_on"],
        today=clock.today(),
        pension_tier=body["pension_tier"],
    )
    session.commit()
    return {"approvals": approvals}


@blp.route("/approvals", methods=["GET"])
@blp.login_required(kind="staff", roles=(*service.BUREAUS, "auditor"))
@blp.arguments(ApprovalQuerySchema, location="query")
@blp.response(200, ApprovalListSchema)
def list_approvals(query: dict[str, Any]) -> dict[str, Any]:
    """补缴核定列表（本部门险种；审计可看全部），默认最新的在前，每页最多500条；
    下一页用返回的 next_cursor 作 cursor 参数（游标分页，翻页时新增的记录不会造成重复或遗漏）。"""
    rows, next_cursor = service.list_approvals(
        get_session(),
        role=g.staff.role,
        person_id=query["person_id"],
        status=query["status"],
        page_args={k: query[k] for k in ("cursor", "limit", "order")},
    )
    return {"approvals": rows, "next_cursor": next_cursor}


@blp.route("/approvals/<int:approval_id>/withdraw", methods=["POST"])
@blp.login_required(kind="staff", roles=service.BUREAUS)
@blp.arguments(WithdrawSchema)
@blp.response(200, ApprovalSchema)
@blp.alt_response(409, schema=ErrorSchema, description="backpay_paid / backpay_withdrawn")
def withdraw(body: dict[str, Any], approval_id: int) -> Any:
    """撤销补缴核定（须填写原因；已缴费的不能撤销），记入审计日志。"""
    session = get_session()
    approval = service.withdraw(
        session,
        staff_id=g.staff.id,
        role=g.staff.role,
        approval_id=approval_id,
        reason=body["reason"],
    )
    session.commit()
    return approval
