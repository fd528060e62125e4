"""Who a resident is, beyond their token: the units registry records them in (owner, tenant or
household member), looked up once and kept for a short while, so that every route's scope and
every service's object check know a resident's own units without asking registry again.

A resident added to a unit sees it within CACHE_SECONDS; one removed stops seeing it as soon."""
import time
from dataclasses import replace

from nameko.extensions import DependencyProvider

CACHE_SECONDS = 30.0
MAX_KEPT = 10_000


class ResidentUnits(DependencyProvider):
    """`self.residents.identify(identity, rpc)`: the identity with `units` filled for a resident."""

    def setup(self):
        self.kept = {}      # person_id -> (units, fetched at)

    def get_dependency(self, worker_ctx):
        return self

    def identify(self, identity, rpc):
        if not identity.is_resident:
            return identity
        if not identity.person_id:
            return replace(identity, units=())
        now = time.monotonic()
        units, fetched_at = self.kept.get(identity.person_id, ((), None))
        if fetched_at is None or now - fetched_at > CACHE_SECONDS:
            units = tuple(rpc.registry.resident_units(identity.person_id))
            if len(self.kept) >= MAX_KEPT:
                self.kept.clear()
            self.kept[identity.person_id] = (units, now)
        return replace(identity, units=units)
