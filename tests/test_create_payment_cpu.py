"""Work a ``create_payment`` does once, not twice (issue 18: CPU per call), counted on
both faces with the SQLite store and the fake provider."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, _idempotency
from paygate._facts import Fact
from paygate.gateway import _payments
from paygate.providers.fake import FakeProvider
from paygate.state import PaymentEvent, Trigger
from paygate.stores import _codec
from paygate.stores.sqlite import SQLiteStore

FACES = ["sync", "async"]
USD = Money(1250, "USD")


def _pay(face: str, store: SQLiteStore, orders: list[str]) -> list[Any]:
    provider = FakeProvider(seed=3)
    if face == "sync":
        with paygate.connect(provider, store) as gw:
            return [
                gw.create_payment(order_id=o, amount=USD, payment_method="tok_visa") for o in orders
            ]

    async def main() -> list[Any]:
        async with paygate.connect_async(provider, store) as agw:
            return [
                await agw.create_payment(order_id=o, amount=USD, payment_method="tok_visa")
                for o in orders
            ]

    return asyncio.run(main())


@pytest.mark.parametrize("face", FACES)
def test_a_new_payment_is_encoded_once_for_its_row_and_its_facts(
    face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fact of a payment first seen carries the very payment of the row written with
    it, so the store encodes that payment to JSON once (not once more for the fact), and
    the attempt's result (``save_answer``'s ``finish``: that payment's dump) reuses
    that JSON, not encoded once more."""
    encoded: list[Any] = []
    real = _codec.encode_json

    def counted(value: Any) -> str:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(_codec, "encode_json", counted)
    store = SQLiteStore(str(tmp_path / "s.db"))
    payments = _pay(face, store, ["o1", "o2"])
    kinds = [v.get("__type__") for v in encoded if isinstance(v, dict)]
    assert kinds.count("Payment") == 2  # one per call: row, fact and result
    reread = SQLiteStore(str(tmp_path / "s.db"))
    try:
        for payment in payments:
            op = reread.get_operation(f"create_payment:{payment.order_id}")
            assert op is not None and op.result is not None
            # the result stored as before: the answer's dump, the same JSON as its row's
            assert op.result == _codec.dump(payment)
            assert real(op.result) == real(_codec.dump(reread.get_payment(payment.id).payment))
            record = reread.get_payment(payment.id)
            assert record is not None and record.status.value == "succeeded"
            facts = reread.list_facts(payment_id=payment.id)
            assert facts and all(f.payment == record.payment for f in facts)
    finally:
        reread.close()


@pytest.mark.parametrize("face", FACES)
def test_no_json_encoder_is_built_per_call(
    face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request fingerprints (``_idempotency.digest``) and the fake's event bodies are
    encoded by encoders built once: ``json.dumps`` with options builds one per call."""
    built: list[json.JSONEncoder] = []
    real = json.JSONEncoder.__init__

    def counted(self: json.JSONEncoder, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(json.JSONEncoder, "__init__", counted)
    payments = _pay(face, SQLiteStore(str(tmp_path / "s.db")), ["o1", "o2"])
    assert [p.status.value for p in payments] == ["succeeded", "succeeded"]
    assert built == []
    # the same digests as json.dumps gives (records written before stay comparable)
    expected = json.dumps(({"a": 1, "b": "x"},), separators=(",", ":"), sort_keys=True)
    assert (
        _idempotency.digest({"b": "x", "a": 1})
        == hashlib.sha256(expected.encode()).hexdigest()[:32]
    )


@pytest.mark.parametrize("face", FACES)
def test_no_import_statement_runs_per_call(
    face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``import`` inside a function on the call's path (``_check_id``'s was) costs
    more than the check it serves, at every call: none runs once warmed up."""
    imported: list[str] = []
    real = builtins.__import__

    def counted(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real(name, *args, **kwargs)

    store = SQLiteStore(str(tmp_path / "s.db"))
    provider = FakeProvider(seed=4)
    if face == "sync":
        with paygate.connect(provider, store) as gw:
            gw.create_payment(order_id="warm", amount=USD, payment_method="tok_visa")
            monkeypatch.setattr(builtins, "__import__", counted)
            gw.create_payment(order_id="o1", amount=USD, payment_method="tok_visa")
            monkeypatch.undo()
    else:

        async def main() -> None:
            async with paygate.connect_async(provider, store) as agw:
                await agw.create_payment(order_id="warm", amount=USD, payment_method="tok_visa")
                monkeypatch.setattr(builtins, "__import__", counted)
                await agw.create_payment(order_id="o1", amount=USD, payment_method="tok_visa")
                monkeypatch.undo()

        asyncio.run(main())
    assert imported == []


def _reference_key(*parts: str | int) -> str:
    """``provider_key`` as first written: each part matched on its own."""
    texts = [str(p) for p in parts]
    key = "paygate:" + ":".join(texts)
    safe = all(re.fullmatch(r"[A-Za-z0-9_.\-]+", t) for t in texts)
    if len(key) <= _idempotency.MAX_KEY_LENGTH and safe:
        return key
    return "paygate:h:" + _idempotency.digest(*texts, length=64)


def test_a_provider_key_is_matched_once_not_once_per_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One regular-expression match per key (five parts for a create_payment), and the
    same keys as a match per part gives, a ``:`` inside a part or an empty part
    included (those are hashed)."""
    matched: list[str] = []
    pattern = _idempotency._SAFE_KEY

    class Counted:
        def fullmatch(self, text: str) -> Any:
            matched.append(text)
            return pattern.fullmatch(text)

    monkeypatch.setattr(_idempotency, "_SAFE_KEY", Counted())
    key = _idempotency.provider_key("ord_1", "create_payment", 1, "USD", 1999)
    assert key == "paygate:ord_1:create_payment:1:USD:1999"
    assert matched == [key]
    monkeypatch.undo()
    rng = random.Random(18)
    for _ in range(20_000):
        parts = tuple(
            "".join(rng.choice("ab:_.-\n é1") for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 4))
        )
        assert _idempotency.provider_key(*parts) == _reference_key(*parts), parts


@pytest.mark.parametrize("face", FACES)
def test_no_log_fields_are_built_when_info_is_off(
    face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``create_payment``'s log lines build their ``extra=`` fields only when INFO is on
    for paygate's logger (both are still written then)."""
    built: list[dict[str, object]] = []
    real = _payments.fields

    def counted(**values: object) -> dict[str, object]:
        built.append(values)
        return real(**values)

    monkeypatch.setattr(_payments, "fields", counted)
    caplog.set_level(logging.WARNING, logger="paygate")
    _pay(face, SQLiteStore(str(tmp_path / "s.db")), ["o1"])
    assert built == []
    caplog.set_level(logging.INFO, logger="paygate")
    _pay(face, SQLiteStore(str(tmp_path / "s.db")), ["o2"])
    assert [f.get("payment_id") is not None for f in built] == [False, True]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("create_")]
    assert len(lines) == 2 and lines[0].startswith("create_payment order=o2 amount=")


@pytest.mark.parametrize("face", FACES)
def test_a_facts_amount_is_the_payments_own_money(face: str, tmp_path: Path) -> None:
    """A fact's amount that the payment shows already (the captured total of
    ``payment.succeeded``) is that very ``Money``, not a new one validated again."""
    heard: list[Fact] = []
    store = SQLiteStore(str(tmp_path / "s.db"))
    provider = FakeProvider(seed=5)

    def check(gw: Any) -> None:
        gw.on(EventType.PAYMENT_SUCCEEDED)(heard.append)

    if face == "sync":
        with paygate.connect(provider, store) as gw:
            check(gw)
            gw.create_payment(order_id="o1", amount=USD, payment_method="tok_visa")
    else:

        async def main() -> None:
            async with paygate.connect_async(provider, store) as agw:
                check(agw)
                await agw.create_payment(order_id="o1", amount=USD, payment_method="tok_visa")

        asyncio.run(main())
    [fact] = heard
    assert fact.amount == USD and fact.payment is not None
    assert fact.amount is fact.payment.amount_captured
    made = Fact.of(
        PaymentEvent(Trigger.SUCCEEDED, amount=700), fact.payment, source="api", recorded_at=0.0
    )
    assert made is not None and made.amount == Money(700, "USD")  # not shown: a new one


def test_the_stores_json_encoder_is_built_once_and_encodes_as_json_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_codec.encode_json`` (every JSON column the SQL stores write: a payment's row, its
    ``ordering``, an operation's result) builds no encoder per call -- the C encoder that
    ``JSONEncoder.encode`` builds at every call is built once -- and gives the very text
    ``json.dumps(..., separators=(",", ":"), sort_keys=True)`` gives."""
    import json.encoder

    built: list[Any] = []
    real = json.encoder.c_make_encoder
    assert real is not None

    def counted(*args: Any) -> Any:
        built.append(args)
        return real(*args)

    values: list[Any] = [
        _codec.dump(FakeProvider(seed=1).create_payment(
            order_id="o1", amount=USD, payment_method="tok_visa", idempotency_key="k1")),
        {"as_of": 1765135800.0}, {"b": [1, 2.5, None, True, False], "a": {"z": "é", "y": "✓"}},
        "plain", "ünï", 3, 0.1, -0.0, 1e300, float("nan"), float("inf"), None, True, [],
        {"": "\x00\n\"\\"}, {"k": [{"b": 1, "a": 2}]},
    ]  # fmt: skip
    monkeypatch.setattr(json.encoder, "c_make_encoder", counted)
    got = [_codec.encode_json(v) for v in values]
    assert built == []  # no encoder built per call
    monkeypatch.setattr(json.encoder, "c_make_encoder", real)
    assert got == [json.dumps(v, separators=(",", ":"), sort_keys=True) for v in values]
    with pytest.raises(TypeError, match="not JSON serializable"):
        _codec.encode_json({"x": object()})
    # still usable after a failure (no state is left behind)
    assert _codec.encode_json({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'
