"""Check a Stripe JSON object against the ``stripe`` package's typed resources.

The package's resource classes (``stripe.PaymentIntent`` ...) are generated from Stripe's
OpenAPI spec: every field, its type (nested objects as nested classes), which fields may be
null and the enum values. :func:`shape_errors` walks an object with them: unknown fields,
missing non-nullable fields, wrong scalar types, enum values outside the spec. Expandable
fields (``latest_charge``) accept an id or the object. Used with the example objects of
``../shared/reference/stripe/fixtures3.json`` (tests/test_sandbox_stripe_api.py).
"""

from __future__ import annotations

import decimal
import importlib
import typing
from typing import Any, ForwardRef, Literal, Union

import stripe
from stripe._object_classes import OBJECT_CLASSES

_NONE = type(None)


def _class_for(object_name: str) -> type | None:
    entry = OBJECT_CLASSES.get(object_name)
    if entry is None:
        return None
    module, name = entry
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _resolve(annotation: Any, owner: type) -> Any:
    if isinstance(annotation, ForwardRef):
        name = annotation.__forward_arg__
        nested = getattr(owner, name, None)
        if nested is not None:
            return nested
        found = getattr(stripe, name, None)
        return found if found is not None else Any
    if isinstance(annotation, str):
        return _resolve(ForwardRef(annotation), owner)
    return annotation


def _options(annotation: Any, owner: type) -> list[Any]:
    annotation = _resolve(annotation, owner)
    if typing.get_origin(annotation) is Union:
        result: list[Any] = []
        for arg in typing.get_args(annotation):
            result.extend(_options(arg, owner))
        return result
    return [annotation]


def _fields(cls: type) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        fields.update(getattr(klass, "__annotations__", {}))
    fields.pop("OBJECT_NAME", None)
    return {k: v for k, v in fields.items() if not k.startswith("_")}


def _check_value(value: Any, annotation: Any, owner: type, path: str, errors: list[str]) -> None:
    options = _options(annotation, owner)
    if value is None:
        if _NONE not in options and Any not in options:
            errors.append(f"{path}: null, but the spec does not allow null")
        return
    is_resource = isinstance(value, dict) and _class_for(str(value.get("object"))) is not None
    if is_resource and value["object"] != "list":  # expanded, or an event's object
        errors.extend(shape_errors(value, path))
        return
    literals = [a for o in options if typing.get_origin(o) is Literal for a in typing.get_args(o)]
    if literals and isinstance(value, str) and value not in literals:
        # the package adds ``str`` beside each enum for values newer than itself; what the
        # sandbox sends must be one the spec names
        errors.append(f"{path}: {value!r:.40} is not one of {literals!r:.200}")
        return
    for option in options:
        if option is Any or option is _NONE:
            continue
        origin = typing.get_origin(option)
        if origin is Literal:
            if value in typing.get_args(option):
                return
            continue
        if isinstance(origin, type) and issubclass(origin, stripe.StripeObject):
            (item,) = typing.get_args(option) or (Any,)
            if not isinstance(value, dict):
                continue
            if origin.__name__ == "ListObject":
                if value.get("object") != "list" or not isinstance(value.get("data"), list):
                    continue
                for index, entry in enumerate(value["data"]):
                    _check_value(entry, item, owner, f"{path}.data[{index}]", errors)
                return
            for key, entry in value.items():  # a map such as metadata
                _check_value(entry, item, owner, f"{path}.{key}", errors)
            return
        if option is decimal.Decimal and isinstance(
            value, str | decimal.Decimal
        ):  # "12.5" on the wire
            return
        if option is str and isinstance(value, str):
            return
        if option is bool and isinstance(value, bool):
            return
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
            (item,) = typing.get_args(option) or (Any,)
            for index, entry in enumerate(value):
                _check_value(entry, item, owner, f"{path}[{index}]", errors)
            return
        if origin in (dict, typing.Dict) and isinstance(value, dict):  # noqa: UP006
            return
        if (
            isinstance(option, type)
            and issubclass(option, stripe.StripeObject)
            and isinstance(value, dict)
        ):
            if option.__name__ == "ListObject" or value.get("object") == "list":
                for index, entry in enumerate(value.get("data", [])):
                    errors.extend(shape_errors(entry, f"{path}.data[{index}]"))
                return
            errors.extend(_object_errors(value, option, path))
            return
    if Any in options:
        return
    errors.append(f"{path}: {value!r:.60} does not fit {options!r:.200}")


def _object_errors(obj: dict[str, Any], cls: type, path: str) -> list[str]:
    errors: list[str] = []
    fields = _fields(cls)
    for key, value in obj.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not a field of {cls.__name__}")
            continue
        _check_value(value, fields[key], cls, f"{path}.{key}", errors)
    for key, annotation in fields.items():
        if key not in obj and _NONE not in _options(annotation, cls) and key != "object":
            errors.append(f"{path}.{key}: missing (not nullable in {cls.__name__})")
    return errors


def shape_errors(obj: dict[str, Any], path: str = "") -> list[str]:
    """What in ``obj`` (with an ``object`` field) the typed resources do not allow."""
    name = obj.get("object")
    cls = _class_for(str(name))
    if cls is None:
        return [f"{path or '<root>'}: unknown object type {name!r}"]
    return _object_errors(obj, cls, path or str(name))
