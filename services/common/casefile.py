"""What every case the front desk follows keeps, whatever its kind (a ticket, a renovation):
its deadlines and when each was met, a history of who did what and when, and the events its
changes raise — and the one way an action is allowed: by state and by role.

Kept as plain data (ISO instants in dicts and lists, always replaced, never mutated in place)
so that storage can hold them as JSON columns and the API can show them as they are."""
from dataclasses import dataclass
from datetime import datetime

from marshmallow import Schema, fields

from services.common.clock import as_utc


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple
    target: str | None    # None: the status does not change (or the action decides it)
    roles: tuple


class CaseFile:
    """Mixin for a dataclass with `deadlines`, `deadlines_met`, `history` and `events` fields."""

    def _set_deadline(self, name, due):
        self.deadlines = {**self.deadlines, name: as_utc(due).isoformat()}

    def _meet(self, name, now):
        if name in self.deadlines and name not in self.deadlines_met:
            self.deadlines_met = {**self.deadlines_met, name: now.isoformat()}

    def open_deadlines(self):
        """{name: due instant} of the deadlines not met yet."""
        return {n: datetime.fromisoformat(d) for n, d in self.deadlines.items()
                if n not in self.deadlines_met}

    def _record(self, now, by, role, action, note=None, data=None):
        self.history = self.history + [{"at": now.isoformat(), "by": by, "role": role,
                                        "action": action, "note": note, "data": data or {}}]

    def pull_events(self):
        """The (event, payload) pairs raised since the last pull, for the unit of work."""
        events, self.events = self.events, []
        return events


class HistoryEntryOut(Schema):
    at = fields.String()
    by = fields.String()
    role = fields.String()
    action = fields.String()
    note = fields.String(allow_none=True)
    data = fields.Dict()
