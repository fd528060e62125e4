"""Errors that cross Nameko RPC as themselves (not as RemoteError), so that the gateway can map
each to its HTTP status and problem type without parsing strings. Standard library only:
domains raise them; `services.common.entrypoints` registers them with Nameko."""

PROBLEMS = "https://propdesk.dev/problems/"


class ProblemError(Exception):
    """Base for every error a caller is expected to handle. `detail` is human-readable;
    `extra` is a JSON-serialisable dict merged into the problem document."""

    status = 500
    type = "about:blank"
    title = "Error"

    def __init__(self, detail, extra=None):
        super().__init__(detail, extra or {})
        self.detail = detail
        self.extra = extra or {}

    def __str__(self):
        return self.detail


class ValidationFailed(ProblemError):
    status = 422
    type = PROBLEMS + "validation"
    title = "Invalid request"

    @classmethod
    def from_messages(cls, messages):
        """`messages` as marshmallow gives them: {field: [msg, ...] | nested}."""
        fields = ", ".join(sorted(messages))
        return cls(f"invalid fields: {fields}", {"errors": messages})


class Unauthorized(ProblemError):
    status = 401
    type = PROBLEMS + "unauthorized"
    title = "Authentication required"


class Forbidden(ProblemError):
    status = 403
    type = PROBLEMS + "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    type = PROBLEMS + "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    type = PROBLEMS + "conflict"
    title = "Conflict"


class IllegalTransition(Conflict):
    type = PROBLEMS + "illegal-transition"
    title = "Action not allowed in this state"

    @classmethod
    def build(cls, action, status, allowed, subject="ticket"):
        return cls(
            f"cannot {action} a {subject} that is {status}; allowed: {', '.join(allowed) or 'none'}",
            {"action": action, "current_status": status, "allowed_actions": list(allowed)},
        )


class ServiceUnavailable(ProblemError):
    """A service (or the broker, or a store) is down or did not answer in time. Nothing was
    written for the request, so the client may retry it."""
    status = 503
    type = PROBLEMS + "service-unavailable"
    title = "Service unavailable"


EXPECTED = (ProblemError,)
# Rebuilt as themselves on the calling side of an RPC.
CROSSING_RPC = (ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict, IllegalTransition,
                ServiceUnavailable)
