"""marshmallow's default messages in Chinese, installed once for the whole process.

Residents and staff read field errors (`errors` of a 422); marshmallow writes them in English
(`Must be one of: wechat, alipay.`). The library keeps its defaults in class attributes, and
some validators (`OneOf`, `Range`) format theirs when they are constructed, so this runs when
`api.extensions.smorest` is imported — before any schema module builds its validators.
A message a schema gives itself (`error=…`) is left alone. `tests/test_api_messages.py`
checks that every default a field or validator can produce is covered.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

FIELD_MESSAGES: dict[type[ma.fields.Field], dict[str, str]] = {
    ma.fields.Field: {
        "required": "必填字段",
        "null": "不能为空",
        "validator_failed": "取值无效",
    },
    ma.fields.String: {"invalid": "应为字符串", "invalid_utf8": "不是有效的 UTF-8 字符串"},
    ma.fields.Number: {"invalid": "应为数字", "too_large": "数值过大"},
    ma.fields.Integer: {"invalid": "应为整数"},
    ma.fields.Float: {"special": "不允许 NaN 或无穷大"},  # float ok: only its message
    ma.fields.Decimal: {"special": "不允许 NaN 或无穷大"},
    ma.fields.Boolean: {"invalid": "应为布尔值"},
    ma.fields.Date: {
        "invalid": "日期格式应为 YYYY-MM-DD",
        "invalid_awareness": "日期格式有误",
        "format": "“{input}”无法格式化为日期",
    },
    ma.fields.DateTime: {
        "invalid": "时间格式应为 ISO 8601（如 2020-01-01T08:00:00+08:00）",
        "invalid_awareness": "时间应带时区（如 +08:00）",
        "format": "“{input}”无法格式化为时间",
    },
    ma.fields.Time: {
        "invalid": "时刻格式应为 HH:MM:SS",
        "invalid_awareness": "时刻的时区信息有误",
        "format": "“{input}”无法格式化为时刻",
    },
    ma.fields.TimeDelta: {"invalid": "不是有效的时长", "format": "{input!r} 无法格式化为时长"},
    ma.fields.List: {"invalid": "应为列表"},
    ma.fields.Tuple: {"invalid": "应为数组"},
    ma.fields.Mapping: {"invalid": "应为对象"},
    ma.fields.Nested: {"type": "应为对象"},
    ma.fields.Email: {"invalid": "不是有效的电子邮件地址"},
    ma.fields.URL: {"invalid": "不是有效的网址"},
    ma.fields.UUID: {"invalid_uuid": "不是有效的 UUID"},
    ma.fields.Enum: {"unknown": "应为以下之一：{choices}"},
    ma.fields.IP: {"invalid_ip": "不是有效的 IP 地址"},
    ma.fields.IPv4: {"invalid_ip": "不是有效的 IPv4 地址"},
    ma.fields.IPv6: {"invalid_ip": "不是有效的 IPv6 地址"},
    ma.fields.IPInterface: {"invalid_ip_interface": "不是有效的 IP 网段"},
    ma.fields.IPv4Interface: {"invalid_ip_interface": "不是有效的 IPv4 网段"},
    ma.fields.IPv6Interface: {"invalid_ip_interface": "不是有效的 IPv6 网段"},
}

SCHEMA_MESSAGES = {"type": "请求体格式有误，应为对象", "unknown": "未知字段"}

# Class attribute → Chinese. Range's messages are formatted twice (operator, then bound).
VALIDATOR_MESSAGES: dict[type[validate.Validator], dict[str, str]] = {
    validate.OneOf: {"default_message": "应为以下之一：{choices}"},
    validate.NoneOf: {"default_message": "取值无效"},
    validate.ContainsOnly: {"default_message": "所选项须在以下范围内：{choices}"},
    validate.ContainsNoneOf: {"default_message": "所选项不能包含：{values}"},
    validate.Equal: {"default_message": "应等于 {other}"},
    validate.Predicate: {"default_message": "取值无效"},
    validate.Regexp: {"default_message": "格式不正确"},
    validate.Email: {"default_message": "不是有效的电子邮件地址"},
    validate.URL: {"default_message": "不是有效的网址"},
    validate.Length: {
        "message_min": "长度不能少于 {min}",
        "message_max": "长度不能超过 {max}",
        "message_all": "长度应在 {min} 至 {max} 之间",
        "message_equal": "长度应为 {equal}",
    },
    validate.Range: {
        "message_min": "应{min_op} {{min}}",
        "message_max": "应{max_op} {{max}}",
        "message_all": "应{min_op} {{min}} 且{max_op} {{max}}",
        "message_gte": "大于或等于",
        "message_gt": "大于",
        "message_lte": "小于或等于",
        "message_lt": "小于",
    },
}


def install() -> None:
    """Replace the defaults in place (idempotent; affects every schema in the process)."""
    for field_class, messages in FIELD_MESSAGES.items():
        field_class.default_error_messages = {
            **field_class.__dict__.get("default_error_messages", {}),
            **messages,
        }
    ma.Schema._default_error_messages = {  # type: ignore[attr-defined]
        **ma.Schema._default_error_messages,  # type: ignore[attr-defined]
        **SCHEMA_MESSAGES,
    }
    for validator_class, attributes in VALIDATOR_MESSAGES.items():
        for name, text in attributes.items():
            setattr(validator_class, name, text)
