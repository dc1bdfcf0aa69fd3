"""The subscription state machine (paygate.subscription_state) and its store rows."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from paygate.__main__ import main
from paygate._subscriptions import record_news
from paygate.errors import InvalidTransition
from paygate.models import EventType, Invoice, InvoiceStatus, Subscription, SubscriptionStatus
from paygate.money import Money
from paygate.stores import SubscriptionStore, open_store
from paygate.stores._sql import MIGRATIONS, SCHEMA_VERSION
from paygate.stores.memory import MemoryStore
from paygate.stores.sqlite import SQLITE
from paygate.subscription_state import (
    TABLE,
    InvoiceNews,
    SubscriptionNews,
    apply,
    apply_all,
    order_key,
    to_text_table,
)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = SubscriptionStatus
E = EventType


def _t(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def sub(status: S = S.ACTIVE, **changes: object) -> Subscription:
    base = Subscription(
        id="sub_1", provider="stripe", customer_id="cus_1", price_id="price_a", status=status,
        current_period_start=_t(1000), current_period_end=_t(2000),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def news(status: S = S.ACTIVE, at: float = 1.0, **changes: object) -> SubscriptionNews:
    return SubscriptionNews(sub(status, **changes), at=at)


def test_the_table_is_square_and_terminal_statuses_only_stay() -> None:
    assert set(TABLE) == set(S)
    for terminal in (S.CANCELED, S.INCOMPLETE_EXPIRED):
        assert set(TABLE[terminal]) == {terminal}
    assert "| **past_due** |" in to_text_table() and "`recovered`" in to_text_table()


def test_a_late_snapshot_is_stale_and_the_same_one_a_duplicate() -> None:
    first = apply(None, news(S.PAST_DUE, at=20))
    assert first.changed and [f.type for f in first.facts] == [E.SUBSCRIPTION_PAST_DUE]
    late = apply(first.state, news(S.ACTIVE, at=10))
    assert late.result == "stale" and late.state == first.state and not late.facts
    again = apply(first.state, news(S.PAST_DUE, at=20))
    assert again.result == "duplicate"


def test_square_versions_order_news_whatever_its_time() -> None:
    newer = apply(None, news(S.PAUSED, at=5, version=3))
    older = apply(newer.state, news(S.ACTIVE, at=50, version=2))
    assert older.result == "stale" and older.state.status is S.PAUSED


def test_paypal_update_time_wins_over_the_event_time() -> None:
    first = apply(None, news(S.ACTIVE, at=100, updated_at=_t(90)))
    later_event = apply(first.state, news(S.PAUSED, at=200, updated_at=_t(80)))
    assert later_event.result == "stale"


def test_a_tie_of_one_second_converges_whichever_arrives_first() -> None:
    a, b = news(S.ACTIVE, at=7), news(S.PAST_DUE, at=7)
    one = apply_all(None, [a, b, a])
    other = apply_all(None, [b, a, b])
    assert one is not None and other is not None
    assert one.subscription == other.subscription
    assert one.subscription.status is S.PAST_DUE  # further along the lifecycle


def test_a_canceled_subscription_never_comes_back() -> None:
    canceled = apply(None, news(S.CANCELED, at=10)).state
    with pytest.raises(InvalidTransition, match="canceled to active"):
        apply(canceled, news(S.ACTIVE, at=11))


def test_field_changes_tell_their_own_facts() -> None:
    state = apply(None, news(S.ACTIVE, at=1)).state
    changed = apply(state, news(S.ACTIVE, at=2, price_id="price_b", quantity=3))
    assert [f.type for f in changed.facts] == [E.SUBSCRIPTION_PLAN_CHANGED]
    scheduled = apply(changed.state, news(S.ACTIVE, at=3, price_id="price_b", quantity=3,
                                          cancel_at_period_end=True))  # fmt: skip
    assert [f.type for f in scheduled.facts] == [E.SUBSCRIPTION_CANCEL_SCHEDULED]
    undone = apply(scheduled.state, news(S.ACTIVE, at=4, price_id="price_b", quantity=3))
    assert [f.type for f in undone.facts] == [E.SUBSCRIPTION_CANCEL_UNSCHEDULED]
    renewed = apply(undone.state, news(S.ACTIVE, at=5, price_id="price_b", quantity=3,
                                       current_period_start=_t(2000)))  # fmt: skip
    assert [(f.type, f.ref) for f in renewed.facts] == [(E.SUBSCRIPTION_RENEWED, "2000")]


def test_a_trial_ending_into_a_new_period_is_activation_not_renewal() -> None:
    trial = apply(None, news(S.TRIALING, at=1, trial_end=_t(2000))).state
    notice = apply(trial, replace(news(S.TRIALING, at=2, trial_end=_t(2000)), trial_will_end=True))
    assert [f.type for f in notice.facts] == [E.SUBSCRIPTION_TRIAL_WILL_END]
    again = apply(notice.state, replace(news(S.TRIALING, at=2, trial_end=_t(2000)),
                                        trial_will_end=True))  # fmt: skip
    assert again.result == "duplicate"
    active = apply(notice.state, news(S.ACTIVE, at=3, current_period_start=_t(2000)))
    assert [f.type for f in active.facts] == [E.SUBSCRIPTION_ACTIVATED]


def test_invoices_are_judged_by_their_own_id() -> None:
    state = apply(None, news(S.ACTIVE, at=1)).state
    fail1 = apply(state, SubscriptionNews(None, invoice=InvoiceNews("payment_failed", "in_1", 1)))
    assert [(f.type, f.ref) for f in fail1.facts] == [(E.INVOICE_PAYMENT_FAILED, "in_1:1")]
    fail2 = apply(
        fail1.state, SubscriptionNews(None, invoice=InvoiceNews("payment_failed", "in_1", 2))
    )
    assert [f.ref for f in fail2.facts] == ["in_1:2"]
    stale_fail = apply(
        fail2.state, SubscriptionNews(None, invoice=InvoiceNews("payment_failed", "in_1", 1))
    )
    assert stale_fail.result == "duplicate" and not stale_fail.facts
    paid = apply(fail2.state, SubscriptionNews(None, invoice=InvoiceNews("paid", "in_1")))
    assert [f.type for f in paid.facts] == [E.INVOICE_PAID]
    late_fail = apply(
        paid.state, SubscriptionNews(None, invoice=InvoiceNews("payment_failed", "in_1", 3))
    )
    assert not late_fail.facts  # the invoice is paid: the failure is past news


def test_invoice_news_of_an_unknown_subscription_needs_its_snapshot() -> None:
    with pytest.raises(ValueError, match="never seen"):
        apply(None, SubscriptionNews(None, invoice=InvoiceNews("paid", "in_1")))


def test_order_key_is_version_then_time_then_period_then_lifecycle() -> None:
    assert order_key(sub(version=2), 1) > order_key(sub(version=1), 99)
    assert order_key(sub(), 2) > order_key(sub(), 1)
    assert order_key(sub(S.CANCELED), 1) > order_key(sub(S.ACTIVE), 1)


# -- the store ------------------------------------------------------------------------------


def _invoice() -> Invoice:
    return Invoice(id="in_9", provider="stripe", customer_id="cus_1", status=InvoiceStatus.PAID,
                   amount_due=Money.of("20", "USD"), subscription_id="sub_1")  # fmt: skip


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> SubscriptionStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = open_store(url)
    request.addfinalizer(store.close)
    assert isinstance(store, SubscriptionStore)
    return store


def test_every_store_keeps_the_row_its_log_and_its_facts(any_store: SubscriptionStore) -> None:
    trial = sub(S.TRIALING, trial_end=_t(3000), quantity=2, version=None)
    record_news(any_store, SubscriptionNews(trial, at=1), source="api", now=10)
    record_news(any_store, news(S.ACTIVE, at=2, quantity=2), source="webhook", now=11)
    record_news(any_store, news(S.ACTIVE, at=1), source="webhook", now=12)  # stale
    fetched = record_news(
        any_store, SubscriptionNews(None, at=3, invoice=InvoiceNews.of("paid", _invoice())),
        source="webhook", now=13,
    )  # fmt: skip
    assert [f.type for f in fetched.facts] == [E.INVOICE_PAID]
    record = any_store.get_subscription("sub_1")
    assert record is not None and record.version == 3 and record.created_at == 10
    assert record.subscription.status is S.ACTIVE and record.subscription.quantity == 2
    assert record.state.invoices == (("in_9", "paid"),)
    assert [r.id for r in any_store.list_subscriptions(customer_id="cus_1")] == ["sub_1"]
    assert any_store.list_subscriptions(customer_id="cus_2") == []
    assert any_store.list_subscriptions(status=S.PAST_DUE) == []
    history = any_store.subscription_history("sub_1")
    assert [(t.previous_status, t.new_status, t.facts) for t in history] == [
        (None, S.TRIALING, ()),
        (S.TRIALING, S.ACTIVE, ("subscription.activated",)),
        (S.ACTIVE, S.ACTIVE, ("invoice.paid",)),
    ]
    facts = any_store.list_facts()  # type: ignore[attr-defined]
    assert [f.type for f in facts] == [E.SUBSCRIPTION_ACTIVATED, E.INVOICE_PAID]
    assert facts[0].subscription is not None and facts[0].subscription.status is S.ACTIVE
    assert facts[0].payment is None and facts[0].payment_id == "sub_1"


def test_an_unknown_subscription_id_is_refused_by_name(any_store: SubscriptionStore) -> None:
    from paygate.errors import ValidationError

    with pytest.raises(ValidationError, match="subscription id"):
        any_store.get_subscription("")


def test_db_upgrade_brings_a_version_3_database_to_subscriptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SCHEMA_VERSION == 4
    db = tmp_path / "v3.db"
    with closing(sqlite3.connect(db)) as conn, conn:  # written by paygate with schema 3
        for version in (1, 2, 3):
            for statement in MIGRATIONS[version]:
                conn.execute(SQLITE.ddl(statement))
        conn.execute("INSERT INTO paygate_meta (key, value) VALUES ('schema_version', '3')")
    url = f"sqlite:///{db}"
    assert main(["db", "upgrade", "--store", url]) == 0
    assert "schema upgraded from version 3 to 4" in capsys.readouterr().out
    store = open_store(url)
    try:
        assert isinstance(store, SubscriptionStore)
        record_news(store, news(S.ACTIVE, at=1), source="api", now=1)
        assert store.get_subscription("sub_1") is not None
    finally:
        store.close()


def test_db_upgrade_brings_a_version_3_postgres_database_to_subscriptions(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    import psycopg

    from paygate.stores.postgres import POSTGRES

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        conn.execute(f'SET search_path TO "{pg_schema}"')
        for version in (1, 2, 3):
            for statement in MIGRATIONS[version]:
                conn.execute(POSTGRES.ddl(statement))
        conn.execute("INSERT INTO paygate_meta (key, value) VALUES ('schema_version', '3')")
    assert main(["db", "upgrade", "--store", pg_url]) == 0
    assert "schema upgraded from version 3 to 4" in capsys.readouterr().out
    store = open_store(pg_url)
    try:
        assert isinstance(store, SubscriptionStore)
        record_news(store, news(S.PAST_DUE, at=1), source="api", now=1)
        got = store.get_subscription("sub_1")
        assert got is not None and got.status is S.PAST_DUE
    finally:
        store.close()


def test_the_docs_show_the_table_as_it_is() -> None:
    page = (Path(__file__).parent.parent / "docs" / "subscriptions.md").read_text()
    shown = page.split("<!-- the subscription table: begin -->\n")[1].split("<!-- the")[0]
    assert shown == to_text_table()


def test_the_docs_draw_the_table() -> None:
    import sys
    import xml.etree.ElementTree as ET

    from paygate.subscription_state import diagram_edges

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import state_diagram

    fence = (
        "edges: paygate.subscription_state:diagram_edges\ninitial: pending\n"
        "final: canceled, incomplete_expired\n"
    )
    svg = state_diagram.diagram_from_fence(fence)
    root = ET.fromstring(svg)
    text = " ".join(t for t in root.itertext())
    for status in S:
        assert status.value in text
    for _, _, label in diagram_edges():
        for part in label.split(", "):
            assert part in text
    page = (Path(__file__).parent.parent / "docs" / "subscriptions.md").read_text()
    assert "edges: paygate.subscription_state:diagram_edges" in page
