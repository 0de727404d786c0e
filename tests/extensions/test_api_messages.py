"""Issue 10, defect 8: every field error a resident or staff member reads is Chinese."""

from __future__ import annotations

import inspect
import re
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from marshmallow import validate

import api.extensions.smorest  # noqa: F401  (installs the messages, as the app does)
from api.extensions.messages import FIELD_MESSAGES

CJK = re.compile("[\u4e00-\u9fff]")


def _leaves(errors: Any) -> list[str]:
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in _leaves(value)]
    if isinstance(errors, list):
        return [m for value in errors for m in _leaves(value)]
    return [str(errors)]


def test_every_default_field_message_is_chinese() -> None:
    for name in ma.fields.__all__:
        field_class = getattr(ma.fields, name)
        if not (inspect.isclass(field_class) and issubclass(field_class, ma.fields.Field)):
            continue
        messages: dict[str, str] = {}
        for klass in reversed(field_class.__mro__):
            messages.update(getattr(klass, "default_error_messages", {}))
        english = {k: v for k, v in messages.items() if not CJK.search(v)}
        assert not english, (name, english)
    assert all(CJK.search(v) for v in ma.Schema._default_error_messages.values())  # type: ignore[attr-defined]
    assert ma.fields.Field in FIELD_MESSAGES


def test_every_default_validator_message_is_chinese() -> None:
    for name in dir(validate):
        klass = getattr(validate, name)
        if not (inspect.isclass(klass) and issubclass(klass, validate.Validator)):
            continue
        for attr, value in vars(klass).items():
            if (attr.startswith("message") or attr == "default_message") and isinstance(value, str):
                assert CJK.search(value), (name, attr, value)


def test_validators_built_with_defaults_speak_chinese() -> None:
    cases = [
        (validate.OneOf(("wechat", "alipay")), "x"),
        (validate.Length(min=1, max=2), [1, 2, 3]),
        (validate.Range(min=1), 0),
        (validate.Range(min=1, max=5, max_inclusive=False), 5),
        (validate.Regexp("^a$"), "b"),
    ]
    for validator, value in cases:
        with pytest.raises(ma.ValidationError) as caught:
            validator(value)
        assert all(CJK.search(m) for m in _leaves(caught.value.messages)), caught.value.messages


@pytest.mark.parametrize(
    ("kwargs", "role"),
    [
        ({"json": {"household_id": 1, "year": 2020, "channel": "x", "insurances": []}}, "resident"),
        (
            {
                "json": {
                    "household_id": 1,
                    "year": 2020,
                    "channel": "wechat",
                    "insurances": ["medical", "pension", "backpay", "medical"],
                }
            },
            "resident",
        ),
        ({"json": {"household_id": "1", "year": 1999, "extra": 1}}, "resident"),
        ({"data": "{not json", "content_type": "application/json"}, "resident"),
        ({"json": []}, "resident"),
    ],
)
def test_order_field_errors_reach_the_resident_in_chinese(
    app: Flask, callers: dict[str, Any], kwargs: dict[str, Any], role: str
) -> None:
    headers = {**callers[role], "Idempotency-Key": "messages"}
    response = app.test_client().post("/api/v1/payments", headers=headers, **kwargs)
    assert response.status_code in (400, 422)
    body = response.get_json()
    leaves = [*_leaves(body.get("errors")), body["message"]]
    assert leaves and all(CJK.search(m) for m in leaves), body


@pytest.mark.parametrize(
    ("query", "count"), [("channel=x&date_from=x", 2), ("cursor=0&limit=9999", 2)]
)
def test_staff_query_errors_are_chinese(
    app: Flask, callers: dict[str, Any], query: str, count: int
) -> None:
    response = app.test_client().get(
        f"/api/v1/finance/notifications?{query}", headers=callers["finance"]
    )
    assert response.status_code == 422
    leaves = _leaves(response.get_json()["errors"])
    assert len(leaves) == count and all(CJK.search(m) for m in leaves), leaves
