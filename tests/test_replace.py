"""``paygate._replace.replace``: ``dataclasses.replace``'s copies, made faster (issue 18:
five copies per ``create_payment``, each about twice the CPU). Counted, not timed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate._replace import replace
from paygate.errors import ValidationError
from paygate.models import LineItem, Payment, PaymentStatus
from paygate.providers.fake import FakeProvider
from paygate.state import PaymentState


def _payment() -> Payment:
    return Payment(id="pay_1", provider="fake", status=PaymentStatus.PENDING,
                   amount=Money(1999, "EUR"), order_id="o1", raw={"a": 1})  # fmt: skip


CHANGES: list[dict[str, Any]] = [
    {},
    {"status": PaymentStatus.SUCCEEDED},
    {"client_secret": "cs", "raw": None},
    {"amount_captured": None},
    {"refunds": []},
]


@pytest.mark.parametrize("changes", CHANGES)
def test_the_copy_is_dataclasses_replace_s(changes: dict[str, Any]) -> None:
    original = _payment()
    fast, slow = replace(original, **changes), dataclasses.replace(original, **changes)
    assert fast == slow and type(fast) is Payment
    # __post_init__ ran: a list of refunds became a tuple, a missing amount a zero
    assert fast.refunds == () and type(fast.refunds) is tuple
    assert fast.amount_captured == Money(0, "EUR")
    state = PaymentState(PaymentStatus.PENDING, 1999)
    assert replace(state, captured=5) == dataclasses.replace(state, captured=5)


def test_validation_runs_and_errors_are_dataclasses_s() -> None:
    item = LineItem(name="tea", unit_amount=Money(100, "EUR"), quantity=1)
    with pytest.raises(ValidationError):
        replace(item, quantity=0)  # __post_init__ refuses it, as in __init__
    with pytest.raises(TypeError):
        replace(item, colour="red")  # no such field: dataclasses.replace's TypeError


def test_classes_it_does_not_cover_go_to_dataclasses_replace() -> None:
    @dataclasses.dataclass
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True)
    class Derived:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    assert replace(Mutable(1), x=2) == Mutable(2)
    assert replace(Derived(1), x=2) == Derived(2)
    # dataclasses.replace refuses an init=False field (ValueError before Python 3.13,
    # TypeError since): replace raises whatever it raises
    with pytest.raises((ValueError, TypeError)) as refused:
        dataclasses.replace(Derived(1), y=3)
    with pytest.raises(type(refused.value), match="init=False"):
        replace(Derived(1), y=3)


def test_a_create_payment_makes_no_dataclasses_replace_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow: list[str] = []
    original = dataclasses.replace

    def counted(obj: Any, /, **changes: Any) -> Any:
        slow.append(type(obj).__name__)
        return original(obj, **changes)

    monkeypatch.setattr(dataclasses, "replace", counted)
    with paygate.connect(FakeProvider(seed=1), store=f"sqlite:///{tmp_path / 's.db'}") as gw:
        gw.create_payment(order_id="o1", amount=Money(500, "USD"), payment_method="tok_visa")
    assert slow == []  # it made five (two records, the view, two states)


def test_a_dataclass_with_an_init_of_its_own_goes_to_dataclasses_replace() -> None:
    @dataclasses.dataclass(frozen=True)
    class Own:
        x: int

        def __init__(self, x: int) -> None:
            object.__setattr__(self, "x", x * 10)

    assert replace(Own(1), x=2).x == 20  # through its __init__, as dataclasses.replace
