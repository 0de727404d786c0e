"""The demo district after a collection season: one paid order per paying household.

`pay_district` writes, into a database that holds the demo district (`load_demo`), what the
product would have written had each paying household paid online once during the 2020
collection: the pension tier a family chose (`enrollments`), the order (`payment_orders`, in
status `paid`), its items (`payment_order_items`) and one contribution per item
(`contributions`). Written in bulk with COPY, not through the product's request path (a
district's season of notifications would take longer than the benchmark), but priced and
shaped by the product's own functions:

- items: per member, `api.policy.rules.quote_member` on the payment's Beijing date, kept as
  `api.payments.pricing.dues` keeps them (medical: due and owing; pension: eligible, a tier
  chosen, owing); the order's amount, `late`, description, `priced_on` and expiry as
  `api.payments.orders.create_order` sets them, its number from `new_out_trade_no`;
- paid: status, `paid_at`, `paid_amount_fen`, `transaction_id` as `settlement.apply_payment`
  sets them; each contribution as `ledger.book_contributions` writes it (cover start from
  `pricing.item_benefit_start`).

tests/test_bench_reconciliation.py checks the shape: the items equal `pricing.dues` for the
household on that day, and re-applying an order through `settlement.apply_payment` writes the
same contributions and order columns. Not written (reconciliation reads none of them): order
events, audit rows, tax records (outbox), notification logs, resident accounts (orders carry
a payer id but no `account_id`), newborns' birth-year items and back-payments.

Deterministic for a seed, except the order numbers (`new_out_trade_no` is random, as in
production).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from api.clock import BEIJING
from api.payments.channels.base import new_out_trade_no
from api.payments.orders import INSURANCE_NAMES
from api.payments.pricing import benefit_start, item_benefit_start, price_valid_for
from api.policy import Policy, load_policy, rules
from api.policy.rules import PersonFacts

YEAR = 2020
ORDER_TTL = timedelta(minutes=30)  # Config.ORDER_TTL_MINUTES
FIRST_DAY = date(2019, 10, 26)  # online collection opens (policy_2020.toml, phases)
LAST_DAY = date(2019, 12, 31)
PAYING = 0.92  # share of households that owe something and pay during the season
WECHAT = 0.65  # share of the other days' orders paid through WeChat (the rest Alipay)
CHOOSES_TIER = 0.6  # share of pension-eligible members whose family chose a tier


@dataclass
class _Member:
    id: int
    facts: PersonFacts


@dataclass
class _Item:
    person_id: int
    insurance: str
    amount_fen: int
    government_pays_fen: int
    subsidy_fen: int
    pension_tier: int | None
    late: bool
    rule: str
    benefit_start: date | None
    birth_date: date


@dataclass
class PaidOrder:
    """One written order, as the bill generator needs it."""

    id: int
    out_trade_no: str
    channel: str
    amount_fen: int
    paid_at: datetime
    transaction_id: str


@dataclass
class Season:
    """What `pay_district` wrote."""

    orders: int = 0
    items: int = 0
    contributions: int = 0
    enrollments: int = 0
    households_owing_nothing: int = 0
    households_not_paying: int = 0
    busy: list[PaidOrder] = field(default_factory=list)  # WeChat, on the bill day


def _members(conn: Connection) -> dict[int, list[tuple[int, PersonFacts]]]:
    """Every person's facts (birth date, flags, categories), by household."""
    rows = conn.exec_driver_sql(
        "SELECT p.id, p.household_id, p.birth_date, p.student, p.employee_pension, "
        "p.employee_medical, p.deceased_on, p.residence_permit, "
        "coalesce((SELECT array_agg(c.category) FROM person_categories c "
        "WHERE c.person_id = p.id), '{}') "
        "FROM persons p ORDER BY p.household_id, p.id"
    )
    households: dict[int, list[tuple[int, PersonFacts]]] = {}
    for pid, hid, birth, student, emp_p, emp_m, deceased, permit, cats in rows:
        facts = PersonFacts(
            birth_date=birth,
            categories=frozenset(cats),
            student=student,
            employee_pension=emp_p,
            employee_medical=emp_m,
            deceased_on=deceased,
            residence_permit=permit,
        )
        households.setdefault(hid, []).append((pid, facts))
    return households


def _with_tier(policy: Policy, facts: PersonFacts, on: date, rng: random.Random) -> int | None:
    """The tier a family chose for a pension-eligible member (None: no choice made)."""
    if not rules.quote_pension(policy, facts, on).eligible or rng.random() >= CHOOSES_TIER:
        return None
    allowed = rules.allowed_tiers(policy, facts.categories & policy.category_keys)
    if not allowed:
        return None
    # Most families take the lowest tier they may choose above 100; some a higher one.
    above = [t for t in allowed if t > 100] or list(allowed)
    return above[0] if rng.random() < 0.7 else rng.choice(above[: min(len(above), 4)])


def _items(policy: Policy, members: Sequence[_Member], on: date) -> list[_Item]:
    """What `pricing.dues(..., insurances=["medical", "pension"])` returns for these members
    on `on` (no birth-year items, no back-payments, nothing paid yet)."""
    out: list[_Item] = []
    late = rules.is_late(policy, on)
    for m in members:
        quote = rules.quote_member(policy, m.facts, on)
        medical, pension = quote.medical, quote.pension
        if medical.due and medical.owed_fen > 0:
            out.append(
                _Item(
                    m.id,
                    "medical",
                    medical.owed_fen,
                    medical.government_pays_fen,
                    medical.subsidy_fen,
                    None,
                    medical.late,
                    medical.rule,
                    medical.benefit_start,
                    m.facts.birth_date,
                )
            )
        if pension.eligible and pension.tier is not None and pension.owed_fen > 0:
            out.append(
                _Item(
                    m.id,
                    "pension",
                    pension.owed_fen,
                    pension.government_pays_fen,
                    pension.subsidy_fen,
                    pension.tier,
                    late,
                    pension.rule,
                    benefit_start(year=YEAR, insurance="pension", paid_on=on),
                    m.facts.birth_date,
                )
            )
    return out


def _days(bill_day: date) -> list[date]:
    days, d = [], FIRST_DAY
    while d <= LAST_DAY:
        if d != bill_day:
            days.append(d)
        d += timedelta(days=1)
    return days


def _copy(conn: Connection, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _transaction_id(channel: str, paid_at: datetime, n: int) -> str:
    """WeChat: 28 digits starting 42000…; Alipay: yyyyMMdd + 22 + 18 digits (sandbox/ids.py)."""
    if channel == "wechat":
        return f"42000{n:023d}"
    return f"{paid_at.astimezone(BEIJING):%Y%m%d}22{n:018d}"


def _pay_params(n: int, created: datetime) -> dict[str, str]:
    """The shape of `wx.requestPayment`'s parameters a WeChat prepay stores (values fake)."""
    return {
        "timeStamp": str(int(created.timestamp())),
        "nonceStr": f"{n:032X}",
        "package": f"prepay_id=wx{created.astimezone(BEIJING):%Y%m%d%H%M%S}{n:020d}",
        "signType": "MD5",
        "paySign": f"{n:032X}",
    }


def pay_district(conn: Connection, *, bill_day: date, busy: int, seed: int = 42) -> Season:
    """Write the season's enrollments, paid orders, items and contributions (see module doc)
    on `conn` (PostgreSQL, a transaction the caller commits). `busy` paying households pay
    through WeChat on `bill_day`; the others on the other open days through either channel."""
    policy = load_policy(YEAR)
    rng = random.Random(seed)
    season = Season()
    households = _members(conn)
    ids = list(households)
    rng.shuffle(ids)
    other_days = _days(bill_day)
    enrollments: list[tuple[Any, ...]] = []
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    contributions: list[tuple[Any, ...]] = []
    item_id = 0
    day_start = datetime.combine(bill_day, time(0), BEIJING)
    for hid in ids:
        if rng.random() >= PAYING:
            season.households_not_paying += 1
            continue
        n = len(orders) + 1
        on_bill_day = len(season.busy) < busy
        day = bill_day if on_bill_day else rng.choice(other_days)
        channel = "wechat" if on_bill_day or rng.random() < WECHAT else "alipay"
        start = day_start if on_bill_day else datetime.combine(day, time(0), BEIJING)
        # Ordered and paid on the same Beijing day (the price is that day's).
        paid_at = (start + timedelta(seconds=rng.randrange(600, 86_400))).astimezone(UTC)
        created = paid_at - timedelta(seconds=rng.randrange(20, 600))
        members = []
        for pid, facts in households[hid]:
            tier = _with_tier(policy, facts, day, rng)
            if tier is not None:
                facts = replace(facts, pension_tier=tier)
                enrollments.append((pid, "pension", YEAR, tier, created))
            members.append(_Member(pid, facts))
        due = _items(policy, members, day)
        if not due:
            season.households_owing_nothing += 1
            continue
        late = any(i.late for i in due)
        expires = created + min(
            ORDER_TTL, price_valid_for(year=YEAR, on=day, late=late, now=created)
        )
        amount = sum(i.amount_fen for i in due)
        insurances = sorted({i.insurance for i in due})
        out_trade_no = new_out_trade_no(now=created)
        transaction_id = _transaction_id(channel, paid_at, n)
        # Both channels' mini-programs: prepay stores the payment parameters and a reference
        # (WeChat prepay_id, Alipay trade_no from trade.create).
        pay_params = (
            _pay_params(n, created) if channel == "wechat" else {"trade_no": transaction_id}
        )
        ref = pay_params["package"][10:] if channel == "wechat" else transaction_id
        orders.append(
            (
                n, out_trade_no, channel, "miniprogram", hid, YEAR, ",".join(insurances), amount,
                f"{YEAR}年" + "、".join(INSURANCE_NAMES[i] for i in insurances), "paid", late,
                day.isoformat(), expires, f"o{n:027d}", "127.0.0.1", ref,
                json.dumps(pay_params), transaction_id, amount, 0, created, paid_at, paid_at,
            )
        )  # fmt: skip
        paid_day = paid_at.astimezone(BEIJING).date()
        for i in due:
            item_id += 1
            items.append(
                (
                    item_id, n, i.person_id, i.insurance, YEAR, i.amount_fen,
                    i.government_pays_fen, i.subsidy_fen, i.pension_tier, i.late, i.rule[:64],
                    "premium", i.benefit_start,
                )
            )  # fmt: skip
            contributions.append(
                (
                    i.person_id, hid, i.insurance, YEAR, i.amount_fen, i.government_pays_fen,
                    i.subsidy_fen, i.pension_tier, channel, n, item_id, out_trade_no,
                    transaction_id, paid_at, i.late,
                    item_benefit_start(
                        year=YEAR, insurance=i.insurance, kind="premium",
                        birth_date=i.birth_date, paid_on=paid_day,
                    ),
                    "paid", "premium", paid_at,
                )
            )  # fmt: skip
        if on_bill_day:
            season.busy.append(PaidOrder(n, out_trade_no, channel, amount, paid_at, transaction_id))
    if len(season.busy) < busy:
        raise ValueError(f"only {len(season.busy)} paying households for {busy} bill rows")
    _copy(
        conn,
        "enrollments",
        "person_id, insurance, year, pension_tier, updated_at",
        enrollments,
    )
    _copy(
        conn,
        "payment_orders",
        "id, out_trade_no, channel, scene, household_id, year, insurances, amount_fen, "
        "description, status, late, priced_on, expires_at, payer_id, client_ip, channel_ref, "
        "pay_params, transaction_id, paid_amount_fen, refunded_fen, created_at, updated_at, "
        "paid_at",
        orders,
    )
    _copy(
        conn,
        "payment_order_items",
        "id, order_id, person_id, insurance, year, amount_fen, government_pays_fen, "
        "subsidy_fen, pension_tier, late, rule, kind, benefit_start",
        items,
    )
    _copy(
        conn,
        "contributions",
        "person_id, household_id, insurance, year, amount_fen, government_pays_fen, "
        "subsidy_fen, pension_tier, source, order_id, order_item_id, out_trade_no, "
        "channel_transaction_id, paid_at, late, benefit_start, status, kind, created_at",
        contributions,
    )
    for table in ("payment_orders", "payment_order_items"):
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        )
    season.orders, season.items = len(orders), len(items)
    season.contributions, season.enrollments = len(contributions), len(enrollments)
    return season
