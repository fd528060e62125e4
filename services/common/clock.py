"""Time is injected: domain code takes `now` as an argument, services get it from `Clock`."""
from datetime import datetime, timezone

from nameko.extensions import DependencyProvider


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


class Clock(DependencyProvider):
    """`self.clock()` is the current UTC instant. Tests replace it (worker_factory /
    replace_dependencies) to run SLA and ladder rules at an exact moment."""

    def get_dependency(self, worker_ctx):
        return utcnow
