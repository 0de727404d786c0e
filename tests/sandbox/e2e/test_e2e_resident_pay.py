"""`python -m sandbox pay --household …` against the live API: the whole resident path."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

from sqlalchemy import select

from api.payments.models import Contribution, PaymentOrder
from sandbox.cli import main
from tests.sandbox.e2e.conftest import DEMO_SEED, SMALL_SCALE, District


def _pay(district: District, capsys: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(
        [
            "pay",
            "--sandbox-url", district.sandbox.base_url,
            "--api", district.api_url,
            "--roster", str(district.roster_file),
            "--json",
            *extra,
        ]
    )  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def test_wechat_resident_pays_medical_and_a_chosen_tier(district: District, capsys: Any) -> None:
    household = district.household(lambda h: len(h.living()) >= 2)
    code, summary = _pay(
        district, capsys, "--household", household.key, "--channel", "wechat", "--tier", "500"
    )
    assert code == 0, summary
    order = summary["order"]
    assert (summary["expected"], order["status"]) == ("paid", "paid")
    assert order["channel"] == "wechat"
    assert order["amount_fen"] == sum(i["amount_fen"] for i in order["items"])
    assert {i["pension_tier"] for i in order["items"] if i["insurance"] == "pension"} <= {500}
    assert all(i["contribution"]["status"] == "paid" for i in order["items"])
    assert summary["notifications"] == ["payment #1 200 accepted"]
    # The API holds exactly the contributions the order shows, for the household bound to.
    no = order["out_trade_no"]
    assert district.count(Contribution, Contribution.out_trade_no == no) == len(order["items"])
    assert district.scalar(select(PaymentOrder.household_id).where(
        PaymentOrder.out_trade_no == no)) == summary["household_id"]  # fmt: skip


def _flask(district: District) -> str:
    """`--flask`: the API's flask command with this test API's environment."""
    keep = ("DATABASE_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "WECHAT_API_BASE",
            "WECHAT_PAY_API_BASE", "ALIPAY_GATEWAY", "APP_TODAY", "TZ", "LOG_LEVEL",
            "PII_KEYS", "PII_INDEX_KEYS")  # fmt: skip
    env = district.flask_env()
    return shlex.join(
        ["env", *(f"{k}={env[k]}" for k in keep), sys.executable, "-m", "flask", "--app", "wsgi"]
    )


def test_dropped_alipay_notice_healed_with_the_exported_roster(
    district: District, capsys: Any
) -> None:
    """No --roster: the CLI runs `flask demo export-roster` itself (same scale and seed as the
    API's demo data); `--heal` runs reconcile-open when the notice was dropped."""
    code = main(
        [
            "pay", "--sandbox-url", district.sandbox.base_url, "--api", district.api_url,
            "--household", "3", "--channel", "alipay", "--fault", "drop", "--heal",
            "--flask", _flask(district), "--demo-scale", str(SMALL_SCALE),
            "--demo-seed", str(DEMO_SEED), "--insurances", "medical",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "faults         drop" in out
    assert '"paid": 1' in out and "reconcile-open {" in out
    assert "final state    paid  (expected paid)" in out
    assert "payment dropped" in out
    assert district.households[2].key in out
    assert district.count(PaymentOrder, PaymentOrder.status == "paid") == 1


def test_prepay_5xx_is_the_expected_refusal(district: District, capsys: Any) -> None:
    code, summary = _pay(
        district, capsys, "--household", "1", "--channel", "wechat", "--fault", "prepay_5xx"
    )
    assert code == 0, summary
    assert (summary["expected"], summary["ok"]) == ("refused: upstream_error", True)
    assert district.count(PaymentOrder, PaymentOrder.status == "failed") == 1
    assert district.count(PaymentOrder, PaymentOrder.status != "failed") == 0
    assert district.control.get("/sandbox/control/faults") == {"global": [], "orders": {}}
