"""Round trips to PostgreSQL per payment call: each is a wait of the network's latency.

The PostgreSQL store sends a call's two transactions (the pending idempotency record, the
provider's answer) in psycopg's pipeline mode: one round trip for the first, two for the
second (its COMMIT waits on the compare-and-set's row count). A ``create_payment`` waits
3 times; it waited 12 times when every statement, BEGIN and COMMIT included, waited for
its answer, and the payment was read between the two.

A round trip is counted in libpq's protocol trace of the pooled connection as a switch
from what the client sent (``F`` lines) to what the server answered (``B`` lines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.providers.fake import FakeProvider
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_durable_commits import _PostgresCommits

AMOUNT = Money.of("12.34", "USD")
#: psycopg prepares a statement on its 5th execution (a Parse with its own Sync): the
#: counts below are taken after that, as a long-running process sees them
WARM_UP = 6


class _Trips(_PostgresCommits):
    """libpq traces of the pooled connections (as the durable-commit counter takes
    them), read for round trips."""

    def count(self) -> int:
        trips = 0
        for f in self.files:
            f.flush()
            last = ""
            for line in Path(f.name).read_text().splitlines():
                direction = line[:1]
                if direction == "B" and last == "F":
                    trips += 1
                if direction in ("B", "F"):
                    last = direction
        return trips


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Trips]:
    from paygate.stores import _postgres_async, postgres

    counter = _Trips(tmp_path)
    connect = postgres._Connection.connect.__func__  # type: ignore[attr-defined]
    connect_async = _postgres_async._AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    def connect_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        counter.trace(conn)
        return conn

    async def connect_async_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await connect_async(cls, *args, **kwargs)
        counter.trace(conn)
        return conn

    monkeypatch.setattr(postgres._Connection, "connect", classmethod(connect_traced))
    monkeypatch.setattr(
        _postgres_async._AsyncConnection, "connect", classmethod(connect_async_traced)
    )
    yield counter
    counter.close()


def _one_connection(url: str) -> str:
    return url.replace("pool_max=4", "pool_min=1&pool_max=1")


def test_create_payment_waits_on_postgres_three_times(pg_url: str, trips: _Trips) -> None:  # noqa: F811
    with paygate.connect(FakeProvider(), _one_connection(pg_url)) as gw:
        for i in range(WARM_UP):
            gw.create_payment(order_id=f"warm-{i}", amount=AMOUNT, payment_method="tok_visa")
        before = trips.count()
        gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
        # a create_payment: begin_operation 1, save_answer 2
        assert trips.count() - before == 3


def test_the_native_async_path_pipelines_too(pg_url: str, trips: _Trips) -> None:  # noqa: F811
    from paygate.stores.aio import AsyncStore
    from paygate.stores.postgres import PostgresStore

    async def main() -> int:
        store = AsyncStore(PostgresStore.from_url(_one_connection(pg_url)), threads=0)
        async with paygate.connect_async(FakeProvider(), store) as agw:
            for i in range(WARM_UP):
                await agw.create_payment(
                    order_id=f"warm-{i}", amount=AMOUNT, payment_method="tok_visa"
                )
            before = trips.count()
            await agw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            return trips.count() - before

    assert asyncio.run(main()) == 3


def test_a_pipelined_answer_whose_transition_an_event_made_writes_nothing(
    pg_url: str,  # noqa: F811
) -> None:
    """The answer's statements run before any is checked: a transition already recorded
    (its event applied) fails the pipeline, and the transaction is rolled back whole."""
    from paygate.stores._records import ClaimLost, OperationFinish, OperationStatus, PaymentWrite
    from paygate.stores.postgres import PostgresStore
    from tests.test_store import op, record, transition

    store = PostgresStore.from_url(pg_url)
    try:
        store.save_payment(
            record(pid="pay_0"), expected_version=None, transition=transition("pay_0", "evt_1")
        )
        store.begin_operation(op())
        finish = OperationFinish("create_payment:ord_1", 1, OperationStatus.SUCCEEDED, "pay_1",
                                 {"a": 1}, None, 5.0)  # fmt: skip
        again = PaymentWrite(record(), None, transition(event_id="evt_1"), ())
        with pytest.raises(ClaimLost, match="evt_1"):
            store.save_answer([again], finish=finish)
        assert store.get_payment("pay_1") is None
        pending = store.get_operation("create_payment:ord_1")
        assert pending is not None and pending.status is OperationStatus.PENDING
        # the connection came back clean: the next call on it works
        store.save_answer([PaymentWrite(record(), None, transition(), ())], finish=finish)
        assert store.get_payment("pay_1") is not None
    finally:
        store.close()
