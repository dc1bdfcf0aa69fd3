"""Check a form-encoded Stripe request against the stripe package's typed request parameters.

The stripe SDK ships a ``TypedDict`` for every request (``stripe.params.SetupIntentCreateParams``
and so on), generated from Stripe's OpenAPI specification. A request the adapter sends is
decoded from Stripe's bracket notation (``a[b][0][c]=v``) and walked against that type: every
key must be a parameter Stripe declares, every enum value one it lists. Hand-written because
the SDK offers no validator and pydantic ignores unknown ``TypedDict`` keys.
"""

from __future__ import annotations

import importlib
import re
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from typing_extensions import is_typeddict

__all__ = ["check_stripe_form", "unflatten"]

_PART = re.compile(r"\[([^\]]*)\]")


def unflatten(fields: dict[str, str]) -> dict[str, Any]:
    """``{"a[b][0]": "x"}`` → ``{"a": {"b": ["x"]}}`` (list indices become lists)."""
    root: dict[str, Any] = {}
    for flat, value in fields.items():
        head, _, rest = flat.partition("[")
        keys = [head, *_PART.findall("[" + rest)] if rest else [head]
        node: Any = root
        for key, following in zip(keys, [*keys[1:], None], strict=True):
            if following is None:
                node[key] = value
            else:
                node = node.setdefault(key, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {key: _lists(value) for key, value in node.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return node


def check_stripe_form(params_name: str, fields: dict[str, str]) -> None:
    """Raise AssertionError naming the first field ``stripe.params.<params_name>`` lacks
    (``"checkout.SessionCreateParams"`` for a sub-package's)."""
    package, _, name = params_name.rpartition(".")
    module = importlib.import_module("stripe.params" + (f".{package}" if package else ""))
    params_type = getattr(module, name)
    problem = _problem(params_type, unflatten(fields), params_name)
    assert problem is None, problem


class _Unknown:
    """Stands for a name the SDK imports only for type checking; accepts anything."""

    def __class_getitem__(cls, item: Any) -> Any:
        return Any


def _hints(tp: Any) -> dict[str, Any]:
    """The TypedDict's resolved fields; names only imported for type checking in the SDK
    (``StripeContext`` of ``RequestOptions``) resolve to ``Any``."""
    missing: dict[str, Any] = {}
    while True:
        try:
            return get_type_hints(tp, localns=missing)
        except NameError as exc:
            if exc.name is None or exc.name in missing:
                raise
            missing[exc.name] = _Unknown


def _problem(tp: Any, value: Any, path: str) -> str | None:
    if tp is Any or tp is object or tp is _Unknown:
        return None
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return f"{path}: expected an object, got {value!r}"
        hints = _hints(tp)
        for key, item in value.items():
            if key not in hints:
                return f"{path}.{key} is not a parameter of {tp.__name__}"
            problem = _problem(hints[key], item, f"{path}.{key}")
            if problem:
                return problem
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        arms = get_args(tp)
        if any(get_origin(arm) is Literal for arm in arms):
            # ``Literal[...] | str``: the bare str is the SDK's forward-compatibility escape
            # hatch; a value paygate sends must be one Stripe lists today
            arms = tuple(arm for arm in arms if arm is not str)
        problems = [_problem(arg, value, path) for arg in arms]
        return None if any(p is None for p in problems) else problems[0]
    if origin is Literal:
        allowed = ["true" if a is True else "false" if a is False else str(a) for a in get_args(tp)]
        return None if value in allowed else f"{path}={value!r} is not one of {allowed[:8]}..."
    if origin is list:
        if not isinstance(value, list):
            return f"{path}: expected a list, got {value!r}"
        for index, item in enumerate(value):
            problem = _problem(get_args(tp)[0], item, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{path}: expected a map, got {value!r}"
        return None
    if tp is bool:
        return None if value in ("true", "false") else f"{path}={value!r} is not a boolean"
    if tp is int:
        return None if re.fullmatch(r"-?\d+", str(value)) else f"{path}={value!r} is not an int"
    if tp is str:
        return None if isinstance(value, str) else f"{path}: expected a string"
    return None  # types the form cannot carry distinctly (floats, files): not checked
