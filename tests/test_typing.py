"""What users type against paygate passes ``mypy --strict``, and typing mistakes fail it.

One mypy run (the installed mypy, in process, no cache) checks the README quickstart, the
example, code that must pass and code that must fail; each line that must fail names its
error code in a ``# E: code`` comment, and the errors reported must be exactly those.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_quickstart import QUICKSTART, readme_quickstart

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the dev dependency group")

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
from typing_extensions import assert_type

import paygate
from paygate import Gateway, PaymentProvider
from paygate.providers.fake import FakeProvider
from paygate.providers.paypal import PayPalProvider
from paygate.providers.square import SquareProvider
from paygate.providers.stripe import StripeProvider

fake = paygate.connect("fake", "memory://", seed=1, webhook_secret="whsec_x")
assert_type(fake, Gateway[FakeProvider])
assert_type(fake.provider, FakeProvider)
fake.provider.take_webhooks()

with paygate.connect("fake") as gw:
    assert_type(gw.provider, FakeProvider)

stripe = paygate.connect("stripe", api_key="sk_test_x", webhook_secret=["a", "b"], timeout=5)
assert_type(stripe, Gateway[StripeProvider])
paypal = paygate.connect("paypal", client_id="id", client_secret="s", mode="live")
assert_type(paypal, Gateway[PayPalProvider])
square = paygate.connect("square", access_token="t", location_id="L", environment="production")
assert_type(square, Gateway[SquareProvider])

own = paygate.connect(FakeProvider(seed=2), "memory://", currencies=["USD"])
assert_type(own, Gateway[FakeProvider])

# a plugin's name or one read from configuration: the protocol, without settings (a
# built-in name without its required settings lands here too: a type checker cannot
# tell "stripe" from another str once the stripe overload does not match)
plugin = paygate.connect("acme")
assert_type(plugin, Gateway[PaymentProvider])
built = paygate.connect(paygate.create_provider("acme", token="t"))
assert_type(built, Gateway[PaymentProvider])

# a bare Gateway annotation stays valid and accepts any provider's gateway
def serve(gateway: Gateway) -> PaymentProvider:
    return gateway.provider

serve(fake)
serve(stripe)
plain: Gateway = Gateway.from_env()
"""

BAD = """\
import paygate
from paygate.providers.fake import FakeProvider

stripe = paygate.connect("stripe", api_key="sk_test_x")
stripe.provider.take_webhooks()  # E: attr-defined
paygate.connect("stripe", api_key=3)  # E: call-overload
paygate.connect("paypal", client_id="id")  # E: call-overload
paygate.connect("square", access_token="t", location_id="L", environment="prod")  # E: call-overload
paygate.connect("fake", seed="1")  # E: call-overload
paygate.connect(FakeProvider(), seed=1)  # E: call-overload
paygate.connect("fake").provider.no_such_helper()  # E: attr-defined
"""

# the async face (AsyncGateway, connect_async), typed like the sync one
ASYNC_GOOD = """\
from typing_extensions import assert_type

import paygate
from paygate import AsyncGateway, Fact, Money, Payment, WebhookResult
from paygate.provider import AsyncPaymentProvider
from paygate.providers.fake import AsyncFakeProvider, FakeProvider
from paygate.providers.paypal import AsyncPayPalProvider
from paygate.providers.square import AsyncSquareProvider
from paygate.providers.stripe import AsyncStripeProvider


async def main() -> None:
    fake = paygate.connect_async("fake", "memory://", seed=1)
    assert_type(fake, AsyncGateway[AsyncFakeProvider])
    assert_type(fake.provider, AsyncFakeProvider)
    stripe = paygate.connect_async("stripe", api_key="sk_test_x", timeout=5)
    assert_type(stripe, AsyncGateway[AsyncStripeProvider])
    square = paygate.connect_async("square", access_token="t", location_id="L")
    assert_type(square, AsyncGateway[AsyncSquareProvider])
    paypal = paygate.connect_async("paypal", client_id="id", client_secret="s")
    assert_type(paypal, AsyncGateway[AsyncPayPalProvider])
    own = paygate.connect_async(FakeProvider(seed=2))  # a sync adapter: its async twin
    assert_type(own, AsyncGateway[AsyncPaymentProvider])
    twin = paygate.connect_async(FakeProvider().aio())
    assert_type(twin, AsyncGateway[AsyncPaymentProvider])
    plugin = paygate.connect_async("acme")
    assert_type(plugin, AsyncGateway[AsyncPaymentProvider])

    @fake.on(paygate.EventType.PAYMENT_SUCCEEDED)
    async def fulfil(fact: Fact) -> None: ...

    async with fake as agw:
        payment = await agw.create_payment(order_id="o", amount=Money.of("1.00", "USD"))
        assert_type(payment, Payment)
        result = await agw.handle_webhook(b"{}", {})
        assert_type(result, WebhookResult)
    env: AsyncGateway = AsyncGateway.from_env()
    await env.aclose()
"""

ASYNC_BAD = """\
import paygate
from paygate import Money


async def main() -> None:
    paygate.connect_async("stripe", api_key=3)  # E: call-overload
    paygate.connect_async("fake", seed="1")  # E: call-overload
    agw = paygate.connect_async("fake")
    agw.create_payment(order_id="o", amount=Money.of("1.00", "USD")).id  # E: attr-defined
    await agw.create_payment(order_id=1, amount=Money.of("1.00", "USD"))  # E: arg-type
"""

_ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[int, str]]]:
    """(line, error code) of every error mypy --strict reports, by checked file's name."""
    tmp = tmp_path_factory.mktemp("typing")
    files = {
        "readme_quickstart.py": readme_quickstart(),
        "example_quickstart.py": QUICKSTART.read_text(encoding="utf-8"),
        "good.py": GOOD,
        "bad.py": BAD,
        "async_good.py": ASYNC_GOOD,
        "async_bad.py": ASYNC_BAD,
    }
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    # this checkout's src first (an editable install may point elsewhere); the SDKs
    # without stubs as in pyproject
    config = tmp / "mypy.ini"
    config.write_text(
        f"[mypy]\nmypy_path = {ROOT / 'src'}\n"
        "[mypy-paypalrestsdk.*,square.*,stripe.*,pyarrow,pyarrow.*]\n"
        "ignore_missing_imports = True\n",
        encoding="utf-8",
    )
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--config-file", str(config),
            "--no-incremental",
            "--cache-dir", str(tmp / "cache"),
            "--python-version", "3.10",
            "--show-error-codes",
            "--no-color-output",
            "--no-error-summary",
            *(str(tmp / name) for name in files),
        ]
    )  # fmt: skip
    assert status in (0, 1), stderr  # 2: mypy itself failed
    errors: dict[str, set[tuple[int, str]]] = {name: set() for name in files}
    for line in stdout.splitlines():
        match = _ERROR.match(line)
        if match:
            errors.setdefault(Path(match["path"]).name, set()).add(
                (int(match["line"]), match["code"])
            )
        else:
            assert ": note: " in line, line
    return errors


@pytest.mark.parametrize(
    "name", ["readme_quickstart.py", "example_quickstart.py", "good.py", "async_good.py"]
)
def test_what_users_write_passes_strict(
    mypy_errors: dict[str, set[tuple[int, str]]], name: str
) -> None:
    assert mypy_errors[name] == set()


def test_typing_mistakes_fail_with_their_codes(
    mypy_errors: dict[str, set[tuple[int, str]]],
) -> None:
    expected = {
        (number, line.rsplit("# E: ", 1)[1])
        for number, line in enumerate(BAD.splitlines(), start=1)
        if "# E: " in line
    }
    assert len(expected) == 7
    assert mypy_errors["bad.py"] == expected


def test_only_the_checked_files_report(mypy_errors: dict[str, set[tuple[int, str]]]) -> None:
    # an error inside paygate itself would be listed under its own file
    assert set(mypy_errors) == {
        "readme_quickstart.py",
        "example_quickstart.py",
        "good.py",
        "bad.py",
        "async_good.py",
        "async_bad.py",
    }


def test_async_typing_mistakes_fail_with_their_codes(
    mypy_errors: dict[str, set[tuple[int, str]]],
) -> None:
    expected = {
        (number, line.rsplit("# E: ", 1)[1])
        for number, line in enumerate(ASYNC_BAD.splitlines(), start=1)
        if "# E: " in line
    }
    assert len(expected) == 4
    assert mypy_errors["async_bad.py"] == expected
