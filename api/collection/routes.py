"""Collection API 代办员收款: agents issue and void receipts, towns read them. Thin: arguments →
one service call → response (docs/collection.md)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, jsonify, request

from api import clock
from api.collection import service
from api.collection.receipt_pdf import render_receipt
from api.collection.schemas import (
    CollectableQuerySchema,
    CollectableSchema,
    CollectSchema,
    ReceiptListSchema,
    ReceiptQuerySchema,
    ReceiptSchema,
    VoidSchema,
)
from api.db import get_db, get_session
from api.extensions.smorest import Blueprint, ErrorSchema
from api.payments import idempotency
from api.payments.routes import IDEMPOTENCY_KEY_PARAMETER
from api.payments.schemas import IdempotencyHeaderSchema

blp = Blueprint(
    "collection",
    __name__,
    url_prefix="/api/v1/collection",
    description="代办员收款：专用收据（村居代办员开具、作废；镇街查看）",
)
AGENT = ("agent",)
READERS = ("agent", "town")


@blp.route("/households", methods=["GET"])
@blp.login_required(kind="staff", roles=AGENT)
@blp.arguments(CollectableQuerySchema, location="query")
@blp.response(200, CollectableSchema)
@blp.alt_response(404, schema=ErrorSchema, description="household_not_found：本村居没有该户")
def collectable(query: dict[str, Any]) -> dict[str, Any]:
    """本村居一户的应缴与缴费状态（代办员）

    按户号查本村居的户：各成员（脱敏）的医疗、养老应缴金额与状态（与居民缴费页相同），
    以及每人可选的养老档次。只能查本村居。"""
    return service.collectable(
        get_session(),
        staff=g.staff,
        household_no=query["household_no"],
        year=query["year"],
        today=clock.today(),
    )


@blp.route("/receipts", methods=["POST"])
@blp.login_required(kind="staff", roles=AGENT)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.doc(parameters=[IDEMPOTENCY_KEY_PARAMETER])
@blp.arguments(CollectSchema)
@blp.response(201, ReceiptSchema)
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="already_paid / collection_closed / idempotency_conflict",
)
def collect(headers: dict[str, Any], body: dict[str, Any]) -> Response:
    """收款并开具专用收据（代办员）

    选择本村居一户的人员与险种（养老可选档次），金额由服务器按政策计算（不能填写金额）；
    所选人员即时显示为已缴（来源 agent），收据号按村居、年度连续编号。
    医疗保险须为全家应缴成员一并收取。同一 Idempotency-Key 与相同内容返回同一张收据。"""
    key = idempotency.check_key(headers.get("idempotency_key"))
    receipt, issued = service.collect_once(
        get_db(),
        staff=g.staff,
        household_id=body["household_id"],
        year=body["year"],
        choices=[
            service.Choice(
                person_id=item["person_id"],
                insurances=tuple(item["insurances"]),
                pension_tier=item["pension_tier"],
            )
            for item in body["items"]
        ],
        today=clock.today(),
        now=clock.now(),
        idempotency_key=key,
        request_hash=idempotency.request_hash("POST", request.path, body),
    )
    response = jsonify(ReceiptSchema().dump(service.receipt_view(get_session(), receipt)))
    response.status_code = 201 if issued else 200
    return response


@blp.route("/receipts", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.arguments(ReceiptQuerySchema, location="query")
@blp.response(200, ReceiptListSchema)
def list_receipts(query: dict[str, Any]) -> dict[str, Any]:
    """收据列表（代办员：本村居；镇街：本镇街各村居），游标分页，不含明细"""
    receipts, next_cursor = service.list_receipts(
        get_session(),
        staff=g.staff,
        year=query["year"],
        status=query["status"],
        village_code=query["village_code"],
        household_no=query["household_no"],
        page_args={k: query[k] for k in ("cursor", "limit", "order")},
    )
    return {"receipts": receipts, "next_cursor": next_cursor}


@blp.route("/receipts/<string:receipt_no>", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.response(200, ReceiptSchema)
@blp.alt_response(404, schema=ErrorSchema, description="receipt_not_found")
def get_receipt(receipt_no: str) -> dict[str, Any]:
    """一张收据及其明细（人员脱敏）"""
    session = get_session()
    receipt = service.find_receipt(session, staff=g.staff, receipt_no=receipt_no)
    return service.receipt_view(session, receipt)


@blp.route("/receipts/<string:receipt_no>/void", methods=["POST"])
@blp.login_required(kind="staff", roles=AGENT)
@blp.arguments(VoidSchema)
@blp.response(200, ReceiptSchema)
@blp.alt_response(404, schema=ErrorSchema, description="receipt_not_found")
@blp.alt_response(409, schema=ErrorSchema, description="receipt_voided：已作废")
def void_receipt(body: dict[str, Any], receipt_no: str) -> dict[str, Any]:
    """作废收据（代办员，本村居；须填原因）

    收据号保留不再使用，所收各项冲销，成员恢复为未缴（现金退还缴费人）。"""
    session = get_session()
    receipt = service.void(
        session, staff=g.staff, receipt_no=receipt_no, reason=body["reason"], now=clock.now()
    )
    session.commit()
    return service.receipt_view(session, receipt)


@blp.route("/receipts/<string:receipt_no>/pdf", methods=["GET"])
@blp.login_required(kind="staff", roles=READERS)
@blp.response(200, description="收据 PDF（内嵌中文字体）", content_type="application/pdf")
@blp.alt_response(404, schema=ErrorSchema, description="receipt_not_found")
@blp.alt_response(503, schema=ErrorSchema, description="pdf_font_unavailable：缺少中文字体")
def receipt_pdf(receipt_no: str) -> Response:
    """打印收据（PDF）：《山亭区居民社会保险基金专用收据》"""
    session = get_session()
    receipt = service.find_receipt(session, staff=g.staff, receipt_no=receipt_no)
    view = service.receipt_view(session, receipt)
    data = render_receipt(view, font_file=current_app.config["SETTINGS"].CJK_FONT_FILE)
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{receipt.receipt_no}.pdf"'},
    )
