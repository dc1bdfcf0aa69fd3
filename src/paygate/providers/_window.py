"""Argument checks shared by the adapters' listing methods (reconciliation reads)."""

from __future__ import annotations

from datetime import datetime, timezone

from paygate.errors import ValidationError

__all__ = ["aware", "check_page_size", "check_window", "rfc3339"]


def aware(moment: datetime, name: str) -> datetime:
    """``moment`` when it is a timezone-aware datetime; a ValidationError naming ``name``
    otherwise (a naive datetime is ambiguous: local time or UTC?)."""
    if not isinstance(moment, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.utcoffset() is None:
        raise ValidationError(
            f"{name} must be a timezone-aware datetime (a naive one is ambiguous), "
            f"got {moment.isoformat()}"
        )
    return moment


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Both bounds aware when given, and ``since`` before ``until``."""
    if since is not None:
        aware(since, "since")
    if until is not None:
        aware(until, "until")
    if since is not None and until is not None and since >= until:
        raise ValidationError(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
        )


def check_page_size(page_size: int, maximum: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise ValidationError(f"page_size must be an int, got {page_size!r}")
    if not 1 <= page_size <= maximum:
        raise ValidationError(f"page_size must be from 1 to {maximum}, got {page_size}")
    return page_size


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC, as the list APIs take it:
    ``2026-01-31T23:00:00Z`` (with ``.ffffff`` when it has microseconds)."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
