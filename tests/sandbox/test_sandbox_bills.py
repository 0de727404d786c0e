"""Bills in each vendor's format, parsed back to the paid orders with exact amounts (§1.9,
§2.1, §5.8)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
import zipfile
from decimal import Decimal
from typing import Any

import pytest
import requests
from alipay import AliPay
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay

from tests.sandbox.conftest import Receiver, control


def _fen(yuan: str) -> int:
    return int(Decimal(yuan.strip()) * 100)


def _wechat_rows(text: str) -> tuple[list[dict[str, str]], list[str]]:
    lines = [line for line in text.split("\r\n") if line]
    header = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        if not line.startswith("`"):
            break
        cells = line[1:].split(",`")
        assert len(cells) == len(header)
        rows.append(dict(zip(header, cells, strict=True)))
    summary = lines[-1][1:].split(",`")
    return rows, summary


def _wechat_day(sandbox: Any) -> Any:
    return sandbox.sandbox.clock.today()


def test_v2_downloadbill_today_parses_back(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    today = _wechat_day(sandbox)
    with pytest.raises(WeChatPayException) as empty:
        wechatpy_pay.tools.download_bill(today)
    assert empty.value.return_msg == "No Bill Exist"
    amounts = {"BILL00000001": 18000, "BILL00000002": 30001}
    for no, fee in amounts.items():
        wechatpy_pay.order.create(
            trade_type="JSAPI", body="医疗保险", total_fee=fee, notify_url=receiver.url("/v2/pay"),
            client_ip="127.0.0.1", user_id="oUser0001", out_trade_no=no,
        )  # fmt: skip
        control(sandbox, "pay", {"channel": "wechat", "out_trade_no": no})
    wechatpy_pay.refund.apply(
        total_fee=30001, refund_fee=1, out_refund_no="BILLRF000002", out_trade_no="BILL00000002"
    )
    text = wechatpy_pay.tools.download_bill(today)
    rows, summary = _wechat_rows(text)
    paid = {r["商户订单号"]: _fen(r["订单金额"]) for r in rows if r["交易状态"] == "SUCCESS"}
    assert paid == amounts
    [refund] = [r for r in rows if r["交易状态"] == "REFUND"]
    assert refund["商户退款单号"] == "BILLRF000002" and _fen(refund["退款金额"]) == 1
    assert summary[0] == "3" and _fen(summary[1]) == 48001 and _fen(summary[2]) == 1
    success_only, _ = _wechat_rows(wechatpy_pay.tools.download_bill(today, bill_type="SUCCESS"))
    assert {r["商户订单号"] for r in success_only} == set(amounts)


def test_v3_tradebill_hash_and_download(
    sandbox: Any, wechatpy_pay: WeChatPay, wxpay_v3: Any, receiver: Receiver
) -> None:
    today = _wechat_day(sandbox)
    status, body = wxpay_v3.trade_bill(bill_date=today.isoformat())
    assert status == 400 and json.loads(body)["code"] == "NO_STATEMENT_EXIST"
    wechatpy_pay.order.create(
        trade_type="JSAPI", body="医疗保险", total_fee=12345, notify_url=receiver.url("/v2/pay"),
        client_ip="127.0.0.1", user_id="oUser0001", out_trade_no="BILL00000003",
    )  # fmt: skip
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "BILL00000003"})
    status, body = wxpay_v3.trade_bill(bill_date=today.isoformat())
    info = json.loads(body)
    assert status == 200 and info["hash_type"] == "SHA1"
    assert info["download_url"].startswith(sandbox.base_url)
    status, content = wxpay_v3.download_bill(info["download_url"])
    assert status == 200
    raw = gzip.decompress(content)
    assert hashlib.sha1(raw).hexdigest() == info["hash_value"]
    rows, _ = _wechat_rows(raw.decode("utf-8"))
    assert [(r["商户订单号"], _fen(r["订单金额"])) for r in rows] == [("BILL00000003", 12345)]


def test_alipay_bill_zip_gbk_and_url_expiry(
    sandbox: Any, alipay_client: AliPay, receiver: Receiver
) -> None:
    today = sandbox.sandbox.clock.today().isoformat()
    query = {"bill_type": "trade", "bill_date": today}
    method = "alipay.data.dataservice.bill.downloadurl.query"
    assert alipay_client.server_api(method, query)["code"] == "40004"
    for no, amount in (("BILL00000004", "300.00"), ("BILL00000005", "0.01")):
        alipay_client.api_alipay_trade_precreate(
            subject="养老保险", out_trade_no=no, total_amount=amount,
            notify_url=receiver.url("/alipay/notify"),
        )  # fmt: skip
        control(sandbox, "pay", {"channel": "alipay", "out_trade_no": no})
    alipay_client.api_alipay_trade_refund(
        "100.00", out_trade_no="BILL00000004", out_request_no="R1"
    )
    reply = alipay_client.server_api(method, query)
    assert reply["code"] == "10000"
    content = requests.get(reply["bill_download_url"]).content
    archive = zipfile.ZipFile(io.BytesIO(content))
    names = [i.filename.encode("cp437").decode("gbk") for i in archive.infolist()]
    assert not any(i.flag_bits & 0x800 for i in archive.infolist())  # GBK names, no UTF-8 flag
    [detail_name] = [n for n in names if n.endswith("业务明细.csv")]
    assert any(n.endswith("业务明细(汇总).csv") for n in names)
    text = archive.read(archive.infolist()[names.index(detail_name)]).decode("gbk")
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("#") and "业务明细列表" in line
    )
    end = next(i for i, line in enumerate(lines) if "业务明细列表结束" in line)
    table = list(csv.DictReader(lines[start + 1 : end]))
    trades = {
        r["商户订单号"].strip(): _fen(r["订单金额（元）"]) for r in table if r["业务类型"] == "交易"
    }
    assert trades == {"BILL00000004": 30000, "BILL00000005": 1}
    [refund] = [r for r in table if r["业务类型"] == "退款"]
    assert _fen(refund["订单金额（元）"]) == -10000 and refund["退款批次号/请求号"] == "R1"
    # The URL lives 30 seconds (here shortened): then Alipay says 下载超时.
    sandbox.sandbox.settings = sandbox.sandbox.settings.with_(SANDBOX_BILL_URL_TTL=0.1)
    try:
        short = alipay_client.server_api(method, query)["bill_download_url"]
        time.sleep(0.2)
        expired = requests.get(short)
        assert expired.status_code == 410 and "下载超时" in expired.text
    finally:
        sandbox.sandbox.settings = sandbox.sandbox.settings.with_(SANDBOX_BILL_URL_TTL=30.0)


def test_bills_read_by_the_api_parsers(
    sandbox: Any, wechatpy_pay: WeChatPay, alipay_client: AliPay, receiver: Receiver
) -> None:
    """Cross-check with the API's own bill parsers, when they are importable."""
    parsers = pytest.importorskip("api.payments.channels.bills")
    today = sandbox.sandbox.clock.today()
    wechatpy_pay.order.create(
        trade_type="JSAPI", body="医疗保险", total_fee=250, notify_url=receiver.url("/v2/pay"),
        client_ip="127.0.0.1", user_id="oUser0001", out_trade_no="BILL00000006",
    )  # fmt: skip
    control(sandbox, "pay", {"channel": "wechat", "out_trade_no": "BILL00000006"})
    [row] = parsers.parse_wechat_bill(wechatpy_pay.tools.download_bill(today))
    assert (row.out_trade_no, row.amount_fen, row.kind) == ("BILL00000006", 250, "payment")
    alipay_client.api_alipay_trade_precreate(
        subject="养老保险", out_trade_no="BILL00000007", total_amount="12.34",
        notify_url=receiver.url("/alipay/notify"),
    )  # fmt: skip
    control(sandbox, "pay", {"channel": "alipay", "out_trade_no": "BILL00000007"})
    url = alipay_client.server_api(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": today.isoformat()},
    )["bill_download_url"]
    [ali] = parsers.parse_alipay_bill_zip(requests.get(url).content)
    assert (ali.out_trade_no, ali.amount_fen, ali.kind) == ("BILL00000007", 1234, "payment")


def test_bill_faults_change_the_bill_only(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    """bill_omit / bill_amount / bill_not_ready / unknown-trade: the bill lies, the trades and
    the query do not (what reconciliation must find)."""
    today = _wechat_day(sandbox)
    for no in ("BILL00000011", "BILL00000012", "BILL00000013"):
        wechatpy_pay.order.create(
            trade_type="JSAPI", body="医疗保险", total_fee=28000,
            notify_url=receiver.url("/v2/pay"), client_ip="127.0.0.1", user_id="oUser0001",
            out_trade_no=no,
        )  # fmt: skip
        control(sandbox, "pay", {"channel": "wechat", "out_trade_no": no})
    control(sandbox, "faults", {"faults": ["bill_omit"], "out_trade_no": "BILL00000012"})
    control(sandbox, "faults", {"faults": ["bill_amount"], "out_trade_no": "BILL00000013"})
    stranger = control(sandbox, "unknown-trade", {"channel": "wechat", "amount_fen": 12300})
    rows, summary = _wechat_rows(wechatpy_pay.tools.download_bill(today))
    billed = {r["商户订单号"]: _fen(r["订单金额"]) for r in rows}
    assert billed == {
        "BILL00000011": 28000,
        "BILL00000013": 28100,
        stranger["order"]["out_trade_no"]: 12300,
    }
    assert summary[0] == "3" and _fen(summary[5]) == 28000 + 28100 + 12300
    assert wechatpy_pay.order.query(out_trade_no="BILL00000012")["trade_state"] == "SUCCESS"
    control(sandbox, "faults", {"faults": ["bill_not_ready"]})
    with pytest.raises(WeChatPayException) as answer:
        wechatpy_pay.tools.download_bill(today)
    assert answer.value.return_msg == "No Bill Exist"
