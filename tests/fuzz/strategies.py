"""Hypothesis strategies for hostile webhook deliveries, and the checks every input must pass.

Three modes (issue 15):

- ``raw``: any body (bytes, JSON text, JSON values), correctly signed;
- ``headers``: a genuine body with hostile signature headers (garbage, ``bytes``, lone
  surrogates, huge values, wrong types, odd name casing);
- ``mutate``: a valid event (see :mod:`tests.fuzz.targets`) with fields retyped, deleted,
  made huge, out of the calendar, deeply nested or unicode, then signed again.

:func:`check_parse` and :func:`check_gateway` are the oracle: only a documented paygate
error escapes, and a refused delivery leaves the store as it was.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import strategies as st

from paygate.errors import PaygateError
from paygate.gateway import WebhookResult
from paygate.models import WebhookEvent
from paygate.stores.memory import MemoryStore
from tests.fuzz.targets import DOCUMENTED_ERRORS, Target, store_snapshot

#: inputs run, per (target, mode): the long run reports these
RUNS: Counter[tuple[str, str]] = Counter()
#: deliveries a Gateway answered with a paygate error other than a refusal (5xx), per
#: (target, error class)
GATEWAY_ERRORS: Counter[tuple[str, str]] = Counter()
#: the last input that broke the oracle, for the long run to keep as a corpus file
LAST_FAILURE: dict[str, Any] = {}

# -- values --------------------------------------------------------------------------------

_EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.9999999Z",
    "2026-02-30T00:00:00Z", "2026-03-01T10:00:00", "2026-03-01", "", "Z", "T", "24:00",
    "2026-03-01T10:00:00.123456789+14:00",
]  # fmt: skip
_EDGE_NUMBERS = [
    0, -1, 2**31, 2**63, -(2**63), 10**20, -(10**20), 10**300, 1e20, -1e20, 1e308, 0.5,
    -0.0, 10**4299,
]  # fmt: skip
_EDGE_STRINGS = [
    "", " ", "\x00", "\ud800", "\udfff", "é", "١٩.٩٩", "²", "ﬀ", "\u202e", "a" * 10_000,
    "NaN", "Infinity", "-1", "1e9", "19.99", "USD", "usd", "XXX", "null", "[", "{",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(_EDGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(_EDGE_STRINGS + _EDGE_TIMES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: a value to put in place of a field: wrong types, edges, deep nesting
replacements = st.one_of(
    json_values,
    st.integers(min_value=1, max_value=200).map(nested),
)


def _dump(value: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, as a hostile sender would
    return json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


#: any body: random bytes, text, JSON values, deep nesting, several encodings
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(_dump),
    st.integers(min_value=60, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=60, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    json_values.map(lambda v: json.dumps(v).encode("utf-16")),
    st.just(b"\xef\xbb\xbf{}"),
)

#: a hostile value for one signature header
header_values = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.sampled_from(_EDGE_STRINGS + _EDGE_TIMES),
    st.sampled_from(["t=²,v1=00", "t=" + "9" * 5000 + ",v1=00", "t=,v1=", "t=1,t=2,v1=00",
                     "v1=" + "0" * 64, "t=-1,v1=00", "t=1e9,v1=00", ",,,", "=", "t==1"]),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=2),
    st.text(max_size=20).map(lambda s: s * 500),
)  # fmt: skip


def _recase(name: str, flips: list[bool]) -> str:
    return "".join(
        c.upper() if f else c.lower()
        for c, f in zip(name, flips + [False] * len(name), strict=False)
    )


@st.composite
def hostile_headers(draw: st.DrawFn, target: Target, headers: dict[str, str]) -> dict[Any, Any]:
    """``headers`` with one or more signature headers replaced, dropped, recased or bytes."""
    out: dict[Any, Any] = dict(headers)
    names = list(target.signature_headers)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    for name in chosen:
        action = draw(st.sampled_from(["replace", "drop", "recase-bytes", "append"]))
        value = out.pop(name)
        if action == "replace":
            out[name] = draw(header_values)
        elif action == "recase-bytes":  # the genuine value under another spelling, mangled
            flips = draw(st.lists(st.booleans(), max_size=len(name)))
            mangled = draw(st.sampled_from([value[:-1], value + "0", value.upper(), ""]))
            out[_recase(name, flips).encode("latin-1")] = mangled.encode("latin-1")
        elif action == "append":
            out[name] = value + draw(st.text(min_size=1, max_size=10))
    if draw(st.booleans()):  # noise headers that must not matter
        out.update(draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)))
    return out


# -- structure-aware mutation -------------------------------------------------------------


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


@st.composite
def mutated_events(draw: st.DrawFn, target: Target) -> Any:
    """A copy of one of ``target``'s valid events with 1-3 fields mutated."""
    event = json.loads(json.dumps(draw(st.sampled_from(target.seeds))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        parent: Any = None
        key: Any = None
        node = event
        # walk down a random path; stop anywhere
        while _children(node) and draw(st.integers(0, 3)) > 0:
            parent, key = node, draw(st.sampled_from(_children(node)))
            node = node[key]
        if parent is None:
            continue
        action = draw(st.sampled_from(["replace", "delete", "time", "number", "string", "wrap"]))
        if action == "delete":
            del parent[key]
        elif action == "time":
            parent[key] = draw(st.sampled_from(_EDGE_TIMES))
        elif action == "number":
            parent[key] = draw(st.sampled_from(_EDGE_NUMBERS) | st.integers())
        elif action == "string":
            parent[key] = draw(st.sampled_from(_EDGE_STRINGS) | st.text(max_size=30))
        elif action == "wrap":
            parent[key] = nested(draw(st.integers(1, 80)), node)
        else:
            parent[key] = draw(replacements)
    return event


# -- the oracle ---------------------------------------------------------------------------


def check_parse(target: Target, mode: str, body: bytes, headers: Any) -> WebhookEvent | None:
    """Parse one delivery: an event, or a documented error (returned as ``None``)."""
    RUNS[target.name, mode] += 1
    try:
        event = target.parse(body, headers)
    except DOCUMENTED_ERRORS:
        return None
    except BaseException:
        LAST_FAILURE.update(target=target.name, mode=mode, body=body, headers=headers)
        raise
    assert isinstance(event, WebhookEvent)
    return event


def check_gateway(target: Target, mode: str, body: bytes, headers: Any) -> None:
    """Hand one delivery to a Gateway: refused (a ``WebhookVerificationError``, store
    unchanged), answered 200/409, or failed with another paygate error (the view answers
    5xx, the provider redelivers): a lookup of the payment of a refund or dispute the
    Gateway has not met, which the mocks answer 404. Those are counted in
    :data:`GATEWAY_ERRORS`."""
    gateway = target.gateway(MemoryStore())
    before = store_snapshot(gateway.store)
    try:
        result = gateway.handle_webhook(body, headers)
    except DOCUMENTED_ERRORS:
        assert store_snapshot(gateway.store) == before, "a refused delivery changed the store"
        return
    except PaygateError as exc:
        GATEWAY_ERRORS[target.name, type(exc).__name__] += 1
        return
    except BaseException:
        LAST_FAILURE.update(target=target.name, mode=f"{mode}+gateway", body=body, headers=headers)
        raise
    assert isinstance(result, WebhookResult) and result.http_status in (200, 409)


MODES = ("raw", "headers", "mutate")


@st.composite
def deliveries(draw: st.DrawFn, target: Target, mode: str) -> tuple[bytes, Any]:
    """One delivery (body, headers) to ``target`` in ``mode`` (one of :data:`MODES`)."""
    if mode == "raw":
        body = draw(raw_bodies)
        return body, target.sign(body)
    if mode == "headers":
        body = _dump(draw(st.sampled_from(target.seeds)))
        return body, draw(hostile_headers(target, target.sign(body)))
    body = _dump(draw(mutated_events(target)))
    return body, target.sign(body)
