"""Request and response bodies of the login endpoints."""

from __future__ import annotations

import marshmallow as ma

from api.extensions.smorest import Schema

_CODE = ma.validate.Length(min=1, max=256, error="长度应为 1–256 个字符")


class WeChatLoginSchema(Schema):
    code = ma.fields.String(
        required=True,
        validate=_CODE,
        metadata={"description": "wx.login() 返回的临时登录凭证 code（一次性）"},
    )


class AlipayLoginSchema(Schema):
    auth_code = ma.fields.String(
        required=True,
        validate=_CODE,
        metadata={"description": "my.getAuthCode() 返回的授权码（一次性）"},
    )


class StaffLoginSchema(Schema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    password = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=256),
        load_only=True,
    )


class TokenSchema(Schema):
    token = ma.fields.String(
        required=True, metadata={"description": "Bearer 令牌：请求头 Authorization: Bearer <token>"}
    )
    expires_in = ma.fields.Integer(required=True, metadata={"description": "有效期（秒）"})


class StaffTokenSchema(TokenSchema):
    role = ma.fields.String(required=True, metadata={"description": "角色"})
    username = ma.fields.String(required=True)
