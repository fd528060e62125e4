"""The one way a case (a ticket, a renovation, a move-in, ...) moves: its type declares its
transitions as data, and one checker decides every action the same way — an unknown action is
409, then the role (403 naming `allowed_roles`), then the state and the guard (409 naming the
`allowed_actions` of that role) — before the case's handler runs and the status is set.

    WORKFLOW = Workflow("renovation",
        Transition("sign", ("approved",), None, DESK, guard=lambda r: r.agreement_signed_at is None),
        Transition("close", ("passed",), "closed", DESK),
    )

The handler of an action is the case's method `_<name>_<action>` or, more commonly,
`_<action>` (dashes as underscores), called as `handler(data, now=, by=, role=)`.

Plain Python: domains import it."""
from dataclasses import dataclass
from typing import Callable

from services.common.errors import Forbidden, IllegalTransition


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple                  # the statuses it may start from
    target: str | None              # None: the status does not change (or the handler decides)
    roles: tuple
    guard: Callable | None = None   # case -> bool: what the status alone cannot say

    def allows(self, case):
        return case.status in self.sources and (self.guard is None or self.guard(case))


class Workflow:
    """The transitions of one case type, by action; `name` is how errors call the case."""

    def __init__(self, name, *transitions):
        self.name = name
        self.transitions = {t.action: t for t in transitions}

    def allowed_actions(self, case, role=None):
        """Actions valid in the case's current state (for this role, when given)."""
        return [t.action for t in self.transitions.values()
                if t.allows(case) and (role is None or role in t.roles)]

    def check(self, case, action, role):
        transition = self.transitions.get(action)
        if transition is None:
            raise self._illegal(case, action, role)
        if role not in transition.roles:
            raise Forbidden(f"role {role} may not {action} a {self.name}",
                            {"action": action, "allowed_roles": list(transition.roles)})
        if not transition.allows(case):
            raise self._illegal(case, action, role)
        return transition

    def apply(self, case, action, data, *, now, by, role):
        transition = self.check(case, action, role)
        method = action.replace("-", "_")
        handler = getattr(case, f"_{self.name}_{method}", None) or getattr(case, f"_{method}")
        handler(data, now=now, by=by, role=role)
        if transition.target:
            case.status = transition.target
        return transition

    def _illegal(self, case, action, role):
        return IllegalTransition.build(action, case.status, self.allowed_actions(case, role),
                                       self.name)
