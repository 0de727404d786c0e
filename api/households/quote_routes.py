"""`POST /api/v1/premiums/quote`: the stateless premium preview (no login, no database).

The members sent are the sender's own data; the answer echoes their names and ID numbers
masked only (documented choice: a quote response may be cached or logged by intermediaries,
and the caller already knows the full values), matched to the request by position — members
come back in the order sent.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from api import clock
from api.extensions.smorest import Blueprint, ErrorSchema
from api.households import quotes
from api.households.routes import as_dumped
from api.households.schemas import QuoteRequestSchema, QuoteResponseSchema

blp = Blueprint("premiums", __name__, url_prefix="/api/v1/premiums", description="保费试算")


@blp.route("/quote", methods=["POST"])
@blp.arguments(QuoteRequestSchema())
@blp.response(200, QuoteResponseSchema())
@blp.alt_response(
    422, schema=ErrorSchema, description="身份证号码、类别或档次有误（指明成员序号和字段）"
)
def quote(body: dict[str, Any]) -> Response:
    """保费试算（无需登录）

    按年度政策计算每位成员的医疗、养老应缴金额、政府代缴和补贴，以及全家合计。
    成员按提交顺序返回。身份证号码无效、类别未知、档次不允许时返回 422，
    errors 形如 {"json": {"members": {"0": {"id_number": ["..."]}}}}。
    """
    result = quotes.stateless_quote(
        year=body["year"], paid_on=body["paid_on"] or clock.today(), members=body["members"]
    )
    return as_dumped(result, dates=("paid_on",))
