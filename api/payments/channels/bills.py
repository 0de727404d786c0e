"""Parsing the channels' daily trade bills (对账单) into `BillRow`s, amounts in fen.

WeChat (v2 `pay/downloadbill` and v3 `/v3/bill/tradebill`) sends the same text: a plain header
row, detail rows whose every cell starts with a backquote, then a summary header and a summary
row (PROTOCOLS.md §1.9). Alipay sends a zip of GBK CSVs with `#` metadata lines around the
detail list (§5.8). Bills speak yuan; conversion goes through `money.yuan_str_to_fen`.
Columns are found by header name, so the legacy WeChat layout (总金额 instead of 订单金额)
still reads.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from api.payments.channels.base import BillRow, ChannelName
from api.payments.channels.timefmt import DASHED, parse_beijing
from api.payments.money import yuan_str_to_fen


class MalformedBill(ValueError):
    """The bill does not have the layout the protocol describes."""


def _fen(value: str | None) -> int | None:
    """A bill amount (possibly negative, as Alipay refund rows are) → absolute fen."""
    if value is None:
        return None
    return _fen_of(value)


@lru_cache(maxsize=4096)
def _fen_of(value: str) -> int | None:
    """`_fen` of a string, cached: a day's bill repeats a few hundred distinct amounts over
    tens of thousands of rows (premiums are a handful of figures), two amounts a row.
    A bad amount raises every time (exceptions are not cached)."""
    text = value.strip()
    if not text:
        return None
    if text.startswith("-"):
        text = text[1:]
    try:
        return yuan_str_to_fen(text)
    except ValueError as exc:
        raise MalformedBill(f"bad amount {value!r}") from exc


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _time(value: str | None) -> datetime | None:
    try:
        return parse_beijing(_blank_to_none(value), DASHED)
    except ValueError as exc:
        raise MalformedBill(f"bad time {value!r}") from exc


# WeChat ------------------------------------------------------------------------------------


def parse_wechat_bill(text: str) -> list[BillRow]:
    """The WeChat trade-bill text → rows; an empty bill (header only) → []."""
    lines = [line.rstrip("\r") for line in text.lstrip("\ufeff").split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return []
    header = [name.strip().lstrip("\ufeff") for name in lines[0].split(",")]
    if "商户订单号" not in header or "交易状态" not in header:
        raise MalformedBill("WeChat bill header lacks 商户订单号/交易状态")
    rows: list[BillRow] = []
    for line in lines[1:]:
        if not line.startswith("`"):
            break  # the summary header: detail rows are over
        cells = list(map(str.strip, line[1:].split(",`")))
        if len(cells) != len(header):
            raise MalformedBill(f"row has {len(cells)} cells, header has {len(header)}")
        rows.append(_wechat_row(dict(zip(header, cells, strict=True))))
    return rows


def _wechat_row(cell: Mapping[str, str]) -> BillRow:
    status = cell.get("交易状态", "").strip()
    out_trade_no = _blank_to_none(cell.get("商户订单号"))
    if out_trade_no is None:
        raise MalformedBill("row without 商户订单号")
    order_fen = _fen(cell.get("订单金额")) if "订单金额" in cell else _fen(cell.get("总金额"))
    if status == "REFUND":
        amount = _fen(cell.get("申请退款金额")) if cell.get("申请退款金额") else None
        if amount is None:
            amount = _fen(cell.get("退款金额"))
        settled = _fen(cell.get("退款金额"))
        kind = "refund"
    else:
        amount = order_fen
        settled = _fen(cell.get("应结订单金额"))
        kind = "payment"
    if amount is None:
        raise MalformedBill(f"row {out_trade_no} has no amount")
    return BillRow(
        channel=ChannelName.WECHAT,
        kind=kind,  # type: ignore[arg-type]
        out_trade_no=out_trade_no,
        transaction_id=_blank_to_none(cell.get("微信订单号")),
        amount_fen=amount,
        settled_fen=settled,
        out_refund_no=_blank_to_none(cell.get("商户退款单号")) if kind == "refund" else None,
        refund_id=_blank_to_none(cell.get("微信退款单号")) if kind == "refund" else None,
        occurred_at=_time(cell.get("交易时间")),
        status=status,
        app_id=_blank_to_none(cell.get("公众账号ID")),
        merchant_id=_blank_to_none(cell.get("商户号")),
        raw=dict(cell),
    )


# Alipay ------------------------------------------------------------------------------------


def _zip_name(info: zipfile.ZipInfo) -> str:
    """Alipay stores GBK file names without the UTF-8 flag; zipfile reads them as cp437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def parse_alipay_bill_zip(data: bytes) -> list[BillRow]:
    """The `csv.zip` from the bill URL → rows of its detail file (…业务明细.csv)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise MalformedBill("Alipay bill is not a zip") from exc
    with archive:
        details = [
            info
            for info in archive.infolist()
            if _zip_name(info).lower().endswith(".csv") and "汇总" not in _zip_name(info)
        ]
        if len(details) != 1:
            raise MalformedBill(f"expected one detail CSV in the zip, found {len(details)}")
        content = archive.read(details[0])
    return parse_alipay_bill_csv(content.decode("gb18030"))


def _normalise_header(name: str) -> str:
    return name.strip().replace("(", "（").replace(")", "）")


def parse_alipay_bill_csv(text: str) -> list[BillRow]:
    """The detail CSV text: rows between the 业务明细列表 markers."""
    lines = text.lstrip("\ufeff").splitlines()
    start = end = None
    for index, line in enumerate(lines):
        if line.startswith("#") and "业务明细列表" in line:
            if "结束" in line:
                end = index
                break
            start = index
    if start is None or end is None:
        raise MalformedBill("Alipay bill lacks the 业务明细列表 markers")
    table = list(csv.reader(lines[start + 1 : end]))
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        return []
    header = [_normalise_header(name) for name in table[0]]
    if "商户订单号" not in header or "业务类型" not in header:
        raise MalformedBill("Alipay bill header lacks 商户订单号/业务类型")
    rows = []
    for raw in table[1:]:
        if len(raw) < len(header):
            raise MalformedBill(f"row has {len(raw)} cells, header has {len(header)}")
        cell = {name: raw[i].strip() for i, name in enumerate(header)}
        rows.append(_alipay_row(cell))
    return rows


def _alipay_row(cell: Mapping[str, str]) -> BillRow:
    business = cell.get("业务类型", "")
    if business == "交易":
        kind = "payment"
    elif business == "退款":
        kind = "refund"
    else:
        raise MalformedBill(f"unknown 业务类型 {business!r}")
    out_trade_no = _blank_to_none(cell.get("商户订单号"))
    amount = _fen(cell.get("订单金额（元）"))
    if out_trade_no is None or amount is None:
        raise MalformedBill("row without 商户订单号 or 订单金额")
    return BillRow(
        channel=ChannelName.ALIPAY,
        kind=kind,  # type: ignore[arg-type]
        out_trade_no=out_trade_no,
        transaction_id=_blank_to_none(cell.get("支付宝交易号")),
        amount_fen=amount,
        settled_fen=_fen(cell.get("商家实收（元）")),
        out_refund_no=_blank_to_none(cell.get("退款批次号/请求号")) if kind == "refund" else None,
        refund_id=None,
        occurred_at=_time(cell.get("完成时间") or cell.get("创建时间")),
        status=business,
        app_id=None,
        merchant_id=None,
        raw=dict(cell),
    )


def parse_bill(channel: str, data: bytes) -> list[BillRow]:
    """A bill file as `fetch_bill` returns it (or as finance saved it) → rows."""
    if channel == ChannelName.ALIPAY:
        try:
            return parse_alipay_bill_zip(data)
        except UnicodeDecodeError as exc:
            raise MalformedBill(f"Alipay bill is not GBK: {exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBill(f"WeChat bill is not UTF-8: {exc}") from exc
    return parse_wechat_bill(text)
