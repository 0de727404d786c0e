"""RabbitMQ outages met by the relay through a TCP proxy (tests/outages.py), never by touching
the broker: connections dropped and refused while a burst is being published. Nothing is lost
(every record ends `sent` and booked by the tax side) and nothing is doubled (each booked once;
a re-delivery after a cut confirm is recognised by its stable id) (issue 10, outage tests)."""

from __future__ import annotations

import threading

import pytest

from api.payments.outbox.models import SENT
from tests.outages import TcpProxy, proxy_for
from tests.outbox.conftest import Harness


def _cut_repeatedly(proxy: TcpProxy, stop: threading.Event) -> None:
    """Every few milliseconds the connections are dropped; every fourth time the broker is
    also refused for a moment — a flapping link during the burst."""
    n = 0
    while not stop.wait(0.015):
        n += 1
        if n % 4 == 0:
            proxy.refuse()
            stop.wait(0.03)
            proxy.restore()
        else:
            proxy.drop()


@pytest.mark.parametrize("queue_url", ["rabbitmq"], indirect=True)
def test_relay_burst_through_a_flapping_broker_link_loses_and_doubles_nothing(
    harness: Harness,
) -> None:
    ids = set(harness.enqueue(range(1, 301)))
    with proxy_for(harness.queue_url) as (proxy, proxied_url):
        publisher = harness.publisher(proxied_url)
        stop = threading.Event()
        cutter = threading.Thread(target=_cut_repeatedly, args=(proxy, stop), daemon=True)
        cutter.start()
        try:
            outages = 0
            for _ in range(200):  # the relay's own rounds, as its loop would run them
                totals = harness.relay(publisher, batch=10)
                outages += totals.outages
                if all(m.status == SENT for m in harness.messages().values()):
                    break
        finally:
            stop.set()
            cutter.join()
        proxy.restore()
        # Whatever the cuts left pending goes out once the link holds.
        harness.relay(publisher, batch=10)
    assert proxy.connections_made > 1  # the link was cut and the relay reconnected

    messages = harness.messages()
    assert {m.status for m in messages.values()} == {SENT}
    harness.consumer.drain()
    assert set(harness.store.booked()) == ids
    assert harness.store.booked_count() == len(ids)  # nothing booked twice
