"""What every case the front desk follows keeps, whatever its kind (a ticket, a renovation):
its deadlines and when each was met, a history of who did what and when, the events its
changes raise — and the one way an action is allowed, its type's `workflow`.

Kept as plain data (ISO instants in dicts and lists, always replaced, never mutated in place)
so that storage can hold them as JSON columns and the API can show them as they are."""
from datetime import date, datetime
from decimal import Decimal

from services.common.clock import as_utc


def json_safe(value):
    """`value` as a JSON column holds it: instants as ISO 8601 with their offset, dates as ISO
    dates, decimals as strings, through dicts and lists. Loaded input carries datetimes and
    Decimals, which the JSON columns cannot store."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("instant needs a UTC offset")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


class CaseFile:
    """Mixin for a dataclass with `status`, `deadlines`, `deadlines_met`, `history` and `events`
    fields, a `workflow` (services.common.workflow.Workflow: a class attribute, or a property
    when the table depends on the case's kind) and a `refresh_due()` that recomputes what the
    sweep indexes after a change."""

    def allowed_actions(self, role=None):
        """Actions valid in the current state (for this role, when given)."""
        return self.workflow.allowed_actions(self, role)

    def apply(self, action, data, *, now, by, role):
        self.workflow.apply(self, action, data, now=now, by=by, role=role)
        self.refresh_due()
        return self

    def _set_deadline(self, name, due):
        self.deadlines = {**self.deadlines, name: as_utc(due).isoformat()}

    def _meet(self, name, now):
        if name in self.deadlines and name not in self.deadlines_met:
            self.deadlines_met = {**self.deadlines_met, name: now.isoformat()}

    def deadline_pending(self, name):
        """Set and not met yet."""
        return name in self.deadlines and name not in self.deadlines_met

    def open_deadlines(self):
        """{name: due instant} of the deadlines not met yet."""
        return {n: datetime.fromisoformat(d) for n, d in self.deadlines.items()
                if n not in self.deadlines_met}

    def _record(self, now, by, role, action, note=None, data=None):
        self.history = self.history + [{"at": now.isoformat(), "by": by, "role": role,
                                        "action": action, "note": note,
                                        "data": json_safe(data or {})}]

    def pull_events(self):
        """The (event, payload) pairs raised since the last pull, for the unit of work."""
        events, self.events = self.events, []
        return events
