"""A faster [`dataclasses.replace`][dataclasses.replace] for frozen dataclasses.

`dataclasses.replace` re-reads the class's fields at every call and goes through the
generated ``__init__`` with keyword arguments: about 4 µs for a 16-field
[`Payment`][paygate.Payment] (load 4.3, ``python bench/bench_hot_path.py``), and one
``create_payment`` makes five such copies (issue 18: CPU per call). `replace` runs a
copier generated once per class -- each field taken from ``changes`` or from the
original, set as the frozen ``__init__`` sets it -- then the class's ``__post_init__``,
as its ``__init__`` would: the copy is normalized and validated exactly as
``dataclasses.replace``'s, in about half the time. Hand-written because the standard
library has no cheaper equivalent (``copy.copy`` would skip ``__post_init__``); the
generated code is what ``dataclasses`` itself generates for ``__init__``, minus the
keyword-argument parsing.

A class outside what this covers (not a frozen dataclass, an ``__init__`` of its own, a
field ``__init__`` does not take, an ``InitVar``) and a change naming no field go to
``dataclasses.replace`` itself, with its errors.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["replace"]

T = TypeVar("T")

Copier = Callable[[Any, dict[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class _Probe:
    x: int


#: where the ``__init__`` that ``dataclasses`` generates says its code comes from
_GENERATED = _Probe.__init__.__code__.co_filename

#: per class: its copier and its field names, or ``None`` (``dataclasses.replace``)
_COPIERS: dict[type, tuple[Copier, frozenset[str]] | None] = {}


def _copier(cls: type) -> tuple[Copier, frozenset[str]] | None:
    params = getattr(cls, "__dataclass_params__", None)
    init = getattr(cls, "__init__", None)
    if params is None or not params.frozen:
        return None  # not a dataclass, or a mutable one (its __setattr__ may be custom)
    if getattr(getattr(init, "__code__", None), "co_filename", None) != _GENERATED:
        return None  # an __init__ of its own: only it knows how to build the class
    names: list[str] = []
    for name, spec in cls.__dataclass_fields__.items():  # type: ignore[attr-defined]
        kind = spec._field_type  # dataclasses' own marker of ClassVar / InitVar
        if kind is dataclasses._FIELD_CLASSVAR:  # type: ignore[attr-defined]
            continue
        if kind is not dataclasses._FIELD or not spec.init:  # type: ignore[attr-defined]
            return None  # an InitVar, or a field __init__ does not take
        if not name.isidentifier() or keyword.iskeyword(name):  # pragma: no cover
            return None  # not writable as ``obj.name`` (dataclasses refuses most anyway)
        names.append(name)
    lines = ["def copy(obj, changes):\n    new = _new(_cls)\n"]
    for name in names:
        lines.append(
            f"    _set(new, {name!r}, changes[{name!r}] if {name!r} in changes else obj.{name})\n"
        )
    if hasattr(cls, "__post_init__"):
        lines.append("    new.__post_init__()\n")
    lines.append("    return new\n")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_set": object.__setattr__}
    exec("".join(lines), scope)  # noqa: S102 - our own code, built from field names
    return scope["copy"], frozenset(names)


def replace(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)``: the same copy, made faster (see the
    module)."""
    cls = type(obj)
    try:
        plan = _COPIERS[cls]
    except KeyError:
        plan = _COPIERS[cls] = _copier(cls)
    if plan is None or not plan[1].issuperset(changes):
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    copy: T = plan[0](obj, changes)
    return copy
