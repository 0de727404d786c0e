"""Schemas of the tax endpoints: acknowledgements in, record listings and exports out."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.extensions.smorest import Schema


class AcknowledgementSchema(Schema):
    record_id = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "记录编号 (id)"}
    )
    status = ma.fields.String(
        required=True,
        validate=validate.OneOf(["booked", "rejected"]),
        metadata={"description": "booked 已入账 / rejected 拒收"},
    )
    duplicate = ma.fields.Boolean(
        load_default=False, metadata={"description": "The tax side had booked it before"}
    )
    reason = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    tax_ref = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={"description": "The tax side's own reference (e.g. receipt number)"},
    )
    booked_at = ma.fields.AwareDateTime(load_default=None, allow_none=True)


class AcknowledgementBatchSchema(Schema):
    acknowledgements = ma.fields.List(
        ma.fields.Nested(AcknowledgementSchema), required=True, validate=validate.Length(1, 1000)
    )


class AcknowledgementOutcomeSchema(Schema):
    record_id = ma.fields.String()
    outcome = ma.fields.String(
        metadata={
            "description": "acknowledged | already_acknowledged | retry_scheduled | dead | "
            "ignored_already_booked | unknown_record"
        }
    )


class AcknowledgementResultSchema(Schema):
    results = ma.fields.List(ma.fields.Nested(AcknowledgementOutcomeSchema))


class RecordQuerySchema(Schema):
    status = ma.fields.String(
        load_default=None,
        validate=validate.OneOf(["pending", "sent", "dead", "unacknowledged"]),
        metadata={"description": "unacknowledged = sent, not (yet) booked by the tax side"},
    )
    older_than_minutes = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=525600),
        metadata={"description": "Only records in their current state for longer than this"},
    )
    town = ma.fields.String(load_default=None, validate=validate.Length(max=12))
    contribution_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1))
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(min=0))


class RecordSummarySchema(Schema):
    """A record's delivery state; no ID number or name (not needed to monitor delivery)."""

    id = ma.fields.String()
    event = ma.fields.String()
    contribution_id = ma.fields.Integer()
    year = ma.fields.Integer()
    insurance = ma.fields.String()
    town_code = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending | sent | dead"})
    attempts = ma.fields.Integer()
    deliveries = ma.fields.Integer()
    created_at = ma.fields.AwareDateTime()
    sent_at = ma.fields.AwareDateTime(allow_none=True)
    dead_at = ma.fields.AwareDateTime(allow_none=True)
    acknowledged_at = ma.fields.AwareDateTime(allow_none=True)
    ack_status = ma.fields.String(allow_none=True)
    ack_detail = ma.fields.String(allow_none=True)
    last_error = ma.fields.String(allow_none=True)


class RecordPageSchema(Schema):
    total = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(RecordSummarySchema))


class SummarySchema(Schema):
    pending = ma.fields.Integer()
    sent = ma.fields.Integer()
    dead = ma.fields.Integer()
    unacknowledged = ma.fields.Integer()


class ExportQuerySchema(Schema):
    insurance = ma.fields.String(required=True, validate=validate.OneOf(["medical", "pension"]))
    town = ma.fields.String(load_default=None, validate=validate.Length(max=12))
    date_from = ma.fields.Date(required=True, data_key="from")
    date_to = ma.fields.Date(required=True, data_key="to")
    format = ma.fields.String(load_default="csv", validate=validate.OneOf(["csv", "xlsx"]))

    @ma.validates_schema
    def _range(self, data: dict[str, object], **_kwargs: object) -> None:
        if data["date_to"] < data["date_from"]:  # type: ignore[operator]
            raise ma.ValidationError("结束日期不能早于开始日期", field_name="to")
