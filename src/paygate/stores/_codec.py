"""JSON round trips for paygate's result dataclasses, as the stores keep them.

Stores persist what is needed to rebuild a ``Payment``, a ``WebhookEvent`` (for replaying
handlers) or an operation's result (for idempotent replays) -- never ``raw`` (it can hold
anything the provider sent, secrets included) and never ``client_secret``.

Hand-written rather than pydantic's ``TypeAdapter`` because the models are plain frozen
dataclasses shared with the pure core, the set of types is small and closed, and the
stores must not import pydantic on their hot path.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from paygate import models
from paygate.money import Money

__all__ = ["NEVER_STORED", "dump", "dumps", "load", "loads"]

#: fields no store ever writes
NEVER_STORED: frozenset[str] = frozenset({"raw", "client_secret"})

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Money,
        models.Payment,
        models.PaymentFailure,
        models.Refund,
        models.Dispute,
        models.Subscription,
        models.Invoice,
        models.CheckoutSession,
        models.Customer,
        models.LineItem,
        models.WebhookEvent,
        models.PaymentMethod,
        models.SetupSession,
    )
}


#: per stored class, the fields written (computed once: ``dataclasses.fields`` is slow)
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name not in NEVER_STORED)
    for cls in _TYPES.values()
}


def _dumper(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """`dump` of one stored class, generated once: each field read as an attribute and
    written under its name, with no loop over the names and no ``getattr`` call (issue
    21: a webhook dumps its event and its payment). Most fields are None, a str or a str
    enum (kept as they are, like `dump` keeps them) or Money: those without a call."""
    lines = ["def dump_one(value):\n", f"    out = {{'__type__': {cls.__name__!r}}}\n"]
    for name in _FIELDS[cls]:
        lines += [
            f"    field = value.{name}\n",
            "    if field is None or isinstance(field, str):\n",
            f"        out[{name!r}] = field\n",
            "    elif type(field) is Money:\n",
            f"        out[{name!r}] = {{'__type__': 'Money', 'amount': field.amount, "
            "'currency': field.currency}\n",
            "    else:\n",
            f"        out[{name!r}] = dump(field)\n",
        ]
    lines.append("    return out\n")
    scope: dict[str, Any] = {"Money": Money, "dump": dump}
    exec("".join(lines), scope)  # noqa: S102 - our own code, built from field names
    dumper: Callable[[Any], dict[str, Any]] = scope["dump_one"]
    return dumper


def dump(value: Any) -> Any:
    """A JSON-ready structure for ``value``; dataclasses are tagged with ``__type__``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    cls = type(value)
    if cls is Money:  # the commonest nested object: skip the generic path
        return {"__type__": "Money", "amount": value.amount, "currency": value.currency}
    dumper = _DUMPERS.get(cls)
    if dumper is not None:
        return dumper(value)
    if cls is dict:  # before the Mapping ABC's slower isinstance below
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [dump(v) for v in value]
    raise TypeError(f"cannot store a {type(value).__name__}")


#: per stored class, its generated `dump` (`_dumper`)
_DUMPERS: dict[type[Any], Callable[[Any], dict[str, Any]]] = {cls: _dumper(cls) for cls in _FIELDS}


def _scalar_converter(hint: Any) -> Callable[[Any], Any] | None:
    """How to turn a stored scalar back into ``hint`` (datetime or enum), if needed."""
    candidates = typing.get_args(hint) if _is_union(hint) else (hint,)
    for candidate in candidates:
        if candidate is datetime:
            return datetime.fromisoformat
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate
    return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


_CONVERTERS: dict[str, dict[str, Callable[[Any], Any] | None]] = {}


def _converters(cls: type[Any]) -> dict[str, Callable[[Any], Any] | None]:
    """Per field of ``cls``: how to rebuild a stored scalar (cached per class)."""
    found = _CONVERTERS.get(cls.__name__)
    if found is None:
        hints = typing.get_type_hints(cls, vars(models) | {"Money": Money, "datetime": datetime})
        found = {f.name: _scalar_converter(hints[f.name]) for f in dataclasses.fields(cls)}
        _CONVERTERS[cls.__name__] = found
    return found


#: a stored value of these types comes back as it is (`load` returns it unchanged)
_AS_IS: frozenset[type[Any]] = frozenset({str, int, float, bool, type(None)})
#: `_converters`' answer for a key that is no field (``__type__``, or an unknown key)
_SKIP: Any = object()


def load(data: Any) -> Any:
    """The inverse of `dump` (``raw`` and ``client_secret`` come back as ``None``)."""
    if isinstance(data, list):
        return [load(v) for v in data]
    if not isinstance(data, dict):
        return data
    name = data.get("__type__")
    if name is None:
        return {k: load(v) for k, v in data.items()}
    if name == "Money":  # the commonest nested object: skip the generic path
        try:
            return Money(data["amount"], data["currency"])
        except KeyError:
            pass  # the generic path says what is missing, as for any class
    cls = _TYPES[name]
    converters = _converters(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        convert = converters.get(key, _SKIP)
        if convert is _SKIP:
            continue
        if value is None or convert is None:
            # most values are None or a str kept as it is: no call (a webhook for a
            # known payment decodes it from its row)
            kwargs[key] = value if type(value) in _AS_IS else load(value)
        elif isinstance(value, dict):
            kwargs[key] = load(value)
        else:
            kwargs[key] = convert(value)
    return cls(**kwargs)


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), sort_keys=True)``, the same text,
    without building an encoder at every call: ``json.dumps`` builds a ``JSONEncoder``
    unless all its options are the defaults, and ``JSONEncoder.encode`` builds the C
    encoder (``c_make_encoder``) and a circular-reference dict at every call; here the
    C encoder is built once (issue 18: CPU per call). Without a circular-reference
    check: what a store encodes (dumps of frozen dataclasses, parsed JSON) never refers
    to itself, and a value that did would raise ``RecursionError``, not ``ValueError``.
    Safe on several threads: the C encoder keeps no state between calls."""
    encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - a Python without the _json accelerator
        return encoder.encode
    chunks = make(
        None,  # markers: no circular-reference check
        encoder.default,
        json.encoder.encode_basestring_ascii,  # ensure_ascii, as json.dumps
        None,  # indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode_json(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode_json


#: ``json.dumps(value, separators=(",", ":"), sort_keys=True)``, built once (see above)
encode_json: Callable[[Any], str] = _json_encoder()


def dumps(value: Any) -> str:
    return encode_json(dump(value))


def loads(text: str) -> Any:
    return load(json.loads(text))
