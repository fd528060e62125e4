"""The caller's identity (sub, role, sites, person_id) and the correlation id, carried from the
gateway over RPC and into events as Nameko context data, and checked again in every service."""
import uuid
from dataclasses import asdict, dataclass, field

from nameko.extensions import DependencyProvider

from services.common.errors import Forbidden, NotFound
from services.common.logs import bind_correlation_id
from services.common.roles import RESIDENT

ALL_SITES = "*"

IDENTITY_KEY = "identity"
CORRELATION_KEY = "correlation_id"
IDEMPOTENCY_KEY = "idempotency"


@dataclass(frozen=True)
class Identity:
    sub: str
    role: str
    sites: tuple = field(default_factory=tuple)
    person_id: str | None = None
    # A resident's own units (registry's answer, looked up by the gateway): what they may see.
    units: tuple = field(default_factory=tuple)

    @classmethod
    def from_context(cls, data):
        """From Nameko context data. A call without one comes from inside the cluster (an ops
        script over RPC, a timer): broker access is the credential, so it acts as ops."""
        if not data:
            return SYSTEM
        return cls(
            sub=str(data["sub"]), role=data["role"],
            sites=tuple(data.get("sites") or ()), person_id=data.get("person_id"),
            units=tuple(data.get("units") or ()),
        )

    def to_context(self):
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if v is not None and v != ()}

    def owns_unit(self, code):
        return self.is_resident and code in self.units

    @property
    def is_resident(self):
        return self.role == RESIDENT

    def can_see_site(self, site):
        return ALL_SITES in self.sites or site in self.sites

    def require_site(self, site):
        if not self.can_see_site(site):
            raise Forbidden(f"{self.sub} has no access to site {site}", {"site": site})

    def require_role(self, action, *roles):
        if self.role not in roles:
            raise Forbidden(
                f"role {self.role} may not {action}",
                {"action": action, "allowed_roles": list(roles)},
            )

    def require_visible(self, found, name, ref, owned=None, conceal=False):
        """Check an object a service loaded by id (`found`, None if there is none) as it loads
        it, so that the gateway need not fetch it first. Nothing, or a resident asking for what
        is not theirs, is 404: a resident learns nothing of others'. What is a resident's is
        what `owned(found)` says, or without `owned`, an object of one of their own units (its
        `unit`, or a unit's own `code`). Staff of another site get 403, or 404 where
        `conceal` says that an object elsewhere must look like none at all. `name` ("ticket
        01H…") and `ref` ({"ticket_id": …}) word the problem."""
        owned = owned or self._of_own_unit
        if found is None or (self.is_resident and not owned(found)):
            raise NotFound(f"no {name}", ref)
        if not self.can_see_site(found.site):
            if conceal:
                raise NotFound(f"no {name}", ref)
            raise Forbidden(f"{name} belongs to another site", {"site": found.site})
        return found

    def _of_own_unit(self, found):
        return self.owns_unit(getattr(found, "unit", None) or getattr(found, "code", None))

    def visible_sites(self):
        """None means every site."""
        return None if ALL_SITES in self.sites else list(self.sites)


SYSTEM = Identity(sub="system", role="ops_admin", sites=(ALL_SITES,))


class CallContext:
    def __init__(self, worker_ctx):
        # worker_ctx.context_data is a fresh copy on every read; `data` is what Nameko sends
        # on with each RPC call and event the worker makes.
        self._data = worker_ctx.data

    @property
    def identity(self) -> Identity:
        return Identity.from_context(self._data.get(IDENTITY_KEY))

    @property
    def correlation_id(self) -> str:
        """Kept across every hop; a call entering without one starts a new chain."""
        if not self._data.get(CORRELATION_KEY):
            self._data[CORRELATION_KEY] = uuid.uuid4().hex
        return self._data[CORRELATION_KEY]

    def act_as(self, identity: Identity, correlation_id: str | None = None):
        """Used by the gateway: what it sets here travels with every RPC it makes."""
        self._data[IDENTITY_KEY] = identity.to_context()
        self._data[CORRELATION_KEY] = correlation_id or uuid.uuid4().hex
        bind_correlation_id(self._data[CORRELATION_KEY])

    @property
    def idempotency(self):
        """{"key", "request"} when the call repeats a client's Idempotency-Key, else None."""
        return self._data.get(IDEMPOTENCY_KEY)

    def carry_idempotency(self, key, request):
        """Used by the gateway: the client's key and a digest of its request travel with every
        RPC, so that the service owning the effect records it with the effect (UnitOfWork.once)."""
        self._data[IDEMPOTENCY_KEY] = {"key": key, "request": request}


class Caller(DependencyProvider):
    """`self.caller.identity`, `self.caller.correlation_id` for the current worker."""

    def get_dependency(self, worker_ctx):
        return CallContext(worker_ctx)

    def worker_setup(self, worker_ctx):
        # an RPC call or event arriving with a correlation id (header nameko.correlation_id)
        bind_correlation_id(worker_ctx.data.get(CORRELATION_KEY))

    def worker_teardown(self, worker_ctx):
        bind_correlation_id(None)
