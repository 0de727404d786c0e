"""Request and response bodies of the household, premium and quote endpoints.

Input ID numbers are normalised by the schemas (the policy's GB 11643 check: wrong length,
wrong check character, impossible birth date → 422 on that field), so services only ever see
normalised numbers.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from api.extensions.smorest import Schema
from api.policy import available_years
from api.policy.idnumber import InvalidIdNumber, normalize_id_number

MAX_MEMBERS = 50
MAX_NAME = 64
# GB 11643-1999: 17 digits and a check character (ISO 7064 MOD 11-2, X for 10), for the document;
# the field also checks the date and the check character.
ID_NUMBER_PATTERN = "^[0-9]{17}[0-9Xx]$"


class IdNumberField(ma.fields.String):
    """A resident ID number, normalised (upper-case X) and validated on load."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": ID_NUMBER_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if len(raw) > 32:
            raise ma.ValidationError("身份证号码应为 18 位")
        try:
            return str(normalize_id_number(raw))
        except InvalidIdNumber as exc:
            raise ma.ValidationError(getattr(exc, "message", None) or str(exc)) from exc


class StrictBoolean(ma.fields.Boolean):
    """Only JSON true/false: "yes", 1 or "0" are errors, not guesses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictInteger(ma.fields.Integer):
    """Only JSON integers: no "2020", no 2020.0, no true."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return int(super()._deserialize(value, attr, data, **kwargs))


_YEAR = ma.validate.Range(min=2000, max=2100, error="年度超出范围")
# The OpenAPI document lists the years this deployment has a policy for; another year in range
# passes the schema and is answered by the service (422 unknown_year).
YEAR_DOC = {"description": "缴费年度", "enum": available_years()}
_NAME = ma.validate.Length(min=1, max=MAX_NAME, error=f"姓名应为 1–{MAX_NAME} 个字符")


# Binding ------------------------------------------------------------------------------------


class BindSchema(Schema):
    id_number = IdNumberField(required=True, metadata={"description": "身份证号码（18 位）"})
    name = ma.fields.String(required=True, validate=_NAME, metadata={"description": "姓名"})


class PlaceSchema(Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class MemberIdentitySchema(Schema):
    person_id = ma.fields.Integer(required=True)
    name = ma.fields.String(
        required=True, metadata={"description": "姓名；除本人外脱敏显示，如 王*明"}
    )
    id_number = ma.fields.String(
        required=True,
        metadata={"description": "身份证号码；除本人外脱敏显示，如 370406********0317"},
    )
    is_self = ma.fields.Boolean(required=True, metadata={"description": "是否为绑定人本人"})
    birth_year = ma.fields.Integer(
        required=True, metadata={"description": "出生年份（区分脱敏后同名的成员，如两位 刘*）"}
    )
    deceased = ma.fields.Boolean(required=True)


class HouseholdSchema(Schema):
    id = ma.fields.Integer(required=True)
    household_no = ma.fields.String(required=True, metadata={"description": "户号"})
    village = ma.fields.Nested(PlaceSchema, required=True)
    town = ma.fields.Nested(PlaceSchema, required=True)
    members = ma.fields.List(ma.fields.Nested(MemberIdentitySchema), required=True)


class HouseholdListSchema(Schema):
    households = ma.fields.List(ma.fields.Nested(HouseholdSchema), required=True)


# Quotes (shared by the stateless quote and the household premiums) --------------------------


class BirthYearSchema(Schema):
    year = ma.fields.Integer(required=True, metadata={"description": "出生年度"})
    payable_online = ma.fields.Boolean(
        required=True,
        metadata={"description": "是否可在线缴纳（该年度政策已发布）；否则请到医保经办窗口缴纳"},
    )
    owed_fen = ma.fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "出生年度个人应缴（分）；窗口缴纳时为空"},
    )
    # Strings (YYYY-MM-DD), not Date: quote bodies are sent pre-dumped (routes.as_dumped).
    benefit_start = ma.fields.String(
        required=True, metadata={"description": "待遇开始日期（YYYY-MM-DD）", "format": "date"}
    )
    rule = ma.fields.String(required=True, allow_none=True)
    message = ma.fields.String(required=True)


class MedicalQuoteSchema(Schema):
    due = ma.fields.Boolean(required=True, metadata={"description": "是否应参加居民医疗保险"})
    owed_fen = ma.fields.Integer(required=True, metadata={"description": "个人应缴（分）"})
    government_pays_fen = ma.fields.Integer(
        required=True, metadata={"description": "政府代缴（分）"}
    )
    subsidy_fen = ma.fields.Integer(metadata={"description": "部门资助（分）"})
    late = ma.fields.Boolean(metadata={"description": "是否逾期缴费（按全额含各级财政补助）"})
    rule = ma.fields.String(required=True, metadata={"description": "适用规则代码"})
    rule_label = ma.fields.String(metadata={"description": "适用规则说明"})
    benefit_start = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "按当日缴费的待遇开始日期（YYYY-MM-DD；新生儿90日内参保自出生之日起）",
            "format": "date",
        },
    )
    birth_year = ma.fields.Nested(
        BirthYearSchema,
        allow_none=True,
        metadata={"description": "新生儿90日跨年度时，出生当年另需缴纳的保费"},
    )
    status = ma.fields.String(
        metadata={"description": "缴费状态：unpaid | paid | government | not_due"}
    )
    paid_source = ma.fields.String(
        metadata={
            "description": "已缴时的缴费来源（仅 status 为 paid 时出现）：wechat | alipay | "
            "agent（村代办员收取现金）| counter | government"
        }
    )


class PensionQuoteSchema(Schema):
    eligible = ma.fields.Boolean(required=True, metadata={"description": "是否可参加居民养老保险"})
    tier = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "缴费档次（元）；未选择为 null"}
    )
    owed_fen = ma.fields.Integer(required=True, metadata={"description": "个人应缴（分）"})
    government_pays_fen = ma.fields.Integer(
        required=True, metadata={"description": "政府代缴（分）"}
    )
    subsidy_fen = ma.fields.Integer(
        required=True, metadata={"description": "政府缴费补贴（分），计入个人账户，不减少应缴"}
    )
    rule = ma.fields.String(required=True)
    rule_label = ma.fields.String()
    status = ma.fields.String(
        metadata={"description": "缴费状态：unpaid | paid | government | not_due | tier_required"}
    )
    paid_source = ma.fields.String(
        metadata={
            "description": "已缴时的缴费来源（仅 status 为 paid 时出现）：wechat | alipay | "
            "agent（村代办员收取现金）| counter | government"
        }
    )


class TotalsSchema(Schema):
    owed_fen = ma.fields.Integer(required=True, metadata={"description": "全家个人应缴合计（分）"})
    medical_owed_fen = ma.fields.Integer(required=True)
    pension_owed_fen = ma.fields.Integer(required=True)
    government_pays_fen = ma.fields.Integer(required=True)
    subsidy_fen = ma.fields.Integer(required=True)
    unpaid_fen = ma.fields.Integer(metadata={"description": "尚未缴纳的个人应缴（分）"})
    backpay_unpaid_fen = ma.fields.Integer(
        metadata={"description": "已核定未缴纳的补缴合计（分），不含在 unpaid_fen 内"}
    )


class MemberQuoteSchema(Schema):
    age = ma.fields.Integer(required=True, metadata={"description": "周岁（按政策年龄基准日）"})
    medical = ma.fields.Nested(MedicalQuoteSchema, required=True)
    pension = ma.fields.Nested(PensionQuoteSchema, required=True)


class QuotedMemberSchema(MemberQuoteSchema):
    """A member in the stateless quote: the sender's own data, echoed masked."""

    name = ma.fields.String(required=True, metadata={"description": "姓名（脱敏）"})
    id_number = ma.fields.String(required=True, metadata={"description": "身份证号码（脱敏）"})


class HouseholdMemberPremiumSchema(MemberQuoteSchema, MemberIdentitySchema):
    pass


# Stateless quote ------------------------------------------------------------------------------


class QuoteMemberInSchema(Schema):
    id_number = IdNumberField(required=True)
    name = ma.fields.String(load_default="", validate=ma.validate.Length(max=MAX_NAME))
    categories = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(max=32)),
        load_default=list,
        validate=ma.validate.Length(max=20),
        metadata={"description": "特殊群体类别，见 DOMAIN.md 类别表"},
    )
    student = StrictBoolean(load_default=False, metadata={"description": "在校学生"})
    employee_pension = StrictBoolean(load_default=False, metadata={"description": "已参加职工养老"})
    employee_medical = StrictBoolean(load_default=False, metadata={"description": "已参加职工医疗"})
    residence_permit = StrictBoolean(load_default=False, metadata={"description": "居住证持有人"})
    pension_tier = StrictInteger(
        load_default=None, allow_none=True, metadata={"description": "养老保险缴费档次（元）"}
    )


class QuoteRequestSchema(Schema):
    year = StrictInteger(required=True, validate=_YEAR, metadata=YEAR_DOC)
    paid_on = ma.fields.Date(
        load_default=None, allow_none=True, metadata={"description": "缴费日期，默认今天"}
    )
    members = ma.fields.List(
        ma.fields.Nested(QuoteMemberInSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_MEMBERS, error=f"成员应为 1–{MAX_MEMBERS} 人"),
    )


class QuoteResponseSchema(Schema):
    year = ma.fields.Integer(required=True)
    paid_on = ma.fields.Date(required=True)
    late = ma.fields.Boolean(required=True)
    collection_open = ma.fields.Boolean(required=True)
    members = ma.fields.List(ma.fields.Nested(QuotedMemberSchema), required=True)
    totals = ma.fields.Nested(TotalsSchema, required=True)


# Household premiums and tiers -----------------------------------------------------------------


class PremiumsQuerySchema(Schema):
    # A query string carries text: a plain (non-strict) Integer accepts "2020", not "2020.5".
    year = ma.fields.Integer(required=True, validate=_YEAR, metadata=YEAR_DOC)


class BackpayItemSchema(Schema):
    approval_id = ma.fields.Integer(required=True)
    person_id = ma.fields.Integer(required=True)
    insurance = ma.fields.String(required=True, metadata={"description": "pension | medical"})
    year = ma.fields.Integer(required=True, metadata={"description": "补缴年度"})
    amount_fen = ma.fields.Integer(required=True, metadata={"description": "核定金额（分）"})
    pension_tier = ma.fields.Integer(allow_none=True, required=True)
    document_no = ma.fields.String(required=True, metadata={"description": "核定文书编号"})
    expires_on = ma.fields.String(
        required=True, metadata={"description": "有效期至（YYYY-MM-DD）", "format": "date"}
    )
    status = ma.fields.String(required=True, metadata={"description": "unpaid"})


class HouseholdPremiumsSchema(Schema):
    household_id = ma.fields.Integer(required=True)
    year = ma.fields.Integer(required=True)
    as_of = ma.fields.Date(required=True, metadata={"description": "计算日期（北京时间）"})
    late = ma.fields.Boolean(required=True, metadata={"description": "今天缴费是否逾期"})
    collection_open = ma.fields.Boolean(required=True, metadata={"description": "是否在缴费期内"})
    members = ma.fields.List(ma.fields.Nested(HouseholdMemberPremiumSchema), required=True)
    totals = ma.fields.Nested(TotalsSchema, required=True)
    backpay = ma.fields.List(
        ma.fields.Nested(BackpayItemSchema),
        metadata={
            "description": (
                "已核定、未缴纳、未过期的补缴"
                "（POST /api/v1/payments 的 insurances 含 backpay 时缴纳）"
            )
        },
    )


class TierChoiceSchema(Schema):
    year = StrictInteger(required=True, validate=_YEAR, metadata=YEAR_DOC)
    tier = StrictInteger(
        required=True, metadata={"description": "缴费档次（元），如 100、300、500"}
    )
