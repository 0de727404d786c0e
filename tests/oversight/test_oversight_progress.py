"""Progress against the targets on the hand-computed district of conftest.py, both backends.

As of 2019-11-28 (Beijing), by hand:
- town A 西集镇: medical p1, p2, p3, p4 = 4 persons, 4 × 26,000 = 104,000 fen (p4's refunded
  wechat payment does not count, its alipay payment does); pension p1 (30,000) and p3
  (government, 10,000) = 2 persons, 40,000 fen, new enrollees 1 (p3: p1 paid for 2019).
  By source: wechat medical 1 / pension 1; alipay medical 2; government medical 1 / pension 1.
  By phase: 集中缴费 medical 2 (p1 10-27, p2 11-01 Beijing) pension 1; 集中缴费后续 (11-22)
  medical 1 pension 1 new 1; 费款入库 (11-27) medical 1.
- town B 城头镇: medical p5 (agent) 1, 26,000; pension p5 (counter) 1 new 1, 50,000; p6 is
  paid 11-30, after the as-of day.
- district: medical 5 / 130,000 fen; pension 3 / new 2.
Forecast: collection starts 10-26 (the first phase open to collection), the window ends
12-20: total 56 days, elapsed through 11-28 = 34; town A medical 4 × 56 // 34 = 6,
amount 104,000 × 56 // 34 = 171,294; district medical 5 × 56 // 34 = 8.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from openpyxl import load_workbook

from api.oversight.progress import Forecast, forecast_for
from api.policy.model import load_policy

URL = "/api/v1/oversight/progress"
Q = "date=2019-11-28"


def _unit(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(u for u in body["units"] if u["code"] == code)


def test_town_level_figures_by_hand(client: FlaskClient, district: Any) -> None:
    r = client.get(f"{URL}?level=town&{Q}", headers=district.headers["finance"])
    assert r.status_code == 200, r.json
    body = r.json
    a = _unit(body, "370406101")
    assert a["medical"]["persons"] == 4
    assert a["medical"]["amount_fen"] == 104_000
    assert a["medical"]["target_persons"] == 29079
    assert a["medical"]["target_amount_fen"] == 756_054_000
    assert a["medical"]["share_bp"] == 4 * 10_000 // 29079
    assert a["pension"] == {
        "persons": 2, "new_persons": 1, "amount_fen": 40_000, "target_persons": 6370,
        "target_new_persons": 249, "share_bp": 2 * 10_000 // 6370,
        "new_share_bp": 10_000 // 249, "forecast_persons": 2 * 56 // 34,
        "forecast_share_bp": (2 * 56 // 34) * 10_000 // 6370,
    }  # fmt: skip
    src = a["by_source"]
    assert (src["wechat"]["medical_persons"], src["wechat"]["pension_persons"]) == (1, 1)
    assert src["alipay"]["medical_persons"] == 2
    assert src["government"]["medical_persons"] == 1
    assert src["government"]["medical_amount_fen"] == 26_000
    assert src["government"]["pension_new_persons"] == 1
    assert src["agent"]["medical_persons"] == src["counter"]["medical_persons"] == 0
    phase = a["by_phase"]
    assert phase["preparation"]["medical_persons"] == 0
    assert phase["concentrated_payment"]["medical_persons"] == 2
    assert phase["concentrated_payment"]["pension_persons"] == 1
    assert phase["between_phases"]["pension_new_persons"] == 1
    assert phase["treasury"]["medical_persons"] == 1
    assert [(d["date"], d["medical_persons"]) for d in a["days"]] == [
        ("2019-10-27", 1), ("2019-11-01", 1), ("2019-11-22", 1), ("2019-11-27", 1),
    ]  # fmt: skip
    b = _unit(body, "370406102")
    assert (b["medical"]["persons"], b["medical"]["amount_fen"]) == (1, 26_000)
    assert (b["pension"]["persons"], b["pension"]["new_persons"]) == (1, 1)
    assert b["by_source"]["agent"]["medical_persons"] == 1
    assert b["by_source"]["counter"]["pension_amount_fen"] == 50_000
    total = body["total"]
    assert (total["medical"]["persons"], total["medical"]["amount_fen"]) == (5, 130_000)
    assert (total["pension"]["persons"], total["pension"]["new_persons"]) == (3, 2)
    assert total["medical"]["target_persons"] == 437_854
    assert total["medical"]["target_amount_fen"] == 113_842_040 * 100


def test_forecast(client: FlaskClient, district: Any) -> None:
    body = client.get(f"{URL}?level=town&{Q}", headers=district.headers["finance"]).json
    assert body["forecast"]["elapsed_days"] == 34
    assert body["forecast"]["total_days"] == 56
    a = _unit(body, "370406101")
    assert a["medical"]["forecast_persons"] == 6
    assert a["medical"]["forecast_amount_fen"] == 171_294
    assert body["total"]["medical"]["forecast_persons"] == 8


def test_forecast_formula_edges() -> None:
    policy = load_policy(2020)
    assert forecast_for(policy, date(2019, 10, 20)).of(7) == 7  # before collection starts
    assert forecast_for(policy, date(2019, 10, 26)).of(3) == 3 * 56
    assert forecast_for(policy, date(2019, 12, 20)).of(9) == 9  # the window's end: as paid
    assert forecast_for(policy, date(2020, 3, 1)).of(9) == 9
    assert Forecast(date(2019, 10, 26), date(2019, 12, 20), 28, 56).of(101) == 202


def test_as_of_day_is_beijing_and_inclusive(client: FlaskClient, district: Any) -> None:
    h = district.headers["finance"]
    # p2 paid 2019-10-31 16:30 UTC: Beijing 11-01, so not yet on 10-31
    oct31 = client.get(f"{URL}?level=town&date=2019-10-31&town=370406101", headers=h).json
    nov01 = client.get(f"{URL}?level=town&date=2019-11-01&town=370406101", headers=h).json
    assert oct31["total"]["medical"]["persons"] == 1
    assert nov01["total"]["medical"]["persons"] == 2
    later = client.get(f"{URL}?level=district&date=2019-12-01", headers=h).json
    assert later["units"][0]["medical"]["persons"] == 6  # p6 from 11-30


def test_village_level_has_no_targets(client: FlaskClient, district: Any) -> None:
    body = client.get(f"{URL}?level=village&{Q}", headers=district.headers["auditor"]).json
    codes = [u["code"] for u in body["units"]]
    assert codes == ["370406101201", "370406101202", "370406102201"]
    a1 = body["units"][0]
    assert a1["medical"]["persons"] == 3 and a1["medical"]["target_persons"] is None
    assert a1["medical"]["share_bp"] is None
    assert a1["town_name"] == "西集镇"


def test_town_sees_only_its_villages(client: FlaskClient, district: Any) -> None:
    h = district.headers["town"]
    body = client.get(f"{URL}?level=village&{Q}", headers=h).json
    assert [u["code"] for u in body["units"]] == ["370406101201", "370406101202"]
    assert body["total"]["code"] == "370406101"
    assert body["total"]["medical"]["persons"] == 4
    own = client.get(f"{URL}?level=town&{Q}", headers=h).json
    assert [u["code"] for u in own["units"]] == ["370406101"]
    for query in (f"town=370406102&{Q}", f"level=district&{Q}", "level=village&town=370406102"):
        r = client.get(f"{URL}?{query}", headers=h)
        assert r.status_code == 403, query
        assert r.json["code"] == "out_of_scope"
        assert "本镇" in r.json["message"]
    r = client.get(f"{URL}?{Q}", headers=district.headers["agent"])
    assert r.status_code == 403


def test_bad_input_is_422_json(client: FlaskClient, district: Any) -> None:
    h = district.headers["finance"]
    for query in ("level=province", "date=2019-13-01", "date=yesterday", "town=abc", "year=1"):
        r = client.get(f"{URL}?{query}", headers=h)
        assert r.status_code == 422, query
        assert r.json["code"] and r.json["message"]
    r = client.get(f"{URL}?year=2031", headers=h)
    assert r.status_code in (404, 422) and r.json["code"] == "unknown_year"
    r = client.get(f"{URL}?town=370406999", headers=h)
    assert r.status_code == 404 and r.json["code"] == "town_not_found"
    assert client.get(URL).status_code == 401


def test_xlsx_export_is_neutralised(client: FlaskClient, district: Any) -> None:
    r = client.get(f"{URL}?level=village&format=xlsx&{Q}", headers=district.headers["finance"])
    assert r.status_code == 200
    book = load_workbook(io.BytesIO(r.data))
    assert book.sheetnames == ["进度", "按来源", "按阶段", "按日"]
    names = [row[2] for row in book["进度"].iter_rows(min_row=3, values_only=True)]
    assert '\'=HYPERLINK("x")村' in names
    assert not any(isinstance(n, str) and n.startswith("=") for n in names)
    first = next(book["进度"].iter_rows(min_row=3, max_row=3, values_only=True))
    assert first[1] == "370406101201" and first[11] == 3
    sources = {row[2] for row in book["按来源"].iter_rows(min_row=2, values_only=True)}
    assert {"微信", "支付宝", "代办员代收", "柜台", "政府代缴"} <= sources


def _svg(client: FlaskClient, district: Any, kind: str) -> ET.Element:
    r = client.get(f"{URL}/chart.svg?kind={kind}&{Q}", headers=district.headers["finance"])
    assert r.status_code == 200
    assert r.content_type.startswith("image/svg+xml")
    assert "Noto Sans CJK SC" in r.get_data(as_text=True)
    return ET.fromstring(r.data)


def test_cumulative_chart(client: FlaskClient, district: Any) -> None:
    root = _svg(client, district, "cumulative")
    ns = "{http://www.w3.org/2000/svg}"
    texts = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    assert "西集镇" in texts and "城头镇" in texts
    towns = root.findall(f"{ns}g[@class='town']")
    assert len(towns) == 2
    for town in towns:
        assert town.find(f"{ns}line[@class='target-line']") is not None
        assert town.findall(f"{ns}polyline")


def test_mix_chart(client: FlaskClient, district: Any) -> None:
    root = _svg(client, district, "mix")
    ns = "{http://www.w3.org/2000/svg}"
    texts = " ".join(t.text or "" for t in root.iter(f"{ns}text"))
    for name in ("西集镇", "城头镇", "山亭区", "微信", "支付宝", "代办员代收", "政府代缴"):
        assert name in texts
    segments = root.findall(f".//{ns}rect[@class='segment']")
    assert segments


def test_chart_kind_is_validated(client: FlaskClient, district: Any) -> None:
    r = client.get(f"{URL}/chart.svg?kind=pie", headers=district.headers["finance"])
    assert r.status_code == 422
