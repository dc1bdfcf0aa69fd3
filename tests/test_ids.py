"""What an id may contain (paygate._ids), checked alike at the Gateway's methods, at every
store's edge (memory, SQLite, PostgreSQL) and for ids arriving in webhooks (issue 15).

Before: an id with a NUL byte raised ``psycopg.DataError`` on PostgreSQL while SQLite took
it, and a lone surrogate raised ``UnicodeEncodeError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate._ids import MAX_ID_LENGTH, check_id
from paygate.errors import MalformedPayload, ValidationError
from paygate.models import LineItem
from paygate.providers.fake import FakeProvider
from paygate.stores import OperationRecord, OperationStatus, Store, open_store
from tests.postgres_support import pg_database, pg_schema  # noqa: F401
from tests.test_gateway_webhooks import paid_payment_events
from tests.test_store import record

GOOD = [
    "pay_1",
    "ord-2026/12/07#3",
    "commande é 1",  # inner spaces and any printable Unicode are the application's
    "注文-1",
    "x" * MAX_ID_LENGTH,
    "emoji-\U0001f4b3",
]
BAD = [
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("ord\x00", "control character (U+0000"),
    ("ord\t1", "control character (U+0009"),
    ("ord\n1", "control character (U+000A"),
    ("ord\x7f", "control character (U+007F"),
    ("ord\x85", "control character (U+0085"),
    ("ord\ud800", "surrogate (U+D800"),
    ("\udfffx", "surrogate (U+DFFF at position 0"),
    ("é\x00", "control character (U+0000 at position 1"),
    ("x" * (MAX_ID_LENGTH + 1), "at most 255"),
]
NOT_STR = [None, 17, b"ord_1", ["ord_1"]]


@pytest.mark.parametrize("value", GOOD)
def test_good_ids(value: str) -> None:
    assert check_id(value, "order_id") is value


@pytest.mark.parametrize(("value", "reason"), BAD)
def test_bad_ids_name_the_field_and_the_reason(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match="order_id") as info:
        check_id(value, "order_id")
    assert reason in str(info.value)


@pytest.mark.parametrize("value", NOT_STR)
def test_ids_must_be_str(value: object) -> None:
    with pytest.raises(ValidationError, match="order_id must be a non-empty str"):
        check_id(value, "order_id")


# -- the stores: the same ids refused the same way, nothing written ------------------------


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s = open_store("memory://")
    elif request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'ids.db'}")
    else:
        database = request.getfixturevalue("pg_database")
        schema = request.getfixturevalue("pg_schema")
        s = open_store(f"{database}?schema={schema}&pool_max=2")
    yield s
    s.close()


def _claim(store: Store, event_id: str, payment_id: str | None = "pay_1") -> Any:
    return store.claim_event(
        "fake", event_id, event_type="payment.succeeded", provider_type="payment.succeeded",
        payment_id=payment_id, payload={"id": "x"}, occurred_at=None, now=100.0,
        lease_seconds=30.0,
    )  # fmt: skip


def _operation(key: str, order_id: str | None = "ord_1") -> OperationRecord:
    return OperationRecord(
        key=key, operation="create_payment", fingerprint="f", provider_key="k",
        order_id=order_id, created_at=1.0, updated_at=1.0,
    )  # fmt: skip


KEYED = {"get_operation", "begin_operation key", "finish_operation", "list_operations"}


def _calls(bad: str) -> dict[str, Any]:
    """Every store method, given ``bad`` where an id goes."""
    return {
        "get_payment": lambda s: s.get_payment(bad),
        "payments_for_order": lambda s: s.payments_for_order(bad),
        "history": lambda s: s.history(bad),
        "save_payment id": lambda s: s.save_payment(record(pid=bad), expected_version=None),
        "save_payment order": lambda s: s.save_payment(record(order=bad), expected_version=None),
        "claim_event id": lambda s: _claim(s, bad),
        "claim_event payment": lambda s: _claim(s, "evt_ok", payment_id=bad),
        "get_event": lambda s: s.get_event("fake", bad),
        "list_events": lambda s: s.list_events(payment_id=bad),
        "list_facts": lambda s: s.list_facts(payment_id=bad),
        "get_operation": lambda s: s.get_operation(bad),
        "begin_operation key": lambda s: s.begin_operation(_operation(bad)),
        "begin_operation order": lambda s: s.begin_operation(_operation("k1", order_id=bad)),
        "finish_operation": lambda s: s.finish_operation(
            bad,
            attempt=1,
            status=OperationStatus.SUCCEEDED,
            result_id=None,
            result=None,
            error_code=None,
            now=2.0,
        ),
        "list_operations": lambda s: s.list_operations(bad),
    }


@pytest.mark.parametrize(("bad", "reason"), [b for b in BAD if b[0].strip()])
def test_every_store_refuses_a_bad_id_in_every_method_and_writes_nothing(
    store: Store, bad: str, reason: str
) -> None:
    for name, call in _calls(bad).items():
        if name in KEYED and len(bad) > MAX_ID_LENGTH:
            continue  # an operation key (a scope and ids) may be longer than an id
        with pytest.raises(ValidationError) as info:
            call(store)
        assert reason in str(info.value), name
    assert list(store.iter_payments()) == []
    assert store.list_events() == []
    assert store.list_operations("") == []


@pytest.mark.parametrize("good", GOOD)
def test_every_store_keeps_every_good_id(store: Store, good: str) -> None:
    store.save_payment(record(pid=good, order=good), expected_version=None)
    assert store.get_payment(good) is not None
    assert [r.id for r in store.payments_for_order(good)] == [good]
    assert _claim(store, good, payment_id=good).owned
    assert store.get_event("fake", good) is not None
    assert store.begin_operation(_operation(f"create:{good}", order_id=good)).key == (
        f"create:{good}"
    )


def test_sql_ingest_refuses_a_bad_event_id_before_anything_is_written(store: Store) -> None:
    ingest = getattr(store, "ingest_event", None)
    if ingest is None:
        pytest.skip("the memory store has no one-transaction ingest")
    with pytest.raises(ValidationError, match="event id contains a control character"):
        ingest(
            "fake", "evt\x00", event_type="payment.succeeded", provider_type="x",
            payment_id="pay_1", payload={}, occurred_at=None, now=1.0, lease_seconds=30.0,
            decide=lambda current: None,
        )  # fmt: skip
    assert store.list_events() == []


def test_a_handler_error_with_a_nul_byte_is_kept(store: Store) -> None:
    """Not an id, but text from an exception: PostgreSQL text cannot hold NUL."""
    claimed = _claim(store, "evt_1")
    store.release_event(claimed, error="ValueError: bad \x00 byte \ud800")
    event = store.get_event("fake", "evt_1")
    assert event is not None and event.last_error is not None
    assert event.last_error.startswith("ValueError: bad ")


# -- the Gateway: its arguments, and the ids a signed webhook carries ----------------------


@pytest.mark.parametrize(("bad", "reason"), BAD)
def test_gateway_refuses_a_bad_order_id_before_calling_the_provider(
    bad: str, reason: str
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider)
    with pytest.raises(ValidationError, match="order_id") as info:
        gw.create_payment(order_id=bad, amount=Money.of("1", "USD"), payment_method="tok_visa")
    assert reason in str(info.value)
    assert provider.take_webhooks() == []  # nothing happened at the provider
    with pytest.raises(ValidationError, match="payment_id"):
        gw.get_payment(bad)


def test_gateway_takes_long_urls() -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider)
    url = "https://shop.example/thanks?" + "x" * 1500
    items = [LineItem("tee", Money.of("1", "USD"))]
    session = gw.create_checkout(order_id="ord_1", line_items=items, success_url=url,
                                 cancel_url=url)  # fmt: skip
    assert session.id
    with pytest.raises(ValidationError, match="success_url contains a control character"):
        gw.create_checkout(order_id="ord_2", line_items=items, success_url="https://x/\x00",
                           cancel_url=url)  # fmt: skip


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("where", "bad"),
    [("event", "evt\x00x"), ("event", "evt\ud800"), ("payment", "pay\x00x")],
)
def test_a_signed_webhook_with_a_bad_id_is_a_typed_error_and_stores_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str, where: str, bad: str
) -> None:
    if store_kind == "memory":
        url = "memory://"
    elif store_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
    else:
        database = request.getfixturevalue("pg_database")
        url = f"{database}?schema={request.getfixturevalue('pg_schema')}&pool_max=2"
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=url)
    try:
        _, deliveries = paid_payment_events(provider)
        event = json.loads(deliveries[0].body)
        if where == "event":
            event["id"] = bad
        else:
            event["data"]["object"]["id"] = bad
        forged = provider.sign_webhook(event)  # correctly signed: only the id is wrong
        with pytest.raises(ValidationError, match="id") as info:
            gw.handle_webhook(forged.body, forged.headers)
        # a malformed event (a webhook view answers 400): never delivered again for days
        assert isinstance(info.value, MalformedPayload)
        assert gw.store.list_events() == []
        assert list(gw.store.iter_payments()) == []
    finally:
        gw.close()
