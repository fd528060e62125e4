"""The one case workflow, on a case type declared in a few lines as a later one (a parking
rental, say) would be: role first (403), then state and guard (409 naming what that role may do),
then the handler and the target status."""
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.common.casefile import CaseFile
from services.common.errors import Forbidden, IllegalTransition
from services.common.workflow import Transition, Workflow

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone(timedelta(hours=8)))

RENTAL = Workflow(
    "rental",
    Transition("approve", ("requested",), "approved", ("manager",)),
    Transition("note", ("requested", "approved"), None, ("agent", "manager")),
    Transition("renew", ("approved",), None, ("agent",), guard=lambda rental: rental.renewals < 1),
)


@dataclass
class Rental(CaseFile):
    status: str = "requested"
    renewals: int = 0
    refreshed: int = 0
    deadlines: dict = field(default_factory=dict)
    deadlines_met: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    events: list = field(default_factory=list)

    workflow = RENTAL

    def refresh_due(self):
        self.refreshed += 1

    def _approve(self, data, *, now, by, role):
        self._record(now, by, role, "approve", data=data)

    def _note(self, data, *, now, by, role):
        self._record(now, by, role, "note", note=data["note"])

    def _rental_renew(self, data, *, now, by, role):
        self.renewals += 1


def test_the_handler_runs_the_status_moves_and_the_due_index_is_refreshed():
    rental = Rental().apply("approve", {}, now=NOW, by="m", role="manager")
    assert rental.status == "approved" and rental.refreshed == 1
    assert [entry["action"] for entry in rental.history] == ["approve"]


def test_a_transition_without_target_keeps_the_status():
    assert Rental().apply("note", {"note": "x"}, now=NOW, by="a", role="agent").status == "requested"


def test_a_handler_named_for_the_case_type_comes_first():
    rental = Rental(status="approved").apply("renew", {}, now=NOW, by="a", role="agent")
    assert rental.renewals == 1


def test_the_wrong_role_is_403_even_in_the_wrong_state():
    with pytest.raises(Forbidden) as raised:
        Rental(status="approved").apply("approve", {}, now=NOW, by="a", role="agent")
    assert raised.value.extra == {"action": "approve", "allowed_roles": ["manager"]}


def test_the_wrong_state_is_409_naming_what_that_role_may_do():
    with pytest.raises(IllegalTransition) as raised:
        Rental(status="approved").apply("approve", {}, now=NOW, by="m", role="manager")
    assert raised.value.extra["allowed_actions"] == ["note"]
    assert raised.value.extra["current_status"] == "approved"


def test_a_guard_that_says_no_is_409():
    with pytest.raises(IllegalTransition) as raised:
        Rental(status="approved", renewals=1).apply("renew", {}, now=NOW, by="a", role="agent")
    assert raised.value.extra["allowed_actions"] == ["note"]


def test_an_unknown_action_is_409():
    with pytest.raises(IllegalTransition) as raised:
        Rental().apply("demolish", {}, now=NOW, by="a", role="agent")
    assert raised.value.extra["allowed_actions"] == ["note"]


def test_allowed_actions_follow_state_guard_and_role():
    assert Rental().allowed_actions() == ["approve", "note"]
    assert Rental().allowed_actions("agent") == ["note"]
    assert Rental(status="approved").allowed_actions("agent") == ["note", "renew"]
    assert Rental(status="approved", renewals=1).allowed_actions("agent") == ["note"]


def test_history_data_is_json_safe_instants_keep_their_offset():
    window = {"start": NOW, "end": NOW + timedelta(hours=2)}
    rental = Rental().apply("approve", {"window": window, "rent": Decimal("300.00"),
                                        "days": [NOW.date()]}, now=NOW, by="m", role="manager")
    data = rental.history[0]["data"]
    assert data == {"window": {"start": "2026-11-18T09:00:00+08:00",
                               "end": "2026-11-18T11:00:00+08:00"},
                    "rent": "300.00", "days": ["2026-11-18"]}
    json.dumps(rental.history)
