"""Agent collection 代办员收款: a village agent's cash receipts 《山亭区居民社会保险基金专用收据》.

An agent records the cash a household paid for chosen persons and insurances; the server
prices it (`api.payments.cash`), books the contributions with `source = agent`, and issues a
receipt numbered from the village's gapless sequence. See docs/collection.md.
"""
