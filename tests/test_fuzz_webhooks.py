"""The bounded fuzz run of every provider's ``parse_webhook`` (issue 15), in the normal suite.

Each parser (Stripe, PayPal with offline and with API verification, Square, the fake) gets
hostile deliveries in three modes (see :mod:`tests.fuzz.strategies`); only a documented
paygate error (``WebhookVerificationError``: answer 400) may escape, and a Gateway in front
of a store stores nothing for a refused delivery. Deterministic here (``derandomize``, no
example database) and a few seconds long; ``nox -s fuzz -- --minutes N`` runs the same
strategies for as long as asked. Past crashers are replayed from tests/fuzz_corpus/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.corpus import CORPUS_DIR, load_case
from tests.fuzz.strategies import MODES, check_gateway, check_parse, deliveries
from tests.fuzz.targets import NAMES, paypal_api, target

BOUNDED = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _paypal_api() -> Iterator[None]:
    with paypal_api():
        yield


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_parse_webhook_raises_only_documented_errors(name: str, mode: str) -> None:
    @BOUNDED
    @given(delivery=deliveries(target(name), mode))
    def run(delivery: tuple[bytes, Any]) -> None:
        check_parse(target(name), mode, *delivery)

    run()


@pytest.mark.parametrize("mode", ["raw", "mutate"])
@pytest.mark.parametrize("name", NAMES)
def test_a_refused_delivery_stores_nothing(name: str, mode: str) -> None:
    @BOUNDED
    @given(delivery=deliveries(target(name), mode))
    def run(delivery: tuple[bytes, Any]) -> None:
        check_gateway(target(name), mode, *delivery)

    run()


CASES = sorted(CORPUS_DIR.glob("*.json"))


def test_the_corpus_holds_a_crasher_for_every_parser() -> None:
    names = {json.loads(path.read_text(encoding="utf-8"))["target"] for path in CASES}
    assert names == set(NAMES)


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_past_crashers_are_answered_with_documented_errors(path: Path) -> None:
    name, body, headers, note = load_case(path)
    assert note, f"{path.name}: say what the input once broke"
    check_parse(target(name), "corpus", body, headers)
    check_gateway(target(name), "corpus", body, headers)
