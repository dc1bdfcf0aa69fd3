"""Import, at an async adapter's construction, what its SDK would import inside the first
request: an import runs on the event loop and blocks it (squareup builds each API's
pydantic models on first access, ~0.6 s; stripe imports a resource's class the first time
an answer holds one; httpx imports its anyio backend on the first connection). An
application builds its provider at startup, so the cost moves there, out of a request.

Best effort: a module an SDK version no longer has is skipped (the SDK imports what it
needs itself then, as before).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

__all__ = ["HTTPX_ASYNC", "warm_imports"]

#: what httpx's async transport imports on its first request
HTTPX_ASYNC = ("httpcore._backends.anyio", "anyio._backends._asyncio")


def warm_imports(modules: Iterable[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
