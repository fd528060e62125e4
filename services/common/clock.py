"""Time is injected: domain code takes `now` as an argument, services get it from
`services.common.entrypoints.Clock`. Standard library only: domains import it."""
from datetime import datetime, timezone


def utcnow():
    return datetime.now(timezone.utc)


def as_utc(instant):
    """Aware UTC datetime from an aware datetime or ISO 8601 string; naive input is rejected
    because an instant without an offset is ambiguous across sites."""
    if isinstance(instant, str):
        instant = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError("instant needs a UTC offset")
    return instant.astimezone(timezone.utc)


def iso(instant):
    return None if instant is None else as_utc(instant).isoformat()

