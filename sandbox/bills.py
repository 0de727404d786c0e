"""Daily bills (对账单) in each vendor's format, generated from what the sandbox has seen.

WeChat (v2 `pay/downloadbill`, v3 `/v3/bill/tradebill`): plain header, backquote-prefixed
detail rows, summary header, backquote-prefixed summary row, amounts in yuan (§1.9). Payment
rows are dated by the payment-success time, refund rows by the refund-initiation time.
Alipay (§5.8): a zip holding two GBK CSVs (…业务明细.csv and …业务明细(汇总).csv) with `#`
metadata lines around the lists, file names in GBK without the UTF-8 flag.

Bill faults (`sandbox.faults`): `bill_omit` / `bill_omit_refund` leave an order's payment /
refund rows out, `bill_amount` / `bill_refund_amount` show its 订单金额 / 退款金额 100 fen
higher, `bill_extra_refund` adds a one-yuan refund under an out_refund_no the merchant never
sent, `bill_revoked` shows a WeChat payment row as REVOKED, a global `bill_not_ready` answers
"no bill" for every day. Each changes the bill only, never the trades the API can query.

Leniency (documented, on purpose): the real gateways serve a day's bill only from the next
morning; the sandbox serves any day, today included, as of the moment of the request.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sandbox import ids
from sandbox.clock import BEIJING, dashed
from sandbox.context import Sandbox
from sandbox.store import PAID, Order, Refund

FEE_RATE = Decimal("0.006")  # 0.60%, the common rate; only shown, never charged
WECHAT_ALL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
WECHAT_ALL_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
WECHAT_SUCCESS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注"
)
WECHAT_SUCCESS_SUMMARY = "总交易单数,应结订单总金额,手续费总金额,订单总金额"
WECHAT_REFUND = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
    "付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,"
    "退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
ALIPAY_DETAIL_HEADER = [
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
    "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
    "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
    "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
    "分润（元）", "备注",
]  # fmt: skip
ALIPAY_SUMMARY_HEADER = [
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
    "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）",
    "实收净额（元）",
]  # fmt: skip
ALIPAY_RULE = "#-----------------------------------------{}------------------------------------"


def yuan(fen: int, places: int = 2) -> str:
    """Integer fen → yuan text with `places` decimals, via Decimal (never float)."""
    quantum = Decimal(1).scaleb(-places)
    return str((Decimal(fen) / 100).quantize(quantum))


def fee_fen(amount_fen: int) -> int:
    """The 0.6% handling fee, rounded half-up to a fen."""
    return int((Decimal(amount_fen) * FEE_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _on(moment: datetime | None, day: date) -> bool:
    return moment is not None and moment.astimezone(BEIJING).date() == day


def _faults(sandbox: Sandbox, out_trade_no: str) -> set[str]:
    global_faults, own = sandbox.store.faults_for(out_trade_no)
    return {f.name for f in (*global_faults, *own)}


def _day_events(
    sandbox: Sandbox, channel: str, day: date
) -> tuple[list[Order], list[tuple[Order, Refund]]]:
    """Paid orders (by payment time) and refunds (by initiation time) of a Beijing day, less
    the rows a bill fault leaves out."""
    with sandbox.store.lock:
        if any(f.name == "bill_not_ready" for f in sandbox.store.global_faults):
            return [], []
        orders = sandbox.store.orders_of(channel)
        paid = [
            o
            for o in orders
            if o.state == PAID
            and _on(o.paid_at, day)
            and "bill_omit" not in _faults(sandbox, o.out_trade_no)
        ]
        refunds = [
            (o, r)
            for o in orders
            for r in o.refunds.values()
            if _on(r.created_at, day) and "bill_omit_refund" not in _faults(sandbox, o.out_trade_no)
        ]
        refunds += [
            (o, _outside_refund(o))
            for o in paid
            if "bill_extra_refund" in _faults(sandbox, o.out_trade_no)
        ]
    paid.sort(key=lambda o: o.paid_at or o.created_at)
    refunds.sort(key=lambda pair: pair[1].created_at)
    return paid, refunds


def _billed_fen(sandbox: Sandbox, order: Order) -> int:
    """The 订单金额 the bill shows: the order's, or 100 fen more under `bill_amount`."""
    extra = 100 if "bill_amount" in _faults(sandbox, order.out_trade_no) else 0
    return order.amount_fen + extra


def _refunded_fen(sandbox: Sandbox, order: Order, refund: Refund) -> int:
    """The 退款金额 the bill shows: the refund's, or 100 fen more under `bill_refund_amount`."""
    extra = 100 if "bill_refund_amount" in _faults(sandbox, order.out_trade_no) else 0
    return refund.amount_fen + extra


def _outside_refund(order: Order) -> Refund:
    """The `bill_extra_refund` row: one yuan refunded at payment time under an out_refund_no the
    merchant never sent. Derived from the order alone, so every download of the day shows the
    same row (a re-run must find the same key)."""
    digits = f"{zlib.crc32(order.out_trade_no.encode()):010d}"
    return Refund(
        out_refund_no=f"OUTSIDE{order.out_trade_no}"[:64],
        refund_id=("50" + digits).ljust(29, "0"),
        amount_fen=100,
        created_at=order.paid_at or order.created_at,
        api=order.api,
        status="SUCCESS",
        succeeded_at=order.paid_at or order.created_at,
    )


# WeChat ------------------------------------------------------------------------------------------


def _tick(cells: list[str]) -> str:
    return ",".join("`" + cell for cell in cells)


def wechat_bill(sandbox: Sandbox, day: date, bill_type: str = "ALL") -> str | None:
    """The trade bill text for `day`, or None when there is nothing ("No Bill Exist")."""
    paid, refunds = _day_events(sandbox, "wechat", day)
    if bill_type == "SUCCESS":
        refunds = []
    elif bill_type in ("REFUND", "RECHARGE_REFUND"):
        paid = []
    if not paid and not refunds:
        return None
    lines: list[str] = []
    order_total = settle_total = refund_total = fees_total = 0
    if bill_type == "SUCCESS":
        lines.append(WECHAT_SUCCESS)
    elif bill_type == "ALL":
        lines.append(WECHAT_ALL)
    else:
        lines.append(WECHAT_REFUND)
    for order in paid:
        billed = _billed_fen(sandbox, order)
        fee = fee_fen(billed)
        order_total += billed
        settle_total += billed
        fees_total += fee
        revoked = "bill_revoked" in _faults(sandbox, order.out_trade_no)
        head = _wechat_head(order, order.paid_at, "REVOKED" if revoked else "SUCCESS")
        if bill_type == "SUCCESS":
            money = [yuan(billed), "0.00"]
            tail = [yuan(fee, 5), "0.60%", yuan(billed), ""]
            lines.append(_tick([*head, *money, order.description, order.attach or "", *tail]))
        else:
            money = [yuan(billed), "0.00"]
            no_refund = ["0", "0", "0.00", "0.00", "", ""]
            tail = [yuan(fee, 5), "0.60%", yuan(billed), "0.00", ""]
            lines.append(
                _tick([*head, *money, *no_refund, order.description, order.attach or "", *tail])
            )
    for order, refund in refunds:
        refunded = _refunded_fen(sandbox, order, refund)
        fee = fee_fen(refunded)
        refund_total += refunded
        fees_total -= fee
        head = _wechat_head(order, refund.created_at, "REFUND")
        middle = [
            refund.refund_id,
            refund.out_refund_no,
            yuan(refunded),
            "0.00",
            "ORIGINAL",
            refund.status,
            order.description,
            order.attach or "",
            yuan(-fee, 5),
            "0.60%",
            "0.00",
            yuan(refunded),
            "",
        ]
        if bill_type == "ALL":
            lines.append(_tick([*head, "0.00", "0.00", *middle]))
        else:
            times = [
                dashed(refund.created_at),
                dashed(refund.succeeded_at) if refund.succeeded_at else "",
            ]
            lines.append(_tick([*head, "0.00", "0.00", *times, *middle]))
    count = len(paid) + len(refunds)
    if bill_type == "SUCCESS":
        lines.append(WECHAT_SUCCESS_SUMMARY)
        lines.append(
            _tick([str(count), yuan(settle_total), yuan(fees_total, 5), yuan(order_total)])
        )
    else:
        lines.append(WECHAT_ALL_SUMMARY)
        totals = [yuan(fees_total, 5), yuan(order_total), yuan(refund_total)]
        lines.append(_tick([str(count), yuan(settle_total), yuan(refund_total), "0.00", *totals]))
    return "\r\n".join(lines) + "\r\n"


def _wechat_head(order: Order, moment: datetime | None, status: str) -> list[str]:
    return [
        dashed(moment) if moment else "",
        order.app_id,
        order.merchant_id,
        "0",  # 特约商户号: 0 for an ordinary merchant (§1.9)
        "",
        order.transaction_id or "",
        order.out_trade_no,
        order.payer_id or "",
        order.trade_type,
        status,
        "OTHERS",
        "CNY",
    ]


# Alipay ------------------------------------------------------------------------------------------


class _GbkName(zipfile.ZipInfo):
    """A zip entry whose name is stored as GBK bytes without the UTF-8 flag, as Alipay's are
    (§5.8); zipfile itself would flag any non-ASCII name as UTF-8."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def _cn_time(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y年%m月%d日 %H:%M:%S")


def _csv_lines(rows: list[list[str]]) -> list[str]:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().splitlines()


def alipay_bill_zip(sandbox: Sandbox, bill_date: str) -> tuple[str, bytes] | None:
    """`(zip file name, zip bytes)` for a day (yyyy-MM-dd) or month (yyyy-MM), or None."""
    if len(bill_date) == 7:
        first = date.fromisoformat(bill_date + "-01")
        days = [
            date.fromordinal(first.toordinal() + n)
            for n in range(31)
            if date.fromordinal(first.toordinal() + n).month == first.month
        ]
    else:
        days = [date.fromisoformat(bill_date)]
    paid: list[Order] = []
    refunds: list[tuple[Order, Refund]] = []
    for day in days:
        p, r = _day_events(sandbox, "alipay", day)
        paid += p
        refunds += r
    if not paid and not refunds:
        return None
    s = sandbox.settings
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=BEIJING)
    end = datetime.fromordinal(days[-1].toordinal() + 1).replace(tzinfo=BEIJING)
    now = sandbox.clock.now()
    stamp = bill_date.replace("-", "")
    account = f"#账号：[{s.ALIPAY_SELLER_ID}0156]"
    period = f"#起始日期：[{_cn_time(start)}]   终止日期：[{_cn_time(end)}]"
    rows: list[list[str]] = [ALIPAY_DETAIL_HEADER]
    pay_sum = refund_sum = fee_sum = 0
    for order in paid:
        billed = _billed_fen(sandbox, order)
        fee = fee_fen(billed)
        pay_sum += billed
        fee_sum += fee
        rows.append(
            _alipay_row(order, None, fee, order.extra.get("buyer_logon_id", ""), billed=billed)
        )
    for order, refund in refunds:
        refunded = _refunded_fen(sandbox, order, refund)
        fee = fee_fen(refunded)
        refund_sum += refunded
        fee_sum -= fee
        rows.append(
            _alipay_row(order, refund, fee, order.extra.get("buyer_logon_id", ""), billed=-refunded)
        )
    detail = [
        "#支付宝业务明细查询",
        account,
        period,
        ALIPAY_RULE.format("业务明细列表"),
        *_csv_lines(rows),
        ALIPAY_RULE.format("业务明细列表结束"),
        f"#交易合计：{len(paid)}笔，商家实收共{yuan(pay_sum)}元，商家优惠共0.00元",
        f"#退款合计：{len(refunds)}笔，商家实收退款共{yuan(-refund_sum)}元，商家优惠退款共0.00元",
        f"#导出时间：[{_cn_time(now)}]",
    ]
    net = pay_sum - refund_sum
    figures = [str(len(paid)), str(len(refunds)), yuan(net), yuan(net), "0.00", "0.00"]
    figures += ["0.00", yuan(-fee_sum), "0.00", yuan(net - fee_sum)]
    summary_rows = [ALIPAY_SUMMARY_HEADER, ["", "", *figures], ["合计", "", *figures]]
    summary = [
        "#支付宝业务汇总查询",
        account,
        period,
        ALIPAY_RULE.format("业务汇总列表"),
        *_csv_lines(summary_rows),
        ALIPAY_RULE.format("业务汇总列表结束"),
        f"#导出时间：[{_cn_time(now)}]",
    ]
    prefix = f"{s.ALIPAY_SELLER_ID}0156_{stamp}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, lines in (
            (f"{prefix}_业务明细.csv", detail),
            (f"{prefix}_业务明细(汇总).csv", summary),
        ):
            info = _GbkName(name, date_time=now.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, ("\r\n".join(lines) + "\r\n").encode("gbk"))
    return f"{prefix}.csv.zip", buffer.getvalue()


def _alipay_row(
    order: Order, refund: Refund | None, fee: int, logon_id: str, *, billed: int | None = None
) -> list[str]:
    """One detail row; refund rows carry negative amounts and the out_request_no (§5.8)."""
    if refund is None:
        amount, kind, finished, request_no, service = (
            order.amount_fen if billed is None else billed,
            "交易",
            order.paid_at,
            "",
            -fee,
        )
    else:
        amount = -refund.amount_fen if billed is None else billed
        kind, finished = "退款", refund.succeeded_at
        request_no, service = refund.out_refund_no, fee
    return [
        (order.transaction_id or "") + "\t",
        order.out_trade_no + "\t",
        kind,
        order.description,
        dashed(order.created_at),
        dashed(finished) if finished else "",
        "",
        "",
        "",
        "",
        logon_id or ids.alipay_logon_id(order.payer_id or ""),
        yuan(amount),
        yuan(amount),
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "",
        "0.00",
        "0.00",
        request_no,
        yuan(service),
        "0.00",
        "",
    ]
