"""Local payment sandbox (本地支付沙箱): a stand-alone fake of WeChat Pay (API v2 and v3), the
mini-program login, and Alipay's `gateway.do`, with a payer page, signed notifications on the
vendors' retry schedules, bills in the vendors' formats, and faults on purpose.

Model: `stripe listen` / `stripe trigger`. Start it with `python -m sandbox serve`; drive it
with `python -m sandbox pay|faults|notifications|bill` or the JSON control endpoints under
`/sandbox/control/`. State lives in memory: restarting the sandbox forgets every order.

This package never imports `api/` (and `api/` never imports it): it speaks to the API only
over HTTP, exactly as the vendors do. `sandbox/tax/` is a separate tool (the tax-side queue
consumer) that happens to live here.
"""
