"""The floor of a notification: the least any implementation of its contract must do, with
nothing else, to show how much of the trivial-route ceiling is reachable on this machine.

Registered on the benchmark app only (`bench.notify_throughput.make_app`), never on the
product. `POST /bench/floor/notify/wechat` does exactly the contract of
`POST /api/v1/payments/notify/wechat` for a fresh payment, and nothing more:

1. the raw notification into the callback log, committed on its own (autocommit, no WAL
   flush wait, as `api.payments.notify.store_raw` does);
2. parse the XML and check the MD5 signature, app id and merchant id (the project's own
   `wechat_v2_protocol` functions);
3. in one transaction: the order row-locked with its items, persons and places (one SELECT
   that also takes the contributions' ids from their sequence), then ONE statement that moves
   the order (conditional on `open`), writes its event and audit row, the contributions and
   their tax records (built and schema-checked by the project's `build_record`), and the log
   row's outcome, then COMMIT;
4. the exact success reply.

Four round trips on a raw psycopg connection per thread: no SQLAlchemy, no ORM session, no
duplicate / late / refund branches, no retry after a lost race, no generic state machine.
Those are short cuts the product must not take; this route exists only to be measured
(tests/test_bench_floor.py checks that it writes exactly the rows the product route writes).
If even this floor stays under the target ratio, no implementation of the contract that
handles each notification on its own reaches the target in this stack on this machine.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

FLOOR_PATH = "/bench/floor/notify/wechat"

_RAW_INSERT = """
INSERT INTO channel_notifications
    (channel, path, raw_body, content_type, headers, remote_addr, received_at, outcome)
SELECT 'wechat', %s, %s, %s, %s::json, %s, %s, 'received'
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
RETURNING id
"""

_READ = """
SELECT o.id, o.household_id, o.year, o.amount_fen, o.status, o.channel,
       i.id, i.person_id, i.insurance, i.amount_fen, i.government_pays_fen, i.subsidy_fen,
       i.pension_tier, i.late, p.id_number, p.name, h.household_no, v.code, t.code,
       nextval('contributions_id_seq')
FROM payment_orders o
JOIN payment_order_items i ON i.order_id = o.id
JOIN persons p ON p.id = i.person_id
JOIN households h ON h.id = p.household_id
JOIN villages v ON v.id = h.village_id
JOIN towns t ON t.id = v.town_id
WHERE o.out_trade_no = %(no)s
  AND NOT EXISTS (
      SELECT 1 FROM contributions c
      WHERE c.person_id = i.person_id AND c.insurance = i.insurance
        AND c.year = o.year AND c.status = 'paid')
ORDER BY i.id
FOR UPDATE OF o
"""

_APPLY = """
WITH moved AS (
    UPDATE payment_orders
    SET status = 'paid', paid_at = %(paid_at)s, transaction_id = %(tx)s,
        paid_amount_fen = %(amount)s, updated_at = %(now)s
    WHERE id = %(order_id)s AND status = 'open'
    RETURNING id
), event AS (
    INSERT INTO payment_order_events
        (order_id, entity, from_state, to_state, actor, reason, at)
    SELECT id, 'order', 'open', 'paid', 'gateway:wechat', 'payment', %(now)s FROM moved
), audit AS (
    INSERT INTO audit_events (at, actor, action, subject, outcome, detail)
    SELECT %(now)s, 'gateway:wechat', 'payments.order.paid', %(subject)s, 'ok',
           '{"from": "open", "to": "paid", "reason": "payment"}'::json
    FROM moved
), booked AS (
    INSERT INTO contributions
        (id, person_id, household_id, insurance, year, amount_fen, government_pays_fen,
         subsidy_fen, pension_tier, source, order_id, order_item_id, out_trade_no,
         channel_transaction_id, paid_at, late, benefit_start, status, created_at)
    SELECT r.id, r.person_id, %(household_id)s, r.insurance, %(year)s, r.amount_fen,
           r.government_pays_fen, r.subsidy_fen, r.pension_tier, 'wechat', %(order_id)s,
           r.item_id, %(no)s, %(tx)s, %(paid_at)s, r.late, r.benefit_start, 'paid', %(now)s
    FROM moved, unnest(%(ids)s::bigint[], %(person_ids)s::int[], %(insurances)s::text[],
                       %(amounts)s::bigint[], %(government)s::bigint[], %(subsidies)s::bigint[],
                       %(tiers)s::int[], %(item_ids)s::int[], %(lates)s::bool[],
                       %(starts)s::date[])
         AS r(id, person_id, insurance, amount_fen, government_pays_fen, subsidy_fen,
              pension_tier, item_id, late, benefit_start)
), records AS (
    INSERT INTO outbox_messages
        (id, event, contribution_id, schema_version, body, year, insurance, town_code,
         paid_at, created_at, status, attempts, deliveries, next_attempt_at)
    SELECT b.value ->> 'id', 'contribution.paid', (b.value ->> 'contribution_id')::bigint, 1,
           (%(sealed)s::text[])[b.n], %(year)s, b.value ->> 'insurance',
           b.value ->> 'town_code', %(paid_at)s, %(now)s, 'pending', 0, 0, %(now)s
    FROM moved, json_array_elements(%(bodies)s::json) WITH ORDINALITY AS b(value, n)
), logged AS (
    UPDATE channel_notifications
    SET outcome = 'applied', kind = 'payment', signature_valid = true,
        out_trade_no = %(no)s, transaction_id = %(tx)s, amount_fen = %(amount)s,
        order_id = %(order_id)s, processed_at = %(now)s
    WHERE id = %(log_id)s AND outcome = 'received'
)
SELECT count(*) FROM moved
"""


def register(app: Any, database_url: str) -> None:
    """Add the floor route to the benchmark app."""
    import psycopg
    from flask import Response, request
    from sqlalchemy.engine import make_url

    from api.payments.channels import wechat_v2_protocol as proto
    from api.payments.channels.timefmt import COMPACT, parse_beijing
    from api.payments.outbox.models import RECORD_PURPOSE
    from api.payments.outbox.record import ContributionEvent, build_record, encode
    from api.payments.pricing import benefit_start
    from api.pii.keyring import current as pii_keyring

    url = make_url(database_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    settings = app.config["SETTINGS"]
    key, appid, mch_id = settings.WECHAT_API_KEY, settings.WECHAT_APPID, settings.WECHAT_MCH_ID
    local = threading.local()

    def connection() -> psycopg.Connection[Any]:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(conninfo, autocommit=True)
        return conn

    def failure() -> Response:
        return Response(proto.failure_xml("rejected"), status=200, content_type="text/xml")

    @app.post(FLOOR_PATH)
    def floor_notify() -> Response:
        body = request.get_data()
        conn = connection()
        headers = json.dumps(dict(request.headers))
        (log_id,) = conn.execute(
            _RAW_INSERT,
            (FLOOR_PATH, body, request.content_type, headers, request.remote_addr, _now()),
            prepare=True,
        ).fetchall()[0]
        fields = proto.parse_xml(body)
        if (
            not proto.verify(fields, key)
            or fields.get("appid") != appid
            or fields.get("mch_id") != mch_id
        ):
            return failure()
        no, tx = fields["out_trade_no"], fields["transaction_id"]
        amount = int(fields["total_fee"])
        paid_at = parse_beijing(fields["time_end"], COMPACT)
        if paid_at is None:
            return failure()
        now = _now()
        with conn.transaction():
            rows = conn.execute(_READ, {"no": no}, prepare=True).fetchall()
            if not rows or rows[0][4] != "open" or rows[0][3] != amount:
                return failure()
            order_id, household_id, year = rows[0][0], rows[0][1], rows[0][2]
            day = paid_at.astimezone(_beijing()).date()
            starts = [benefit_start(year=year, insurance=r[8], paid_on=day) for r in rows]
            ring = pii_keyring()  # the product decrypts the identity and encrypts the record
            bodies = [
                encode(
                    build_record(
                        ContributionEvent(
                            event="contribution.paid",
                            contribution_id=r[19],
                            year=year,
                            insurance=r[8],
                            id_number=ring.decrypt(r[14], "persons.id_number"),
                            name=ring.decrypt(r[15], "persons.name"),
                            household_id=household_id,
                            household_no=r[16],
                            town_code=r[18],
                            village_code=r[17],
                            pension_tier=r[12],
                            amount_fen=r[9],
                            government_pays_fen=r[10],
                            subsidy_fen=r[11],
                            source="wechat",
                            channel_transaction_id=tx,
                            out_trade_no=no,
                            paid_at=paid_at,
                            late=r[13],
                            benefit_start=start,
                        ),
                        occurred_at=now,
                    )
                )
                for r, start in zip(rows, starts, strict=True)
            ]
            ((moved,),) = conn.execute(
                _APPLY,
                {
                    "paid_at": paid_at,
                    "tx": tx,
                    "amount": amount,
                    "now": now,
                    "order_id": order_id,
                    "subject": f"order:{no}",
                    "household_id": household_id,
                    "year": year,
                    "no": no,
                    "log_id": log_id,
                    "ids": [r[19] for r in rows],
                    "person_ids": [r[7] for r in rows],
                    "insurances": [r[8] for r in rows],
                    "amounts": [r[9] for r in rows],
                    "government": [r[10] for r in rows],
                    "subsidies": [r[11] for r in rows],
                    "tiers": [r[12] for r in rows],
                    "item_ids": [r[6] for r in rows],
                    "lates": [r[13] for r in rows],
                    "starts": starts,
                    "bodies": (b"[" + b",".join(bodies) + b"]").decode("utf-8"),
                    "sealed": [ring.encrypt(b.decode("utf-8"), RECORD_PURPOSE) for b in bodies],
                },
                prepare=True,
            ).fetchall()
            if moved != 1:
                raise RuntimeError(f"floor: order {no} did not move")
        return Response(proto.SUCCESS_XML, content_type="text/xml")


def _now() -> datetime:
    return datetime.now(UTC)


def _beijing() -> Any:
    from api.clock import BEIJING

    return BEIJING
