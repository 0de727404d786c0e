"""The CLI against the in-process sandbox (`--sandbox-url`), and the payer page."""

from __future__ import annotations

import json
from typing import Any

import requests
from wechatpy.pay import WeChatPay

from sandbox.cli import main
from tests.sandbox.conftest import Receiver


def test_pay_faults_notifications_and_bill_commands(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver, capsys: Any
) -> None:
    url = ["--sandbox-url", sandbox.base_url]
    wechatpy_pay.order.create(
        trade_type="JSAPI", body="医疗保险", total_fee=100, notify_url=receiver.url("/v2/pay"),
        client_ip="127.0.0.1", user_id="oUser0001", out_trade_no="CLI000000001",
    )  # fmt: skip
    assert main(["faults", *url, "set", "duplicate", "--out-trade-no", "CLI000000001"]) == 0
    assert main(["faults", *url, "set", "nonsense"]) == 1
    capsys.readouterr()
    assert main(["pay", *url, "--channel", "wechat", "--out-trade-no", "CLI000000001",
                 "--wait", "5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert '"state": "PAID"' in out and "duplicate" in out
    assert len(receiver.wait_for("/v2/pay", 2)) == 2
    assert main(["notifications", *url, "--channel", "wechat", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == 2 and all(e["accepted"] for e in entries)
    today = sandbox.sandbox.clock.today().isoformat()
    assert main(["bill", *url, "--channel", "wechat", "--date", today]) == 0
    assert "CLI000000001" in capsys.readouterr().out
    assert main(["pay", *url, "--channel", "wechat", "--out-trade-no", "CLI000000001"]) == 1
    assert main(["reset", *url]) == 0


def test_payer_page_cancel_keeps_order_unpaid(
    sandbox: Any, wechatpy_pay: WeChatPay, receiver: Receiver
) -> None:
    wechatpy_pay.order.create(
        trade_type="JSAPI", body="城乡居民医疗保险", total_fee=38000,
        notify_url=receiver.url("/v2/pay"), client_ip="127.0.0.1", user_id="oUser0001",
        out_trade_no="CLI000000002",
    )  # fmt: skip
    page_url = f"{sandbox.base_url}/sandbox/pay/wechat/CLI000000002"
    page = requests.get(page_url)
    for text in ("商户", "金额", "¥380.00", "城乡居民医疗保险", "确认支付", "取消"):
        assert text in page.text
    cancelled = requests.post(page_url, data={"action": "cancel"})
    assert "已取消支付" in cancelled.text
    assert wechatpy_pay.order.query(out_trade_no="CLI000000002")["trade_state"] == "NOTPAY"
    assert requests.get(f"{sandbox.base_url}/sandbox/pay/wechat/NOPE").status_code == 404


def test_serve_command_runs_a_server(tmp_path: Any) -> None:
    """`python -m sandbox serve --port 0` binds, prints its URL and answers."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, APP_TODAY="2019-11-05", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--time-scale", "0.001"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        base = banner.split(" on ", 1)[1].split()[0]
        settings = requests.get(f"{base}/sandbox/control/settings", timeout=5).json()
        assert settings["today"] == "2019-11-05" and settings["time_scale"] == 0.001
    finally:
        process.terminate()
        process.wait(timeout=10)
