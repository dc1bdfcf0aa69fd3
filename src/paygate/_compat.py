"""Small shims for Python 3.10."""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - exercised on 3.10 only

    class StrEnum(str, Enum):
        """Backport of `enum.StrEnum` (3.11+): members are their own string values."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = ["StrEnum"]
