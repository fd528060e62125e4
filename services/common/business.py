"""The business gauges of SPEC §9 (open cases, arrears units, messages by status), computed by
a service's own query on a timer — every `BUSINESS_METRICS_SECONDS` (30) — rather than at every
scrape, so that a scrape costs the same at a million rows as at ten and no two scrapers double
the load. Each replica computes the same totals from the shared database: take `max` over
replicas in PromQL, not `sum`.

    class TicketingService(ServiceBase):
        uow = Database(Base)
        business = BusinessGauges({OPEN_CASES: storage.open_cases})

A query takes a SQLAlchemy connection and returns [(labels, value)], labels a dict of the
gauge's label names (`service` is filled in)."""
import logging

import eventlet
from nameko.extensions import DependencyProvider

from services.common.db import Database
from services.common.metrics import gauge

log = logging.getLogger(__name__)


class BusinessGauges(DependencyProvider):

    def __init__(self, queries):
        self.queries = queries
        self.thread = None

    def setup(self):
        self.service = self.container.service_name
        self.interval = float(self.container.config.get("BUSINESS_METRICS_SECONDS", 30))
        self.database = next(ext for ext in self.container.dependencies if isinstance(ext, Database))

    def start(self):
        self.thread = eventlet.spawn(self._run)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None

    kill = stop

    def _run(self):
        while True:
            try:
                self.refresh()
            except Exception:
                log.exception("business metrics of %s could not be computed; will retry",
                              self.service)
            eventlet.sleep(self.interval)

    def refresh(self):
        with self.database.engine.connect() as conn:
            computed = {spec: query(conn) for spec, query in self.queries.items()}
        for spec, rows in computed.items():
            target = gauge(self.service, spec)
            target.clear()        # a site or stage with nothing left drops out
            own = {"service": self.service} if "service" in spec[2] else {}
            for labels, value in rows:
                target.labels(**own, **labels).set(value)

    def get_dependency(self, worker_ctx):
        return self
