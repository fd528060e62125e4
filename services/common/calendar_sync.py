"""Every process's copy of the years head office entered (SPEC preamble, "working days"):
notifications keeps them (`PUT /api/v1/calendar/{year}`) and raises
`notifications.calendar_entered`; every replica of every service applies that event
(`ServiceBase.on_calendar_entered`) and, at start, asks notifications for every year entered
(`CalendarSync`), so that a restarted process does not forget. Nothing per service: ServiceBase
carries both. The same dependency exposes `propdesk_calendar_year_known{year,source}` at
/metrics: 1 for a year known (entered or library), 0 for one counted Monday to Friday."""
import logging

import eventlet
from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy
from prometheus_client.core import GaugeMetricFamily

from services.common import calendar
from services.common.clock import utcnow
from services.common.contracts import CalendarEnteredV1
from services.common.metrics import metric

log = logging.getLogger(__name__)

OWNER = "notifications"
RETRY_SECONDS = 5.0


def apply(entry):
    """One year as the event or the owner's list gives it; True if it changed this process."""
    return calendar.enter(entry["year"], entry["version"], entry["holidays"], entry["workdays"])


class CalendarYears:
    """The gauge, computed at each scrape from this process's calendar (no query, no timer)."""

    def collect(self):
        family = GaugeMetricFamily(
            "propdesk_calendar_year_known",
            "1 when the working days of a year in use are known (entered or library), 0 when "
            "they are counted Monday to Friday", labels=["year", "source"])
        for year in calendar.years_in_use(utcnow().year):
            source = calendar.source(year)
            family.add_metric([str(year), source], 0 if source == calendar.WEEKDAYS_ONLY else 1)
        yield family


class CalendarSync(DependencyProvider):
    """At start, in the background, the entered years from the owner over RPC, retried every
    `CALENDAR_RETRY_SECONDS` (5) until the owner answers, so that a service starting before
    notifications still catches up; events keep it current after that."""

    def __init__(self):
        self.thread = None

    def setup(self):
        self.config = self.container.config
        self.retry = float(self.config.get("CALENDAR_RETRY_SECONDS", RETRY_SECONDS))
        self.timeout = float(self.config.get("RPC_TIMEOUT", 10))
        metric(self.container.service_name, "calendar_years",
               lambda registry: registry.register(CalendarYears()) or True)

    def start(self):
        self.thread = eventlet.spawn(self._load)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None

    kill = stop

    def _load(self):
        warned = False
        while True:
            try:
                with ClusterRpcProxy(self.config, timeout=self.timeout) as rpc:
                    years = getattr(rpc, OWNER).calendar_years()
                break
            except Exception as exc:  # not up yet, unreachable, too slow: all mean "later"
                if not warned:
                    log.warning("entered calendar years not loaded yet (%s: %s); retrying every "
                                "%g s", type(exc).__name__, exc, self.retry)
                    warned = True
                eventlet.sleep(self.retry)
        applied = [entry["year"] for entry in CalendarEnteredV1(many=True).load(years)
                   if apply(entry)]
        log.info("calendar years loaded from %s: %s", OWNER, applied or "none new")

    def get_dependency(self, worker_ctx):
        return self
