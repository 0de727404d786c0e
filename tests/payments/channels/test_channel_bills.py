"""Bill parsing: WeChat's backquoted text and Alipay's zip of GBK CSVs (PROTOCOLS.md §1.9, §5.8)."""

from __future__ import annotations

import io
import zipfile

import pytest

from api.payments.channels.bills import (
    MalformedBill,
    parse_alipay_bill_csv,
    parse_alipay_bill_zip,
    parse_wechat_bill,
)

WECHAT_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def _wechat_row(*cells: str) -> str:
    return "`" + ",`".join(cells)


WECHAT_BILL = "\r\n".join(
    [
        WECHAT_HEADER,
        _wechat_row(
            "2020-01-01 09:30:00",
            "wx8888888888888888",
            "1900000109",
            "0",
            "",
            "4200000540202005267407409907",
            "SSI20200101ABCDEFGHJKLMNPQR",
            "oUpF8uMEb4qRXf22",
            "JSAPI",
            "SUCCESS",
            "OTHERS",
            "CNY",
            "260.00",
            "0.00",
            "0",
            "0",
            "0.00",
            "0.00",
            "",
            "",
            "2020年城乡居民医疗保险费",
            "",
            "1.56000",
            "0.60%",
            "260.00",
            "0.00",
            "",
        ),
        _wechat_row(
            "2020-01-01 15:00:00",
            "wx8888888888888888",
            "1900000109",
            "0",
            "",
            "4200000540202005267407409907",
            "SSI20200101ABCDEFGHJKLMNPQR",
            "oUpF8uMEb4qRXf22",
            "JSAPI",
            "REFUND",
            "OTHERS",
            "CNY",
            "0.00",
            "0.00",
            "50000408942018111907145868882",
            "SSR20200101ABCDEFGHJKLMNPQR",
            "90.00",
            "0.00",
            "ORIGINAL",
            "SUCCESS",
            "2020年城乡居民医疗保险费",
            "",
            "-0.54000",
            "0.60%",
            "0.00",
            "90.00",
            "",
        ),
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`2,`260.00,`90.00,`0.00,`1.02000,`260.00,`90.00",
        "",
    ]
)


def test_wechat_bill_rows() -> None:
    payment, refund = parse_wechat_bill("\ufeff" + WECHAT_BILL)
    assert payment.kind == "payment" and payment.status == "SUCCESS"
    assert payment.out_trade_no == "SSI20200101ABCDEFGHJKLMNPQR"
    assert payment.transaction_id == "4200000540202005267407409907"
    assert (payment.amount_fen, payment.settled_fen) == (26000, 26000)
    assert payment.occurred_at is not None and payment.occurred_at.hour == 1  # 09:30 Beijing
    assert (payment.app_id, payment.merchant_id) == ("wx8888888888888888", "1900000109")
    assert payment.out_refund_no is None
    assert refund.kind == "refund" and refund.amount_fen == 9000
    assert refund.out_refund_no == "SSR20200101ABCDEFGHJKLMNPQR"
    assert refund.refund_id == "50000408942018111907145868882"
    assert refund.raw["手续费"] == "-0.54000"


def test_wechat_bill_with_only_a_header_is_empty() -> None:
    assert parse_wechat_bill(WECHAT_HEADER + "\n") == []
    assert parse_wechat_bill("") == []


def test_wechat_bill_with_a_short_row_is_malformed() -> None:
    text = WECHAT_HEADER + "\n`2020-01-01 09:30:00,`wx8888888888888888\n"
    with pytest.raises(MalformedBill):
        parse_wechat_bill(text)


def test_wechat_bill_with_float_noise_is_malformed() -> None:
    text = WECHAT_BILL.replace("`260.00,`0.00,`", "`260.001,`0.00,`", 1)
    with pytest.raises(MalformedBill):
        parse_wechat_bill(text)


ALIPAY_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
ALIPAY_DETAIL = "\r\n".join(
    [
        "#支付宝业务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2020年01月01日 00:00:00]   终止日期：[2020年01月02日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ALIPAY_HEADER,
        "2020010122001430620542154863\t,SSI20200101ABCDEFGHJKLMNPQR\t,交易,2020年城乡居民医疗保险费,"
        "2020-01-01 09:29:00,2020-01-01 09:30:00,,,,,138***8000,260.00,260.00,0.00,0.00,0.00,"
        "0.00,0.00,,0.00,0.00,,-1.56,0.00,",
        "2020010122001430620542154863\t,SSI20200101ABCDEFGHJKLMNPQR\t,退款,2020年城乡居民医疗保险费,"
        "2020-01-01 09:29:00,2020-01-01 15:00:00,,,,,138***8000,-90.00,-90.00,0.00,0.00,0.00,"
        "0.00,0.00,,0.00,0.00,SSR20200101ABCDEFGHJKLMNPQR\t,0.54,0.00,",
        "#-----------------------------------------业务明细列表结束------------------------------------",
        "#交易合计：1笔，商家实收共260.00元，商家优惠共0.00元",
        "#退款合计：1笔，商家实收共-90.00元，商家优惠共0.00元",
        "#导出时间：[2020年01月02日 10:00:00]",
    ]
)


class _GbkName(zipfile.ZipInfo):
    """GBK file names without the UTF-8 flag, as Alipay writes them (§5.8)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def _alipay_zip(detail: str, *, utf8_names: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (
            ("20880000000000010156_20200101_业务明细.csv", detail),
            ("20880000000000010156_20200101_业务明细(汇总).csv", "#汇总\r\n"),
        ):
            info = zipfile.ZipInfo(name) if utf8_names else _GbkName(name)
            archive.writestr(info, text.encode("gbk"))
    return buffer.getvalue()


def test_alipay_bill_zip_rows() -> None:
    payment, refund = parse_alipay_bill_zip(_alipay_zip(ALIPAY_DETAIL))
    assert payment.kind == "payment"
    assert payment.out_trade_no == "SSI20200101ABCDEFGHJKLMNPQR"
    assert payment.transaction_id == "2020010122001430620542154863"
    assert (payment.amount_fen, payment.settled_fen) == (26000, 26000)
    assert payment.occurred_at is not None and payment.occurred_at.hour == 1
    assert refund.kind == "refund" and refund.amount_fen == 9000 and refund.settled_fen == 9000
    assert refund.out_refund_no == "SSR20200101ABCDEFGHJKLMNPQR"


def test_alipay_bill_zip_with_utf8_names_also_reads() -> None:
    assert len(parse_alipay_bill_zip(_alipay_zip(ALIPAY_DETAIL, utf8_names=True))) == 2


def test_alipay_bill_without_markers_or_zip_is_malformed() -> None:
    with pytest.raises(MalformedBill):
        parse_alipay_bill_csv("#支付宝业务明细查询\r\n" + ALIPAY_HEADER)
    with pytest.raises(MalformedBill):
        parse_alipay_bill_zip(b"not a zip")


def test_alipay_bill_with_no_rows_is_empty() -> None:
    lines = ALIPAY_DETAIL.split("\r\n")
    empty = "\r\n".join(lines[:5] + lines[7:])
    assert parse_alipay_bill_csv(empty) == []
