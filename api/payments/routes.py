"""Payments API: orders for residents, notify endpoints for the gateways, finance refunds and
the callback log. Routes stay thin: arguments → one service call → response."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, jsonify, request
from flask.views import MethodView

from api.config import Config
from api.db import get_db, get_session
from api.extensions import cursor
from api.extensions.smorest import Blueprint, ErrorSchema
from api.payments import idempotency, notify, refunds, service
from api.payments.orders import NewOrder, create_order
from api.payments.schemas import (
    CreateOrderSchema,
    IdempotencyHeaderSchema,
    NotificationQuerySchema,
    NotificationSchema,
    OrderSchema,
    RefundSchema,
    StaffRefundSchema,
)

blp = Blueprint(
    "payments", __name__, url_prefix="/api/v1/payments", description="缴费订单与支付回调"
)
finance_blp = Blueprint(
    "payments_finance", __name__, url_prefix="/api/v1/finance", description="财务：退费与回调日志"
)


# The header is checked by `idempotency.check_key` (stable codes idempotency_key_required /
# _invalid), so the schema lets a missing one through; the document says it is required.
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "description": "The same key and body give the same answer (24 h); up to 128 printable ASCII",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
}


def _settings() -> Config:
    settings: Config = current_app.config["SETTINGS"]
    return settings


@blp.route("")
class Orders(MethodView):
    @blp.login_required(kind="resident")
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.doc(parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @blp.arguments(CreateOrderSchema)
    @blp.response(201, OrderSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="nothing_owed / collection_closed …")
    @blp.alt_response(502, schema=ErrorSchema, description="upstream_error: the channel failed")
    def post(self, headers: dict[str, Any], body: dict[str, Any]) -> Response:
        """Create an order for what the household owes and prepay it at the channel."""
        key = idempotency.check_key(headers.get("idempotency_key"))
        account = g.account
        db, settings = get_db(), _settings()

        def work() -> idempotency.Answer:
            order = create_order(
                db,
                settings,
                account=account,
                request=NewOrder(**body),
                client_ip=request.remote_addr or "",
            )
            view = service.order_view(db.session(), order, account_id=account.id)
            return idempotency.Answer(201, OrderSchema().dump(view))

        answer = idempotency.run_once(
            db,
            account_id=account.id,
            key=key,
            fingerprint=idempotency.request_hash("POST", request.path, body),
            work=work,
        )
        response = jsonify(answer.body)
        response.status_code = answer.status
        return response


@blp.route("/<string:out_trade_no>")
class OrderById(MethodView):
    @blp.login_required(kind="resident")
    @blp.response(200, OrderSchema)
    def get(self, out_trade_no: str) -> dict[str, Any]:
        """An order of one of the resident's households: status, items, refunds."""
        session = get_session()
        order = service.order_for_account(
            session, account_id=g.account.id, out_trade_no=out_trade_no
        )
        return service.order_view(session, order, account_id=g.account.id)


def _notification(channel_name: str) -> Response:
    reply = notify.receive(
        get_db(),
        _settings(),
        channel_name=channel_name,
        path=request.path,
        headers=dict(request.headers.items()),
        body=request.get_data(cache=False),
        remote_addr=request.remote_addr,
    )
    return Response(reply.body, status=reply.status, content_type=reply.content_type)


def _notify_doc(requests: dict[str, str], replies: dict[str, str]) -> dict[str, Any]:
    """OpenAPI of a gateway callback: its real wire formats, not the JSON of the rest of /api.

    The reply is the protocol's own (docs/gateways.md): a failure reply makes the gateway
    send the notification again, so a refused notification is not an error body.
    """
    return {
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                ct: {"schema": {"type": "string", "description": d}} for ct, d in requests.items()
            },
        },
        "responses": {
            "200": {
                "description": "Protocol reply (success, or failure so the gateway retries)",
                "content": {
                    ct: {"schema": {"type": "string", "description": d}}
                    for ct, d in replies.items()
                },
            },
            "204": {"description": "WeChat Pay v3: accepted"},
            "400": {
                "description": "WeChat Pay v3: refused (FAIL); the gateway retries",
                "content": {"application/json": {"schema": _V3_FAIL}},
            },
            "500": {
                "description": "WeChat Pay v3: not processed now (FAIL); the gateway retries",
                "content": {"application/json": {"schema": _V3_FAIL}},
            },
        },
    }


_V3_FAIL = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_WECHAT_REQUESTS = {
    "text/xml": "WeChat Pay v2: signed XML (<xml><return_code>…)",
    "application/xml": "WeChat Pay v2: signed XML",
    "application/json": "WeChat Pay v3: resource encrypted with AES-256-GCM, signed headers",
}
_WECHAT_REPLIES = {"text/xml": "v2: <xml><return_code>SUCCESS|FAIL</return_code>…"}


@blp.route("/notify/wechat", methods=["POST"])
@blp.doc(
    summary="WeChat Pay payment notification (v2 XML or v3 JSON)",
    **_notify_doc(_WECHAT_REQUESTS, _WECHAT_REPLIES),
)
def notify_wechat() -> Response:
    return _notification("wechat")


@blp.route("/notify/wechat/refund", methods=["POST"])
@blp.doc(
    summary="WeChat Pay refund notification (v2 req_info / v3 REFUND.*)",
    **_notify_doc(_WECHAT_REQUESTS, _WECHAT_REPLIES),
)
def notify_wechat_refund() -> Response:
    return _notification("wechat")


@blp.route("/notify/alipay", methods=["POST"])
@blp.doc(
    summary="Alipay asynchronous notification (trade and refund results)",
    **_notify_doc(
        {"application/x-www-form-urlencoded": "Alipay: form fields, RSA2-signed (sign, sign_type)"},
        {"text/plain": "success | fail"},
    ),
)
def notify_alipay() -> Response:
    return _notification("alipay")


# Finance ----------------------------------------------------------------------------------------


@finance_blp.route("/refunds", methods=["POST"])
@finance_blp.login_required(kind="staff", roles=("finance",))
@finance_blp.arguments(StaffRefundSchema)
@finance_blp.response(201, RefundSchema)
def create_refund(body: dict[str, Any]) -> dict[str, Any]:
    """Refund some items of a paid order (退费): deceased, employee insured, duplicate…

    The refund is committed in state `requested`, then sent to the channel at once; if the
    channel cannot be reached now, the worker retries.
    """
    db = get_db()
    session = db.session()
    refund = refunds.request_staff_refund(
        session,
        out_trade_no=body["out_trade_no"],
        lines=[refunds.RefundLine(**line) for line in body["items"]],
        reason=body["reason"],
        note=body["note"],
        actor=f"staff:{g.staff.id}",
    )
    session.commit()
    refund_id = refund.id
    refunds.process_due_refunds(db, _settings(), only=[refund_id])
    session = db.session()
    fresh = session.get(refunds.Refund, refund_id)
    assert fresh is not None
    order = session.get(refunds.PaymentOrder, fresh.order_id)
    assert order is not None
    return service.refund_view(fresh, order.out_trade_no)


@finance_blp.route("/notifications", methods=["GET"])
@finance_blp.login_required(kind="staff", roles=("finance", "auditor"))
@finance_blp.arguments(NotificationQuerySchema, location="query")
@finance_blp.response(
    200,
    NotificationSchema(many=True),
    headers=cursor.NEXT_CURSOR_HEADER,
)
@finance_blp.doc(
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string", "description": "format=csv, UTF-8"}}
            }
        }
    }
)
def list_notifications(args: dict[str, Any]) -> Any:
    """The callback log 回调日志: every notification as received, with its outcome.

    Filters: channel, outcome (applied | duplicate | rejected | ignored | received), reason,
    out_trade_no, date range (Beijing dates). Pages by cursor, never by offset: `limit`
    (default 50, at most 500), `order` (desc, newest first, default; asc, oldest first) and
    `cursor` = the `X-Next-Cursor` of the previous page (also `next_cursor` in X-Pagination);
    rows logged while a reader pages are never read twice nor skipped. `format=csv` exports
    every matching row (newest first).
    """
    session = get_session()
    fmt = args.pop("format", "json")
    page_args: dict[str, Any] = {k: args.pop(k) for k in ("cursor", "limit", "order") if k in args}
    if fmt == "csv":
        return Response(
            service.notifications_csv(service.notifications_for_csv(session, **args)),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="notifications.csv"'},
        )
    rows, next_cursor = service.list_notifications(session, page_args=page_args, **args)
    return rows, 200, cursor.headers(next_cursor, page_args)
